"""One patient under any library model: the log posterior of its random effects, over ``xp``.

A :class:`PatientProblem` joins a :class:`~asuc_bayes.spec.ModelDeclaration`, a regimen
(:class:`~asuc_bayes.pk.DoseArrays`), concentration records (value, censoring code of
:mod:`asuc_bayes.dataset`: 0 measured, 1 below the LLOQ with value = LLOQ, −1 above the ULOQ
with value = ULOQ) and the patient's covariates. Its log posterior over η (``(..., n_eta)``,
in the declaration's random-effect order) is

    ln N(η; 0, Ω) + Σ_records ln p(y | f(η)),

with the predictions f from the declaration's registered PK structure and the residual form's
density or M3 terms. Every model formula is written once over an array namespace ``xp``: NumPy
for the vectorised sampler, ``pytensor.tensor`` for the PyMC graph (:mod:`.pymc_model`).

The publication's parameter names (``CL``, ``V1``, ``Q``, ``V2``) are bridged to the PK layer's
(``cl``, ``v1``, ``q``, ``v2``) once, in :func:`structure_parameter_names`.

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.spec import load_declaration
>>> from asuc_bayes.pk import DoseArrays
>>> decl = load_declaration("wojciechowski2017")
>>> doses = DoseArrays(start_day=[0.0, 14.0], amount_mg=[350.0, 350.0],
...                    duration_day=[1 / 12, 1 / 12])
>>> problem = PatientProblem.build(decl, doses, time_day=[7.0, 13.9], value_mg_l=[12.0, 4.0],
...                                covariates={"WT": 70.0, "ALB": (40.0, "g/L"), "ADA": 0})
>>> problem.n_eta, problem.eta_names
(4, ('eta_CL', 'eta_V1', 'eta_Q', 'eta_V2'))
>>> problem.log_posterior(np.zeros((3, 4))).shape
(3,)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from asuc_bayes.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED, Patient
from asuc_bayes.pk import DoseArrays, PKStructure, structure_from_name
from asuc_bayes.spec import Imputation, ModelDeclaration, individual_parameters
from asuc_bayes.spec.residual import PREDICTION_FLOOR_MG_L, residual_form

__all__ = [
    "PatientProblem",
    "doses_from_patient",
    "patient_covariates",
    "structure_parameter_names",
]


def structure_parameter_names(
    declaration: ModelDeclaration, structure: PKStructure
) -> dict[str, str]:
    """The declaration's structural parameter name -> the PK structure's name.

    The PK layer names its parameters in lower case (``cl``, ``v1``); a declaration uses the
    publication's (``CL``, ``V1``).

    Examples
    --------
    >>> from asuc_bayes.spec import load_declaration
    >>> decl = load_declaration("wojciechowski2017")
    >>> structure_parameter_names(decl, structure_from_name(decl.structure))
    {'CL': 'cl', 'V1': 'v1', 'Q': 'q', 'V2': 'v2'}
    """
    mapping = {name: name.lower() for name in declaration.structural_parameters}
    if sorted(mapping.values()) != sorted(structure.parameter_names):
        raise ValueError(
            f"model '{declaration.name}': structural parameters "
            f"{list(declaration.structural_parameters)} do not match the PK structure "
            f"'{structure.lookup_name}' ({', '.join(structure.parameter_names)}); "
            "fix [model].structural_parameters in the model file"
        )
    return mapping


def doses_from_patient(patient: Patient) -> DoseArrays:
    """The patient's regimen (every dose record, given and planned) as :class:`DoseArrays`."""
    return DoseArrays(
        start_day=patient.dose_time_day,
        amount_mg=patient.dose_amount_mg,
        duration_day=patient.dose_duration_day,
    )


def patient_covariates(
    patient: Patient, covariates: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A :class:`~asuc_bayes.dataset.Patient`'s covariates with units, then ``covariates``.

    The dataset holds body weight (``WT``, kg) and CRP (``CRP``, mg/L); any other covariate a
    model needs (albumin, antibodies, ...) comes in ``covariates`` (name -> value in the model's
    unit, or ``(value, unit)``), which also overrides the patient's.

    Examples
    --------
    >>> from asuc_bayes.dataset import Dose, Patient
    >>> p = Patient("x", 70.0, 30.0, (Dose(0.0, 700.0, 1 / 12),))
    >>> patient_covariates(p, {"ALB": (4.0, "g/dL")})
    {'WT': (70.0, 'kg'), 'CRP': (30.0, 'mg/L'), 'ALB': (4.0, 'g/dL')}
    """
    out: dict[str, Any] = {
        "WT": (float(patient.weight_kg), "kg"),
        "CRP": (float(patient.crp_mg_l), "mg/L"),
    }
    out.update(covariates or {})
    return out


def _mvn_constants(omega: np.ndarray) -> tuple[np.ndarray, float]:
    """(Ω⁻¹, ln of the normal's normalising constant −½(d ln 2π + ln|Ω|))."""
    sign, log_det = np.linalg.slogdet(omega)
    if sign <= 0:
        raise ValueError("the random effects' Omega must be positive definite")
    d = omega.shape[0]
    return np.linalg.inv(omega), -0.5 * (d * math.log(2.0 * math.pi) + log_det)


@dataclass(frozen=True, eq=False)
class PatientProblem:
    """A patient's data under one declaration: the log posterior over η (see module doc).

    Build it with :meth:`build` (checks covariates and imputations once).
    """

    declaration: ModelDeclaration
    doses: DoseArrays
    time_day: np.ndarray
    value_mg_l: np.ndarray
    censoring: np.ndarray
    #: the patient's covariate-adjusted typical values (η = 0), by the declaration's names
    typical: tuple[tuple[str, float], ...]
    imputed: tuple[Imputation, ...]
    structure: PKStructure
    structure_names: tuple[tuple[str, str], ...]
    omega_inverse: np.ndarray
    log_normaliser: float

    @classmethod
    def build(
        cls,
        declaration: ModelDeclaration,
        doses: DoseArrays,
        *,
        time_day: Any = (),
        value_mg_l: Any = (),
        censoring: Any = None,
        covariates: Mapping[str, Any] | None = None,
        impute: Mapping[str, Any] | str | None = None,
    ) -> PatientProblem:
        """Check and bind one patient's data.

        Parameters
        ----------
        declaration
            The model (:func:`asuc_bayes.spec.load_declaration`).
        doses
            The regimen.
        time_day, value_mg_l, censoring
            Concentration records; censoring codes default to 0 (measured).
        covariates
            Name -> value (in the model's unit) or ``(value, unit)``.
        impute
            Explicit imputations of missing covariates (see
            :func:`asuc_bayes.spec.individual_parameters`); they are reported, never silent.

        Raises
        ------
        MissingCovariateError
            A covariate the model needs is missing and not imputed.
        ValueError
            Records of different lengths, unknown censoring codes, non-finite values.
        """
        time_day = np.asarray(time_day, dtype=float).reshape(-1)
        value_mg_l = np.asarray(value_mg_l, dtype=float).reshape(-1)
        censoring = (
            np.zeros(time_day.shape, dtype=np.int64)
            if censoring is None
            else np.asarray(censoring, dtype=np.int64).reshape(-1)
        )
        if not time_day.shape == value_mg_l.shape == censoring.shape:
            raise ValueError(
                "observations: time_day, value_mg_l and censoring must have one length each, got "
                f"{time_day.size}, {value_mg_l.size}, {censoring.size}"
            )
        if not np.all(np.isfinite(time_day)) or not np.all(np.isfinite(value_mg_l)):
            raise ValueError("observations: time_day and value_mg_l must be finite numbers")
        known = np.isin(censoring, (MEASURED, BELOW_LLOQ, ABOVE_ULOQ))
        if not np.all(known):
            raise ValueError(
                f"observations: unknown censoring codes {np.unique(censoring[~known]).tolist()} "
                f"(use {MEASURED} measured, {BELOW_LLOQ} below the LLOQ, {ABOVE_ULOQ} above the "
                "ULOQ)"
            )
        typical = individual_parameters(declaration, covariates or {}, None, np, impute=impute)
        structure = structure_from_name(declaration.structure)
        names = structure_parameter_names(declaration, structure)
        omega_inverse, log_normaliser = _mvn_constants(declaration.random_effects.matrix)
        residual_form(declaration.residual.form)  # unknown forms fail here, not in a sampler
        return cls(
            declaration=declaration,
            doses=doses,
            time_day=time_day,
            value_mg_l=value_mg_l,
            censoring=censoring,
            typical=tuple((k, float(np.asarray(v))) for k, v in typical.items()),
            imputed=typical.imputed,
            structure=structure,
            structure_names=tuple(names.items()),
            omega_inverse=omega_inverse,
            log_normaliser=log_normaliser,
        )

    @classmethod
    def from_patient(
        cls,
        declaration: ModelDeclaration,
        patient: Patient,
        covariates: Mapping[str, Any] | None = None,
        *,
        impute: Mapping[str, Any] | str | None = None,
    ) -> PatientProblem:
        """:meth:`build` from a dataset :class:`~asuc_bayes.dataset.Patient` (WT and CRP from
        the patient, other covariates from ``covariates``; see :func:`patient_covariates`)."""
        return cls.build(
            declaration,
            doses_from_patient(patient),
            time_day=patient.obs_time_day,
            value_mg_l=patient.obs_value_mg_l,
            censoring=patient.obs_censoring,
            covariates=patient_covariates(patient, covariates),
            impute=impute,
        )

    # -- sizes and names ----------------------------------------------------------------
    @property
    def eta_names(self) -> tuple[str, ...]:
        """The random effects' names, in the model file's order."""
        return self.declaration.random_effects.names

    @property
    def n_eta(self) -> int:
        return len(self.eta_names)

    @property
    def omega(self) -> np.ndarray:
        return self.declaration.random_effects.matrix

    # -- model maths, over xp -----------------------------------------------------------
    def parameters(self, eta: Any, xp: Any = np) -> dict[str, Any]:
        """Individual parameters by the declaration's names, for η ``(..., n_eta)``.

        The covariate factors were evaluated once (:meth:`build`); η multiplies as
        P = TV · exp(η), then derived parameters are formed, as
        :func:`asuc_bayes.spec.individual_parameters` does (tested equal).
        """
        if xp is np:
            eta = np.asarray(eta, dtype=float)
        values: dict[str, Any] = {name: np.float64(v) for name, v in self.typical}
        for i, effect in enumerate(self.declaration.random_effects.effects):
            values[effect.parameter] = values[effect.parameter] * xp.exp(eta[..., i])
        for derived in self.declaration.derived:
            product = np.float64(1.0)
            for factor in derived.product_of:
                product = product * values[factor]
            values[derived.name] = product
        shape = eta.shape[:-1]
        if xp is np:
            return {k: np.broadcast_to(v, shape) for k, v in values.items()}
        return {k: v + xp.zeros(shape) for k, v in values.items()}

    def structure_parameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The PK structure's parameters (lower-case names) from the declaration's."""
        return {pk_name: parameters[name] for name, pk_name in self.structure_names}

    def predict(self, eta: Any, time_day: Any = None, xp: Any = np) -> Any:
        """Central concentrations (mg/L), ``(..., n_time)``; default times: the records'."""
        times = self.time_day if time_day is None else np.asarray(time_day, dtype=float)
        params = self.structure_parameters(self.parameters(eta, xp))
        return self.structure.concentration(times, self.doses, params, xp)

    def log_prior(self, eta: Any, xp: Any = np) -> Any:
        """ln N(η; 0, Ω), normalised, ``(...)``."""
        if xp is np:
            eta = np.asarray(eta, dtype=float)
        quadratic = xp.sum((eta @ self.omega_inverse) * eta, axis=-1)
        return self.log_normaliser - 0.5 * quadratic

    def log_likelihood(self, eta: Any, xp: Any = np) -> Any:
        """Σ over the records of the residual density (measured) or M3 term (censored).

        Each kind of record is evaluated only with its own term (the per-record selection of
        :func:`asuc_bayes.spec.residual.observation_log_likelihood`, tested equal), so a
        patient without censored records pays for no log Φ.
        """
        if xp is np:
            eta = np.asarray(eta, dtype=float)
        if self.time_day.size == 0:
            return 0.0 * xp.sum(eta, axis=-1)
        prediction = self.predict(eta, None, xp)
        residual = self.declaration.residual
        form = residual_form(residual.form)
        sigma = residual.sd()
        total = 0.0 * xp.sum(eta, axis=-1)
        terms = ((MEASURED, form.log_density), (BELOW_LLOQ, form.log_below))
        for code, term in (*terms, (ABOVE_ULOQ, form.log_above)):
            index = np.flatnonzero(self.censoring == code)
            if index.size:
                values = self.value_mg_l[index]
                if code != MEASURED:  # a limit: never 0 (log-normal forms take its log)
                    values = np.maximum(values, PREDICTION_FLOOR_MG_L)
                total = total + xp.sum(term(values, prediction[..., index], sigma, xp), axis=-1)
        return total

    def log_posterior(self, eta: Any, xp: Any = np) -> Any:
        """ln p(η) + ln p(y | η): the log posterior up to the evidence, ``(...)``."""
        return self.log_prior(eta, xp) + self.log_likelihood(eta, xp)

    def auc(self, eta: Any, window_day: tuple[float, float], xp: Any = np) -> Any:
        """AUC (mg·day/L) of the central concentration over ``window_day``, ``(...)``."""
        params = self.structure_parameters(self.parameters(eta, xp))
        return self.structure.auc(window_day[0], window_day[1], self.doses, params, xp)
