"""The HTML patient report, the figures it embeds, and `forecast --report`."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import re

import matplotlib.image
import numpy as np
import pytest

from asuc_bayes.data.dataset import BELOW_LLOQ
from asuc_bayes.interfaces.cli import EXIT_OK, main
from asuc_bayes.interfaces.plots import (
    CREDIBLE_BAND,
    concentration_figure,
    dose_risk_figure,
    figure_png,
    ln_ratio_figure,
)
from asuc_bayes.interfaces.report import patient_report_html, report_paths, write_patient_reports
from asuc_bayes.pk.kernels import concentration

from conftest import REFERENCE_PATIENTS

HOSTILE_ID = '<script>alert("x")</script>&P1'


@pytest.fixture(scope="module")
def blq_forecast(forecaster):
    return forecaster.forecast(REFERENCE_PATIENTS["blq_sample"], random_seed=3)


def _images(document: str) -> list[np.ndarray]:
    encoded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', document)
    return [matplotlib.image.imread(io.BytesIO(base64.b64decode(e)), format="png") for e in encoded]


def test_report_holds_the_patients_numbers_and_embedded_figures(blq_forecast, tmp_path):
    (path,) = write_patient_reports([blq_forecast], tmp_path / "report.html")
    assert path == tmp_path / "report.html"
    document = path.read_text(encoding="utf-8")
    s = blq_forecast.summary()
    risk = s["posterior"]["risk_90d"]
    for number in (
        f"{100 * risk['mean']:.1f} %",
        f"{100 * risk['q2.5']:.1f} %",
        f"{100 * risk['q97.5']:.1f} %",
        f"{100 * s['map']['risk_90d']:.1f} %",
        f"{s['p_high_risk']:.2f}",
        f"{s['posterior']['cl']['mean']:.3g}",
        f"{s['map']['cl']:.3g}",
        f"{s['posterior']['ln_auc_cl']['q50']:.2f}",
        f"{s['diagnostics']['rhat_max']:.3f}",
        blq_forecast.spec.sha256,
    ):
        assert number in document, number
    assert "below LLOQ" in document  # the censored sample among the inputs
    assert "not been externally validated" in document
    assert "Research use only" in document
    assert "WARNING" not in document  # converged
    images = _images(document)
    assert len(images) == 2
    for image in images:
        assert image.shape[0] > 200 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05  # a drawing, not a blank canvas
    assert "http" not in document.replace("http-equiv", "")  # self-contained


def test_report_dose_section_from_the_dosing_module(blq_forecast):
    from asuc_bayes.decisions.dosing import recommend_dose

    recommendation = recommend_dose(blq_forecast).to_json()
    document = patient_report_html(blq_forecast, dosing=recommendation)
    chosen = recommendation["recommended"]
    if recommendation["feasible"]:
        assert f"Recommended dose: <strong>{chosen['dose_mg']:g} mg</strong>" in document
    else:
        assert "No dose up to the cap reaches the target." in document
    assert f"{100 * chosen['risk_90d']['q97.5']:.1f} %" in document
    assert len(_images(document)) == 3
    refused = patient_report_html(blq_forecast, dosing={"error": "dose day <before> sample"})
    assert "No dose recommendation: dose day &lt;before&gt; sample" in refused
    assert len(_images(refused)) == 2


def test_report_escapes_the_patient_id_and_warns_when_unconverged(blq_forecast):
    patient = dataclasses.replace(blq_forecast.patient, id=HOSTILE_ID)
    hostile = dataclasses.replace(blq_forecast, patient=patient, status="unconverged")
    document = patient_report_html(hostile)
    assert "<script>" not in document
    (shown,) = re.findall(r'<span class="patient-id">(.*?)</span>', document)
    assert html.unescape(shown) == HOSTILE_ID  # escaped markup, shown as the text it is
    assert "WARNING: this posterior did not pass the convergence checks" in document
    assert "UNCONVERGED" in document


def test_report_paths_one_file_per_patient_with_safe_names(tmp_path):
    assert report_paths(tmp_path / "r.html", ["A"]) == [tmp_path / "r.html"]
    paths = report_paths(tmp_path / "r.html", ["P1", "../../etc/passwd", "a b", "a_b", "A_B"])
    assert [p.name for p in paths] == [
        "r-P1.html",
        "r-_.._etc_passwd.html",
        "r-a_b.html",
        "r-a_b-2.html",
        "r-A_B-3.html",  # names that differ only in case clash on some disks
    ]
    assert all(p.parent == tmp_path for p in paths)


def test_forecast_report_option_writes_one_file_per_patient(capsys, tmp_path):
    target = tmp_path / "out.html"
    options = ["--id", "P01", "--id", "P05", "--report", str(target), "--tune", "500"]
    code = main(["forecast", "--example", *options])
    _, err = capsys.readouterr()
    assert code == EXIT_OK, err
    for patient_id in ("P01", "P05"):
        document = (tmp_path / f"out-{patient_id}.html").read_text(encoding="utf-8")
        assert f'patient <span class="patient-id">{patient_id}</span>' in document
    assert "report written to 2 files" in err
    assert "forecast [" not in err  # no progress bar when stderr is not a terminal


def test_concentration_figure_draws_the_forecasts_curves(blq_forecast):
    figure = concentration_figure(blq_forecast)
    (ax,) = figure.axes
    tree = blq_forecast.tree
    time_day = tree["predictions"]["time"].values
    curves = tree["predictions"]["concentration"].values.reshape(-1, time_day.size)
    lines = {line.get_linestyle(): line for line in ax.get_lines() if len(line.get_xdata()) > 10}
    # a priori (dashed) recomputed independently from the kernel at η = 0
    patient = blq_forecast.patient
    a_priori = concentration(
        time_day,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        blq_forecast.summary()["a_priori"]["cl"],
        blq_forecast.summary()["a_priori"]["v"],
    )
    np.testing.assert_allclose(lines["--"].get_ydata(), a_priori, rtol=1e-9)
    np.testing.assert_allclose(lines["-"].get_ydata(), np.median(curves, axis=0), rtol=1e-9)
    band = ax.collections[0].get_paths()[0].vertices  # the 90 % band polygon
    upper = np.quantile(curves, 0.5 + CREDIBLE_BAND / 2, axis=0)
    assert band[:, 1].max() == pytest.approx(upper.max(), rel=1e-9)
    censored = [c for c in ax.collections[1:] if len(c.get_offsets())]
    offsets = np.concatenate([c.get_offsets() for c in censored])
    observed = sorted(zip(patient.obs_time_day, patient.obs_value_mg_l, strict=True))
    assert sorted(map(tuple, offsets)) == observed
    assert patient.obs_censoring[-1] == BELOW_LLOQ
    assert any(
        t.get_text().startswith("below LLOQ") for t in ax.get_legend().get_texts()
    )  # the censored sample is marked as such
    assert len(figure_png(figure)) > 10_000


def test_ln_ratio_figure_shades_the_posterior_probability_of_high_risk(blq_forecast):
    figure = ln_ratio_figure(blq_forecast)
    (ax,) = figure.axes
    density = max(ax.get_lines(), key=lambda line: len(line.get_xdata()))
    x, y = density.get_xdata(), density.get_ydata()
    threshold = blq_forecast.spec.tte.high_risk_threshold
    below = x <= threshold
    shaded = np.trapezoid(y[below], x[below]) / np.trapezoid(y, x)
    # the smoothed density's area left of the threshold against the draws' fraction
    assert shaded == pytest.approx(blq_forecast.summary()["p_high_risk"], abs=0.03)
    verticals = {line.get_xdata()[0] for line in ax.get_lines() if len(line.get_xdata()) == 2}
    assert threshold in verticals
    assert blq_forecast.summary()["map"]["ln_auc_cl"] in verticals


def test_dose_risk_figure_from_the_dosing_json_contract():
    doses = np.arange(200.0, 1600.0, 100.0)
    risk = 0.4 * np.exp(-doses / 600.0)
    recommendation = {
        "target_risk": 0.2,
        "recommended": {"dose_mg": 500.0},
        "map_recommended": {"dose_mg": 400.0},
        "curve": [
            {
                "dose_mg": d,
                "risk_mean": r,
                "risk_q2.5": r / 2,
                "risk_q97.5": min(1.0, 2 * r),
                "p_high_risk": r,
            }
            for d, r in zip(doses, risk, strict=True)
        ],
    }
    figure = dose_risk_figure(recommendation)
    (ax,) = figure.axes
    mean = max(ax.get_lines(), key=lambda line: len(line.get_xdata()))
    np.testing.assert_allclose(mean.get_ydata(), 100 * risk)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "recommended 500 mg" in labels and "MAP recommendation 400 mg" in labels


def _marker(ax, gid: str):
    (line,) = [line for line in ax.get_lines() if line.get_gid() == gid]
    (label,) = [text for text in ax.texts if text.get_gid() == f"{gid}-label"]
    return line, label


@pytest.mark.parametrize("map_dose", [400.0, 1200.0])
def test_dose_risk_figure_draws_the_map_recommendation_inside_the_axes(map_dose):
    """The MAP recommendation at the first (or last) dose of the curve used to be drawn on
    the axis frame: it must lie inside the x limits by a visible margin, dashed and in
    another colour than the recommendation, and labelled."""
    doses = np.arange(400.0, 1300.0, 100.0)
    recommendation = {
        "target_risk": 0.2,
        "feasible": True,
        "recommended": {"dose_mg": 600.0, "time_day": 14.0},
        "map_recommended": {"dose_mg": map_dose, "feasible": True},
        "curve": [
            {"dose_mg": d, "risk_mean": 0.1, "risk_q2.5": 0.05, "risk_q97.5": 0.2, "p_high_risk": 0}
            for d in doses
        ],
    }
    (ax,) = dose_risk_figure(recommendation).axes
    low, high = ax.get_xlim()
    step = 100.0
    map_line, map_label = _marker(ax, "map-recommended-dose")
    chosen_line, chosen_label = _marker(ax, "recommended-dose")
    assert list(map_line.get_xdata()) == [map_dose, map_dose]
    assert low + 0.4 * step <= map_dose <= high - 0.4 * step
    assert low <= doses.min() - 0.4 * step and high >= doses.max() + 0.4 * step
    assert map_line.get_linestyle() != chosen_line.get_linestyle() == "-"
    assert map_line.get_color() != chosen_line.get_color()
    assert map_line.get_linewidth() >= 1.5
    assert map_label.get_text().strip() == f"MAP recommendation {map_dose:g} mg"
    assert chosen_label.get_text().strip() == "recommended 600 mg"
    assert ax.get_xlabel() == "dose at day 14 (mg)"


def _clinician_text(document: str) -> str:
    """The page without its style sheet and embedded images: what a clinician reads."""
    document = re.sub(r"<style>.*?</style>", "", document, flags=re.S)
    return re.sub(r"base64,[A-Za-z0-9+/=]+", "", document)


def test_report_speaks_to_clinicians_and_shows_the_users_seed(capsys, tmp_path):
    """P02 was sampled at day 20, after the default day-14 dose: the report says why there is
    no recommendation without naming a command-line option; the seed given is shown."""
    target = tmp_path / "p02.html"
    code = main(
        [
            "forecast",
            "--example",
            "--id",
            "P02",
            "--seed",
            "7",
            "--draws",
            "300",
            "--report",
            str(target),
        ]
    )
    assert code == EXIT_OK, capsys.readouterr().err
    text = _clinician_text(target.read_text(encoding="utf-8"))
    assert re.search(r"--[a-z]", text) is None, re.findall(r".{40}--[a-z].{20}", text)
    assert "No dose recommendation" in text and "a later infusion (day ≥ 20)" in text
    (seed,) = re.findall(r'<dd class="seed">(.*?)</dd>', text, flags=re.S)
    assert seed.startswith("7 ")
    from asuc_bayes.inference.forecast import patient_seed

    derived = str(patient_seed(7, "P02"))
    assert derived in seed and text.count(derived) == 1  # only as the technical detail


def test_report_trough_section_from_a_trough_plan(blq_forecast):
    from asuc_bayes.decisions.dosing import DosingRequest, PlanOptions, plan_dosing

    plan = plan_dosing(
        blq_forecast, DosingRequest(), PlanOptions(trough_target_mg_l=5.0, trough_interval_day=28.0)
    )
    entry = plan.to_json()
    document = patient_report_html(blq_forecast, dosing=entry, random_seed=3)
    text = _clinician_text(document)
    assert "Maintenance dose to a trough target" in text
    assert html.escape(plan.trough.answer) in text
    assert "target risk" not in text and "Recommended dose" not in text
    (table,) = re.findall(r'<table class="trough-doses">(.*?)</table>', text, flags=re.S)
    assert table.count("<tr") == len(plan.trough.dose_table) + 1
    assert re.search(r"--[a-z]", text) is None
    assert len(_images(document)) == 3  # concentration, ln ratio, dose-trough


@pytest.mark.parametrize("bimodal", [False, True])
def test_binned_density_matches_scipys_gaussian_kde(bimodal):
    import scipy.stats

    from asuc_bayes.interfaces.plots import _density

    rng = np.random.default_rng(5)
    values = rng.normal(6.0, 0.8, 4000)
    if bimodal:
        values[:1500] = rng.normal(-3.0, 1.0, 1500)
    grid = np.linspace(values.min() - 0.4, values.max() + 0.4, 400)
    reference = scipy.stats.gaussian_kde(values)(grid)
    np.testing.assert_allclose(_density(values, grid), reference, atol=0.005 * reference.max())
