"""The exact path: a patient's posterior by 2-D quadrature (:mod:`asuc_bayes.inference.grid`),
its independent draws and exact summary statistics, and the forecast from it alone
(:func:`exact_forecast`).
"""

from __future__ import annotations

import numpy as np

from asuc_bayes._lazy import lazy_module
from asuc_bayes.data.dataset import Patient
from asuc_bayes.graphs.model import RANDOM_EFFECTS
from asuc_bayes.inference.forecast.adaptive import Precision, convergence, until_precise
from asuc_bayes.inference.forecast.numerics import single_threaded_blas
from asuc_bayes.inference.forecast.quantities import DERIVED
from asuc_bayes.inference.forecast.results import PatientForecast, forecast_result
from asuc_bayes.inference.forecast.settings import SamplerSettings
from asuc_bayes.inference.forecast.summary import STATISTICS
from asuc_bayes.inference.grid import GridPosterior, grid_posterior
from asuc_bayes.spec.config import ModelSpec

__all__ = ["exact_forecast", "grid_draws", "precise_grid_draws"]

# Imported on first use (start-up).
xr = lazy_module("xarray")


def grid_draws(
    grid: GridPosterior, settings: SamplerSettings, random_seed: int
) -> tuple[np.ndarray, xr.Dataset]:
    """Independent draws (chain, draw, 2) from an exact quadrature posterior, and its exact
    summary statistics (quantiles by quadrature, not from the draws)."""
    draws = grid.sample(settings.chains * settings.initial_draws, random_seed=random_seed)
    summary = grid.summary()
    exact = xr.Dataset(
        {name: (("statistic",), [summary[name][k] for k in STATISTICS]) for name in DERIVED},
        coords={"statistic": list(STATISTICS)},
    )
    exact["p_high_risk"] = summary["p_high_risk"]
    exact.attrs["grid_points"] = len(grid.eta_cl)
    shape = (settings.chains, settings.initial_draws, len(RANDOM_EFFECTS))
    return draws.reshape(shape), exact


def precise_grid_draws(
    spec: ModelSpec,
    patient: Patient,
    grid: GridPosterior,
    settings: SamplerSettings,
    random_seed: int,
) -> tuple[np.ndarray, xr.Dataset, Precision]:
    """:func:`grid_draws`, extended while adaptive by further independent draws (seeds derived
    from ``random_seed``) until their i.i.d. :class:`Precision` is met: (η, exact, precision)."""
    eta, exact = grid_draws(grid, settings, random_seed)
    pieces = [0]

    def extend(n: int) -> np.ndarray:
        pieces.append(n)
        seed = np.random.SeedSequence([random_seed, len(pieces)])
        more = grid.sample(settings.chains * n, random_seed=seed)
        return more.reshape(settings.chains, n, len(RANDOM_EFFECTS))

    eta, precision = until_precise(spec, patient, eta, settings, extend, independent=True)
    return eta, exact, precision


def exact_forecast(
    spec: ModelSpec,
    patient: Patient,
    *,
    settings: SamplerSettings | None = None,
    random_seed: int = 0,
    grid: GridPosterior | None = None,
) -> PatientForecast:
    """The forecast by exact 2-D quadrature alone: nothing compiled, no Monte Carlo error in
    the summaries.

    The posterior is :func:`asuc_bayes.inference.grid.grid_posterior` (``settings.grid_points`` per
    axis;
    or the given ``grid``), its draws are independent, the MAP is the polished grid mode and
    the Laplace covariance comes from SciPy's finite-difference Hessian of the log posterior.
    Used where many alternative models are compared for one patient (sensitivity analyses):
    their differences are then not confounded with sampling noise.

    Examples
    --------
    >>> from asuc_bayes.spec.config import load_model
    >>> from asuc_bayes.data.dataset import Dose, Observation, Patient
    >>> p = Patient("x", 63.0, 30.0, (Dose(0.0, 600.0, 1 / 12),), (Observation(7.0, 14.5),))
    >>> result = exact_forecast(load_model(), p, settings=SamplerSettings(draws=200))
    >>> result.diagnostics["method"], result.status
    ('exact_grid', 'ok')
    """
    with single_threaded_blas():
        return _exact_forecast(spec, patient, settings, random_seed, grid)


def _exact_forecast(spec, patient, settings, random_seed, grid) -> PatientForecast:
    import scipy.differentiate

    settings = settings or SamplerSettings(method="exact_grid")
    if grid is None:
        grid = grid_posterior(spec, patient, n_points=settings.grid_points)
    eta, exact, precision = precise_grid_draws(spec, patient, grid, settings, random_seed)
    mode = grid.mode()

    def log_density(x):
        return grid.log_density_at(x[0], x[1])

    hessian = scipy.differentiate.hessian(log_density, mode).ddf
    try:
        covariance = np.linalg.inv(-hessian)
        np.linalg.cholesky(covariance)
        laplace_ok = True
    except np.linalg.LinAlgError:
        covariance, laplace_ok = np.full((2, 2), np.nan), False
    map_result = {
        "eta": mode,
        "log_density": float(log_density(mode)),
        "covariance": covariance,
        "laplace_ok": laplace_ok,
    }
    checks = convergence(eta, 0)
    diagnostics = {
        "rhat_max": checks["rhat_max"],
        "ess_bulk_min": checks["ess_bulk_min"],
        "divergences": 0,
        "chains": settings.chains,
        "draws": int(eta.shape[1]),
        "tune": 0,
        "method": "exact_grid",
        "modes": None,
        "target_accept": None,
        "sampler": "exact_grid",
        "attempts": 0,
        "precision": precision.as_dict(),
    }
    status = "ok" if checks["passed"] else "unconverged"
    return forecast_result(
        spec, patient, eta, None, map_result, diagnostics, status, settings, random_seed, exact
    )
