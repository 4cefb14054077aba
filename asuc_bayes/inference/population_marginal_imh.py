"""Independence Metropolis–Hastings over the marginal model's population parameters.

With every subject's random effects integrated out
(:mod:`asuc_bayes.inference.population_marginal`) the posterior has nine smooth unconstrained
coordinates, and at 72 subjects and more it is close to its Laplace approximation
(the importance efficiency of the proposal below was 0.19–0.58 over the gates studies' 29
cohorts of 72–300 subjects).
An independence sampler (:mod:`asuc_bayes.inference.independence`) then needs no gradient
trajectories: every proposal of every chain is drawn first, their log densities are
evaluated on all cores at once (the compiled C callback releases the GIL), and only the
accept/reject scan is sequential. The chains are judged by the same gates as NUTS.

The run, in the sampler's unconstrained coordinates x:

1. the mode by L-BFGS from the model's start, and the Hessian there by central differences
   of the compiled gradient (:func:`laplace_fit`);
2. proposals from a multivariate t (:data:`IMH_DF`, :data:`IMH_SCALE`) in the whitened
   coordinates z = L⁻¹(x − mode), L L' the inverse Hessian;
3. chains started at their first proposal, :data:`IMH_BURN` burn-in proposals each, every
   :data:`IMH_THIN`-th state kept. The first quarter of the kept draws is a pilot: when its
   proposals' Pareto k̂ exceeds :data:`ADAPT_KHAT` (or a whole run's does, and the run fails
   the gates), the proposal is moved to their importance-weighted mean and covariance and
   the chains start again, at most :data:`MAX_ADAPTATIONS` times (the posterior can be
   skewed away from its mode);
4. the Pareto k̂ of the proposals' importance weights (PSIS, ``arviz_stats``): above
   :data:`KHAT_MAX` the weights' tail is too heavy for the chains to be trusted, whatever their
   R-hat (an independence sampler cannot see what it rarely proposes).

:func:`independence_posterior` returns the draws with what was measured on them, or the reason
the caller should use NUTS instead (a failed optimisation, a Hessian that is not positive
definite, k̂ above the limit, a failed gate).

Examples
--------
>>> import numpy as np
>>> class Gaussian:  # log density and gradient of N(1, 0.5²) in one coordinate
...     def log_density(self, x):
...         return float(-0.5 * ((x[0] - 1.0) / 0.5) ** 2), -(x - 1.0) / 0.25
>>> fit = laplace_fit(Gaussian(), np.zeros(1))
>>> bool(np.allclose(fit.mode, [1.0])), bool(np.allclose(fit.chol, [[0.5]], rtol=1e-5))
(True, True)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from asuc_bayes.inference.independence import (
    IndependenceChains,
    StudentTProposal,
    weighted_moments,
)

__all__ = [
    "ADAPT_KHAT",
    "HESSIAN_STEP",
    "IMH_BURN",
    "IMH_DF",
    "IMH_SCALE",
    "IMH_THIN",
    "KHAT_MAX",
    "MAX_ADAPTATIONS",
    "PILOT_SHARE",
    "IndependenceOutcome",
    "LaplaceFailure",
    "LaplaceFit",
    "importance_diagnostics",
    "independence_posterior",
    "laplace_fit",
]

#: Degrees of freedom and scale of the multivariate-t proposal in the whitened coordinates
#: (the Laplace approximation is N(0, I) there). Cohort 120001, Laplace at the mode, importance
#: efficiency of 4000 proposals (Kish ESS / n): t(10, 1.0) 0.52, t(5, 1.2) 0.46, t(4, 1.5) 0.43,
#: t(30, 1.0) 0.38; heavier tails than the best keep the weights bounded further out.
IMH_DF = 5.0
IMH_SCALE = 1.2
#: Every IMH_THIN-th state of a chain is kept (draws × IMH_THIN proposals per chain after the
#: burn-in): rejected proposals repeat a state, and the random effects are then drawn once per
#: kept population draw. 2 since stop 40 (3 before): a third fewer log densities; the gates
#: study at 120 subjects (README, "Population model") measured the ESS it leaves.
IMH_THIN = 2
#: Burn-in proposals per chain. A chain starts at a draw of the proposal, which is close to the
#: target (k̂ ≤ :data:`KHAT_MAX`), so it needs no adaptation, only to forget its start: with
#: acceptance 0.3–0.5, 100 proposals are 30–50 accepted moves (300, the NUTS warm-up, before
#: stop 40). The settings' ``tune`` is the NUTS warm-up, also of a refused run's NUTS fit.
IMH_BURN = 100
#: Above this Pareto k̂ of the importance weights the run is not used (Vehtari et al. 2024,
#: "Pareto smoothed importance sampling": k̂ > 0.7 means an unreliable importance sampler).
KHAT_MAX = 0.7
#: Kept draws per chain of the pilot, whose proposals' k̂ decides whether the proposal is
#: adapted before the rest of the run: draws // PILOT_SHARE.
PILOT_SHARE = 4
#: A pilot whose proposals' Pareto k̂ exceeds this moves the proposal to their
#: importance-weighted mean and covariance (below :data:`KHAT_MAX`, so that a run near the
#: limit is moved away from it rather than refused), at most :data:`MAX_ADAPTATIONS` times.
#: Measured with 4000 proposals, 120 subjects: cohort 120004 (k̂ 0.83, efficiency 0.05 from
#: the Laplace approximation, its weighted mean 0.9 SD from the mode along θ_CL and θ_V): one
#: move gave k̂ 0.58 (efficiency 0.23), a second 0.27 (0.34); cohort 120008 (0.51, 0.28):
#: 0.36 (0.37), then 0.16 (0.44). In the fit, cohort 120004's first move gave a pilot k̂ of
#: 0.35 but 0.53 over the whole run, whose chains then failed the gates (bulk ESS 95): a
#: whole run that fails its check is moved too when its k̂ is above this.
ADAPT_KHAT = 0.5
MAX_ADAPTATIONS = 2
#: Central-difference step of the Hessian (unconstrained coordinates, posterior SDs ~0.02–0.3).
HESSIAN_STEP = 1e-4


class DensityModel(Protocol):
    """A log density with its gradient at unconstrained points (``MarginalCallbackModel``)."""

    def log_density(self, x: np.ndarray) -> tuple[float, np.ndarray]: ...


class LaplaceFailure(Exception):
    """The Laplace approximation could not be built (the message says why)."""


@dataclass(frozen=True)
class LaplaceFit:
    """The mode (unconstrained), the Cholesky factor of the inverse Hessian there, the log
    density at the mode and the number of log-density evaluations spent."""

    mode: np.ndarray
    chol: np.ndarray
    log_density: float
    evaluations: int


def laplace_fit(model: DensityModel, start: np.ndarray) -> LaplaceFit:
    """The mode of ``model``'s log density by L-BFGS from ``start`` and the Cholesky factor of
    the inverse of its Hessian there (central differences of the gradient, symmetrised).

    Raises :class:`LaplaceFailure` when the optimiser does not converge or the Hessian is not
    negative definite."""
    from scipy.optimize import minimize

    evaluations = 0

    def negative(x):
        nonlocal evaluations
        evaluations += 1
        value, gradient = model.log_density(x)
        if not np.isfinite(value):
            return 1e300, np.zeros_like(x)
        return -value, -gradient

    result = minimize(negative, np.asarray(start, dtype=float), jac=True, method="L-BFGS-B")
    if not result.success or not np.isfinite(result.fun):
        raise LaplaceFailure(f"the mode was not found ({result.message})")
    mode = result.x
    steps = np.eye(len(mode)) * HESSIAN_STEP
    hessian = np.array(
        [(negative(mode + e)[1] - negative(mode - e)[1]) / (2 * HESSIAN_STEP) for e in steps]
    )
    hessian = 0.5 * (hessian + hessian.T)
    try:
        np.linalg.cholesky(hessian)  # positive definite, or LinAlgError
        chol = np.linalg.cholesky(np.linalg.inv(hessian))
    except np.linalg.LinAlgError as error:
        raise LaplaceFailure("the Hessian at the mode is not positive definite") from error
    return LaplaceFit(mode, chol, float(-result.fun), evaluations)


@dataclass(frozen=True)
class IndependenceOutcome:
    """An independence run: kept draws (chain, draw, dim) in the unconstrained coordinates,
    each chain's acceptance rate, the Pareto k̂ and Kish efficiency (ESS / n) of the
    proposals' importance weights, the log-density evaluations (the Laplace fit's and the
    discarded runs' included), the reason not to use it (empty when usable), whether the
    chains were doubled (:func:`independence_posterior`'s ``check``) and how many times the
    proposal was moved to a run's weighted moments."""

    draws: np.ndarray | None
    acceptance: np.ndarray | None
    khat: float
    importance_efficiency: float
    evaluations: int
    refused: str = ""
    extended: bool = False
    adaptations: int = 0

    @property
    def usable(self) -> bool:
        return not self.refused


def _batch_log_density(model: DensityModel, workers: int):
    """Log densities of points (n, dim) on ``workers`` threads (the C callback releases the
    GIL), by the model's ``log_density_value`` when it has one (no gradient); −inf where the
    model cannot evaluate one."""

    value = getattr(model, "log_density_value", None)

    def one(x):
        return value(x) if value is not None else model.log_density(x)[0]

    def batch(points: np.ndarray) -> np.ndarray:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return np.fromiter(pool.map(one, points), dtype=float, count=len(points))

    return batch


def importance_diagnostics(log_weight: np.ndarray) -> tuple[float, float]:
    """(Pareto k̂ of the right tail, Kish efficiency ESS / n) of importance weights given as
    logs (−inf: a zero weight). k̂ is ``arviz_stats``' estimate on the weights over their
    maximum.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> khat, efficiency = importance_diagnostics(-0.9 * np.log(rng.uniform(size=10000)))
    >>> bool(khat > KHAT_MAX), bool(efficiency < 0.5)  # a Pareto tail of index 1/0.9
    (True, True)
    >>> khat, efficiency = importance_diagnostics(0.1 * rng.normal(size=10000))
    >>> bool(khat < 0.3), bool(efficiency > 0.98)
    (True, True)
    """
    from arviz_stats.base import array_stats

    log_weight = np.asarray(log_weight, dtype=float)
    finite = log_weight[np.isfinite(log_weight)]
    if len(finite) < 2:
        return math.nan, 0.0
    weight = np.exp(finite - finite.max())
    khat = float(array_stats.pareto_khat(weight, chain_axis=None, draw_axis=-1, tail="right"))
    return khat, float(weight.sum() ** 2 / (weight**2).sum() / len(log_weight))


class _ProposalRun:
    """Chains of one proposal: a multivariate t (:data:`IMH_DF`, :data:`IMH_SCALE`) placed at
    ``centre`` with scale factor ``chol`` (x = centre + chol z); every evaluated proposal x
    and its importance log weight are kept (for k̂ and the weighted moments)."""

    def __init__(self, batch, centre, chol, *, chains, burn, random_seed):
        self.centre, self.chol = centre, chol
        self.proposal = StudentTProposal(len(centre), IMH_DF, IMH_SCALE)
        self.points: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []

        def log_target(z: np.ndarray) -> np.ndarray:
            x = self.to_x(z)
            values = batch(x)
            self.points.append(x)
            self.weights.append(values - self.proposal.log_density(z))
            return values

        self.chains = IndependenceChains(
            log_target,
            self.proposal,
            chains=chains,
            burn=burn,
            thin=IMH_THIN,
            random_seed=random_seed,
        )

    def to_x(self, z: np.ndarray) -> np.ndarray:
        return self.centre + z @ self.chol.T

    @property
    def log_weight(self) -> np.ndarray:
        return np.concatenate(self.weights)

    def weighted_moments(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The importance-weighted mean of the evaluated proposals and the Cholesky factor of
        their weighted covariance (:func:`~asuc_bayes.inference.independence.weighted_moments`):
        the target's moments estimated from this run; ``None`` when the weights hold too few
        points for a covariance (Kish ESS < 2 × dim) or it is singular."""
        log_weight, points = self.log_weight, np.concatenate(self.points)
        finite = np.isfinite(log_weight)
        if not finite.any():
            return None
        weight = np.exp(log_weight[finite] - log_weight[finite].max())
        if weight.sum() ** 2 / (weight**2).sum() < 2 * points.shape[1]:
            return None
        moments = weighted_moments(points[finite], weight)
        if moments is None:
            return None
        try:
            return moments[0], np.linalg.cholesky(moments[1])
        except np.linalg.LinAlgError:
            return None


def _moved(run: _ProposalRun) -> tuple[np.ndarray, np.ndarray] | None:
    """The weighted moments of ``run``'s proposals when their Pareto k̂ exceeds
    :data:`ADAPT_KHAT` (and the moments can be estimated), else ``None``."""
    khat, _ = importance_diagnostics(run.log_weight)
    return run.weighted_moments() if khat > ADAPT_KHAT else None


@dataclass
class _Runs:
    """The successive proposals' runs of one independence fit: the current run, its kept
    draws (chain, draw, dim) in z, the adaptations made and the log densities spent on
    discarded runs (the Laplace fit's included)."""

    batch: Callable[[np.ndarray], np.ndarray]
    chains: int
    burn: int
    seeds: list
    spent: int
    adaptations: int = 0
    run: _ProposalRun | None = None
    kept: np.ndarray | None = None

    def start(self, centre: np.ndarray, chol: np.ndarray, draws: int) -> None:
        """New chains from the proposal at ``centre``, ``chol``, ``draws`` kept per chain; the
        current run, if any, is discarded (its evaluations counted, an adaptation made)."""
        if self.run is not None:
            self.spent += len(self.run.log_weight)
            self.adaptations += 1
        self.run = _ProposalRun(
            self.batch,
            centre,
            chol,
            chains=self.chains,
            burn=self.burn,
            random_seed=self.seeds[self.adaptations],
        )
        self.kept = self.run.chains.extend(draws)

    def extend(self, draws: int) -> None:
        self.kept = np.concatenate([self.kept, self.run.chains.extend(draws)], axis=1)

    def moved(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The next proposal when the current one's k̂ calls for a move and moves are left."""
        return None if self.adaptations == MAX_ADAPTATIONS else _moved(self.run)

    def outcome(self, z: np.ndarray, extended: bool) -> IndependenceOutcome:
        log_weight = self.run.log_weight
        khat, efficiency = importance_diagnostics(log_weight)
        refused = ""
        if not math.isfinite(khat):
            refused = "the importance weights' Pareto k̂ could not be estimated"
        elif khat > KHAT_MAX:
            refused = f"Pareto k̂ {khat:.2f} > {KHAT_MAX}"
        return IndependenceOutcome(
            self.run.to_x(z),
            self.run.chains.acceptance,
            khat,
            efficiency,
            self.spent + len(log_weight),
            refused,
            extended,
            self.adaptations,
        )


def independence_posterior(
    model: DensityModel,
    start: np.ndarray,
    *,
    chains: int,
    draws: int,
    burn: int,
    random_seed: int,
    workers: int | None = None,
    check: Callable[[np.ndarray], str] | None = None,
) -> IndependenceOutcome:
    """Independence Metropolis–Hastings from the Laplace approximation of ``model`` (module
    docstring): ``chains`` × ``draws`` kept draws after ``burn`` proposals per chain, every
    :data:`IMH_THIN`-th state. The draws do not depend on ``workers`` (all proposals and
    uniforms come from ``random_seed``'s generators before any evaluation).

    The proposal is moved to the importance-weighted mean and covariance of a run's
    proposals, and the chains start again from it, when their Pareto k̂ exceeds
    :data:`ADAPT_KHAT` (at most :data:`MAX_ADAPTATIONS` times; ``adaptations`` in the
    outcome): after a pilot (the first ``draws`` // :data:`PILOT_SHARE` kept draws per
    chain), and after a whole run that fails ``check``. k̂, the efficiency and the draws are
    those of the last proposal's chains.

    ``check`` (draws (chain, draw, dim) → "" or why they fail, e.g. the gates) is asked of
    each whole run; when the last proposal's run fails it, every chain is continued by as
    many proposals again, every second state of the doubled chains is kept (``draws`` per
    chain, as before) and ``check`` is asked again: its answer is then final (``extended`` in
    the outcome)."""
    try:
        laplace = laplace_fit(model, start)
    except LaplaceFailure as failure:
        return IndependenceOutcome(None, None, math.nan, math.nan, 0, str(failure))
    runs = _Runs(
        _batch_log_density(model, workers or os.cpu_count() or 1),
        chains,
        burn,
        [random_seed, *np.random.SeedSequence(random_seed).spawn(MAX_ADAPTATIONS)],
        laplace.evaluations,
    )
    pilot = min(draws, max(1, draws // PILOT_SHARE))
    proposal = (laplace.mode, laplace.chol)
    while proposal is not None:  # pilots: moved while their k̂ is too high
        runs.start(*proposal, pilot)
        proposal = runs.moved()
    if draws > pilot:
        runs.extend(draws - pilot)
    result = runs.outcome(runs.kept, False)
    if not result.usable or check is None or not check(result.draws):
        return result
    proposal = runs.moved()
    if proposal is not None:  # a failed whole run with a heavy tail: one more proposal
        runs.start(*proposal, draws)
        result = runs.outcome(runs.kept, False)
        if not result.usable or not check(result.draws):
            return result
    doubled = np.concatenate([runs.kept, runs.run.chains.extend(draws)], axis=1)[:, 1::2]
    result = runs.outcome(doubled, True)
    if not result.usable:
        return result
    return dataclasses.replace(result, refused=check(result.draws))


def expanded_posterior(model: Any, draws: np.ndarray):
    """The stored variables (names, shapes of the model's metadata) of unconstrained draws
    (chain, draw, dim) as an xarray Dataset with dims (chain, draw, ...)."""
    import xarray as xr

    meta = model.callbacks.metadata
    chains, n, _ = draws.shape
    values = np.array([model.expanded(x) for x in draws.reshape(chains * n, -1)])
    variables, offset = {}, 0
    for name, shape in zip(meta.names, meta.shapes, strict=True):
        size = int(np.prod(shape)) if len(shape) else 1
        block = values[:, offset : offset + size].reshape(chains, n, *shape)
        dims = ("chain", "draw", *[f"{name}_dim_{k}" for k in range(len(shape))])
        variables[name] = (dims, block)
        offset += size
    return xr.Dataset(variables, coords={"chain": np.arange(chains), "draw": np.arange(n)})
