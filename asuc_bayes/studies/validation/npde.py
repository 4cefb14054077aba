"""Normalised prediction distribution errors (NPDE), simulation-based and decorrelated.

Brendel et al. 2006, Comets et al. 2008; censored records as in Nguyen et al. 2012. For one
patient with records y (n) under a model:

1. simulate K replicates of the records from the prior predictive (η ~ N(0, Ω), then the
   residual error): Y_sim (K, n);
2. censored records are imputed from the predictive distribution: a record below the LLOQ gets
   pd ~ U(0, P̂(y < LLOQ)) (above the ULOQ: U(P̂(y ≤ ULOQ), 1)), P̂ the fraction of simulated
   values there, and the value y = the empirical pd-quantile of the simulated values;
3. decorrelate with the empirical predictive mean E and covariance V = L Lᵀ:
   y* = L⁻¹(y − E), Y*_sim = L⁻¹(Y_sim − E);
4. pde_j = fraction of Y*_sim[:, j] below y*_j, clipped to [1/(2K), 1 − 1/(2K)];
   npde_j = Φ⁻¹(pde_j).

Under the model, the npde are N(0, 1); :func:`npde_tests` gives the usual tests.
:func:`mixture_npde` does the same under the model-averaged prior predictive Σ_m π_m p_m(y)
(step 1: each replicate from model m with probability π_m).

Examples
--------
>>> rng = np.random.default_rng(1)
>>> tests = npde_tests(rng.standard_normal(200))
>>> tests.p_value > 0.05
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.special
import scipy.stats

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.spec.residual import PREDICTION_FLOOR_MG_L, residual_form

__all__ = [
    "NPDE_SIMULATIONS",
    "NpdeTests",
    "mixture_npde",
    "npde_and_simulations",
    "npde_from_simulations",
    "npde_tests",
    "patient_npde",
    "simulate_records",
]

#: Replicates simulated per patient.
NPDE_SIMULATIONS = 1000


def simulate_records(
    problem: PatientProblem, eta: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Observations ``(n_sim, n_records)`` simulated at the records' times for η ``(n_sim, d)``:
    the prediction with the declaration's residual error (no censoring)."""
    f = np.maximum(np.asarray(problem.predict(eta), dtype=float), PREDICTION_FLOOR_MG_L)
    residual = problem.declaration.residual
    form, sigma = residual_form(residual.form), residual.sd()
    eps = rng.standard_normal(f.shape)
    if hasattr(form, "sd"):  # y ~ N(f, sd(f)²)
        return f + form.sd(f, sigma, np) * eps
    if form.name == "log_normal":
        return f * np.exp(sigma["log_sd"] * eps)
    raise ValueError(f"NPDE: no simulator for the residual form '{form.name}'")


def patient_npde(
    problem: PatientProblem, *, n_simulations: int = NPDE_SIMULATIONS, random_seed: int = 0
) -> np.ndarray:
    """The npde of a patient's records (see the module docstring), in the records' order."""
    return npde_and_simulations(problem, n_simulations=n_simulations, random_seed=random_seed)[0]


def npde_and_simulations(
    problem: PatientProblem, *, n_simulations: int = NPDE_SIMULATIONS, random_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The npde of :func:`patient_npde` and the prior-predictive simulations they come from,
    ``(n_simulations, n_records)`` (uncensored; for visual predictive checks)."""
    n = problem.time_day.size
    if n == 0:
        return np.zeros(0), np.zeros((n_simulations, 0))
    rng = np.random.default_rng(random_seed)
    sims = _prior_predictive(problem, n_simulations, rng)
    return npde_from_simulations(problem, sims, rng), sims


def mixture_npde(
    problems: Sequence[PatientProblem],
    prior_weights: Sequence[float] | np.ndarray | None = None,
    *,
    n_simulations: int = NPDE_SIMULATIONS,
    random_seed: int = 0,
) -> np.ndarray:
    """The npde of a patient's records under the model-averaged prior predictive.

    ``problems``: the same patient's records under each model (in the same records' order).
    The predictive is the mixture Σ_m π_m p_m(y) of the models' prior predictives with the
    prior model weights π (``prior_weights``, equal by default): each replicate comes from
    model m with probability π_m (η ~ N(0, Ω_m), then model m's residual error). The npde then
    follow steps 2–4 of the module docstring. With one model of weight 1 these are that
    model's npde (:func:`patient_npde`, the same draws).

    Examples
    --------
    >>> from asuc_bayes.pk import DoseArrays
    >>> from asuc_bayes.spec import load_declaration
    >>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
    >>> problem = PatientProblem.build(load_declaration("niyigena2025"), doses,
    ...                                time_day=[7.0, 13.0], value_mg_l=[15.0, 9.0],
    ...                                covariates={"WT": 70.0, "CRP": 30.0})
    >>> bool(np.array_equal(mixture_npde([problem, problem], [1.0, 0.0], random_seed=3),
    ...                     patient_npde(problem, random_seed=3)))
    True
    """
    if not problems:
        raise ValueError("NPDE of the model average: give at least one model")
    weights = _prior_weights(prior_weights, len(problems))
    n = problems[0].time_day.size
    if any(p.time_day.size != n for p in problems):
        raise ValueError("NPDE of the model average: the models must hold the same records")
    if n == 0:
        return np.zeros(0)
    rng = np.random.default_rng(random_seed)
    used = np.flatnonzero(weights > 0)
    if used.size == 1:  # one model: its own npde, the same draws
        sims = _prior_predictive(problems[used[0]], n_simulations, rng)
        return npde_from_simulations(problems[used[0]], sims, rng)
    choice = rng.choice(len(problems), size=n_simulations, p=weights)
    sims = np.empty((n_simulations, n))
    for m in used:
        rows = np.flatnonzero(choice == m)
        if rows.size:
            sims[rows] = _prior_predictive(problems[m], rows.size, rng)
    return npde_from_simulations(problems[0], sims, rng)


def _prior_weights(prior_weights: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray:
    if prior_weights is None:
        return np.full(n, 1.0 / n)
    weights = np.asarray(prior_weights, dtype=float)
    if weights.shape != (n,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(
            "NPDE of the model average: prior_weights must give one non-negative weight per "
            f"model ({n}), got {list(np.atleast_1d(weights))}"
        )
    if weights.sum() <= 0:
        raise ValueError("NPDE of the model average: prior_weights must not all be 0")
    return weights / weights.sum()


def _prior_predictive(
    problem: PatientProblem, n_simulations: int, rng: np.random.Generator
) -> np.ndarray:
    """Replicates ``(n_simulations, n_records)``: η ~ N(0, Ω), then the residual error."""
    eta = rng.multivariate_normal(np.zeros(problem.n_eta), problem.omega, size=n_simulations)
    return simulate_records(problem, eta, rng)


def npde_from_simulations(
    problem: PatientProblem, sims: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Steps 2–4 of the module docstring: the npde of ``problem``'s records against the
    replicates ``sims`` ``(K, n_records)`` (``rng`` imputes the censored records)."""
    n_simulations, n = sims.shape
    observed = _impute_censored(problem, sims, rng)
    mean = sims.mean(axis=0)
    cov = np.atleast_2d(np.cov(sims, rowvar=False))
    chol = np.linalg.cholesky(cov + 1e-12 * np.trace(cov) / n * np.eye(n))
    obs_star = np.linalg.solve(chol, observed - mean)
    sims_star = np.linalg.solve(chol, (sims - mean).T).T
    pde = np.mean(sims_star < obs_star, axis=0)
    half = 0.5 / n_simulations
    return scipy.special.ndtri(np.clip(pde, half, 1.0 - half))


def _impute_censored(
    problem: PatientProblem, sims: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    values = problem.value_mg_l.astype(float).copy()
    for j in np.flatnonzero(problem.censoring != 0):
        below = float(np.mean(sims[:, j] < values[j]))
        if problem.censoring[j] == BELOW_LLOQ:
            pd = rng.uniform(0.0, below)
        elif problem.censoring[j] == ABOVE_ULOQ:
            pd = rng.uniform(below, 1.0)
        else:
            continue
        values[j] = float(np.quantile(sims[:, j], pd))
    return values


@dataclass(frozen=True)
class NpdeTests:
    """Mean and variance of the npde with the usual tests (Comets et al. 2008).

    ``mean_p`` — Student t test of mean 0; ``variance_p`` — Fisher (χ²) test of variance 1
    (two-sided); ``normality_p`` — Shapiro–Wilk; ``p_value`` — the global test: the smallest
    of the three, Bonferroni-adjusted (× 3, capped at 1).
    """

    n: int
    mean: float
    variance: float
    mean_p: float
    variance_p: float
    normality_p: float
    p_value: float


def npde_tests(npde: np.ndarray) -> NpdeTests | None:
    """:class:`NpdeTests` of pooled npde; ``None`` with fewer than 3 values."""
    x = np.asarray(npde, dtype=float).reshape(-1)
    n = x.size
    if n < 3:
        return None
    variance = float(np.var(x, ddof=1))
    if variance == 0.0:  # degenerate: certainly not N(0, 1); the tests would divide by 0
        return NpdeTests(n, float(np.mean(x)), 0.0, 0.0, 0.0, 0.0, 0.0)
    mean_p = float(scipy.stats.ttest_1samp(x, 0.0).pvalue)
    chi2 = (n - 1) * variance
    tail = float(scipy.stats.chi2.cdf(chi2, n - 1))
    variance_p = min(1.0, 2.0 * min(tail, 1.0 - tail))
    normality_p = float(scipy.stats.shapiro(x).pvalue)
    mean_p = 1.0 if math.isnan(mean_p) else mean_p
    return NpdeTests(
        n=n,
        mean=float(np.mean(x)),
        variance=variance,
        mean_p=mean_p,
        variance_p=variance_p,
        normality_p=normality_p,
        p_value=min(1.0, 3.0 * min(mean_p, variance_p, normality_p)),
    )
