"""Leave-future-out forecasts against independent integration (dense grid, Monte Carlo)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from asuc_bayes.inference.map import find_map
from asuc_bayes.inference.marginal import WeightedPosterior
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.pk import DoseArrays
from asuc_bayes.spec import load_declaration
from asuc_bayes.studies.validation.leave_future_out import forecast_record, leave_future_out, prefix

SIGMA = 0.44  # niyigena2025 proportional residual SD
DOSES = DoseArrays(
    start_day=[0.0, 14.0, 42.0], amount_mg=[350.0, 350.0, 350.0], duration_day=[1 / 12] * 3
)


def _problem(values=(30.0, 6.0, 1.0), censoring=(0, 0, 1)) -> PatientProblem:
    return PatientProblem.build(
        load_declaration("niyigena2025"),
        DOSES,
        time_day=[3.0, 13.9, 41.9],
        value_mg_l=list(values),
        censoring=list(censoring),
        covariates={"WT": 70.0, "CRP": 60.0},
    )


def test_one_node_forecast_is_the_residual_distribution():
    problem = _problem()
    eta = np.array([0.2, -0.1])
    node = WeightedPosterior(eta[None, :], np.ones(1), 0.0, "point", 0.0, 1.0)
    f = problem.predict(eta[None, :])[0]
    point, pit, p_cens, lpd = forecast_record(problem, node, 1, eta)
    assert point == pytest.approx(f[1])
    assert pit == pytest.approx(scipy.stats.norm.cdf(6.0, f[1], SIGMA * f[1]))
    assert lpd == pytest.approx(scipy.stats.norm.logpdf(6.0, f[1], SIGMA * f[1]))
    point, pit, p_cens, lpd = forecast_record(problem, node, 2, eta)
    assert np.isnan(pit)
    assert p_cens == pytest.approx(scipy.stats.norm.cdf(1.0, f[2], SIGMA * f[2]))
    assert lpd == pytest.approx(np.log(p_cens))


def _dense_posterior(problem: PatientProblem, n: int = 501):
    sd = np.sqrt(np.diag(problem.omega))
    axes = [np.linspace(-8 * s, 8 * s, n) for s in sd]
    g0, g1 = np.meshgrid(*axes, indexing="ij")
    eta = np.stack([g0.ravel(), g1.ravel()], axis=-1)
    lp = problem.log_posterior(eta)
    w = np.exp(lp - lp.max())
    return eta, w / w.sum()


def test_bayesian_forecast_matches_a_dense_grid_posterior_predictive():
    problem = _problem()
    lfo = leave_future_out(problem)
    for k in (1, 2):
        eta, w = _dense_posterior(prefix(problem, k))
        f = np.maximum(problem.predict(eta, problem.time_day[k : k + 1])[:, 0], 1e-12)
        cdf = w @ scipy.stats.norm.cdf(problem.value_mg_l[k], f, SIGMA * f)
        if k == 1:
            assert lfo.bayesian.pit[k] == pytest.approx(cdf, abs=1e-4)
        else:  # censored: the probability of the region below the LLOQ
            assert np.isnan(lfo.bayesian.pit[k])
            assert lfo.bayesian.p_censored[k] == pytest.approx(cdf, abs=1e-4)
        assert lfo.bayesian.point_mg_l[k] == pytest.approx(w @ f, rel=1e-4)
    # the first record has no past: its Bayesian forecast is the a-priori one
    assert lfo.first.tolist() == [True, False, False]
    assert lfo.bayesian.pit[0] == lfo.a_priori.pit[0]
    # a priori point prediction: the typical patient (eta = 0)
    assert lfo.a_priori.point_mg_l[1] == pytest.approx(problem.predict(np.zeros((1, 2)))[0, 1])


def test_map_laplace_forecast_matches_monte_carlo():
    problem = _problem()
    lfo = leave_future_out(problem)
    past = prefix(problem, 1)
    mode = find_map(past.log_posterior, past.omega)
    rng = np.random.default_rng(0)
    eta = rng.multivariate_normal(mode.eta, mode.covariance, size=200_000)
    f = problem.predict(eta, problem.time_day[1:2])[:, 0]
    pit = np.mean(scipy.stats.norm.cdf(6.0, f, SIGMA * f))
    assert lfo.map.pit[1] == pytest.approx(pit, abs=3e-3)
    assert lfo.map.point_mg_l[1] == pytest.approx(problem.predict(mode.eta[None, :])[0, 1])


def test_records_are_forecast_in_time_order():
    problem = PatientProblem.build(
        load_declaration("niyigena2025"),
        DOSES,
        time_day=[13.9, 3.0],
        value_mg_l=[6.0, 30.0],
        covariates={"WT": 70.0, "CRP": 60.0},
    )
    lfo = leave_future_out(problem)
    assert lfo.time_day.tolist() == [3.0, 13.9]
    assert lfo.observed_mg_l.tolist() == [30.0, 6.0]
