"""Structural sensitivity: one patient under every other library model its covariates allow.

Beside the parametric alternatives of :mod:`asuc_bayes.studies.sensitivity` (one model, other
assumptions), each library model (``asuc-bayes models``) other than the one forecasting is a
*structural* alternative: other compartments, covariates and random effects. A model is run
(:func:`asuc_bayes.inference.forecast_library_patient`, posterior sampling) when the patient
has every covariate it needs — body weight and CRP from the patient, any other from the
patient's per-record covariates (:attr:`Patient.covariate_records`, the earliest record giving
it) — or when the user asked for an imputation (``impute="reference"``, reported in the row).
Otherwise its row says which covariates are missing: no model is skipped silently.

The ASUC outcome model (Niyigena 2025's Weibull time to colectomy on ln(AUC_w2-4/CL)) is
attached to a model without one, so that its 90-day risk and P(high risk) are comparable with
the baseline's; such rows carry the flag ``extrapolated outcome``. Every structural row carries
``other model``, and an unconverged forecast the flag ``UNCONVERGED`` (its numbers are shown,
never without saying so). The dose search works with the default model's one-compartment
forecast only, so structural rows give no recommended dose.

Examples
--------
>>> from asuc_bayes.data.dataset import CovariateRecord, Dose, Patient
>>> from asuc_bayes.spec import load_declaration
>>> p = Patient("x", 70.0, 30.0, (Dose(0.0, 700.0, 1 / 12),),
...             covariate_records=(CovariateRecord(0.0, (("ALB", 35.0), ("WT", 70.0))),))
>>> model_covariates(load_declaration("wojciechowski2017"))
('WT', 'ALB', 'ADA')
>>> missing_covariates(load_declaration("wojciechowski2017"), p)
('ADA',)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asuc_bayes.data.dataset import Patient
from asuc_bayes.inference import forecast_library_patient
from asuc_bayes.inference.covariates import (
    dataset_column,
    dataset_covariates,
    missing_covariates,
)
from asuc_bayes.inference.result import LibraryForecast
from asuc_bayes.inference.sampler import SamplerOptions
from asuc_bayes.spec import (
    MissingCovariateError,
    ModelDeclaration,
    available_declarations,
    load_declaration,
)

__all__ = [
    "STRUCTURAL_GROUP",
    "StructuralAlternative",
    "missing_covariates",
    "model_covariates",
    "structural_alternatives",
]

STRUCTURAL_GROUP = "structural"
#: Chains and draws of a structural forecast (the library's defaults: 4 × 1000, so that the
#: bulk-ESS gate of 400 can pass).
DEFAULT_OPTIONS = SamplerOptions()


@dataclass(frozen=True)
class StructuralAlternative:
    """One library model for one patient: its forecast, or why it was not run.

    ``status`` is the forecast's (``ok`` or ``unconverged``), ``missing_covariates`` (the
    covariates the patient lacks, none imputed) or ``error`` (a covariate value the model
    rejects; ``message`` says which).
    """

    model: str
    structure: str
    status: str
    forecast: LibraryForecast | None = None
    missing: tuple[str, ...] = ()
    message: str = ""
    assumed_units: tuple[str, ...] = ()

    @property
    def flags(self) -> tuple[str, ...]:
        """``other model``, ``extrapolated outcome``, ``UNCONVERGED``, imputations, units."""
        out = ["other model"]
        forecast = self.forecast
        if forecast is not None:
            if forecast.extrapolated_outcome:
                out.append("extrapolated outcome")
            if forecast.status != "ok":
                out.append("UNCONVERGED")
            out += [
                f"imputed {i.covariate} = {i.value:g}{'' if i.unit == '1' else ' ' + i.unit} "
                f"({i.reason})"
                for i in forecast.imputed
            ]
            out += list(forecast.warnings)
        out += [
            f"{name} read in the model file's unit (no --units for it)"
            for name in self.assumed_units
        ]
        return tuple(out)

    @property
    def description(self) -> str:
        if self.status == "missing_covariates" and self.message:  # imputation impossible
            return f"{self.structure}; not run: {self.message}"
        if self.status == "missing_covariates":
            return (
                f"{self.structure}; not run: missing {', '.join(self.missing)} (give "
                f"{'it' if len(self.missing) == 1 else 'them'} in the dataset, "
                "or --impute reference)"
            )
        if self.status == "error":
            return f"{self.structure}; not run: {self.message}"
        return f"{self.structure} ({self.model})"


def model_covariates(declaration: ModelDeclaration) -> tuple[str, ...]:
    """The covariates the model's effects use, in the order of their first effect."""
    return tuple(dict.fromkeys(effect.covariate for effect in declaration.effects))


def library_models(exclude_path: str | Path | None = None) -> list[ModelDeclaration]:
    """Every library declaration except the one in the file ``exclude_path``."""
    excluded = None if exclude_path is None else Path(exclude_path).resolve()
    out = []
    for name in available_declarations():
        declaration = load_declaration(name)
        if excluded is None or Path(declaration.path).resolve() != excluded:
            out.append(declaration)
    return out


def structural_alternative(
    declaration: ModelDeclaration,
    patient: Patient,
    *,
    impute: str | None = None,
    units: Mapping[str, str] | None = None,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
) -> StructuralAlternative:
    """``patient`` under ``declaration`` with the ASUC outcome attached (see module doc)."""
    name, structure = declaration.name, declaration.structure
    try:  # an implausible covariate value (a unit mistake) is this model's error row
        covariates = dataset_covariates(patient, [declaration], units)
    except ValueError as exc:
        return StructuralAlternative(name, structure, "error", message=str(exc))
    missing = missing_covariates(declaration, patient)
    if missing and impute is None:
        return StructuralAlternative(name, structure, "missing_covariates", missing=missing)
    given = {k.upper() for k in (units or {})}
    assumed = tuple(  # read in the model file's unit: the user declared none for the column
        c.name
        for c in declaration.covariates
        if c.name in covariates and c.unit != "1" and dataset_column(c, given) is None
    )
    try:
        forecast = forecast_library_patient(
            declaration,
            patient,
            covariates,
            impute=impute,
            attach_outcome=True,
            random_seed=random_seed,
            options=options or DEFAULT_OPTIONS,
        )
    except MissingCovariateError as exc:
        return StructuralAlternative(
            name, structure, "missing_covariates", missing=missing, message=exc.problem
        )
    except ValueError as exc:
        return StructuralAlternative(name, structure, "error", message=str(exc))
    return StructuralAlternative(
        name, structure, forecast.status, forecast=forecast, assumed_units=assumed
    )


def structural_alternatives(
    patient: Patient,
    *,
    exclude_path: str | Path | None = None,
    impute: str | None = None,
    units: Mapping[str, str] | None = None,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
) -> list[StructuralAlternative]:
    """:func:`structural_alternative` of every library model but the one in ``exclude_path``.

    ``impute`` ``"reference"`` imputes missing covariates at the model's reference values
    (reported in each row's flags); by default a model with a missing covariate is a row
    saying which.
    """
    if impute not in (None, "reference"):
        raise ValueError(f"impute must be None or 'reference', got {impute!r}")
    return [
        structural_alternative(
            declaration,
            patient,
            impute=impute,
            units=units,
            random_seed=random_seed,
            options=options,
        )
        for declaration in library_models(exclude_path)
    ]


def structural_row(alternative: StructuralAlternative) -> dict[str, Any]:
    """The sensitivity table's row of one structural alternative (NaN where not run)."""
    nan = math.nan
    row: dict[str, Any] = {
        "group": STRUCTURAL_GROUP,
        "name": alternative.model,
        "description": alternative.description,
        "risk_mean": nan,
        "risk_q2.5": nan,
        "risk_q97.5": nan,
        "p_high_risk": nan,
        "ln_auc_cl_q50": nan,
        "ln_auc_cl_q2.5": nan,
        "ln_auc_cl_q97.5": nan,
        "map_risk": nan,
        "recommended_dose_mg": nan,
        "feasible": None,
        "status": alternative.status,
        "changes_log_density": True,
        "changes_derived": True,
        "structure": alternative.structure,
        "missing_covariates": ", ".join(alternative.missing),
        "flags": "; ".join(alternative.flags),
    }
    forecast = alternative.forecast
    if forecast is None:
        return row
    contract = forecast.draws.contract()
    ln_auc = np.asarray(contract["ln_auc_cl"], dtype=float).ravel()
    q = np.quantile(ln_auc, [0.025, 0.5, 0.975])
    row.update({"ln_auc_cl_q2.5": q[0], "ln_auc_cl_q50": q[1], "ln_auc_cl_q97.5": q[2]})
    if "risk_90d" in contract:
        risk = np.asarray(contract["risk_90d"], dtype=float).ravel()
        low, high = np.quantile(risk, [0.025, 0.975])
        row.update({"risk_mean": risk.mean(), "risk_q2.5": low, "risk_q97.5": high})
        row["map_risk"] = float(np.asarray(forecast.points.contract()["risk_90d"]).ravel()[0])
    if forecast.p_high_risk is not None:
        row["p_high_risk"] = forecast.p_high_risk
    return {
        k: (nan if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }
