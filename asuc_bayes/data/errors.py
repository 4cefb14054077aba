"""Input errors whose message names the patient, the row (or entry) and the field, and the fix.

>>> str(_error("P03", 7, "AMT", "dose must be > 0 mg, got 0", "give the amount in mg"))
"patient 'P03', row 7, field AMT: dose must be > 0 mg, got 0 (fix: give the amount in mg)"
"""

from __future__ import annotations

import math
import reprlib

from asuc_bayes.errors import AsucBayesError

__all__ = ["InputError", "Location"]

Location = int | str | None

_SHORT_REPR = reprlib.Repr(maxstring=60, maxother=60, maxlist=4, maxdict=4, maxlevel=2)


class InputError(AsucBayesError, ValueError):
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


def _short(value: object) -> str:
    """``repr`` cut to a readable length (deeply nested or huge values in messages).

    >>> _short([[[[1]]]])
    '[[[...]]]'
    """
    return _SHORT_REPR.repr(value)


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
