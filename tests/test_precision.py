"""Stated precision: the reported Monte Carlo standard errors against the exact quadrature
posterior (asuc_bayes.inference.grid), and the adaptive run length that reaches the precision
target."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asuc_bayes.inference.diagnostics import monte_carlo_errors
from asuc_bayes.inference.forecast import (
    DERIVED,
    MAX_DRAWS_FACTOR,
    PRECISION_TARGET,
    Precision,
    SamplerSettings,
    exact_forecast,
    results_json,
    summary_mcse,
)
from asuc_bayes.inference.grid import grid_posterior

from conftest import MULTIMODAL_PATIENTS, REFERENCE_PATIENTS

TAILS = ("q2.5", "q97.5")


@pytest.fixture(scope="module")
def exact(spec):
    """Quadrature summaries (no Monte Carlo error) of the patients used here."""
    patients = {**REFERENCE_PATIENTS, **MULTIMODAL_PATIENTS}
    return {name: grid_posterior(spec, p).summary() for name, p in patients.items()}


@pytest.fixture(scope="module")
def adaptive(forecaster):
    """Default (adaptive) forecasts of the reference patients."""
    return {
        name: forecaster.forecast(patient, random_seed=3)
        for name, patient in REFERENCE_PATIENTS.items()
    }


def _worst_tail_ratio(summary) -> float:
    post = summary["posterior"]
    return max(post[q]["mcse"][k] / post[q]["sd"] for q in ("ln_auc_cl", "risk_90d") for k in TAILS)


@pytest.mark.parametrize("name", sorted(REFERENCE_PATIENTS))
def test_the_adaptive_run_meets_its_target_on_the_reference_patients(name, adaptive):
    result = adaptive[name]
    summary = result.summary()
    d = summary["diagnostics"]
    precision = d["precision"]
    assert result.status == "ok"
    assert precision["adaptive"] and precision["met"], precision
    assert precision["worst"] <= PRECISION_TARGET
    assert 1000 <= d["draws"] == precision["draws"] <= MAX_DRAWS_FACTOR * 1000
    # the reported S["mcse"] are those the rule judged (the same draws, the same formulas)
    assert _worst_tail_ratio(summary) == pytest.approx(precision["worst"], rel=1e-9)
    assert result.tree["posterior"]["eta"].shape == (4, d["draws"], 2)


def test_reported_mcse_is_calibrated_against_the_exact_posterior(adaptive, exact):
    """(estimate − exact) / MCSE over every reported mean and quantile of every quantity of the
    six reference patients: mean square ≈ 1 (0.5–1.6: 120 roughly normal z), none beyond 4."""
    z = [
        (result.summary()["posterior"][q][k] - exact[name][q][k])
        / result.summary()["posterior"][q]["mcse"][k]
        for name, result in adaptive.items()
        for q in DERIVED
        for k in ("mean", "q2.5", "q50", "q97.5")
    ]
    z = np.array(z)
    assert 0.5 < np.mean(z**2) < 1.6, np.mean(z**2)
    assert np.max(np.abs(z)) < 4


@pytest.mark.parametrize("seed", range(4))
def test_the_upper_tail_of_v_is_within_three_mcse_of_the_exact_value(seed, forecaster, exact):
    """The patient whose q97.5 of V scattered most (two modes, forced through MCMC): the
    sampled q97.5 is within 3 of its own MCSE of the quadrature value, at every seed."""
    name = "accelerated_two_samples"
    settings = SamplerSettings(method="nuts")  # MCMC, not the exact grid, on purpose
    summary = forecaster.forecast(
        MULTIMODAL_PATIENTS[name], random_seed=seed, settings=settings
    ).summary()
    v = summary["posterior"]["v"]
    assert summary["diagnostics"]["method"] == "independence_mh"
    assert abs(v["q97.5"] - exact[name]["v"]["q97.5"]) <= 3 * v["mcse"]["q97.5"]


def test_same_seed_same_adaptive_run(forecaster, adaptive):
    patient = REFERENCE_PATIENTS["alq_sample"]  # extended several times
    again = forecaster.forecast(patient, random_seed=3)
    first = adaptive["alq_sample"]
    assert first.diagnostics["draws"] > 1000
    assert np.array_equal(
        first.tree["posterior"]["eta"].values, again.tree["posterior"]["eta"].values
    )
    assert json.dumps(first.summary()) == json.dumps(again.summary())


def test_given_draws_fix_the_size_and_report_the_precision(forecaster):
    settings = SamplerSettings(draws=300)
    assert not settings.adaptive and settings.max_draws == 300
    result = forecaster.forecast(REFERENCE_PATIENTS["no_sample"], random_seed=1, settings=settings)
    precision = result.diagnostics["precision"]
    assert result.diagnostics["draws"] == precision["draws"] == 300
    assert not precision["adaptive"] and not precision["met"]  # 300 draws are too few
    assert precision["worst"] > PRECISION_TARGET


def test_exact_grid_mcse_is_that_of_independent_draws(spec, exact):
    """Exact grid: the statistics are quadrature values; S["mcse"] is the i.i.d. MCSE of the
    draws stored with them (SD/√N by hand), and the draws' quantiles lie within 3 of it.
    (A unimodal patient: where a quantile sits at the edge of a gap between two modes, the
    Beta-interval MCSE reads the order statistics on one side and can understate.)"""
    name = "several_samples"
    result = exact_forecast(
        spec, REFERENCE_PATIENTS[name], settings=SamplerSettings(draws=500), random_seed=2
    )
    summary = result.summary()
    for q in DERIVED:
        draws = result.tree["posterior"][q].values.ravel()
        mcse = summary["posterior"][q]["mcse"]
        assert mcse["mean"] == pytest.approx(np.std(draws, ddof=1) / np.sqrt(2000), rel=1e-9)
        assert summary["posterior"][q]["q97.5"] == pytest.approx(exact[name][q]["q97.5"])
        for k, p in (("q2.5", 0.025), ("q50", 0.5), ("q97.5", 0.975)):
            assert abs(np.quantile(draws, p) - exact[name][q][k]) <= 3 * mcse[k], (q, k)
    assert summary["diagnostics"]["precision"]["draws"] == 500


def test_undefined_mcse_is_null_in_json_and_constant_draws_have_none():
    rng = np.random.default_rng(1)
    draws = {name: rng.normal(size=(4, 100)) for name in DERIVED}
    draws["v"][0, 0] = np.inf  # SD undefined
    draws["cl"] = np.full((4, 100), 0.4)  # constant
    mcse = summary_mcse(draws)
    assert mcse["v"]["mean"] is None
    assert mcse["cl"]["mean"] < 1e-15  # the SD of 400 equal floats (ArviZ's too)
    assert (mcse["cl"]["q2.5"], mcse["cl"]["q50"], mcse["cl"]["q97.5"]) == (0.0, 0.0, 0.0)
    json.dumps(mcse, allow_nan=False)


def test_next_draws_follow_the_inverse_square_root_law():
    precision = Precision(0.05, 0.1, 1000, 8000, True)
    assert not precision.met
    assert precision.next_draws() == 4800  # 1000 x 1.2 x (0.1 / 0.05)²
    assert Precision(0.05, 0.051, 1000, 8000, True).next_draws() == 1300  # at least +25 %
    assert Precision(0.05, 0.3, 1000, 8000, True).next_draws() == 8000  # the cap
    assert Precision(0.05, np.inf, 1000, 8000, True).next_draws() == 8000
    assert Precision(0.05, np.inf, 1000, 8000, True).as_dict()["worst"] is None


def test_independent_precision_of_the_tails(spec):
    """run_precision with independent draws equals the i.i.d. formulas applied by hand."""
    from asuc_bayes.inference.forecast import derived_quantities, run_precision

    patient = REFERENCE_PATIENTS["several_samples"]
    eta = np.random.default_rng(5).normal(scale=0.3, size=(4, 500, 2))
    settings = SamplerSettings()
    precision = run_precision(spec, patient, eta, settings, independent=True)
    derived = derived_quantities(spec, patient, eta)
    values = np.stack([derived["ln_auc_cl"], derived["risk_90d"]], axis=-1)
    errors = monte_carlo_errors(values, (0.025, 0.975), independent=True)
    assert precision.worst == pytest.approx(np.max(errors.quantile / errors.sd), rel=1e-12)
    assert precision.draws == 500 and precision.max_draws == 8000 and precision.adaptive


def test_nuts_runs_are_extended_by_independent_pieces(forecaster):
    """sampler="nutpie": further NUTS runs appended along the draws; the sampler statistics
    follow, and the gates are judged on the whole run."""
    result = forecaster.forecast(
        REFERENCE_PATIENTS["no_sample"], random_seed=4, settings=SamplerSettings(sampler="nutpie")
    )
    d = result.diagnostics
    assert d["method"] == "nuts" and result.status == "ok"
    assert d["draws"] > 1000 and d["precision"]["draws"] == d["draws"]
    assert d["precision"]["met"] or d["draws"] == 8000
    assert result.tree["sample_stats"]["diverging"].shape == (4, d["draws"])
    json.dumps(results_json([result], result.spec), allow_nan=False)
