"""The patient form: where an input error is shown, and a patient's values for the form.

Validation itself is :func:`asuc_bayes.data.dataset.patients_from_records` (the same limits as the
files); this module only maps its errors onto the form's rows and fields.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from asuc_bayes.data.dataset import (
    ABOVE_ULOQ,
    BELOW_LLOQ,
    InputError,
    Patient,
    patients_from_records,
)

__all__ = [
    "CheckedForm",
    "check_record",
    "download_name",
    "fmt_pct",
    "plain",
    "rows_of",
    "where_to_show",
]

_KIND_OF_CENSORING = {0: "mg_l", BELOW_LLOQ: "below_lloq", ABOVE_ULOQ: "above_uloq"}


@dataclass(frozen=True)
class CheckedForm:
    """The form, validated: a patient, or the error and where to show it."""

    patient: Patient | None
    message: str | None = None
    messages: dict[str, str] = dataclasses.field(default_factory=dict)
    fields: tuple[str, ...] = ()


_ENTRY = re.compile(r"^(doses|samples)\[(\d+)\]$")
_DOSE_FIELDS = {
    "day": "dose_day",
    "mg": "dose_amount",
    "mg_per_kg": "dose_amount",
    "mg/mg_per_kg": "dose_amount",
    "duration_h": "dose_hours",
    "duration_day": "dose_hours",
}
_SAMPLE_FIELDS = {
    "day": "sample_day",
    "mg_l": "sample_value",
    "below_lloq": "sample_value",
    "above_uloq": "sample_value",
    "mg_l/below_lloq/above_uloq": "sample_value",
}
_PATIENT_FIELDS = {"id": "patient_id", "weight_kg": "weight_kg", "crp_mg_l": "crp_mg_l"}


def where_to_show(
    error: InputError, dose_uids: list[int], sample_uids: list[int]
) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(headline, {id of the error slot without "-error": text}, inputs to mark) of an error."""
    location = error.location if isinstance(error.location, str) else ""
    match = _ENTRY.match(location)
    if match:
        kind, index = match.group(1), int(match.group(2))
        if kind == "doses" and index < len(dose_uids):
            uid, names, what = dose_uids[index], _DOSE_FIELDS, "dose"
        elif kind == "samples" and index < len(sample_uids):
            uid, names, what = sample_uids[index], _SAMPLE_FIELDS, "sample"
        else:
            return str(error), {}, ()
        prefix = names.get(error.field or "")
        label = error.field.replace("_", " ") if error.field else what
        text = f"{label}: {error.detail}"
        fields = (f"{prefix}_{uid}",) if prefix else ()
        return f"{what} {index + 1}, {text}", {f"{what}-row-{uid}": text}, fields
    if error.field in _PATIENT_FIELDS:
        element = _PATIENT_FIELDS[error.field]
        return (
            f"covariates, {error.field.replace('_', ' ')}: {error.detail}",
            {element: error.detail},
            (element,),
        )
    if error.field == "doses":
        return f"dosing: {error.detail}", {"dose-rows": error.detail}, ()
    return error.detail, {}, ()


def plain(value: float, digits: int = 6) -> float | int:
    """``600.0`` -> ``600`` for display in a numeric input; other values rounded."""
    rounded = round(float(value), digits)
    return int(rounded) if rounded.is_integer() else rounded


def rows_of(patient: Patient) -> tuple[list[dict], list[dict]]:
    """The form's dose rows (in mg) and sample rows of a patient."""
    doses = [
        {
            "day": plain(d.time_day),
            "amount": plain(d.amount_mg, 3),
            "unit": "mg",
            "hours": plain(d.duration_day * 24.0, 4),
        }
        for d in patient.doses
    ]
    samples = [
        {
            "day": plain(o.time_day),
            "value": plain(o.value_mg_l),
            "kind": _KIND_OF_CENSORING[o.censoring],
        }
        for o in patient.observations
    ]
    return doses, samples


def download_name(patient_id: str, suffix: str) -> str:
    """A download's file name: characters other than letters, digits, ``._-`` become ``_``.

    >>> download_name("P01/2", ".json")
    'asuc-bayes-P01_2.json'
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", patient_id).strip(".") or "patient"
    return f"asuc-bayes-{safe}{suffix}"


def fmt_pct(value: float) -> str:
    """A probability as a percentage with one decimal.

    >>> fmt_pct(0.1234)
    '12.3 %'
    """
    return f"{100 * value:.1f} %"


def check_record(
    record: dict, dose_uids: list[int], sample_uids: list[int], default_duration_day: float
) -> CheckedForm:
    """Validate the form's record (the JSON/TOML patient form) into a patient or an error.

    >>> checked = check_record({"id": "A", "weight_kg": 5, "crp_mg_l": 20,
    ...     "doses": [{"day": 0, "mg": 500}], "samples": []}, [1], [], 2 / 24)
    >>> checked.patient is None, checked.fields
    (True, ('weight_kg',))
    """
    try:
        result = patients_from_records(
            [record], source="form", default_infusion_duration_day=default_duration_day
        )
    except InputError as exc:
        headline, messages, fields = where_to_show(exc, dose_uids, sample_uids)
        return CheckedForm(None, headline, messages, fields)
    return CheckedForm(result.patients[0])
