"""The paper's evaluation: statistics against scipy/lifelines/hand computations, and the
whole `evaluate` pipeline on a fit tree built from simulated truth (no sampling needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats

from asuc_bayes.cli import main
from asuc_bayes.evaluation import (
    auroc,
    classification,
    evaluate_fit,
    kaplan_meier,
    roc_curve,
    youden_threshold,
)
from asuc_bayes.population_draws import PARAMETER_NAMES
from asuc_bayes.simulate import simulate_cohort

from conftest import truth_fit_tree


def test_auroc_equals_the_mann_whitney_statistic():
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(6.5, 1.0, 80), 1)  # rounding makes ties
    outcome = rng.uniform(size=80) < 1 / (1 + np.exp(2 * (x - 6)))
    u = scipy.stats.mannwhitneyu(x[~outcome], x[outcome]).statistic
    assert auroc(x, outcome) == pytest.approx(u / (outcome.sum() * (~outcome).sum()), rel=1e-12)
    # the ROC curve's trapezoidal area is the same number
    curve = roc_curve(x, outcome).sort_values("threshold")
    fpr = 1 - curve["specificity"].to_numpy()
    tpr = curve["sensitivity"].to_numpy()
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(x, outcome), rel=1e-12)


def test_kaplan_meier_against_lifelines():
    lifelines = pytest.importorskip("lifelines")
    rng = np.random.default_rng(2)
    t = np.round(rng.exponential(60, 100), 0) + 1  # ties on whole days
    c = rng.uniform(20, 90, 100)
    event = t <= c
    time = np.minimum(t, np.round(c))
    grid = np.arange(0, 91, 0.5)
    fitter = lifelines.KaplanMeierFitter().fit(time, event)
    expected = fitter.survival_function_at_times(grid).to_numpy()
    np.testing.assert_allclose(kaplan_meier(time, event, grid), expected, rtol=1e-12)


def test_classification_and_youden_by_hand():
    x = np.array([4.0, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0])
    outcome = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    table = classification(x, outcome, 5.79)  # high risk: 4, 5, 5.5
    assert (table["true_positive"], table["false_positive"]) == (2, 1)
    assert (table["false_negative"], table["true_negative"]) == (1, 4)
    assert table["sensitivity"] == pytest.approx(2 / 3)
    assert table["specificity"] == pytest.approx(4 / 5)
    assert table["accuracy"] == pytest.approx(6 / 8)
    assert table["fisher_p"] == pytest.approx(scipy.stats.fisher_exact([[2, 1], [1, 4]])[1])
    # J = sens + spec - 1: the cut between 6.0 and 6.5 catches all 3 events with 1 FP
    assert youden_threshold(x, outcome) == pytest.approx(6.25)


@pytest.fixture(scope="module")
def evaluation_setup(spec):
    cohort = simulate_cohort(spec, 300, random_seed=21)
    return cohort, truth_fit_tree(spec, cohort)


def test_evaluation_at_the_truth_is_calibrated(spec, evaluation_setup):
    """With the posterior at the true values, the model's prediction intervals must hold the
    observed data: the KM curves inside the KM-VPC bands on most days, the observed
    pcVPC percentiles inside the simulated intervals in most bins, AUROC by Mann-Whitney."""
    cohort, tree = evaluation_setup
    result = evaluate_fit(tree, spec, replicates=100, bootstrap=200, random_seed=3)
    km = result["km_vpc"]
    inside = (km["observed"] >= km["simulated_lo"] - 1e-12) & (
        km["observed"] <= km["simulated_hi"] + 1e-12
    )
    assert inside.mean() > 0.85
    table = result["pcvpc"]
    hits = [
        (table[f"observed_p{p}"] >= table[f"simulated_p{p}_lo"])
        & (table[f"observed_p{p}"] <= table[f"simulated_p{p}_hi"])
        for p in ("5", "50", "95")
    ]
    assert np.mean(np.concatenate(hits)) > 0.75
    metrics = result["metrics"]
    subjects = result["subjects"]
    roc = subjects[subjects["in_roc"]]
    outcome = (roc["event"] == 1).to_numpy()
    x = roc["ln_auc_cl_median"].to_numpy()
    u = scipy.stats.mannwhitneyu(x[~outcome], x[outcome]).statistic
    assert metrics["auroc"] == pytest.approx(u / (outcome.sum() * (~outcome).sum()))
    assert metrics["excluded_early_colectomies"] == int(
        ((cohort.truth.event == 1) & (cohort.truth.observed_time_day < 28)).sum()
    )
    lo, hi = metrics["auroc_bootstrap_95"]
    assert lo <= metrics["auroc"] <= hi
    assert metrics["auroc"] > 0.6  # ln(AUC/CL) does predict colectomy in the model


def test_evaluate_cli_writes_figures_and_tables(spec, evaluation_setup, tmp_path, capsys):
    _, tree = evaluation_setup
    fit = tmp_path / "fit.nc"
    tree.to_netcdf(fit, engine="h5netcdf")
    out = tmp_path / "evaluation"
    code = main(
        [
            "evaluate",
            str(fit),
            "--out",
            str(out),
            "--replicates",
            "20",
            "--bootstrap",
            "50",
            "--format",
            "json",
        ]
    )
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"auroc", "youden_threshold", "classification_published_threshold"} <= set(metrics)
    for name in ("pcvpc.png", "km_vpc.png", "roc.png", "metrics.json", "pcvpc.csv", "km_vpc.csv"):
        assert (out / name).stat().st_size > 0
    assert main(["evaluate", str(tmp_path / "missing.nc"), "--out", str(out)]) == 2
    assert set(PARAMETER_NAMES) <= set(tree["posterior"].data_vars)
