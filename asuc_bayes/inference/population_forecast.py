"""Individual forecasts that integrate over population-parameter uncertainty.

Given S draws θ_s of the population parameters (a fitted population posterior, or the
published uncertainty: :class:`~asuc_bayes.inference.population_draws.PopulationDraws`), the
posterior
of a new patient's (η, θ) given their data y is

    p(η, θ_s | y) ∝ p(y | η, θ_s) N(η; 0, Ω_s) · (1/S),

a mixture over s. For every draw the patient's posterior over η is two-dimensional and is
computed exactly by quadrature (:func:`asuc_bayes.inference.grid.grid_posterior` under
``draws.spec_at(s)``), and the same quadrature gives the marginal likelihood

    Z_s = p(y | θ_s) = ∫ p(y | η, θ_s) N(η; 0, Ω_s) dη.

Draw s gets the importance weight w_s ∝ Z_s; (η, θ) draws are taken from the mixture (s by
weight, then η from draw s's quadrature posterior). The result is exact up to Monte Carlo
over the population draws, whose precision the Kish effective sample size of the weights,
(Σ w)² / Σ w², measures: when a patient's data are surprising under most population draws,
few draws carry the weight and the forecast is marked ``unconverged``.

The result is an ordinary :class:`~asuc_bayes.inference.forecast.PatientForecast` (same DataTree
groups
and JSON contract as the standard forecast, ``diagnostics.method = "population_mixture"``)
whose ``posterior`` group also holds each draw's population parameters (``theta_cl``,
``theta_v``, ``crp_exponent_cl``, ``omega_cl``, ``omega_v``, ``residual_sd``, ``tte_lambda``,
``tte_gamma``, ``tte_beta``; dims ``chain``, ``draw``), and an extra ``population_weights``
group with Z_s and w_s per population draw. MAP and a-priori values are computed at the
population posterior medians.

Examples
--------
>>> from asuc_bayes.spec.config import load_model
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> from asuc_bayes.inference.population_draws import PopulationDraws
>>> spec = load_model()
>>> patient = Patient("p", 63.0, 30.0, (Dose(0.0, 600.0, 1 / 12),), (Observation(7.0, 14.5),))
>>> draws = PopulationDraws.from_published(spec, n=20, random_seed=1)
>>> result = forecast_with_population(patient, draws, random_seed=2, draws_per_chain=100)
>>> result.diagnostics["method"], result.tree["posterior"]["tte_beta"].dims
('population_mixture', ('chain', 'draw'))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr
from scipy.special import logsumexp

from asuc_bayes.data.dataset import Patient
from asuc_bayes.inference.forecast import (
    DERIVED,
    PatientForecast,
    SamplerSettings,
    _convergence,
    derived_quantities,
    forecast_tree,
)
from asuc_bayes.inference.grid import grid_posterior, log_posterior
from asuc_bayes.inference.population_draws import PopulationDraws
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "MIN_POPULATION_ESS",
    "forecast_patients_with_population",
    "forecast_with_population",
    "log_marginal_likelihood",
    "median_spec",
]

#: Below this Kish ESS of the population-draw weights a forecast is marked unconverged.
MIN_POPULATION_ESS = 50.0
#: Quadrature grid per population draw (validated against 401² in the tests).
GRID_POINTS = 101
GRID_COARSE = 61


def log_marginal_likelihood(posterior) -> float:
    """ln p(y | θ) of a :class:`~asuc_bayes.inference.grid.GridPosterior` by its quadrature: the
    grid's
    log density is log likelihood − ½ Σ (η/ω)², so the normal prior's constant
    −ln(2π ω_CL ω_V) and the cell area are added back."""
    pk = posterior.spec.pk
    cell = float(np.prod(posterior.spacing))
    return float(
        logsumexp(posterior.log_density)
        + math.log(cell)
        - math.log(2.0 * math.pi * pk.omega_cl * pk.omega_v)
    )


def median_spec(draws: PopulationDraws) -> ModelSpec:
    """The model at the draws' median population parameters (for MAP / a-priori values)."""
    medians = draws.median()
    point = PopulationDraws(draws.spec, **{k: np.array([v]) for k, v in medians.items()})
    return point.spec_at(0)


def _laplace_covariance(spec: ModelSpec, patient: Patient, mode: np.ndarray) -> np.ndarray:
    """Inverse negative Hessian of the log posterior at ``mode`` (central differences)."""
    step = 1e-4

    def f(x, y):
        return float(log_posterior(spec, patient, x, y))

    x, y = mode
    hxx = (f(x + step, y) - 2 * f(x, y) + f(x - step, y)) / step**2
    hyy = (f(x, y + step) - 2 * f(x, y) + f(x, y - step)) / step**2
    hxy = (
        f(x + step, y + step)
        - f(x + step, y - step)
        - f(x - step, y + step)
        + f(x - step, y - step)
    ) / (4 * step**2)
    try:
        return np.linalg.inv(-np.array([[hxx, hxy], [hxy, hyy]]))
    except np.linalg.LinAlgError:
        return np.full((2, 2), np.nan)


def forecast_with_population(
    patient: Patient,
    draws: PopulationDraws,
    *,
    random_seed: int = 0,
    chains: int = 4,
    draws_per_chain: int = 1000,
    grid_points: int = GRID_POINTS,
) -> PatientForecast:
    """Forecast of one patient integrating over the population draws (module docstring).

    Parameters
    ----------
    patient
        The patient (doses given and planned, samples, covariates).
    draws
        S population-parameter draws; every draw is used (choose S with
        :meth:`PopulationDraws.from_fit`'s ``n``; 200-500 is typical).
    random_seed
        Seed of the mixture sampling.
    chains, draws_per_chain
        Shape of the (chain, draw) posterior arrays (independent draws).
    grid_points
        Quadrature points per axis for each population draw.
    """
    rng = np.random.default_rng(random_seed)
    posteriors = []
    log_z = np.empty(draws.n)
    for s in range(draws.n):
        grid = grid_posterior(draws.spec_at(s), patient, n_points=grid_points, n_coarse=GRID_COARSE)
        posteriors.append(grid)
        log_z[s] = log_marginal_likelihood(grid)
    weights = np.exp(log_z - logsumexp(log_z))
    kish = float(1.0 / np.sum(weights**2))
    total = chains * draws_per_chain
    chosen = rng.choice(draws.n, size=total, p=weights)
    eta = np.empty((total, 2))
    derived = {name: np.empty(total) for name in DERIVED}
    for s in np.unique(chosen):
        rows = np.flatnonzero(chosen == s)
        eta[rows] = posteriors[s].sample(rows.size, random_seed=int(rng.integers(2**63)))
        values = derived_quantities(draws.spec_at(int(s)), patient, eta[rows])
        for name in DERIVED:
            derived[name][rows] = values[name]
    shape = (chains, draws_per_chain)
    eta = eta.reshape(*shape, 2)
    derived = {name: values.reshape(shape) for name, values in derived.items()}

    center = median_spec(draws)
    central = grid_posterior(center, patient, n_points=grid_points, n_coarse=GRID_COARSE)
    mode = central.mode()
    map_result = {
        "eta": mode,
        "log_density": float(log_posterior(center, patient, *mode)),
        "covariance": _laplace_covariance(center, patient, mode),
        "laplace_ok": True,
    }
    map_result["laplace_ok"] = bool(np.all(np.isfinite(map_result["covariance"])))
    ok = kish >= min(MIN_POPULATION_ESS, 0.5 * draws.n)
    checks = _convergence(eta, 0)  # independent draws: a check of the bookkeeping
    diagnostics = {
        "rhat_max": checks["rhat_max"],
        "ess_bulk_min": checks["ess_bulk_min"],
        "divergences": 0,
        "chains": chains,
        "draws": draws_per_chain,
        "tune": 0,
        "method": "population_mixture",
        "modes": None,
        "target_accept": None,
        "sampler": "exact_grid",
        "attempts": 0,
        "population_draws": draws.n,
        "population_ess": kish,
        "population_source": draws.source,
    }
    settings = SamplerSettings(
        draws=draws_per_chain, tune=0, chains=max(chains, 2), method="exact_grid"
    )
    status = "ok" if ok else "unconverged"
    tree = forecast_tree(
        center, patient, eta, None, map_result, diagnostics, status, settings, random_seed, derived
    )
    posterior = tree["posterior"].to_dataset()
    for name, values in draws.as_dict().items():
        posterior[name] = (("chain", "draw"), values[chosen].reshape(shape))
    posterior["population_draw"] = (("chain", "draw"), chosen.reshape(shape))
    tree["posterior"] = posterior
    tree["population_weights"] = xr.Dataset(
        {
            "log_marginal_likelihood": (("population_draw",), log_z),
            "weight": (("population_draw",), weights),
            **{name: (("population_draw",), values) for name, values in draws.as_dict().items()},
        },
        attrs={"kish_ess": kish, "source": draws.source, "grid_points": grid_points},
    )
    return PatientForecast(
        patient=patient, tree=tree, status=status, diagnostics=diagnostics, spec=center
    )


def forecast_patients_with_population(
    patients, draws: PopulationDraws, *, random_seed: int = 0, **options: Any
) -> list[PatientForecast]:
    """:func:`forecast_with_population` for several patients (seed per patient ID)."""
    from asuc_bayes.inference.forecast import patient_seed

    return [
        forecast_with_population(p, draws, random_seed=patient_seed(random_seed, p.id), **options)
        for p in patients
    ]
