"""Dose decisions under any library model: to a target 90-day risk, or to a target trough.

The decisions of :mod:`asuc_bayes.decisions.dosing` for a model of ``models/*.toml`` run by the
generic
engine (any PK structure, any number of random effects): the patient's posterior draws of η
(:func:`asuc_bayes.inference.forecast_problem`) give every individual parameter per draw, and
the PK structure's analytic ``auc`` and ``concentration`` give, per draw, the exposure of the
fixed regimen and of 1 mg infused at the decision day. Exposure is linear in the dose being
chosen (linear PK, superposition), so a whole dose–risk or dose–trough curve is one matrix of
draws × candidate doses.

The risk is the outcome model's (Weibull on x = ln(AUC_w2-4/CL)); a model without one gets the
ASUC outcome model of Niyigena 2025 attached, and every result says it is **extrapolated**.
The request, the whole-vial dose grid (from ``min_mg_per_kg``, rounded up, to the cap), the
criterion and the result types (:class:`~asuc_bayes.decisions.dosing.DoseRecommendation`,
:class:`~asuc_bayes.decisions.dosing.TroughPlan`) are those of :mod:`asuc_bayes.decisions.dosing`,
and so are the searches: the curves computed here go through the same
:func:`~asuc_bayes.decisions.dosing.dose.recommendation_from_risk` and
:func:`~asuc_bayes.decisions.dosing.trough.trough_plan`.

- :func:`library_posterior` — a patient's posterior under a library model, ready for decisions;
- :func:`risk_curve` — ln(AUC/CL) and the 90-day risk, draws × candidate doses;
- :func:`recommend_library_dose` — the smallest whole-vial dose meeting the risk criterion;
- :func:`trough_curve`, :func:`library_trough_targets` — troughs and the trough-target dose;
- :func:`plan_library_dosing` — one patient's answer (JSON via ``to_json``).

Examples
--------
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> from asuc_bayes.decisions.dosing import DosingRequest
>>> doses = (Dose(0.0, 700.0, 1 / 12),)
>>> patient = Patient("p1", 70.0, 30.0, doses, (Observation(7.0, 12.0),))
>>> posterior = library_posterior("wojciechowski2017", patient,
...                               {"ALB": (3.5, "g/dL"), "ADA": 0}, random_seed=1)
>>> rec = recommend_library_dose(posterior, DosingRequest(target_risk=0.2))
>>> posterior.extrapolated, rec.dose_mg % 100 == 0, rec.dose_mg >= 350
(True, True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from asuc_bayes.data.dataset import Patient
from asuc_bayes.decisions.dosing import (
    DoseRecommendation,
    DosingRequest,
    PlanOptions,
    TroughPlan,
    check_decision,
)
from asuc_bayes.decisions.dosing.dose import recommendation_from_risk
from asuc_bayes.decisions.dosing.trough import (
    check_trough_request,
    replaced_schedule_notes,
    trough_plan,
)
from asuc_bayes.inference.derived import risk_90d
from asuc_bayes.inference.library_forecast import ASUC_OUTCOME_MODEL, forecast_problem
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.inference.result import LibraryForecast
from asuc_bayes.inference.sampler import SamplerOptions
from asuc_bayes.pk import DoseArrays
from asuc_bayes.pk.kernels import AUC_FLOOR_MG_DAY_L
from asuc_bayes.spec import ModelDeclaration, load_declaration, with_outcome_from
from asuc_bayes.spec.declaration import OutcomeModel

__all__ = [
    "LibraryDosingPlan",
    "LibraryPosterior",
    "decision_for",
    "library_posterior",
    "library_trough_targets",
    "plan_library_dosing",
    "recommend_library_dose",
    "risk_curve",
    "trough_curve",
    "with_outcome",
]


def with_outcome(declaration: ModelDeclaration) -> ModelDeclaration:
    """``declaration``, with the ASUC outcome model attached (extrapolated) when it has none."""
    if declaration.outcome is not None:
        return declaration
    return with_outcome_from(declaration, load_declaration(ASUC_OUTCOME_MODEL))


@dataclass(frozen=True)
class LibraryPosterior:
    """A patient's posterior under one library model (its outcome model attached)."""

    patient: Patient
    problem: PatientProblem
    forecast: LibraryForecast

    @property
    def declaration(self) -> ModelDeclaration:
        return self.problem.declaration

    @property
    def outcome(self) -> OutcomeModel:
        outcome = self.declaration.outcome
        assert outcome is not None  # library_posterior attaches one
        return outcome

    @property
    def extrapolated(self) -> bool:
        """The outcome model is borrowed from another model (Niyigena 2025)."""
        return bool(self.outcome.extrapolated)

    @property
    def eta_draws(self) -> np.ndarray:
        """The posterior draws of η, flattened over chains: ``(n_draws, n_eta)``."""
        return np.asarray(self.forecast.eta, dtype=float).reshape(-1, self.problem.n_eta)

    @property
    def map_eta(self) -> np.ndarray:
        """The MAP of η as one draw: ``(1, n_eta)``."""
        return np.asarray(self.forecast.map.eta, dtype=float).reshape(1, -1)


def library_posterior(
    declaration: ModelDeclaration | str,
    patient: Patient,
    covariates: Mapping[str, Any] | None = None,
    *,
    impute: Mapping[str, Any] | str | None = None,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
) -> LibraryPosterior:
    """The posterior of ``patient`` under a library model, for dose decisions.

    Raises
    ------
    asuc_bayes.spec.MissingCovariateError
        A covariate the model needs is missing and not imputed.
    """
    if isinstance(declaration, str):
        declaration = load_declaration(declaration)
    problem = PatientProblem.from_patient(
        with_outcome(declaration), patient, covariates, impute=impute
    )
    forecast = forecast_problem(problem, patient.id, random_seed=random_seed, options=options)
    return LibraryPosterior(patient, problem, forecast)


# -- exposure per draw ------------------------------------------------------------------------
def _structure_parameters(problem: PatientProblem, eta: np.ndarray) -> dict[str, np.ndarray]:
    return problem.structure_parameters(problem.parameters(eta))


def _dose_arrays(time_day, amount_mg, duration_day) -> DoseArrays | None:
    time_day = np.atleast_1d(np.asarray(time_day, dtype=float))
    if time_day.size == 0:
        return None
    return DoseArrays(start_day=time_day, amount_mg=amount_mg, duration_day=duration_day)


def _window_auc(problem: PatientProblem, eta: np.ndarray, doses, window) -> np.ndarray:
    """AUC over ``window`` (days) of ``doses`` for every draw: ``(n_draws,)``."""
    if doses is None:
        return np.zeros(eta.shape[0])
    params = _structure_parameters(problem, eta)
    auc = problem.structure.auc(window[0], window[1], doses, params)
    return np.broadcast_to(np.asarray(auc, dtype=float), (eta.shape[0],))


def _concentration(problem: PatientProblem, eta: np.ndarray, doses, time_day) -> np.ndarray:
    """Central concentration of ``doses`` at ``time_day`` (k,) per draw: ``(n_draws, k)``."""
    time_day = np.atleast_1d(np.asarray(time_day, dtype=float))
    if doses is None:
        return np.zeros((eta.shape[0], time_day.size))
    params = _structure_parameters(problem, eta)
    values = problem.structure.concentration(time_day, doses, params)
    return np.broadcast_to(np.asarray(values, dtype=float), (eta.shape[0], time_day.size))


def decision_for(posterior: LibraryPosterior, request: DosingRequest):
    """The checked decision (fixed doses, infusion duration, whole-vial dose grid, notes) of
    ``request`` for this patient and model (:func:`asuc_bayes.decisions.dosing.check_decision`)."""
    return check_decision(
        posterior.patient,
        request,
        default_duration_day=posterior.declaration.default_infusion_duration_day,
        auc_window_day=posterior.outcome.auc_window_day,
    )


def risk_curve(
    posterior: LibraryPosterior,
    decision,
    amounts_mg: np.ndarray,
    time_day: float,
    eta: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ln(AUC/CL), 90-day risk), each ``(n_draws, n_amounts)``, with ``amounts_mg`` infused
    at ``time_day`` besides the decision's fixed doses (default draws: the posterior's).

    AUC is floored at :data:`asuc_bayes.pk.kernels.AUC_FLOOR_MG_DAY_L` as in the forecast.
    """
    problem, outcome = posterior.problem, posterior.outcome
    eta = posterior.eta_draws if eta is None else np.atleast_2d(eta)
    fixed = decision.fixed
    window = outcome.auc_window_day
    fixed_auc = _window_auc(
        problem, eta, _dose_arrays(fixed.time_day, fixed.amount_mg, fixed.duration_day), window
    )
    unit = _dose_arrays([time_day], [1.0], [decision.duration_day])
    unit_auc = _window_auc(problem, eta, unit, window)
    auc = fixed_auc[:, None] + unit_auc[:, None] * np.asarray(amounts_mg, dtype=float)[None, :]
    clearance = np.asarray(problem.parameters(eta)["CL"], dtype=float)
    ln_ratio = np.log(np.maximum(auc, AUC_FLOOR_MG_DAY_L)) - np.log(clearance)[:, None]
    return ln_ratio, risk_90d(outcome, ln_ratio)


def _outcome_note(posterior: LibraryPosterior) -> list[str]:
    if not posterior.extrapolated:
        return []
    return [
        f"EXTRAPOLATED: the 90-day risk uses the outcome model of {posterior.outcome.source_model}"
        f" (ASUC) on ln(AUC_w2-4/CL) of {posterior.declaration.name}, which has no outcome model"
    ]


def recommend_library_dose(
    posterior: LibraryPosterior, request: DosingRequest | None = None
) -> DoseRecommendation:
    """The smallest whole-vial dose at ``request.dose_time_day`` meeting the risk criterion
    (mean risk ≤ target, or P(risk ≤ target) ≥ probability), as
    :func:`asuc_bayes.decisions.dosing.recommend_dose`; the cap, reported infeasible, when none
    does.
    The MAP recommendation applies the target to the single MAP draw.

    Raises
    ------
    DosingError
        A request this patient cannot take (see :func:`asuc_bayes.decisions.dosing.check_decision`).
    """
    request = request or DosingRequest()
    decision = decision_for(posterior, request)
    grid = decision.dose_grid_mg
    time = request.dose_time_day
    ln_ratio, risk = risk_curve(posterior, decision, grid, time)
    _, map_risk = risk_curve(posterior, decision, grid, time, posterior.map_eta)
    return recommendation_from_risk(
        patient_id=posterior.patient.id,
        request=request,
        weight_kg=float(posterior.patient.weight_kg),
        dose_grid_mg=grid,
        ln_ratio=ln_ratio,
        risk=risk,
        map_risk=map_risk,
        high_risk_threshold=posterior.outcome.high_risk_threshold,
        notes=[*decision.notes, *_outcome_note(posterior)],
        non_monotone_note="the risk is not monotone in the dose over the grid: check the curve",
        note_met_at_minimum=False,
    )


# -- troughs ----------------------------------------------------------------------------------
def trough_curve(
    posterior: LibraryPosterior,
    decision,
    request: DosingRequest,
    intervals_day: np.ndarray,
    maintenance_doses: int,
    eta: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(fixed, per mg) trough concentrations ``(n_draws, n_intervals)``: ``maintenance_doses``
    infusions every interval from the decision day (the earlier doses as given), the trough
    just before the next one; the trough of dose D is ``fixed + D · per_mg``."""
    problem = posterior.problem
    eta = posterior.eta_draws if eta is None else np.atleast_2d(eta)
    start = request.dose_time_day
    intervals = np.atleast_1d(np.asarray(intervals_day, dtype=float))
    trough_day = start + maintenance_doses * intervals
    fixed = decision.fixed
    before = fixed.time_day < start
    earlier = _dose_arrays(
        fixed.time_day[before], fixed.amount_mg[before], fixed.duration_day[before]
    )
    fixed_trough = _concentration(problem, eta, earlier, trough_day)
    # 1 mg every interval (rows), on a common clock: the trough of every row at ``last``
    last = float(trough_day.max())
    times = last - intervals[:, None] * (maintenance_doses - np.arange(maintenance_doses))
    schedule = DoseArrays(
        start_day=times,
        amount_mg=np.ones_like(times),
        duration_day=np.full_like(times, decision.duration_day),
    )
    params = {k: v[:, None] for k, v in _structure_parameters(problem, eta).items()}
    per_mg = problem.structure.concentration(np.array([last]), schedule, params)
    return fixed_trough, np.asarray(per_mg, dtype=float)[..., 0]


def library_trough_targets(
    posterior: LibraryPosterior,
    target_mg_l: float,
    *,
    interval_day: float = 56.0,
    dose_mg: float | None = None,
    intervals_day=None,
    maintenance_doses: int = 1,
    request: DosingRequest | None = None,
) -> TroughPlan:
    """Trough-target dosing under a library model, as
    :func:`asuc_bayes.decisions.dosing.trough_targets`:
    the smallest whole-vial dose with P(trough ≥ ``target_mg_l``) ≥ ``request.probability``
    every ``interval_day`` (status ``met_at_minimum``, ``reachable``, or ``not_reachable``
    with the cap's trough), then the longest interval meeting it with that dose."""
    request = request or DosingRequest()
    check_trough_request(target_mg_l, interval_day, maintenance_doses, dose_mg)
    decision = decision_for(posterior, request)
    return trough_plan(
        target_mg_l,
        request,
        dose_grid_mg=decision.dose_grid_mg,
        weight_kg=float(posterior.patient.weight_kg),
        troughs=lambda intervals: trough_curve(
            posterior, decision, request, intervals, maintenance_doses
        ),
        interval_day=interval_day,
        dose_mg=dose_mg,
        intervals_day=intervals_day,
        maintenance_doses=maintenance_doses,
        notes=replaced_schedule_notes(posterior.patient, request.dose_time_day),
    )


# -- one patient's answer ---------------------------------------------------------------------
@dataclass(frozen=True)
class LibraryDosingPlan:
    """One patient's dosing answer under a library model: the risk recommendation (risk
    mode) or the trough plan (trough mode, a trough target given)."""

    posterior: LibraryPosterior
    request: DosingRequest
    recommendation: DoseRecommendation | None = None
    trough: TroughPlan | None = None

    @property
    def mode(self) -> str:
        return "trough" if self.trough is not None else "risk"

    def outcome_json(self) -> dict[str, Any]:
        outcome = self.posterior.outcome
        return {
            "source_model": outcome.source_model,
            "extrapolated": self.posterior.extrapolated,
            "high_risk_threshold": outcome.high_risk_threshold,
        }

    def to_json(self) -> dict[str, Any]:
        """The patient's entry of the ``optimize --model NAME`` JSON (the keys of the default
        model's entry, with ``model``, ``outcome``, ``extrapolated`` and ``imputed``)."""
        forecast = self.posterior.forecast.to_json()
        common = {
            "id": forecast["id"],
            "model": forecast["model"],
            "mode": self.mode,
            "status": forecast["status"],
            "extrapolated": self.posterior.extrapolated,
            "outcome": self.outcome_json(),
            "imputed": forecast["imputed"],
        }
        if self.trough is not None:
            return {
                **common,
                **self.request.dose_range_json(),
                "trough": self.trough.to_json(),
                "diagnostics": forecast["diagnostics"],
                "notes": [*self.trough.notes, *_outcome_note(self.posterior)],
            }
        assert self.recommendation is not None
        return {
            **self.recommendation.to_json(),
            **common,
            "diagnostics": forecast["diagnostics"],
        }


def plan_library_dosing(
    posterior: LibraryPosterior,
    request: DosingRequest | None = None,
    options: PlanOptions | None = None,
) -> LibraryDosingPlan:
    """Risk mode (default): :func:`recommend_library_dose`. Trough mode
    (``options.trough_target_mg_l``): :func:`library_trough_targets`."""
    request = request or DosingRequest()
    options = options or PlanOptions()
    if options.trough_target_mg_l is not None:
        trough = library_trough_targets(
            posterior, options.trough_target_mg_l, request=request, **options.trough_search()
        )
        return LibraryDosingPlan(posterior, request, trough=trough)
    return LibraryDosingPlan(posterior, request, recommend_library_dose(posterior, request))
