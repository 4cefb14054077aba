"""The HTML validation report, its VPC tables and figure helpers, against independent sums."""

from __future__ import annotations

import base64
import dataclasses
import re

import numpy as np
import pytest
import scipy.stats

from asuc_bayes.data.dataset import BELOW_LLOQ, MEASURED
from asuc_bayes.data.types import EventRecord
from asuc_bayes.interfaces.validation_figures import _wilson, risk_groups
from asuc_bayes.interfaces.validation_report import (
    cell,
    validation_report_html,
    write_validation_report,
)
from asuc_bayes.studies.validation import validate_cohort
from asuc_bayes.studies.validation.simulation import simulate_validation_cohort
from asuc_bayes.studies.validation.vpc import ModelRecords, row_percentiles, vpc_table


@pytest.fixture(scope="module")
def result():
    """12 simulated patients, with colectomy records (cases after day 28 and controls)."""
    cohort = simulate_validation_cohort("niyigena2025", 12, random_seed=8)
    rng = np.random.default_rng(3)
    with_events = []
    for i, patient in enumerate(cohort):
        event = EventRecord(float(rng.uniform(35.0, 80.0)), 1) if i % 3 == 0 else None
        event = event or EventRecord(95.0, 0)
        with_events.append(dataclasses.replace(patient, events=(event,)))
    covariates = {p.id: {"ALB": (38.0, "g/L"), "ADA": 0} for p in with_events}
    return validate_cohort(
        with_events, ["niyigena2025", "wojciechowski2017"], covariates_of=covariates
    )


@pytest.fixture(scope="module")
def html(result, tmp_path_factory):
    """The report, rendered once (figures are the slow part: ~1 s each on a busy machine)."""
    path = write_validation_report(result, tmp_path_factory.mktemp("out") / "new", random_seed=0)
    assert path.name == "validation.html"
    return path.read_text(encoding="utf-8")


def test_report_is_self_contained_with_every_section_and_figure(html):
    # nothing loaded from elsewhere: no external source, stylesheet or script
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)
    assert "<script" not in html and "<link" not in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # per model: VPC, pcVPC, NPDE, observed-predicted (4 x 2); calibration; weights
    assert len(images) == 4 * 2 + 2
    assert all(base64.b64decode(b).startswith(b"\x89PNG\r\n\x1a\n") for b in images)
    for heading in (
        "Predictive performance",
        "Normalised prediction distribution errors",
        "Colectomy outcome",
        "Model weights",
        "Figures per model",
    ):
        assert heading in html
    for mode in ("a priori", "Bayesian, full posterior", "Bayesian, MAP", "model average"):
        assert mode in html
    assert "wojciechowski2017 (extrapolated)" in html  # outcome model borrowed, and said so
    text = re.sub(r"<[^>]+>", " ", re.sub(r'src="[^"]+"', "", html))
    assert not re.search(r"\b(nan|NaN|None|inf)\b", text)
    assert "--" not in text  # written for researchers: no command-line options


def test_report_numbers_are_the_json_numbers(result, html):
    document = result.to_json()
    own = document["models"][0]
    assert cell(own["a_priori"]["mpe"], "pct") in html
    assert cell(own["npde"]["variance"], "3f") in html
    assert cell(own["mean_weight"], "3f") in html
    assert cell(own["outcome"]["brier"], "3f") in html
    top = max(document["models"], key=lambda m: m["mean_weight"])
    assert f"Highest mean posterior model probability: {top['name']} (" in html


def test_missing_values_are_dashes():
    assert cell(None) == "–" and cell(float("nan"), "pct") == "–" and cell(np.inf) == "–"
    assert cell(-0.25, "pct") == "−25.0 %" and cell(0.0004, "p") == "< 0.001"


def test_row_percentiles_match_numpy_on_each_finite_row():
    rng = np.random.default_rng(1)
    x = rng.lognormal(size=(40, 9))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[5] = np.nan
    got = row_percentiles(x, (5.0, 50.0, 95.0))
    for i, row in enumerate(x):
        finite = row[np.isfinite(row)]
        if finite.size == 0:
            assert np.isnan(got[i]).all()
        else:
            np.testing.assert_allclose(got[i], np.percentile(finite, (5, 50, 95)), rtol=1e-12)


def _records(sims: np.ndarray, pred: np.ndarray) -> ModelRecords:
    time = np.array([1.0, 1.0, 2.0, 10.0, 10.0, 12.0])
    observed = np.array([20.0, 1.0, 12.0, 5.0, 3.0, 4.0])
    censoring = np.array([MEASURED, BELOW_LLOQ, MEASURED, MEASURED, MEASURED, MEASURED])
    return ModelRecords(
        name="m",
        patient_index=np.array([0, 0, 1, 1, 2, 2]),
        time_day=time,
        observed_mg_l=observed,
        censoring=censoring,
        pred_mg_l=pred,
        bayesian_mg_l=pred,
        first=np.array([1, 0, 1, 0, 1, 0], dtype=bool),
        simulated_mg_l=sims,
        lower_mg_l=np.full(6, 1.0),
        upper_mg_l=np.full(6, np.inf),
    )


def test_vpc_table_against_a_loop_over_bins_and_replicates():
    rng = np.random.default_rng(4)
    sims = rng.lognormal(1.5, 1.0, size=(300, 6))
    pred = np.array([15.0, 10.0, 12.0, 4.0, 5.0, 2.0])
    records = _records(sims, pred)
    for corrected in (False, True):
        table = vpc_table(records, corrected=corrected, n_bins=2)
        bins = [np.array([0, 1, 2]), np.array([3, 4, 5])]  # times <= 2 | >= 10
        for b, idx in enumerate(bins):
            factor = np.median(pred[idx]) / pred[idx] if corrected else np.ones(3)
            kept = records.censoring[idx] == MEASURED
            expected = np.percentile((records.observed_mg_l[idx] * factor)[kept], (5, 50, 95))
            np.testing.assert_allclose(table.observed[b], expected)
            per_rep = []
            fractions = []
            for r in range(sims.shape[0]):
                values = sims[r, idx]
                inside = values >= 1.0
                per_rep.append(np.percentile((values * factor)[inside], (5, 50, 95)))
                fractions.append(np.mean(~inside))
            expected_band = np.percentile(np.array(per_rep), (2.5, 50, 97.5), axis=0).T
            np.testing.assert_allclose(table.simulated[b], expected_band, rtol=1e-12)
            np.testing.assert_allclose(
                table.simulated_censored[b], np.percentile(fractions, (2.5, 50, 97.5))
            )
        assert table.observed_censored.tolist() == [1 / 3, 0.0]
        assert table.n.tolist() == [3, 3] and table.n_uncensored.tolist() == [2, 3]


def test_pc_factor_is_capped():
    pred = np.array([1e-6, 10.0, 10.0, 10.0, 10.0, 10.0])
    sims = np.full((5, 6), 10.0)
    table = vpc_table(_records(sims, pred), corrected=True, n_bins=2)
    # the first record's factor 10 / 1e-6 is capped at 10: its simulated 100 mg/L is the max
    assert table.simulated[0, 2, 1] == pytest.approx(np.percentile([100.0, 10.0, 10.0], 95))


def test_wilson_interval_and_risk_groups():
    for k, n in ((0, 10), (3, 10), (10, 10), (17, 40)):
        low, high = _wilson(np.array([k]), np.array([float(n)]))
        ci = scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert (low[0], high[0]) == pytest.approx((ci.low, ci.high), abs=1e-6)
    groups = risk_groups(np.linspace(0.01, 0.5, 50), 5)
    assert np.bincount(groups).tolist() == [10] * 5


def test_report_of_awkward_cohort_renders_without_warnings():
    """One sample, none, and only censored samples: bins with nothing uncensored stay empty."""
    from asuc_bayes.data.dataset import Dose, Observation, Patient

    dose = (Dose(0.0, 700.0, 1 / 12),)
    cohort = [
        Patient("one", 70.0, 30.0, dose, (Observation(2.0, 40.0),)),
        Patient("none", 80.0, 60.0, dose, ()),
        Patient(
            "blq",
            60.0,
            90.0,
            dose,
            (Observation(60.0, 1.0, BELOW_LLOQ), Observation(70.0, 1.0, BELOW_LLOQ)),
        ),
    ]
    result = validate_cohort(cohort, ["niyigena2025"], random_seed=1)
    html = validation_report_html(result, generated_at="now")
    assert "3 patients, 3 infliximab concentrations" in " ".join(html.split())
    assert "(2 censored" in html
    assert html.count("data:image/png;base64,") == 4 + 1
