"""A dataset patient's covariates for a library model: baseline values, units from the model.

A NONMEM dataset keeps one covariate record per row (:class:`asuc_bayes.dataset.CovariateRecord`);
:func:`baseline_covariates` gives each covariate's **baseline** value (its first record), as the
ASUC model uses them; covariates that a model file declares ``time_varying`` then take their
per-record values from :func:`asuc_bayes.inference.schedule.covariate_schedule`.
A column's unit is the one the user declared for the dataset
(``--units ALB=g/L``, :attr:`asuc_bayes.dataset.PatientSet.units`), otherwise the unit the model
file declares for that covariate: a dataset written for a g/dL model is read in g/dL.

Examples
--------
>>> from asuc_bayes.dataset import CovariateRecord, Dose, Patient
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

from collections.abc import Mapping
from typing import Any

from asuc_bayes.dataset import InputError, Patient
from asuc_bayes.inference.problem import patient_covariates
from asuc_bayes.spec import ModelDeclaration
from asuc_bayes.spec.units import convert, convertible

__all__ = ["PLAUSIBLE", "baseline_covariates", "check_plausible"]

#: Plausible range of a covariate column, in the unit given (checked once, at the boundary):
#: a value outside is most often a unit mistake (albumin 3.5 read as g/L).
PLAUSIBLE: dict[str, tuple[float, float, str]] = {
    "ALB": (10.0, 60.0, "g/L"),
    "ADA": (0.0, 1.0, "1"),
}


def _first_values(patient: Patient) -> dict[str, tuple[float, Any]]:
    """{column: (first value, its row)}."""
    first: dict[str, tuple[float, Any]] = {}
    for record in patient.covariate_records:
        for column, value in record.values:
            first.setdefault(column.upper(), (float(value), record.row))
    return first


def baseline_covariates(
    patient: Patient,
    declaration: ModelDeclaration,
    units: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``{name: (value, unit)}``: WT and CRP of the patient, then the first recorded value of
    every other covariate the model declares (unit: ``units``, else the model's)."""
    units = {k.upper(): v for k, v in (units or {}).items()}
    declared = {c.name.upper(): c for c in declaration.covariates}
    extra: dict[str, Any] = {}
    for column, (value, row) in _first_values(patient).items():
        if column in ("WT", "CRP") or column not in declared:
            continue
        unit = units.get(column, declared[column].unit)
        check_plausible(patient.id, column, value, unit, column in units, row)
        extra[declared[column].name] = (value, unit)
    return patient_covariates(patient, extra)


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
    if column not in PLAUSIBLE:
        return
    low, high, canonical = PLAUSIBLE[column]
    if not convertible(unit, canonical):
        return
    canonical_value = float(convert(value, unit, canonical))
    if low <= canonical_value <= high:
        return
    source = "as declared with --units" if declared else "the model file's unit"
    where = f"row {row}, " if isinstance(row, int) else (f"{row}, " if row else "")
    detail = (
        f"{value:g} {unit} ({source}) is {canonical_value:g} {canonical}, outside the "
        f"plausible {low:g}-{high:g} {canonical} (fix: check the value, or declare the "
        f"dataset's unit: --units {column}=UNIT)"
    )
    raise InputError(
        f"patient '{patient_id}', {where}field {column}: {detail}",
        patient_id=patient_id,
        location=row,
        field=column,
        detail=detail,
    )
