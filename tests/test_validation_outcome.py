"""Outcome metrics against hand computation and simulated calibration."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.special

from asuc_bayes.data.types import EventRecord
from asuc_bayes.spec import load_declaration
from asuc_bayes.studies.validation import validate_cohort
from asuc_bayes.studies.validation.outcome import outcome_label, outcome_metrics
from asuc_bayes.studies.validation.simulation import simulate_validation_cohort


def test_discrimination_and_brier_by_hand():
    # cases x = 5.0, 5.6, 6.0; controls x = 5.6, 5.9, 6.3, 6.8 (score -x)
    x = np.array([5.0, 5.6, 6.0, 5.6, 5.9, 6.3, 6.8])
    label = np.array([1, 1, 1, 0, 0, 0, 0])
    risk = np.array([0.5, 0.3, 0.2, 0.3, 0.2, 0.1, 0.05])
    m = outcome_metrics(x, risk, label, threshold=5.79)
    # pairs (case below control): 5.0: 4; 5.6: tie with 5.6 (1/2) + 3; 6.0: 2 -> 9.5 of 12
    assert m.auroc == pytest.approx(9.5 / 12)
    assert m.auroc_low < m.auroc < m.auroc_high <= 1.0
    # x < 5.79: cases 5.0, 5.6 (2 of 3); controls 5.6 (1 of 4 high risk)
    assert m.sensitivity == pytest.approx(2 / 3)
    assert m.specificity == pytest.approx(3 / 4)
    brier = (0.25 + 0.49 + 0.64 + 0.09 + 0.04 + 0.01 + 0.0025) / 7
    assert m.brier == pytest.approx(brier)
    assert outcome_metrics(x[:3], risk[:3], label[:3], 5.79) is None


def test_calibration_of_simulated_outcomes():
    rng = np.random.default_rng(3)
    risk = scipy.special.expit(rng.normal(-1.0, 1.0, 20_000))
    calibrated = outcome_metrics(-risk, risk, rng.uniform(size=risk.size) < risk, 5.79)
    assert calibrated.calibration_slope == pytest.approx(1.0, abs=0.08)
    assert calibrated.calibration_intercept == pytest.approx(0.0, abs=0.05)
    steeper = scipy.special.expit(0.5 + 2.0 * scipy.special.logit(risk))
    off = outcome_metrics(-risk, risk, rng.uniform(size=risk.size) < steeper, 5.79)
    assert off.calibration_slope == pytest.approx(2.0, abs=0.15)


def test_labels():
    def patient(time_day, event):
        cohort = simulate_validation_cohort("niyigena2025", 1, random_seed=0)
        return dataclasses.replace(cohort[0], events=(EventRecord(time_day, event),))

    assert outcome_label(patient(20.0, 1), 90.0) is None  # colectomy within the window
    assert outcome_label(patient(40.0, 1), 90.0) == 1
    assert outcome_label(patient(120.0, 1), 90.0) == 0
    assert outcome_label(patient(90.0, 0), 90.0) == 0
    assert outcome_label(patient(60.0, 0), 90.0) is None  # censored before the horizon


def test_cohort_outcome_in_the_json():
    """Colectomy given to the patients with the lowest simulated exposure: AUROC well > 0.5."""
    decl = load_declaration("niyigena2025")
    cohort = simulate_validation_cohort(decl, 16, random_seed=8)
    last = np.array([p.observations[-1].value_mg_l / p.weight_kg for p in cohort])
    low = set(np.argsort(last)[:5])
    cohort = [
        dataclasses.replace(p, events=(EventRecord(50.0, 1) if i in low else EventRecord(90, 0),))
        for i, p in enumerate(cohort)
    ]
    out = validate_cohort(
        cohort,
        [decl, "wojciechowski2017"],
        covariates_of=lambda p: {"ALB": (4.0, "g/dL"), "ADA": 0},
        random_seed=1,
    ).to_json()
    json.dumps(out, allow_nan=False)
    own = out["models"][0]["outcome"]
    assert own["n_cases"] == 5 and own["n_controls"] == 11
    assert own["auroc"] > 0.7 and own["extrapolated"] is False
    assert out["models"][1]["outcome"]["extrapolated"] is True


def test_patient_score_is_the_weighted_posterior_median_of_the_nodes():
    """x̄ of one patient: the weighted median of ln(AUC/CL) over the posterior nodes, found
    here by sorting the nodes by hand (and the risk their weighted mean)."""
    from asuc_bayes.inference import PatientProblem, derived_quantities
    from asuc_bayes.inference.marginal import posterior
    from asuc_bayes.studies.validation.outcome import patient_outcome

    decl = load_declaration("niyigena2025")
    (patient,) = simulate_validation_cohort(decl, 1, random_seed=3)
    problem = PatientProblem.from_patient(decl, patient)
    nodes = posterior(problem, random_seed=0)
    result = patient_outcome(problem, nodes, patient)
    x = derived_quantities(problem, nodes.eta).ln_auc_cl.ravel()
    w = np.asarray(nodes.weight, dtype=float).ravel() / np.sum(nodes.weight)
    order = np.argsort(x)
    cumulative = np.cumsum(w[order])
    by_hand = x[order][np.argmax(cumulative >= 0.5)]
    assert abs(result.ln_auc_cl - by_hand) <= 0.02 * np.std(x)  # 1000 quantile atoms
    assert result.risk == pytest.approx(float(w @ derived_quantities(problem, nodes.eta).risk_90d))
