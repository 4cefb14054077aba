"""Personalised dosing under uncertainty: dose to a target risk, timing, regimens, troughs,
and the value of one more sample.

Everything here works on a patient's existing posterior (a :class:`PatientForecast`): the
posterior of CL and V depends only on the doses given before the last sample, so changing a
dose at or after that time needs no new sampling. For each posterior draw, the AUC over the
risk window (days 14-28) and the concentration at any time are linear in the amount of the
dose being chosen (superposition of the one-compartment model), so a whole dose-risk curve is
one matrix of draws × candidate doses evaluated with the kernels of :mod:`asuc_bayes.pk.kernels`.
When the forecast integrates population-parameter uncertainty, its ``posterior`` group holds
per-draw ``tte_lambda``, ``tte_gamma``, ``tte_beta`` (and ``residual_sd``), and those are
used draw by draw; otherwise the model file's values.

- :func:`recommend_dose` — the smallest whole-vial dose at the decision time (default day 14,
  week 2), from the minimum (default 5 mg/kg, rounded up; never 0 mg) to the cap, whose
  posterior mean 90-day risk is at most the target (``criterion="mean"``), or with
  P(risk ≤ target) ≥ ``probability`` (``"probability"``); the minimum itself when it already
  meets the target; the dose-risk curve; the same recommendation from the MAP estimate (what
  the published tool does) beside it.
- :func:`infusion_timing` — for a given dose, which candidate days for that infusion meet the
  criterion (the latest and earliest such day).
- :func:`compare_regimens` — standard, intensified and accelerated schedules, the patient's
  own and the recommended regimen, with their risk summaries.
- :func:`trough_targets` — maintenance (second seed paper): the answer first (the smallest
  dose giving P(trough ≥ target) ≥ probability, the minimum when it already does, or "not
  reachable at the cap" with the trough the cap achieves), then the longest interval for
  that dose, with the dose–trough and interval–trough tables.
- :func:`sampling_value` — pre-posterior analysis of one more sample on candidate days: the
  expected posterior SD of ln(AUC_w2-4/CL) and the probability that the risk class, or the
  recommended dose, would change; a day whose result (after the assay turnaround) would
  arrive after the dose it informs is never recommended.
- :func:`plan_dosing` — one patient's answer as JSON and as a DataTree: in risk mode the
  recommendation, timing, regimens (and sampling); in trough mode the trough plan alone.

Examples
--------
>>> from asuc_bayes import example_path, load_model, read_patients
>>> from asuc_bayes.inference.forecast import forecaster_for
>>> patient = read_patients(example_path()).patients[0]  # P01: a day-7 sample
>>> forecast = forecaster_for(load_model()).forecast(patient, random_seed=1)
>>> recommendation = recommend_dose(forecast, target_risk=0.2, criterion="probability")
>>> recommendation.feasible, recommendation.dose_mg % 100 == 0, recommendation.monotone
(True, True, True)
>>> recommendation.dose_mg >= 5 * patient.weight_kg  # never below the 5 mg/kg minimum
True
>>> sorted(recommendation.to_json())[:4]
['criterion', 'curve', 'dose_range_mg', 'feasible']
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED, Dose, Patient
from asuc_bayes.decisions.dosing_defaults import DEFAULT_MIN_MG_PER_KG, DEFAULT_TURNAROUND_DAY
from asuc_bayes.errors import AsucBayesError
from asuc_bayes.inference.forecast import PatientForecast, summary_statistics
from asuc_bayes.inference.grid import observation_log_likelihood
from asuc_bayes.inference.risk_class import is_high_risk
from asuc_bayes.pk.kernels import (
    auc_interval,
    concentration,
    ln_auc_cl,
    weibull_parameters,
    weibull_risk,
)
from asuc_bayes.spec.config import ModelSpec
from asuc_bayes.spec.residual import add_residual_error

__all__ = [
    "REGIMEN_TEMPLATES",
    "DoseRecommendation",
    "DosingError",
    "DosingPlan",
    "DosingRequest",
    "DrawSet",
    "PlanOptions",
    "RegimenTemplate",
    "SamplingAnalysis",
    "TimingSearch",
    "TroughPlan",
    "check_decision",
    "check_request",
    "clinical_text",
    "compare_regimens",
    "concentration_text",
    "infusion_timing",
    "plan_dosing",
    "recommend_dose",
    "sampling_value",
    "trough_targets",
]

Criterion = Literal["mean", "probability"]
CRITERIA = ("mean", "probability")
#: Tolerance of the monotonicity check of a curve (risk is a probability).
MONOTONE_TOLERANCE = 1e-9
#: Posterior (or pre-posterior) weights with a Kish ESS below this are reported as coarse.
MIN_PARTICLE_ESS = 200.0


class DosingError(AsucBayesError, ValueError):
    """A dosing request that cannot be answered; the message names the option and the fix.

    ``clinical`` is the same message without command-line options, for clinicians (the HTML
    report, the app): given explicitly where an option is part of a sentence, else the
    message with its parenthesised options removed.

    Examples
    --------
    >>> DosingError("target risk must be below 1, got 1.5 (--target-risk)").clinical
    'target risk must be below 1, got 1.5'
    """

    def __init__(self, message: str, clinical: str | None = None):
        super().__init__(message)
        self.clinical = clinical if clinical is not None else clinical_text(message)


def clinical_text(message: str) -> str:
    """``message`` without parenthesised command-line options such as ``(--dose-time)``.

    Examples
    --------
    >>> clinical_text("cap too low (--max-mg-kg)")
    'cap too low'
    """
    return re.sub(r"\s*\((?:--[a-z][a-z-]*(?:[ ,/]+(?:or )?)?)+\)", "", message)


# -- the request --------------------------------------------------------------------------
@dataclass(frozen=True)
class DosingRequest:
    """What to optimise, validated once at construction.

    Parameters
    ----------
    target_risk
        Target 90-day colectomy risk, in (0, 1) (the paper's tool: 0.20, i.e.
        ln(AUC_w2-4/CL) ≥ 5.79).
    criterion
        ``"mean"``: posterior mean risk ≤ target. ``"probability"``: P(risk ≤ target) ≥
        ``probability``.
    probability
        Required posterior probability of meeting the target (criterion ``probability``, and
        the trough mode), in (0, 1).
    dose_time_day
        Day of the infusion being chosen (default 14, week 2); it replaces the regimen's dose
        at that day or is added. Must not precede the patient's last sample.
    vial_mg
        Vial size: doses are whole vials, rounded up.
    max_mg_per_kg
        Cap on the chosen dose (mg/kg); a target not met at the cap is reported infeasible.
    min_mg_per_kg
        Smallest dose considered (mg/kg; default 5, the label's induction dose), rounded up to
        whole vials: nothing below it is recommended, and when it already meets the target it
        is the recommendation (there is no "0 mg" answer). Must be positive and at most
        ``max_mg_per_kg``.
    duration_day
        Infusion duration of the chosen dose; ``None``: that of the regimen's dose at
        ``dose_time_day``, else the model file's default (2 h).

    Examples
    --------
    >>> DosingRequest(target_risk=0.15).criterion
    'mean'
    >>> DosingRequest(target_risk=1.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    asuc_bayes.decisions.dosing.DosingError: target risk must be strictly between 0 ...
    """

    target_risk: float = 0.20
    criterion: Criterion = "mean"
    probability: float = 0.8
    dose_time_day: float = 14.0
    vial_mg: float = 100.0
    max_mg_per_kg: float = 20.0
    duration_day: float | None = None
    min_mg_per_kg: float = DEFAULT_MIN_MG_PER_KG

    def __post_init__(self):
        _probability_in_unit_interval(
            self.target_risk, "target risk", "e.g. 0.20 for 20 %", option="--target-risk"
        )
        if self.criterion not in CRITERIA:
            raise DosingError(
                f"criterion must be 'mean' or 'probability', got {self.criterion!r} (--criterion)"
            )
        _probability_in_unit_interval(
            self.probability, "probability", "e.g. 0.8", option="--probability"
        )
        _finite_in(self.dose_time_day, 0.0, 365.0, "dose time", "day", "--dose-time")
        _finite_in(self.vial_mg, 1.0, 3000.0, "vial size", "mg", "--vial-mg")
        _finite_in(self.max_mg_per_kg, 0.01, 100.0, "dose cap", "mg/kg", "--max-mg-kg")
        _check_minimum_dose(self.min_mg_per_kg, self.max_mg_per_kg)
        if self.duration_day is not None:
            _finite_in(self.duration_day, 5 / 1440, 1.0, "infusion duration", "day", "--duration")


def _check_minimum_dose(min_mg_per_kg, max_mg_per_kg: float) -> None:
    if (
        isinstance(min_mg_per_kg, bool)
        or not isinstance(min_mg_per_kg, int | float)
        or not math.isfinite(min_mg_per_kg)
        or min_mg_per_kg <= 0
    ):
        raise DosingError(
            f"the minimum dose must be a positive number of mg/kg (e.g. 5), got "
            f"{min_mg_per_kg!r} (--min-mg-kg)"
        )
    if min_mg_per_kg > max_mg_per_kg:
        raise DosingError(
            f"the minimum dose ({min_mg_per_kg:g} mg/kg) exceeds the dose cap "
            f"({max_mg_per_kg:g} mg/kg): lower --min-mg-kg or raise --max-mg-kg"
        )


def _probability_in_unit_interval(value, name: str, example: str, option: str) -> None:
    if not isinstance(value, int | float) or not 0.0 < float(value) < 1.0:
        raise DosingError(
            f"{name} must be strictly between 0 and 1 ({example}), got {value!r} ({option})"
        )


def _finite_in(value, low: float, high: float, name: str, unit: str, option: str) -> None:
    if not isinstance(value, int | float) or not (math.isfinite(value) and low <= value <= high):
        raise DosingError(
            f"{name} must be between {low:g} and {high:g} {unit}, got {value!r} ({option})"
        )


# -- draws ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DrawSet:
    """Per-draw individual and time-to-event parameters (flattened over chain and draw).

    The TTE parameters and the residual SD are arrays of the draws' length: constant (the
    model file's values) unless the forecast carries per-draw population parameters.
    """

    clearance: np.ndarray
    volume: np.ndarray
    baseline_lambda: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    residual_sd: np.ndarray

    @property
    def size(self) -> int:
        return int(self.clearance.size)

    @classmethod
    def posterior(cls, forecast: PatientForecast) -> DrawSet:
        """The posterior draws of a forecast."""
        posterior = forecast.tree["posterior"]
        tte = forecast.spec.tte
        clearance = np.asarray(posterior["cl"].values, dtype=float).ravel()

        def per_draw(name: str, default: float) -> np.ndarray:
            if name in posterior:
                return np.asarray(posterior[name].values, dtype=float).ravel()
            return np.full(clearance.size, float(default))

        return cls(
            clearance=clearance,
            volume=np.asarray(posterior["v"].values, dtype=float).ravel(),
            baseline_lambda=per_draw("tte_lambda", tte.baseline_lambda),
            gamma=per_draw("tte_gamma", tte.gamma.estimate),
            beta=per_draw("tte_beta", tte.beta.estimate),
            residual_sd=per_draw("residual_sd", forecast.spec.pk.residual_sd.estimate),
        )

    @classmethod
    def map_estimate(cls, forecast: PatientForecast) -> DrawSet:
        """The MAP estimate as a single draw, with the model file's TTE values."""
        points = forecast.tree["point_estimates"]
        tte = forecast.spec.tte
        return cls(
            clearance=np.atleast_1d(float(points["cl"].sel(estimate="map"))),
            volume=np.atleast_1d(float(points["v"].sel(estimate="map"))),
            baseline_lambda=np.atleast_1d(tte.baseline_lambda),
            gamma=np.atleast_1d(tte.gamma.estimate),
            beta=np.atleast_1d(tte.beta.estimate),
            residual_sd=np.atleast_1d(forecast.spec.pk.residual_sd.estimate),
        )

    def risk(self, spec: ModelSpec, ln_ratio: np.ndarray) -> np.ndarray:
        """90-day risk of ``ln_ratio`` (draws, ...) with each draw's TTE parameters."""
        tte = spec.tte
        extra = (1,) * (np.ndim(ln_ratio) - 1)
        return weibull_risk(
            tte.horizon_day,
            ln_ratio,
            **weibull_parameters(
                tte,
                baseline_lambda=self.baseline_lambda.reshape(-1, *extra),
                gamma=self.gamma.reshape(-1, *extra),
                beta=self.beta.reshape(-1, *extra),
            ),
        )


# -- regimen arithmetic -------------------------------------------------------------------
@dataclass(frozen=True)
class _Regimen:
    """Dose arrays of a regimen (times, amounts, durations, ends at a reset, steady-state
    intervals; see :mod:`asuc_bayes.pk.kernels`) and the doses they come from."""

    time_day: np.ndarray
    amount_mg: np.ndarray
    duration_day: np.ndarray
    end_day: np.ndarray
    ss_interval_day: np.ndarray
    doses: tuple[Dose, ...] = ()

    @classmethod
    def of(cls, doses) -> _Regimen:
        doses = tuple(doses)
        patient = Patient("regimen", 1.0, 1.0, doses)
        return cls(
            patient.dose_time_day,
            patient.dose_amount_mg,
            patient.dose_duration_day,
            patient.dose_end_day,
            patient.dose_ss_interval_day,
            doses,
        )

    def kernel_options(self, keep=slice(None)) -> dict[str, np.ndarray]:
        """The optional dose arrays of the kernels (of the doses ``keep`` selects)."""
        return {
            "dose_end_day": self.end_day[keep],
            "dose_ss_interval_day": self.ss_interval_day[keep],
        }


def _window_auc(spec: ModelSpec, regimen: _Regimen, draws: DrawSet) -> np.ndarray:
    """AUC over the risk window of ``regimen`` for every draw: (draws,)."""
    start, end = spec.tte.auc_window_day
    if regimen.time_day.size == 0:
        return np.zeros(draws.size)
    return auc_interval(
        start,
        end,
        regimen.time_day,
        regimen.amount_mg,
        regimen.duration_day,
        draws.clearance,
        draws.volume,
        **regimen.kernel_options(),
    )


def _unit_window_auc(
    spec: ModelSpec, time_day: np.ndarray, duration_day: float, draws: DrawSet
) -> np.ndarray:
    """AUC over the risk window of 1 mg infused at each of ``time_day`` (k,): (draws, k)."""
    start, end = spec.tte.auc_window_day
    times = np.asarray(time_day, dtype=float).reshape(-1, 1)
    return auc_interval(
        start,
        end,
        times,
        np.ones_like(times),
        np.full_like(times, duration_day),
        draws.clearance[:, None],
        draws.volume[:, None],
    )


def _ln_ratio(auc: np.ndarray, draws: DrawSet) -> np.ndarray:
    """ln(AUC/CL) for AUCs (draws, ...), floored as in :func:`forecast.derived_quantities`."""
    extra = (1,) * (np.ndim(auc) - 1)
    return ln_auc_cl(auc, draws.clearance.reshape(-1, *extra))


def _first_meeting(meets: np.ndarray) -> int | None:
    """Index of the first True, or None."""
    hits = np.flatnonzero(meets)
    return int(hits[0]) if hits.size else None


def _is_monotone(values: np.ndarray, increasing: bool) -> bool:
    steps = np.diff(np.asarray(values, dtype=float))
    return bool(np.all(steps >= -MONOTONE_TOLERANCE if increasing else steps <= MONOTONE_TOLERANCE))


@dataclass(frozen=True)
class _Decision:
    """The decision's patient-level parts: the fixed doses, the infusion's duration, the dose
    grid and notes on what is decided."""

    fixed: _Regimen
    duration_day: float
    dose_grid_mg: np.ndarray
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Context:
    """A patient's posterior draws and the decision's fixed parts, computed once."""

    forecast: PatientForecast
    request: DosingRequest
    draws: DrawSet
    map_draw: DrawSet
    decision: _Decision

    @property
    def spec(self) -> ModelSpec:
        return self.forecast.spec

    @property
    def patient(self) -> Patient:
        return self.forecast.patient

    @property
    def weight_kg(self) -> float:
        return float(self.patient.weight_kg)


def last_sample_day(patient: Patient) -> float | None:
    """Day of the patient's last concentration sample (None without samples)."""
    return float(patient.obs_time_day.max()) if patient.observations else None


def check_request(patient: Patient, spec: ModelSpec, request: DosingRequest) -> _Decision:
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
) -> _Decision:
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
    return _Decision(
        fixed=_Regimen.of(fixed),
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


def _context(forecast: PatientForecast, request: DosingRequest) -> _Context:
    return _Context(
        forecast=forecast,
        request=request,
        draws=DrawSet.posterior(forecast),
        map_draw=DrawSet.map_estimate(forecast),
        decision=check_request(forecast.patient, forecast.spec, request),
    )


def _risk_curve(context: _Context, draws: DrawSet, amounts_mg: np.ndarray, time_day: float):
    """(ln ratio, risk), each (draws, amounts), for ``amounts_mg`` infused at ``time_day``."""
    spec = context.spec
    fixed = _window_auc(spec, context.decision.fixed, draws)
    unit = _unit_window_auc(spec, np.array([time_day]), context.decision.duration_day, draws)
    ln_ratio = _ln_ratio(fixed[:, None] + unit * np.asarray(amounts_mg)[None, :], draws)
    return ln_ratio, draws.risk(spec, ln_ratio)


def _meets(risk: np.ndarray, request: DosingRequest) -> tuple[np.ndarray, np.ndarray]:
    """Per column: (criterion met, value of the criterion: mean risk or P(risk ≤ target))."""
    if request.criterion == "mean":
        value = risk.mean(axis=0)
        return value <= request.target_risk, value
    value = (risk <= request.target_risk).mean(axis=0)
    return value >= request.probability, value


# -- recommendation -----------------------------------------------------------------------
@dataclass(frozen=True)
class DoseRecommendation:
    """The recommended dose, its dose-risk curve and the MAP recommendation beside it.

    ``curve`` has one row per whole-vial dose from the minimum to the cap: ``dose_mg``,
    ``dose_mg_kg``, ``risk_mean``, ``risk_q2.5``, ``risk_q97.5``, ``p_high_risk``,
    ``p_meets_target`` (P(risk ≤ target)) and ``map_risk``. ``met_at_minimum``: the minimum
    dose already meets the target (it is the recommendation; no smaller dose is considered).
    """

    patient_id: str
    request: DosingRequest
    weight_kg: float
    feasible: bool
    dose_mg: float
    risk_90d: dict[str, float]
    p_high_risk: float
    p_meets_target: float
    map_feasible: bool
    map_dose_mg: float
    map_risk_90d: float
    curve: pd.DataFrame
    monotone: bool
    notes: tuple[str, ...] = ()
    met_at_minimum: bool = False
    map_met_at_minimum: bool = False

    def to_json(self) -> dict[str, Any]:
        """The entry of the ``optimize`` JSON contract."""
        request = self.request
        out: dict[str, Any] = {
            "id": self.patient_id,
            "target_risk": request.target_risk,
            "criterion": request.criterion,
            "feasible": self.feasible,
            "dose_range_mg": [float(self.curve["dose_mg"].iloc[0]), self.cap_mg],
            "min_mg_kg": request.min_mg_per_kg,
            "max_mg_kg": request.max_mg_per_kg,
            "recommended": {
                "dose_mg": self.dose_mg,
                "dose_mg_kg": self.dose_mg / self.weight_kg,
                "vials": round(self.dose_mg / request.vial_mg),
                "time_day": request.dose_time_day,
                "risk_90d": self.risk_90d,
                "p_high_risk": self.p_high_risk,
                "p_meets_target": self.p_meets_target,
                "met_at_minimum": self.met_at_minimum,
            },
            "map_recommended": {
                "dose_mg": self.map_dose_mg,
                "dose_mg_kg": self.map_dose_mg / self.weight_kg,
                "feasible": self.map_feasible,
                "risk_90d": self.map_risk_90d,
                "met_at_minimum": self.map_met_at_minimum,
            },
            "curve": _records(self.curve),
            "monotone": self.monotone,
            "notes": list(self.notes),
        }
        if request.criterion == "probability":
            out["probability"] = request.probability
        return out

    @property
    def cap_mg(self) -> float:
        """The largest dose considered (the cap in whole vials)."""
        return float(self.curve["dose_mg"].iloc[-1])


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _recommend(context: _Context) -> DoseRecommendation:
    request, spec = context.request, context.spec
    grid = context.decision.dose_grid_mg
    time = request.dose_time_day
    ln_ratio, risk = _risk_curve(context, context.draws, grid, time)
    meets, _ = _meets(risk, request)
    _, map_risk = _risk_curve(context, context.map_draw, grid, time)
    p_meets = (risk <= request.target_risk).mean(axis=0)
    threshold = spec.tte.high_risk_threshold
    curve = pd.DataFrame(
        {
            "dose_mg": grid,
            "dose_mg_kg": grid / context.weight_kg,
            "risk_mean": risk.mean(axis=0),
            "risk_q2.5": np.quantile(risk, 0.025, axis=0),
            "risk_q97.5": np.quantile(risk, 0.975, axis=0),
            "p_high_risk": (ln_ratio < threshold).mean(axis=0),
            "p_meets_target": p_meets,
            "map_risk": map_risk[0],
        }
    )
    monotone = _is_monotone(curve["risk_mean"], increasing=False) and _is_monotone(
        p_meets, increasing=True
    )
    notes = list(context.decision.notes)
    if not monotone:
        notes.append(
            "the risk is not monotone in the dose over the grid (per-draw TTE parameters with "
            "a positive exposure effect?): the smallest dose meeting the criterion is reported"
        )
    index = _first_meeting(meets)
    feasible = index is not None
    if not feasible:
        index = len(grid) - 1
        notes.append(
            f"the target is not met at the cap of {request.max_mg_per_kg:g} mg/kg "
            f"({grid[-1]:g} mg): the risk reached at the cap is reported"
        )
    elif index == 0:
        notes.append(
            f"the target is already met at the minimum dose, {grid[0]:g} mg "
            f"({request.min_mg_per_kg:g} mg/kg rounded up to whole vials); no smaller dose is "
            "considered"
        )
    map_index = _first_meeting(map_risk[0] <= request.target_risk)
    return DoseRecommendation(
        patient_id=context.patient.id,
        request=request,
        weight_kg=context.weight_kg,
        feasible=feasible,
        dose_mg=float(grid[index]),
        risk_90d=summary_statistics(risk[:, index]),
        p_high_risk=float(curve["p_high_risk"][index]),
        p_meets_target=float(p_meets[index]),
        map_feasible=map_index is not None,
        map_dose_mg=float(grid[len(grid) - 1 if map_index is None else map_index]),
        map_risk_90d=float(map_risk[0][len(grid) - 1 if map_index is None else map_index]),
        curve=curve,
        monotone=monotone,
        notes=tuple(notes),
        met_at_minimum=index == 0 and feasible,
        map_met_at_minimum=map_index == 0,
    )


def recommend_dose(
    forecast: PatientForecast, request: DosingRequest | None = None, **options
) -> DoseRecommendation:
    """The smallest whole-vial dose at the decision time meeting the criterion.

    Parameters
    ----------
    forecast
        The patient's forecast (its posterior draws are used as they are).
    request
        A :class:`DosingRequest`; or give its fields as keyword ``options``.

    Returns
    -------
    DoseRecommendation
        Feasible: the smallest dose on the whole-vial grid from the minimum
        (``request.min_mg_per_kg``, rounded up) to the cap meeting the criterion (the next
        smaller vial count does not, unless the minimum itself meets it: ``met_at_minimum``).
        Infeasible: the cap, with its risk. Never a dose below the minimum.
        The MAP recommendation applies the mean criterion to the single MAP estimate (the
        published tool's point forecast).

    Raises
    ------
    DosingError
        Bad request, a dose time before the last sample, or a cap below one vial.
    """
    request = request or DosingRequest(**options)
    return _recommend(_context(forecast, request))


# -- timing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimingSearch:
    """Risk of a given dose infused on each candidate day (``table``), and the days meeting
    the criterion."""

    dose_mg: float
    table: pd.DataFrame
    latest_day: float | None
    earliest_day: float | None
    contiguous: bool
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "dose_mg": self.dose_mg,
            "latest_day_meeting_target": self.latest_day,
            "earliest_day_meeting_target": self.earliest_day,
            "days_meeting_target_contiguous": self.contiguous,
            "days": _records(self.table),
            "notes": list(self.notes),
        }


def default_timing_days(patient: Patient, request: DosingRequest) -> np.ndarray:
    """Days 7 to the decision day (at least 14), whole days not before the last sample."""
    last = last_sample_day(patient) or 0.0
    end = max(14.0, request.dose_time_day)
    days = np.arange(7.0, end + 0.5, 1.0)
    return days[days >= last]


def _timing(context: _Context, dose_mg: float, days) -> TimingSearch:
    request, spec = context.request, context.spec
    days = np.asarray(sorted(set(np.round(np.asarray(days, dtype=float), 6))), dtype=float)
    if days.size == 0:
        raise DosingError("give at least one candidate day for the infusion (--timing-days)")
    last = last_sample_day(context.patient)
    if last is not None and days.min() < last:
        raise DosingError(
            f"patient {context.patient.id}: candidate infusion days must not precede the last "
            f"sample (day {last:g}); got day {days.min():g} (--timing-days)"
        )
    overlaps = np.array(
        [
            bool(
                np.any(
                    (context.decision.fixed.time_day < day + context.decision.duration_day)
                    & (day < context.decision.fixed.time_day + context.decision.fixed.duration_day)
                )
            )
            for day in days
        ]
    )
    draws = context.draws
    fixed = _window_auc(spec, context.decision.fixed, draws)
    unit = _unit_window_auc(spec, days, context.decision.duration_day, draws)
    ln_ratio = _ln_ratio(fixed[:, None] + dose_mg * unit, draws)
    risk = draws.risk(spec, ln_ratio)
    meets, _ = _meets(risk, request)
    meets = meets & ~overlaps
    table = pd.DataFrame(
        {
            "time_day": days,
            "risk_mean": risk.mean(axis=0),
            "risk_q2.5": np.quantile(risk, 0.025, axis=0),
            "risk_q97.5": np.quantile(risk, 0.975, axis=0),
            "p_high_risk": (ln_ratio < spec.tte.high_risk_threshold).mean(axis=0),
            "p_meets_target": (risk <= request.target_risk).mean(axis=0),
            "overlaps_infusion": overlaps,
            "meets_target": meets,
        }
    )
    hits = np.flatnonzero(meets)
    notes = []
    if overlaps.any():
        notes.append(
            "days overlapping another infusion are excluded: "
            + ", ".join(f"{d:g}" for d in days[overlaps])
        )
    contiguous = bool(hits.size == 0 or np.all(meets[hits[0] : hits[-1] + 1]))
    if not contiguous:
        notes.append("the days meeting the target are not contiguous; see the table")
    return TimingSearch(
        dose_mg=float(dose_mg),
        table=table,
        latest_day=float(days[hits[-1]]) if hits.size else None,
        earliest_day=float(days[hits[0]]) if hits.size else None,
        contiguous=contiguous,
        notes=tuple(notes),
    )


def infusion_timing(
    forecast: PatientForecast,
    dose_mg: float,
    days=None,
    request: DosingRequest | None = None,
    **options,
) -> TimingSearch:
    """Risk of ``dose_mg`` infused on each candidate day instead of at the decision time.

    The infusion at ``request.dose_time_day`` (or a new one) moves over ``days`` (default
    :func:`default_timing_days`); the other doses stay. Under this model AUC_w2-4 is largest
    for an infusion at day 14 exactly (an earlier one has decayed by the window, a later one
    misses part of it), so the days meeting the target usually form a range ending at 14:
    its earliest day tells how early the infusion may be given.
    """
    request = request or DosingRequest(**options)
    _finite_in(dose_mg, 0.0, 3000.0, "timing dose", "mg", "--timing-dose-mg")
    context = _context(forecast, request)
    if days is None:
        days = default_timing_days(forecast.patient, request)
    return _timing(context, float(dose_mg), days)


# -- regimens -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RegimenTemplate:
    """A named induction schedule: infusion days and mg/kg (rounded up to whole vials)."""

    name: str
    description: str
    days: tuple[float, ...]
    mg_per_kg: float


#: Schedules a clinician compares (standard and intensified 0-2-6 weeks, accelerated 0-1-3
#: weeks as in PREDICT-UC-style protocols, and accelerated day 0-7-14).
REGIMEN_TEMPLATES: tuple[RegimenTemplate, ...] = (
    RegimenTemplate("standard_5", "5 mg/kg at weeks 0, 2, 6", (0.0, 14.0, 42.0), 5.0),
    RegimenTemplate("intensified_10", "10 mg/kg at weeks 0, 2, 6", (0.0, 14.0, 42.0), 10.0),
    RegimenTemplate("accelerated_5", "5 mg/kg at weeks 0, 1, 3", (0.0, 7.0, 21.0), 5.0),
    RegimenTemplate("accelerated_10", "10 mg/kg at weeks 0, 1, 3", (0.0, 7.0, 21.0), 10.0),
    RegimenTemplate("accelerated_d0_7_14", "10 mg/kg at days 0, 7, 14", (0.0, 7.0, 14.0), 10.0),
)


def _template_doses(context: _Context, template: RegimenTemplate) -> list[Dose]:
    """The patient's given doses (up to the last sample, and the first infusion) plus the
    template's later doses in whole vials."""
    patient, request = context.patient, context.request
    given_until = max(last_sample_day(patient) or 0.0, 0.0)
    given = [d for d in patient.doses if d.time_day <= given_until]
    amount = math.ceil(template.mg_per_kg * patient.weight_kg / request.vial_mg - 1e-9)
    planned = [
        Dose(day, amount * request.vial_mg, context.spec.pk.default_infusion_duration_day)
        for day in template.days
        if day > given_until
    ]
    return given + planned


@dataclass(frozen=True)
class RegimenComparison:
    """Risk summaries of candidate regimens (``table``: one row per regimen)."""

    table: pd.DataFrame
    doses: dict[str, list[dict[str, float]]]

    def to_json(self) -> list[dict[str, Any]]:
        rows = _records(self.table)
        for row in rows:
            row["doses"] = self.doses[row["name"]]
        return rows


def _regimens(context: _Context, recommendation: DoseRecommendation) -> RegimenComparison:
    spec, request = context.spec, context.request
    recommended = [
        *context.decision.fixed.doses,
        Dose(request.dose_time_day, recommendation.dose_mg, context.decision.duration_day),
    ]
    candidates = [
        ("as_given", "the patient's regimen as entered", list(context.patient.doses)),
        *((t.name, t.description, _template_doses(context, t)) for t in REGIMEN_TEMPLATES),
        (
            "recommended",
            f"as given, with {recommendation.dose_mg:g} mg at day {request.dose_time_day:g}",
            sorted((d for d in recommended if d.amount_mg > 0), key=lambda d: d.time_day),
        ),
    ]
    rows, doses = [], {}
    for name, description, regimen_doses in candidates:
        ln_ratio = _ln_ratio(
            _window_auc(spec, _Regimen.of(regimen_doses), context.draws), context.draws
        )
        risk = context.draws.risk(spec, ln_ratio)
        meets, _ = _meets(risk[:, None], request)
        stats = summary_statistics(risk)
        rows.append(
            {
                "name": name,
                "description": description,
                "risk_mean": stats["mean"],
                "risk_q2.5": stats["q2.5"],
                "risk_q50": stats["q50"],
                "risk_q97.5": stats["q97.5"],
                "p_high_risk": float((ln_ratio < spec.tte.high_risk_threshold).mean()),
                "p_meets_target": float((risk <= request.target_risk).mean()),
                "meets_target": bool(meets[0]),
                "total_mg": float(sum(d.amount_mg for d in regimen_doses)),
            }
        )
        doses[name] = [{"day": d.time_day, "mg": d.amount_mg} for d in regimen_doses]
    return RegimenComparison(pd.DataFrame(rows), doses)


def compare_regimens(
    forecast: PatientForecast, request: DosingRequest | None = None, **options
) -> RegimenComparison:
    """Risk of the patient's own regimen, the :data:`REGIMEN_TEMPLATES` (doses up to the last
    sample kept as given) and the recommended one, from the same posterior draws."""
    request = request or DosingRequest(**options)
    context = _context(forecast, request)
    return _regimens(context, _recommend(context))


# -- trough targets (maintenance) -----------------------------------------------------------
TroughStatus = Literal["reachable", "met_at_minimum", "not_reachable"]


@dataclass(frozen=True)
class TroughPlan:
    """Trough-target dosing (maintenance): the answer, then the dose–trough and
    interval–trough tables behind it (P(trough ≥ target) ≥ probability throughout).

    ``status``: ``"reachable"`` (``dose_mg`` is the smallest whole-vial dose from the minimum
    to the cap meeting the target every ``interval_day``), ``"met_at_minimum"`` (the minimum
    dose already meets it: that dose is the answer) or ``"not_reachable"`` (the cap does not:
    ``dose_mg`` is the cap, with the trough it achieves). ``longest_interval_day`` is the
    longest candidate interval meeting the target with ``interval_dose_mg`` (that dose, the
    cap when not reachable, or the dose asked for). :attr:`answer` says all of it in words.
    """

    target_mg_l: float
    probability: float
    interval_day: float
    start_day: float
    maintenance_doses: int
    weight_kg: float
    status: TroughStatus
    dose_mg: float
    trough_mg_l: dict[str, float]
    p_trough_above_target: float
    dose_table: pd.DataFrame
    interval_dose_mg: float
    longest_interval_day: float | None
    interval_table: pd.DataFrame
    notes: tuple[str, ...] = ()

    @property
    def dose_feasible(self) -> bool:
        """A dose from the minimum to the cap meets the target at ``interval_day``."""
        return self.status != "not_reachable"

    @property
    def answer(self) -> str:
        """The result in two sentences (no command-line options: clinicians read it)."""
        trough = self.trough_mg_l
        dose = f"{self.dose_mg:g} mg ({self.dose_mg / self.weight_kg:.1f} mg/kg)"
        schedule = f"every {self.interval_day:g} days from day {self.start_day:g}"
        low, median, high = (concentration_text(trough[q]) for q in ("q2.5", "q50", "q97.5"))
        achieved = (
            f"a median trough of {median} mg/L (95 % CrI {low}–{high}), P(trough ≥ "
            f"{self.target_mg_l:g} mg/L) = {self.p_trough_above_target:.2f}"
        )
        goal = f"P(trough ≥ {self.target_mg_l:g} mg/L) ≥ {self.probability:.2f}"
        if self.status == "reachable":
            head = f"{dose} {schedule} is the smallest whole-vial dose with {goal}: {achieved}."
        elif self.status == "met_at_minimum":
            head = (
                f"The target is already met at the minimum dose: {dose} {schedule} gives "
                f"{achieved}."
            )
        else:
            head = f"Not reachable at the cap: {dose} {schedule} gives {achieved}, short of {goal}."
        return f"{head} {self._interval_sentence()}"

    def _interval_sentence(self) -> str:
        intervals = self.interval_table["interval_day"]
        dose = f"{self.interval_dose_mg:g} mg"
        if self.status == "not_reachable" and self.interval_dose_mg == self.dose_mg:
            dose = f"the cap ({dose})"
        longest = self.longest_interval_day
        if longest is None:
            return (
                f"With {dose} no interval from {intervals.min():g} to {intervals.max():g} days "
                "reaches the target."
            )
        if longest == intervals.max():
            return (
                f"With {dose} the interval can be {longest:g} days or longer (the longest "
                "examined) and still reach the target."
            )
        return f"With {dose} the longest interval reaching the target is {longest:g} days."

    def to_json(self) -> dict[str, Any]:
        return {
            "target_mg_l": self.target_mg_l,
            "probability": self.probability,
            "maintenance_doses": self.maintenance_doses,
            "start_day": self.start_day,
            "status": self.status,
            "answer": self.answer,
            "dose_range_mg": [
                float(self.dose_table["dose_mg"].iloc[0]),
                float(self.dose_table["dose_mg"].iloc[-1]),
            ],
            "for_interval": {
                "interval_day": self.interval_day,
                "feasible": self.dose_feasible,
                "dose_mg": self.dose_mg,
                "dose_mg_kg": self.dose_mg / self.weight_kg,
                "trough_mg_l": self.trough_mg_l,
                "p_trough_above_target": self.p_trough_above_target,
                "curve": _records(self.dose_table),
            },
            "for_dose": {
                "dose_mg": self.interval_dose_mg,
                "longest_interval_day": self.longest_interval_day,
                "intervals": _records(self.interval_table),
            },
            "notes": list(self.notes),
        }


def concentration_text(value: float) -> str:
    """A concentration for people: three significant digits, ``<0.01`` below 0.01 mg/L."""
    return "<0.01" if value < 0.01 else f"{value:.3g}"


def _unit_trough(
    context: _Context, interval_day: np.ndarray, maintenance_doses: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fixed, per mg) trough concentration (draws, intervals): ``maintenance_doses``
    infusions every interval from the decision day, trough just before the next one."""
    start = context.request.dose_time_day
    intervals = np.asarray(interval_day, dtype=float)
    trough_day = start + maintenance_doses * intervals  # (k,)
    before = context.decision.fixed.time_day < start
    draws = context.draws
    fixed = concentration(
        trough_day,
        context.decision.fixed.time_day[before],
        context.decision.fixed.amount_mg[before],
        context.decision.fixed.duration_day[before],
        draws.clearance,
        draws.volume,
        **context.decision.fixed.kernel_options(before),
    )
    times = start + np.arange(maintenance_doses)[None, :] * intervals[:, None]  # (k, m)
    per_mg = concentration(
        trough_day[:, None],  # (k, 1): one trough time per interval
        times,
        np.ones_like(times),
        np.full_like(times, context.decision.duration_day),
        draws.clearance[:, None],
        draws.volume[:, None],
    )[..., 0]
    return fixed, per_mg


def _check_trough_options(target_mg_l, interval_day, maintenance_doses) -> None:
    _finite_in(target_mg_l, 1e-3, 500.0, "trough target", "mg/L", "--trough-target")
    _finite_in(interval_day, 1.0, 365.0, "maintenance interval", "day", "--interval-days")
    if (
        isinstance(maintenance_doses, bool)
        or not isinstance(maintenance_doses, int)
        or not 1 <= maintenance_doses <= 50
    ):
        raise DosingError(
            f"maintenance doses must be a whole number from 1 to 50, got {maintenance_doses!r} "
            "(--maintenance-doses)"
        )


def _trough_quantiles(troughs: np.ndarray) -> dict[str, np.ndarray]:
    """Columns ``trough_q2.5``, ``trough_q50``, ``trough_q97.5`` of troughs (draws, k)."""
    return {
        f"trough_q{label}": np.quantile(troughs, q, axis=0)
        for label, q in (("2.5", 0.025), ("50", 0.5), ("97.5", 0.975))
    }


def _replaced_note(context: _Context) -> list[str]:
    start = context.request.dose_time_day
    replaced = [d for d in context.patient.doses if d.time_day >= start - 1e-9]
    if not replaced:
        return []
    listed = ", ".join(f"{d.amount_mg:g} mg at day {d.time_day:g}" for d in replaced)
    return [
        f"the maintenance schedule from day {start:g} replaces the planned infusions ({listed})"
    ]


def trough_targets(
    forecast: PatientForecast,
    target_mg_l: float,
    *,
    interval_day: float = 56.0,
    dose_mg: float | None = None,
    intervals_day=None,
    maintenance_doses: int = 1,
    request: DosingRequest | None = None,
    **options,
) -> TroughPlan:
    """Trough-target dosing for maintenance (TDM-guided interval shortening).

    ``maintenance_doses`` infusions are given every interval from the decision day
    (``request.dose_time_day``; earlier doses as given, planned ones from that day on replaced
    by this schedule); the trough is the concentration just before the next infusion (the
    model's concentration, without assay error). For ``interval_day`` the smallest whole-vial
    dose from the minimum (``request.min_mg_per_kg``) to the cap with P(trough ≥
    ``target_mg_l``) ≥ ``request.probability`` is found (the minimum when it already meets
    the target; the cap, reported not reachable, when nothing does); for ``dose_mg`` (default:
    that dose, or the cap) the longest interval in ``intervals_day`` (default 7-84 days)
    meeting it. Both searches check monotonicity rather than assume it.

    Examples
    --------
    >>> from asuc_bayes import example_path, load_model, read_patients
    >>> from asuc_bayes.inference.forecast import forecaster_for
    >>> patient = read_patients(example_path()).patients[0]
    >>> forecast = forecaster_for(load_model()).forecast(patient, random_seed=1)
    >>> plan = trough_targets(forecast, 3.0, interval_day=56.0, dose_time_day=42.0)
    >>> plan.status in ("reachable", "met_at_minimum", "not_reachable"), plan.dose_mg > 0
    (True, True)
    """
    request = request or DosingRequest(**options)
    _check_trough_options(target_mg_l, interval_day, maintenance_doses)
    if dose_mg is not None:
        _finite_in(dose_mg, 1.0, 3000.0, "trough dose", "mg", "--trough-dose-mg")
    context = _context(forecast, request)
    notes = _replaced_note(context)
    grid = context.decision.dose_grid_mg
    fixed, per_mg = _unit_trough(context, np.array([interval_day]), maintenance_doses)
    troughs = fixed[:, :1] + per_mg[:, :1] * grid[None, :]
    p_dose = (troughs >= target_mg_l).mean(axis=0)
    meets_dose = p_dose >= request.probability
    dose_table = pd.DataFrame(
        {
            "dose_mg": grid,
            "dose_mg_kg": grid / context.weight_kg,
            **_trough_quantiles(troughs),
            "p_trough_above_target": p_dose,
            "meets_target": meets_dose,
        }
    )
    index = _first_meeting(meets_dose)
    status: TroughStatus = (
        "not_reachable" if index is None else "met_at_minimum" if index == 0 else "reachable"
    )
    chosen_index = len(grid) - 1 if index is None else index
    chosen = float(grid[chosen_index])
    if not _is_monotone(p_dose, increasing=True):
        notes.append("P(trough ≥ target) is not monotone in the dose: check the table")
    interval_dose = chosen if dose_mg is None else float(dose_mg)
    if intervals_day is None:
        intervals_day = np.arange(7.0, 85.0, 1.0)
    intervals = np.asarray(sorted(set(np.asarray(intervals_day, dtype=float))), dtype=float)
    if intervals.size == 0 or intervals.min() <= 0:
        raise DosingError("candidate intervals must be positive numbers of days")
    fixed, per_mg = _unit_trough(context, intervals, maintenance_doses)
    troughs_interval = fixed + per_mg * interval_dose
    p_interval = (troughs_interval >= target_mg_l).mean(axis=0)
    meets = p_interval >= request.probability
    interval_table = pd.DataFrame(
        {
            "interval_day": intervals,
            **_trough_quantiles(troughs_interval),
            "p_trough_above_target": p_interval,
            "meets_target": meets,
        }
    )
    if not _is_monotone(p_interval, increasing=False):
        notes.append("P(trough ≥ target) is not monotone in the interval: check the table")
    hits = np.flatnonzero(meets)
    row = dose_table.iloc[chosen_index]
    return TroughPlan(
        target_mg_l=float(target_mg_l),
        probability=request.probability,
        interval_day=float(interval_day),
        start_day=float(request.dose_time_day),
        maintenance_doses=maintenance_doses,
        weight_kg=context.weight_kg,
        status=status,
        dose_mg=chosen,
        trough_mg_l={
            "q2.5": float(row["trough_q2.5"]),
            "q50": float(row["trough_q50"]),
            "q97.5": float(row["trough_q97.5"]),
        },
        p_trough_above_target=float(row["p_trough_above_target"]),
        dose_table=dose_table,
        interval_dose_mg=interval_dose,
        longest_interval_day=float(intervals[hits[-1]]) if hits.size else None,
        interval_table=interval_table,
        notes=tuple(notes),
    )


# -- value of one more sample ------------------------------------------------------------
@dataclass(frozen=True)
class SamplingAnalysis:
    """Pre-posterior analysis of one more sample (``table``: one row per candidate day)."""

    table: pd.DataFrame
    recommended_day: float | None
    current_sd_ln_auc_cl: float
    n_simulations: int
    notes: tuple[str, ...] = ()
    turnaround_day: float = DEFAULT_TURNAROUND_DAY
    latest_useful_day: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "recommended_day": self.recommended_day,
            "turnaround_days": self.turnaround_day,
            "latest_useful_day": self.latest_useful_day,
            "current_sd_ln_auc_cl": self.current_sd_ln_auc_cl,
            "n_simulations": self.n_simulations,
            "days": _records(self.table),
            "notes": list(self.notes),
        }


def default_sampling_days(
    patient: Patient,
    request: DosingRequest,
    n: int = 8,
    turnaround_day: float = DEFAULT_TURNAROUND_DAY,
) -> np.ndarray:
    """``n`` days between the last sample (or day 1) and the latest useful sampling day (the
    decision day less the assay turnaround, and at least 0.1 day before the decision)."""
    start = max((last_sample_day(patient) or 0.0) + 1.0, 1.0)
    end = request.dose_time_day - max(turnaround_day, 0.1)
    if end <= start:
        return np.array([])
    return np.unique(np.round(np.linspace(start, end, n), 1))


def _weights(log_weights: np.ndarray) -> np.ndarray:
    shifted = log_weights - log_weights.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def _preposterior_day(
    context: _Context,
    day: float,
    n_simulations: int,
    rng: np.random.Generator,
    lloq_mg_l: float,
    uloq_mg_l: float,
    ln_ratio: np.ndarray,
    decision: tuple[np.ndarray, int | None],
) -> dict[str, Any]:
    """Simulate a sample at ``day`` from the posterior predictive and reweight the draws."""
    spec, draws, request = context.spec, context.draws, context.request
    patient = context.patient
    prediction = concentration(
        np.array([day]),
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        draws.clearance,
        draws.volume,
        dose_end_day=patient.dose_end_day,
        dose_ss_interval_day=patient.dose_ss_interval_day,
    )[:, 0]
    truth = rng.integers(draws.size, size=n_simulations)
    values = add_residual_error(
        prediction[truth], draws.residual_sd[truth], spec.pk.residual_form, rng
    )
    censoring = np.where(
        values < lloq_mg_l, BELOW_LLOQ, np.where(values > uloq_mg_l, ABOVE_ULOQ, MEASURED)
    )
    recorded = np.where(
        censoring == BELOW_LLOQ, lloq_mg_l, np.where(censoring == ABOVE_ULOQ, uloq_mg_l, values)
    )
    log_likelihood = observation_log_likelihood(
        recorded[:, None],
        censoring[:, None],
        prediction[None, :],
        draws.residual_sd[None, :],
        spec.pk.residual_form,
    )  # (simulations, draws)
    weights = _weights(log_likelihood)
    mean = weights @ ln_ratio
    sd = np.sqrt(np.maximum(weights @ ln_ratio**2 - mean**2, 0.0))
    threshold = spec.tte.high_risk_threshold
    p_high_now = float(np.mean(ln_ratio < threshold))
    p_high = weights @ (ln_ratio < threshold).astype(float)
    class_change = is_high_risk(p_high) != is_high_risk(p_high_now)
    risk, current_index = decision
    new_meets = _meets_weighted(weights, risk, request)
    # An infeasible target recommends the cap, the last grid dose.
    last = context.decision.dose_grid_mg.size - 1
    first = np.where(new_meets.any(axis=1), new_meets.argmax(axis=1), last)
    current = last if current_index is None else current_index
    grid = context.decision.dose_grid_mg
    dose_change_mg = np.abs(grid[first] - grid[current])
    ess = 1.0 / np.sum(weights**2, axis=1)
    return {
        "time_day": float(day),
        "expected_sd_ln_auc_cl": float(sd.mean()),
        "p_class_change": float(class_change.mean()),
        "p_dose_change": float(np.mean(first != current)),
        "expected_abs_dose_change_mg": float(dose_change_mg.mean()),
        "p_below_lloq": float(np.mean(censoring == BELOW_LLOQ)),
        "predicted_median_mg_l": float(np.median(values)),
        "particle_ess_median": float(np.median(ess)),
    }


def _meets_weighted(weights: np.ndarray, risk: np.ndarray, request: DosingRequest) -> np.ndarray:
    """Criterion met per (simulation, dose) under reweighted draws; ``risk`` (draws, doses)."""
    if request.criterion == "mean":
        return weights @ risk <= request.target_risk
    return weights @ (risk <= request.target_risk).astype(float) >= request.probability


def _check_sampling_options(n_simulations, lloq_mg_l, uloq_mg_l) -> None:
    if (
        isinstance(n_simulations, bool)
        or not isinstance(n_simulations, int)
        or not 10 <= n_simulations <= 100_000
    ):
        raise DosingError(
            f"simulations per day must be a whole number from 10 to 100000, got "
            f"{n_simulations!r} (--n-simulations)"
        )
    _finite_in(lloq_mg_l, 0.0, 100.0, "assay LLOQ", "mg/L", "--lloq")
    if not isinstance(uloq_mg_l, int | float) or math.isnan(uloq_mg_l) or uloq_mg_l <= lloq_mg_l:
        raise DosingError(
            f"the assay ULOQ must exceed the LLOQ ({lloq_mg_l:g} mg/L), got {uloq_mg_l!r} (--uloq)"
        )


def sampling_value(
    forecast: PatientForecast,
    days=None,
    *,
    n_simulations: int = 400,
    random_seed: int = 0,
    lloq_mg_l: float = 0.3,
    uloq_mg_l: float = math.inf,
    request: DosingRequest | None = None,
    turnaround_day: float = DEFAULT_TURNAROUND_DAY,
    **options,
) -> SamplingAnalysis:
    """Expected effect of one more concentration sample on each candidate day.

    For each day, ``n_simulations`` measurements are simulated from the posterior predictive
    (a draw, its concentration under the regimen as given, the model's residual error, M3
    censoring at the assay limits); the posterior draws are reweighted by each measurement's
    likelihood (exact Bayes updating of the draws as particles) and the table reports the
    expected posterior SD of ln(AUC_w2-4/CL), the probability that the risk class
    (P(high risk) ≥ 0.5) would change, the probability that the recommended dose would
    change and the expected size of that change (on the vial grid a recommendation sits just
    past the criterion's boundary, so any new information moves it by a vial with high
    probability: the expected change in mg says more), and the median particle ESS
    (reweighting quality). A sample can inform the decision only if its result, known
    ``turnaround_day`` after it is drawn (assay turnaround), arrives by the decision day (the
    dose at ``request.dose_time_day``): later days stay in the table (``result_in_time``
    false) but are never recommended. The recommended day maximises the expected reduction in
    SD among the days in time (earliest on ties); ``latest_useful_day`` is the decision day
    less the turnaround.
    """
    request = request or DosingRequest(**options)
    _check_sampling_options(n_simulations, lloq_mg_l, uloq_mg_l)
    _check_turnaround(turnaround_day)
    context = _context(forecast, request)
    patient = forecast.patient
    if days is None:
        days = default_sampling_days(patient, request, turnaround_day=turnaround_day)
    days = np.asarray(sorted(set(np.asarray(days, dtype=float))), dtype=float)
    last = last_sample_day(patient) or 0.0
    notes = []
    latest_useful = request.dose_time_day - turnaround_day
    if days.size == 0:
        notes.append(
            f"no candidate sampling day between the last sample (day {last:g}) and the latest "
            f"useful sampling day (day {latest_useful:g}: the dose at day "
            f"{request.dose_time_day:g} less a {turnaround_day:g}-day assay turnaround)"
        )
    elif days.min() <= last:
        raise DosingError(
            f"patient {patient.id}: candidate sampling days must be after the last sample (day "
            f"{last:g}); got day {days.min():g} (--sample-days)"
        )
    in_time = days <= latest_useful + 1e-9
    if days.size and not in_time.all():
        notes.append(
            f"with a {turnaround_day:g}-day assay turnaround the result of a sample after day "
            f"{latest_useful:g} arrives after the dose at day {request.dose_time_day:g} it "
            "would inform; such days ("
            + ", ".join(f"{d:g}" for d in days[~in_time])
            + ") are not recommended"
        )
    draws = context.draws
    ln_ratio_now = _ln_ratio(_window_auc(context.spec, _Regimen.of(patient.doses), draws), draws)
    _, risk = _risk_curve(context, draws, context.decision.dose_grid_mg, request.dose_time_day)
    uniform = np.full((1, draws.size), 1.0 / draws.size)
    current_index = _first_meeting(_meets_weighted(uniform, risk, request)[0])
    rng = np.random.default_rng([random_seed, 4])
    rows = [
        _preposterior_day(
            context,
            day,
            n_simulations,
            rng,
            lloq_mg_l,
            uloq_mg_l,
            ln_ratio_now,
            (risk, current_index),
        )
        for day in days
    ]
    current_sd = float(np.std(ln_ratio_now))
    table = pd.DataFrame(
        rows,
        columns=[
            "time_day",
            "expected_sd_ln_auc_cl",
            "p_class_change",
            "p_dose_change",
            "expected_abs_dose_change_mg",
            "p_below_lloq",
            "predicted_median_mg_l",
            "particle_ess_median",
        ],
    )
    table["result_in_time"] = in_time
    recommended = None
    if rows:
        table["expected_sd_reduction"] = 1.0 - table["expected_sd_ln_auc_cl"] / current_sd
    if in_time.any():
        reduction = np.where(in_time, table["expected_sd_reduction"], -np.inf)
        recommended = float(table["time_day"][int(np.argmax(reduction))])
        if table["particle_ess_median"].min() < MIN_PARTICLE_ESS:
            notes.append(
                "some simulated samples leave few effective posterior draws (median ESS "
                f"< {MIN_PARTICLE_ESS:g}): take more --draws for a smoother analysis"
            )
    return SamplingAnalysis(
        table=table,
        recommended_day=recommended,
        current_sd_ln_auc_cl=current_sd,
        n_simulations=n_simulations,
        notes=tuple(notes),
        turnaround_day=float(turnaround_day),
        latest_useful_day=float(latest_useful),
    )


def _check_turnaround(turnaround_day) -> None:
    _finite_in(turnaround_day, 0.0, 30.0, "assay turnaround", "day", "--turnaround-days")


# -- everything for one patient -----------------------------------------------------------
@dataclass(frozen=True)
class DosingPlan:
    """One patient's dosing answer. Risk mode (the default): the recommendation, timing,
    regimens and optionally the value of one more sample. Trough mode (a trough target given):
    the trough plan alone, since a risk recommendation answers another question."""

    forecast: PatientForecast
    request: DosingRequest
    recommendation: DoseRecommendation | None = None
    timing: TimingSearch | None = None
    regimens: RegimenComparison | None = None
    trough: TroughPlan | None = None
    sampling: SamplingAnalysis | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def mode(self) -> Literal["risk", "trough"]:
        return "trough" if self.trough is not None else "risk"

    def to_json(self) -> dict[str, Any]:
        """The patient's entry of the ``optimize`` JSON output."""
        if self.trough is not None:
            request = self.request
            return {
                "id": self.forecast.patient.id,
                "mode": "trough",
                "status": self.forecast.status,
                "dose_time_day": request.dose_time_day,
                "vial_mg": request.vial_mg,
                "min_mg_kg": request.min_mg_per_kg,
                "max_mg_kg": request.max_mg_per_kg,
                "trough": self.trough.to_json(),
                "diagnostics": self.forecast.diagnostics,
                "notes": [*self.trough.notes, *self.notes],
            }
        out = {
            **self.recommendation.to_json(),
            "mode": "risk",
            "status": self.forecast.status,
            "timing": self.timing.to_json() if self.timing else None,
            "regimens": self.regimens.to_json(),
            "diagnostics": self.forecast.diagnostics,
        }
        out["notes"] = [*out["notes"], *self.notes]
        if self.sampling is not None:
            out["next_sample"] = self.sampling.to_json()
        return out

    def to_tree(self) -> xr.DataTree:
        """The plan as DataTree groups (``dosing/curve``, ``dosing/timing``, ...), each a
        table with a named dimension; scalar results in the ``dosing`` attrs."""
        request = self.request
        groups = {}
        attrs: dict[str, Any] = {
            "patient_id": self.forecast.patient.id,
            "mode": self.mode,
            "probability": request.probability,
            "dose_time_day": request.dose_time_day,
            "vial_mg": request.vial_mg,
            "min_mg_per_kg": request.min_mg_per_kg,
            "max_mg_per_kg": request.max_mg_per_kg,
        }
        if self.trough is not None:
            trough = self.trough
            groups["trough_dose"] = (trough.dose_table, "candidate_dose")
            groups["trough_interval"] = (trough.interval_table, "candidate_interval")
            attrs |= {
                "trough_target_mg_l": trough.target_mg_l,
                "trough_status": trough.status,
                "trough_dose_mg": trough.dose_mg,
                "trough_interval_day": trough.interval_day,
            }
            if trough.longest_interval_day is not None:
                attrs["longest_interval_day"] = trough.longest_interval_day
        else:
            rec = self.recommendation
            groups["curve"] = (rec.curve, "candidate_dose")
            groups["regimens"] = (self.regimens.table, "regimen")
            if self.timing is not None:
                groups["timing"] = (self.timing.table, "candidate_day")
            attrs |= {
                "target_risk": request.target_risk,
                "criterion": request.criterion,
                "feasible": int(rec.feasible),
                "recommended_dose_mg": rec.dose_mg,
                "map_recommended_dose_mg": rec.map_dose_mg,
                "monotone": int(rec.monotone),
            }
        if self.sampling is not None:
            groups["sampling"] = (self.sampling.table, "candidate_sample_day")
        nodes = {"dosing": xr.Dataset(attrs=attrs)}
        for name, (frame, dim) in groups.items():
            dataset = xr.Dataset(
                {column: ((dim,), _netcdf_values(frame[column])) for column in frame.columns}
            )
            nodes[f"dosing/{name}"] = dataset
        return xr.DataTree.from_dict(nodes)


def _netcdf_values(series: pd.Series) -> np.ndarray:
    values = series.to_numpy()
    if values.dtype == bool:
        return values.astype(np.int8)
    if values.dtype == object:
        return values.astype(str)
    return values


@dataclass(frozen=True)
class PlanOptions:
    """What :func:`plan_dosing` computes beyond the recommendation, validated once.

    ``timing_dose_mg`` (default: the recommended dose) and ``timing_days`` (default
    :func:`default_timing_days`) drive the timing search; ``next_sample`` or ``sample_days``
    the pre-posterior analysis (:func:`sampling_value`, with the assay ``turnaround_day``).
    ``trough_target_mg_l`` switches to the trough mode (:func:`trough_targets`), which answers
    the trough question alone: the timing and sampling options belong to the risk mode and
    are rejected with it.
    """

    timing_dose_mg: float | None = None
    timing_days: tuple[float, ...] | None = None
    trough_target_mg_l: float | None = None
    trough_interval_day: float = 56.0
    trough_dose_mg: float | None = None
    maintenance_doses: int = 1
    sample_days: tuple[float, ...] | None = None
    next_sample: bool = False
    n_simulations: int = 400
    lloq_mg_l: float = 0.3
    uloq_mg_l: float = math.inf
    turnaround_day: float = DEFAULT_TURNAROUND_DAY

    def __post_init__(self):
        if self.timing_dose_mg is not None:
            _finite_in(self.timing_dose_mg, 1.0, 3000.0, "timing dose", "mg", "--timing-dose-mg")
        if self.timing_days is not None and len(self.timing_days) == 0:
            raise DosingError("give at least one candidate infusion day (--timing-days)")
        if self.trough_target_mg_l is not None:
            _check_trough_options(
                self.trough_target_mg_l, self.trough_interval_day, self.maintenance_doses
            )
            risk_only = [
                option
                for option, given in (
                    ("--timing-days", self.timing_days is not None),
                    ("--timing-dose-mg", self.timing_dose_mg is not None),
                    ("--next-sample", self.next_sample),
                    ("--sample-days", self.sample_days is not None),
                )
                if given
            ]
            if risk_only:
                raise DosingError(
                    f"{', '.join(risk_only)} belong(s) to the risk mode and cannot be combined "
                    "with --trough-target (the trough mode answers the trough question alone): "
                    "run them separately"
                )
        if self.trough_dose_mg is not None:
            _finite_in(self.trough_dose_mg, 1.0, 3000.0, "trough dose", "mg", "--trough-dose-mg")
        _check_sampling_options(self.n_simulations, self.lloq_mg_l, self.uloq_mg_l)
        _check_turnaround(self.turnaround_day)


def plan_dosing(
    forecast: PatientForecast,
    request: DosingRequest | None = None,
    options: PlanOptions | None = None,
    *,
    random_seed: int = 0,
) -> DosingPlan:
    """One patient's dosing answer from its forecast.

    Risk mode: the recommendation, the timing search, the regimen table and (optionally) the
    value of one more sample. The timing search uses ``options.timing_dose_mg`` or, by
    default, the recommended dose; it is skipped (with a note) when no candidate day is left
    after the last sample. Trough mode (``options.trough_target_mg_l``): the trough plan
    (:func:`trough_targets`) alone.
    """
    request = request or DosingRequest()
    options = options or PlanOptions()
    if options.trough_target_mg_l is not None:
        trough = trough_targets(
            forecast,
            options.trough_target_mg_l,
            interval_day=options.trough_interval_day,
            dose_mg=options.trough_dose_mg,
            maintenance_doses=options.maintenance_doses,
            request=request,
        )
        return DosingPlan(forecast=forecast, request=request, trough=trough)
    context = _context(forecast, request)
    recommendation = _recommend(context)
    notes = []
    days = options.timing_days
    if days is None:
        days = default_timing_days(forecast.patient, request)
    timing = None
    if len(days):
        dose = options.timing_dose_mg
        timing = _timing(context, recommendation.dose_mg if dose is None else float(dose), days)
    else:
        notes.append("timing search skipped: no candidate day after the last sample")
    regimens = _regimens(context, recommendation)
    sampling = None
    if options.next_sample or options.sample_days is not None:
        sampling = sampling_value(
            forecast,
            options.sample_days,
            n_simulations=options.n_simulations,
            random_seed=random_seed,
            lloq_mg_l=options.lloq_mg_l,
            uloq_mg_l=options.uloq_mg_l,
            request=request,
            turnaround_day=options.turnaround_day,
        )
    return DosingPlan(
        forecast=forecast,
        request=request,
        recommendation=recommendation,
        timing=timing,
        regimens=regimens,
        sampling=sampling,
        notes=tuple(notes),
    )


def with_dose(patient: Patient, time_day: float, amount_mg: float, duration_day: float) -> Patient:
    """``patient`` with the dose at ``time_day`` replaced (or added); 0 mg removes it.

    Used to check recommendations independently, through :func:`forecast.derived_quantities`
    on the modified regimen.
    """
    others = tuple(d for d in patient.doses if abs(d.time_day - time_day) >= 1e-9)
    added = (Dose(float(time_day), float(amount_mg), float(duration_day)),) if amount_mg > 0 else ()
    return replace(patient, doses=tuple(sorted(others + added, key=lambda d: d.time_day)))
