"""Timing of an infusion: for a given dose, which candidate days meet the criterion.

Under this model AUC_w2-4 is largest for an infusion at day 14 exactly, so the days meeting
the target usually form a range ending at 14: its earliest day tells how early the infusion
may be given.

Examples
--------
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> from asuc_bayes.decisions.dosing.request import DosingRequest
>>> patient = Patient("p1", 70.0, 30.0, (Dose(0.0, 400.0, 1 / 12),), (Observation(9.0, 9.0),))
>>> default_timing_days(patient, DosingRequest()).tolist()
[9.0, 10.0, 11.0, 12.0, 13.0, 14.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from asuc_bayes.data.dataset import Patient
from asuc_bayes.decisions.dosing.context import DosingContext, dosing_context, last_sample_day
from asuc_bayes.decisions.dosing.criteria import json_records, meets_criterion
from asuc_bayes.decisions.dosing.exposure import draws_ln_ratio, unit_window_auc, window_auc
from asuc_bayes.decisions.dosing.request import DosingError, DosingRequest, check_in_range
from asuc_bayes.inference.forecast import PatientForecast

__all__ = ["TimingSearch", "default_timing_days", "infusion_timing", "timing_search"]


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
        """The ``timing`` entry of the ``optimize`` JSON."""
        return {
            "dose_mg": self.dose_mg,
            "latest_day_meeting_target": self.latest_day,
            "earliest_day_meeting_target": self.earliest_day,
            "days_meeting_target_contiguous": self.contiguous,
            "days": json_records(self.table),
            "notes": list(self.notes),
        }


def default_timing_days(patient: Patient, request: DosingRequest) -> np.ndarray:
    """Days 7 to the decision day (at least 14), whole days not before the last sample."""
    last = last_sample_day(patient) or 0.0
    end = max(14.0, request.dose_time_day)
    days = np.arange(7.0, end + 0.5, 1.0)
    return days[days >= last]


def timing_search(context: DosingContext, dose_mg: float, days) -> TimingSearch:
    """Risk of ``dose_mg`` infused on each of ``days`` instead of at the decision time
    (:func:`infusion_timing` on a context); days overlapping another infusion never meet the
    criterion."""
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
    fixed = window_auc(spec, context.decision.fixed, draws)
    unit = unit_window_auc(spec, days, context.decision.duration_day, draws)
    ln_ratio = draws_ln_ratio(fixed[:, None] + dose_mg * unit, draws)
    risk = draws.risk(spec, ln_ratio)
    meets, _ = meets_criterion(risk, request)
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
    check_in_range(dose_mg, 0.0, 3000.0, "timing dose", "mg", "--timing-dose-mg")
    context = dosing_context(forecast, request)
    if days is None:
        days = default_timing_days(forecast.patient, request)
    return timing_search(context, float(dose_mg), days)
