"""Units of covariates and the conversion table between them.

Each unit belongs to a dimension and has a factor to that dimension's base unit
(mass concentration: g/L; mass: kg; dimensionless: 1). A patient's albumin in g/L feeds a model
declared in g/dL through :func:`convert`.

Examples
--------
>>> convert(40.0, "g/L", "g/dL")
4.0
>>> convert(3.0, "mg/dL", "mg/L")
30.0
>>> convertible("g/dL", "kg")
False
"""

from __future__ import annotations

from typing import Any

from asuc_bayes.errors import AsucBayesError

__all__ = ["UNITS", "UnitError", "conversion_factor", "convert", "convertible"]

#: unit -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    # mass concentration, base g/L (albumin, CRP)
    "g/L": ("mass_concentration", 1.0),
    "g/dL": ("mass_concentration", 10.0),
    "mg/L": ("mass_concentration", 1e-3),
    "mg/dL": ("mass_concentration", 1e-2),
    "ug/mL": ("mass_concentration", 1e-3),
    # mass, base kg (body weight, fat-free mass)
    "kg": ("mass", 1.0),
    "g": ("mass", 1e-3),
    "lb": ("mass", 0.45359237),
    # length, base m
    "m": ("length", 1.0),
    "cm": ("length", 1e-2),
    # time, base day
    "day": ("time", 1.0),
    "h": ("time", 1.0 / 24.0),
    "year": ("time", 365.25),
    # indicators, scores and ratios
    "1": ("dimensionless", 1.0),
}


class UnitError(AsucBayesError, ValueError):
    """A unit is unknown, or two units measure different things."""


def _lookup(unit: str) -> tuple[str, float]:
    if unit not in UNITS:
        raise UnitError(f"unknown unit '{unit}' (known: {', '.join(UNITS)})")
    return UNITS[unit]


def convertible(from_unit: str, to_unit: str) -> bool:
    """Whether both units are known and measure the same dimension."""
    if from_unit not in UNITS or to_unit not in UNITS:
        return False
    return UNITS[from_unit][0] == UNITS[to_unit][0]


def conversion_factor(from_unit: str, to_unit: str) -> float:
    """The factor f with value[to_unit] = f * value[from_unit].

    Raises
    ------
    UnitError
        If a unit is unknown or the dimensions differ.
    """
    dim_from, f_from = _lookup(from_unit)
    dim_to, f_to = _lookup(to_unit)
    if dim_from != dim_to:
        raise UnitError(
            f"cannot convert {from_unit} ({dim_from}) to {to_unit} ({dim_to}): different dimensions"
        )
    return f_from / f_to


def convert(value: Any, from_unit: str, to_unit: str) -> Any:
    """``value`` (a number or an array of any namespace) from ``from_unit`` to ``to_unit``."""
    if from_unit == to_unit:
        return value
    return value * conversion_factor(from_unit, to_unit)
