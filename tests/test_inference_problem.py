"""The generic patient problem: log posterior against grid.py, parameters against the spec
layer, the PyMC graph against NumPy, covariate errors and imputations, the JSON result."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from asuc_bayes.data.dataset import BELOW_LLOQ, Dose, Observation, Patient
from asuc_bayes.inference import (
    PatientProblem,
    SamplerOptions,
    derived_quantities,
    forecast_library_patient,
)
from asuc_bayes.inference.grid import log_posterior as grid_log_posterior
from asuc_bayes.inference.pymc_model import build_pymc_model
from asuc_bayes.pk import DoseArrays, kernels
from asuc_bayes.spec import MissingCovariateError, individual_parameters, load_declaration
from asuc_bayes.spec.config import load_model

from conftest import REFERENCE_PATIENTS

#: One plausible patient's covariates for every library model (in the models' units).
LIBRARY_COVARIATES = {
    "niyigena2025": {"WT": 63.0, "CRP": 45.0},
    "wojciechowski2017": {"WT": 58.0, "ALB": (32.0, "g/L"), "ADA": 1},
    "fasanmade2009": {"WT": 80.0, "ALB": 3.6, "ATI": 0, "SEX": 1},
    "fasanmade2011": {"WT": 30.0, "ALB": 3.9, "IMM": 1, "ATI": 0},
    "faelens2021": {"MAYO_E": 3, "CS": 1, "FFM": 48.0, "EXTCOL": 0},
}

DOSES = DoseArrays(
    start_day=[0.0, 14.0, 42.0], amount_mg=[400.0, 400.0, 400.0], duration_day=[1 / 12] * 3
)


def _problem(name: str) -> PatientProblem:
    return PatientProblem.build(
        load_declaration(name),
        DOSES,
        time_day=[1.0, 13.9, 20.0, 41.9],
        value_mg_l=[60.0, 8.0, 25.0, 0.5],
        censoring=[-1, 0, 0, BELOW_LLOQ],  # an ALQ (ULOQ 60) and a BLQ (LLOQ 0.5) record
        covariates=LIBRARY_COVARIATES[name],
    )


def test_every_library_model_has_covariates_here():
    from asuc_bayes.spec import available_declarations

    assert set(available_declarations()) == set(LIBRARY_COVARIATES)


@pytest.mark.parametrize("name", sorted(REFERENCE_PATIENTS))
def test_niyigena_log_posterior_equals_grid_up_to_the_prior_normaliser(name):
    """grid.py's log prior omits −½(d ln 2π + ln|Ω|); the likelihoods are the same."""
    patient = REFERENCE_PATIENTS[name]
    spec = load_model()
    problem = PatientProblem.from_patient(load_declaration("niyigena2025"), patient)
    eta = np.random.default_rng(3).normal(0.0, 0.8, (200, 2))
    ours = problem.log_posterior(eta)
    reference = grid_log_posterior(spec, patient, eta[:, 0], eta[:, 1])
    omega = np.diag([spec.pk.omega_cl**2, spec.pk.omega_v**2])
    constant = -0.5 * (2 * math.log(2 * math.pi) + math.log(np.linalg.det(omega)))
    # rtol: far from the data the log likelihood reaches -1e22, where the constant is lost
    np.testing.assert_allclose(ours, reference + constant, rtol=1e-13, atol=1e-9)
    assert np.sum(np.abs(reference) < 1e3) > 100


@pytest.mark.parametrize("name", sorted(LIBRARY_COVARIATES))
def test_parameters_equal_the_spec_layers_individual_parameters(name):
    problem = _problem(name)
    decl = problem.declaration
    eta = np.random.default_rng(4).normal(0.0, 0.5, (7, problem.n_eta))
    ours = problem.parameters(eta)
    reference = individual_parameters(decl, LIBRARY_COVARIATES[name], eta)
    assert set(ours) == set(reference)
    for key in reference:
        np.testing.assert_allclose(ours[key], np.broadcast_to(reference[key], (7,)), rtol=1e-13)


def test_one_compartment_prediction_equals_the_independent_kernel():
    """kernels.concentration (tested against an ODE solver) vs the pk layer via the problem."""
    patient = REFERENCE_PATIENTS["several_samples"]
    problem = PatientProblem.from_patient(load_declaration("niyigena2025"), patient)
    eta = np.array([[0.3, -0.2]])
    p = problem.parameters(eta)
    expected = kernels.concentration(
        patient.obs_time_day,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        p["CL"],
        p["V"],
    )
    np.testing.assert_allclose(problem.predict(eta), expected, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(LIBRARY_COVARIATES))
def test_pymc_log_density_equals_numpy(name):
    problem = _problem(name)
    model = build_pymc_model(problem)
    assert model.coords["random_effect"] == problem.eta_names
    logp = model.compile_logp(mode="FAST_COMPILE")  # Python ops: no C compilation
    rng = np.random.default_rng(5)
    for eta in rng.normal(0.0, 0.7, (5, problem.n_eta)):
        ours = float(problem.log_posterior(eta[None, :])[0])
        assert abs(float(logp({"eta": eta})) - ours) <= 1e-10 * max(1.0, abs(ours))


def test_missing_covariate_gets_the_declarations_error():
    patient = REFERENCE_PATIENTS["one_sample"]
    with pytest.raises(MissingCovariateError, match=r"ALB .*impute"):
        forecast_library_patient("wojciechowski2017", patient, {"ADA": 0})


def test_explicit_imputation_is_reported_and_json_is_finite():
    patient = REFERENCE_PATIENTS["several_samples"]
    result = forecast_library_patient(
        "wojciechowski2017",
        patient,
        {"ADA": 0},
        impute={"ALB": 4.0},
        attach_outcome=True,
        random_seed=2,
        options=SamplerOptions(draws=500),
    )
    out = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert out["imputed"] == [
        {"covariate": "ALB", "value": 4.0, "unit": "g/dL", "reason": "requested value"}
    ]
    assert out["outcome"]["extrapolated"] is True
    assert out["outcome"]["source_model"] == "niyigena2025"
    assert list(out["eta"]) == ["eta_CL", "eta_V1", "eta_Q", "eta_V2"]
    assert len(out["map"]["eta"]) == 4 and set(out["map"]["parameters"]) == {"CL", "V1", "Q", "V2"}
    assert set(out["posterior"]) == {"cl", "v", "auc_w2_4", "ln_auc_cl", "risk_90d"}
    assert out["risk_class"] == ("high" if out["p_high_risk"] >= 0.5 else "low")
    # the table: pred is the typical patient's prediction, ipred the MAP's
    problem = PatientProblem.from_patient(
        load_declaration("wojciechowski2017"), patient, {"ADA": 0, "ALB": 4.0}
    )
    points = np.stack([np.zeros(4), np.asarray(out["map"]["eta"])])
    pred, ipred = problem.predict(points)
    assert [o["time"] for o in out["observations"]] == patient.obs_time_day.tolist()
    np.testing.assert_allclose([o["pred"] for o in out["observations"]], pred, rtol=1e-12)
    np.testing.assert_allclose([o["ipred"] for o in out["observations"]], ipred, rtol=1e-12)
    # MAP derived values are those of the MAP η
    d = derived_quantities(problem, np.asarray(out["map"]["eta"]))
    assert out["map"]["cl"] == pytest.approx(float(d.cl), rel=1e-12)
    assert out["map"]["v"] == pytest.approx(float(d.parameters["V1"]), rel=1e-12)


def test_model_without_outcome_has_null_risk():
    patient = Patient(
        "x",
        70.0,
        30.0,
        (Dose(0.0, 350.0, 1 / 12), Dose(14.0, 350.0, 1 / 12)),
        (Observation(13.9, 6.0),),
    )
    result = forecast_library_patient(
        "fasanmade2009",
        patient,
        {"ALB": 4.0, "ATI": 0, "SEX": 0},
        random_seed=1,
        options=SamplerOptions(draws=500),
    )
    out = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert out["posterior"]["risk_90d"] is None and out["p_high_risk"] is None
    assert out["risk_class"] is None and out["outcome"] is None
    assert out["posterior"]["ln_auc_cl"]["mean"] is not None


def test_bad_observations_get_a_clear_error():
    decl = load_declaration("niyigena2025")
    with pytest.raises(ValueError, match="censoring codes"):
        PatientProblem.build(
            decl,
            DOSES,
            time_day=[1.0],
            value_mg_l=[3.0],
            censoring=[2],
            covariates={"WT": 70.0, "CRP": 30.0},
        )


@pytest.mark.parametrize("name", sorted(LIBRARY_COVARIATES))
def test_log_likelihood_equals_the_residual_layers_per_record_sum(name):
    from asuc_bayes.spec.residual import observation_log_likelihood, residual_form

    problem = _problem(name)
    eta = np.random.default_rng(8).normal(0.0, 0.6, (20, problem.n_eta))
    residual = problem.declaration.residual
    expected = observation_log_likelihood(
        residual_form(residual.form),
        problem.value_mg_l,
        problem.censoring,
        problem.predict(eta),
        residual.sd(),
    ).sum(axis=-1)
    np.testing.assert_allclose(problem.log_likelihood(eta), expected, rtol=1e-13)
