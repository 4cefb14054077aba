"""Validation shared by every reader and the Python API: plausibility limits, checked once.

:func:`validate_patient` either returns a patient the model can use as it is (records sorted,
numbers floats) or raises :class:`InputError` naming the patient, the record and the field.
Likely mistakes that are not errors (times that look like hours, a dose that looks like
mg/kg, a sample during an infusion, records beyond the validated horizon) become notes.

>>> from asuc_bayes.data.types import Dose, Observation, Patient
>>> patient = validate_patient(
...     Patient("P1", 70, 30, (Dose(0, 10, 1 / 12),), (Observation(1 / 24, 5.0),))
... )
>>> [note.split(": ")[1][:28] for note in patient.notes]
['sample at day 0.0416667 is t', 'AMT 10 mg looks like a dose ']
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from asuc_bayes.data.errors import InputError, Location, _error, _fmt, _message, _short, _where
from asuc_bayes.data.types import (
    ABOVE_ULOQ,
    BELOW_LLOQ,
    MEASURED,
    Dose,
    EventRecord,
    Observation,
    Patient,
    PlausibilityLimits,
)

__all__ = ["check_default_duration", "parse_number", "plausibility_notes", "validate_patient"]

#: A plain decimal number: no ``_`` separators, no ``nan``/``inf``, no Unicode digits.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)


def parse_number(text: str) -> float | None:
    """``float(text)`` for a plain decimal number, else ``None``.

    >>> parse_number("1e3"), parse_number("1_000"), parse_number("nan"), parse_number("_")
    (1000.0, None, None, None)
    """
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


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


def _as_float(value: object, patient_id: str | None, location: Location, label: str) -> float:
    """``value`` as a finite float: numbers, or text that is a plain decimal number."""
    if isinstance(value, bool):
        raise _error(patient_id, location, label, f"{value!r} is not a number")
    if isinstance(value, str):
        number = parse_number(value)
        if number is None:
            raise _error(
                patient_id,
                location,
                label,
                f"{_short(value)} is not a number",
                "write a plain number (decimal point, no units, separators or spaces)",
            )
        return number
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise _error(
            patient_id, location, label, f"{_short(value)} is not a number", "write a plain number"
        ) from None
    if not math.isfinite(number):
        raise _error(patient_id, location, label, f"{_short(value)} is not a finite number")
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
    checked = replace(
        patient,
        id=pid.strip(),
        weight_kg=weight,
        crp_mg_l=crp,
        doses=tuple(doses),
        observations=tuple(observations),
        events=tuple(events),
        notes=(),
    )
    notes.extend(plausibility_notes(checked, limits, labels))
    return replace(checked, notes=tuple(notes))


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
    _check_steady_state(dose, pid, time, duration, labels)
    return replace(dose, time_day=time, amount_mg=amount, duration_day=duration)


def _check_steady_state(
    dose: Dose, pid: str, time: float, duration: float, labels: _FieldLabels
) -> None:
    row = dose.row
    if isinstance(dose.steady_state, bool) or dose.steady_state not in (0, 1, 2):
        raise _error(pid, row, "SS", f"SS must be 0, 1 or 2, got {dose.steady_state!r}")
    interval = _as_float(dose.steady_state_interval_day, pid, row, "II")
    if dose.steady_state and not interval >= duration > 0:
        raise _error(
            pid,
            row,
            "II",
            f"SS={dose.steady_state} needs a dosing interval II ≥ the infusion duration "
            f"({_fmt(duration)} day), got {_fmt(interval)}",
            "give II, the interval of the repeated doses, in days",
        )
    if dose.end_time_day is not None:
        end = _as_float(dose.end_time_day, pid, row, labels.of("time", row))
        if end < time:
            raise _error(pid, row, "TIME", f"dose ends (reset) at day {_fmt(end)} before it starts")


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
# Notes on likely mistakes (accepted, reported)
# --------------------------------------------------------------------------------------

#: A median dosing interval in this range (days) looks like 2 weeks written in hours.
_HOURS_LIKE_INTERVAL_DAY = (300.0, 372.0)


def plausibility_notes(
    patient: Patient, limits: PlausibilityLimits, labels: _FieldLabels | None = None
) -> list[str]:
    """Notes naming the record and the likely cause of what is plausible but suspicious.

    Times that look like hours (every dose and sample time a multiple of 24 beyond day 60,
    or a median dosing interval near 336), a sample during an infusion, an amount that looks
    like mg/kg, doses or samples beyond the model's validated horizon.
    """
    labels = labels or _FieldLabels()
    pid = patient.id
    notes: list[str] = []
    records: list[tuple[float, Location]] = [(d.time_day, d.row) for d in patient.doses]
    records += [(o.time_day, o.row) for o in patient.observations]
    records.sort(key=lambda r: r[0])
    hours = _hours_like(patient, records)
    if hours is not None:
        time, row = hours
        notes.append(
            _message(
                pid,
                row,
                labels.of("time", row),
                f"the times look like hours, not days (time {_fmt(time)}; every dose and "
                "sample time a multiple of 24, or doses about 336 apart)",
                "times count days since the first dose; for a file in hours pass "
                "time_unit='hours' (CLI: --time-unit hours)",
            )
        )
    for observation in patient.observations:
        dose = next(
            (
                d
                for d in patient.doses
                if d.time_day < observation.time_day < d.time_day + d.duration_day
            ),
            None,
        )
        if dose is not None:
            notes.append(
                _message(
                    pid,
                    observation.row,
                    labels.of("time", observation.row),
                    f"sample at day {_fmt(observation.time_day)} is taken during the infusion "
                    f"of {_where(dose.row) or 'a dose'} (day {_fmt(dose.time_day)} to "
                    f"{_fmt(dose.time_day + dose.duration_day)}); used as given",
                    "check the sample time, and the infusion duration (RATE/DUR)",
                )
            )
    for dose in patient.doses:
        if dose.amount_mg < limits.mg_per_kg_suspect_mg:
            notes.append(
                _message(
                    pid,
                    dose.row,
                    labels.of("amount", dose.row),
                    f"AMT {_fmt(dose.amount_mg)} mg looks like a dose in mg/kg "
                    f"({_fmt(dose.amount_mg)} mg/kg × {_fmt(patient.weight_kg)} kg = "
                    f"{_fmt(dose.amount_mg * patient.weight_kg)} mg); used as "
                    f"{_fmt(dose.amount_mg)} mg",
                    "give the amount infused in mg",
                )
            )
    late = next(((t, r) for t, r in records if t > limits.validated_horizon_day), None)
    if late is not None:
        notes.append(
            _message(
                pid,
                late[1],
                labels.of("time", late[1]),
                f"record at day {_fmt(late[0])} is beyond the model's validated horizon (day "
                f"{_fmt(limits.validated_horizon_day)}: the model was developed on induction "
                "data); forecasts there are extrapolations",
            )
        )
    return notes


def _hours_like(
    patient: Patient, records: list[tuple[float, Location]]
) -> tuple[float, Location] | None:
    """The first record whose time suggests the file is in hours, or ``None``."""
    later = [(t, r) for t, r in records if t > 0]
    if len(later) >= 2 and all(t % 24 == 0 for t, _ in later) and later[-1][0] > 60:
        return next((t, r) for t, r in later if t > 60)
    dose_days = sorted(d.time_day for d in patient.doses)
    intervals = sorted(b - a for a, b in itertools.pairwise(dose_days))
    if len(intervals) >= 1:
        median = intervals[len(intervals) // 2]
        low, high = _HOURS_LIKE_INTERVAL_DAY
        if low <= median <= high:
            row = next(d.row for d in patient.doses if d.time_day == dose_days[1])
            return dose_days[1], row
    return None


def check_default_duration(duration_day: float, limits: PlausibilityLimits) -> None:
    """An :class:`InputError` unless the default infusion duration is within the limits."""
    low, high = limits.infusion_duration_day_min, limits.infusion_duration_day_max
    if not (math.isfinite(duration_day) and low <= duration_day <= high):
        raise InputError(
            f"default infusion duration must be between {low:g} and {high:g} day, got "
            f"{duration_day!r}"
        )
