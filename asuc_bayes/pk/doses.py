"""Dosing regimens as arrays: the input every PK structure shares.

A regimen is a :class:`DoseArrays`: one entry per zero-order infusion into the central
compartment, with two optional NONMEM fields (steady state ``SS=1``/``II`` and the end of a
dose's effect at a reset, ``EVID=3/4``). The arrays are data, never model parameters, so
every check happens here once, in NumPy, before any maths.

Examples
--------
>>> doses = DoseArrays.from_records(
...     [{"start_day": 0.0, "amount_mg": 350.0, "duration_day": 1 / 12},
...      {"start_day": 14.0, "amount_mg": 350.0, "duration_day": 1 / 12}])
>>> doses.n_dose, doses.has_steady_state, doses.has_end
(2, False, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asuc_bayes.errors import AsucBayesError

__all__ = ["DOSE_FIELDS", "DoseArrays", "DoseArraysError"]

#: The fields of a dose record, with their defaults (``None``: required).
DOSE_FIELDS: dict[str, float | None] = {
    "start_day": None,
    "amount_mg": None,
    "duration_day": None,
    "steady_state_interval_day": 0.0,
    "end_day": float("inf"),
}


class DoseArraysError(AsucBayesError, ValueError):
    """A regimen that the PK structures cannot evaluate; the message names the field."""


def _field(name: str, value: Any) -> np.ndarray:
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise DoseArraysError(f"{name} must be numbers ({error})") from None
    if array.ndim == 0:
        array = array.reshape(1)
    array.flags.writeable = False
    return array


def _where(mask: np.ndarray) -> str:
    return ", ".join(str(tuple(int(i) for i in idx)) for idx in np.argwhere(mask)[:3])


def _check(mask: np.ndarray, message: str, hint: str = "") -> None:
    if np.any(mask):
        raise DoseArraysError(f"{message} (dose index {_where(mask)}){hint}")


@dataclass(frozen=True, eq=False)
class DoseArrays:
    """Zero-order infusions into the central compartment, one entry per dose.

    All fields share one shape, ``(n_dose,)`` or with leading axes that broadcast against
    the parameters (e.g. ``(n_patient, n_dose)``). The arrays are read-only copies.

    Parameters
    ----------
    start_day : array_like
        Start of each infusion (day), finite.
    amount_mg : array_like
        Amount infused (mg), finite and >= 0; 0 marks a padding dose that contributes
        nothing.
    duration_day : array_like
        Infusion duration (day), finite and > 0 (give padding doses any positive
        duration); the rate is ``amount_mg / duration_day``.
    steady_state_interval_day : array_like, optional
        0 (default): an ordinary dose. > 0: NONMEM ``SS=1`` with ``II``: the dose is the
        last of an infinite train every ``II`` days, so at and after its start it adds the
        steady-state contribution of all the earlier doses of the train. The duration
        must not exceed ``II``. (NONMEM's ``SS=1`` also resets the earlier state: express
        that by giving the earlier doses ``end_day`` = this dose's start.)
    end_day : array_like, optional
        +inf (default): no end. Otherwise the dose contributes nothing at or after this
        time (a NONMEM reset, ``EVID`` 3 or 4: the state is zeroed and a running infusion
        is stopped); AUCs integrate its contribution only up to it.

    Examples
    --------
    >>> doses = DoseArrays(start_day=[0.0, 56.0], amount_mg=[350.0, 350.0],
    ...                    duration_day=[1 / 12, 1 / 12],
    ...                    steady_state_interval_day=[56.0, 0.0])
    >>> doses.has_steady_state
    True
    >>> DoseArrays(start_day=[0.0], amount_mg=[350.0], duration_day=[0.0])
    Traceback (most recent call last):
    ...
    asuc_bayes.pk.doses.DoseArraysError: duration_day must be finite and > 0 (dose index (0,)); \
give padding doses of amount 0 any positive duration
    """

    start_day: np.ndarray
    amount_mg: np.ndarray
    duration_day: np.ndarray
    steady_state_interval_day: np.ndarray = field(default=None)  # type: ignore[assignment]
    end_day: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        start = _field("start_day", self.start_day)
        fill = {
            "steady_state_interval_day": np.zeros_like(start),
            "end_day": np.full_like(start, np.inf),
        }
        arrays = {}
        for name in DOSE_FIELDS:
            value = getattr(self, name)
            arrays[name] = _field(name, fill[name] if value is None else value)
            object.__setattr__(self, name, arrays[name])
        shapes = {name: a.shape for name, a in arrays.items()}
        if len(set(shapes.values())) > 1:
            raise DoseArraysError(f"the dose fields must share one shape, got {shapes}")
        self._validate()

    def _validate(self) -> None:
        start, amount, duration = self.start_day, self.amount_mg, self.duration_day
        interval, end = self.steady_state_interval_day, self.end_day
        _check(~np.isfinite(start), "start_day must be finite")
        _check(~np.isfinite(amount) | (amount < 0), "amount_mg must be finite and >= 0")
        _check(
            ~np.isfinite(duration) | (duration <= 0),
            "duration_day must be finite and > 0",
            "; give padding doses of amount 0 any positive duration",
        )
        _check(
            ~np.isfinite(interval) | (interval < 0),
            "steady_state_interval_day must be finite and >= 0 (0: no steady state)",
        )
        _check(
            (interval > 0) & (duration > interval),
            "an infusion at steady state must not last longer than its interval: "
            "duration_day > steady_state_interval_day",
        )
        _check(np.isnan(end), "end_day must be a time or +inf (no end), not NaN")

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, float]]) -> DoseArrays:
        """Build the arrays from one mapping per dose (the keys of :data:`DOSE_FIELDS`).

        Parameters
        ----------
        records : iterable of mapping
            ``start_day``, ``amount_mg`` and ``duration_day`` are required;
            ``steady_state_interval_day`` (default 0) and ``end_day`` (default +inf) are
            optional. Unknown keys are rejected.

        Returns
        -------
        DoseArrays

        Examples
        --------
        >>> doses = DoseArrays.from_records(
        ...     [{"start_day": 0.0, "amount_mg": 700.0, "duration_day": 1 / 12,
        ...       "steady_state_interval_day": 56.0, "end_day": 100.0}])
        >>> float(doses.steady_state_interval_day[0]), float(doses.end_day[0])
        (56.0, 100.0)
        >>> DoseArrays.from_records([{"start_day": 0.0, "amount_mg": 700.0}])
        Traceback (most recent call last):
        ...
        asuc_bayes.pk.doses.DoseArraysError: dose record 0 lacks duration_day
        """
        columns: dict[str, list[float]] = {name: [] for name in DOSE_FIELDS}
        for index, record in enumerate(records):
            unknown = sorted(set(record) - set(DOSE_FIELDS))
            if unknown:
                raise DoseArraysError(
                    f"dose record {index} has unknown field(s) {unknown} "
                    f"(accepted: {', '.join(DOSE_FIELDS)})"
                )
            for name, default in DOSE_FIELDS.items():
                if name not in record and default is None:
                    raise DoseArraysError(f"dose record {index} lacks {name}")
                columns[name].append(record.get(name, default))  # type: ignore[arg-type]
        if not columns["start_day"]:
            raise DoseArraysError("a regimen needs at least one dose record")
        return cls(**columns)

    @property
    def n_dose(self) -> int:
        """Number of doses (the last axis).

        Examples
        --------
        >>> d = DoseArrays(start_day=[0.0, 14.0], amount_mg=[700.0, 0.0], duration_day=[0.5, 0.5],
        ...                steady_state_interval_day=[14.0, 0.0], end_day=[np.inf, 20.0])
        >>> d.n_dose
        2
        """
        return int(self.start_day.shape[-1])

    @property
    def has_steady_state(self) -> bool:
        """True when any dose is given at steady state.

        Examples
        --------
        >>> d = DoseArrays(start_day=[0.0, 14.0], amount_mg=[700.0, 0.0], duration_day=[0.5, 0.5],
        ...                steady_state_interval_day=[14.0, 0.0], end_day=[np.inf, 20.0])
        >>> d.has_steady_state
        True
        """
        return bool(np.any(self.steady_state_interval_day > 0))

    @property
    def has_end(self) -> bool:
        """True when any dose ends at a reset.

        Examples
        --------
        >>> d = DoseArrays(start_day=[0.0, 14.0], amount_mg=[700.0, 0.0], duration_day=[0.5, 0.5],
        ...                steady_state_interval_day=[14.0, 0.0], end_day=[np.inf, 20.0])
        >>> d.has_end
        True
        """
        return bool(np.any(np.isfinite(self.end_day)))

    @property
    def rate_mg_day(self) -> np.ndarray:
        """Infusion rate (mg/day) of each dose.

        Examples
        --------
        >>> d = DoseArrays(start_day=[0.0, 14.0], amount_mg=[700.0, 0.0], duration_day=[0.5, 0.5],
        ...                steady_state_interval_day=[14.0, 0.0], end_day=[np.inf, 20.0])
        >>> d.rate_mg_day.tolist()
        [1400.0, 0.0]
        """
        return self.amount_mg / self.duration_day
