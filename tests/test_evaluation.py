"""The paper's evaluation: statistics against scipy/lifelines/hand computations, and the
whole `evaluate` pipeline on a fit tree built from simulated truth (no sampling needed)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import scipy.stats

from asuc_bayes.inference.population_draws import PARAMETER_NAMES
from asuc_bayes.interfaces.cli import main
from asuc_bayes.studies.evaluation import (
    auroc,
    classification,
    evaluate_fit,
    kaplan_meier,
    roc_curve,
    youden_threshold,
)
from asuc_bayes.studies.simulate import simulate_cohort

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


def test_evaluate_cli_writes_figures_and_tables(spec, tmp_path, capsys):
    tree = truth_fit_tree(spec, simulate_cohort(spec, 60, random_seed=21))
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


def test_pk_only_ln_ratios_ignore_the_outcomes(spec):
    """Changing a subject's colectomy record leaves its pk-only ln ratio unchanged (same
    seed: identical draws), while the ratios track the truth and the standard quadrature
    forecast of that subject (401² grid at the published values, independent of the fit)."""
    from asuc_bayes.inference.grid import grid_posterior
    from asuc_bayes.inference.population import cohort_of_fit
    from asuc_bayes.studies.evaluation import pk_only_ln_ratios

    cohort = simulate_cohort(spec, 12, random_seed=5)
    tree = truth_fit_tree(spec, cohort)
    before = pk_only_ln_ratios(tree, spec, n_draws=300, random_seed=1)
    changed = tree.copy(deep=True)
    observed = changed["observed_data"].to_dataset()
    constant = changed["constant_data"].to_dataset()
    flipped = observed["colectomy"].values.copy()
    flipped[0] = 1 - flipped[0]
    observed["colectomy"] = (("subject",), flipped)
    times = constant["event_time_day"].values.copy()
    times[0] = 40.0
    constant["event_time_day"] = (("subject",), times)
    changed["observed_data"], changed["constant_data"] = observed, constant
    after = pk_only_ln_ratios(changed, spec, n_draws=300, random_seed=1)
    np.testing.assert_array_equal(before, after)
    # the joint posterior's ratios of the same tree are what the fit stored, not these
    assert not np.allclose(
        np.median(before, axis=0),
        np.median(tree["posterior"]["ln_auc_cl"].values.reshape(-1, 12), axis=0),
    )
    patient = cohort_of_fit(tree).patients()[3]
    reference = grid_posterior(spec, patient, n_points=201).summary()["ln_auc_cl"]
    assert np.median(before[:, 3]) == pytest.approx(reference["q50"], abs=0.2 * reference["sd"])


def test_evaluation_names_its_ln_ratio_source(spec, evaluation_setup):
    _, tree = evaluation_setup
    joint = evaluate_fit(tree, spec, replicates=10, bootstrap=20, ln_ratio_source="joint")
    assert joint["metrics"]["ln_ratio_source"] == "joint"
    x = np.median(tree["posterior"]["ln_auc_cl"].values.reshape(-1, 300), axis=0)
    np.testing.assert_allclose(joint["subjects"]["ln_auc_cl_median"], x)
    with pytest.raises(ValueError, match="ln_ratio_source"):
        evaluate_fit(tree, spec, replicates=10, bootstrap=20, ln_ratio_source="ebe")


def test_pcvpc_percentiles_use_uncensored_data_and_censoring_has_its_own_panel(
    spec, evaluation_setup
):
    """Against a hand computation: the typical prediction from the kernels, the correction
    capped at 10, percentiles of the measured records only; censored fractions by counting;
    axis limits bounded and holding every plotted value."""
    from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ
    from asuc_bayes.inference.population import cohort_of_fit
    from asuc_bayes.pk.kernels import concentration, individual_pk_parameters
    from asuc_bayes.studies.evaluation import pcvpc, pcvpc_axis_limits

    _, tree = evaluation_setup
    posterior = tree["posterior"].to_dataset()
    data = cohort_of_fit(tree)
    table = pcvpc(spec, data, posterior, replicates=30, random_seed=2)
    medians = {n: float(np.median(posterior[n])) for n in ("theta_cl", "theta_v")}
    pk = spec.pk
    typical = replace(
        pk,
        theta_cl=replace(pk.theta_cl, estimate=medians["theta_cl"]),
        theta_v=replace(pk.theta_v, estimate=medians["theta_v"]),
        crp_exponent_cl=replace(
            pk.crp_exponent_cl, estimate=float(np.median(posterior["crp_exponent_cl"]))
        ),
    )
    pred = np.empty(data.obs_time_day.size)
    for k, (i, t) in enumerate(zip(data.obs_subject, data.obs_time_day, strict=True)):
        cl, v = individual_pk_parameters(typical, data.weight_kg[i], data.crp_mg_l[i], 0.0, 0.0)
        keep = data.dose_amount_mg[i] > 0
        pred[k] = concentration(
            np.array([t]),
            data.dose_time_day[i][keep],
            data.dose_amount_mg[i][keep],
            data.dose_duration_day[i][keep],
            np.float64(cl),
            np.float64(v),
        )[0]
    edges = np.append(table["time_low_day"].to_numpy(), table["time_high_day"].iloc[-1])
    bins = np.clip(np.searchsorted(edges, data.obs_time_day, side="right") - 1, 0, len(table) - 1)
    measured = data.obs_censoring == 0
    for b, row in table.iterrows():
        in_bin = bins == b
        factor = np.clip(np.median(pred[in_bin]) / pred[in_bin], 0.1, 10.0)
        corrected_all = data.obs_value_mg_l[in_bin] * factor
        corrected = corrected_all[measured[in_bin]]
        for p in (5, 50, 95):
            assert row[f"observed_p{p}"] == pytest.approx(np.percentile(corrected, p), rel=1e-6)
        assert row["observed_below_lloq_fraction"] == pytest.approx(
            np.mean(data.obs_censoring[in_bin] == BELOW_LLOQ)
        )
        assert row["observed_above_uloq_fraction"] == pytest.approx(
            np.mean(data.obs_censoring[in_bin] == ABOVE_ULOQ)
        )
        assert row["n_uncensored"] == measured[in_bin].sum()
        # censored records would sit at their limits: none of the percentiles is one
        limits = corrected_all[~measured[in_bin]]
        for p in (5, 50, 95):
            assert not np.any(np.isclose(row[f"observed_p{p}"], limits, rtol=1e-9))
        assert row["simulated_below_lloq_lo"] <= row["simulated_below_lloq_hi"]
    low, high = pcvpc_axis_limits(table)
    plotted = table.filter(regex="^(observed|simulated)_p").to_numpy(dtype=float)
    assert low <= np.nanmin(plotted) and np.nanmax(plotted) <= high
    assert 0 < low and high / low < 1e4  # not 1e-7 .. 1e3


def test_prediction_correction_cannot_explode():
    from asuc_bayes.studies.evaluation import _prediction_correction

    pred = np.array([1e-30, 0.0, 5.0, 10.0, 20.0, 1e6])
    factor = _prediction_correction(pred, np.zeros(6, dtype=int), 1)
    assert np.all(np.isfinite(factor)) and factor.max() == 10.0 and factor.min() == 0.1
    np.testing.assert_allclose(factor[2:5], [7.5 / 5, 7.5 / 10, 7.5 / 20])
