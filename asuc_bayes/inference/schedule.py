"""Time-varying covariates of a dataset patient: piecewise-constant values for a library model.

A NONMEM dataset gives covariate values per record
(:class:`asuc_bayes.data.dataset.CovariateRecord`:
doses, samples, ``EVID=2`` rows...). A covariate that the model file declares
``time_varying = true`` becomes a step function of time, by one of two conventions:

* ``"nonmem"`` (default, as NONMEM does): a record's value holds over the interval that
  **ends** at that record, (t_(k−1), t_k]; a sample's prediction uses its own record's values;
* ``"locf"``: last value carried forward, a record's value holds from it onward, [t_k, t_(k+1)).

Both give the first record's value before the first record and the last record's value after
the last one. Records at one time: under ``"nonmem"`` the first of them defines the value at
that time (the later ones hold over an empty interval), under ``"locf"`` the last one holds
from that time on. A record that leaves a column empty says nothing about that column.

Covariates that the model takes at baseline (not declared ``time_varying``, e.g. every
covariate of the ASUC model, niyigena2025) keep their first value; when their records vary the
schedule lists them in :attr:`CovariateSchedule.baseline_only` so that the output says so.

Examples
--------
>>> from asuc_bayes.data.dataset import CovariateRecord, Dose, Patient
>>> from asuc_bayes.spec import load_declaration
>>> records = (CovariateRecord(0.0, (("ADA", 0.0), ("ALB", 4.0), ("WT", 70.0))),
...            CovariateRecord(20.0, (("ADA", 1.0), ("ALB", 4.0), ("WT", 70.0))),
...            CovariateRecord(40.0, (("ADA", 1.0), ("ALB", 3.0), ("WT", 70.0))))
>>> p = Patient("x", 70.0, 30.0, (Dose(0.0, 350.0, 1 / 12),), covariate_records=records)
>>> decl = load_declaration("wojciechowski2017")
>>> nonmem = covariate_schedule(p, decl)
>>> nonmem.change_day, nonmem.values("ADA"), nonmem.values("ALB")
((0.0, 20.0), (0.0, 1.0, 1.0), (4.0, 4.0, 3.0))
>>> locf = covariate_schedule(p, decl, convention="locf")
>>> locf.change_day, locf.values("ADA"), locf.values("ALB")
((20.0, 40.0), (0.0, 1.0, 1.0), (4.0, 4.0, 3.0))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asuc_bayes.data.dataset import Patient
from asuc_bayes.inference.covariates import check_plausible
from asuc_bayes.spec import ModelDeclaration

__all__ = ["COVARIATE_CONVENTIONS", "CovariateSchedule", "covariate_schedule"]

#: ``--covariates``: NONMEM's convention (default) or last value carried forward.
COVARIATE_CONVENTIONS = ("nonmem", "locf")


@dataclass(frozen=True)
class CovariateSchedule:
    """Piecewise-constant covariate values: piece j holds between ``change_day[j−1]`` and
    ``change_day[j]`` (which end is included: :attr:`change_side`).

    Attributes
    ----------
    convention
        ``"nonmem"`` or ``"locf"`` (see the module docstring).
    change_day
        Increasing times (day) at which some time-varying covariate changes.
    columns
        ``(name, unit, values per piece)`` of each time-varying covariate the records give
        (names as the model file spells them).
    baseline_only
        Covariates whose records vary but that the model takes at baseline.
    """

    convention: str
    change_day: tuple[float, ...] = ()
    columns: tuple[tuple[str, str, tuple[float, ...]], ...] = ()
    baseline_only: tuple[str, ...] = ()

    @property
    def n_piece(self) -> int:
        """Number of pieces, ``len(change_day) + 1``."""
        return len(self.change_day) + 1

    @property
    def change_side(self) -> str:
        """The piece at a change time itself: ``"left"`` (the old one, NONMEM) or
        ``"right"`` (the new one, LOCF); see :func:`asuc_bayes.pk.propagate`."""
        return "left" if self.convention == "nonmem" else "right"

    @property
    def varying(self) -> tuple[str, ...]:
        """Names of the time-varying covariates whose value changes."""
        return tuple(name for name, _, values in self.columns if len(set(values)) > 1)

    def values(self, name: str) -> tuple[float, ...]:
        """The values of covariate ``name`` per piece."""
        return next(values for column, _, values in self.columns if column == name)

    def piece_covariates(self, piece: int) -> dict[str, tuple[float, str]]:
        """``{name: (value, unit)}`` of the time-varying covariates in piece ``piece``."""
        return {name: (values[piece], unit) for name, unit, values in self.columns}


def _series(patient: Patient, column: str) -> list[tuple[float, float, Any]]:
    """(time, value, row) of the records that give ``column``, in time order (stable)."""
    found = []
    for record in patient.covariate_records:
        for name, value in record.values:
            if name.upper() == column:
                found.append((float(record.time_day), float(value), record.row))
    return sorted(found, key=lambda item: item[0])


def _changes(series: list[tuple[float, float, Any]], convention: str) -> dict[float, float]:
    """{change time: value from there} of one column's step function (see module doc)."""
    by_time: dict[float, float] = {}
    for time, value, _ in series:
        if convention == "locf" or time not in by_time:  # nonmem: first record at a time
            by_time[time] = value
    times = sorted(by_time)
    changes: dict[float, float] = {}
    previous_value = series[0][1]
    for k, time in enumerate(times):
        value = by_time[time]
        if value != previous_value:
            # locf: from this record on; nonmem: after the previous record
            changes[time if convention == "locf" else times[k - 1]] = value
        previous_value = value
    return changes


def _check_convention(convention: str) -> None:
    if convention not in COVARIATE_CONVENTIONS:
        raise ValueError(
            f"--covariates {convention}: must be one of {', '.join(COVARIATE_CONVENTIONS)} "
            "(fix: nonmem, a record's values hold until it; locf, from it onward)"
        )


def covariate_schedule(
    patient: Patient,
    declaration: ModelDeclaration,
    units: Mapping[str, str] | None = None,
    convention: str = "nonmem",
) -> CovariateSchedule:
    """The patient's time-varying covariates under ``declaration`` (see the module docstring).

    Parameters
    ----------
    patient
        A dataset patient with :attr:`~asuc_bayes.data.dataset.Patient.covariate_records`.
    declaration
        The model: which covariates it declares, their units and which are time-varying.
    units
        The dataset's units by column (``--units ALB=g/L``); otherwise the model file's.
    convention
        ``"nonmem"`` or ``"locf"``.

    Raises
    ------
    asuc_bayes.data.dataset.InputError
        A record's value is implausible in its unit (the message names the row).
    ValueError
        An unknown convention.
    """
    _check_convention(convention)
    units = {k.upper(): v for k, v in (units or {}).items()}
    columns: list[tuple[str, str, dict[float, float], float]] = []
    baseline_only: list[str] = []
    for covariate in declaration.covariates:
        column, series = next(
            ((c, found) for c in covariate.columns if (found := _series(patient, c))),
            (covariate.name.upper(), []),
        )
        if not series:
            continue
        unit = units.get(column, covariate.unit)
        for _, value, row in series:
            check_plausible(patient.id, column, value, unit, column in units, row)
        if not covariate.time_varying:
            if len({value for _, value, _ in series}) > 1:
                baseline_only.append(covariate.name)
            continue
        changes = _changes(series, convention)
        if changes:
            columns.append((covariate.name, unit, changes, series[0][1]))
    change_day = tuple(sorted({t for *_, changes, _ in columns for t in changes}))
    return CovariateSchedule(
        convention=convention,
        change_day=change_day,
        columns=tuple(
            (name, unit, _piece_values(changes, first, change_day))
            for name, unit, changes, first in columns
        ),
        baseline_only=tuple(baseline_only),
    )


def _piece_values(
    changes: dict[float, float], first: float, change_day: tuple[float, ...]
) -> tuple[float, ...]:
    """One column's value in each piece (piece j ≥ 1 starts at ``change_day[j − 1]``)."""
    values = [first]
    for time in change_day:
        values.append(changes.get(time, values[-1]))
    return tuple(values)
