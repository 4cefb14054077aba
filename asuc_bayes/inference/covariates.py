"""A dataset patient's covariates for a library model: baseline values, units from the model.

A NONMEM dataset keeps one covariate record per row
(:class:`asuc_bayes.data.dataset.CovariateRecord`);
:func:`baseline_covariates` gives each covariate's **baseline** value (its first record), as the
ASUC model uses them; covariates that a model file declares ``time_varying`` then take their
per-record values from :func:`asuc_bayes.inference.schedule.covariate_schedule`.
A column's unit is the one the user declared for the dataset
(``--units ALB=g/L``, :attr:`asuc_bayes.data.dataset.PatientSet.units`), otherwise the unit the
model
file declares for that covariate: a dataset written for a g/dL model is read in g/dL.

Examples
--------
>>> from asuc_bayes.data.dataset import CovariateRecord, Dose, Patient
>>> from asuc_bayes.spec import load_declaration
>>> record = CovariateRecord(0.0, (("ADA", 0.0), ("ALB", 38.0), ("WT", 70.0)))
>>> p = Patient("x", 70.0, 30.0, (Dose(0.0, 350.0, 1 / 12),), covariate_records=(record,))
>>> decl = load_declaration("wojciechowski2017")
>>> baseline_covariates(p, decl, units={"ALB": "g/L"})["ALB"]
(38.0, 'g/L')
>>> baseline_covariates(p, decl)["ALB"]  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
asuc_bayes.data.errors.InputError: patient 'x', field ALB: 38 g/dL (the model file's unit) ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from asuc_bayes.data.dataset import InputError, Patient
from asuc_bayes.inference.problem import patient_covariates
from asuc_bayes.spec import ModelDeclaration
from asuc_bayes.spec.declaration import Covariate
from asuc_bayes.spec.units import convert, convertible

__all__ = [
    "PLAUSIBLE",
    "baseline_covariates",
    "check_plausible",
    "dataset_column",
    "dataset_covariates",
    "implausible",
    "missing_covariates",
]

#: Covariates every patient has (the ASUC model's baseline weight and CRP).
PATIENT_COLUMNS = ("WT", "CRP")

#: Plausible range of a covariate column, in the unit given (checked once, at the boundary):
#: a value outside is most often a unit mistake (albumin 3.5 read as g/L).
PLAUSIBLE: dict[str, tuple[float, float, str]] = {
    "ALB": (10.0, 60.0, "g/L"),
    "ADA": (0.0, 1.0, "1"),
}


def _first_values(patient: Patient) -> dict[str, tuple[float, Any]]:
    """{column: (value, row)} of each column's earliest record (the first of a time's records)."""
    first: dict[str, tuple[float, float, Any]] = {}
    for record in patient.covariate_records:
        for column, value in record.values:
            key = column.upper()
            if key not in first or record.time_day < first[key][0]:
                first[key] = (record.time_day, float(value), record.row)
    return {column: (value, row) for column, (_, value, row) in first.items()}


def dataset_column(covariate: Covariate, available: Iterable[str]) -> str | None:
    """The dataset column read for ``covariate``: the first of :attr:`Covariate.columns` (its
    own name, then the model file's ``dataset_columns``) that ``available`` holds."""
    available = set(available)
    return next((column for column in covariate.columns if column in available), None)


def _column_unit(
    column: str, declarations: Sequence[ModelDeclaration], units: Mapping[str, str]
) -> str:
    """The unit a dataset column is read in: ``units`` (``--units``), else the one unit every
    model reading the column declares; models that disagree need ``--units``."""
    if column in units:
        return units[column]
    declared = {
        covariate.unit: declaration.name
        for declaration in declarations
        for covariate in declaration.covariates
        if column in covariate.columns
    }
    if len(declared) > 1:
        which = "; ".join(f"{unit} ({name})" for unit, name in declared.items())
        raise InputError(
            f"field {column}: the models declare different units for it ({which}); give the "
            f"dataset's unit (fix: --units {column}=UNIT)"
        )
    return next(iter(declared))


def dataset_covariates(
    patient: Patient,
    declarations: Sequence[ModelDeclaration],
    units: Mapping[str, str] | None = None,
) -> dict[str, tuple[float, str]]:
    """``{covariate name: (value, unit)}`` of every covariate other than WT and CRP that one of
    ``declarations`` declares and the patient's records give: the first recorded value of its
    dataset column (:func:`dataset_column`), in the column's unit (:func:`_column_unit`),
    checked for plausibility (the error names the row)."""
    units = {k.upper(): v for k, v in (units or {}).items()}
    first = _first_values(patient)
    out: dict[str, tuple[float, str]] = {}
    for declaration in declarations:
        for covariate in declaration.covariates:
            column = dataset_column(covariate, first)
            if column is None or covariate.name.upper() in PATIENT_COLUMNS:
                continue
            value, row = first[column]
            unit = _column_unit(column, declarations, units)
            check_plausible(patient.id, column, value, unit, column in units, row)
            out[covariate.name] = (value, unit)
    return out


def baseline_covariates(
    patient: Patient,
    declaration: ModelDeclaration,
    units: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``{name: (value, unit)}``: WT and CRP of the patient, then the first recorded value of
    every other covariate the model declares (unit: ``units``, else the model's)."""
    return patient_covariates(patient, dataset_covariates(patient, [declaration], units))


def missing_covariates(declaration: ModelDeclaration, patient: Patient) -> tuple[str, ...]:
    """The covariates ``declaration``'s effects use that the patient's records do not give
    (WT and CRP it always has), in the order of their first effect."""
    first = _first_values(patient)
    by_name = {c.name: c for c in declaration.covariates}
    needed = dict.fromkeys(effect.covariate for effect in declaration.effects)
    return tuple(
        name
        for name in needed
        if name.upper() not in PATIENT_COLUMNS
        and (name not in by_name or dataset_column(by_name[name], first) is None)
    )


def implausible(column: str, value: float, unit: str) -> str | None:
    """Why ``value`` (in ``unit``) of covariate ``column`` is implausible (outside
    :data:`PLAUSIBLE`, e.g. "4 g/L, outside the plausible 10-60 g/L"), or None.

    >>> implausible("ALB", 40.0, "g/dL"), implausible("ALB", 4.0, "g/dL")
    ('400 g/L, outside the plausible 10-60 g/L', None)
    """
    if column not in PLAUSIBLE:
        return None
    low, high, canonical = PLAUSIBLE[column]
    if not convertible(unit, canonical):
        return None
    canonical_value = float(convert(value, unit, canonical))
    if low <= canonical_value <= high:
        return None
    return f"{canonical_value:g} {canonical}, outside the plausible {low:g}-{high:g} {canonical}"


def check_plausible(
    patient_id: str,
    column: str,
    value: float,
    unit: str,
    declared: bool,
    row: int | str | None = None,
) -> None:
    """Raise :class:`InputError` naming the patient, the row (when given), the column and the
    unit when ``value`` (in ``unit``) is outside :data:`PLAUSIBLE` (columns without a range
    pass)."""
    problem = implausible(column, value, unit)
    if problem is None:
        return
    source = "as declared with --units" if declared else "the model file's unit"
    where = f"row {row}, " if isinstance(row, int) else (f"{row}, " if row else "")
    detail = (
        f"{value:g} {unit} ({source}) is {problem} (fix: check the value, or declare the "
        f"dataset's unit: --units {column}=UNIT)"
    )
    raise InputError(
        f"patient '{patient_id}', {where}field {column}: {detail}",
        patient_id=patient_id,
        location=row,
        field=column,
        detail=detail,
    )
