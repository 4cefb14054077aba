"""Candidate induction regimens: the patient's own, the standard, intensified and
accelerated schedules, and the recommended one, with their risk summaries from the same
posterior draws.

Examples
--------
>>> [template.name for template in REGIMEN_TEMPLATES][:2]
['standard_5', 'intensified_10']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from asuc_bayes.data.dataset import Dose
from asuc_bayes.decisions.dosing.context import DosingContext, dosing_context, last_sample_day
from asuc_bayes.decisions.dosing.criteria import json_records, meets_criterion
from asuc_bayes.decisions.dosing.dose import DoseRecommendation, recommendation_for
from asuc_bayes.decisions.dosing.exposure import RegimenArrays, draws_ln_ratio, window_auc
from asuc_bayes.decisions.dosing.request import DosingRequest
from asuc_bayes.inference.forecast import PatientForecast, summary_statistics

__all__ = [
    "REGIMEN_TEMPLATES",
    "RegimenComparison",
    "RegimenTemplate",
    "compare_regimens",
    "regimen_comparison",
    "template_doses",
]


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


def template_doses(context: DosingContext, template: RegimenTemplate) -> list[Dose]:
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
        """The ``regimens`` entry of the ``optimize`` JSON: one record per regimen."""
        rows = json_records(self.table)
        for row in rows:
            row["doses"] = self.doses[row["name"]]
        return rows


def regimen_comparison(
    context: DosingContext, recommendation: DoseRecommendation
) -> RegimenComparison:
    """The regimen table of a patient's decision (:func:`compare_regimens` on a context)."""
    spec, request = context.spec, context.request
    recommended = [
        *context.decision.fixed.doses,
        Dose(request.dose_time_day, recommendation.dose_mg, context.decision.duration_day),
    ]
    candidates = [
        ("as_given", "the patient's regimen as entered", list(context.patient.doses)),
        *((t.name, t.description, template_doses(context, t)) for t in REGIMEN_TEMPLATES),
        (
            "recommended",
            f"as given, with {recommendation.dose_mg:g} mg at day {request.dose_time_day:g}",
            sorted((d for d in recommended if d.amount_mg > 0), key=lambda d: d.time_day),
        ),
    ]
    rows, doses = [], {}
    for name, description, regimen_doses in candidates:
        ln_ratio = draws_ln_ratio(
            window_auc(spec, RegimenArrays.of(regimen_doses), context.draws), context.draws
        )
        risk = context.draws.risk(spec, ln_ratio)
        meets, _ = meets_criterion(risk[:, None], request)
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
    context = dosing_context(forecast, request)
    return regimen_comparison(context, recommendation_for(context))
