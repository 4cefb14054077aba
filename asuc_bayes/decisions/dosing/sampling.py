"""The value of one more sample: pre-posterior analysis of a concentration sample on
candidate days (the expected posterior SD of ln(AUC_w2-4/CL), and the probability that the
risk class, or the recommended dose, would change). A day whose result (after the assay
turnaround) would arrive after the dose it informs is never recommended.

Examples
--------
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> from asuc_bayes.decisions.dosing.request import DosingRequest
>>> patient = Patient("p1", 70.0, 30.0, (Dose(0.0, 400.0, 1 / 12),), (Observation(3.0, 30.0),))
>>> default_sampling_days(patient, DosingRequest(), n=4, turnaround_day=1.0).tolist()
[4.0, 7.0, 10.0, 13.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED, Patient
from asuc_bayes.decisions.dosing.context import (
    DosingContext,
    dosing_context,
    last_sample_day,
    risk_curve,
)
from asuc_bayes.decisions.dosing.criteria import first_meeting, json_records
from asuc_bayes.decisions.dosing.exposure import RegimenArrays, draws_ln_ratio, window_auc
from asuc_bayes.decisions.dosing.request import DosingError, DosingRequest, check_in_range
from asuc_bayes.decisions.dosing_defaults import DEFAULT_TURNAROUND_DAY
from asuc_bayes.inference.forecast import PatientForecast
from asuc_bayes.inference.grid import observation_log_likelihood
from asuc_bayes.inference.risk_class import is_high_risk
from asuc_bayes.pk.kernels import concentration
from asuc_bayes.spec.residual import add_residual_error

__all__ = [
    "MIN_PARTICLE_ESS",
    "SamplingAnalysis",
    "check_sampling_options",
    "check_turnaround",
    "default_sampling_days",
    "sampling_value",
]

#: Posterior (or pre-posterior) weights with a Kish ESS below this are reported as coarse.
MIN_PARTICLE_ESS = 200.0


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
        """The ``next_sample`` entry of the ``optimize`` JSON."""
        return {
            "recommended_day": self.recommended_day,
            "turnaround_days": self.turnaround_day,
            "latest_useful_day": self.latest_useful_day,
            "current_sd_ln_auc_cl": self.current_sd_ln_auc_cl,
            "n_simulations": self.n_simulations,
            "days": json_records(self.table),
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
    context: DosingContext,
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


def check_sampling_options(n_simulations, lloq_mg_l, uloq_mg_l) -> None:
    """Check the simulations per day and the assay limits (mg/L) of the sampling analysis.

    Raises
    ------
    DosingError
        An option out of range, naming the command-line option.
    """
    if (
        isinstance(n_simulations, bool)
        or not isinstance(n_simulations, int)
        or not 10 <= n_simulations <= 100_000
    ):
        raise DosingError(
            f"simulations per day must be a whole number from 10 to 100000, got "
            f"{n_simulations!r} (--n-simulations)"
        )
    check_in_range(lloq_mg_l, 0.0, 100.0, "assay LLOQ", "mg/L", "--lloq")
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
    check_sampling_options(n_simulations, lloq_mg_l, uloq_mg_l)
    check_turnaround(turnaround_day)
    context = dosing_context(forecast, request)
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
    ln_ratio_now = draws_ln_ratio(
        window_auc(context.spec, RegimenArrays.of(patient.doses), draws), draws
    )
    _, risk = risk_curve(context, draws, context.decision.dose_grid_mg, request.dose_time_day)
    uniform = np.full((1, draws.size), 1.0 / draws.size)
    current_index = first_meeting(_meets_weighted(uniform, risk, request)[0])
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


def check_turnaround(turnaround_day) -> None:
    """Check the assay turnaround (0 to 30 days)."""
    check_in_range(turnaround_day, 0.0, 30.0, "assay turnaround", "day", "--turnaround-days")
