"""Validated internal representation of patients (doses, concentrations, covariates).

Every input format (NONMEM-style CSV, TOML/YAML patient files, the Python API) becomes
:class:`Patient` objects. Plausibility limits are checked here, once, at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ABOVE_ULOQ",
    "BELOW_LLOQ",
    "MEASURED",
    "Dose",
    "EventRecord",
    "InputError",
    "Observation",
    "Patient",
]

MEASURED = 0
BELOW_LLOQ = 1
ABOVE_ULOQ = -1


class InputError(ValueError):
    """Bad input data. The message names the patient, the row and the field, and the fix."""


@dataclass(frozen=True)
class Dose:
    """One infliximab infusion: start time (days since first dose), amount (mg), duration (days)."""

    time_day: float
    amount_mg: float
    duration_day: float
    row: int | None = None


@dataclass(frozen=True)
class Observation:
    """One serum concentration record.

    ``censoring`` is :data:`MEASURED` (``value_mg_l`` is the concentration),
    :data:`BELOW_LLOQ` (``value_mg_l`` is the LLOQ) or :data:`ABOVE_ULOQ` (the ULOQ).
    """

    time_day: float
    value_mg_l: float
    censoring: int = MEASURED
    row: int | None = None


@dataclass(frozen=True)
class EventRecord:
    """A colectomy record (DVID 2): ``event`` 1 colectomy at ``time_day``, 0 censored there."""

    time_day: float
    event: int
    row: int | None = None


@dataclass(frozen=True)
class Patient:
    """One patient: baseline covariates, the regimen (given and planned doses), samples."""

    id: str
    weight_kg: float
    crp_mg_l: float
    doses: tuple[Dose, ...]
    observations: tuple[Observation, ...] = ()
    events: tuple[EventRecord, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def dose_time_day(self) -> np.ndarray:
        return np.array([d.time_day for d in self.doses], dtype=float)

    @property
    def dose_amount_mg(self) -> np.ndarray:
        return np.array([d.amount_mg for d in self.doses], dtype=float)

    @property
    def dose_duration_day(self) -> np.ndarray:
        return np.array([d.duration_day for d in self.doses], dtype=float)

    @property
    def obs_time_day(self) -> np.ndarray:
        return np.array([o.time_day for o in self.observations], dtype=float)

    @property
    def obs_value_mg_l(self) -> np.ndarray:
        return np.array([o.value_mg_l for o in self.observations], dtype=float)

    @property
    def obs_censoring(self) -> np.ndarray:
        return np.array([o.censoring for o in self.observations], dtype=np.int64)
