"""MAP versus full Bayes: calibration of the posterior on simulated truth, Laplace, LOO checks."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from asuc_bayes.data.dataset import BELOW_LLOQ, MEASURED, Observation
from asuc_bayes.inference.forecast import derived_quantities
from asuc_bayes.inference.grid import log_posterior
from asuc_bayes.interfaces.cli import main
from asuc_bayes.studies.comparison import (
    SCENARIOS,
    calibration_bins,
    compare_patient,
    laplace_draws,
    predictive_check,
    run_study,
    simulate_scenario,
)

from conftest import REFERENCE_PATIENTS


@pytest.fixture(scope="module")
def studies(spec, forecaster):
    return {
        name: run_study(spec, name, 60, random_seed=11, forecaster=forecaster)
        for name in ("two_samples", "trough_week2")
    }


def test_posterior_intervals_are_calibrated_on_simulated_truth(studies):
    """Simulated from the model itself, the posterior's central intervals must cover the
    truth at their nominal rate (pooled over 120 patients, within 3 binomial SEs). The
    Laplace coverage is reported, not asserted."""
    tables = [s.table for s in studies.values()]
    n = sum(len(t) for t in tables)
    for quantity in ("ln_auc_cl", "cl"):
        for level in (0.5, 0.8, 0.9, 0.95):
            column = f"posterior_covers_{round(level * 100)}_{quantity}"
            covered = sum(int(t[column].sum()) for t in tables)
            se = np.sqrt(level * (1 - level) / n)
            assert abs(covered / n - level) <= 3 * se, (quantity, level, covered / n)
    # the engine's own target: >= 99 % of simulated patients pass every gate
    assert sum(s.metrics["unconverged"] for s in studies.values()) <= 0.01 * n + 1
    for study in studies.values():
        print(study.scenario.name, "Laplace 90% coverage", study.metrics["map"]["coverage_90_cl"])


def test_study_metrics_equal_a_recomputation_from_the_table(studies, spec):
    study = studies["two_samples"]
    table, metrics = study.table, study.metrics
    outcome = table["colectomy_90d"].to_numpy(dtype=float)
    brier = np.mean((table["posterior_mean_risk_90d"].to_numpy() - outcome) ** 2)
    assert metrics["posterior"]["brier"] == pytest.approx(brier)
    error = table["map_ln_auc_cl"] - table["true_ln_auc_cl"]
    assert metrics["map"]["rmse_ln_auc_cl"] == pytest.approx(float(np.sqrt(np.mean(error**2))))
    true_high = table["true_ln_auc_cl"] < spec.tte.high_risk_threshold
    map_high = table["map_ln_auc_cl"] < spec.tte.high_risk_threshold
    accuracy = float((true_high == map_high).mean())
    assert metrics["map"]["classification"]["accuracy"] == pytest.approx(accuracy)
    json.dumps(study.to_json())  # JSON-ready


def test_simulated_scenarios_follow_their_design(spec):
    patients, truth = simulate_scenario(spec, SCENARIOS["blq"], 30, random_seed=3)
    assert len(patients) == 30
    for patient in patients:
        (obs,) = patient.observations
        assert obs.censoring == BELOW_LLOQ and obs.value_mg_l == 2.0 and obs.time_day == 28.0
        eta = truth.loc[patient.id, ["eta_cl", "eta_v"]].to_numpy(dtype=float)
        recomputed = derived_quantities(spec, patient, eta[None, :])
        assert truth.loc[patient.id, "ln_auc_cl"] == pytest.approx(recomputed["ln_auc_cl"][0])
    patients, truth = simulate_scenario(spec, SCENARIOS["no_sample"], 400, random_seed=4)
    assert all(not p.observations for p in patients)
    # colectomy outcomes are Bernoulli(true risk): the rate is within 3 SE of the mean risk
    risk = truth["risk_90d"].to_numpy()
    se = np.sqrt(np.sum(risk * (1 - risk))) / len(risk)
    assert abs(truth["colectomy_90d"].mean() - risk.mean()) <= 3 * se
    again, _ = simulate_scenario(spec, SCENARIOS["no_sample"], 400, random_seed=4)
    assert again == patients


def test_laplace_covariance_is_the_inverse_hessian_of_the_independent_density(spec, forecaster):
    patient = REFERENCE_PATIENTS["several_samples"]
    result = forecaster.forecast(patient, random_seed=2)
    points = result.tree["point_estimates"]
    mode = points["eta"].sel(estimate="map").values
    covariance = points["laplace_covariance"].values
    step = 1e-4
    hessian = np.empty((2, 2))
    for i in range(2):
        for j in range(2):

            def f(di, dj, i=i, j=j):
                x = mode.copy()
                x[i] += di
                x[j] += dj
                return float(log_posterior(spec, patient, x[0], x[1]))

            hessian[i, j] = (f(step, step) - f(step, -step) - f(-step, step) + f(-step, -step)) / (
                4 * step**2
            )
    np.testing.assert_allclose(covariance, np.linalg.inv(-hessian), rtol=1e-3)
    draws = laplace_draws(spec, result, n=20000, random_seed=1)
    # CL is log-linear in η_CL: its Laplace median is the MAP CL
    assert np.median(draws["cl"]) == pytest.approx(
        float(points["cl"].sel(estimate="map")), rel=0.02
    )


def test_loo_check_of_a_single_sample_is_its_prior_predictive_tail(spec, forecaster):
    """With one sample, leaving it out leaves the prior: the LOO tail probability (by
    quadrature) must equal the prior predictive tail probability computed by plain Monte
    Carlo over prior draws."""
    base = REFERENCE_PATIENTS["one_sample"]
    (obs,) = base.observations
    result = forecaster.forecast(base, random_seed=5, settings=None)
    (check,) = predictive_check(spec, result)
    rng = np.random.default_rng(9)
    eta = rng.normal(0.0, [spec.pk.omega_cl, spec.pk.omega_v], size=(200_000, 2))
    prior = derived_quantities(spec, base, eta)
    from asuc_bayes.pk.kernels import concentration

    f = concentration(
        np.array([obs.time_day]),
        base.dose_time_day,
        base.dose_amount_mg,
        base.dose_duration_day,
        prior["cl"],
        prior["v"],
    )[:, 0]
    sd = spec.pk.residual_sd.estimate
    cdf = float(np.mean(scipy.stats.norm.cdf(obs.value_mg_l, loc=f, scale=sd * f)))
    expected = 2 * min(cdf, 1 - cdf)
    assert check["tail_probability"] == pytest.approx(expected, abs=0.01)


def test_an_implausible_concentration_is_flagged(spec, forecaster):
    base = REFERENCE_PATIENTS["several_samples"]
    observations = list(base.observations)
    first = observations[0]
    observations[0] = Observation(first.time_day, first.value_mg_l * 12.0, MEASURED)
    patient = replace(base, id="outlier", observations=tuple(observations))
    comparison = compare_patient(spec, forecaster.forecast(patient, random_seed=3))
    assert comparison["predictive_check"][0]["surprising"]
    assert "surprising_observation" in comparison["flags"]
    plain = compare_patient(spec, forecaster.forecast(base, random_seed=3))
    assert "surprising_observation" not in plain["flags"]


def test_flags_follow_their_definitions(studies, spec, forecaster):
    table = studies["trough_week2"].table
    threshold = spec.tte.high_risk_threshold
    differ = (table["map_ln_auc_cl"] < threshold) != (table["p_high_risk"] >= 0.5)
    assert differ.any(), "the study should contain MAP/posterior disagreements to test"
    patient_id = differ[differ].index[0]
    patients, _ = simulate_scenario(spec, SCENARIOS["trough_week2"], 60, random_seed=11)
    patient = next(p for p in patients if p.id == patient_id)
    comparison = compare_patient(spec, forecaster.forecast(patient, random_seed=1))
    if comparison["map_class"] != comparison["posterior_class"]:
        assert "different_class" in comparison["flags"]
    else:
        assert "different_class" not in comparison["flags"]
    uncertain = 0.2 <= comparison["p_high_risk"] <= 0.8
    assert ("uncertain_class" in comparison["flags"]) == uncertain


def test_calibration_bins_partition_the_patients():
    rng = np.random.default_rng(0)
    predicted = rng.uniform(size=200)
    outcome = rng.uniform(size=200) < predicted
    bins = calibration_bins(predicted, outcome, n_bins=5)
    assert bins["n"].sum() == 200
    assert np.all(np.diff(bins["predicted"].to_numpy()) > 0)
    assert np.all(np.abs(bins["observed"] - bins["predicted"]) < 0.2)


def test_cli_compare_json_and_files(tmp_path, capsys):
    options = ["--n", "4", "--scenario", "day7", "--format", "json", "--seed", "2"]
    code = main(["compare", *options, "--out", str(tmp_path), "--quiet"])
    assert code == 0
    (scenario,) = json.loads(capsys.readouterr().out)
    assert scenario["scenario"] == "day7" and scenario["n"] == 4
    for method in ("posterior", "map"):
        assert set(scenario[method]) >= {
            "coverage_90_ln_auc_cl",
            "coverage_90_cl",
            "rmse_ln_auc_cl",
            "brier",
        }
    for name in ("coverage.png", "calibration.png", "patients-day7.csv", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "coverage.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_compare_patient(capsys):
    assert main(["compare-patient", "--example", "--id", "P05", "--format", "json"]) == 0
    (patient,) = json.loads(capsys.readouterr().out)["patients"]
    assert patient["id"] == "P05"
    assert set(patient["risk_90d"]) >= {"map_plug_in", "posterior_mean", "posterior_95"}
    assert main(["compare-patient", "--example", "--id", "P05"]) == 0
    assert "MAP plug-in" in capsys.readouterr().out


def test_cli_compare_rejects_bad_options(capsys):
    assert main(["compare", "--n", "0"]) == 2
    assert "--n 0: must be an integer from 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare", "--scenario", "nonsense"])


# Dask's scheduler start-up leaves a socket for the garbage collector (a ResourceWarning inside
# Dask, reported as unraisable; see tests/test_batch.py): not ours to fix.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_study_on_a_local_cluster_equals_this_process(spec, forecaster):
    """The cohort study through the engine (2 worker processes) gives the same table."""
    from asuc_bayes.inference.engine import Engine

    here = run_study(spec, "two_samples", 6, random_seed=5, forecaster=forecaster)
    with Engine(workers=2) as engine:
        distributed = run_study(spec, "two_samples", 6, random_seed=5, engine=engine)
    pd.testing.assert_frame_equal(distributed.table, here.table)
    # (json: a metric undefined for 6 patients is NaN, which == would call unequal)
    assert json.dumps(distributed.metrics, sort_keys=True) == json.dumps(
        here.metrics, sort_keys=True
    )
