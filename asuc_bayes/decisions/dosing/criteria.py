"""The decision criteria on a grid of candidates, and the tables' JSON records.

A candidate (a dose, a day, an interval) meets the criterion when the posterior mean risk is
at most the target (``criterion="mean"``) or P(risk ≤ target) ≥ ``probability``
(``"probability"``). A search answers with the first candidate meeting it, or the last
(the cap) when none does, and checks monotonicity rather than assume it.

Examples
--------
>>> import numpy as np
>>> dose_choice(np.array([False, True, True]))
(1, True)
>>> dose_choice(np.array([False, False]))
(1, False)
>>> is_monotone(np.array([0.3, 0.2, 0.2]), increasing=False)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from asuc_bayes.decisions.dosing.request import DosingRequest

__all__ = [
    "MONOTONE_TOLERANCE",
    "dose_choice",
    "first_meeting",
    "is_monotone",
    "json_records",
    "meets_criterion",
]

#: Tolerance of the monotonicity check of a curve (risk is a probability).
MONOTONE_TOLERANCE = 1e-9


def first_meeting(meets: np.ndarray) -> int | None:
    """Index of the first True, or None."""
    hits = np.flatnonzero(meets)
    return int(hits[0]) if hits.size else None


def dose_choice(meets: np.ndarray) -> tuple[int, bool]:
    """(index of the first candidate meeting the criterion, or of the last one, the cap, when
    none does; whether one does)."""
    index = first_meeting(meets)
    return (len(meets) - 1 if index is None else index), index is not None


def is_monotone(values: np.ndarray, increasing: bool) -> bool:
    """``values`` never decrease (``increasing``) or never increase, up to
    :data:`MONOTONE_TOLERANCE`."""
    steps = np.diff(np.asarray(values, dtype=float))
    return bool(np.all(steps >= -MONOTONE_TOLERANCE if increasing else steps <= MONOTONE_TOLERANCE))


def meets_criterion(risk: np.ndarray, request: DosingRequest) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``risk`` (draws, candidates): (criterion met, value of the criterion:
    mean risk or P(risk ≤ target))."""
    if request.criterion == "mean":
        value = risk.mean(axis=0)
        return value <= request.target_risk, value
    value = (risk <= request.target_risk).mean(axis=0)
    return value >= request.probability, value


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as JSON-ready dicts (numpy scalars as Python numbers)."""
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
