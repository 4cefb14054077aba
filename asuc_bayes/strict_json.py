"""Strict JSON: every document asuc_bayes writes has no NaN or Infinity.

:func:`finite_json` replaces every non-finite number by null (and NumPy scalars by Python
numbers); :func:`dumps_json` writes the result. Every layer that writes JSON uses these two.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps_json", "finite_json"]


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf, NumPy's too) replaced by None,
    NumPy scalars made Python numbers, tuples made lists (recursively).

    >>> finite_json({"rhat": float("nan"), "uloq": [1.5, float("inf")]})
    {'rhat': None, 'uloq': [1.5, None]}
    """
    if isinstance(value, Mapping):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # NumPy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_json(document: Any) -> str:
    """The CLI's JSON text of ``document`` (indented; non-finite numbers as null).

    >>> print(dumps_json({"p": float("nan")}))
    {
      "p": null
    }
    """
    return json.dumps(finite_json(document), indent=2, allow_nan=False)
