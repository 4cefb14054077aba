"""Independence Metropolis–Hastings over the marginal model's population parameters: the
Laplace approximation against exact Gaussians, the draws against a skewed target's exact
moments and quantiles, the refusal of a target with heavier tails than the proposal, and the
marginal fit through it against the same fit by NUTS."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats

from asuc_bayes.inference import population_marginal_imh as imh
from asuc_bayes.inference.diagnostics import rank_diagnostics
from asuc_bayes.spec.config import load_model
from asuc_bayes.studies.simulate import simulate_cohort


class Gaussian:
    """N(mean, covariance): log density and gradient."""

    def __init__(self, mean, covariance):
        self.mean, self.precision = np.asarray(mean), np.linalg.inv(covariance)

    def log_density(self, x):
        d = x - self.mean
        return float(-0.5 * d @ self.precision @ d), -self.precision @ d


class SkewedTarget:
    """x0 = ln G with G ~ Gamma(5, 1) (left-skewed), x1 | x0 ~ N(0.5 x0, 0.3²)."""

    shape = 5.0

    def log_density(self, x):
        x0, x1 = x
        value = self.shape * x0 - np.exp(x0) - 0.5 * ((x1 - 0.5 * x0) / 0.3) ** 2
        gradient = np.array(
            [self.shape - np.exp(x0) + 0.5 * (x1 - 0.5 * x0) / 0.09, -(x1 - 0.5 * x0) / 0.09]
        )
        return float(value), gradient


class HeavyTarget:
    """A bivariate t with 0.5 degrees of freedom: far heavier tails than the t(5) proposal's
    (the weights' tail index is 5 / (5 − 0.5), so their Pareto k is 0.9)."""

    def log_density(self, x):
        q = float(x @ x)
        return -1.25 * np.log1p(2.0 * q), -5.0 * x / (1.0 + 2.0 * q)


class Flat:
    def log_density(self, x):
        return 0.0, np.zeros_like(x)


def test_laplace_fit_of_a_gaussian_is_the_gaussian():
    covariance = np.array([[0.04, 0.018, 0.0], [0.018, 0.09, -0.01], [0.0, -0.01, 0.25]])
    mean = np.array([0.3, -1.2, 2.0])
    fit = imh.laplace_fit(Gaussian(mean, covariance), np.zeros(3))
    np.testing.assert_allclose(fit.mode, mean, atol=1e-5)
    np.testing.assert_allclose(fit.chol @ fit.chol.T, covariance, rtol=1e-5, atol=1e-9)
    assert np.allclose(fit.chol, np.tril(fit.chol)) and fit.evaluations > 3


def test_a_flat_density_has_no_laplace_approximation():
    with pytest.raises(imh.LaplaceFailure, match="not positive definite"):
        imh.laplace_fit(Flat(), np.zeros(2))
    outcome = imh.independence_posterior(
        Flat(), np.zeros(2), chains=2, draws=10, burn=5, random_seed=1
    )
    assert not outcome.usable and "positive definite" in outcome.refused


def test_draws_match_a_skewed_targets_exact_moments_and_quantiles():
    """Means, SDs and 5/50/95 % quantiles of x0 = ln Gamma(5) (exact: digamma, trigamma, the
    gamma quantiles) and the mean of x1 = 0.5 x0 + noise, within 4 Monte Carlo SEs."""
    outcome = imh.independence_posterior(
        SkewedTarget(), np.zeros(2), chains=4, draws=2000, burn=100, random_seed=7
    )
    assert outcome.usable, outcome.refused
    assert outcome.khat <= imh.KHAT_MAX and 0.3 < outcome.importance_efficiency <= 1.0
    draws = outcome.draws
    assert draws.shape == (4, 2000, 2)
    rhat, ess = rank_diagnostics(draws)
    assert np.all(rhat < 1.01) and np.all(ess > 1000), (rhat, ess)
    x0, x1 = draws[..., 0].ravel(), draws[..., 1].ravel()
    n_eff = float(ess.min())
    exact_mean, exact_var = scipy.special.digamma(5.0), scipy.special.polygamma(1, 5.0)
    assert abs(x0.mean() - exact_mean) < 4 * np.sqrt(exact_var / n_eff)
    assert abs(x1.mean() - 0.5 * exact_mean) < 4 * np.sqrt((0.25 * exact_var + 0.09) / n_eff)
    assert abs(x0.std() / np.sqrt(exact_var) - 1) < 4 / np.sqrt(2 * n_eff)
    for q in (0.05, 0.5, 0.95):
        exact = np.log(scipy.stats.gamma.ppf(q, 5.0))
        # the quantile's SE: sqrt(q(1 - q)/n) / density at the quantile
        density = np.exp(5.0 * exact - np.exp(exact) - scipy.special.gammaln(5.0))
        se = np.sqrt(q * (1 - q) / n_eff) / density
        assert abs(np.quantile(x0, q) - exact) < 4 * se, q


def test_draws_do_not_depend_on_the_threads():
    runs = [
        imh.independence_posterior(
            SkewedTarget(), np.zeros(2), chains=2, draws=100, burn=10, random_seed=3, workers=w
        )
        for w in (1, 2)
    ]
    np.testing.assert_array_equal(runs[0].draws, runs[1].draws)
    assert runs[0].khat == runs[1].khat


def test_chains_failing_the_check_are_doubled_once_and_thinned():
    """A failed check continues every chain by as many proposals again and keeps every second
    state: the first half of the kept draws are the first run's odd states; the second
    check's answer is final."""
    kwargs = dict(chains=2, draws=100, burn=10, random_seed=3)
    plain = imh.independence_posterior(SkewedTarget(), np.zeros(2), **kwargs)
    answers = iter(["first check failed", "second check failed"])
    asked = []

    def check(draws):
        asked.append(draws.shape)
        return next(answers)

    doubled = imh.independence_posterior(SkewedTarget(), np.zeros(2), check=check, **kwargs)
    assert asked == [(2, 100, 2), (2, 100, 2)] and doubled.extended
    assert doubled.refused == "second check failed" and not doubled.usable
    np.testing.assert_array_equal(doubled.draws[:, :50], plain.draws[:, 1::2])
    assert doubled.evaluations > plain.evaluations + 2 * 100 * imh.IMH_THIN - 1
    passing = imh.independence_posterior(
        SkewedTarget(), np.zeros(2), check=lambda draws: "", **kwargs
    )
    assert not passing.extended and passing.usable
    np.testing.assert_array_equal(passing.draws, plain.draws)


def test_a_target_with_heavier_tails_than_the_proposal_is_refused():
    """Against a t(0.5) the weights grow like |x|^4.5 in the t(5) proposal's tails: their
    Pareto k (0.9) is above the limit, so the run is refused whatever its chains look like."""
    outcome = imh.independence_posterior(
        HeavyTarget(), np.full(2, 0.5), chains=4, draws=2000, burn=100, random_seed=2
    )
    assert outcome.khat > imh.KHAT_MAX and not outcome.usable
    assert "Pareto" in outcome.refused


def test_importance_diagnostics_against_known_tails():
    rng = np.random.default_rng(5)
    for k in (0.9, 1.3):  # Pareto weights with tail index 1/k
        khat, _ = imh.importance_diagnostics(-k * np.log(rng.uniform(size=20000)))
        assert abs(khat - k) < 0.15, (k, khat)
    khat, efficiency = imh.importance_diagnostics(np.array([0.0, -np.inf, -np.inf]))
    assert np.isnan(khat) and efficiency == 0.0


def test_imh_needs_the_marginal_method():
    from asuc_bayes.inference.population import default_settings, fit_population

    spec = load_model()
    cohort = simulate_cohort(spec, 4, random_seed=3)
    settings = default_settings("joint", sampler="imh")
    with pytest.raises(ValueError, match="sampler 'imh' needs method 'marginal'"):
        fit_population(cohort.patients, spec, method="joint", settings=settings)


@pytest.mark.slow  # two 40-subject marginal fits (~1-2 min on 2 cores)
def test_the_marginal_fit_by_imh_agrees_with_nuts_and_records_its_sampler():
    """The same 40-subject cohort by the independence sampler and by NUTS: both pass the
    gates, the independence run is used (k̂ within the limit) and every population
    parameter's posterior mean agrees within 4 combined Monte Carlo SEs, its SD within 10 %."""
    from asuc_bayes.inference.population import default_settings, fit_population
    from asuc_bayes.spec.config import PARAMETER_NAMES

    spec = load_model()
    cohort = simulate_cohort(spec, 40, random_seed=21)
    fits = {
        sampler: fit_population(
            cohort.patients,
            spec,
            method="marginal",
            settings=default_settings("marginal", sampler=sampler),
            random_seed=4,
        )
        for sampler in ("imh", "nutpie")
    }
    d = fits["imh"].diagnostics
    assert d["sampler_used"] == "imh" and d["imh_refused"] == "" and d["converged"], d
    assert d["imh_khat"] <= imh.KHAT_MAX and d["imh_evaluations"] > 4 * 1000 * imh.IMH_THIN
    assert d["imh_burn"] == imh.IMH_BURN and d["imh_thin"] in (imh.IMH_THIN, 2 * imh.IMH_THIN)
    assert fits["nutpie"].diagnostics["sampler_used"] == "nutpie"
    for name in PARAMETER_NAMES:
        a, b = (fits[s].tree["posterior"][name].values for s in ("imh", "nutpie"))
        _, ess_a = rank_diagnostics(a[..., None])
        _, ess_b = rank_diagnostics(b[..., None])
        se = np.sqrt(a.var() / ess_a[0] + b.var() / ess_b[0])
        assert abs(a.mean() - b.mean()) < 4 * se, name
        assert abs(a.std() / b.std() - 1) < 0.1, name


@pytest.mark.slow  # one 12-subject fit by NUTS after a refused independence run
def test_a_refused_independence_run_hands_the_fit_to_nuts(monkeypatch):
    from asuc_bayes.inference.population import default_settings, fit_population

    monkeypatch.setattr(imh, "KHAT_MAX", -1.0)
    spec = load_model()
    cohort = simulate_cohort(spec, 12, random_seed=5)
    fit = fit_population(
        cohort.patients,
        spec,
        method="marginal",
        settings=default_settings("marginal", sampler="imh", draws=200, tune=100),
        random_seed=1,
    )
    d = fit.diagnostics
    assert d["sampler_used"] == "nutpie" and d["imh_refused"].startswith("Pareto k̂"), d
    assert "n_steps" in fit.tree["sample_stats"]


def test_the_fit_help_states_the_warm_up_and_the_burn_in():
    """``fit --help`` quotes the marginal fit's NUTS warm-up and the independence sampler's
    own burn-in as the code sets them."""
    from asuc_bayes.inference.population_marginal import MARGINAL_TUNE
    from asuc_bayes.interfaces.cli.parser import build_parser

    parser = build_parser()
    fit = parser._subparsers._group_actions[0].choices["fit"]
    text = " ".join(fit.format_help().split())
    assert f"({MARGINAL_TUNE} with --method marginal" in text
    assert f"burns in {imh.IMH_BURN} proposals" in text


def _displaced_laplace(monkeypatch, mean, covariance, shift_sd, scale):
    """Make ``laplace_fit`` return a wrong approximation of N(mean, covariance): its mode
    ``shift_sd`` SDs off along every axis, its scale ``scale`` × the true one."""
    chol = np.linalg.cholesky(covariance)
    wrong = imh.LaplaceFit(mean + shift_sd * np.sqrt(np.diag(covariance)), scale * chol, 0.0, 7)
    monkeypatch.setattr(imh, "laplace_fit", lambda model, start: wrong)


def test_a_misplaced_proposal_is_moved_to_the_pilots_weighted_moments(monkeypatch):
    """A Laplace approximation 1.5 SDs off and half as wide as the target gives a pilot k̂
    above ``ADAPT_KHAT``; the proposal is moved to the pilot's importance-weighted moments,
    the final k̂ is within the limit and the draws have the exact Gaussian's means and SDs
    within 4 Monte Carlo SEs; the discarded pilots' evaluations are counted."""
    covariance = np.array([[0.04, 0.018, 0.0], [0.018, 0.09, -0.01], [0.0, -0.01, 0.25]])
    mean = np.array([0.3, -1.2, 2.0])
    _displaced_laplace(monkeypatch, mean, covariance, 1.5, 0.5)
    outcome = imh.independence_posterior(
        Gaussian(mean, covariance), np.zeros(3), chains=4, draws=1000, burn=100, random_seed=5
    )
    assert outcome.adaptations >= 1 and outcome.usable, outcome
    assert outcome.khat <= imh.KHAT_MAX
    pilot_evaluations = 4 * (100 + 1000 // imh.PILOT_SHARE * imh.IMH_THIN)
    total = 4 * (100 + 1000 * imh.IMH_THIN) + outcome.adaptations * pilot_evaluations + 7
    assert outcome.evaluations == total
    rhat, ess = rank_diagnostics(outcome.draws)
    assert np.all(rhat < 1.01), rhat
    sd = np.sqrt(np.diag(covariance))
    draws = outcome.draws.reshape(-1, 3)
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 4 * sd / np.sqrt(ess))
    np.testing.assert_array_less(np.abs(draws.std(0) / sd - 1), 4 / np.sqrt(2 * ess))


def test_a_good_laplace_proposal_is_not_adapted():
    covariance = np.diag([0.04, 0.09])
    outcome = imh.independence_posterior(
        Gaussian(np.zeros(2), covariance), np.ones(2), chains=2, draws=200, burn=20, random_seed=2
    )
    assert outcome.usable and outcome.adaptations == 0


def test_the_fit_text_names_the_sampler_and_the_adaptation():
    from asuc_bayes.interfaces.report.study_text import _fit_sampler_text

    imh_fit = {"sampler": "imh", "sampler_used": "imh", "imh_khat": 0.31}
    assert "Laplace proposal, Pareto k-hat 0.31, acceptance >= n/a" in _fit_sampler_text(imh_fit)
    moved = _fit_sampler_text({**imh_fit, "imh_adaptations": 2, "imh_acceptance_min": 0.4})
    assert "moved 2x to a run's weighted moments" in moved and ">= 0.40" in moved
    refused = {"sampler": "imh", "sampler_used": "nutpie", "imh_refused": "Pareto k̂ 0.9 > 0.7"}
    assert _fit_sampler_text(refused) == "NUTS (nutpie) [imh refused: Pareto k̂ 0.9 > 0.7]"


def test_a_whole_run_failing_its_check_with_a_heavy_tail_is_moved(monkeypatch):
    """When the pilot is not moved but the whole run fails its check with k̂ above
    ``ADAPT_KHAT`` (here lowered below any k̂), the proposal is moved to the whole run's
    weighted moments and fresh chains are judged (no doubling when they pass); the discarded
    run's evaluations count."""
    covariance = np.diag([0.04, 0.09, 0.25])
    mean = np.array([0.3, -1.2, 2.0])
    _displaced_laplace(monkeypatch, mean, covariance, 0.5, 0.8)
    monkeypatch.setattr(imh, "ADAPT_KHAT", -1.0)  # any k̂ calls for a move
    real_moved, calls = imh._moved, []

    def moved_after_the_pilot(run):
        calls.append(len(run.log_weight))
        return None if len(calls) == 1 else real_moved(run)

    monkeypatch.setattr(imh, "_moved", moved_after_the_pilot)
    asked = []

    def check(draws):
        asked.append(draws.shape)
        return "" if len(asked) > 1 else "first run failed"

    outcome = imh.independence_posterior(
        Gaussian(mean, covariance),
        np.zeros(3),
        chains=4,
        draws=1000,
        burn=100,
        random_seed=5,
        check=check,
    )
    assert outcome.adaptations == 1 and not outcome.extended and outcome.usable, outcome
    assert asked == [(4, 1000, 3), (4, 1000, 3)]
    assert outcome.evaluations == 2 * 4 * (100 + 1000 * imh.IMH_THIN) + 7
    rhat, ess = rank_diagnostics(outcome.draws)
    assert np.all(rhat < 1.01), rhat
    draws = outcome.draws.reshape(-1, 3)
    np.testing.assert_array_less(
        np.abs(draws.mean(0) - mean), 4 * np.sqrt(np.diag(covariance) / ess)
    )


def test_weighted_moments_recover_a_target_from_importance_weights():
    """Draws of N(0, I) weighted by N(m, S)/N(0, I) have mean ≈ m and covariance ≈ S (the
    importance identity, an independent check); a singular sample gives None."""
    from asuc_bayes.inference.independence import weighted_moments

    rng = np.random.default_rng(8)
    target_mean, target_cov = np.array([0.3, -0.2]), np.array([[0.5, 0.1], [0.1, 0.3]])
    points = rng.standard_normal((200_000, 2))
    log_weight = scipy.stats.multivariate_normal(target_mean, target_cov).logpdf(
        points
    ) - scipy.stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(points)
    mean, covariance = weighted_moments(points, np.exp(log_weight))
    np.testing.assert_allclose(mean, target_mean, atol=0.01)
    np.testing.assert_allclose(covariance, target_cov, atol=0.01)
    assert weighted_moments(np.outer(np.arange(5.0), [1.0, 2.0])) is None
