"""Posterior mode (MAP) of a patient's random effects and its Laplace covariance.

The search runs in prior-whitened coordinates u (η = L u, Ω = L Lᵀ), where every direction
has prior SD 1: a deterministic quasi-random scan of the prior (Halton points, one vectorised
call) picks the starts — the prior mode u = 0 and the best scan points — and L-BFGS-B climbs
from each with central-difference gradients (all 2d + 1 stencil points in one vectorised call
of the NumPy log posterior). The Laplace covariance is the inverse of minus the Hessian at the
mode (central differences, one vectorised call).

Examples
--------
>>> import numpy as np
>>> target = lambda eta: -0.5 * np.sum(((eta - [0.3, -0.2]) / [0.1, 0.2]) ** 2, axis=-1)
>>> result = find_map(target, np.diag([0.25, 0.25]))
>>> np.round(result.eta, 4).tolist(), np.round(np.sqrt(np.diag(result.covariance)), 4).tolist()
([0.3, -0.2], [0.1, 0.2])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.optimize
import scipy.special
from scipy.stats import qmc

__all__ = [
    "MAP_BOUND_PRIOR_SD",
    "SCAN_POINTS",
    "MapResult",
    "find_map",
    "hessian",
    "single_threaded_blas",
]

#: The mode is searched within this many prior SDs of η = 0 in every whitened direction.
MAP_BOUND_PRIOR_SD = 10.0
#: Quasi-random prior points scanned for starting points.
SCAN_POINTS = 256
#: Scan points (besides the prior mode) the optimiser climbs from.
SCAN_STARTS = 2
#: Central-difference steps (whitened units) of the gradient and of the Hessian.
GRADIENT_STEP = 1e-6
HESSIAN_STEP = 1e-3
#: Two optima closer than this (whitened units) are the same mode.
SAME_MODE = 0.05

LogDensity = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MapResult:
    """The MAP of η, its log density and the Laplace covariance (η units).

    ``modes`` counts the distinct local maxima found within ``log_density`` − 5 of the best
    (more than one: the posterior is multimodal and a Laplace proposal may miss mass).
    """

    eta: np.ndarray
    log_density: float
    covariance: np.ndarray
    laplace_ok: bool
    optimizer_success: bool
    modes: int
    starts: int
    #: the starts climbed from (the others lay in the basin of a mode already found)
    climbs: int


_BLAS_CONTROLLER = None


def single_threaded_blas():
    """Context limiting BLAS to one thread: the linear algebra here is tiny, and OpenBLAS
    threads spinning for it on a busy machine made L-BFGS-B ~10x slower (measured)."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        import threadpoolctl

        _BLAS_CONTROLLER = threadpoolctl.ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


@lru_cache(maxsize=8)
def _scan_points(dim: int, n: int) -> np.ndarray:
    """Deterministic quasi-random standard-normal points (Halton, unscrambled)."""
    unit = qmc.Halton(d=dim, scramble=False).random(n + 1)[1:]
    points = scipy.special.ndtri(np.clip(unit, 1e-6, 1 - 1e-6))
    points.flags.writeable = False
    return points


def _value_and_gradient(target_u: LogDensity, u: np.ndarray) -> tuple[float, np.ndarray]:
    dim = u.size
    steps = GRADIENT_STEP * np.eye(dim)
    points = np.concatenate([u[None, :], u + steps, u - steps])
    values = np.asarray(target_u(points), dtype=float)
    gradient = (values[1 : dim + 1] - values[dim + 1 :]) / (2.0 * GRADIENT_STEP)
    return float(values[0]), gradient


def hessian(target: LogDensity, x: np.ndarray, step: float = HESSIAN_STEP) -> np.ndarray:
    """Central-difference Hessian of a vectorised log density at ``x`` (one call).

    Examples
    --------
    >>> f = lambda x: -(x[..., 0] ** 2) - 3 * x[..., 0] * x[..., 1] - 2 * x[..., 1] ** 2
    >>> np.round(hessian(f, np.array([0.5, -1.0])), 6).tolist()
    [[-2.0, -3.0], [-3.0, -4.0]]
    """
    dim = x.size
    unit = np.eye(dim) * step
    pairs = [(i, j) for i in range(dim) for j in range(i + 1, dim)]
    points = [x[None, :], x + unit, x - unit]
    for sign_i, sign_j in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        points.append(
            np.array([x + sign_i * unit[i] + sign_j * unit[j] for i, j in pairs]).reshape(-1, dim)
        )
    values = np.asarray(target(np.concatenate(points)), dtype=float)
    centre, plus, minus = values[0], values[1 : dim + 1], values[dim + 1 : 2 * dim + 1]
    out = np.diag((plus - 2.0 * centre + minus) / step**2)
    n = len(pairs)
    quads = values[2 * dim + 1 :].reshape(4, n)
    for k, (i, j) in enumerate(pairs):
        out[i, j] = out[j, i] = (quads[0, k] - quads[1, k] - quads[2, k] + quads[3, k]) / (
            4.0 * step**2
        )
    return out


def _climb(target_u: LogDensity, start: np.ndarray) -> scipy.optimize.OptimizeResult:
    def negative(u: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = _value_and_gradient(target_u, u)
        if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
            return np.inf, np.zeros_like(u)
        return -value, -gradient

    return scipy.optimize.minimize(
        negative,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-MAP_BOUND_PRIOR_SD, MAP_BOUND_PRIOR_SD)] * start.size,
        options={"gtol": 1e-7, "ftol": 1e-13, "maxiter": 500},
    )


def _starts(target_u: LogDensity, dim: int) -> list[np.ndarray]:
    """The prior mode and the best :data:`SCAN_STARTS` scan points, best first."""
    points = np.concatenate([np.zeros((1, dim)), _scan_points(dim, SCAN_POINTS)])
    values = np.asarray(target_u(points), dtype=float)
    values = np.where(np.isfinite(values), values, -np.inf)
    best = [i for i in np.argsort(values[1:])[::-1][:SCAN_STARTS] + 1 if np.isfinite(values[i])]
    order = sorted([0, *best], key=lambda i: -values[i])
    return [points[i] for i in order]


def _same_basin(target_u: LogDensity, start: np.ndarray, mode: np.ndarray) -> bool:
    """Whether the log density rises monotonically on the segment from ``start`` to a found
    ``mode`` (then a climb from ``start`` ends there too and is skipped)."""
    t = np.linspace(0.0, 1.0, 9)[:, None]
    values = np.asarray(target_u(start + t * (mode - start)), dtype=float)
    return bool(np.all(np.isfinite(values)) and np.all(np.diff(values) >= -1e-9))


def _climbs(target_u: LogDensity, starts: list[np.ndarray]) -> list:
    """Climb from each start unless it lies in the basin of a mode already found."""
    results: list = []
    for start in starts:
        if any(_same_basin(target_u, start, r.x) for r in results):
            continue
        results.append(_climb(target_u, start))
    return results


def _count_modes(results: list[scipy.optimize.OptimizeResult]) -> int:
    best = min(r.fun for r in results)
    found: list[np.ndarray] = []
    for r in results:
        if r.fun <= best + 5.0 and all(np.linalg.norm(r.x - x) > SAME_MODE for x in found):
            found.append(r.x)
    return max(len(found), 1)


def find_map(log_density: LogDensity, omega: np.ndarray) -> MapResult:
    """MAP and Laplace covariance of a vectorised log density over η ``(n, d) -> (n,)``.

    Parameters
    ----------
    log_density
        The log posterior of η (−inf or NaN where it cannot be evaluated).
    omega
        The prior covariance of η (whitens the search).
    """
    with single_threaded_blas():
        return _find_map(log_density, np.asarray(omega, dtype=float))


def _find_map(log_density: LogDensity, omega: np.ndarray) -> MapResult:
    chol = np.linalg.cholesky(omega)
    dim = omega.shape[0]

    def target_u(u: np.ndarray) -> np.ndarray:
        values = np.asarray(log_density(u @ chol.T), dtype=float)
        return np.where(np.isnan(values), -np.inf, values)

    starts = _starts(target_u, dim)
    results = _climbs(target_u, starts)
    best = min(results, key=lambda r: r.fun)
    h = hessian(target_u, best.x)
    try:
        covariance_u = np.linalg.inv(-h)
        np.linalg.cholesky(covariance_u)
        covariance = chol @ covariance_u @ chol.T
        laplace_ok = bool(np.all(np.isfinite(covariance)))
    except np.linalg.LinAlgError:
        covariance, laplace_ok = omega.copy(), False
    if not laplace_ok:
        covariance = omega.copy()
    return MapResult(
        eta=chol @ best.x,
        log_density=-float(best.fun),
        covariance=covariance,
        laplace_ok=laplace_ok,
        optimizer_success=bool(best.success),
        modes=_count_modes(results),
        starts=len(starts),
        climbs=len(results),
    )
