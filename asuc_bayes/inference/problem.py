"""One patient under any library model: the log posterior of its random effects, over ``xp``.

A :class:`PatientProblem` joins a :class:`~asuc_bayes.spec.ModelDeclaration`, a regimen
(:class:`~asuc_bayes.pk.DoseArrays`), concentration records (value, censoring code of
:mod:`asuc_bayes.data.dataset`: 0 measured, 1 below the LLOQ with value = LLOQ, −1 above the ULOQ
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED, InputError, Patient
from asuc_bayes.pk import DoseArrays, PKStructure, propagate, structure_from_name
from asuc_bayes.spec import Imputation, ModelDeclaration, individual_parameters
from asuc_bayes.spec.residual import PREDICTION_FLOOR_MG_L, residual_form

if TYPE_CHECKING:
    from asuc_bayes.inference.schedule import CovariateSchedule

__all__ = [
    "PatientProblem",
    "doses_from_patient",
    "library_unsupported",
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
    """The patient's regimen (every dose record, given and planned) as :class:`DoseArrays`,
    with NONMEM's steady state and resets.

    ``SS=1`` and ``SS=2`` with ``II`` become ``steady_state_interval_day`` (the dose is the
    last of an infinite train); the reset that ``SS=1`` and ``EVID`` 3/4 imply is already in
    the earlier doses' ``end_time_day`` (the data layer sets it), which becomes ``end_day``.
    The doses are read from :attr:`Patient.doses` directly: the library path evaluates
    steady state and resets (see :func:`library_unsupported` for what it refuses).

    Examples
    --------
    >>> from asuc_bayes.data.dataset import Dose, Patient
    >>> doses = (Dose(0.0, 350.0, 1 / 12, end_time_day=30.0),
    ...          Dose(30.0, 350.0, 1 / 12, steady_state=1, steady_state_interval_day=56.0))
    >>> arrays = doses_from_patient(Patient("x", 70.0, 30.0, doses))
    >>> arrays.steady_state_interval_day.tolist(), arrays.end_day.tolist()
    ([0.0, 56.0], [30.0, inf])
    """
    error = library_unsupported(patient)
    if error is not None:
        raise error
    doses = patient.doses
    return DoseArrays(
        start_day=[d.time_day for d in doses],
        amount_mg=[d.amount_mg for d in doses],
        duration_day=[d.duration_day for d in doses],
        steady_state_interval_day=[
            d.steady_state_interval_day if d.steady_state else 0.0 for d in doses
        ],
        end_day=[np.inf if d.end_time_day is None else d.end_time_day for d in doses],
    )


def library_unsupported(patient: Patient) -> InputError | None:
    """The error for a patient the library path cannot evaluate, naming the row; else None.

    The library path evaluates steady state (``SS`` 1 and 2) and resets (``EVID`` 3/4), which
    the default engine refuses (:func:`asuc_bayes.data.dataset.unsupported_by_engine`). It refuses
    a steady-state dose whose infusion lasts longer than its interval ``II``.

    Examples
    --------
    >>> from asuc_bayes.data.dataset import Dose, Patient
    >>> dose = Dose(0.0, 350.0, 2.0, row=3, steady_state=1, steady_state_interval_day=1.0)
    >>> print(library_unsupported(Patient("x", 70.0, 30.0, (dose,))))  # doctest: +ELLIPSIS
    patient 'x', row 3, field II: the steady-state infusion lasts 2 day, longer than its ...
    """
    for dose in patient.doses:
        if dose.steady_state and dose.duration_day > dose.steady_state_interval_day:
            where = (
                f"row {dose.row}, "
                if isinstance(dose.row, int)
                else (f"{dose.row}, " if dose.row else "")
            )
            detail = (
                f"the steady-state infusion lasts {dose.duration_day:g} day, longer than its "
                f"interval II = {dose.steady_state_interval_day:g} day (fix: give II >= the "
                "infusion's duration, or check RATE/DUR)"
            )
            return InputError(
                f"patient '{patient.id}', {where}field II: {detail}",
                patient_id=patient.id,
                location=dose.row,
                field="II",
                detail=detail,
            )
    return None


def patient_covariates(
    patient: Patient, covariates: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A :class:`~asuc_bayes.data.dataset.Patient`'s covariates with units, then ``covariates``.

    The dataset holds body weight (``WT``, kg) and CRP (``CRP``, mg/L); any other covariate a
    model needs (albumin, antibodies, ...) comes in ``covariates`` (name -> value in the model's
    unit, or ``(value, unit)``), which also overrides the patient's.

    Examples
    --------
    >>> from asuc_bayes.data.dataset import Dose, Patient
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


_NO_CHANGE = np.zeros(0)
_NO_CHANGE.flags.writeable = False


def _piecewise_typical(
    declaration: ModelDeclaration,
    covariates: Mapping[str, Any],
    schedule: CovariateSchedule | None,
    impute: Mapping[str, Any] | str | None,
) -> tuple[np.ndarray, tuple[tuple[str, tuple[float, ...]], ...]]:
    """(change times, typical values per piece) of a schedule; pieces whose typical values
    equal the previous piece's are merged, so covariates that change nothing (or do not
    change) give no change time at all (and the constant-parameter path)."""
    if schedule is None or not schedule.change_day:
        return _NO_CHANGE, ()
    rows = []
    for piece in range(schedule.n_piece):
        values = {**covariates, **schedule.piece_covariates(piece)}
        typical = individual_parameters(declaration, values, None, np, impute=impute)
        rows.append({k: float(np.asarray(v)) for k, v in typical.items()})
    keep = [j for j in range(1, len(rows)) if rows[j] != rows[j - 1]]
    if not keep:
        return _NO_CHANGE, ()
    change = np.array([schedule.change_day[j - 1] for j in keep], dtype=float)
    change.flags.writeable = False
    pieces = [0, *keep]
    return change, tuple((name, tuple(rows[j][name] for j in pieces)) for name in rows[0])


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
    #: times (day) at which the typical values change (time-varying covariates; empty: none)
    change_day: np.ndarray = field(default_factory=lambda: _NO_CHANGE)
    #: the typical values per piece (``len(change_day) + 1``) when ``change_day`` is not empty
    typical_pieces: tuple[tuple[str, tuple[float, ...]], ...] = ()
    #: the piece in force at a change time itself (see :func:`asuc_bayes.pk.propagate`)
    change_side: str = "right"
    #: the covariate schedule the pieces came from (None: baseline covariates only)
    schedule: CovariateSchedule | None = None

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
        schedule: CovariateSchedule | None = None,
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
        schedule
            Time-varying covariates (:func:`asuc_bayes.inference.schedule.covariate_schedule`):
            their values per piece override ``covariates``; the typical values become
            piecewise constant and the predictions use exact propagation across the change
            times (:func:`asuc_bayes.pk.propagate`). None, or values that change no
            parameter: the constant-parameter superposition.

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
        change, pieces = _piecewise_typical(declaration, covariates or {}, schedule, impute)
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
            change_day=change,
            typical_pieces=pieces,
            change_side="right" if schedule is None else schedule.change_side,
            schedule=schedule,
        )

    @classmethod
    def from_patient(
        cls,
        declaration: ModelDeclaration,
        patient: Patient,
        covariates: Mapping[str, Any] | None = None,
        *,
        impute: Mapping[str, Any] | str | None = None,
        schedule: CovariateSchedule | None = None,
    ) -> PatientProblem:
        """:meth:`build` from a dataset :class:`~asuc_bayes.data.dataset.Patient` (WT and CRP from
        the patient, other covariates from ``covariates``; see :func:`patient_covariates`;
        time-varying ones from ``schedule``)."""
        return cls.build(
            declaration,
            doses_from_patient(patient),
            time_day=patient.obs_time_day,
            value_mg_l=patient.obs_value_mg_l,
            censoring=patient.obs_censoring,
            covariates=patient_covariates(patient, covariates),
            impute=impute,
            schedule=schedule,
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
        if self.time_varying:
            return self._piecewise_parameters(eta, xp)
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

    def _piecewise_parameters(self, eta: Any, xp: Any) -> dict[str, Any]:
        """:meth:`parameters` with a last axis of pieces, ``(..., n_piece)``."""
        values: dict[str, Any] = {name: np.array(v) for name, v in self.typical_pieces}
        for i, effect in enumerate(self.declaration.random_effects.effects):
            values[effect.parameter] = values[effect.parameter] * xp.exp(eta[..., i])[..., None]
        for derived in self.declaration.derived:
            product = np.float64(1.0)
            for factor in derived.product_of:
                product = product * values[factor]
            values[derived.name] = product
        shape = (*eta.shape[:-1], self.change_day.size + 1)
        if xp is np:
            return {k: np.broadcast_to(v, shape) for k, v in values.items()}
        return {k: v + xp.zeros(shape) for k, v in values.items()}

    @property
    def time_varying(self) -> bool:
        """Whether the typical values change over time (pieces and exact propagation)."""
        return self.change_day.size > 0

    def window_mean(self, parameters: Mapping[str, Any], window_day) -> dict[str, Any]:
        """Time-weighted means of piecewise parameters ``(..., n_piece)`` over ``window_day``
        (the value in force at its start for an empty window); constant ones as they are.

        Examples
        --------
        >>> import numpy as np
        >>> from asuc_bayes.spec import load_declaration
        >>> from asuc_bayes.pk import DoseArrays
        >>> doses = DoseArrays(start_day=[0.0], amount_mg=[350.0], duration_day=[1 / 12])
        >>> p = PatientProblem.build(load_declaration("niyigena2025"), doses,
        ...                          covariates={"WT": 70.0, "CRP": 30.0})
        >>> p.window_mean({"CL": np.array(0.5)}, (14.0, 28.0))["CL"]
        array(0.5)
        """
        if not self.time_varying:
            return dict(parameters)
        start, end = (float(x) for x in window_day)
        edges = np.concatenate([[-np.inf], self.change_day, [np.inf]])
        if end > start:
            weights = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0, None)
            weights = weights / (end - start)
        else:
            weights = np.zeros(edges.size - 1)
            weights[np.searchsorted(self.change_day, start, side="right")] = 1.0
        return {k: np.sum(np.asarray(v) * weights, axis=-1) for k, v in parameters.items()}

    def structure_parameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The PK structure's parameters (lower-case names) from the declaration's."""
        return {pk_name: parameters[name] for name, pk_name in self.structure_names}

    def predict(self, eta: Any, time_day: Any = None, xp: Any = np) -> Any:
        """Central concentrations (mg/L), ``(..., n_time)``; default times: the records'."""
        times = self.time_day if time_day is None else np.asarray(time_day, dtype=float)
        params = self.structure_parameters(self.parameters(eta, xp))
        if self.time_varying:
            return self._propagate(params, times, None, xp).concentration
        return self.structure.concentration(times, self.doses, params, xp)

    def _propagate(self, params, times, window, xp):
        """Exact propagation across the change times (closed-form segments, any ``xp``)."""
        return propagate(
            self.structure,
            self.doses,
            params,
            self.change_day,
            times,
            window,
            method="closed_form",
            xp=xp,
            change_side=self.change_side,
        )

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
        if self.time_varying:
            return self._propagate(params, (), window_day, xp).auc
        return self.structure.auc(window_day[0], window_day[1], self.doses, params, xp)
