"""TOML/YAML patient files and Python records (lists of mappings) to validated patients.

>>> patient_set = patients_from_records(
...     [{"id": "P1", "weight_kg": 63, "crp_mg_l": 45, "doses": [{"day": 0, "mg": 600}]}]
... )
>>> patient_set.patients[0].dose_amount_mg
array([600.])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from asuc_bayes.data.errors import (
    InputError,
    Location,
    _error,
    _fmt,
    _message,
    _naming_patient,
    _short,
)
from asuc_bayes.data.safe_load import load_document
from asuc_bayes.data.types import (
    ABOVE_ULOQ,
    BELOW_LLOQ,
    DEFAULT_INFUSION_DURATION_DAY,
    MEASURED,
    Dose,
    EventRecord,
    Observation,
    Patient,
    PatientSet,
    PlausibilityLimits,
)
from asuc_bayes.data.validation import (
    _as_float,
    _check_range,
    _FieldLabels,
    _validate_patient,
    check_default_duration,
)

__all__ = ["patient_records", "patients_from_records"]

_PATIENT_KEYS = ("id", "weight_kg", "crp_mg_l", "doses", "samples", "colectomy")
_DOSE_KEYS = ("day", "mg", "mg_per_kg", "duration_h", "duration_day")
_SAMPLE_KEYS = ("day", "mg_l", "below_lloq", "above_uloq")
_SAMPLE_VALUE_KEYS = {"mg_l": MEASURED, "below_lloq": BELOW_LLOQ, "above_uloq": ABOVE_ULOQ}
_COLECTOMY_KEYS = ("day", "event")


def patient_records(text: str, kind: str) -> object:
    """The ``patient`` list of a TOML or YAML patient file (parsed as bounded data only)."""
    document = load_document(text, kind)
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
            f"{', '.join(_short(k) for k in unknown)} (accepted: 'patient'; fix: write "
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
    check_default_duration(default_infusion_duration_day, limits)
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
            f"{what} must be a table/mapping, got {_short(entry)}",
            f"write it as {{{', '.join(f'{key} = ...' for key in accepted[:2])}}}",
        )
    for key in entry:
        if key not in accepted:
            raise _error(
                pid,
                location,
                str(key),
                f"unknown key {_short(key)} in {what}",
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
        raise _error(pid, name, None, f"{name} must be a list of tables, got {_short(value)}")
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
            f"patient ID must be text or a whole number, got {_short(raw_id)}",
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
                f"event must be 1 (colectomy) or 0 (censored), got {_short(flag)}",
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
