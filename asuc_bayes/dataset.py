"""Validated internal representation of patients (doses, concentrations, covariates).

Every input format (NONMEM-style CSV, TOML/YAML patient files, the Python API) becomes
:class:`Patient` objects. Plausibility limits are checked here, once, at the boundary:
:func:`read_patients` (and :func:`patients_from_records`, :func:`validate_patient`) either
return patients that the model can use as they are, or raise :class:`InputError` with a
message naming the patient, the row (or entry) and the field, and the fix.

>>> from asuc_bayes.dataset import example_path, read_patients
>>> patient_set = read_patients(example_path())
>>> [p.id for p in patient_set.patients][:3]
['P01', 'P02', 'P03']
"""

from __future__ import annotations

import csv
import importlib.resources
import itertools
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

__all__ = [
    "ABOVE_ULOQ",
    "BELOW_LLOQ",
    "MEASURED",
    "Dose",
    "EventRecord",
    "InputError",
    "Observation",
    "Patient",
    "PatientSet",
    "PlausibilityLimits",
    "example_path",
    "parse_patients",
    "patients_from_records",
    "read_cohort",
    "read_nonmem_csv",
    "read_patient_file",
    "read_patients",
    "validate_cohort",
    "validate_patient",
    "write_nonmem_csv",
]

MEASURED = 0
BELOW_LLOQ = 1
ABOVE_ULOQ = -1

#: Default infusion duration when a record gives none: 2 h, in days.
DEFAULT_INFUSION_DURATION_DAY = 1.0 / 12.0


class InputError(ValueError):
    """Bad input data. The message names the patient, the row and the field, and the fix.

    The same facts are attributes, for interfaces that show the message next to the field:
    ``patient_id``, ``location`` (a CSV row number or an entry path such as ``"doses[1]"``)
    and ``field`` (the column or key), each ``None`` when the message names none, and
    ``detail``, the message without the patient, location and field that start it.
    """

    def __init__(
        self,
        message: str,
        *,
        patient_id: str | None = None,
        location: int | str | None = None,
        field: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.patient_id = patient_id
        self.location = location
        self.field = field
        self.detail = detail if detail is not None else message


@dataclass(frozen=True)
class Dose:
    """One infliximab infusion: start time (days since first dose), amount (mg), duration (days).

    ``row`` is where the record came from (a CSV line number, or an entry path such as
    ``"doses[1]"`` in a patient file); it is provenance only and takes no part in equality.
    """

    time_day: float
    amount_mg: float
    duration_day: float
    row: int | str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Observation:
    """One serum concentration record.

    ``censoring`` is :data:`MEASURED` (``value_mg_l`` is the concentration),
    :data:`BELOW_LLOQ` (``value_mg_l`` is the LLOQ) or :data:`ABOVE_ULOQ` (the ULOQ).
    ``row`` is provenance only (see :class:`Dose`).
    """

    time_day: float
    value_mg_l: float
    censoring: int = MEASURED
    row: int | str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class EventRecord:
    """A colectomy record (DVID 2): ``event`` 1 colectomy at ``time_day``, 0 censored there."""

    time_day: float
    event: int
    row: int | str | None = field(default=None, compare=False)


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


@dataclass(frozen=True)
class PlausibilityLimits:
    """Plausible ranges of the input fields; anything outside is rejected as an input error.

    Fixed rules that are not parameters: a CRP must be > 0 (the model takes CRP^0.56 and its
    logarithm), a measured concentration must be > 0 (code an undetectable level as below the
    LLOQ instead), a censoring limit (LLOQ/ULOQ) must be > 0, times must be ≥ 0 and samples
    must be taken after the first dose.

    Attributes
    ----------
    weight_kg_min, weight_kg_max
        Body weight (kg).
    crp_mg_l_min, crp_mg_l_max
        Baseline C-reactive protein (mg/L).
    dose_mg_min, dose_mg_max
        Amount of one infusion (mg).
    infusion_duration_day_min, infusion_duration_day_max
        Duration of one infusion (days): 5 minutes to 1 day by default.
    time_day_max
        Latest dose, sample or event time (days since the first dose).
    concentration_mg_l_max
        Largest concentration, or censoring limit, accepted (mg/L).
    """

    weight_kg_min: float = 20.0
    weight_kg_max: float = 250.0
    crp_mg_l_min: float = 0.1
    crp_mg_l_max: float = 1000.0
    dose_mg_min: float = 1.0
    dose_mg_max: float = 3000.0
    infusion_duration_day_min: float = 5.0 / 1440.0
    infusion_duration_day_max: float = 1.0
    time_day_max: float = 365.0
    concentration_mg_l_max: float = 2000.0


@dataclass(frozen=True)
class PatientSet:
    """Validated patients read from one source, with everything that was ignored.

    Attributes
    ----------
    patients
        The patients, in order of first appearance in the source.
    notes
        Human-readable notes on everything read but not used (rows with MDV=1, colectomy
        records, extra columns, varying covariates...); report them to the user.
    source
        Where the patients came from (a file path, or a description).
    errors
        With ``collect_errors=True``: one :class:`InputError` per patient whose records were
        bad (that patient is left out of ``patients``; batch runs report it in its row).
    """

    patients: tuple[Patient, ...]
    notes: tuple[str, ...] = ()
    source: str = ""
    errors: tuple[InputError, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        """The patient IDs, in order."""
        return tuple(p.id for p in self.patients)

    def by_id(self, patient_id: str) -> Patient:
        """The patient with ID ``patient_id``.

        Raises
        ------
        KeyError
            If no patient has that ID.
        """
        for patient in self.patients:
            if patient.id == patient_id:
                return patient
        raise KeyError(f"no patient {patient_id!r} in {self.source} (IDs: {list(self.ids)})")


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------

Location = int | str | None


def _where(location: Location) -> str | None:
    """``7`` -> ``'row 7'``; ``'doses[1]'`` stays; ``None`` -> nothing."""
    if location is None:
        return None
    if isinstance(location, int):
        return f"row {location}"
    return location


def _message(
    patient_id: str | None,
    location: Location,
    field_name: str | None,
    problem: str,
    fix: str | None = None,
) -> str:
    """``patient 'P03', row 7, field AMT: <problem> (fix: <fix>)``."""
    parts = [
        f"patient {patient_id!r}" if patient_id is not None else None,
        _where(location),
        f"field {field_name}" if field_name else None,
    ]
    head = ", ".join(p for p in parts if p)
    text = f"{head}: {problem}" if head else problem
    return f"{text} (fix: {fix})" if fix else text


def _error(
    patient_id: str | None,
    location: Location,
    field_name: str | None,
    problem: str,
    fix: str | None = None,
) -> InputError:
    return InputError(
        _message(patient_id, location, field_name, problem, fix),
        patient_id=patient_id,
        location=location,
        field=field_name,
        detail=_message(None, None, None, problem, fix),
    )


def _fmt(value: float) -> str:
    """A number as the user wrote it: ``600`` rather than ``600.0``."""
    return f"{value:g}" if math.isfinite(value) else str(value)


# --------------------------------------------------------------------------------------
# Validation (shared by every reader and the Python API)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldLabels:
    """How the fields of a :class:`Patient` are called in the source format.

    ``per_record`` overrides a label for one record: ``{(row, "amount"): "mg_per_kg"}``.
    Generic names: weight, crp, doses, time, amount, duration, value, censoring, event.
    """

    names: Mapping[str, str] = field(default_factory=dict)
    per_record: Mapping[tuple[Location, str], str] = field(default_factory=dict)
    baseline_location: Location = None
    baseline_locations: Mapping[str, Location] = field(default_factory=dict)

    def located(self, generic: str) -> Location:
        """Where a patient-level field (weight, crp, doses) comes from."""
        return self.baseline_locations.get(generic, self.baseline_location)

    def of(self, generic: str, location: Location = None) -> str:
        if (location, generic) in self.per_record:
            return self.per_record[(location, generic)]
        return self.names.get(generic, _GENERIC_LABELS[generic])


_GENERIC_LABELS = {
    "id": "id",
    "weight": "weight_kg",
    "crp": "crp_mg_l",
    "doses": "doses",
    "time": "time_day",
    "amount": "amount_mg",
    "duration": "duration_day",
    "value": "value_mg_l",
    "censoring": "censoring",
    "event": "event",
}


def _as_float(value: object, patient_id: str, location: Location, label: str) -> float:
    if isinstance(value, bool):
        raise _error(patient_id, location, label, f"{value!r} is not a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _error(
            patient_id, location, label, f"{value!r} is not a number", "write a plain number"
        ) from None
    if not math.isfinite(number):
        raise _error(patient_id, location, label, f"{value!r} is not a finite number")
    return number


def _check_range(
    value: float,
    low: float,
    high: float,
    unit: str,
    what: str,
    patient_id: str,
    location: Location,
    label: str,
    fix: str,
) -> None:
    if not low <= value <= high:
        raise _error(
            patient_id,
            location,
            label,
            f"{what} must be between {_fmt(low)} and {_fmt(high)} {unit}, got {_fmt(value)}",
            fix,
        )


def validate_patient(patient: Patient, limits: PlausibilityLimits | None = None) -> Patient:
    """Check one patient against the plausibility limits; return it with records sorted.

    Use this for patients built in Python; the file readers call it themselves.

    Parameters
    ----------
    patient
        The patient to check.
    limits
        Plausible ranges; the defaults of :class:`PlausibilityLimits` when ``None``.

    Returns
    -------
    Patient
        An equal patient whose doses, observations and events are sorted by time (stable)
        and whose numbers are floats.

    Raises
    ------
    InputError
        Naming the patient, the record (its ``row``) and the field, and the fix.
    """
    return _validate_patient(patient, limits or PlausibilityLimits(), _FieldLabels())


def _validate_patient(
    patient: Patient, limits: PlausibilityLimits, labels: _FieldLabels
) -> Patient:
    pid = patient.id
    if not isinstance(pid, str) or not pid.strip():
        raise _error(None, labels.baseline_location, labels.of("id"), f"empty patient ID {pid!r}")
    base = labels.located("weight")
    weight = _as_float(patient.weight_kg, pid, base, labels.of("weight"))
    _check_range(
        weight,
        limits.weight_kg_min,
        limits.weight_kg_max,
        "kg",
        "body weight",
        pid,
        base,
        labels.of("weight"),
        "give the body weight in kg",
    )
    base = labels.located("crp")
    crp = _as_float(patient.crp_mg_l, pid, base, labels.of("crp"))
    _check_range(
        crp,
        limits.crp_mg_l_min,
        limits.crp_mg_l_max,
        "mg/L",
        "baseline CRP",
        pid,
        base,
        labels.of("crp"),
        "give the baseline CRP in mg/L (mg/dL × 10); an undetectable CRP as the assay's "
        "lower limit",
    )
    if not patient.doses:
        raise _error(
            pid,
            labels.located("doses"),
            labels.of("doses"),
            "the patient has no dose",
            "add at least the first infliximab infusion (time 0); planned doses count too",
        )

    doses = [_checked_dose(d, pid, limits, labels) for d in patient.doses]
    doses.sort(key=lambda d: d.time_day)
    for earlier, later in itertools.pairwise(doses):
        if later.time_day == earlier.time_day:
            raise _error(
                pid,
                later.row,
                labels.of("time", later.row),
                f"duplicate dose at time {_fmt(later.time_day)} (also {_where(earlier.row)})",
                "remove the duplicate record",
            )
        end = earlier.time_day + earlier.duration_day
        if later.time_day < end - 1e-9:
            raise _error(
                pid,
                later.row,
                labels.of("time", later.row),
                f"infusion starting at day {_fmt(later.time_day)} overlaps the infusion of "
                f"{_where(earlier.row) or 'the previous dose'} (day {_fmt(earlier.time_day)} "
                f"to {_fmt(end)})",
                "check the times and infusion durations; merge the two records if they are "
                "one infusion",
            )
    first_dose_day = doses[0].time_day

    observations = [
        _checked_observation(o, pid, first_dose_day, limits, labels) for o in patient.observations
    ]
    observations.sort(key=lambda o: o.time_day)
    for earlier, later in itertools.pairwise(observations):
        if later.time_day == earlier.time_day:
            raise _error(
                pid,
                later.row,
                labels.of("time", later.row),
                f"duplicate sample at time {_fmt(later.time_day)} (also "
                f"{_where(earlier.row) or 'another sample'})",
                "keep one concentration per sample time",
            )

    events = [_checked_event(e, pid, limits, labels) for e in patient.events]
    events.sort(key=lambda e: e.time_day)
    for earlier, later in itertools.pairwise(events):
        if later.time_day == earlier.time_day:
            raise _error(
                pid,
                later.row,
                labels.of("time", later.row),
                f"duplicate colectomy record at time {_fmt(later.time_day)} (also "
                f"{_where(earlier.row) or 'another record'})",
                "keep one record per time",
            )
    if len(events) > 1:
        # Ambiguous for any use: which one is the outcome? (A subject has one colectomy or
        # one end of follow-up.)
        raise _error(
            pid,
            events[1].row,
            "DVID" if isinstance(events[1].row, int) else labels.of("event", events[1].row),
            f"{len(events)} colectomy records (DVID=2) for one patient, at days "
            f"{', '.join(_fmt(e.time_day) for e in events)} ({_where(events[0].row)} and "
            f"{_where(events[1].row)})",
            "keep one record per patient: DV=1 at the colectomy, or DV=0 at the end of "
            "follow-up (the last day the patient was known to be colectomy-free)",
        )

    notes = list(patient.notes)
    if first_dose_day != 0.0:
        notes.append(
            _message(
                pid,
                doses[0].row,
                None,
                f"the first dose is at day {_fmt(first_dose_day)}, not 0; times are used as "
                "given (they should count days since the first infliximab dose)",
            )
        )
    return Patient(
        id=pid.strip(),
        weight_kg=weight,
        crp_mg_l=crp,
        doses=tuple(doses),
        observations=tuple(observations),
        events=tuple(events),
        notes=tuple(notes),
    )


def _checked_time(
    value: object, pid: str, location: Location, label: str, limits: PlausibilityLimits
) -> float:
    time = _as_float(value, pid, location, label)
    if time < 0:
        raise _error(
            pid,
            location,
            label,
            f"time must be ≥ 0 days, got {_fmt(time)}",
            "times count days since the first infliximab dose (time 0); check the date conversion",
        )
    if time > limits.time_day_max:
        raise _error(
            pid,
            location,
            label,
            f"time must be ≤ {_fmt(limits.time_day_max)} days, got {_fmt(time)}",
            "times are in days since the first dose (not hours); check the unit",
        )
    return time


def _checked_dose(dose: Dose, pid: str, limits: PlausibilityLimits, labels: _FieldLabels) -> Dose:
    row = dose.row
    time = _checked_time(dose.time_day, pid, row, labels.of("time", row), limits)
    amount_label = labels.of("amount", row)
    amount = _as_float(dose.amount_mg, pid, row, amount_label)
    if amount <= 0:
        raise _error(
            pid,
            row,
            amount_label,
            f"dose must be > 0 mg, got {_fmt(amount)}",
            "give the infused amount in mg (5 or 10 mg/kg is 300–1000 mg); remove the record "
            "if no dose was given",
        )
    _check_range(
        amount,
        limits.dose_mg_min,
        limits.dose_mg_max,
        "mg",
        "dose",
        pid,
        row,
        amount_label,
        "give the amount of one infusion in mg (not µg, not mg/kg)",
    )
    duration_label = labels.of("duration", row)
    duration = _as_float(dose.duration_day, pid, row, duration_label)
    if not limits.infusion_duration_day_min <= duration <= limits.infusion_duration_day_max:
        raise _error(
            pid,
            row,
            duration_label,
            f"infusion duration must be between {limits.infusion_duration_day_min * 1440:g} "
            f"min and {_fmt(limits.infusion_duration_day_max)} day, got {_fmt(duration)} day "
            f"({duration * 24:.3g} h)",
            "infusion durations are in days (2 h = 0.0833 day), RATE in mg/day",
        )
    return Dose(time, amount, duration, row)


def _checked_observation(
    observation: Observation,
    pid: str,
    first_dose_day: float,
    limits: PlausibilityLimits,
    labels: _FieldLabels,
) -> Observation:
    row = observation.row
    time_label = labels.of("time", row)
    time = _checked_time(observation.time_day, pid, row, time_label, limits)
    if time <= first_dose_day:
        raise _error(
            pid,
            row,
            time_label,
            f"sample at time {_fmt(time)} is not after the first dose (time "
            f"{_fmt(first_dose_day)})",
            "samples must be taken after the start of the first infusion; remove pre-dose "
            "samples or correct the time",
        )
    censoring_label = labels.of("censoring", row)
    censoring = observation.censoring
    if isinstance(censoring, bool) or censoring not in (MEASURED, BELOW_LLOQ, ABOVE_ULOQ):
        raise _error(
            pid,
            row,
            censoring_label,
            f"censoring code must be 0, 1 or -1, got {censoring!r}",
            "0 measured, 1 below the lower limit (value = LLOQ), -1 above the upper limit "
            "(value = ULOQ)",
        )
    value_label = labels.of("value", row)
    value = _as_float(observation.value_mg_l, pid, row, value_label)
    if censoring == MEASURED and value <= 0:
        raise _error(
            pid,
            row,
            value_label,
            f"a measured concentration must be > 0 mg/L, got {_fmt(value)}",
            "code an undetectable level as below the LLOQ (CENS=1 with DV = the LLOQ; "
            "below_lloq = LLOQ in a patient file)",
        )
    if censoring != MEASURED and value <= 0:
        limit = "LLOQ" if censoring == BELOW_LLOQ else "ULOQ"
        raise _error(
            pid,
            row,
            value_label,
            f"censoring flag without a limit: the {limit} must be > 0 mg/L, got {_fmt(value)}",
            f"give the assay's {limit} in mg/L as the value of the censored record",
        )
    if value > limits.concentration_mg_l_max:
        raise _error(
            pid,
            row,
            value_label,
            f"concentration must be ≤ {_fmt(limits.concentration_mg_l_max)} mg/L, got "
            f"{_fmt(value)}",
            "concentrations are in mg/L (= µg/mL); convert ng/mL by dividing by 1000",
        )
    return Observation(time, value, int(censoring), row)


def _checked_event(
    event: EventRecord, pid: str, limits: PlausibilityLimits, labels: _FieldLabels
) -> EventRecord:
    row = event.row
    time = _checked_time(event.time_day, pid, row, labels.of("time", row), limits)
    if time <= 0:
        raise _error(
            pid,
            row,
            labels.of("time", row),
            f"colectomy record at time {_fmt(time)}: a colectomy or the end of follow-up must "
            "be after the first dose (time 0)",
            "give the day of the colectomy, or of the last colectomy-free follow-up, counted "
            "from the first infliximab dose",
        )
    if isinstance(event.event, bool) or event.event not in (0, 1):
        raise _error(
            pid,
            row,
            labels.of("event", row),
            f"colectomy event must be 1 (colectomy) or 0 (censored), got {event.event!r}",
        )
    return EventRecord(time, int(event.event), row)


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------

_READERS_BY_SUFFIX = {".csv": "csv", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


def example_path() -> Path:
    """Path of the bundled example dataset ``asuc_bayes/examples/patients.csv``.

    Its patients cover one and several samples, a sample below the LLOQ, one above the
    ULOQ, no sample at all (prior-only forecast), an accelerated schedule, planned doses
    after the last sample, and RATE/DUR infusion durations.
    """
    return Path(str(importlib.resources.files("asuc_bayes") / "examples" / "patients.csv"))


def read_patients(
    path: str | Path,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
    collect_errors: bool = False,
) -> PatientSet:
    """Read and validate patients from a NONMEM-style CSV, or a TOML/YAML patient file.

    Parameters
    ----------
    path
        ``.csv`` (NONMEM-style dataset, see :func:`read_nonmem_csv`), ``.toml`` or
        ``.yaml``/``.yml`` (patient file, see :func:`read_patient_file`).
    default_infusion_duration_day
        Duration of infusions whose record gives none (days; 2 h by default).
    limits
        Plausible ranges; the defaults of :class:`PlausibilityLimits` when ``None``.
    collect_errors
        Keep reading past a patient with bad records: that patient's first error goes to
        :attr:`PatientSet.errors` and the others are read (for batch runs, where one bad
        patient must not stop the rest). Errors of the file itself (unreadable, bad header,
        ragged rows, no patients at all) still raise.

    Returns
    -------
    PatientSet
        The patients in order of first appearance, and notes on everything ignored.

    Raises
    ------
    InputError
        Missing file, unknown suffix, or bad data; the message starts with the file name
        and names the patient, the row (or entry) and the field, and the fix.
    """
    path = Path(path)
    kind = _READERS_BY_SUFFIX.get(path.suffix.lower())
    if kind is None:
        accepted = ", ".join(sorted(_READERS_BY_SUFFIX))
        raise InputError(
            f"{path}: unknown file type {path.suffix or '(no suffix)'!r} (accepted: {accepted})"
        )
    return _parse_text(
        _read_text(path),
        kind,
        str(path),
        default_infusion_duration_day,
        limits,
        collect_errors=collect_errors,
    )


def _check_default_duration(duration_day: float, limits: PlausibilityLimits) -> None:
    low, high = limits.infusion_duration_day_min, limits.infusion_duration_day_max
    if not (math.isfinite(duration_day) and low <= duration_day <= high):
        raise InputError(
            f"default infusion duration must be between {low:g} and {high:g} day, got "
            f"{duration_day!r}"
        )


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    return _decode(path.read_bytes(), str(path))


def _decode(content: bytes, source: str) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start}) (fix: save the file "
            "as UTF-8 CSV/TOML/YAML)"
        ) from None


def _parse_text(
    text: str,
    kind: str,
    source: str,
    default_infusion_duration_day: float,
    limits: PlausibilityLimits | None,
    strict_covariates: bool = False,
    collect_errors: bool = False,
) -> PatientSet:
    """Patients from the text of a ``csv``/``toml``/``yaml`` source; errors start with
    ``source`` and keep their patient, location and field. ``strict_covariates`` makes a
    covariate varying within a patient an error (population fits) instead of a note;
    ``collect_errors`` keeps per-patient errors in :attr:`PatientSet.errors`."""
    limits = limits or PlausibilityLimits()
    try:
        if kind == "csv":
            _check_default_duration(default_infusion_duration_day, limits)
            patients, notes, errors = _parse_nonmem_csv(
                text, default_infusion_duration_day, limits, strict_covariates, collect_errors
            )
            result = PatientSet(tuple(patients), tuple(notes), source, tuple(errors))
        else:
            result = patients_from_records(
                _patient_records(text, kind),  # type: ignore[arg-type]  # checked there
                source=source,
                default_infusion_duration_day=default_infusion_duration_day,
                limits=limits,
                collect_errors=collect_errors,
            )
    except InputError as exc:
        raise _from_source(exc, source) from None
    return replace(
        result, source=source, errors=tuple(_from_source(e, source) for e in result.errors)
    )


def _naming_patient(exc: InputError, patient_id: str) -> InputError:
    """``exc`` with ``patient_id`` set when it names no patient (its message unchanged)."""
    if exc.patient_id is not None:
        return exc
    return InputError(
        str(exc), patient_id=patient_id, location=exc.location, field=exc.field, detail=exc.detail
    )


def _from_source(exc: InputError, source: str) -> InputError:
    """``exc`` with its message starting with ``source``."""
    if str(exc).startswith(f"{source}:"):
        return exc
    return InputError(
        f"{source}: {exc}",
        patient_id=exc.patient_id,
        location=exc.location,
        field=exc.field,
        detail=exc.detail,
    )


#: Largest upload :func:`parse_patients` accepts by default (bytes).
MAX_UPLOAD_BYTES = 1_000_000


def parse_patients(
    content: str | bytes,
    filename: str,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
    max_bytes: int | None = MAX_UPLOAD_BYTES,
) -> PatientSet:
    """Read and validate patients from a file's content held in memory (an upload).

    The same readers as :func:`read_patients`, without touching the disk: the content is
    parsed as data only (CSV cells, TOML, or YAML with the safe loader, which builds no
    Python objects).

    Parameters
    ----------
    content
        The file's bytes (UTF-8, a BOM is allowed) or text.
    filename
        Its name: the suffix (``.csv``, ``.toml``, ``.yaml``/``.yml``) chooses the reader,
        and messages start with it.
    default_infusion_duration_day, limits
        As for :func:`read_patients`.
    max_bytes
        Reject larger content (``None``: no limit).

    Returns
    -------
    PatientSet

    Raises
    ------
    InputError
        Unknown suffix, too large, not UTF-8, or bad data (as :func:`read_patients`).

    Examples
    --------
    >>> text = "ID,TIME,EVID,AMT,DV,WT,CRP\\nP1,0,1,600,.,63,30\\nP1,7,0,.,12,63,30\\n"
    >>> parse_patients(text, "upload.csv").patients[0].obs_value_mg_l
    array([12.])
    """
    name = Path(filename).name or "upload"
    kind = _READERS_BY_SUFFIX.get(Path(name).suffix.lower())
    if kind is None:
        accepted = ", ".join(sorted(_READERS_BY_SUFFIX))
        raise InputError(
            f"{name}: unknown file type {Path(name).suffix or '(no suffix)'!r} "
            f"(accepted: {accepted})"
        )
    size = len(content.encode("utf-8") if isinstance(content, str) else content)
    if max_bytes is not None and size > max_bytes:
        raise InputError(
            f"{name}: the file is {size:,} bytes, more than the {max_bytes:,} accepted (fix: "
            "upload only the patients you need)"
        )
    text = _decode(content, name) if isinstance(content, bytes) else content
    return _parse_text(text.lstrip("\ufeff"), kind, name, default_infusion_duration_day, limits)


# --------------------------------------------------------------------------------------
# NONMEM-style CSV
# --------------------------------------------------------------------------------------

_CSV_REQUIRED = ("ID", "TIME", "EVID", "AMT", "DV", "WT", "CRP")
_CSV_OPTIONAL = ("RATE", "DUR", "CENS", "BLQ", "LLOQ", "MDV", "DVID")
_MISSING_CELLS = ("", ".")

_CONCENTRATION_UNITS = frozenset({"mg/l", "ug/ml", "µg/ml", "μg/ml", "mcg/ml", "mg.l-1"})
_UNIT_KINDS: dict[str, tuple[str, frozenset[str]]] = {
    "mass": ("mg", frozenset({"mg"})),
    "concentration": ("mg/L", _CONCENTRATION_UNITS),
    "time": ("day", frozenset({"d", "day", "days"})),
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


def _unit_column_kind(name: str) -> tuple[bool, str | None]:
    """(is a unit column, kind of unit or None for a bare UNIT column)."""
    compact = "".join(ch for ch in name if ch.isalnum())
    for suffix in ("UNITS", "UNIT"):
        if compact.endswith(suffix):
            prefix = compact[: -len(suffix)]
            if prefix in _UNIT_PREFIXES:
                return True, _UNIT_PREFIXES[prefix]
    return False, None


@dataclass
class _CsvPatient:
    """Records of one patient while the CSV is read."""

    id: str
    first_row: int
    last_row: int
    weight: tuple[float, int] | None = None
    crp: tuple[float, int] | None = None
    doses: list[Dose] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    labels: dict[tuple[Location, str], str] = field(default_factory=dict)
    #: Covariates must not vary within the patient (population fits): an error, not a note.
    strict_covariates: bool = False


class _CsvRow:
    """One data row: cells by upper-case column name, with typed accessors."""

    def __init__(self, cells: dict[str, str], row: int, patient_id: str | None) -> None:
        self.cells = cells
        self.row = row
        self.patient_id = patient_id

    def has(self, column: str) -> bool:
        return self.cells.get(column, "") not in _MISSING_CELLS

    def number(self, column: str, *, required: bool = False, why: str = "") -> float | None:
        raw = self.cells.get(column, "")
        if raw in _MISSING_CELLS:
            if required:
                raise _error(
                    self.patient_id,
                    self.row,
                    column,
                    f"empty cell{why}",
                    f"fill {column}" if not why else f"fill {column}, or remove the row",
                )
            return None
        try:
            value = float(raw)
        except ValueError:
            raise _error(
                self.patient_id,
                self.row,
                column,
                f"{raw!r} is not a number",
                "write a plain number (decimal point, no units or spaces); '.' or an empty "
                "cell for missing",
            ) from None
        if not math.isfinite(value):
            raise _error(self.patient_id, self.row, column, f"{raw!r} is not a finite number")
        return value

    def code(self, column: str, allowed: Sequence[int], *, default: int, meaning: str) -> int:
        value = self.number(column)
        if value is None:
            return default
        if value not in allowed:
            raise _error(
                self.patient_id,
                self.row,
                column,
                f"{column} values not supported: {self.cells[column]!r}",
                f"use {meaning}",
            )
        return int(value)


def read_nonmem_csv(
    path: str | Path,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
    strict_covariates: bool = False,
) -> PatientSet:
    """Read and validate a NONMEM-style CSV dataset.

    Column names are case-insensitive. Required: ``ID`` (kept as text), ``TIME`` (days since
    the first infliximab dose), ``EVID`` (1 dose, 0 observation), ``AMT`` (mg), ``DV``
    (mg/L), ``WT`` (kg) and ``CRP`` (mg/L) at baseline (taken from the patient's first row
    that has them). Optional: ``RATE`` (mg/day) or ``DUR`` (days) — neither, or an empty or
    zero cell, means the default infusion duration; ``CENS`` (0 measured, 1 below the LLOQ
    with DV = LLOQ, -1 above the ULOQ with DV = ULOQ) or mapbayr-style ``BLQ`` (0/1) with
    ``LLOQ``; ``MDV`` (1 on an observation row: row ignored); ``DVID`` (1 concentration,
    2 colectomy record: DV 1 colectomy, 0 censored; kept in :attr:`Patient.events`, ignored
    by forecasting); unit columns such as ``DVUNIT``/``AMTUNIT``/``UNIT`` (must say mg/L or
    µg/mL, mg, day, kg). ``.`` or an empty cell means missing. Other columns are ignored
    with a note.

    Row numbers in messages are line numbers as a spreadsheet shows them (header = 1).

    Parameters
    ----------
    path
        The CSV file (comma-, semicolon- or tab-separated).
    default_infusion_duration_day
        Duration of infusions without RATE/DUR (days).
    limits
        Plausible ranges; the defaults of :class:`PlausibilityLimits` when ``None``.
    strict_covariates
        A WT or CRP that differs from the patient's first value is an error (population
        fits) instead of a note (forecasting uses the first value).

    Returns
    -------
    PatientSet

    Raises
    ------
    InputError
        With the file name, the patient, the row and the field, and the fix.
    """
    path = Path(path)
    return _parse_text(
        _read_text(path), "csv", str(path), default_infusion_duration_day, limits, strict_covariates
    )


def _parse_nonmem_csv(
    text: str,
    default_duration_day: float,
    limits: PlausibilityLimits,
    strict_covariates: bool = False,
    collect_errors: bool = False,
) -> tuple[list[Patient], list[str], list[InputError]]:
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), None)
    if header_line is None:
        raise InputError("the file is empty (fix: give a header row and one row per record)")
    delimiter = max(",;\t", key=header_line.count)
    reader = csv.reader(lines, delimiter=delimiter)

    header: list[str] | None = None
    header_row = 0
    rows: list[_CsvRow] = []
    for cells in reader:
        row_number = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header, header_row = _csv_header(cells, row_number), row_number
            continue
        stripped = [cell.strip() for cell in cells]
        if len(stripped) > len(header) and not any(stripped[len(header) :]):
            stripped = stripped[: len(header)]
        if len(stripped) != len(header):
            raise _error(
                None,
                row_number,
                None,
                f"{len(stripped)} cells but the header has {len(header)} columns",
                f"give every row the same number of {delimiter!r}-separated cells",
            )
        record = dict(zip(header, stripped, strict=True))
        rows.append(_CsvRow(record, row_number, record["ID"] or None))
    assert header is not None

    notes: list[str] = []
    unit_columns: dict[str, str | None] = {}
    for name in header:
        if name in _CSV_REQUIRED or name in _CSV_OPTIONAL:
            continue
        is_unit, kind = _unit_column_kind(name)
        if is_unit:
            unit_columns[name] = kind
        else:
            notes.append(f"column {name} ignored (not used by asuc_bayes)")
    if not rows:
        raise _error(
            None,
            header_row,
            None,
            "the file has a header but no data rows",
            "add one row per dose and per sample",
        )

    by_id: dict[str, _CsvPatient] = {}
    order: list[str] = []
    seen_records: dict[tuple[str, float, int, int | None], int] = {}
    previous_id: str | None = None
    failed: dict[str, InputError] = {}
    for row in rows:
        pid = row.cells["ID"]
        if not pid:
            raise _error(None, row.row, "ID", "empty patient ID", "fill ID on every row")
        current = by_id.get(pid)
        if current is None:
            current = by_id[pid] = _CsvPatient(
                pid, row.row, row.row, strict_covariates=strict_covariates
            )
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
            continue  # the rest of a patient already reported
        try:
            _read_csv_row(row, current, unit_columns, default_duration_day, seen_records)
        except InputError as exc:
            if not collect_errors:
                raise
            failed[pid] = _naming_patient(exc, pid)

    patients = []
    for pid in order:
        if pid in failed:
            continue
        try:
            patient = _finish_csv_patient(by_id[pid], limits)
        except InputError as exc:
            if not collect_errors:
                raise
            failed[pid] = _naming_patient(exc, pid)
            continue
        patients.append(patient)
        notes.extend(patient.notes)
    return patients, notes, [failed[pid] for pid in order if pid in failed]


def _csv_header(cells: list[str], row_number: int) -> list[str]:
    header = [cell.strip().upper() for cell in cells]
    while header and not header[-1]:
        header.pop()
    for index, name in enumerate(header, start=1):
        if not name:
            raise _error(None, row_number, None, f"column {index} has no name", "name every column")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise _error(
            None,
            row_number,
            ", ".join(duplicated),
            "duplicate column name (column names are case-insensitive)",
            "keep one column of each name",
        )
    missing = [name for name in _CSV_REQUIRED if name not in header]
    if missing:
        raise _error(
            None,
            row_number,
            ", ".join(missing),
            f"missing required column{'s' if len(missing) > 1 else ''} (columns found: "
            f"{', '.join(header)})",
            f"add {', '.join(missing)}; required columns: ID, TIME (days since the first "
            "dose), EVID (1 dose, 0 sample), AMT (mg), DV (mg/L), WT (kg), CRP (mg/L); "
            "optional: RATE or DUR, CENS or BLQ+LLOQ, MDV, DVID",
        )
    return header


def _check_units(row: _CsvRow, unit_columns: Mapping[str, str | None], evid: int) -> None:
    for column, kind in unit_columns.items():
        raw = row.cells.get(column, "")
        if raw in _MISSING_CELLS:
            continue
        if kind is None:  # a bare UNIT column describes AMT on doses, DV on samples
            kind = "mass" if evid == 1 else "concentration"
        expected, accepted = _UNIT_KINDS[kind]
        if raw.strip().lower().replace(" ", "") not in accepted:
            raise _error(
                row.patient_id,
                row.row,
                column,
                f"unknown units {raw!r} (expected {expected})",
                f"convert the values to {expected} and write {expected!r} "
                "(1 µg/mL = 1 mg/L; ng/mL ÷ 1000 = mg/L)"
                if kind == "concentration"
                else f"convert the values to {expected} and write {expected!r}",
            )


def _read_csv_row(
    row: _CsvRow,
    patient: _CsvPatient,
    unit_columns: Mapping[str, str | None],
    default_duration_day: float,
    seen_records: dict[tuple[str, float, int, int | None], int],
) -> None:
    time = row.number("TIME", required=True)
    assert time is not None
    evid = row.code("EVID", (0, 1), default=-1, meaning="EVID 1 for doses and 0 for observations")
    if evid == -1:
        raise _error(
            patient.id, row.row, "EVID", "empty cell", "EVID 1 for doses, 0 for observations"
        )
    _check_units(row, unit_columns, evid)
    for column, attribute in (("WT", "weight"), ("CRP", "crp")):
        value = row.number(column)
        if value is None:
            continue
        baseline = getattr(patient, attribute)
        if baseline is None:
            setattr(patient, attribute, (value, row.row))
        elif value != baseline[0] and patient.strict_covariates:
            raise _error(
                patient.id,
                row.row,
                column,
                f"{column} {_fmt(value)} differs from the patient's baseline {_fmt(baseline[0])} "
                f"(row {baseline[1]}); the model takes one baseline value per patient",
                f"write the baseline {column} (at the start of infliximab) on every row of the "
                "patient, or leave the other rows empty",
            )
        elif value != baseline[0]:
            patient.notes.append(
                _message(
                    patient.id,
                    row.row,
                    column,
                    f"{column} {_fmt(value)} differs from the baseline {_fmt(baseline[0])} "
                    f"(row {baseline[1]}); the baseline value is used",
                )
            )

    if evid == 1:
        key = (patient.id, time, 1, None)
        _check_duplicate(row, key, seen_records)
        amount = row.number("AMT", required=True, why=" on a dose row (EVID=1)")
        assert amount is not None
        dv = row.number("DV")
        if dv not in (None, 0.0):
            raise _error(
                patient.id,
                row.row,
                "DV",
                f"a dose row (EVID=1) has a concentration DV={_fmt(dv)}",
                "put the sample on its own row with EVID=0 (and '.' or 0 in DV of the dose row)",
            )
        duration, label = _csv_duration(row, patient.id, amount, default_duration_day)
        patient.labels[(row.row, "duration")] = label
        patient.doses.append(Dose(time, amount, duration, row.row))
        return

    mdv = row.code("MDV", (0, 1), default=0, meaning="MDV 0 (use the row) or 1 (ignore it)")
    if mdv == 1:
        patient.notes.append(
            _message(patient.id, row.row, "MDV", "observation row with MDV=1 ignored")
        )
        return
    dvid = row.code(
        "DVID", (1, 2), default=1, meaning="DVID 1 (concentration) or 2 (colectomy record)"
    )
    _check_duplicate(row, (patient.id, time, 0, dvid), seen_records)
    if dvid == 2:
        event = row.code(
            "DV", (0, 1), default=-1, meaning="DV 1 (colectomy at TIME) or 0 (censored at TIME)"
        )
        if event == -1:
            raise _error(
                patient.id,
                row.row,
                "DV",
                "empty cell on a colectomy record (DVID=2)",
                "DV 1 (colectomy at TIME) or 0 (censored at TIME)",
            )
        patient.events.append(EventRecord(time, event, row.row))
        patient.labels[(row.row, "event")] = "DV"
        patient.notes.append(
            _message(
                patient.id,
                row.row,
                "DVID",
                "colectomy record (DVID=2) kept but ignored by forecasting",
            )
        )
        return

    censoring = row.code(
        "CENS",
        (MEASURED, BELOW_LLOQ, ABOVE_ULOQ),
        default=MEASURED,
        meaning="CENS 0 (measured), 1 (below the LLOQ, DV = LLOQ) or -1 (above the ULOQ, "
        "DV = ULOQ)",
    )
    blq = row.code("BLQ", (0, 1), default=0, meaning="BLQ 0 (measured) or 1 (below the LLOQ)")
    lloq = row.number("LLOQ")
    dv = row.number("DV")
    if blq == 1:
        if row.has("CENS") and censoring != BELOW_LLOQ:
            raise _error(
                patient.id,
                row.row,
                "BLQ",
                f"BLQ=1 contradicts CENS={censoring}",
                "keep one censoring column, or make them agree",
            )
        if lloq is None or lloq <= 0:
            raise _error(
                patient.id,
                row.row,
                "LLOQ",
                "censoring flag without a limit: BLQ=1 needs a positive LLOQ (mg/L), got "
                f"{'an empty cell' if lloq is None else _fmt(lloq)}",
                "give the assay's lower limit of quantification in the LLOQ column",
            )
        patient.observations.append(Observation(time, lloq, BELOW_LLOQ, row.row))
        patient.labels[(row.row, "value")] = "LLOQ"
        patient.labels[(row.row, "censoring")] = "BLQ"
        return
    if censoring != MEASURED:
        if dv is None and censoring == BELOW_LLOQ and lloq is not None:
            dv = lloq
            patient.labels[(row.row, "value")] = "LLOQ"
        if dv is None:
            limit = "LLOQ" if censoring == BELOW_LLOQ else "ULOQ"
            raise _error(
                patient.id,
                row.row,
                "DV",
                f"censoring flag without a limit: CENS={censoring} needs the {limit} in DV",
                f"write the assay's {limit} (mg/L) in DV",
            )
    elif dv is None:
        raise _error(
            patient.id,
            row.row,
            "DV",
            "empty cell on an observation row (EVID=0)",
            "fill DV (mg/L); set MDV=1 to skip the row; code an undetectable level as CENS=1 "
            "with DV = LLOQ",
        )
    patient.observations.append(Observation(time, dv, censoring, row.row))


def _check_duplicate(
    row: _CsvRow,
    key: tuple[str, float, int, int | None],
    seen_records: dict[tuple[str, float, int, int | None], int],
) -> None:
    if key in seen_records:
        raise _error(
            row.patient_id,
            row.row,
            "TIME",
            f"duplicate record: same ID, TIME, EVID and DVID as row {seen_records[key]}",
            "remove one of the two rows",
        )
    seen_records[key] = row.row


def _csv_duration(
    row: _CsvRow, pid: str, amount: float, default_duration_day: float
) -> tuple[float, str]:
    """Infusion duration (days) of a dose row and the name of the field it came from."""
    rate = row.number("RATE")
    duration = row.number("DUR")
    for column, value in (("RATE", rate), ("DUR", duration)):
        if value is not None and value < 0:
            raise _error(
                pid,
                row.row,
                column,
                f"{column} must be ≥ 0, got {_fmt(value)} (modelled rates/durations, "
                "RATE=-1/-2, are not supported)",
                "give RATE in mg/day or DUR in days; leave both empty for the default "
                "infusion duration",
            )
    rate = rate or None
    duration = duration or None
    if rate is not None and amount > 0:
        from_rate = amount / rate
        if duration is not None and not math.isclose(from_rate, duration, rel_tol=0.01):
            raise _error(
                pid,
                row.row,
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


def _finish_csv_patient(collected: _CsvPatient, limits: PlausibilityLimits) -> Patient:
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
    )
    labels = _FieldLabels(
        names=labels.names,
        per_record=labels.per_record,
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
        notes=tuple(collected.notes),
    )
    return _validate_patient(draft, limits, labels)


# --------------------------------------------------------------------------------------
# TOML / YAML patient files and Python records
# --------------------------------------------------------------------------------------

_PATIENT_KEYS = ("id", "weight_kg", "crp_mg_l", "doses", "samples", "colectomy")
_DOSE_KEYS = ("day", "mg", "mg_per_kg", "duration_h", "duration_day")
_SAMPLE_KEYS = ("day", "mg_l", "below_lloq", "above_uloq")
_SAMPLE_VALUE_KEYS = {"mg_l": MEASURED, "below_lloq": BELOW_LLOQ, "above_uloq": ABOVE_ULOQ}
_COLECTOMY_KEYS = ("day", "event")


def read_patient_file(
    path: str | Path,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
) -> PatientSet:
    """Read and validate a TOML (``.toml``) or YAML (``.yaml``/``.yml``) patient file.

    The file holds a list ``patient`` of tables::

        [[patient]]
        id = "P01"
        weight_kg = 63
        crp_mg_l = 45
        doses = [{day = 0, mg = 600}, {day = 14, mg_per_kg = 10, duration_h = 2}]
        samples = [{day = 7, mg_l = 12.3}, {day = 10, below_lloq = 0.4}]
        colectomy = {day = 40, event = 1}     # optional, ignored by forecasting

    Dose keys: ``day`` and exactly one of ``mg``/``mg_per_kg`` (× ``weight_kg``); optional
    ``duration_h`` or ``duration_day``. Sample keys: ``day`` and exactly one of ``mg_l``
    (measured), ``below_lloq`` (the LLOQ of a sample below it) or ``above_uloq`` (the ULOQ).
    Unknown keys are errors. Entries are named by path in messages: ``doses[1]`` is the
    second dose (indices count from 0).

    Parameters
    ----------
    path
        The patient file.
    default_infusion_duration_day
        Duration of infusions without ``duration_h``/``duration_day`` (days).
    limits
        Plausible ranges; the defaults of :class:`PlausibilityLimits` when ``None``.

    Returns
    -------
    PatientSet

    Raises
    ------
    InputError
        With the file name, the patient, the entry and the field, and the fix.
    """
    path = Path(path)
    kind = "toml" if path.suffix.lower() == ".toml" else "yaml"
    return _parse_text(_read_text(path), kind, str(path), default_infusion_duration_day, limits)


def _patient_records(text: str, kind: str) -> object:
    """The ``patient`` list of a TOML or YAML patient file (parsed as data only)."""
    if kind == "toml":
        try:
            document: object = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"not valid TOML: {exc}") from None
    else:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML: {exc}") from None
    if document is None:
        raise InputError("the file is empty (fix: give a list 'patient' of patients)")
    if not isinstance(document, Mapping):
        raise InputError(
            "the file must hold a table/mapping with a list 'patient' (fix: see the README example)"
        )
    unknown = [key for key in document if key != "patient"]
    if unknown:
        raise InputError(
            f"unknown top-level key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} (accepted: 'patient'; fix: write "
            "[[patient]] tables in TOML, a 'patient:' list in YAML)"
        )
    if "patient" not in document:
        raise InputError(
            "no 'patient' list (fix: write [[patient]] tables in TOML, a 'patient:' list in YAML)"
        )
    records = document["patient"]
    return [records] if isinstance(records, Mapping) else records


def patients_from_records(
    records: Iterable[Mapping[str, object]],
    *,
    source: str = "records",
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
    collect_errors: bool = False,
) -> PatientSet:
    """Validated patients from plain mappings with the structure of a patient file.

    Parameters
    ----------
    records
        One mapping per patient, with the keys of a patient file (see
        :func:`read_patient_file`), e.g. ``{"id": "P01", "weight_kg": 63, "crp_mg_l": 45,
        "doses": [{"day": 0, "mg": 600}], "samples": [{"day": 7, "mg_l": 12.3}]}``.
    source
        Description used in :attr:`PatientSet.source`.
    default_infusion_duration_day
        Duration of infusions without ``duration_h``/``duration_day`` (days).
    limits
        Plausible ranges; the defaults of :class:`PlausibilityLimits` when ``None``.
    collect_errors
        Keep a bad patient's error in :attr:`PatientSet.errors` and read the others.

    Returns
    -------
    PatientSet

    Raises
    ------
    InputError
        Naming the patient, the entry (``doses[1]``) and the key, and the fix.
    """
    limits = limits or PlausibilityLimits()
    _check_default_duration(default_infusion_duration_day, limits)
    if isinstance(records, Mapping | str | bytes) or not isinstance(records, Iterable):
        raise InputError("'patient' must be a list of patients (fix: see the README example)")
    patients: list[Patient] = []
    first_index: dict[str, int] = {}
    notes: list[str] = []
    errors: list[InputError] = []
    for index, record in enumerate(records):
        try:
            patient = _patient_from_record(record, index, default_infusion_duration_day, limits)
        except InputError as exc:
            if not collect_errors:
                raise
            errors.append(_naming_patient(exc, f"patient[{index}]"))  # if it has no id
            continue
        if patient.id in first_index:
            raise _error(
                patient.id,
                f"patient[{index}]",
                "id",
                f"duplicate patient ID (also patient[{first_index[patient.id]}])",
                "give every patient a different id",
            )
        first_index[patient.id] = index
        patients.append(patient)
        notes.extend(patient.notes)
    if not patients and not errors:
        raise InputError("no patients (fix: give at least one patient)")
    return PatientSet(tuple(patients), tuple(notes), source, tuple(errors))


def _check_keys(
    entry: object, accepted: Sequence[str], pid: str | None, location: str, what: str
) -> Mapping[str, object]:
    if not isinstance(entry, Mapping):
        raise _error(
            pid,
            location,
            None,
            f"{what} must be a table/mapping, got {entry!r}",
            f"write it as {{{', '.join(f'{key} = ...' for key in accepted[:2])}}}",
        )
    for key in entry:
        if key not in accepted:
            raise _error(
                pid,
                location,
                str(key),
                f"unknown key {key!r} in {what}",
                f"accepted keys: {', '.join(accepted)}",
            )
    return entry


def _required(
    entry: Mapping[str, object], key: str, pid: str | None, location: str, what: str
) -> object:
    if key not in entry or entry[key] is None:
        raise _error(pid, location, key, f"missing in {what}", f"add {key} = ...")
    return entry[key]


def _one_of(
    entry: Mapping[str, object],
    keys: Sequence[str],
    pid: str,
    location: str,
    what: str,
    *,
    required: bool = True,
) -> str | None:
    present = [key for key in keys if key in entry and entry[key] is not None]
    if len(present) > 1:
        raise _error(
            pid,
            location,
            present[1],
            f"give only one of {', '.join(keys)} in {what}",
            f"keep one of {', '.join(present)}",
        )
    if not present:
        if required:
            raise _error(
                pid,
                location,
                "/".join(keys),
                f"missing in {what}",
                f"add exactly one of {', '.join(keys)}",
            )
        return None
    return present[0]


def _entries(value: object, pid: str, name: str) -> list[object]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise _error(pid, name, None, f"{name} must be a list of tables, got {value!r}")
    return list(value)


def _patient_from_record(
    record: object, index: int, default_duration_day: float, limits: PlausibilityLimits
) -> Patient:
    location = f"patient[{index}]"
    known_id = record.get("id") if isinstance(record, Mapping) else None
    known_id = str(known_id).strip() if isinstance(known_id, str | int) else None
    entry = _check_keys(record, _PATIENT_KEYS, known_id, location, "a patient")
    raw_id = _required(entry, "id", None, location, "a patient")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise _error(
            None,
            location,
            "id",
            f"patient ID must be text or a whole number, got {raw_id!r}",
            'write it in quotes, e.g. id = "P01"',
        )
    pid = str(raw_id).strip()
    if not pid:
        raise _error(None, location, "id", "empty patient ID", 'e.g. id = "P01"')
    for key in ("weight_kg", "crp_mg_l"):
        _required(entry, key, pid, location, "the patient")
    weight = _as_float(entry["weight_kg"], pid, location, "weight_kg")
    # range-check the weight before it scales mg_per_kg doses
    _check_range(
        weight,
        limits.weight_kg_min,
        limits.weight_kg_max,
        "kg",
        "body weight",
        pid,
        location,
        "weight_kg",
        "give the body weight in kg",
    )

    per_record: dict[tuple[Location, str], str] = {}
    doses: list[Dose] = []
    for dose_index, raw_dose in enumerate(_entries(entry.get("doses"), pid, "doses")):
        where = f"doses[{dose_index}]"
        dose = _check_keys(raw_dose, _DOSE_KEYS, pid, where, "a dose")
        day = _required(dose, "day", pid, where, "a dose")
        amount_key = _one_of(dose, ("mg", "mg_per_kg"), pid, where, "a dose")
        assert amount_key is not None
        amount = _as_float(dose[amount_key], pid, where, amount_key)
        if amount_key == "mg_per_kg":
            if amount <= 0:
                raise _error(pid, where, amount_key, f"dose must be > 0 mg/kg, got {_fmt(amount)}")
            amount *= weight
        duration_key = _one_of(
            dose, ("duration_h", "duration_day"), pid, where, "a dose", required=False
        )
        if duration_key is None:
            duration = default_duration_day
            per_record[(where, "duration")] = "default infusion duration"
        else:
            duration = _as_float(dose[duration_key], pid, where, duration_key)
            if duration_key == "duration_h":
                duration /= 24.0
            per_record[(where, "duration")] = duration_key
        per_record[(where, "amount")] = amount_key
        doses.append(Dose(_as_float(day, pid, where, "day"), amount, duration, where))

    observations: list[Observation] = []
    for sample_index, raw_sample in enumerate(_entries(entry.get("samples"), pid, "samples")):
        where = f"samples[{sample_index}]"
        sample = _check_keys(raw_sample, _SAMPLE_KEYS, pid, where, "a sample")
        day = _required(sample, "day", pid, where, "a sample")
        value_key = _one_of(sample, tuple(_SAMPLE_VALUE_KEYS), pid, where, "a sample")
        assert value_key is not None
        per_record[(where, "value")] = value_key
        observations.append(
            Observation(
                _as_float(day, pid, where, "day"),
                _as_float(sample[value_key], pid, where, value_key),
                _SAMPLE_VALUE_KEYS[value_key],
                where,
            )
        )

    events: list[EventRecord] = []
    raw_events = entry.get("colectomy")
    single = isinstance(raw_events, Mapping)
    for event_index, raw_event in enumerate(_entries(raw_events, pid, "colectomy")):
        where = "colectomy" if single else f"colectomy[{event_index}]"
        event_entry = _check_keys(raw_event, _COLECTOMY_KEYS, pid, where, "a colectomy record")
        day = _required(event_entry, "day", pid, where, "a colectomy record")
        flag = _required(event_entry, "event", pid, where, "a colectomy record")
        flag_value = _as_float(flag, pid, where, "event")
        if flag_value not in (0.0, 1.0):
            raise _error(
                pid,
                where,
                "event",
                f"event must be 1 (colectomy) or 0 (censored), got {flag!r}",
            )
        events.append(EventRecord(_as_float(day, pid, where, "day"), int(flag_value), where))
    notes = [
        _message(pid, e.row, None, "colectomy record kept but ignored by forecasting")
        for e in events
    ]

    labels = _FieldLabels(
        names={
            "id": "id",
            "weight": "weight_kg",
            "crp": "crp_mg_l",
            "doses": "doses",
            "time": "day",
            "event": "event",
        },
        per_record=per_record,
        baseline_location=location,
    )
    draft = Patient(
        id=pid,
        weight_kg=weight,
        crp_mg_l=entry["crp_mg_l"],  # type: ignore[arg-type]  # checked by the validation
        doses=tuple(doses),
        observations=tuple(observations),
        events=tuple(events),
        notes=tuple(notes),
    )
    return _validate_patient(draft, limits, labels)


# --------------------------------------------------------------------------------------
# Cohorts for population fits
# --------------------------------------------------------------------------------------


def read_cohort(
    path: str | Path,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
) -> PatientSet:
    """Read a cohort for a population fit: :func:`read_patients` plus the cohort rules.

    On top of the forecasting checks, covariates (WT, CRP) must not vary within a patient
    (an error, not a note) and :func:`validate_cohort` must pass: exactly one colectomy
    record per patient, consistent with the doses and samples.

    Raises
    ------
    InputError
        Naming the file, the patient, the row and the field, and the fix.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        limits = limits or PlausibilityLimits()
        patient_set = read_nonmem_csv(
            path,
            default_infusion_duration_day=default_infusion_duration_day,
            limits=limits,
            strict_covariates=True,
        )
    else:
        patient_set = read_patients(
            path, default_infusion_duration_day=default_infusion_duration_day, limits=limits
        )
    try:
        return validate_cohort(patient_set)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def validate_cohort(patient_set: PatientSet) -> PatientSet:
    """Check that validated patients form a cohort a population model can be fitted to.

    Rules: every patient has exactly one colectomy record (DVID=2: DV=1 colectomy at TIME,
    DV=0 colectomy-free until TIME); no infusion and no sample after it (infliximab stops at
    colectomy, and a sample or dose after the end of follow-up contradicts it). Patients
    without concentrations are allowed (they inform the model through the prior only) and
    listed in the notes.

    Returns
    -------
    PatientSet
        The same patients, notes about colectomy records (ignored by forecasting) replaced
        by one summary note.

    Raises
    ------
    InputError
        Naming the patient, the row and the field, and the fix.
    """
    if not patient_set.patients:
        raise InputError("the cohort has no patients (fix: give at least one patient)")
    no_samples = []
    for patient in patient_set.patients:
        pid = patient.id
        if not patient.events:
            raise _error(
                pid,
                patient.doses[0].row,
                "DVID",
                "no colectomy record (DVID=2): a population fit needs every patient's outcome",
                "add one row EVID=0, DVID=2 with DV=1 at the day of colectomy, or DV=0 at the "
                "last day the patient was known to be colectomy-free (90 for complete "
                "follow-up); or remove the patient",
            )
        (event,) = patient.events  # _validate_patient rejects two records
        what = "colectomy" if event.event == 1 else "end of follow-up"
        for dose in patient.doses:
            if dose.time_day > event.time_day:
                raise _error(
                    pid,
                    dose.row,
                    "TIME",
                    f"infusion at day {_fmt(dose.time_day)} after the {what} at day "
                    f"{_fmt(event.time_day)} ({_where(event.row)})",
                    "infliximab stops at colectomy: remove planned infusions that were not "
                    "given, or correct the colectomy record's TIME"
                    if event.event == 1
                    else "the colectomy-free record marks the end of follow-up: move it to the "
                    "last day the patient was seen, or remove infusions not given",
                )
        for observation in patient.observations:
            if observation.time_day > event.time_day:
                raise _error(
                    pid,
                    observation.row,
                    "TIME",
                    f"sample at day {_fmt(observation.time_day)} after the {what} at day "
                    f"{_fmt(event.time_day)} ({_where(event.row)})",
                    "remove samples taken after the colectomy (the model describes the "
                    "disease before it), or correct the colectomy record's TIME"
                    if event.event == 1
                    else "move the colectomy-free record (end of follow-up) to the last day "
                    "the patient was seen",
                )
        if not patient.observations:
            no_samples.append(pid)
    notes = [n for n in patient_set.notes if "ignored by forecasting" not in n]
    events = sum(p.events[0].event for p in patient_set.patients)
    notes.append(
        f"cohort: {len(patient_set.patients)} patients, {events} colectomies, "
        f"{sum(len(p.observations) for p in patient_set.patients)} concentrations"
    )
    if no_samples:
        notes.append(
            f"{len(no_samples)} patient(s) without concentrations (prior-only PK): "
            f"{', '.join(no_samples[:10])}{' ...' if len(no_samples) > 10 else ''}"
        )
    return PatientSet(patient_set.patients, tuple(notes), patient_set.source)


def write_nonmem_csv(patients: Iterable[Patient], path: str | Path) -> Path:
    """Write patients as a NONMEM-style CSV that :func:`read_patients` reads back unchanged.

    Columns ``ID,TIME,EVID,AMT,DUR,DV,CENS,MDV,DVID,WT,CRP``: dose rows (EVID=1, MDV=1),
    concentration rows (DVID=1, CENS) and colectomy rows (DVID=2), sorted by time within a
    patient (doses before samples at the same time).
    """
    path = Path(path)
    header = ["ID", "TIME", "EVID", "AMT", "DUR", "DV", "CENS", "MDV", "DVID", "WT", "CRP"]
    lines = [",".join(header)]
    for patient in patients:
        rows: list[tuple[float, int, list[str]]] = []
        covariates = [_exact(patient.weight_kg), _exact(patient.crp_mg_l)]
        for dose in patient.doses:
            rows.append(
                (
                    dose.time_day,
                    0,
                    [
                        _exact(dose.time_day),
                        "1",
                        _exact(dose.amount_mg),
                        _exact(dose.duration_day),
                        ".",
                        ".",
                        "1",
                        ".",
                    ],
                )
            )
        for obs in patient.observations:
            rows.append(
                (
                    obs.time_day,
                    1,
                    [
                        _exact(obs.time_day),
                        "0",
                        ".",
                        ".",
                        _exact(obs.value_mg_l),
                        f"{obs.censoring}",
                        "0",
                        "1",
                    ],
                )
            )
        for event in patient.events:
            rows.append(
                (
                    event.time_day,
                    2,
                    [_exact(event.time_day), "0", ".", ".", f"{event.event}", "0", "0", "2"],
                )
            )
        rows.sort(key=lambda r: (r[0], r[1]))
        lines.extend(",".join([patient.id, *cells, *covariates]) for _, _, cells in rows)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _exact(value: float) -> str:
    """Shortest text that reads back as the same float (``300``, ``0.08333333333333333``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
