"""The one rule that turns P(high risk) into a risk class.

Every part of the package that names a class (``forecast``'s ``risk_class``,
``compare-patient``'s ``posterior_class``, the reports, the app, the value-of-a-sample analysis
of :mod:`asuc_bayes.decisions.dosing`) calls this module, so they cannot disagree. The rule is the
conservative one: a patient whose probability of high risk (P(ln(AUC_w2-4/CL) < threshold)) is
at least one half is classed **high**; a tie at exactly 0.5 is high.

Examples
--------
>>> risk_class(0.5), risk_class(0.4999), risk_class(1.0)
('high', 'low', 'high')
>>> is_high_risk([0.2, 0.5, 0.7]).tolist()
[False, True, True]
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = ["HIGH_RISK_PROBABILITY", "RiskClass", "is_high_risk", "risk_class"]

#: P(high risk) at or above which a patient is classed high (ties are high).
HIGH_RISK_PROBABILITY = 0.5

RiskClass = Literal["high", "low"]


def is_high_risk(p_high_risk) -> np.ndarray:
    """Elementwise ``p_high_risk >= 0.5`` (arrays of probabilities, e.g. reweighted ones)."""
    return np.asarray(p_high_risk, dtype=float) >= HIGH_RISK_PROBABILITY


def risk_class(p_high_risk: float) -> RiskClass:
    """``"high"`` when P(high risk) ≥ 0.5, else ``"low"``.

    Parameters
    ----------
    p_high_risk
        Posterior probability that ln(AUC_w2-4/CL) is below the high-risk threshold, in [0, 1].

    Raises
    ------
    ValueError
        ``p_high_risk`` is not a probability (NaN, infinite or outside [0, 1]).
    """
    p = float(p_high_risk)
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise ValueError(f"P(high risk) must be a probability in [0, 1], got {p_high_risk!r}")
    return "high" if p >= HIGH_RISK_PROBABILITY else "low"
