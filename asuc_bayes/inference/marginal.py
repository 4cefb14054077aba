"""Marginal likelihood of a patient's data and weighted posterior nodes, under one model.

ln p(y | model) = ln ∫ p(y | η) p(η) dη, with η ~ N(0, Ω) the random effects of a
:class:`~asuc_bayes.inference.problem.PatientProblem`. Two methods return the same
:class:`WeightedPosterior` (nodes η_j with normalised posterior weights and the evidence):

- :func:`grid_quadrature` — a tensor-product trapezoid rule over ±8 prior SDs in
  prior-whitened coordinates, its step set by the Laplace SDs: the default for up to
  :data:`QUADRATURE_MAX_DIM` random effects (robust to non-Gaussian posteriors);
- :func:`adaptive_quadrature` — tensor-product Gauss–Hermite around the MAP with the Laplace
  covariance (η = m + C √2 x): exact up to the rule's order for near-Gaussian posteriors,
  slow to converge otherwise (a cross-check and the 4-effect reference of the tests);
- :func:`importance_sampling` — draws from a defensive mixture of a multivariate t around the
  MAP (df 4, scale 1.5 × Laplace) and the prior (weight 0.2, so every weight is at most
  5 × the likelihood); reports its Monte Carlo standard error (delta method) and ESS.

:func:`prior_nodes` gives the prior N(0, Ω) as Gauss–Hermite nodes (for a-priori predictions).

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.pk import DoseArrays
>>> from asuc_bayes.spec import load_declaration
>>> from asuc_bayes.inference.problem import PatientProblem
>>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
>>> problem = PatientProblem.build(load_declaration("niyigena2025"), doses,
...                                time_day=[7.0], value_mg_l=[15.0],
...                                covariates={"WT": 70.0, "CRP": 30.0})
>>> post = posterior(problem)
>>> post.method, bool(np.isclose(post.weight.sum(), 1.0))
('grid', True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.special
import scipy.stats

from asuc_bayes.inference.map import MapResult, find_map, single_threaded_blas
from asuc_bayes.inference.problem import PatientProblem

__all__ = [
    "IS_DRAWS",
    "QUADRATURE_MAX_DIM",
    "QUADRATURE_NODES",
    "WeightedPosterior",
    "adaptive_quadrature",
    "gauss_hermite_normal",
    "grid_quadrature",
    "importance_sampling",
    "pareto_k",
    "posterior",
    "prior_nodes",
]

#: Adaptive Gauss–Hermite is used up to this many random effects (20² nodes for two).
QUADRATURE_MAX_DIM = 2
#: Gauss–Hermite nodes per dimension.
QUADRATURE_NODES = 20
#: Trapezoid grid: half-width (prior SDs) and nodes per dimension.
GRID_WIDTH_PRIOR_SD = 8.0
GRID_MIN_NODES = 65
GRID_MAX_NODES = 801
#: Grid step as a fraction of the smallest Laplace SD: the trapezoid rule's relative error on a
#: normal of SD σ with step h is ≈ 2 exp(−2π²σ²/h²), 2e-24 at h = 0.6 σ.
GRID_STEP_LAPLACE_SD = 0.6
#: Nodes whose posterior weight is below exp(−this) of the largest are dropped from the result.
NEGLIGIBLE_LOG_WEIGHT = 35.0
#: Importance draws for more random effects.
IS_DRAWS = 4000
IS_DF = 4.0
IS_SCALE = 1.5
IS_PRIOR_WEIGHT = 0.2


@dataclass(frozen=True)
class WeightedPosterior:
    """Posterior nodes η ``(n, d)`` with normalised weights ``(n,)`` and the log evidence.

    ``mcse`` is the Monte Carlo standard error of ``log_marginal`` (0 for quadrature) and
    ``ess`` the effective sample size of the weights (Kish).
    """

    eta: np.ndarray
    weight: np.ndarray
    log_marginal: float
    method: str
    mcse: float
    ess: float
    map: MapResult | None = None
    #: Pareto k̂ of the importance weights' tail (None for quadrature); above 0.7 the
    #: estimate is unreliable (Vehtari et al. 2024)
    pareto_k: float | None = None


@lru_cache(maxsize=16)
def _hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal Gauss–Hermite nodes and weights (summing to 1)."""
    x, w = np.polynomial.hermite.hermgauss(n)
    return math.sqrt(2.0) * x, w / math.sqrt(math.pi)


def gauss_hermite_normal(
    mean: np.ndarray, covariance: np.ndarray, n: int = QUADRATURE_NODES
) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss–Hermite nodes ``(n^d, d)`` and weights of N(mean, covariance).

    Examples
    --------
    >>> nodes, w = gauss_hermite_normal(np.array([1.0, 0.0]), np.diag([4.0, 1.0]), 5)
    >>> bool(np.isclose(w @ nodes[:, 0], 1.0)), bool(np.isclose(w @ (nodes[:, 0] - 1) ** 2, 4))
    (True, True)
    """
    mean = np.asarray(mean, dtype=float)
    dim = mean.size
    x, w = _hermite(n)
    grid = np.stack(np.meshgrid(*([x] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
    weights = np.prod(np.stack(np.meshgrid(*([w] * dim), indexing="ij"), -1).reshape(-1, dim), 1)
    chol = np.linalg.cholesky(np.asarray(covariance, dtype=float))
    return mean + grid @ chol.T, weights


def prior_nodes(problem: PatientProblem, n: int = QUADRATURE_NODES) -> WeightedPosterior:
    """The prior N(0, Ω) as weighted nodes (Gauss–Hermite; ``n`` per dimension, capped so that
    there are at most ~10⁴ nodes); its evidence is 0 (no data)."""
    n = min(n, max(3, int(10_000 ** (1.0 / problem.n_eta))))
    eta, weight = gauss_hermite_normal(np.zeros(problem.n_eta), problem.omega, n)
    return WeightedPosterior(eta, weight, 0.0, "prior", 0.0, _kish(weight))


def _kish(weight: np.ndarray) -> float:
    return float(1.0 / np.sum(weight * weight))


def _normalise(log_w: np.ndarray) -> tuple[np.ndarray, float]:
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    total = float(scipy.special.logsumexp(log_w))
    if not np.isfinite(total):
        raise ValueError("the patient's data have zero likelihood at every node")
    return np.exp(log_w - total), total


def adaptive_quadrature(
    problem: PatientProblem, n: int = QUADRATURE_NODES, mode: MapResult | None = None
) -> WeightedPosterior:
    """Adaptive Gauss–Hermite evidence and posterior nodes (see the module docstring).

    With nodes η_j = m + C √2 x_j of N(m, S) (S the Laplace covariance) and weights w_j,
    p(y) = Σ_j w_j p(y, η_j) / N(η_j; m, S).
    """
    with single_threaded_blas():
        mode = mode or find_map(problem.log_posterior, problem.omega)
        eta, w = gauss_hermite_normal(mode.eta, mode.covariance, n)
        log_q = scipy.stats.multivariate_normal(mode.eta, mode.covariance).logpdf(eta)
        log_w = np.log(w) + np.asarray(problem.log_posterior(eta), dtype=float) - log_q
    weight, log_marginal = _normalise(log_w)
    return WeightedPosterior(eta, weight, log_marginal, "quadrature", 0.0, _kish(weight), mode)


def grid_quadrature(
    problem: PatientProblem, mode: MapResult | None = None, width: float = GRID_WIDTH_PRIOR_SD
) -> WeightedPosterior:
    """Tensor-product trapezoid rule over ±``width`` prior SDs in prior-whitened coordinates
    u (η = L u, Ω = L Lᵀ): p(y) = |L| h^d Σ_k p(y, L u_k).

    The step h is at most 0.25 prior SD and 0.6 of the posterior's smallest Laplace SD (in u),
    with :data:`GRID_MIN_NODES`–:data:`GRID_MAX_NODES` nodes per dimension. Unlike a rule
    centred on the MAP, it also integrates posterior mass far from the mode (ridges, minor
    modes: found in test patients with censored records, where adaptive Gauss–Hermite was off
    by 0.01 in ln p(y)).
    """
    with single_threaded_blas():
        mode = mode or find_map(problem.log_posterior, problem.omega)
        chol = np.linalg.cholesky(problem.omega)
        inverse = np.linalg.inv(chol)
        smallest = math.sqrt(max(np.linalg.eigvalsh(inverse @ mode.covariance @ inverse.T)[0], 0))
        step = min(0.25, GRID_STEP_LAPLACE_SD * smallest) if smallest > 0 else 0.25
        n = int(np.clip(math.ceil(2.0 * width / step) + 1, GRID_MIN_NODES, GRID_MAX_NODES)) | 1
        axis = np.linspace(-width, width, n)
        h = axis[1] - axis[0]
        dim = problem.n_eta
        u = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
        eta = u @ chol.T
        log_joint = np.asarray(problem.log_posterior(eta), dtype=float)
    edge = np.sum(np.isclose(np.abs(u), width), axis=1)  # trapezoid end weights 1/2
    log_w = log_joint - edge * math.log(2.0)
    weight, log_sum = _normalise(log_w)
    log_marginal = log_sum + dim * math.log(h) + float(np.sum(np.log(np.diag(chol))))
    keep = log_w > np.max(log_w) - NEGLIGIBLE_LOG_WEIGHT
    weight = weight[keep] / weight[keep].sum()
    return WeightedPosterior(eta[keep], weight, log_marginal, "grid", 0.0, _kish(weight), mode)


def _gpd_shape(exceedances: np.ndarray) -> float:
    """Zhang & Stephens (2009) estimate of the generalised Pareto shape of sorted positive
    exceedances, with the weak prior of PSIS (Vehtari et al. 2024, as in ArviZ)."""
    x = np.sort(exceedances)
    n = x.size
    m = 30 + int(math.sqrt(n))
    b = 1.0 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))
    b = b / (3.0 * x[int(n / 4 + 0.5) - 1]) + 1.0 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    log_lik = n * (np.log(-(b / k)) - k - 1.0)
    weights = np.exp(log_lik - scipy.special.logsumexp(log_lik))
    keep = weights >= 10 * np.finfo(float).eps
    weights = weights[keep] / weights[keep].sum()
    b_post = float(np.sum(b[keep] * weights))
    k_post = float(np.log1p(-b_post * x).mean())
    return (n * k_post + 10 * 0.5) / (n + 10)


def pareto_k(log_weight: np.ndarray) -> float | None:
    """Pareto k̂ of the largest min(n/5, 3√n) importance weights (PSIS diagnostic); ``None``
    when the tail is too short or flat to fit.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(pareto_k(np.log(rng.pareto(2.0, 20_000) + 1.0)), 1)  # shape 1/2
    0.5
    """
    log_w = np.sort(np.asarray(log_weight, dtype=float)[np.isfinite(log_weight)])
    n = log_w.size
    tail = int(min(n / 5.0, 3.0 * math.sqrt(n)))
    if tail < 5:
        return None
    w = np.exp(log_w - log_w[-1])
    exceedances = w[-tail:] - w[-tail - 1]
    if not np.all(exceedances > 0):
        return None
    return _gpd_shape(exceedances)


def _proposal_logpdf(eta: np.ndarray, mode: MapResult, omega: np.ndarray) -> np.ndarray:
    t = scipy.stats.multivariate_t(mode.eta, IS_SCALE**2 * mode.covariance, df=IS_DF)
    prior = scipy.stats.multivariate_normal(np.zeros(mode.eta.size), omega)
    return np.logaddexp(
        math.log(1.0 - IS_PRIOR_WEIGHT) + t.logpdf(eta),
        math.log(IS_PRIOR_WEIGHT) + prior.logpdf(eta),
    )


def importance_sampling(
    problem: PatientProblem,
    n_draws: int = IS_DRAWS,
    *,
    random_seed: int = 0,
    mode: MapResult | None = None,
) -> WeightedPosterior:
    """Importance-sampling evidence and weighted posterior draws (see the module docstring).

    The MCSE of ln p̂(y) is the delta-method SE sd(w)/(√n · mean(w)) of the raw weights.
    """
    rng = np.random.default_rng(random_seed)
    with single_threaded_blas():
        mode = mode or find_map(problem.log_posterior, problem.omega)
        dim = problem.n_eta
        n_prior = int(rng.binomial(n_draws, IS_PRIOR_WEIGHT))
        t = scipy.stats.multivariate_t(mode.eta, IS_SCALE**2 * mode.covariance, df=IS_DF)
        from_t = np.asarray(t.rvs(size=n_draws - n_prior, random_state=rng)).reshape(-1, dim)
        from_prior = rng.multivariate_normal(np.zeros(dim), problem.omega, size=n_prior)
        eta = np.concatenate([from_t, from_prior])
        log_q = _proposal_logpdf(eta, mode, problem.omega)
        log_w = np.asarray(problem.log_posterior(eta), dtype=float) - log_q
    weight, log_sum = _normalise(log_w)
    log_marginal = log_sum - math.log(n_draws)
    raw = weight * n_draws  # w / mean(w)
    mcse = float(np.std(raw) / math.sqrt(n_draws))
    return WeightedPosterior(
        eta, weight, log_marginal, "importance", mcse, _kish(weight), mode, pareto_k(log_w)
    )


def posterior(problem: PatientProblem, *, random_seed: int = 0) -> WeightedPosterior:
    """The prior without data; the trapezoid grid (:func:`grid_quadrature`) up to
    :data:`QUADRATURE_MAX_DIM` random effects; importance sampling beyond."""
    if problem.time_day.size == 0:
        return prior_nodes(problem)
    if problem.n_eta <= QUADRATURE_MAX_DIM:
        return grid_quadrature(problem)
    return importance_sampling(problem, random_seed=random_seed)
