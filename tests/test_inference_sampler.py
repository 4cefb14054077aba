"""The generic posterior: against the exact 2-D quadrature (Niyigena 2025) and against a long
NUTS run on the PyMC graph (Wojciechowski 2017, four random effects), within Monte Carlo
standard errors; the gates and the NUTS fallback."""

from __future__ import annotations

import numpy as np
import pytest

from asuc_bayes.data.dataset import Dose, Observation, Patient
from asuc_bayes.inference import (
    PatientProblem,
    SamplerOptions,
    find_map,
    forecast_library_patient,
    independence_draws,
)
from asuc_bayes.inference.diagnostics import rank_diagnostics
from asuc_bayes.inference.grid import grid_posterior
from asuc_bayes.spec import load_declaration
from asuc_bayes.spec.config import load_model

from conftest import REFERENCE_PATIENTS

#: Tolerance in Monte Carlo standard errors (a 4-MCSE miss has probability ~6e-5 per check).
Z = 4.0
STATS = (("mean", None), ("q2.5", 0.025), ("q50", 0.5), ("q97.5", 0.975))


def _ess(draws: np.ndarray) -> float:
    return float(rank_diagnostics(np.asarray(draws, dtype=float)[..., None])[1][0])


def assert_agrees(draws: np.ndarray, reference: dict, slack: float = 0.0) -> None:
    """Mean within Z MCSE (sd / sqrt(ESS)); quantile q within the draws' quantiles at
    q ± Z sqrt(q (1 − q) / ESS) (the quantile MCSE of Vehtari et al. 2021). ``slack``: the
    reference's own error (quadrature), in the quantity's units."""
    draws = np.asarray(draws, dtype=float)  # (chain, draw)
    ess = _ess(draws)
    flat = draws.ravel()
    for key, q in STATS:
        if q is None:
            tol = Z * flat.std(ddof=1) / np.sqrt(ess) + slack
            assert abs(flat.mean() - reference[key]) <= tol, (key, flat.mean(), reference[key])
        else:
            half = Z * np.sqrt(q * (1 - q) / ess)
            lo, hi = np.quantile(flat, [max(q - half, 0.0), min(q + half, 1.0)])
            assert lo - slack <= reference[key] <= hi + slack, (key, lo, hi, reference[key])


@pytest.mark.parametrize("name", ["one_sample", "several_samples", "blq_sample"])
def test_niyigena_posterior_agrees_with_the_exact_grid(name):
    patient = REFERENCE_PATIENTS[name]
    result = forecast_library_patient("niyigena2025", patient, random_seed=11)
    assert result.status == "ok" and result.diagnostics["method"] == "independence_mh"
    exact = grid_posterior(load_model(), patient, n_points=301).summary()
    for key in ("cl", "v", "auc_w2_4", "ln_auc_cl", "risk_90d"):
        draws = getattr(result.draws, key).reshape(result.eta.shape[:2])
        assert_agrees(draws, exact[key], slack=1e-4 * exact[key]["sd"])
    out = result.to_json()
    p_tol = Z * np.sqrt(exact["p_high_risk"] * (1 - exact["p_high_risk"]) / 1000) + 1e-3
    assert abs(out["p_high_risk"] - exact["p_high_risk"]) <= p_tol
    # the JSON's eta S are the draws' (model-file names)
    assert out["eta"]["eta_CL"]["mean"] == pytest.approx(result.eta[..., 0].mean())


def _wojciechowski_problem() -> PatientProblem:
    patient = Patient(
        "w4",
        64.0,
        30.0,
        tuple(Dose(t, 350.0, 1 / 12) for t in (0.0, 14.0, 42.0)),
        (Observation(2.0, 45.0), Observation(13.9, 5.0), Observation(27.0, 9.0)),
    )
    return PatientProblem.from_patient(
        load_declaration("wojciechowski2017"), patient, {"ALB": 3.4, "ADA": 0}
    )


@pytest.mark.slow  # a long NUTS run (PyMC, C compilation): ~1-2 min on a loaded machine
def assert_agrees_with_reference_draws(eta: np.ndarray, reference: np.ndarray) -> None:
    """Each η of ``eta`` against a long reference run ``reference`` (both (chain, draw, n_eta)),
    with the reference's own Monte Carlo error added (its ESS ~ 4 x ours or more)."""
    for i in range(reference.shape[-1]):
        ref = reference[..., i].ravel()
        q = np.quantile(ref, [0.025, 0.5, 0.975])
        ref_mcse = ref.std(ddof=1) / np.sqrt(_ess(reference[..., i]))
        summary = {"mean": ref.mean(), "q2.5": q[0], "q50": q[1], "q97.5": q[2]}
        assert_agrees(eta[..., i], summary, slack=Z * ref_mcse)


def test_wojciechowski_imh_agrees_with_a_long_nuts_run():
    from asuc_bayes.inference.pymc_model import nuts_draws

    problem = _wojciechowski_problem()
    mode = find_map(problem.log_posterior, problem.omega)
    eta, info = independence_draws(problem.log_posterior, mode, problem.omega, random_seed=5)
    assert info["passed"]
    long = SamplerOptions(draws=5000, tune=1000, chains=4)
    reference, checks = nuts_draws(problem, start=mode.eta, options=long, random_seed=6)
    assert checks["passed"], checks
    assert_agrees_with_reference_draws(eta, reference)


def test_imh_gates_pass_for_four_random_effects():
    problem = _wojciechowski_problem()
    mode = find_map(problem.log_posterior, problem.omega)
    eta, info = independence_draws(problem.log_posterior, mode, problem.omega, random_seed=3)
    assert eta.shape == (4, 1000, 4)
    assert info["passed"] and info["rhat_max"] <= 1.01 and info["ess_bulk_min"] >= 400


@pytest.mark.slow  # PyMC's C compilation of the fallback: ~25 s on a loaded machine
def test_failed_gates_fall_back_to_nuts_and_are_flagged():
    """Too few draws for the ESS gate: IMH fails it, NUTS runs, and its result (which cannot
    pass either) is flagged unconverged, never reported as ok."""
    patient = REFERENCE_PATIENTS["one_sample"]
    options = SamplerOptions(draws=60, tune=60, chains=2)
    result = forecast_library_patient("niyigena2025", patient, random_seed=4, options=options)
    d = result.to_json()["diagnostics"]
    # two IMH attempts (Laplace, then moment-matched proposal) before NUTS
    assert d["attempts"] == 3 and d["method"] == "nuts" and d["sampler"] == "pymc"
    assert d["ess_bulk_min"] < 400
    assert result.status == "unconverged"


@pytest.mark.slow  # a long NUTS reference run (PyMC's compilation and 4 x 4000 draws)
def test_a_moment_matched_imh_attempt_agrees_with_a_long_nuts_run():
    """The bundled example patient whose Laplace proposal fails the gates under Wojciechowski
    2017 (skewed η_Q/η_V2): the second IMH attempt, moment-matched to the first, passes, and
    its posterior agrees with a long NUTS run within Monte Carlo error."""
    from asuc_bayes import example_path, read_patients
    from asuc_bayes.inference import forecast_problem
    from asuc_bayes.inference.pymc_model import nuts_draws

    patient = list(read_patients(example_path()).patients)[2]
    problem = PatientProblem.from_patient(
        load_declaration("wojciechowski2017"), patient, {"ALB": (4.0, "g/dL"), "ADA": 0}
    )
    result = forecast_problem(problem, patient.id, random_seed=1)
    d = result.diagnostics
    assert result.status == "ok" and d["method"] == "independence_mh" and d["attempts"] == 2
    mode = find_map(problem.log_posterior, problem.omega)
    long = SamplerOptions(draws=4000, tune=1000, chains=4)
    reference, checks = nuts_draws(problem, start=mode.eta, options=long, random_seed=6)
    assert checks["passed"], checks
    assert_agrees_with_reference_draws(result.eta, reference)
