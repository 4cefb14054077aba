"""Outcome metrics: ln(AUC_w2-4/CL) from PK-only posteriors against observed colectomy.

Per patient, from the posterior of η given the concentrations only (weighted nodes of
:mod:`.marginal`): x̄ = the posterior median of x = ln(AUC_w2-4/CL) (the same rule as the
model average's score below: x̄ < threshold iff P(high risk) > ½), and the posterior mean of
the colectomy risk by the outcome model's horizon (the model's own outcome model, or the ASUC
one of Niyigena 2025 attached and flagged ``extrapolated``).

**Labels** (one colectomy record per patient, as :func:`asuc_bayes.data.dataset.read_cohort`
gives): a *case* had a colectomy after day 28 (the end of the exposure window) and by the
horizon (90 days); a *control* had none by the horizon (followed up to it, or colectomy
later). Patients with a colectomy by day 28 or censored before the horizon are left out.

Metrics: AUROC of −x̄ (low exposure, high risk) with a 95 % Hanley–McNeil interval;
sensitivity and specificity of x̄ < threshold (5.79); Brier score of the risk; calibration
intercept (logistic, slope fixed at 1 with logit(risk) as offset) and slope (logistic
regression of the label on logit(risk)).

**Model average** (:func:`average_outcome`): with the posterior model probabilities w given the
patient's concentrations, the risk Σ_m w_m risk_m and the score the median of the mixture
Σ_m w_m p_m(x | y) (from each model's posterior kept as :data:`SCORE_QUANTILES` quantiles), so
that the score is below the threshold iff the averaged P(x < threshold) exceeds ½.

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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.special

from asuc_bayes.data.types import Patient
from asuc_bayes.inference.derived import derived_quantities
from asuc_bayes.inference.marginal import WeightedPosterior
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.spec import load_declaration, with_outcome_from

__all__ = [
    "EXPOSURE_END_DAY",
    "SCORE_QUANTILES",
    "OutcomeMetrics",
    "PatientOutcome",
    "average_outcome",
    "mixture_median",
    "outcome_label",
    "outcome_metrics",
    "patient_outcome",
    "weighted_quantiles",
]

#: Colectomies up to this day are left out (the exposure window is not over).
EXPOSURE_END_DAY = 28.0
#: Equal-probability atoms kept of each patient's posterior of ln(AUC_w2-4/CL).
SCORE_QUANTILES = 1000


@dataclass(frozen=True)
class PatientOutcome:
    """Posterior mean exposure and risk of one patient, and its label (None: left out)."""

    ln_auc_cl: float
    risk: float
    label: int | None
    threshold: float
    extrapolated: bool
    #: the posterior of ln(AUC_w2-4/CL) as :data:`SCORE_QUANTILES` equal-probability atoms
    #: (its quantiles at levels (i + ½)/K), for the model average (:func:`average_outcome`)
    ln_auc_cl_quantiles: np.ndarray | None = None


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
    quantiles = weighted_quantiles(derived.ln_auc_cl, posterior.weight)
    return PatientOutcome(
        ln_auc_cl=mixture_median([quantiles], np.ones(1)),  # the model average's rule
        risk=float(posterior.weight @ derived.risk_90d),
        label=outcome_label(patient, outcome.horizon_day),
        threshold=outcome.high_risk_threshold,
        extrapolated=extrapolated or outcome.extrapolated,
        ln_auc_cl_quantiles=quantiles,
    )


def weighted_quantiles(
    values: np.ndarray, weight: np.ndarray, n_levels: int | None = None
) -> np.ndarray:
    """Quantiles at the levels (i + ½)/K, i < K, of the distribution putting ``weight`` on
    ``values`` (K = ``n_levels``, default :data:`SCORE_QUANTILES`): the generalised inverse
    Q(p) = min{x : F(x) ≥ p}.

    Examples
    --------
    >>> weighted_quantiles(np.array([3.0, 1.0, 2.0]), np.array([0.5, 0.25, 0.25]), 4).tolist()
    [1.0, 2.0, 3.0, 3.0]
    """
    n_levels = SCORE_QUANTILES if n_levels is None else n_levels
    x = np.asarray(values, dtype=float).reshape(-1)
    w = np.asarray(weight, dtype=float).reshape(-1)
    order = np.argsort(x, kind="stable")
    cumulative = np.cumsum(w[order])
    cumulative /= cumulative[-1]
    levels = (np.arange(n_levels) + 0.5) / n_levels
    index = np.minimum(np.searchsorted(cumulative, levels, side="left"), x.size - 1)
    return x[order][index]


def mixture_median(quantiles: Sequence[np.ndarray], weights: np.ndarray) -> float:
    """The median of the mixture Σ_m w_m P_m, each P_m given by equal-probability atoms
    ``quantiles[m]`` (:func:`weighted_quantiles`): the smallest atom where the mixture's
    distribution function reaches ½.

    Thresholding it is thresholding the mixture's probability: median < c iff
    Σ_m w_m P_m(x < c) > ½ (to the atoms' resolution), the averaged P(high risk) > ½.

    Examples
    --------
    >>> mixture_median([np.array([1.0, 2.0]), np.array([5.0, 6.0])], np.array([0.7, 0.3]))
    2.0
    """
    w = np.asarray(weights, dtype=float)
    atoms = np.concatenate([np.asarray(q, dtype=float) for q in quantiles])
    mass = np.concatenate([np.full(len(q), w[m] / len(q)) for m, q in enumerate(quantiles)])
    order = np.argsort(atoms, kind="stable")
    cumulative = np.cumsum(mass[order]) / mass.sum()
    return float(atoms[order][np.searchsorted(cumulative, 0.5 - 1e-12, side="left")])


def average_outcome(outcomes: Sequence[PatientOutcome], weights: np.ndarray) -> PatientOutcome:
    """One patient's outcome under the model average, from its outcome under each model and
    the posterior model probabilities ``weights`` given all its concentrations: the risk
    Σ_m w_m risk_m (the posterior mean of the risk under the mixture, as each model's risk is
    its posterior mean), the score the mixture's posterior median of ln(AUC_w2-4/CL)
    (:func:`mixture_median`), extrapolated if any model's is.

    Raises
    ------
    ValueError
        The models disagree on the label or the high-risk threshold, or a score's posterior
        quantiles are missing.
    """
    w = np.asarray(weights, dtype=float)
    labels = {o.label for o in outcomes}
    thresholds = {o.threshold for o in outcomes}
    if len(labels) != 1 or len(thresholds) != 1:
        raise ValueError(
            "outcome of the model average: the models must share the label and the high-risk "
            f"threshold (labels {sorted(labels, key=str)}, thresholds {sorted(thresholds)})"
        )
    if any(o.ln_auc_cl_quantiles is None for o in outcomes):
        raise ValueError("outcome of the model average: a model's score has no quantiles")
    return PatientOutcome(
        ln_auc_cl=mixture_median([o.ln_auc_cl_quantiles for o in outcomes], w),
        risk=float(w @ np.array([o.risk for o in outcomes]) / w.sum()),
        label=outcomes[0].label,
        threshold=outcomes[0].threshold,
        extrapolated=any(o.extrapolated for o in outcomes),
        ln_auc_cl_quantiles=None,
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
