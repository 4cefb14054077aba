"""The independence Metropolis–Hastings kernel against exact distributions, and its failure
mode (a proposal too narrow for the target) caught by the ESS gate."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import scipy.stats
import xarray as xr

from asuc_bayes.inference.diagnostics import monte_carlo_errors
from asuc_bayes.inference.independence import (
    IndependenceChains,
    MixtureProposal,
    StudentTProposal,
    independence_metropolis,
    multivariate_t_logpdf,
)


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
        target.logpdf, StudentTProposal(2), chains=4, draws=5000, random_seed=3
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

    draws, _ = independence_metropolis(
        log_target, StudentTProposal(2), chains=4, draws=5000, random_seed=4
    )
    x = draws[..., 0].ravel() + 2.0
    exact = scipy.stats.gamma(3.0).ppf([0.05, 0.5, 0.95])
    np.testing.assert_allclose(np.quantile(x, [0.05, 0.5, 0.95]), exact, rtol=0.05)


def test_a_proposal_too_narrow_is_caught_by_the_ess():
    wide = scipy.stats.multivariate_normal([0, 0], np.diag([25.0, 25.0]))
    draws, acceptance = independence_metropolis(
        wide.logpdf, StudentTProposal(2), chains=4, draws=1000, random_seed=5
    )
    assert _ess(draws) < 400  # the gate (bulk ESS >= 400) sends such a patient to NUTS
    assert acceptance.mean() < 0.3


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        independence_metropolis(lambda z: -z.sum(axis=1), StudentTProposal(2), chains=0, draws=10)
    with pytest.raises(FloatingPointError, match="finite density"):
        independence_metropolis(
            lambda z: np.full(len(z), -np.inf),
            StudentTProposal(2),
            chains=2,
            draws=10,
            random_seed=1,
        )


def test_mixture_density_is_normalised_and_matches_its_samples():
    """The mixture's log density integrates to one (2-D quadrature on a wide grid) and its
    samples follow it (a 1-D marginal against the mixture's own CDF)."""
    narrow = StudentTProposal(2, df=4.0, scale=0.5)
    broad = StudentTProposal(2, df=30.0, scale=3.0)
    mixture = MixtureProposal([narrow, broad], [0.7, 0.3])
    axis = np.linspace(-40, 40, 1601)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    density = np.exp(mixture.log_density(np.column_stack([x.ravel(), y.ravel()])))
    total = density.sum() * (axis[1] - axis[0]) ** 2
    assert abs(total - 1.0) < 2e-3  # the t(4) tail beyond |z| = 40 holds ~1e-5
    samples = mixture.sample(20000, np.random.default_rng(8))

    def marginal_cdf(value):
        return 0.7 * scipy.stats.t(4.0, scale=0.5).cdf(value) + 0.3 * scipy.stats.t(
            30.0, scale=3.0
        ).cdf(value)

    assert scipy.stats.kstest(samples[:, 0], marginal_cdf).pvalue > 1e-3


def test_mixture_rejects_bad_weights():
    with pytest.raises(ValueError, match="weight"):
        MixtureProposal([StudentTProposal(2)], [0.5, 0.5])
    with pytest.raises(ValueError, match="weight"):
        MixtureProposal([StudentTProposal(2), StudentTProposal(2)], [-1.0, 2.0])


def test_a_defensive_component_recovers_a_tail_the_laplace_proposal_misses():
    """A target with a heavy tail along one axis (Cauchy-like in x): a narrow t proposal
    under-covers the upper quantiles; mixing in a broad component puts them back."""
    target = scipy.stats.multivariate_t(loc=[0, 0], shape=np.diag([1.0, 0.25]), df=1.5)
    exact_q99 = scipy.stats.t(1.5).ppf(0.99)
    narrow = StudentTProposal(2, df=30.0, scale=1.0)
    defended = MixtureProposal([narrow, StudentTProposal(2, df=1.0, scale=2.0)], [0.8, 0.2])
    q99 = {}
    for name, proposal in {"narrow": narrow, "defended": defended}.items():
        draws, _ = independence_metropolis(
            target.logpdf, proposal, chains=4, draws=5000, random_seed=9
        )
        q99[name] = np.quantile(draws[..., 0], 0.99)
    assert q99["narrow"] < 0.6 * exact_q99
    assert abs(q99["defended"] - exact_q99) < 0.25 * exact_q99


def test_thinning_keeps_every_kth_state_of_the_same_chain():
    target = scipy.stats.multivariate_normal([0.5, 0.0], np.eye(2))
    proposal = StudentTProposal(2)
    full, _ = independence_metropolis(
        target.logpdf, proposal, chains=2, draws=400, burn=10, random_seed=12
    )
    thinned, _ = independence_metropolis(
        target.logpdf, proposal, chains=2, draws=100, burn=10, thin=4, random_seed=12
    )
    assert thinned.shape == (2, 100, 2)
    np.testing.assert_array_equal(thinned, full[:, 3::4])


def _chain_states_by_hand(log_weight, log_uniform):
    """The independence chain's bookkeeping in plain Python (the reference of the compiled
    loop): start at the first proposal, move to proposal s if u_s < w_s / w_current."""
    index = np.empty(log_weight.shape, dtype=np.int64)
    for chain in range(log_weight.shape[0]):
        current = 0
        for step in range(log_weight.shape[1]):
            weight = log_weight[chain, step]
            if step > 0 and weight > -np.inf:
                if log_uniform[chain, step] < weight - log_weight[chain, current]:
                    current = step
            index[chain, step] = current
    return index


def test_compiled_chain_bookkeeping_equals_the_python_loop():
    from asuc_bayes.inference.independence import _chain_states

    rng = np.random.default_rng(4)
    log_weight = rng.normal(scale=2.0, size=(4, 3000))
    log_weight[rng.uniform(size=log_weight.shape) < 0.05] = -np.inf  # no density there
    log_weight[1, 0] = -np.inf  # a chain starting where the density vanishes moves on
    log_uniform = np.log(rng.uniform(size=log_weight.shape))
    index = np.empty(log_weight.shape, dtype=np.int64)
    _chain_states(log_weight, log_uniform, index)
    assert np.array_equal(index, _chain_states_by_hand(log_weight, log_uniform))
    assert index[1, -1] > 0


def test_a_continued_run_starts_with_the_same_draws():
    target = scipy.stats.multivariate_normal([0.5, 0.0], np.eye(2))
    args = {"chains": 3, "burn": 10, "thin": 2, "random_seed": 8}
    once, acceptance = independence_metropolis(
        target.logpdf, StudentTProposal(2), draws=200, **args
    )
    run = IndependenceChains(target.logpdf, StudentTProposal(2), **args)
    np.testing.assert_array_equal(run.extend(200), once)
    np.testing.assert_array_equal(run.acceptance, acceptance)
    assert run.extend(50).shape == (3, 50, 2) and run.draws == 250


def test_a_continued_chain_moves_on_from_its_last_state():
    """After the first call every new proposal has zero density: a chain that continues from
    its last state must stay there (a restart would raise: no finite point)."""
    calls = []

    def log_target(z):
        calls.append(len(z))
        base = -0.5 * np.sum(z * z, axis=1)
        return base if len(calls) == 1 else np.full(len(z), -np.inf)

    run = IndependenceChains(log_target, StudentTProposal(2), chains=2, burn=5, random_seed=9)
    first = run.extend(20)
    accepted = run.acceptance * 20
    more = run.extend(7)
    np.testing.assert_array_equal(more, np.repeat(first[:, -1:], 7, axis=1))
    np.testing.assert_allclose(run.acceptance * 27, accepted)  # no new moves


def test_an_extended_run_samples_the_target():
    """x ~ Gamma(3) shifted, y | x ~ N(0.5 x, 0.5²), run in three pieces: the 5/50/95 %
    quantiles of x within 4 MCSE of the exact ones."""

    def log_target(z):
        x, y = z[:, 0] + 2.0, z[:, 1]
        return scipy.stats.gamma(3.0).logpdf(x) + scipy.stats.norm(0.5 * x, 0.5).logpdf(y)

    run = IndependenceChains(log_target, StudentTProposal(2), chains=4, thin=2, random_seed=6)
    draws = np.concatenate([run.extend(500), run.extend(1500), run.extend(2000)], axis=1)
    x = draws[..., :1] + 2.0
    probs = (0.05, 0.5, 0.95)
    errors = monte_carlo_errors(x, probs)
    exact = scipy.stats.gamma(3.0).ppf(probs)
    assert np.all(np.abs(np.quantile(x.ravel(), probs) - exact) < 4 * errors.quantile[:, 0])
