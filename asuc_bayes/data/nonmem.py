"""NONMEM record semantics: rows of a dataset (:mod:`~asuc_bayes.data.table`) to patients.

EVID 0 observation, 1 dose, 2 other event (covariates kept), 3 reset, 4 reset + dose; MDV;
CMT (doses into the central compartment, observations of the central or output one);
ADDL/II expanded into explicit doses; RATE > 0, RATE = -2 (the model's default duration) or
DUR; SS with II kept on the dose. A column that changes the regimen is applied or the file is
rejected, never ignored.

>>> from asuc_bayes.data.table import TableLayout, read_table
>>> from asuc_bayes.data.types import PlausibilityLimits
>>> text = "ID,TIME,AMT,ADDL,II,DV,WT,CRP\\nP1,0,600,2,14,.,63,45\\n"
>>> patients, _, _ = read_records(read_table(text, TableLayout()), NonmemOptions())
>>> [d.time_day for d in patients[0].doses]
[0.0, 14.0, 28.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from asuc_bayes.data.errors import InputError, Location, _error, _fmt, _message, _naming_patient
from asuc_bayes.data.table import COVARIATE_COLUMNS, MISSING_CELLS, Row, Table
from asuc_bayes.data.types import (
    ABOVE_ULOQ,
    BELOW_LLOQ,
    DEFAULT_INFUSION_DURATION_DAY,
    MEASURED,
    CovariateRecord,
    Dose,
    EventRecord,
    Observation,
    Patient,
    PlausibilityLimits,
    Reset,
    unsupported_by_engine,
)
from asuc_bayes.data.validation import _FieldLabels, _validate_patient, parse_number

__all__ = ["NonmemOptions", "read_records"]

_REQUIRED = ("ID", "AMT", "DV", "WT", "CRP")
_USED = (
    "ID",
    "TIME",
    "DATE",
    "DATETIME",
    "EVID",
    "AMT",
    "DV",
    "RATE",
    "DUR",
    "CENS",
    "BLQ",
    "LLOQ",
    "MDV",
    "DVID",
    "CMT",
    "ADDL",
    "II",
    "SS",
    *COVARIATE_COLUMNS,
)
#: Compartments accepted: doses into the central one, observations of central or output.
_DOSE_CMT = (0, 1)
_OBSERVATION_CMT = (0, 1, 2)

_CONCENTRATION_UNITS = frozenset({"mg/l", "ug/ml", "µg/ml", "μg/ml", "mcg/ml", "mg.l-1"})
_UNIT_KINDS: dict[str, tuple[str, frozenset[str]]] = {
    "mass": ("mg", frozenset({"mg"})),
    "concentration": ("mg/L", _CONCENTRATION_UNITS),
    "time": ("day", frozenset({"d", "day", "days", "h", "hour", "hours"})),
    "weight": ("kg", frozenset({"kg"})),
}
# unit-column prefix -> kind of unit; "" (a bare UNIT column) follows the record type
_UNIT_PREFIXES = {
    "": None,
    "DV": "concentration",
    "CONC": "concentration",
    "CP": "concentration",
    "AMT": "mass",
    "DOSE": "mass",
    "TIME": "time",
    "WT": "weight",
    "WEIGHT": "weight",
    "CRP": "concentration",
}


@dataclass(frozen=True)
class NonmemOptions:
    """How records are read.

    Attributes
    ----------
    default_duration_day
        Duration of an infusion without RATE/DUR, and of RATE=-2 (the model's D1).
    limits
        Plausible ranges.
    strict_covariates
        A WT or CRP that differs from the patient's first value is an error (population
        fits) instead of a note.
    collect_errors
        Keep a bad patient's first error and read the others.
    allow_unsupported
        Return patients that the forecasting engine cannot evaluate as read; by default they
        are errors naming the row (see :func:`~asuc_bayes.data.types.unsupported_by_engine`;
        steady-state doses and resets are evaluated).
    time_unit
        Unit of TIME/DUR/II in the source (``"days"`` or ``"hours"``), for messages.
    """

    default_duration_day: float = DEFAULT_INFUSION_DURATION_DAY
    limits: PlausibilityLimits = field(default_factory=PlausibilityLimits)
    strict_covariates: bool = False
    collect_errors: bool = False
    allow_unsupported: bool = False
    time_unit: str = "days"


@dataclass
class _Collected:
    """Records of one patient while the dataset is read."""

    id: str
    first_row: int
    last_row: int
    last_time: tuple[float, int] | None = None
    weight: tuple[float, int] | None = None
    crp: tuple[float, int] | None = None
    doses: list[Dose] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    resets: list[Reset] = field(default_factory=list)
    covariates: list[CovariateRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    labels: dict[tuple[Location, str], str] = field(default_factory=dict)
    #: Covariate values that differ from the baseline: column -> [(row, value)].
    varying: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    #: Latest ADDL dose of each dose row: (time, row), for resets that would cut them.
    pending: list[tuple[float, int]] = field(default_factory=list)


class _Cells:
    """Typed accessors of one row's cells, naming the patient, row and column in errors."""

    def __init__(self, row: Row) -> None:
        self.row = row

    def number(self, column: str, *, required: bool = False, why: str = "") -> float | None:
        raw = self.row.cells.get(column, "")
        if raw in MISSING_CELLS:
            if required:
                raise _error(
                    self.row.patient_id,
                    self.row.row,
                    column,
                    f"empty cell{why}",
                    f"fill {column}" if not why else f"fill {column}, or remove the row",
                )
            return None
        value = parse_number(raw)
        if value is None:
            raise _error(
                self.row.patient_id,
                self.row.row,
                column,
                f"{raw[:40]!r} is not a number",
                "write a plain number (decimal point, no units, separators or spaces); '.' "
                "or an empty cell for missing",
            )
        return value

    def code(self, column: str, allowed: Sequence[int], *, default: int, meaning: str) -> int:
        value = self.number(column)
        if value is None:
            return default
        if value not in allowed:
            raise _error(
                self.row.patient_id,
                self.row.row,
                column,
                f"{column} values not supported: {self.row.cells[column]!r}",
                f"use {meaning}",
            )
        return int(value)


def read_records(
    table: Table, options: NonmemOptions
) -> tuple[list[Patient], list[str], list[InputError]]:
    """Patients of a dataset's rows, notes on what was not used, per-patient errors.

    Raises
    ------
    InputError
        A missing required column, or (without ``collect_errors``) the first bad record.
    """
    _check_columns(table)
    notes = list(table.notes)
    unit_columns = {
        name: kind
        for name in table.columns
        for is_unit, kind in [_unit_column_kind(name)]
        if is_unit and name not in _USED
    }
    covariate_columns = _covariate_columns(table, unit_columns)
    for name in table.columns:
        if name not in _USED and name not in unit_columns and name not in covariate_columns:
            notes.append(f"column {name} ignored (not a number on every row; not used)")
    extra = [c for c in covariate_columns if c not in ("WT", "CRP")]
    if extra:
        notes.append(
            f"column{'s' if len(extra) > 1 else ''} {', '.join(extra)} kept per record as "
            "covariates (Patient.covariate_records), for the models that declare them"
        )
    by_id: dict[str, _Collected] = {}
    order: list[str] = []
    seen: dict[tuple[str, float, int, int | None], int] = {}
    previous_id: str | None = None
    failed: dict[str, InputError] = {}
    for row in table.rows:
        pid = row.cells.get("ID", "")
        if not pid:
            raise _error(None, row.row, "ID", "empty patient ID", "fill ID on every row")
        current = by_id.get(pid)
        if current is None:
            current = by_id[pid] = _Collected(pid, row.row, row.row)
            order.append(pid)
        elif previous_id != pid:
            raise _error(
                pid,
                row.row,
                "ID",
                f"the patient's rows are not contiguous (rows {current.first_row}–"
                f"{current.last_row}, then row {row.row})",
                "sort the file by ID (then TIME), or give different patients different IDs",
            )
        current.last_row = row.row
        previous_id = pid
        if pid in failed:
            continue
        try:
            _read_row(_Cells(row), current, unit_columns, covariate_columns, options, seen)
        except InputError as exc:
            if not options.collect_errors:
                raise
            failed[pid] = _naming_patient(exc, pid)
    patients = []
    for pid in order:
        if pid in failed:
            continue
        try:
            patient = _finish(by_id[pid], options)
        except InputError as exc:
            if not options.collect_errors:
                raise
            failed[pid] = _naming_patient(exc, pid)
            continue
        patients.append(patient)
        notes.extend(patient.notes)
    return patients, notes, [failed[pid] for pid in order if pid in failed]


def _covariate_columns(table: Table, unit_columns: Mapping[str, str | None]) -> tuple[str, ...]:
    """The columns kept per record as covariates: WT, CRP, ALB, ADA, and every other column
    that no record semantics use and that holds a number (or a missing cell) on every row,
    with at least one number (SEX, AGE, ATI...: a library model may declare them)."""
    known = tuple(c for c in COVARIATE_COLUMNS if c in table.columns)
    other = tuple(
        name
        for name in table.columns
        if name not in _USED and name not in unit_columns and _numeric_column(table, name)
    )
    return known + other


def _numeric_column(table: Table, column: str) -> bool:
    cells = [row.cells.get(column, "") for row in table.rows]
    present = [c for c in cells if c not in MISSING_CELLS]
    return bool(present) and all(parse_number(c) is not None for c in present)


def _check_columns(table: Table) -> None:
    missing = [name for name in _REQUIRED if name not in table.columns]
    if "TIME" not in table.columns and "DATETIME" not in table.columns:
        missing.insert(1, "TIME")
    if missing:
        raise _error(
            None,
            table.header_row or None,
            ", ".join(missing),
            f"missing required column{'s' if len(missing) > 1 else ''} (columns found: "
            f"{', '.join(table.columns)})",
            f"add {', '.join(missing)}, or name the columns with input='ID TIME ...'; "
            "required: ID, TIME (days since the first dose), AMT (mg), DV (mg/L), WT (kg), "
            "CRP (mg/L); optional: EVID, MDV, CMT, RATE or DUR, ADDL, II, SS, CENS or "
            "BLQ+LLOQ, DVID, ALB, ADA, DATE or DATETIME",
        )


def _unit_column_kind(name: str) -> tuple[bool, str | None]:
    """(is a unit column, kind of unit or None for a bare UNIT column)."""
    compact = "".join(ch for ch in name if ch.isalnum())
    for suffix in ("UNITS", "UNIT"):
        if compact.endswith(suffix):
            prefix = compact[: -len(suffix)]
            if prefix in _UNIT_PREFIXES:
                return True, _UNIT_PREFIXES[prefix]
    return False, None


def _check_units(
    cells: _Cells, unit_columns: Mapping[str, str | None], dose: bool, time_unit: str
) -> None:
    row = cells.row
    for column, kind in unit_columns.items():
        raw = row.cells.get(column, "")
        if raw in MISSING_CELLS:
            continue
        if kind is None:  # a bare UNIT column describes AMT on doses, DV on samples
            kind = "mass" if dose else "concentration"
        expected, accepted = _UNIT_KINDS[kind]
        text = raw.strip().lower().replace(" ", "")
        if kind == "time":
            expected = "day" if time_unit == "days" else "h"
            accepted = frozenset({"d", "day", "days"} if time_unit == "days" else {"h", "hours"})
        if text not in accepted:
            raise _error(
                row.patient_id,
                row.row,
                column,
                f"unknown units {raw!r} (expected {expected})",
                f"convert the values to {expected} and write {expected!r} "
                "(1 µg/mL = 1 mg/L; ng/mL ÷ 1000 = mg/L)"
                if kind == "concentration"
                else (
                    "pass time_unit='hours' (CLI --time-unit hours) for times in hours"
                    if kind == "time"
                    else f"convert the values to {expected} and write {expected!r}"
                ),
            )


# --------------------------------------------------------------------------------------
# One row
# --------------------------------------------------------------------------------------


def _read_row(
    cells: _Cells,
    patient: _Collected,
    unit_columns: Mapping[str, str | None],
    covariate_columns: Sequence[str],
    options: NonmemOptions,
    seen: dict[tuple[str, float, int, int | None], int],
) -> None:
    row = cells.row
    time = cells.number("TIME", required=True)
    assert time is not None
    if patient.last_time is not None and time < patient.last_time[0]:
        raise _error(
            patient.id,
            row.row,
            "TIME",
            f"time goes back: {_fmt(time)} after {_fmt(patient.last_time[0])} (row "
            f"{patient.last_time[1]}); records must be in time order within a patient, as "
            "NONMEM requires (resets do not restart the clock here)",
            "sort the patient's rows by TIME; after a reset keep counting from the first dose",
        )
    patient.last_time = (time, row.row)
    evid = _evid(cells)
    _check_units(cells, unit_columns, evid in (1, 4), options.time_unit)
    _read_covariates(cells, patient, covariate_columns, options.strict_covariates)
    mdv = cells.code("MDV", (0, 1), default=0, meaning="MDV 0 (use the row) or 1 (ignore it)")
    if evid not in (1, 4):
        _no_dose_items(cells, patient.id, evid)
    if evid == 2:
        if not any(cells.row.has(column) for column in covariate_columns):
            patient.notes.append(
                _message(
                    patient.id,
                    row.row,
                    "EVID",
                    "other-type event (EVID=2) without a covariate value: nothing to keep",
                )
            )
        return
    if evid in (3, 4):
        _reset(cells, patient, time)
        if evid == 3:
            return
    _check_cmt(cells, patient.id, evid)
    if evid in (1, 4):
        _check_duplicate(cells, (patient.id, time, 1, None), seen)
        _read_dose(cells, patient, time, options)
        return
    if mdv == 1:
        cells.number("DV")  # a bad cell is an error even on a row that is not used
        patient.notes.append(
            _message(patient.id, row.row, "MDV", "observation row with MDV=1 ignored")
        )
        return
    _read_observation(cells, patient, time, seen)


def _evid(cells: _Cells) -> int:
    if "EVID" not in cells.row.cells:  # NONMEM's default: a dose where AMT > 0
        amount = cells.number("AMT")
        return 1 if amount is not None and amount > 0 else 0
    evid = cells.code(
        "EVID",
        (0, 1, 2, 3, 4),
        default=-1,
        meaning="EVID 0 (observation), 1 (dose), 2 (other event), 3 (reset) or 4 (reset and dose)",
    )
    if evid == -1:
        raise _error(
            cells.row.patient_id,
            cells.row.row,
            "EVID",
            "empty cell",
            "EVID 1 for doses, 0 for observations (2 other event, 3 reset, 4 reset + dose)",
        )
    return evid


def _no_dose_items(cells: _Cells, pid: str, evid: int) -> None:
    """ADDL, SS or an amount on a row that is not a dose: an error, not ignored."""
    for column in ("ADDL", "SS", "AMT"):
        value = cells.number(column)
        if value not in (None, 0.0):
            raise _error(
                pid,
                cells.row.row,
                column,
                f"{column}={_fmt(value)} on a row with EVID={evid}, which is not a dose",
                "doses have EVID=1 (or 4); leave AMT, ADDL and SS empty or 0 on other rows",
            )


def _check_cmt(cells: _Cells, pid: str, evid: int) -> None:
    value = cells.number("CMT")
    if value is None:
        return
    dvid = cells.number("DVID")
    if dvid == 2.0:  # the colectomy record's compartment does not touch the PK
        return
    allowed = _DOSE_CMT if evid in (1, 4) else _OBSERVATION_CMT
    if value not in allowed:
        what = (
            "doses go into the central compartment (CMT=1)"
            if evid in (1, 4)
            else "concentrations are observed in the central compartment (CMT=1, or 2 as "
            "ADVAN1's output compartment)"
        )
        raise _error(
            pid,
            cells.row.row,
            "CMT",
            f"CMT={cells.row.cells['CMT']} is not a compartment of this one-compartment model: "
            f"{what}",
            "write CMT=1 (or leave it empty); infliximab is infused into the central compartment",
        )


def _read_covariates(
    cells: _Cells, patient: _Collected, columns: Sequence[str], strict: bool
) -> None:
    values: dict[str, float] = {}
    for column in columns:
        value = cells.number(column)
        if value is not None:
            values[column] = value
    row = cells.row.row
    for column, attribute in (("WT", "weight"), ("CRP", "crp")):
        if column not in values:
            continue
        value = values[column]
        baseline = getattr(patient, attribute)
        if baseline is None:
            setattr(patient, attribute, (value, row))
        elif value != baseline[0] and strict:
            raise _error(
                patient.id,
                row,
                column,
                f"{column} {_fmt(value)} differs from the patient's baseline {_fmt(baseline[0])} "
                f"(row {baseline[1]}); the model takes one baseline value per patient",
                f"write the baseline {column} (at the start of infliximab) on every row of the "
                "patient, or leave the other rows empty",
            )
        elif value != baseline[0]:
            patient.varying.setdefault(column, []).append((row, value))
    if values:
        time = cells.number("TIME")
        assert time is not None
        patient.covariates.append(CovariateRecord(time, tuple(sorted(values.items())), row))


def _check_pending(patient: _Collected, row: int, time: float, column: str, what: str) -> None:
    """A reset (EVID 3/4, SS=1) inside an ADDL series: an error, not a guess."""
    late = next(((t, r) for t, r in patient.pending if t > time), None)
    if late is not None:
        raise _error(
            patient.id,
            row,
            column,
            f"the {what} at day {_fmt(time)} falls within the additional doses (ADDL) of row "
            f"{late[1]}, which run to day {_fmt(late[0])}",
            "end the ADDL series before the reset, or write the doses out",
        )


def _reset(cells: _Cells, patient: _Collected, time: float) -> None:
    row = cells.row.row
    _check_pending(patient, row, time, "EVID", "reset")
    if not patient.doses:
        patient.notes.append(
            _message(
                patient.id,
                row,
                "EVID",
                "reset before any dose: nothing to reset (applied exactly; times still count "
                "from the first dose)",
            )
        )
        return
    patient.resets.append(Reset(time, row))
    _end_doses(patient, time)


def _end_doses(patient: _Collected, time: float) -> None:
    patient.doses = [
        d if d.end_time_day is not None else replace(d, end_time_day=time) for d in patient.doses
    ]


def _read_dose(cells: _Cells, patient: _Collected, time: float, options: NonmemOptions) -> None:
    row = cells.row.row
    amount = cells.number("AMT", required=True, why=" on a dose row (EVID=1)")
    assert amount is not None
    dv = cells.number("DV")
    if dv not in (None, 0.0):
        raise _error(
            patient.id,
            row,
            "DV",
            f"a dose row (EVID=1) has a concentration DV={_fmt(dv)}",
            "put the sample on its own row with EVID=0 (and '.' or 0 in DV of the dose row)",
        )
    duration, label = _duration(cells, patient.id, amount, options.default_duration_day)
    steady_state = cells.code(
        "SS", (0, 1, 2), default=0, meaning="SS 0 (none), 1 (steady state) or 2 (added)"
    )
    interval = cells.number("II")
    additional = cells.number("ADDL")
    unit = "day" if options.time_unit == "days" else "h"
    if interval is not None and interval < 0:
        raise _error(
            patient.id,
            row,
            "II",
            f"II must be ≥ 0, got {_fmt(interval)}",
            "give the interval between doses",
        )
    if additional is not None and (additional < 0 or additional != math.floor(additional)):
        raise _error(
            patient.id,
            row,
            "ADDL",
            f"ADDL must be a whole number ≥ 0, got {_fmt(additional)}",
            "give the number of additional doses",
        )
    n_additional = int(additional or 0)
    for what, active in (("ADDL", n_additional > 0), ("SS", steady_state > 0)):
        if active and not interval:
            raise _error(
                patient.id,
                row,
                "II",
                f"{what} without an interval: II is {'empty' if interval is None else '0'}",
                f"give II, the interval between doses ({unit})",
            )
    if interval and not n_additional and not steady_state:
        patient.notes.append(
            _message(patient.id, row, "II", "II without ADDL or SS has no effect (as in NONMEM)")
        )
    if steady_state == 1:
        _check_pending(patient, row, time, "SS", "steady-state dose (SS=1 resets)")
        _end_doses(patient, time)  # SS=1 resets what was there before
    patient.labels[(row, "duration")] = label
    patient.doses.append(
        Dose(
            time,
            amount,
            duration,
            row,
            steady_state=steady_state,
            steady_state_interval_day=float(interval or 0.0) if steady_state else 0.0,
        )
    )
    if n_additional:
        assert interval is not None
        _additional_doses(patient, cells, time, amount, duration, label, n_additional, interval)
        patient.pending.append((time + n_additional * interval, row))


def _additional_doses(
    patient: _Collected,
    cells: _Cells,
    time: float,
    amount: float,
    duration: float,
    label: str,
    count: int,
    interval: float,
) -> None:
    row = cells.row.row
    last = time + count * interval
    if count > 1000 or last > 1e4:
        raise _error(
            patient.id,
            row,
            "ADDL",
            f"ADDL={count} every II={_fmt(interval)} runs to day {_fmt(last)}",
            "check ADDL and II (II in the file's time unit)",
        )
    for k in range(1, count + 1):
        where = f"row {row} (ADDL dose {k} of {count})"
        patient.labels[(where, "duration")] = label
        patient.labels[(where, "time")] = "TIME + k·II"
        patient.doses.append(Dose(time + k * interval, amount, duration, where))


def _duration(
    cells: _Cells, pid: str, amount: float, default_duration_day: float
) -> tuple[float, str]:
    """Infusion duration (days) of a dose row and the name of the field it came from."""
    row = cells.row.row
    rate = cells.number("RATE")
    duration = cells.number("DUR")
    if rate == -2.0:
        if duration is not None:
            raise _error(
                pid,
                row,
                "RATE",
                "RATE=-2 (duration from the model) together with DUR",
                "give one of RATE=-2 and DUR",
            )
        return default_duration_day, "RATE=-2 (the model's default duration)"
    if rate is not None and rate <= 0:
        meaning = {0.0: "a bolus", -1.0: "a rate estimated by the model (R1)"}.get(
            rate, "not a rate"
        )
        raise _error(
            pid,
            row,
            "RATE",
            f"RATE={_fmt(rate)} ({meaning}) is not supported: infliximab is infused",
            "give RATE > 0 (mg per time unit), RATE=-2 for the model's default duration, or "
            "DUR; leave RATE empty for the default 2 h infusion",
        )
    if duration is not None and duration <= 0:
        raise _error(
            pid,
            row,
            "DUR",
            f"DUR must be > 0, got {_fmt(duration)}",
            "give the infusion duration, or leave DUR empty for the default",
        )
    if rate is not None:
        from_rate = amount / rate
        if duration is not None and not math.isclose(from_rate, duration, rel_tol=0.01):
            raise _error(
                pid,
                row,
                "RATE",
                f"RATE and DUR disagree: AMT/RATE = {from_rate:.4g} day but DUR = "
                f"{_fmt(duration)} day",
                "give only one of RATE (mg/day) and DUR (days), or make them consistent",
            )
        if duration is not None:
            return duration, "DUR"
        return from_rate, "RATE"
    if duration is not None:
        return duration, "DUR"
    return default_duration_day, "default infusion duration"


def _check_duplicate(
    cells: _Cells,
    key: tuple[str, float, int, int | None],
    seen: dict[tuple[str, float, int, int | None], int],
) -> None:
    if key in seen:
        raise _error(
            cells.row.patient_id,
            cells.row.row,
            "TIME",
            f"duplicate record: same ID, TIME, EVID and DVID as row {seen[key]}",
            "remove one of the two rows",
        )
    seen[key] = cells.row.row


def _read_observation(
    cells: _Cells,
    patient: _Collected,
    time: float,
    seen: dict[tuple[str, float, int, int | None], int],
) -> None:
    row = cells.row.row
    dvid = cells.code(
        "DVID", (1, 2), default=1, meaning="DVID 1 (concentration) or 2 (colectomy record)"
    )
    _check_duplicate(cells, (patient.id, time, 0, dvid), seen)
    if dvid == 2:
        event = cells.code(
            "DV", (0, 1), default=-1, meaning="DV 1 (colectomy at TIME) or 0 (censored at TIME)"
        )
        if event == -1:
            raise _error(
                patient.id,
                row,
                "DV",
                "empty cell on a colectomy record (DVID=2)",
                "DV 1 (colectomy at TIME) or 0 (censored at TIME)",
            )
        patient.events.append(EventRecord(time, event, row))
        patient.labels[(row, "event")] = "DV"
        patient.notes.append(
            _message(
                patient.id, row, "DVID", "colectomy record (DVID=2) kept but ignored by forecasting"
            )
        )
        return
    censoring = cells.code(
        "CENS",
        (MEASURED, BELOW_LLOQ, ABOVE_ULOQ),
        default=MEASURED,
        meaning="CENS 0 (measured), 1 (below the LLOQ, DV = LLOQ) or -1 (above the ULOQ, "
        "DV = ULOQ)",
    )
    blq = cells.code("BLQ", (0, 1), default=0, meaning="BLQ 0 (measured) or 1 (below the LLOQ)")
    lloq = cells.number("LLOQ")
    dv = cells.number("DV")
    if blq == 1:
        if cells.row.has("CENS") and censoring != BELOW_LLOQ:
            raise _error(
                patient.id,
                row,
                "BLQ",
                f"BLQ=1 contradicts CENS={censoring}",
                "keep one censoring column, or make them agree",
            )
        if lloq is None or lloq <= 0:
            raise _error(
                patient.id,
                row,
                "LLOQ",
                "censoring flag without a limit: BLQ=1 needs a positive LLOQ (mg/L), got "
                f"{'an empty cell' if lloq is None else _fmt(lloq)}",
                "give the assay's lower limit of quantification in the LLOQ column",
            )
        patient.observations.append(Observation(time, lloq, BELOW_LLOQ, row))
        patient.labels[(row, "value")] = "LLOQ"
        patient.labels[(row, "censoring")] = "BLQ"
        return
    if censoring != MEASURED:
        if dv is None and censoring == BELOW_LLOQ and lloq is not None:
            dv = lloq
            patient.labels[(row, "value")] = "LLOQ"
        if dv is None:
            limit = "LLOQ" if censoring == BELOW_LLOQ else "ULOQ"
            raise _error(
                patient.id,
                row,
                "DV",
                f"censoring flag without a limit: CENS={censoring} needs the {limit} in DV",
                f"write the assay's {limit} (mg/L) in DV",
            )
    elif dv is None:
        raise _error(
            patient.id,
            row,
            "DV",
            "empty cell on an observation row (EVID=0)",
            "fill DV (mg/L); set MDV=1 to skip the row; code an undetectable level as CENS=1 "
            "with DV = LLOQ",
        )
    patient.observations.append(Observation(time, dv, censoring, row))


# --------------------------------------------------------------------------------------
# One patient
# --------------------------------------------------------------------------------------


def _finish(collected: _Collected, options: NonmemOptions) -> Patient:
    for column, baseline in (("WT", collected.weight), ("CRP", collected.crp)):
        if baseline is None:
            what = "body weight (kg)" if column == "WT" else "CRP (mg/L)"
            raise _error(
                collected.id,
                collected.first_row,
                column,
                f"baseline {what} missing on every row of the patient",
                f"fill {column} at least on the patient's first row",
            )
    assert collected.weight is not None and collected.crp is not None
    if not collected.doses:
        raise _error(
            collected.id,
            collected.first_row,
            "EVID",
            "the patient has no dose (no row with EVID=1)",
            "add the infliximab infusions, given and planned, as EVID=1 rows with AMT in mg",
        )
    notes = [*collected.notes, *_varying_notes(collected)]
    labels = _FieldLabels(
        names={
            "id": "ID",
            "weight": "WT",
            "crp": "CRP",
            "doses": "EVID",
            "time": "TIME",
            "amount": "AMT",
            "value": "DV",
            "censoring": "CENS",
            "event": "DV",
        },
        per_record=collected.labels,
        baseline_location=collected.first_row,
        baseline_locations={"weight": collected.weight[1], "crp": collected.crp[1]},
    )
    draft = Patient(
        id=collected.id,
        weight_kg=collected.weight[0],
        crp_mg_l=collected.crp[0],
        doses=tuple(collected.doses),
        observations=tuple(collected.observations),
        events=tuple(collected.events),
        notes=tuple(notes),
        covariate_records=tuple(collected.covariates),
        resets=tuple(collected.resets),
    )
    patient = _validate_patient(draft, options.limits, labels)
    if not options.allow_unsupported:
        error = unsupported_by_engine(patient)
        if error is not None:
            raise error
    return patient


def _varying_notes(collected: _Collected) -> list[str]:
    """One note per covariate whose value changes within the patient."""
    notes = []
    for column, changes in collected.varying.items():
        baseline = collected.weight if column == "WT" else collected.crp
        assert baseline is not None
        rows = ", ".join(f"{_fmt(v)} (row {r})" for r, v in changes[:5])
        more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
        notes.append(
            _message(
                collected.id,
                changes[0][0],
                column,
                f"{column} differs from the baseline {_fmt(baseline[0])} (row {baseline[1]}): "
                f"{rows}{more}; kept in Patient.covariate_records, the current model uses the "
                "baseline value",
            )
        )
    return notes
