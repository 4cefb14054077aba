"""The independence Metropolis–Hastings kernel against exact distributions, and its failure
mode (a proposal too narrow for the target) caught by the ESS gate."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import scipy.stats
import xarray as xr

from asuc_bayes.independence import independence_metropolis, multivariate_t_logpdf


def _ess(draws: np.ndarray) -> float:
    dataset = xr.Dataset({"x": (("chain", "draw", "dim"), draws)})
    return float(az.ess(dataset, method="bulk")["x"].min())


def test_t_logpdf_against_scipy():
    z = np.random.default_rng(0).standard_normal((50, 2)) * 3
    reference = scipy.stats.multivariate_t(loc=[0, 0], shape=1.5**2 * np.eye(2), df=4).logpdf(z)
    np.testing.assert_allclose(multivariate_t_logpdf(z, 4.0, 1.5), reference, rtol=1e-12)


def test_correlated_normal_moments():
    mean = np.array([0.3, -0.5])
    cov = np.array([[1.4, 0.6], [0.6, 0.8]])
    target = scipy.stats.multivariate_normal(mean, cov)
    draws, acceptance = independence_metropolis(
        target.logpdf, 2, chains=4, draws=5000, random_seed=3
    )
    flat = draws.reshape(-1, 2)
    ess = _ess(draws)
    assert ess > 4000 and np.all(acceptance > 0.3)
    assert np.all(np.abs(flat.mean(axis=0) - mean) <= 4 * np.sqrt(cov.diagonal() / ess))
    np.testing.assert_allclose(np.cov(flat.T), cov, atol=0.08)


def test_skewed_target_quantiles():
    """x ~ Gamma(3) shifted, y | x ~ N(0.5 x, 0.5²): quantiles of x against the exact ones."""

    def log_target(z):
        x, y = z[:, 0] + 2.0, z[:, 1]
        return scipy.stats.gamma(3.0).logpdf(x) + scipy.stats.norm(0.5 * x, 0.5).logpdf(y)

    draws, _ = independence_metropolis(log_target, 2, chains=4, draws=5000, random_seed=4)
    x = draws[..., 0].ravel() + 2.0
    exact = scipy.stats.gamma(3.0).ppf([0.05, 0.5, 0.95])
    np.testing.assert_allclose(np.quantile(x, [0.05, 0.5, 0.95]), exact, rtol=0.05)


def test_a_proposal_too_narrow_is_caught_by_the_ess():
    wide = scipy.stats.multivariate_normal([0, 0], np.diag([25.0, 25.0]))
    draws, acceptance = independence_metropolis(wide.logpdf, 2, chains=4, draws=1000, random_seed=5)
    assert _ess(draws) < 400  # the gate (bulk ESS >= 400) sends such a patient to NUTS
    assert acceptance.mean() < 0.3


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        independence_metropolis(lambda z: -z.sum(axis=1), 2, chains=0, draws=10)
    with pytest.raises(FloatingPointError, match="finite density"):
        independence_metropolis(
            lambda z: np.full(len(z), -np.inf), 2, chains=2, draws=10, random_seed=1
        )
