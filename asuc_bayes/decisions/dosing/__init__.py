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

The package's modules, one responsibility each: :mod:`~.request` (the request and its
error), :mod:`~.exposure` (draws and AUC), :mod:`~.criteria` (the criteria on a grid),
:mod:`~.context` (a decision set up for a patient), :mod:`~.dose`, :mod:`~.timing`,
:mod:`~.regimens`, :mod:`~.trough`, :mod:`~.sampling` and :mod:`~.plan`; every name is
importable from ``asuc_bayes.decisions.dosing``.

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

from asuc_bayes.decisions.dosing.context import check_decision, check_request, last_sample_day
from asuc_bayes.decisions.dosing.criteria import MONOTONE_TOLERANCE
from asuc_bayes.decisions.dosing.dose import DoseRecommendation, recommend_dose
from asuc_bayes.decisions.dosing.exposure import DrawSet
from asuc_bayes.decisions.dosing.plan import DosingPlan, PlanOptions, plan_dosing, with_dose
from asuc_bayes.decisions.dosing.regimens import (
    REGIMEN_TEMPLATES,
    RegimenComparison,
    RegimenTemplate,
    compare_regimens,
)
from asuc_bayes.decisions.dosing.request import (
    CRITERIA,
    Criterion,
    DosingError,
    DosingRequest,
    clinical_text,
)
from asuc_bayes.decisions.dosing.sampling import (
    MIN_PARTICLE_ESS,
    SamplingAnalysis,
    default_sampling_days,
    sampling_value,
)
from asuc_bayes.decisions.dosing.timing import TimingSearch, default_timing_days, infusion_timing
from asuc_bayes.decisions.dosing.trough import (
    TroughPlan,
    TroughStatus,
    concentration_text,
    trough_targets,
)

__all__ = [
    "CRITERIA",
    "MIN_PARTICLE_ESS",
    "MONOTONE_TOLERANCE",
    "REGIMEN_TEMPLATES",
    "Criterion",
    "DoseRecommendation",
    "DosingError",
    "DosingPlan",
    "DosingRequest",
    "DrawSet",
    "PlanOptions",
    "RegimenComparison",
    "RegimenTemplate",
    "SamplingAnalysis",
    "TimingSearch",
    "TroughPlan",
    "TroughStatus",
    "check_decision",
    "check_request",
    "clinical_text",
    "compare_regimens",
    "concentration_text",
    "default_sampling_days",
    "default_timing_days",
    "infusion_timing",
    "last_sample_day",
    "plan_dosing",
    "recommend_dose",
    "sampling_value",
    "trough_targets",
    "with_dose",
]
