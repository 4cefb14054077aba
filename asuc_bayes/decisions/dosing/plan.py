"""One patient's dosing answer: in risk mode the recommendation, timing, regimens (and
sampling); in trough mode the trough plan alone; as JSON and as a DataTree.

Examples
--------
>>> PlanOptions(trough_target_mg_l=3.0, next_sample=True)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
asuc_bayes.decisions.dosing.request.DosingError: --next-sample belong(s) to the risk mode ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from asuc_bayes.data.dataset import Dose, Patient
from asuc_bayes.decisions.dosing.context import dosing_context
from asuc_bayes.decisions.dosing.dose import DoseRecommendation, recommendation_for
from asuc_bayes.decisions.dosing.regimens import RegimenComparison, regimen_comparison
from asuc_bayes.decisions.dosing.request import DosingError, DosingRequest, check_in_range
from asuc_bayes.decisions.dosing.sampling import (
    SamplingAnalysis,
    check_sampling_options,
    check_turnaround,
    sampling_value,
)
from asuc_bayes.decisions.dosing.timing import TimingSearch, default_timing_days, timing_search
from asuc_bayes.decisions.dosing.trough import TroughPlan, check_trough_options, trough_targets
from asuc_bayes.decisions.dosing_defaults import DEFAULT_TURNAROUND_DAY
from asuc_bayes.inference.forecast import PatientForecast

__all__ = ["DosingPlan", "PlanOptions", "plan_dosing", "with_dose"]


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
        """``"trough"`` with a trough plan, else ``"risk"``."""
        return "trough" if self.trough is not None else "risk"

    def to_json(self) -> dict[str, Any]:
        """The patient's entry of the ``optimize`` JSON output."""
        if self.trough is not None:
            return {
                "id": self.forecast.patient.id,
                "mode": "trough",
                "status": self.forecast.status,
                **self.request.dose_range_json(),
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
    """A column as netCDF can store it: booleans as int8, objects as strings."""
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
            check_in_range(
                self.timing_dose_mg, 1.0, 3000.0, "timing dose", "mg", "--timing-dose-mg"
            )
        if self.timing_days is not None and len(self.timing_days) == 0:
            raise DosingError("give at least one candidate infusion day (--timing-days)")
        if self.trough_target_mg_l is not None:
            check_trough_options(
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
            check_in_range(
                self.trough_dose_mg, 1.0, 3000.0, "trough dose", "mg", "--trough-dose-mg"
            )
        check_sampling_options(self.n_simulations, self.lloq_mg_l, self.uloq_mg_l)
        check_turnaround(self.turnaround_day)

    def trough_search(self) -> dict[str, Any]:
        """The trough mode's options as keywords of :func:`trough_targets` (and of the
        library model's :func:`~asuc_bayes.decisions.library_dosing.library_trough_targets`):
        ``interval_day``, ``dose_mg``, ``maintenance_doses``."""
        return {
            "interval_day": self.trough_interval_day,
            "dose_mg": self.trough_dose_mg,
            "maintenance_doses": self.maintenance_doses,
        }


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
            forecast, options.trough_target_mg_l, request=request, **options.trough_search()
        )
        return DosingPlan(forecast=forecast, request=request, trough=trough)
    context = dosing_context(forecast, request)
    recommendation = recommendation_for(context)
    notes = []
    days = options.timing_days
    if days is None:
        days = default_timing_days(forecast.patient, request)
    timing = None
    if len(days):
        dose = options.timing_dose_mg
        timing = timing_search(
            context, recommendation.dose_mg if dose is None else float(dose), days
        )
    else:
        notes.append("timing search skipped: no candidate day after the last sample")
    regimens = regimen_comparison(context, recommendation)
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
