"""Predictive-performance metrics of concentration forecasts.

Point metrics use measured observations only (a censored record has no value to compare):

- MPE (bias): mean of (pred − obs) / obs (a fraction);
- RMSE (imprecision): √mean(((pred − obs) / obs)²) (a fraction), and on the log scale
  √mean((ln pred − ln obs)²);
- within ±20 % / ±30 %: fraction of |pred − obs| / obs ≤ 0.2 / 0.3.

Interval coverage at level 1 − α uses the probability integral transform (PIT) of each
observation under its predictive distribution, so no interval needs computing:

- a measured observation is covered iff α/2 ≤ PIT ≤ 1 − α/2 (it lies in the central
  interval);
- **rule for censored observations**: a record below the LLOQ (above the ULOQ) is covered iff
  the predictive probability of its censored region P(y < LLOQ) (P(y > ULOQ)) is at least
  α/2, i.e. iff the central interval reaches into the region where the record is known to lie.
  It is never scored as if it were measured at the limit.

Examples
--------
>>> import numpy as np
>>> m = point_metrics(np.array([10.0, 20.0]), np.array([11.0, 15.0]))
>>> round(m.mpe, 4), round(m.within_20, 2)
(-0.075, 0.5)
>>> coverage(np.array([0.5, 0.97, np.nan]), np.array([np.nan, np.nan, 0.1]),
...          np.array([0, 0, 1]), 0.90)
0.6666666666666666
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asuc_bayes.data.dataset import MEASURED

__all__ = ["PointMetrics", "coverage", "point_metrics"]


@dataclass(frozen=True)
class PointMetrics:
    """Bias and imprecision of point predictions of ``n`` measured observations (fractions)."""

    n: int
    mpe: float
    rmse: float
    rmse_log: float
    within_20: float
    within_30: float


def point_metrics(observed_mg_l: np.ndarray, predicted_mg_l: np.ndarray) -> PointMetrics | None:
    """:class:`PointMetrics` of measured observations; ``None`` when there are none.

    Raises
    ------
    ValueError
        An observed or predicted concentration is not positive (relative errors need > 0).
    """
    obs = np.asarray(observed_mg_l, dtype=float).reshape(-1)
    pred = np.asarray(predicted_mg_l, dtype=float).reshape(-1)
    if obs.size == 0:
        return None
    if np.any(~(obs > 0)) or np.any(~(pred > 0)):
        raise ValueError(
            "metrics: measured and predicted concentrations must be positive numbers (mg/L); "
            "mark a non-quantifiable record as censored (below the LLOQ) instead"
        )
    rel = (pred - obs) / obs
    log_error = np.log(pred) - np.log(obs)
    return PointMetrics(
        n=int(obs.size),
        mpe=float(np.mean(rel)),
        rmse=math.sqrt(float(np.mean(rel * rel))),
        rmse_log=math.sqrt(float(np.mean(log_error * log_error))),
        within_20=float(np.mean(np.abs(rel) <= 0.2 + 1e-12)),
        within_30=float(np.mean(np.abs(rel) <= 0.3 + 1e-12)),
    )


def coverage(
    pit: np.ndarray, p_censored: np.ndarray, censoring: np.ndarray, level: float
) -> float | None:
    """Fraction of observations covered by the central ``level`` predictive interval (see the
    module docstring for censored records); ``None`` without observations.

    ``pit`` is read for measured records, ``p_censored`` (the predictive probability of the
    censored region) for censored ones.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"coverage: level must lie in (0, 1), got {level}")
    pit = np.asarray(pit, dtype=float).reshape(-1)
    p_censored = np.asarray(p_censored, dtype=float).reshape(-1)
    censoring = np.asarray(censoring).reshape(-1)
    if pit.size == 0:
        return None
    half = 0.5 * (1.0 - level)
    measured = censoring == MEASURED
    covered = np.where(measured, (pit >= half) & (pit <= 1.0 - half), p_censored >= half)
    return float(np.mean(covered))
