"""A dosing decision set up for one patient: the request checked against the patient's
regimen and samples, the whole-vial dose grid, and the posterior draws it is answered from.

Examples
--------
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> from asuc_bayes.decisions.dosing.request import DosingRequest
>>> patient = Patient("p1", 70.0, 30.0, (Dose(0.0, 400.0, 1 / 12),), (Observation(7.0, 14.0),))
>>> decision = check_decision(
...     patient, DosingRequest(), default_duration_day=1 / 12, auc_window_day=(14.0, 28.0)
... )
>>> decision.dose_grid_mg[[0, -1]].tolist(), decision.notes
([400.0, 1400.0], ('the chosen dose is added to the regimen at day 14',))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asuc_bayes.data.dataset import Dose, Patient
from asuc_bayes.decisions.dosing.exposure import (
    DrawSet,
    RegimenArrays,
    draws_ln_ratio,
    unit_window_auc,
    window_auc,
)
from asuc_bayes.decisions.dosing.request import DosingError, DosingRequest
from asuc_bayes.inference.forecast import PatientForecast
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "Decision",
    "DosingContext",
    "check_decision",
    "check_request",
    "dosing_context",
    "last_sample_day",
    "risk_curve",
]


@dataclass(frozen=True)
class Decision:
    """The decision's patient-level parts: the fixed doses, the infusion's duration, the dose
    grid and notes on what is decided."""

    fixed: RegimenArrays
    duration_day: float
    dose_grid_mg: np.ndarray
    notes: tuple[str, ...]


@dataclass(frozen=True)
class DosingContext:
    """A patient's posterior draws and the decision's fixed parts, computed once."""

    forecast: PatientForecast
    request: DosingRequest
    draws: DrawSet
    map_draw: DrawSet
    decision: Decision

    @property
    def spec(self) -> ModelSpec:
        """The model file's specification."""
        return self.forecast.spec

    @property
    def patient(self) -> Patient:
        """The patient decided for."""
        return self.forecast.patient

    @property
    def weight_kg(self) -> float:
        """The patient's weight (kg)."""
        return float(self.patient.weight_kg)


def last_sample_day(patient: Patient) -> float | None:
    """Day of the patient's last concentration sample (None without samples)."""
    return float(patient.obs_time_day.max()) if patient.observations else None


def check_request(patient: Patient, spec: ModelSpec, request: DosingRequest) -> Decision:
    """Check ``request`` against ``patient`` (before any sampling) and set the decision up:
    :func:`check_decision` with the model file's default infusion duration and AUC window."""
    return check_decision(
        patient,
        request,
        default_duration_day=spec.pk.default_infusion_duration_day,
        auc_window_day=spec.tte.auc_window_day,
    )


def check_decision(
    patient: Patient,
    request: DosingRequest,
    *,
    default_duration_day: float,
    auc_window_day: tuple[float, float],
) -> Decision:
    """Check ``request`` against ``patient`` (before any sampling) and set the decision up,
    for any model (``default_duration_day``: its infusion duration when the regimen has no
    dose at the decision day; ``auc_window_day``: its exposure window).

    The dose grid holds the whole-vial doses from the minimum (rounded up) to the cap
    (rounded down).

    Raises
    ------
    DosingError
        The dose time precedes the last sample, the chosen infusion would overlap another,
        the cap is below one vial, or no whole-vial dose lies between the minimum and the cap.
    """
    time = float(request.dose_time_day)
    last = last_sample_day(patient)
    if last is not None and time < last:
        reason = (
            f"patient {patient.id}: the dose at day {time:g} comes before the last sample (day "
            f"{last:g}): that dose has been given, and the posterior already depends on it"
        )
        raise DosingError(
            f"{reason}; choose a later infusion with --dose-time ≥ {last:g}",
            clinical=f"{reason}; only a later infusion (day ≥ {last:g}) can be chosen",
        )
    replaced = next((d for d in patient.doses if abs(d.time_day - time) < 1e-9), None)
    _check_no_later_reset(patient, time, replaced)
    duration = request.duration_day or (replaced.duration_day if replaced else default_duration_day)
    fixed = [d for d in patient.doses if d is not replaced]
    for dose in fixed:
        if dose.time_day < time + duration and time < dose.time_day + dose.duration_day:
            overlap = (
                f"patient {patient.id}: an infusion at day {time:g} would overlap the infusion "
                f"at day {dose.time_day:g}"
            )
            raise DosingError(
                f"{overlap}; choose another --dose-time", clinical=f"{overlap}; choose another day"
            )
    cap_mg = request.max_mg_per_kg * patient.weight_kg
    n_vials = math.floor(cap_mg / request.vial_mg + 1e-9)
    if n_vials < 1:
        reason = (
            f"patient {patient.id}: the dose cap ({request.max_mg_per_kg:g} mg/kg × "
            f"{patient.weight_kg:g} kg = {cap_mg:g} mg) is below one vial ({request.vial_mg:g} "
            "mg)"
        )
        raise DosingError(
            f"{reason}; raise --max-mg-kg or give a smaller --vial-mg",
            clinical=f"{reason}; a higher cap or smaller vials are needed",
        )
    min_mg = request.min_mg_per_kg * patient.weight_kg
    min_vials = max(math.ceil(min_mg / request.vial_mg - 1e-9), 1)
    if min_vials > n_vials:
        reason = (
            f"patient {patient.id}: no whole-vial dose lies between the minimum "
            f"({request.min_mg_per_kg:g} mg/kg = {min_mg:g} mg, rounded up to "
            f"{min_vials * request.vial_mg:g} mg) and the cap ({request.max_mg_per_kg:g} mg/kg "
            f"= {cap_mg:g} mg, rounded down to {n_vials * request.vial_mg:g} mg)"
        )
        raise DosingError(
            f"{reason}; lower --min-mg-kg, raise --max-mg-kg or give a smaller --vial-mg",
            clinical=f"{reason}; widen the dose range or use smaller vials",
        )
    notes = []
    start, end = auc_window_day
    if time >= end:
        notes.append(
            f"a dose at day {time:g} does not enter AUC over days {start:g}-{end:g}: it cannot "
            "change this model's 90-day risk"
        )
    if replaced is not None:
        notes.append(
            f"the chosen dose replaces the regimen's {replaced.amount_mg:g} mg at day {time:g}"
        )
    else:
        notes.append(f"the chosen dose is added to the regimen at day {time:g}")
    return Decision(
        fixed=RegimenArrays.of(fixed),
        duration_day=float(duration),
        dose_grid_mg=request.vial_mg * np.arange(min_vials, n_vials + 1, dtype=float),
        notes=tuple(notes),
    )


def _check_no_later_reset(patient: Patient, time: float, replaced: Dose | None) -> None:
    """A chosen dose must come after every reset (EVID 3/4, SS=1) and not replace a
    steady-state dose: what a reset would cut, or a train the new dose would stand for, is
    not a decision this module models."""
    resets = [r.time_day for r in patient.resets]
    resets += [d.time_day for d in patient.doses if d.steady_state == 1]
    later = [r for r in resets if r > time + 1e-9]
    if later:
        reason = (
            f"patient {patient.id}: the dose at day {time:g} comes before the reset at day "
            f"{min(later):g} (EVID 3/4 or SS=1), which would wipe it out"
        )
        raise DosingError(
            f"{reason}; choose a --dose-time after it", clinical=f"{reason}; choose a later day"
        )
    if replaced is not None and replaced.steady_state:
        reason = (
            f"patient {patient.id}: the dose at day {time:g} is a steady-state dose "
            f"(SS={replaced.steady_state}); a recommendation would replace the whole train"
        )
        raise DosingError(
            f"{reason}; choose another --dose-time", clinical=f"{reason}; choose another day"
        )


def dosing_context(forecast: PatientForecast, request: DosingRequest) -> DosingContext:
    """The decision of ``request`` for the forecast's patient, with its posterior and MAP
    draws (:func:`check_request` raises for a request this patient cannot take)."""
    return DosingContext(
        forecast=forecast,
        request=request,
        draws=DrawSet.posterior(forecast),
        map_draw=DrawSet.map_estimate(forecast),
        decision=check_request(forecast.patient, forecast.spec, request),
    )


def risk_curve(
    context: DosingContext, draws: DrawSet, amounts_mg: np.ndarray, time_day: float
) -> tuple[np.ndarray, np.ndarray]:
    """(ln ratio, risk), each (draws, amounts), for ``amounts_mg`` infused at ``time_day``."""
    spec = context.spec
    fixed = window_auc(spec, context.decision.fixed, draws)
    unit = unit_window_auc(spec, np.array([time_day]), context.decision.duration_day, draws)
    ln_ratio = draws_ln_ratio(fixed[:, None] + unit * np.asarray(amounts_mg)[None, :], draws)
    return ln_ratio, draws.risk(spec, ln_ratio)
