"""Outcome metrics: ln(AUC_w2-4/CL) from PK-only posteriors against observed colectomy.

Per patient, from the posterior of η given the concentrations only (weighted nodes of
:mod:`.marginal`): x̄ = the posterior mean of x = ln(AUC_w2-4/CL), and the posterior mean of
the colectomy risk by the outcome model's horizon (the model's own outcome model, or the ASUC
one of Niyigena 2025 attached and flagged ``extrapolated``).

**Labels** (one colectomy record per patient, as :func:`asuc_bayes.dataset.read_cohort`
gives): a *case* had a colectomy after day 28 (the end of the exposure window) and by the
horizon (90 days); a *control* had none by the horizon (followed up to it, or colectomy
later). Patients with a colectomy by day 28 or censored before the horizon are left out.

Metrics: AUROC of −x̄ (low exposure, high risk) with a 95 % Hanley–McNeil interval;
sensitivity and specificity of x̄ < threshold (5.79); Brier score of the risk; calibration
intercept (logistic, slope fixed at 1 with logit(risk) as offset) and slope (logistic
regression of the label on logit(risk)).

Examples
--------
>>> m = outcome_metrics(np.array([5.0, 5.5, 6.2, 6.5]), np.array([0.4, 0.3, 0.1, 0.05]),
...                     np.array([1, 0, 0, 0]), threshold=5.79)
>>> m.auroc, m.sensitivity, m.specificity
(1.0, 1.0, 0.6666666666666666)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.special

from asuc_bayes.data.types import Patient
from asuc_bayes.inference.derived import derived_quantities
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.spec import load_declaration, with_outcome_from
from asuc_bayes.validation.marginal import WeightedPosterior

__all__ = [
    "EXPOSURE_END_DAY",
    "OutcomeMetrics",
    "PatientOutcome",
    "outcome_label",
    "outcome_metrics",
    "patient_outcome",
]

#: Colectomies up to this day are left out (the exposure window is not over).
EXPOSURE_END_DAY = 28.0


@dataclass(frozen=True)
class PatientOutcome:
    """Posterior mean exposure and risk of one patient, and its label (None: left out)."""

    ln_auc_cl: float
    risk: float
    label: int | None
    threshold: float
    extrapolated: bool


def outcome_label(patient: Patient, horizon_day: float) -> int | None:
    """1 case, 0 control, None left out or no single colectomy record (module docstring)."""
    if len(patient.events) != 1:
        return None
    event = patient.events[0]
    if event.event == 1 and event.time_day <= EXPOSURE_END_DAY:
        return None
    if event.event == 1 and event.time_day <= horizon_day:
        return 1
    if event.event == 1 or event.time_day >= horizon_day:
        return 0
    return None


def patient_outcome(
    problem: PatientProblem, posterior: WeightedPosterior, patient: Patient
) -> PatientOutcome:
    """:class:`PatientOutcome` from the PK-only posterior nodes of ``problem``."""
    declaration = problem.declaration
    extrapolated = declaration.outcome is None
    if extrapolated:
        declaration = with_outcome_from(declaration, load_declaration("niyigena2025"))
        problem = dataclasses.replace(problem, declaration=declaration)
    outcome = declaration.outcome
    derived = derived_quantities(problem, posterior.eta)
    return PatientOutcome(
        ln_auc_cl=float(posterior.weight @ derived.ln_auc_cl),
        risk=float(posterior.weight @ derived.risk_90d),
        label=outcome_label(patient, outcome.horizon_day),
        threshold=outcome.high_risk_threshold,
        extrapolated=extrapolated or outcome.extrapolated,
    )


@dataclass(frozen=True)
class OutcomeMetrics:
    """Discrimination and calibration of ``n_cases`` cases and ``n_controls`` controls."""

    n_cases: int
    n_controls: int
    auroc: float
    auroc_low: float
    auroc_high: float
    sensitivity: float
    specificity: float
    brier: float
    calibration_intercept: float | None
    calibration_slope: float | None


def _auroc(score: np.ndarray, label: np.ndarray) -> float:
    cases, controls = score[label == 1], score[label == 0]
    greater = (cases[:, None] > controls[None, :]).sum()
    ties = (cases[:, None] == controls[None, :]).sum()
    return float((greater + 0.5 * ties) / (cases.size * controls.size))


def _logistic(y: np.ndarray, offset: np.ndarray, with_slope: bool) -> np.ndarray | None:
    def negative(theta: np.ndarray) -> float:
        eta = theta[0] + (theta[1] * offset if with_slope else offset)
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    start = np.array([0.0, 1.0]) if with_slope else np.zeros(1)
    result = scipy.optimize.minimize(negative, start, method="BFGS")
    return result.x if result.success and np.all(np.isfinite(result.x)) else None


def outcome_metrics(
    ln_auc_cl: np.ndarray, risk: np.ndarray, label: np.ndarray, threshold: float
) -> OutcomeMetrics | None:
    """:class:`OutcomeMetrics`; ``None`` without at least one case and one control."""
    x = np.asarray(ln_auc_cl, dtype=float)
    p = np.clip(np.asarray(risk, dtype=float), 1e-9, 1.0 - 1e-9)
    y = np.asarray(label, dtype=float)
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    if n1 == 0 or n0 == 0:
        return None
    a = _auroc(-x, y)
    q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
    se = math.sqrt(max(a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a), 0.0))
    se /= math.sqrt(n1 * n0)
    high_risk = x < threshold
    logit = scipy.special.logit(p)
    intercept = _logistic(y, logit, with_slope=False)
    slope = _logistic(y, logit, with_slope=True)
    return OutcomeMetrics(
        n_cases=n1,
        n_controls=n0,
        auroc=a,
        auroc_low=max(0.0, a - 1.959964 * se),
        auroc_high=min(1.0, a + 1.959964 * se),
        sensitivity=float(high_risk[y == 1].mean()),
        specificity=float((~high_risk[y == 0]).mean()),
        brier=float(np.mean((p - y) ** 2)),
        calibration_intercept=None if intercept is None else float(intercept[0]),
        calibration_slope=None if slope is None else float(slope[1]),
    )
