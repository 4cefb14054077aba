"""The default posterior sampler for any number of random effects, with gates and a fallback.

1. Independence Metropolis–Hastings (:mod:`asuc_bayes.inference.independence`) in the coordinates z
of
   the Laplace approximation (η = m + C z, C Cᵀ the Laplace covariance at the MAP m): the
   proposal is a multivariate t (df 4, scale 1.5) mixed with the prior of η (weight 0.2, the
   defensive component that bounds every importance weight by max likelihood / 0.2), as
   today's two-effect engine (:mod:`asuc_bayes.inference.forecast`) does. The log posterior of all
   the
   proposals of all chains is one vectorised NumPy call.
2. Gates (as today's): rank-normalised split R-hat ≤ 1.01 and bulk ESS ≥ 400 for every η
   (:func:`asuc_bayes.inference.diagnostics.rank_diagnostics`).
3. If a gate fails: NUTS (PyMC) on the graph of the same declaration (:mod:`.pymc_model`),
   started at the MAP. If NUTS fails a gate too, the result is flagged ``unconverged``.

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.inference.map import find_map
>>> target = lambda eta: -0.5 * np.sum(((eta - 0.2) / 0.3) ** 2, axis=-1)
>>> mode = find_map(target, np.eye(3))
>>> draws, info = independence_draws(target, mode, np.eye(3), random_seed=1)
>>> draws.shape, info["passed"]
((4, 1000, 3), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from asuc_bayes.inference.diagnostics import rank_diagnostics
from asuc_bayes.inference.independence import IndependenceChains, MixtureProposal, StudentTProposal
from asuc_bayes.inference.map import MapResult

__all__ = [
    "ESS_BULK_MIN",
    "RHAT_MAX",
    "LaplacePriorProposal",
    "SamplerOptions",
    "convergence",
    "independence_chains",
    "independence_draws",
]

RHAT_MAX = 1.01
ESS_BULK_MIN = 400.0
IMH_BURN = 50
IMH_THIN = 4
IMH_DF = 4.0
IMH_SCALE = 1.5
IMH_PRIOR_WEIGHT = 0.2
#: Draws per chain of an adaptive run's first piece, and its cap (MAX_DRAWS_FACTOR x
#: DEFAULT_DRAWS): those of the default path (``asuc_bayes.inference.forecast``; tested equal). Not
#: imported from it, so that ``asuc_bayes.inference.forecast`` may import this package.
DEFAULT_DRAWS = 1000
MAX_DRAWS_FACTOR = 8


@dataclass(frozen=True)
class SamplerOptions:
    """Chains and draws of the posterior; NUTS settings of the fallback.

    ``draws`` (per chain) fixes the size of the run; None (default) makes it adaptive: a first
    piece of 1000 draws is continued until the Monte Carlo standard error of the 2.5 % and
    97.5 % quantiles of ln(AUC/CL) and of the 90-day risk is at most 0.05 posterior SD, or
    ``max_draws`` (8 x 1000) is reached: the first piece, cap and target of the default path
    (:class:`asuc_bayes.inference.forecast.SamplerSettings`; see
    :mod:`asuc_bayes.inference.precision`).

    >>> SamplerOptions().initial_draws, SamplerOptions().max_draws, SamplerOptions().adaptive
    (1000, 8000, True)
    >>> SamplerOptions(draws=500).max_draws
    500
    """

    chains: int = 4
    draws: int | None = None
    tune: int = 1000
    target_accept: float = 0.95
    #: "imh" (default: IMH, NUTS when a gate fails) or "nuts" (NUTS only)
    sampler: str = "imh"

    @property
    def adaptive(self) -> bool:
        """No ``draws`` given: the run is extended until it reaches the stated precision."""
        return self.draws is None

    @property
    def initial_draws(self) -> int:
        """Draws per chain of the first (for a fixed run: the only) piece of the run."""
        return DEFAULT_DRAWS if self.draws is None else self.draws

    @property
    def max_draws(self) -> int:
        """Draws per chain an adaptive run stops at, met or not (a fixed run: ``draws``)."""
        return MAX_DRAWS_FACTOR * DEFAULT_DRAWS if self.draws is None else self.draws

    def __post_init__(self) -> None:
        for name in ("chains", "draws", "tune"):
            value = getattr(self, name)
            if name == "draws" and value is None:
                continue
            if not isinstance(value, int) or value < (0 if name == "tune" else 1):
                raise ValueError(f"sampler option '{name}' must be a positive integer, got {value}")
        if self.chains < 2:
            raise ValueError("sampler option 'chains' must be at least 2 (R-hat needs them)")
        if self.sampler not in ("imh", "nuts"):
            raise ValueError(
                f"sampler option 'sampler' must be 'imh' or 'nuts', got {self.sampler}"
            )


class LaplacePriorProposal:
    """The prior N(0, Ω) of η as a distribution of z, η = m + C z (density × |det C|)."""

    def __init__(self, omega: np.ndarray, shift: np.ndarray, chol: np.ndarray):
        self.omega_chol = np.linalg.cholesky(np.asarray(omega, dtype=float))
        self.shift = np.asarray(shift, dtype=float)
        self.chol = np.asarray(chol, dtype=float)
        dim = self.shift.size
        self._constant = (
            -0.5 * dim * np.log(2.0 * np.pi)
            - np.sum(np.log(np.diag(self.omega_chol)))
            + np.sum(np.log(np.abs(np.diag(self.chol))))
        )

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        eta = rng.standard_normal((n, self.shift.size)) @ self.omega_chol.T
        return np.linalg.solve(self.chol, (eta - self.shift).T).T

    def log_density(self, z: np.ndarray) -> np.ndarray:
        eta = self.shift + z @ self.chol.T
        white = np.linalg.solve(self.omega_chol, eta.T).T
        return self._constant - 0.5 * np.sum(white * white, axis=-1)


def convergence(eta: np.ndarray, divergences: int = 0) -> dict[str, Any]:
    """R-hat (max) and bulk ESS (min) over the η of ``(chain, draw, n_eta)`` draws; gates."""
    rhats, esss = rank_diagnostics(eta)
    rhat = float(np.nan if np.isnan(rhats).any() else rhats.max())
    ess = float(np.nan if np.isnan(esss).any() else esss.min())
    passed = bool(divergences == 0 and rhat <= RHAT_MAX and ess >= ESS_BULK_MIN)
    return {
        "rhat_max": rhat,
        "ess_bulk_min": ess,
        "divergences": int(divergences),
        "passed": passed,
    }


def independence_chains(
    log_density: Callable[[np.ndarray], np.ndarray],
    mode: MapResult,
    omega: np.ndarray,
    *,
    chains: int = 4,
    random_seed: int | None = 0,
) -> tuple[IndependenceChains, Callable[[np.ndarray], np.ndarray]]:
    """Continuable IMH chains at the MAP (see the module docstring) and the map of their
    draws z to η: ``run.extend(n)`` gives the next ``n`` draws of every chain in z."""
    shift = np.asarray(mode.eta, dtype=float)
    chol = np.linalg.cholesky(mode.covariance)

    def log_target(z: np.ndarray) -> np.ndarray:
        return log_density(shift + z @ chol.T)

    proposal = MixtureProposal(
        [StudentTProposal(shift.size, IMH_DF, IMH_SCALE), LaplacePriorProposal(omega, shift, chol)],
        [1.0 - IMH_PRIOR_WEIGHT, IMH_PRIOR_WEIGHT],
    )
    run = IndependenceChains(
        log_target, proposal, chains=chains, burn=IMH_BURN, thin=IMH_THIN, random_seed=random_seed
    )
    return run, lambda z: shift + z @ chol.T


def independence_draws(
    log_density: Callable[[np.ndarray], np.ndarray],
    mode: MapResult,
    omega: np.ndarray,
    *,
    options: SamplerOptions | None = None,
    random_seed: int | None = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """IMH draws of η ``(chains, initial_draws, n_eta)`` and their diagnostics (with
    ``passed``): the first piece of a run (:func:`independence_chains`), never extended."""
    options = options or SamplerOptions()
    run, to_eta = independence_chains(
        log_density, mode, omega, chains=options.chains, random_seed=random_seed
    )
    eta = to_eta(run.extend(options.initial_draws))
    info = {**convergence(eta), "acceptance": float(run.acceptance.mean())}
    return eta, info
