"""Marginal likelihoods against brute-force integration; model weights against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.special

from asuc_bayes.inference.averaging import aic_weights, probabilities, stacking_weights
from asuc_bayes.inference.marginal import (
    adaptive_quadrature,
    importance_sampling,
    pareto_k,
    posterior,
    prior_nodes,
)
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.pk import DoseArrays
from asuc_bayes.spec import load_declaration

DOSES = DoseArrays(
    start_day=[0.0, 14.0, 42.0], amount_mg=[350.0, 350.0, 350.0], duration_day=[1 / 12] * 3
)


def _niyigena(values=(30.0, 6.0, 1.0), censoring=(0, 0, 1)) -> PatientProblem:
    return PatientProblem.build(
        load_declaration("niyigena2025"),
        DOSES,
        time_day=[3.0, 13.9, 41.9],
        value_mg_l=list(values),
        censoring=list(censoring),
        covariates={"WT": 70.0, "CRP": 60.0},
    )


def _wojciechowski() -> PatientProblem:
    return PatientProblem.build(
        load_declaration("wojciechowski2017"),
        DOSES,
        time_day=[1.0, 13.9, 41.9],
        value_mg_l=[60.0, 9.0, 2.5],
        covariates={"WT": 70.0, "ALB": (35.0, "g/L"), "ADA": 0},
    )


def _dense_grid_log_marginal(problem: PatientProblem, n: int = 801, width: float = 8.0):
    """ln ∫∫ p(y, η) dη by the trapezoid rule on a dense grid over ±width prior SDs."""
    sd = np.sqrt(np.diag(problem.omega))
    axes = [np.linspace(-width * s, width * s, n) for s in sd]
    g0, g1 = np.meshgrid(*axes, indexing="ij")
    eta = np.stack([g0.ravel(), g1.ravel()], axis=-1)
    log_joint = problem.log_posterior(eta).reshape(n, n)
    w0 = np.full(n, axes[0][1] - axes[0][0])
    w1 = np.full(n, axes[1][1] - axes[1][0])
    w0[[0, -1]] /= 2
    w1[[0, -1]] /= 2
    log_cell = np.log(w0)[:, None] + np.log(w1)[None, :]
    return float(scipy.special.logsumexp(log_joint + log_cell))


def test_two_effects_grid_matches_a_dense_grid_and_a_long_importance_run():
    """This patient's posterior has a ridge far from the MAP (1.4 % of its mass beyond 8
    Laplace SDs): the default grid gets it, adaptive Gauss-Hermite does not (documented)."""
    problem = _niyigena()
    reference = _dense_grid_log_marginal(problem)
    post = posterior(problem)
    assert post.method == "grid"
    assert post.log_marginal == pytest.approx(reference, abs=1e-5)
    long_run = importance_sampling(problem, 200_000, random_seed=11)
    assert abs(long_run.log_marginal - reference) < 4 * long_run.mcse + 1e-4
    assert abs(adaptive_quadrature(problem).log_marginal - reference) > 5e-3
    # an outlying patient (posterior far from the prior): still exact
    outlier = _niyigena(values=(120.0, 60.0, 40.0), censoring=(0, 0, 0))
    assert posterior(outlier).log_marginal == pytest.approx(
        _dense_grid_log_marginal(outlier), abs=1e-5
    )


def test_importance_sampling_agrees_within_its_standard_error():
    problem = _niyigena()
    exact = posterior(problem).log_marginal
    post = importance_sampling(problem, 4000, random_seed=3)
    assert post.mcse > 0 and post.ess > 500
    assert abs(post.log_marginal - exact) < 4 * post.mcse + 1e-3


def test_four_effects_importance_sampling_against_a_very_long_run():
    """Default importance sampling (4000 draws) against 400 000 draws of another seed; the
    reported MCSE is checked to be honest by the spread over seeds."""
    problem = _wojciechowski()
    reference = importance_sampling(problem, 400_000, random_seed=99)
    assert reference.mcse < 5e-3
    # brute force, a different estimator: the mean likelihood over 10^6 prior draws
    rng = np.random.default_rng(7)
    eta = rng.multivariate_normal(np.zeros(4), problem.omega, size=1_000_000)
    log_lik = problem.log_likelihood(eta)
    brute = scipy.special.logsumexp(log_lik) - math.log(eta.shape[0])
    ratio = np.exp(log_lik - log_lik.max())
    brute_se = np.std(ratio) / np.mean(ratio) / math.sqrt(eta.shape[0])
    assert abs(brute - reference.log_marginal) < 4 * math.hypot(brute_se, reference.mcse)
    estimates = []
    for seed in range(5):
        post = posterior(problem, random_seed=seed)
        assert post.method == "importance" and post.ess > 500
        assert abs(post.log_marginal - reference.log_marginal) < 4 * post.mcse + 4e-3
        estimates.append((post.log_marginal, post.mcse))
    assert post.pareto_k is not None and post.pareto_k < 0.7
    spread = np.std([e for e, _ in estimates])
    assert spread < 3 * np.mean([m for _, m in estimates])


def test_posterior_nodes_give_the_posterior_mean():
    """The weighted nodes' mean of η equals the dense-grid posterior mean."""
    problem = _niyigena()
    post = posterior(problem)
    n = 601
    sd = np.sqrt(np.diag(problem.omega))
    axes = [np.linspace(-8 * s, 8 * s, n) for s in sd]
    g0, g1 = np.meshgrid(*axes, indexing="ij")
    eta = np.stack([g0.ravel(), g1.ravel()], axis=-1)
    lp = problem.log_posterior(eta)
    w = np.exp(lp - lp.max())
    grid_mean = (w @ eta) / w.sum()
    np.testing.assert_allclose(post.weight @ post.eta, grid_mean, atol=2e-4)


def test_prior_nodes_reproduce_omega():
    problem = _wojciechowski()
    nodes = prior_nodes(problem)
    second = (nodes.eta * nodes.weight[:, None]).T @ nodes.eta
    np.testing.assert_allclose(second, problem.omega, atol=1e-10)


def test_model_probabilities_by_hand():
    # evidences 1 : 3 and a prior 3 : 1 -> 0.5 : 0.5
    log_ml = np.log(np.array([[1.0, 3.0], [2.0, 2.0]]))
    np.testing.assert_allclose(probabilities(log_ml), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(probabilities(log_ml, np.array([3.0, 1.0]))[0], [0.5, 0.5])
    # AIC: ln p(y, η̂) = -10 (2 η) and -9 (4 η): exp(-12) : exp(-13)
    np.testing.assert_allclose(
        aic_weights(np.array([[-10.0, -9.0]]), np.array([2, 4]))[0],
        [1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1))],
    )
    with pytest.raises(ValueError, match="prior_weights"):
        probabilities(log_ml, np.array([1.0]))


def test_stacking_weights_against_a_scalar_search():
    rng = np.random.default_rng(0)
    density = rng.uniform(0.05, 1.0, size=(40, 2))
    density[:10, 0] *= 5.0
    weights = stacking_weights(np.log(density))

    def negative(w):
        return -np.sum(np.log(w * density[:, 0] + (1 - w) * density[:, 1]))

    best = scipy.optimize.minimize_scalar(negative, bounds=(0, 1), method="bounded").x
    assert weights[0] == pytest.approx(best, abs=1e-4)
    assert weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("shape", "tolerance"), [(0.0, 0.06), (0.5, 0.08), (0.8, 0.1)])
def test_pareto_k_recovers_known_tail_shapes(shape, tolerance):
    """Weights with a generalised Pareto tail of known shape ξ (ξ = 0: exponential)."""
    rng = np.random.default_rng(1)
    if shape == 0.0:
        weights = rng.exponential(size=40_000)
    else:
        weights = rng.pareto(1.0 / shape, size=40_000) + 1.0
    assert pareto_k(np.log(weights)) == pytest.approx(shape, abs=tolerance)
    assert pareto_k(np.zeros(10)) is None
