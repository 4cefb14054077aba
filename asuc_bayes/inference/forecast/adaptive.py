"""How good a run of the default engine is, and how long it runs: the R-hat/ESS/divergence
gates, the stated Monte Carlo precision (:class:`Precision`) and the adaptive run length
(:func:`until_precise`).

(The library models reuse :class:`Precision` and its target in
:mod:`asuc_bayes.inference.precision`.)

Examples
--------
>>> p = Precision(PRECISION_TARGET, worst=0.08, draws=1000, max_draws=8000, adaptive=True)
>>> p.met, p.next_draws()
(False, 3100)
>>> Precision(PRECISION_TARGET, 0.04, 1000, 8000, True).as_dict()["met"]
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from asuc_bayes.data.dataset import Patient
from asuc_bayes.inference.diagnostics import (
    ESS_BULK_MIN,
    RHAT_MAX,
    monte_carlo_errors,
    rank_diagnostics,
)
from asuc_bayes.inference.forecast.quantities import derived_quantities
from asuc_bayes.inference.forecast.settings import SamplerSettings
from asuc_bayes.inference.forecast.summary import json_number
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "ESS_BULK_MIN",
    "PRECISION_PROBS",
    "PRECISION_QUANTITIES",
    "PRECISION_TARGET",
    "RHAT_MAX",
    "Precision",
    "convergence",
    "run_precision",
    "until_precise",
]

#: The stated precision of an adaptive run: the Monte Carlo standard error of the 2.5 % and
#: 97.5 % quantiles of each PRECISION_QUANTITIES, in posterior SDs of that quantity. With
#: independent draws a tail quantile reaches it at ~2900 effective draws (a normal posterior).
PRECISION_TARGET = 0.05
PRECISION_QUANTITIES = ("ln_auc_cl", "risk_90d")
PRECISION_PROBS = (0.025, 0.975)


@dataclass(frozen=True)
class Precision:
    """The Monte Carlo precision of a run, against the stated target.

    ``worst`` is the largest MCSE of the 2.5 % and 97.5 % quantiles of the
    :data:`PRECISION_QUANTITIES`, each in posterior SDs of its quantity (infinite where an
    MCSE is undefined); the target is met when ``worst <= target``. ``draws`` per chain;
    ``adaptive`` says whether the run was extended to reach the target (within
    ``max_draws``) or had its size fixed by ``draws``.
    """

    target: float
    worst: float
    draws: int
    max_draws: int
    adaptive: bool

    @property
    def met(self) -> bool:
        return bool(self.worst <= self.target)

    def next_draws(self) -> int:
        """Draws per chain expected to meet the target (MCSE ∝ 1/√draws), with a 20 % margin,
        at least a quarter more than now, rounded up to 100 and capped at ``max_draws``."""
        if not np.isfinite(self.worst):
            return self.max_draws
        wanted = self.draws * 1.2 * (self.worst / self.target) ** 2
        wanted = max(wanted, 1.25 * self.draws)
        return int(min(self.max_draws, 100 * np.ceil(wanted / 100)))

    def as_dict(self) -> dict[str, Any]:
        """The JSON contract's ``diagnostics.precision``."""
        return {
            "target": self.target,
            "met": self.met,
            "worst": json_number(self.worst),
            "draws": self.draws,
            "max_draws": self.max_draws,
            "adaptive": self.adaptive,
        }


def run_precision(
    spec: ModelSpec,
    patient: Patient,
    eta: np.ndarray,
    settings: SamplerSettings,
    *,
    independent: bool = False,
) -> Precision:
    """The :class:`Precision` of η draws (chain, draw, 2) of ``patient``."""
    derived = derived_quantities(spec, patient, eta)
    values = np.stack([derived[name] for name in PRECISION_QUANTITIES], axis=-1)
    errors = monte_carlo_errors(values, PRECISION_PROBS, independent=independent)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(errors.quantile == 0.0, 0.0, errors.quantile / errors.sd)
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)
    return Precision(
        PRECISION_TARGET,
        float(ratio.max()),
        int(eta.shape[1]),
        settings.max_draws,
        settings.adaptive,
    )


def until_precise(
    spec: ModelSpec,
    patient: Patient,
    eta: np.ndarray,
    settings: SamplerSettings,
    extend: Callable[[int], np.ndarray],
    *,
    independent: bool = False,
) -> tuple[np.ndarray, Precision]:
    """Continue a run until its :class:`Precision` is met (adaptive ``settings`` only).

    ``extend(n)`` returns the next ``n`` draws (chain, n, 2) of the same run (continued chains
    or fresh independent pieces, never a function of the draws so far); diagnostics are to be
    recomputed on the whole run.
    """
    precision = run_precision(spec, patient, eta, settings, independent=independent)
    while settings.adaptive and not precision.met and eta.shape[1] < settings.max_draws:
        more = precision.next_draws() - eta.shape[1]
        eta = np.concatenate([eta, extend(more)], axis=1)
        precision = run_precision(spec, patient, eta, settings, independent=independent)
    return eta, precision


def convergence(eta: np.ndarray, diverging: int) -> dict[str, Any]:
    """R-hat (rank-normalised, split) and bulk ESS of each random effect; divergences; and
    whether the run ``passed`` the gates (:data:`RHAT_MAX`, :data:`ESS_BULK_MIN`, none
    diverging)."""
    rhats, esss = rank_diagnostics(eta)  # = az.rhat / az.ess(method="bulk"), faster (tested)
    rhat = float(np.nan if np.isnan(rhats).any() else rhats.max())
    ess = float(np.nan if np.isnan(esss).any() else esss.min())
    passed = diverging == 0 and rhat <= RHAT_MAX and ess >= ESS_BULK_MIN
    return {"rhat_max": rhat, "ess_bulk_min": ess, "divergences": diverging, "passed": passed}
