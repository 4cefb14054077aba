"""The stated Monte Carlo precision of a library-model posterior, and the adaptive run length.

The target and the cap are those of the default path (:mod:`asuc_bayes.inference.forecast`): a run
is
precise when the Monte Carlo standard error (MCSE) of the 2.5 % and 97.5 % quantiles of
ln(AUC_w2-4/CL) and of the 90-day risk (only ln(AUC/CL) for a model without an outcome model)
is at most :data:`~asuc_bayes.inference.forecast.PRECISION_TARGET` (0.05) posterior SD of that
quantity.
An adaptive run (``SamplerOptions(draws=None)``) is continued until it is, within
``max_draws`` per chain; a fixed run only reports its precision.

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.inference.sampler import SamplerOptions
>>> rng = np.random.default_rng(0)
>>> # i.i.d. normal draws: MCSE(q97.5) ~ sqrt(p (1 - p) / N) / phi(1.96) = 0.042 SD at N = 4000
>>> precision_of(rng.normal(size=(4, 1000, 2)), SamplerOptions(), independent=True).met
True
>>> short = precision_of(rng.normal(size=(1, 1000, 2)), SamplerOptions(), independent=True)
>>> short.met, short.draws, 1000 < short.next_draws() <= 8000  # ~0.08 SD at N = 1000
(False, 1000, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from asuc_bayes.inference.derived import derived_quantities
from asuc_bayes.inference.diagnostics import monte_carlo_errors
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.inference.sampler import SamplerOptions

__all__ = ["precision_of", "run_precision", "until_precise"]

#: The quantities whose tail quantiles the target covers (those of the default path).
PRECISION_QUANTITIES = ("ln_auc_cl", "risk_90d")


def precision_of(values: np.ndarray, options: SamplerOptions, *, independent: bool = False):
    """The :class:`~asuc_bayes.inference.forecast.Precision` of draws ``(chain, draw, k)`` of the k
    quantities whose tail quantiles the target covers (infinite where an MCSE is undefined;
    an MCSE of 0, e.g. constant draws, is met)."""
    # the default path's target and its Precision (imported here: asuc_bayes.inference.forecast may
    # import this package)
    from asuc_bayes.inference.forecast import PRECISION_PROBS, PRECISION_TARGET, Precision

    errors = monte_carlo_errors(values, PRECISION_PROBS, independent=independent)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(errors.quantile == 0.0, 0.0, errors.quantile / errors.sd)
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)
    return Precision(
        PRECISION_TARGET, float(ratio.max()), int(values.shape[1]), options.max_draws,
        options.adaptive,
    )  # fmt: skip


def run_precision(problem: PatientProblem, eta: np.ndarray, options: SamplerOptions):
    """The :class:`~asuc_bayes.inference.forecast.Precision` of η draws ``(chain, draw, n_eta)``."""
    derived = derived_quantities(problem, eta)
    columns = [getattr(derived, name) for name in PRECISION_QUANTITIES]
    values = np.stack([c.reshape(eta.shape[:2]) for c in columns if c is not None], axis=-1)
    return precision_of(values, options)


def until_precise(
    problem: PatientProblem,
    eta: np.ndarray,
    options: SamplerOptions,
    extend: Callable[[int], np.ndarray],
) -> tuple[np.ndarray, Any]:
    """Continue a run until its precision is met (adaptive ``options`` only), within
    ``options.max_draws`` per chain.

    ``extend(n)`` returns the next ``n`` draws ``(chain, n, n_eta)`` of the same run
    (continued chains, or further independently seeded runs; never a function of the draws so
    far). The gates are to be recomputed on the whole run.
    """
    precision = run_precision(problem, eta, options)
    while options.adaptive and not precision.met and eta.shape[1] < options.max_draws:
        more = precision.next_draws() - eta.shape[1]
        eta = np.concatenate([eta, extend(more)], axis=1)
        precision = run_precision(problem, eta, options)
    return eta, precision
