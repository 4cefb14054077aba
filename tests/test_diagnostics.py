"""The fast gate diagnostics (asuc_bayes.inference.diagnostics) equal ArviZ's rank-normalised split
R-hat
and bulk ESS, which they replace in the per-patient gates."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from asuc_bayes.inference.diagnostics import monte_carlo_errors, rank_diagnostics


def _arviz(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dataset = xr.Dataset({"x": (("chain", "draw", "k"), draws)})
    return az.rhat(dataset)["x"].values, az.ess(dataset, method="bulk")["x"].values


def _cases():
    rng = np.random.default_rng(7)
    rejected = rng.normal(size=(4, 1000, 2))
    rejected[:, 1::2] = rejected[:, ::2]  # an independence sampler's repeats: tied values
    stuck = rng.normal(size=(4, 60, 2))
    stuck[..., 1] = 2.5  # every draw the same: R-hat undefined, ESS = all draws
    return {
        "independent": rng.normal(size=(4, 1000, 2)),
        "ties": rejected,
        "rounded": np.round(rng.normal(size=(3, 400, 3)), 1),
        "random_walks": np.cumsum(rng.normal(size=(4, 1001, 2)), axis=1),  # odd draw count
        "separated_chains": rng.normal(size=(2, 9, 2)) + np.array([0.0, 4.0])[:, None, None],
        "constant_column": stuck,
    }


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # ArviZ's 0/0
@pytest.mark.parametrize("name", sorted(_cases()))
def test_rank_diagnostics_equal_arviz(name):
    draws = _cases()[name]
    rhat, ess = rank_diagnostics(draws)
    rhat_arviz, ess_arviz = _arviz(draws)
    np.testing.assert_allclose(rhat, rhat_arviz, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(ess, ess_arviz, rtol=1e-10, equal_nan=True)


def test_undefined_rhat_is_nan_and_fails_the_gate(spec):
    from asuc_bayes.inference.forecast import _convergence

    draws = _cases()["constant_column"]
    assert np.isnan(rank_diagnostics(draws)[0][1])
    checks = _convergence(draws, 0)
    assert np.isnan(checks["rhat_max"]) and not checks["passed"]


def test_rank_diagnostics_shape_errors():
    with pytest.raises(ValueError, match="chain >= 2"):
        rank_diagnostics(np.zeros((1, 100, 2)))
    with pytest.raises(ValueError, match="draw >= 4"):
        rank_diagnostics(np.zeros((4, 3, 2)))


def _arviz_mcse(draws: np.ndarray, probs) -> tuple[np.ndarray, np.ndarray]:
    dataset = xr.Dataset({"x": (("chain", "draw", "k"), draws)})
    mean = az.mcse(dataset, method="mean")["x"].values
    quantile = [az.mcse(dataset, method="quantile", prob=p)["x"].values for p in probs]
    return mean, np.array(quantile)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # ArviZ's 0/0
@pytest.mark.parametrize("name", sorted(_cases()))
def test_monte_carlo_errors_equal_arviz(name):
    draws = _cases()[name]
    probs = (0.025, 0.5, 0.975)
    errors = monte_carlo_errors(draws, probs)
    mean, quantile = _arviz_mcse(draws, probs)
    np.testing.assert_allclose(errors.mean, mean, rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(errors.quantile, quantile, rtol=1e-8, equal_nan=True)


def test_monte_carlo_errors_one_chain_and_constant_draws_are_zero():
    draws = np.random.default_rng(3).normal(size=(1, 500, 1))
    probs = (0.025, 0.5, 0.975)
    mean, quantile = _arviz_mcse(draws, probs)
    errors = monte_carlo_errors(draws, probs)
    np.testing.assert_allclose(errors.mean, mean, rtol=1e-8)
    np.testing.assert_allclose(errors.quantile, quantile, rtol=1e-8)
    constant = monte_carlo_errors(np.full((4, 100, 1), 2.5))
    assert np.all(constant.mean == 0) and np.all(constant.quantile == 0)


def test_independent_errors_follow_the_iid_formulas():
    """i.i.d. draws (exact grid): SD/√N and the Beta interval with ESS = N, computed here by
    hand from scipy.stats.beta; both close to the asymptotic quantile SE √(p(1-p)/N)/f(q)."""
    import scipy.stats

    draws = np.random.default_rng(4).normal(size=(4, 2500, 1))
    flat = np.sort(draws.ravel())
    n = flat.size
    errors = monte_carlo_errors(draws, (0.025, 0.975), independent=True)
    assert errors.mean[0] == pytest.approx(np.std(flat, ddof=1) / np.sqrt(n), rel=1e-12)
    for row, p in enumerate((0.025, 0.975)):
        low, high = scipy.stats.beta.ppf([0.1586553, 0.8413447], n * p + 1, n * (1 - p) + 1)
        by_hand = (flat[int(np.ceil(high * n - 1))] - flat[int(np.floor(low * n - 1))]) / 2
        assert errors.quantile[row, 0] == pytest.approx(by_hand, rel=1e-12)
        asymptotic = np.sqrt(p * (1 - p) / n) / scipy.stats.norm.pdf(scipy.stats.norm.ppf(p))
        assert errors.quantile[row, 0] == pytest.approx(asymptotic, rel=0.25)


def test_mcse_matches_the_spread_of_repeated_runs():
    """The MCSE of autocorrelated chains (AR(1), ρ = 0.8) is the SD of the estimates over
    independent repetitions (400 runs; ±15 %)."""
    rng = np.random.default_rng(5)
    runs, chains, n, rho = 400, 4, 1000, 0.8
    noise = rng.normal(size=(runs, chains, n)) * np.sqrt(1 - rho**2)
    x = np.empty_like(noise)
    x[..., 0] = rng.normal(size=(runs, chains))
    for t in range(1, n):
        x[..., t] = rho * x[..., t - 1] + noise[..., t]
    estimates = np.quantile(x.reshape(runs, -1), 0.975, axis=1)
    mcse = [monte_carlo_errors(x[r][..., None], (0.975,)).quantile[0, 0] for r in range(40)]
    assert np.mean(mcse) == pytest.approx(np.std(estimates, ddof=1), rel=0.15)
    means = x.reshape(runs, -1).mean(axis=1)
    mean_mcse = [monte_carlo_errors(x[r][..., None]).mean[0] for r in range(40)]
    assert np.mean(mean_mcse) == pytest.approx(np.std(means, ddof=1), rel=0.15)


def test_monte_carlo_errors_shape_error():
    with pytest.raises(ValueError, match="draw >= 4"):
        monte_carlo_errors(np.zeros((2, 3, 1)))
