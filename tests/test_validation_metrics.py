"""Forecast metrics against hand computation on a five-patient cohort written here."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from asuc_bayes.inference.marginal import WeightedPosterior
from asuc_bayes.studies.validation.leave_future_out import Forecasts, LeaveFutureOut
from asuc_bayes.studies.validation.metrics import coverage, point_metrics
from asuc_bayes.studies.validation.study import (
    ModelFit,
    PatientValidation,
    average_forecasts,
    summarise,
)

# Five patients: (observed mg/L, censoring, predicted mg/L, PIT, P(censored region)).
# Censored records (code 1) hold the LLOQ 1.0; their prediction/PIT are not used.
COHORT = [
    [(10.0, 0, 12.0, 0.50, None)],  # rel +0.20
    [(20.0, 0, 15.0, 0.97, None)],  # rel -0.25
    [(5.0, 0, 5.5, 0.04, None), (8.0, 0, 4.0, 0.06, None)],  # +0.10, -0.50
    [(4.0, 0, 5.2, 0.93, None), (1.0, 1, 0.3, None, 0.30)],  # +0.30; censored, P = 0.30
    [(16.0, 0, 16.0, 0.12, None), (1.0, 1, 0.2, None, 0.02)],  # 0.00; censored, P = 0.02
]
REL = [0.20, -0.25, 0.10, -0.50, 0.30, 0.0]
# by hand: sum of REL = -0.15
MPE = -0.15 / 6
# squares 0.04 + 0.0625 + 0.01 + 0.25 + 0.09 + 0 = 0.4525
RMSE = math.sqrt(0.4525 / 6)
RMSE_LOG = math.sqrt(
    sum(math.log(r) ** 2 for r in (12 / 10, 15 / 20, 5.5 / 5, 4 / 8, 5.2 / 4, 1.0)) / 6
)
# |rel| <= 0.2: 0.2, 0.1, 0.0 -> 3 of 6; <= 0.3: also 0.25 and 0.3 -> 5 of 6
WITHIN_20, WITHIN_30 = 3 / 6, 5 / 6
# 90 %: measured PIT in [0.05, 0.95]: 0.50, 0.06, 0.93, 0.12 (4); censored P >= 0.05: 0.30 (1)
COVERAGE_90 = 5 / 8
# 80 %: PIT in [0.1, 0.9]: 0.50, 0.12 (2); censored P >= 0.1: 0.30 (1)
COVERAGE_80 = 3 / 8


def _arrays(rows):
    obs = np.array([r[0] for r in rows])
    cens = np.array([r[1] for r in rows])
    pred = np.array([r[2] for r in rows])
    pit = np.array([np.nan if r[3] is None else r[3] for r in rows])
    p_cens = np.array([np.nan if r[4] is None else r[4] for r in rows])
    return obs, cens, pred, pit, p_cens


def test_point_metrics_by_hand():
    obs, cens, pred, _, _ = _arrays([r for patient in COHORT for r in patient])
    measured = cens == 0
    m = point_metrics(obs[measured], pred[measured])
    assert m.n == 6
    assert m.mpe == pytest.approx(MPE, abs=1e-12)
    assert m.rmse == pytest.approx(RMSE, abs=1e-12)
    assert m.rmse_log == pytest.approx(RMSE_LOG, abs=1e-12)
    assert m.within_20 == pytest.approx(WITHIN_20)
    assert m.within_30 == pytest.approx(WITHIN_30)


def test_coverage_by_hand_with_censoring_rule():
    _, cens, _, pit, p_cens = _arrays([r for patient in COHORT for r in patient])
    assert coverage(pit, p_cens, cens, 0.90) == pytest.approx(COVERAGE_90)
    assert coverage(pit, p_cens, cens, 0.80) == pytest.approx(COVERAGE_80)
    # the censored record with P(y < LLOQ) = 0.02 is not covered; at P = 0.06 it would be
    p_cens[-1] = 0.06
    assert coverage(pit, p_cens, cens, 0.90) == pytest.approx(6 / 8)


def test_bad_inputs_have_clear_errors():
    with pytest.raises(ValueError, match="positive"):
        point_metrics(np.array([0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="level"):
        coverage(np.array([0.5]), np.array([np.nan]), np.array([0]), 90)
    assert point_metrics(np.zeros(0), np.zeros(0)) is None


def _fit(rows) -> ModelFit:
    obs, cens, pred, pit, p_cens = _arrays(rows)
    n = obs.size
    forecasts = Forecasts(pred, pit, p_cens, np.full(n, -1.0))
    lfo = LeaveFutureOut(
        time_day=np.arange(n, dtype=float),
        observed_mg_l=obs,
        censoring=cens,
        first=np.arange(n) == 0,
        a_priori=forecasts,
        bayesian=forecasts,
        map=forecasts,
        full=WeightedPosterior(np.zeros((1, 2)), np.ones(1), -1.0, "quadrature", 0.0, 1.0),
        prefix_log_marginal=np.zeros(n),
    )
    return ModelFit(
        "m", 2, lfo, np.linspace(-1.0, 1.0, n), -1.0, 0.0, "quadrature", 1.0, -2.0, 0.01
    )


def test_summary_pools_the_five_patients_by_hand():
    result = summarise([PatientValidation(f"p{i}", (_fit(rows),)) for i, rows in enumerate(COHORT)])
    out = result.to_json()
    json.dumps(out, allow_nan=False)
    assert (out["n_subjects"], out["n_concentrations"]) == (5, 8)
    a_priori = out["models"][0]["a_priori"]
    assert a_priori["mpe"] == pytest.approx(MPE)
    assert a_priori["rmse"] == pytest.approx(RMSE)
    assert a_priori["within_30"] == pytest.approx(WITHIN_30)
    assert a_priori["coverage_90"] == pytest.approx(COVERAGE_90)
    assert a_priori["n_censored"] == 2
    # Bayesian forecasts skip each patient's first record: left are
    # P3 (8 -> 4, PIT 0.06), P4 (censored, 0.30), P5 (censored, 0.02)
    bayesian = out["models"][0]["bayesian"]
    assert bayesian["n"] == 3 and bayesian["n_censored"] == 2
    assert bayesian["mpe"] == pytest.approx(-0.5)
    assert bayesian["coverage_90"] == pytest.approx(2 / 3)
    assert bayesian["map_coverage_80"] == pytest.approx(1 / 3)


def test_summary_skips_failed_patients_and_reports_why():
    patients = [
        PatientValidation("p0", (_fit(COHORT[0]),)),
        PatientValidation("bad", (), "MissingCovariateError: ALB"),
    ]
    out = summarise(patients).to_json()
    assert out["n_subjects"] == 1
    assert out["skipped"] == [{"id": "bad", "reason": "MissingCovariateError: ALB"}]
    # one measured record: no NPDE tests (fewer than 3 values), null rather than NaN
    assert out["models"][0]["npde"] is None
    json.dumps(out, allow_nan=False)


def test_model_averaged_forecast_by_hand():
    """Two models, records (10 measured, 1.0 censored): record 2 is forecast with weights
    p(m | y_1) ∝ p_m(y_1) = e^-2 : e^-3, record 1 with the equal prior."""
    rows = [(10.0, 0, 12.0, 0.50, None), (1.0, 1, 0.5, None, 0.30)]
    a, b = _fit(rows), _fit(rows)
    fb = Forecasts(
        np.array([8.0, 0.9]), np.array([0.2, np.nan]), np.array([np.nan, 0.6]), np.log([0.1, 0.6])
    )
    a_lfo = dataclasses.replace(
        a.forecasts,
        bayesian=dataclasses.replace(a.forecasts.bayesian, log_density=np.log([0.3, 0.3])),
        prefix_log_marginal=np.array([0.0, -2.0]),
    )
    b_lfo = dataclasses.replace(
        b.forecasts, a_priori=fb, bayesian=fb, prefix_log_marginal=np.array([0.0, -3.0])
    )
    patient = PatientValidation(
        "p", (dataclasses.replace(a, forecasts=a_lfo), dataclasses.replace(b, forecasts=b_lfo))
    )
    mixed = average_forecasts(patient, None)
    w = math.exp(-2) / (math.exp(-2) + math.exp(-3))
    assert mixed.bayesian.point_mg_l[0] == pytest.approx(0.5 * 12.0 + 0.5 * 8.0)
    assert mixed.bayesian.pit[0] == pytest.approx(0.5 * 0.5 + 0.5 * 0.2)
    assert mixed.bayesian.p_censored[1] == pytest.approx(w * 0.30 + (1 - w) * 0.6)
    assert mixed.bayesian.log_density[1] == pytest.approx(math.log(w * 0.3 + (1 - w) * 0.6))
    assert mixed.a_priori.point_mg_l[1] == pytest.approx(0.5 * 0.5 + 0.5 * 0.9)
