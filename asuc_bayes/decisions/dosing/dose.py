"""The dose to a target risk: the smallest whole-vial dose at the decision time meeting the
criterion, with its dose-risk curve and the MAP recommendation beside it.

:func:`recommendation_from_risk` turns a dose-risk curve (per draw) into a
:class:`DoseRecommendation` for any model: :func:`recommend_dose` (the default model) and
:func:`asuc_bayes.decisions.library_dosing.recommend_library_dose` (a library model) both
answer through it.

Examples
--------
>>> from asuc_bayes.decisions.dosing.request import DosingRequest
>>> dose_json(700.0, 70.0, DosingRequest())
{'dose_mg': 700.0, 'dose_mg_kg': 10.0, 'vials': 7, 'time_day': 14.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from asuc_bayes.decisions.dosing.context import DosingContext, dosing_context, risk_curve
from asuc_bayes.decisions.dosing.criteria import (
    dose_choice,
    is_monotone,
    json_records,
    meets_criterion,
)
from asuc_bayes.decisions.dosing.request import DosingRequest
from asuc_bayes.inference.forecast import PatientForecast, summary_statistics

__all__ = [
    "DoseRecommendation",
    "dose_json",
    "recommend_dose",
    "recommendation_for",
    "recommendation_from_risk",
]

#: The note of a dose-risk curve of the default model that is not monotone.
NON_MONOTONE_NOTE = (
    "the risk is not monotone in the dose over the grid (per-draw TTE parameters with "
    "a positive exposure effect?): the smallest dose meeting the criterion is reported"
)


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
                **dose_json(self.dose_mg, self.weight_kg, request),
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
            "curve": json_records(self.curve),
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


def dose_json(dose_mg: float, weight_kg: float, request: DosingRequest) -> dict[str, Any]:
    """A chosen dose as the ``optimize`` JSON reports it: mg, mg/kg, vials and day."""
    return {
        "dose_mg": dose_mg,
        "dose_mg_kg": dose_mg / weight_kg,
        "vials": round(dose_mg / request.vial_mg),
        "time_day": request.dose_time_day,
    }


def recommendation_from_risk(
    *,
    patient_id: str,
    request: DosingRequest,
    weight_kg: float,
    dose_grid_mg: np.ndarray,
    ln_ratio: np.ndarray,
    risk: np.ndarray,
    map_risk: np.ndarray,
    high_risk_threshold: float,
    notes: Sequence[str],
    non_monotone_note: str = NON_MONOTONE_NOTE,
    note_met_at_minimum: bool = True,
) -> DoseRecommendation:
    """The recommendation on a dose-risk curve, for any model.

    Parameters
    ----------
    patient_id, request, weight_kg
        The patient and the request.
    dose_grid_mg
        The whole-vial doses (k,), from the minimum to the cap.
    ln_ratio, risk
        ln(AUC/CL) and the 90-day risk of every posterior draw at every dose: (draws, k).
    map_risk
        The risk of the MAP estimate at every dose: (1, k).
    high_risk_threshold
        ln(AUC/CL) below which a draw is high risk.
    notes
        The decision's notes (the curve's own notes follow them).
    non_monotone_note
        The note when the curve is not monotone in the dose.
    note_met_at_minimum
        Add a note when the minimum dose already meets the target.

    Returns
    -------
    DoseRecommendation
        The smallest dose meeting the criterion (or the cap, infeasible), and the MAP
        estimate's smallest dose with a risk at most the target.
    """
    grid = dose_grid_mg
    meets, _ = meets_criterion(risk, request)
    p_meets = (risk <= request.target_risk).mean(axis=0)
    curve = pd.DataFrame(
        {
            "dose_mg": grid,
            "dose_mg_kg": grid / weight_kg,
            "risk_mean": risk.mean(axis=0),
            "risk_q2.5": np.quantile(risk, 0.025, axis=0),
            "risk_q97.5": np.quantile(risk, 0.975, axis=0),
            "p_high_risk": (ln_ratio < high_risk_threshold).mean(axis=0),
            "p_meets_target": p_meets,
            "map_risk": map_risk[0],
        }
    )
    monotone = is_monotone(curve["risk_mean"], increasing=False) and is_monotone(
        p_meets, increasing=True
    )
    notes = list(notes)
    if not monotone:
        notes.append(non_monotone_note)
    index, feasible = dose_choice(meets)
    if not feasible:
        notes.append(
            f"the target is not met at the cap of {request.max_mg_per_kg:g} mg/kg "
            f"({grid[-1]:g} mg): the risk reached at the cap is reported"
        )
    elif index == 0 and note_met_at_minimum:
        notes.append(
            f"the target is already met at the minimum dose, {grid[0]:g} mg "
            f"({request.min_mg_per_kg:g} mg/kg rounded up to whole vials); no smaller dose is "
            "considered"
        )
    map_meets = map_risk[0] <= request.target_risk
    map_index, map_feasible = dose_choice(map_meets)
    return DoseRecommendation(
        patient_id=patient_id,
        request=request,
        weight_kg=weight_kg,
        feasible=feasible,
        dose_mg=float(grid[index]),
        risk_90d=summary_statistics(risk[:, index]),
        p_high_risk=float(curve["p_high_risk"][index]),
        p_meets_target=float(p_meets[index]),
        map_feasible=map_feasible,
        map_dose_mg=float(grid[map_index]),
        map_risk_90d=float(map_risk[0][map_index]),
        curve=curve,
        monotone=monotone,
        notes=tuple(notes),
        met_at_minimum=index == 0 and feasible,
        map_met_at_minimum=map_feasible and map_index == 0,
    )


def recommendation_for(context: DosingContext) -> DoseRecommendation:
    """The recommendation of a patient's decision (:func:`recommend_dose` on a context)."""
    request = context.request
    grid = context.decision.dose_grid_mg
    time = request.dose_time_day
    ln_ratio, risk = risk_curve(context, context.draws, grid, time)
    _, map_risk = risk_curve(context, context.map_draw, grid, time)
    return recommendation_from_risk(
        patient_id=context.patient.id,
        request=request,
        weight_kg=context.weight_kg,
        dose_grid_mg=grid,
        ln_ratio=ln_ratio,
        risk=risk,
        map_risk=map_risk,
        high_risk_threshold=context.spec.tte.high_risk_threshold,
        notes=context.decision.notes,
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
    return recommendation_for(dosing_context(forecast, request))
