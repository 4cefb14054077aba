"""Sampler settings of an individual forecast (the default engine), and the run-size defaults.

Examples
--------
>>> settings = SamplerSettings()
>>> settings.adaptive, settings.initial_draws, settings.max_draws
(True, 1000, 8000)
>>> with_settings(settings, draws=500, chains=None).draws
500
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["DEFAULT_DRAWS", "MAX_DRAWS_FACTOR", "SamplerSettings", "with_settings"]

#: Draws per chain of a run, and the first piece of an adaptive one (``draws=None``).
DEFAULT_DRAWS = 1000
#: An adaptive run stops at MAX_DRAWS_FACTOR x DEFAULT_DRAWS draws per chain, met or not.
MAX_DRAWS_FACTOR = 8


@dataclass(frozen=True)
class SamplerSettings:
    """Sampler settings of an individual forecast.

    ``sampler="imh"`` (default): an independence Metropolis–Hastings sampler whose proposal is
    a multivariate t around the Laplace approximation mixed with the prior (see
    :func:`asuc_bayes.inference.forecast.imh.independence_run`); if its draws fail a gate,
    NUTS (nutpie) samples
    the patient. ``"nutpie"``: NUTS only; ``"pymc"``: PyMC's own NUTS. ``tune`` and the
    target acceptances apply to NUTS; ``escalate_target_accept`` is used for a second NUTS
    attempt when the first has divergences or fails the R-hat/ESS gates.

    ``draws`` (per chain) fixes the size of the run; None (default) makes it adaptive: a
    first piece of :data:`DEFAULT_DRAWS` draws is continued until the MCSE of the 2.5 % and
    97.5 % quantiles of ln(AUC/CL) and of the 90-day risk is at most
    :data:`~asuc_bayes.inference.forecast.adaptive.PRECISION_TARGET`
    posterior SDs, or ``max_draws`` (8 x 1000) is reached (see
    :class:`~asuc_bayes.inference.forecast.adaptive.Precision`)."""

    draws: int | None = None
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.95
    escalate_target_accept: float | None = 0.99
    sampler: Literal["imh", "nutpie", "pymc"] = "imh"
    cores: int | None = None
    method: Literal["auto", "nuts", "exact_grid"] = "auto"
    grid_points: int = 401

    @property
    def adaptive(self) -> bool:
        """No ``draws`` given: the run is extended until its tail quantiles reach the stated
        precision (:data:`~asuc_bayes.inference.forecast.adaptive.PRECISION_TARGET`), within
        ``max_draws``."""
        return self.draws is None

    @property
    def initial_draws(self) -> int:
        """Draws per chain of the first (for a fixed run: the only) piece of the run."""
        return DEFAULT_DRAWS if self.draws is None else self.draws

    @property
    def max_draws(self) -> int:
        """Draws per chain an adaptive run stops at, met or not (a fixed run: ``draws``)."""
        return MAX_DRAWS_FACTOR * DEFAULT_DRAWS if self.draws is None else self.draws

    def __post_init__(self):
        for name in ("draws", "tune", "chains"):
            value = getattr(self, name)
            if name == "draws" and value is None:
                continue
            if not isinstance(value, int) or value < (1 if name != "tune" else 0):
                raise ValueError(
                    f"sampler setting '{name}' must be a positive integer, got {value!r}"
                )
        if self.chains < 2:
            raise ValueError("sampler setting 'chains' must be at least 2 (R-hat needs them)")
        if not 0.5 <= self.target_accept < 1:
            raise ValueError(f"target_accept must be in [0.5, 1), got {self.target_accept}")
        if self.sampler not in ("nutpie", "pymc", "imh"):
            raise ValueError(f"sampler must be 'nutpie', 'pymc' or 'imh', got {self.sampler!r}")
        if self.method not in ("auto", "nuts", "exact_grid"):
            raise ValueError(f"method must be 'auto', 'nuts' or 'exact_grid', got {self.method!r}")


def with_settings(settings: SamplerSettings, **changes) -> SamplerSettings:
    """A copy of ``settings`` with ``changes`` applied (None values ignored)."""
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})
