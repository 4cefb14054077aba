"""MAP and Laplace covariance: against scipy on an independently written ODE log density
(Wojciechowski 2017, four random effects) and against a Gaussian's closed form."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import minimize
from scipy.stats import multivariate_normal, norm

from asuc_bayes.data.dataset import BELOW_LLOQ, Dose, Observation, Patient
from asuc_bayes.inference import PatientProblem, find_map
from asuc_bayes.inference.map import hessian
from asuc_bayes.spec import load_declaration

# Wojciechowski 2017 as published (model file comments): typical values, covariate effects,
# Omega (variances), proportional SD; written here by hand, not read from the declaration.
WEIGHT_KG, ALBUMIN_G_DL, ADA = 82.0, 3.1, 1
OMEGA = np.diag([0.106929, 0.0225, 1.21, 0.638401])
SIGMA_PROPORTIONAL = 0.419
DOSES = [(0.0, 400.0), (14.0, 400.0), (42.0, 400.0)]
INFUSION_DAY = 1.0 / 12.0
RECORDS = [(2.0, 55.0, 0), (13.9, 6.5, 0), (28.0, 3.0, 0), (41.9, 0.8, BELOW_LLOQ)]


def _typical() -> np.ndarray:
    w = WEIGHT_KG / 70.0
    cl = 0.294 * w**0.614 * (ALBUMIN_G_DL / 4.0) ** -1.17 * (1.0 + 0.257 * ADA)
    return np.array([cl, 3.33 * w**0.691, 0.0719 * w**1.10, 1.14 * w**0.59])


def _ode_concentrations(eta: np.ndarray) -> np.ndarray:
    """Two-compartment ODE with 2 h infusions, integrated piecewise between dose events."""
    cl, v1, q, v2 = _typical() * np.exp(eta)
    events = sorted({0.0, *[t for t, _ in DOSES], *[t + INFUSION_DAY for t, _ in DOSES]})
    times = [t for t, _, _ in RECORDS]
    end = max(times) + 1.0

    def rate(t: float) -> float:
        return sum(a / INFUSION_DAY for s, a in DOSES if s <= t < s + INFUSION_DAY)

    def rhs(t, amounts, r):
        a1, a2 = amounts
        return [r - (cl + q) / v1 * a1 + q / v2 * a2, q / v1 * a1 - q / v2 * a2]

    state = np.zeros(2)
    out = {}
    bounds = [*events, end]
    for lo, hi in itertools.pairwise(bounds):
        r = rate(0.5 * (lo + hi))
        inside = [t for t in times if lo <= t < hi]
        sol = solve_ivp(
            rhs,
            (lo, hi),
            state,
            args=(r,),
            t_eval=[*inside, hi],  # hi last: the state carried to the next piece
            rtol=1e-11,
            atol=1e-12,
            method="DOP853",
        )
        for k, t in enumerate(inside):
            out[t] = sol.y[0, k] / v1
        state = sol.y[:, -1]
    return np.array([out[t] for t in times])


def _ode_log_posterior(eta: np.ndarray) -> float:
    f = _ode_concentrations(eta)
    total = multivariate_normal(np.zeros(4), OMEGA).logpdf(eta)
    for (_, y, cens), fi in zip(RECORDS, f, strict=True):
        sd = SIGMA_PROPORTIONAL * fi
        total += norm.logcdf(y, fi, sd) if cens == BELOW_LLOQ else norm.logpdf(y, fi, sd)
    return float(total)


@pytest.fixture(scope="module")
def problem():
    patient = Patient(
        "w",
        WEIGHT_KG,
        30.0,
        tuple(Dose(t, a, INFUSION_DAY) for t, a in DOSES),
        tuple(Observation(t, y, c) for t, y, c in RECORDS),
    )
    return PatientProblem.from_patient(
        load_declaration("wojciechowski2017"), patient, {"ALB": ALBUMIN_G_DL, "ADA": ADA}
    )


def test_log_posterior_equals_the_ode_reference(problem):
    rng = np.random.default_rng(7)
    for eta in rng.normal(0.0, 0.4, (4, 4)):
        assert problem.log_posterior(eta[None])[0] == pytest.approx(
            _ode_log_posterior(eta), abs=1e-7
        )


@pytest.mark.slow  # ~20 s on a loaded 2-core machine (a few hundred ODE solves)
def test_map_equals_scipy_on_the_ode_density(problem):
    """BFGS (finite differences) on the ODE density from three starts: the best is our MAP."""
    result = find_map(problem.log_posterior, problem.omega)
    sd = np.sqrt(np.diag(OMEGA))
    references = [
        minimize(
            lambda eta: -_ode_log_posterior(eta),
            start,
            method="BFGS",
            options={"gtol": 1e-6, "eps": 1e-7},
        )
        for start in (np.zeros(4), sd * [0.0, 0.0, -1.0, 1.0], sd * [0.0, 0.0, 1.0, -1.0])
    ]
    best = min(references, key=lambda r: r.fun)
    np.testing.assert_allclose(result.eta, best.x, atol=2e-4)
    assert result.log_density == pytest.approx(-best.fun, abs=1e-7)
    assert result.optimizer_success and result.laplace_ok


def test_laplace_covariance_is_the_inverse_negative_hessian(problem):
    result = find_map(problem.log_posterior, problem.omega)
    h = hessian(problem.log_posterior, result.eta, step=1e-4)
    np.testing.assert_allclose(result.covariance, np.linalg.inv(-h), rtol=2e-3, atol=1e-6)


def test_gaussian_mode_and_covariance_are_exact():
    mean = np.array([0.4, -0.3, 0.1])
    a = np.array([[0.2, 0.05, 0.0], [0.05, 0.1, -0.03], [0.0, -0.03, 0.3]])
    precision = np.linalg.inv(a)

    def log_density(eta):
        d = eta - mean
        return -0.5 * np.sum((d @ precision) * d, axis=-1)

    result = find_map(log_density, np.eye(3))
    np.testing.assert_allclose(result.eta, mean, atol=1e-6)
    np.testing.assert_allclose(result.covariance, a, rtol=1e-5, atol=1e-8)
    assert result.modes == 1


def test_two_separated_modes_are_counted():
    def log_density(eta):
        x = eta[..., 0]
        return np.logaddexp(-0.5 * ((x - 1.5) / 0.2) ** 2, -0.5 * ((x + 1.5) / 0.2) ** 2) - (
            0.5 * eta[..., 1] ** 2
        )

    assert find_map(log_density, np.eye(2)).modes == 2


@pytest.mark.parametrize("name", ["one_sample", "several_samples", "alq_sample"])
def test_niyigena_map_equals_the_grid_mode(name):
    from asuc_bayes.inference.grid import grid_posterior
    from asuc_bayes.spec.config import load_model

    from conftest import REFERENCE_PATIENTS

    patient = REFERENCE_PATIENTS[name]
    problem = PatientProblem.from_patient(load_declaration("niyigena2025"), patient)
    result = find_map(problem.log_posterior, problem.omega)
    mode = grid_posterior(load_model(), patient, n_points=201).mode()
    np.testing.assert_allclose(result.eta, mode, atol=1e-4)
