"""Trough-target dosing for maintenance (second seed paper): the answer first (the smallest
whole-vial dose giving P(trough ≥ target) ≥ probability, the minimum when it already does,
or "not reachable at the cap"), then the longest interval for that dose, with the
dose–trough and interval–trough tables.

:func:`trough_plan` builds the plan from any model's troughs (a function of the candidate
intervals giving the troughs per draw): :func:`trough_targets` (the default model) and
:func:`asuc_bayes.decisions.library_dosing.library_trough_targets` (a library model) both
answer through it.

Examples
--------
>>> concentration_text(0.004), concentration_text(12.345)
('<0.01', '12.3')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from asuc_bayes.data.dataset import Patient
from asuc_bayes.decisions.dosing.context import DosingContext, dosing_context
from asuc_bayes.decisions.dosing.criteria import dose_choice, is_monotone, json_records
from asuc_bayes.decisions.dosing.request import DosingError, DosingRequest, check_in_range
from asuc_bayes.inference.forecast import PatientForecast
from asuc_bayes.pk.kernels import concentration

__all__ = [
    "DEFAULT_INTERVALS_DAY",
    "TroughCurve",
    "TroughPlan",
    "TroughStatus",
    "check_trough_options",
    "check_trough_request",
    "concentration_text",
    "replaced_schedule_notes",
    "trough_plan",
    "trough_quantiles",
    "trough_targets",
    "unit_trough",
]

TroughStatus = Literal["reachable", "met_at_minimum", "not_reachable"]
#: Candidate maintenance intervals of the interval search (days).
DEFAULT_INTERVALS_DAY = np.arange(7.0, 85.0, 1.0)
#: Troughs per draw of a schedule every interval, for candidate intervals (k,): (fixed, per mg)
#: concentrations, each (draws, k); the trough of dose D is ``fixed + D · per_mg``.
TroughCurve = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


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
                "curve": json_records(self.dose_table),
            },
            "for_dose": {
                "dose_mg": self.interval_dose_mg,
                "longest_interval_day": self.longest_interval_day,
                "intervals": json_records(self.interval_table),
            },
            "notes": list(self.notes),
        }


def concentration_text(value: float) -> str:
    """A concentration for people: three significant digits, ``<0.01`` below 0.01 mg/L."""
    return "<0.01" if value < 0.01 else f"{value:.3g}"


def unit_trough(
    context: DosingContext, interval_day: np.ndarray, maintenance_doses: int
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


def check_trough_options(target_mg_l, interval_day, maintenance_doses) -> None:
    check_in_range(target_mg_l, 1e-3, 500.0, "trough target", "mg/L", "--trough-target")
    check_in_range(interval_day, 1.0, 365.0, "maintenance interval", "day", "--interval-days")
    if (
        isinstance(maintenance_doses, bool)
        or not isinstance(maintenance_doses, int)
        or not 1 <= maintenance_doses <= 50
    ):
        raise DosingError(
            f"maintenance doses must be a whole number from 1 to 50, got {maintenance_doses!r} "
            "(--maintenance-doses)"
        )


def trough_quantiles(troughs: np.ndarray) -> dict[str, np.ndarray]:
    """Columns ``trough_q2.5``, ``trough_q50``, ``trough_q97.5`` of troughs (draws, k)."""
    return {
        f"trough_q{label}": np.quantile(troughs, q, axis=0)
        for label, q in (("2.5", 0.025), ("50", 0.5), ("97.5", 0.975))
    }


def replaced_schedule_notes(patient: Patient, start_day: float) -> list[str]:
    """A note naming the planned infusions from ``start_day`` on that the maintenance
    schedule replaces (none without such infusions)."""
    replaced = [d for d in patient.doses if d.time_day >= start_day - 1e-9]
    if not replaced:
        return []
    listed = ", ".join(f"{d.amount_mg:g} mg at day {d.time_day:g}" for d in replaced)
    return [
        f"the maintenance schedule from day {start_day:g} replaces the planned infusions ({listed})"
    ]


def check_trough_request(
    target_mg_l: float, interval_day: float, maintenance_doses: int, dose_mg: float | None
) -> None:
    """Check the trough options and the dose of the interval search (``dose_mg``, if given).

    Raises
    ------
    DosingError
        An option out of range, naming the command-line option.
    """
    check_trough_options(target_mg_l, interval_day, maintenance_doses)
    if dose_mg is not None:
        check_in_range(dose_mg, 1.0, 3000.0, "trough dose", "mg", "--trough-dose-mg")


def trough_plan(
    target_mg_l: float,
    request: DosingRequest,
    *,
    dose_grid_mg: np.ndarray,
    weight_kg: float,
    troughs: TroughCurve,
    interval_day: float,
    dose_mg: float | None,
    intervals_day,
    maintenance_doses: int,
    notes: Sequence[str],
) -> TroughPlan:
    """The trough plan from any model's troughs (see :func:`trough_targets`).

    Parameters
    ----------
    target_mg_l, request
        The trough target and the request (its ``probability``, decision day and dose range).
    dose_grid_mg
        The whole-vial doses from the minimum to the cap.
    weight_kg
        The patient's weight.
    troughs
        (fixed, per mg) troughs per draw for candidate intervals (see :data:`TroughCurve`).
    interval_day
        The interval of the dose search.
    dose_mg
        The dose of the interval search (default: the dose found, or the cap).
    intervals_day
        Candidate intervals of the interval search (default :data:`DEFAULT_INTERVALS_DAY`).
    maintenance_doses
        Infusions every interval before the trough.
    notes
        Notes to begin with (the replaced infusions).

    Raises
    ------
    DosingError
        Candidate intervals that are not positive.
    """
    notes = list(notes)
    grid = dose_grid_mg
    fixed, per_mg = troughs(np.array([interval_day]))
    dose_troughs = fixed[:, :1] + per_mg[:, :1] * grid[None, :]
    p_dose = (dose_troughs >= target_mg_l).mean(axis=0)
    meets_dose = p_dose >= request.probability
    dose_table = pd.DataFrame(
        {
            "dose_mg": grid,
            "dose_mg_kg": grid / weight_kg,
            **trough_quantiles(dose_troughs),
            "p_trough_above_target": p_dose,
            "meets_target": meets_dose,
        }
    )
    chosen_index, reachable = dose_choice(meets_dose)
    status: TroughStatus = (
        "not_reachable" if not reachable else "met_at_minimum" if chosen_index == 0 else "reachable"
    )
    chosen = float(grid[chosen_index])
    if not is_monotone(p_dose, increasing=True):
        notes.append("P(trough ≥ target) is not monotone in the dose: check the table")
    interval_dose = chosen if dose_mg is None else float(dose_mg)
    if intervals_day is None:
        intervals_day = DEFAULT_INTERVALS_DAY
    intervals = np.asarray(sorted(set(np.asarray(intervals_day, dtype=float))), dtype=float)
    if intervals.size == 0 or intervals.min() <= 0:
        raise DosingError("candidate intervals must be positive numbers of days")
    fixed, per_mg = troughs(intervals)
    troughs_interval = fixed + per_mg * interval_dose
    p_interval = (troughs_interval >= target_mg_l).mean(axis=0)
    meets = p_interval >= request.probability
    interval_table = pd.DataFrame(
        {
            "interval_day": intervals,
            **trough_quantiles(troughs_interval),
            "p_trough_above_target": p_interval,
            "meets_target": meets,
        }
    )
    if not is_monotone(p_interval, increasing=False):
        notes.append("P(trough ≥ target) is not monotone in the interval: check the table")
    hits = np.flatnonzero(meets)
    row = dose_table.iloc[chosen_index]
    return TroughPlan(
        target_mg_l=float(target_mg_l),
        probability=request.probability,
        interval_day=float(interval_day),
        start_day=float(request.dose_time_day),
        maintenance_doses=maintenance_doses,
        weight_kg=weight_kg,
        status=status,
        dose_mg=chosen,
        trough_mg_l={q: float(row[f"trough_{q}"]) for q in ("q2.5", "q50", "q97.5")},
        p_trough_above_target=float(row["p_trough_above_target"]),
        dose_table=dose_table,
        interval_dose_mg=interval_dose,
        longest_interval_day=float(intervals[hits[-1]]) if hits.size else None,
        interval_table=interval_table,
        notes=tuple(notes),
    )


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
    check_trough_request(target_mg_l, interval_day, maintenance_doses, dose_mg)
    context = dosing_context(forecast, request)
    return trough_plan(
        target_mg_l,
        request,
        dose_grid_mg=context.decision.dose_grid_mg,
        weight_kg=context.weight_kg,
        troughs=lambda intervals: unit_trough(context, intervals, maintenance_doses),
        interval_day=interval_day,
        dose_mg=dose_mg,
        intervals_day=intervals_day,
        maintenance_doses=maintenance_doses,
        notes=replaced_schedule_notes(context.patient, request.dose_time_day),
    )
