"""A dataset patient's covariates for a library model: baseline values, units from the model.

A NONMEM dataset keeps one covariate record per row (:class:`asuc_bayes.dataset.CovariateRecord`);
a library model forecast today uses each covariate's **baseline** value (its first record), as
the ASUC model does. A column's unit is the one the user declared for the dataset
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
>>> baseline_covariates(p, decl)["ALB"]
(38.0, 'g/dL')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asuc_bayes.dataset import Patient
from asuc_bayes.inference.problem import patient_covariates
from asuc_bayes.spec import ModelDeclaration

__all__ = ["baseline_covariates"]


def _first_values(patient: Patient) -> dict[str, float]:
    first: dict[str, float] = {}
    for record in patient.covariate_records:
        for column, value in record.values:
            first.setdefault(column.upper(), float(value))
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
    for column, value in _first_values(patient).items():
        if column in ("WT", "CRP") or column not in declared:
            continue
        extra[declared[column].name] = (value, units.get(column, declared[column].unit))
    return patient_covariates(patient, extra)
