"""The cohort study: JSON contract, per-patient function, and checks on a simulated cohort."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asuc_bayes.spec import load_declaration
from asuc_bayes.studies.validation import validate_cohort, validate_patient
from asuc_bayes.studies.validation.simulation import (
    simulate_validation_cohort,
    with_scaled_parameter,
)
from asuc_bayes.studies.validation.study import validation_seed


def test_missing_covariates_skip_patients_with_the_reason():
    decl = load_declaration("niyigena2025")
    cohort = simulate_validation_cohort(decl, 4, random_seed=1)
    albumin = {p.id: {"ALB": (40.0, "g/L"), "ADA": 0} for p in cohort[:3]}
    result = validate_cohort(
        cohort, [decl, "wojciechowski2017"], covariates_of=albumin, random_seed=2
    )
    out = result.to_json()
    json.dumps(out, allow_nan=False)
    assert out["n_subjects"] == 3
    assert [s["id"] for s in out["skipped"]] == [cohort[3].id]
    assert "ALB" in out["skipped"][0]["reason"]
    assert [m["name"] for m in out["models"]] == ["niyigena2025", "wojciechowski2017"]
    model = out["models"][1]
    assert set(model) >= {"name", "a_priori", "bayesian", "npde", "outcome", "mean_weight"}
    assert set(model["a_priori"]) >= {"mpe", "rmse", "within_20", "within_30", "coverage_90"}
    assert "map_coverage_90" in model["bayesian"]
    assert model["max_log_marginal_mcse"] > 0  # four random effects: importance sampling
    assert model["min_importance_ess"] > 500
    assert model["max_pareto_k"] < 0.7
    assert out["models"][0]["min_importance_ess"] is None  # two: quadrature
    weights = [m["mean_weight"] for m in out["models"]]
    assert sum(weights) == pytest.approx(1.0)
    assert sum(out["average"]["stacking"].values()) == pytest.approx(1.0)


def test_one_patient_at_a_time_gives_the_cohort_result():
    decl = load_declaration("niyigena2025")
    cohort = simulate_validation_cohort(decl, 2, random_seed=5)
    result = validate_cohort(cohort, [decl], random_seed=3)
    seed = validation_seed(3, cohort[1].id)
    alone = validate_patient(cohort[1], [decl], random_seed=seed)
    assert alone.fits[0].log_marginal == result.patients[1].fits[0].log_marginal
    np.testing.assert_array_equal(alone.fits[0].npde, result.patients[1].fits[0].npde)


def test_bad_model_lists_have_clear_errors():
    with pytest.raises(ValueError, match="at least one model"):
        validate_cohort([], [])
    decl = load_declaration("niyigena2025")
    with pytest.raises(ValueError, match="distinct"):
        validate_cohort([], [decl, decl])


@pytest.mark.slow
def test_simulating_model_is_calibrated_and_preferred():
    """100 patients with 2-4 samples from niyigena2025 (~200 Bayesian forecasts)."""
    decl = load_declaration("niyigena2025")
    cohort = simulate_validation_cohort(decl, 100, random_seed=11)
    result = validate_cohort(cohort, [decl, with_scaled_parameter(decl, "CL", 3.0)], random_seed=1)
    own, wrong = result.to_json()["models"]
    assert own["bayesian"]["n"] >= 180
    assert 0.85 <= own["bayesian"]["coverage_90"] <= 0.95
    assert 0.85 <= own["a_priori"]["coverage_90"] <= 0.95
    # NPDE ~ N(0, 1) within Monte Carlo error: mean SE 1/√n, variance SE ≈ √(2/(n-1))
    n = own["npde"]["n"]
    assert n == own["a_priori"]["n"]
    assert abs(own["npde"]["mean"]) < 3.3 / np.sqrt(n)
    assert abs(own["npde"]["variance"] - 1.0) < 3.3 * np.sqrt(2.0 / (n - 1))
    assert own["npde"]["p_value"] > 0.01
    # 2-4 samples and a CL IIV of 72 % CV: one patient discriminates weakly, the cohort strongly
    assert own["mean_weight"] > 0.6 > 0.4 > wrong["mean_weight"]
    assert own["log_marginal_total"] > wrong["log_marginal_total"] + 10.0
    average = result.to_json()["average"]
    assert average["stacking"][own["name"]] > 0.5
    assert average["likelihood"][own["name"]] > average["likelihood"][wrong["name"]]
    assert wrong["npde"]["p_value"] < 1e-3
    # the model-averaged forecasts are calibrated too (they lean on the right model)
    assert 0.85 <= average["bayesian"]["coverage_90"] <= 0.95
