"""The marginal population model: quadrature against brute force, the graph against NumPy,
the random-effect draws against the exact conditional posterior, and a small fit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from asuc_bayes.inference.population import CohortData
from asuc_bayes.inference.population_effects import draw_random_effects
from asuc_bayes.inference.population_marginal import (
    MarginalPoint,
    SubjectData,
    _graph_data,
    _rule_log_marginal,
    build_marginal_model,
    log_typical_values,
    quadrature_rule,
    subject_log_marginal,
)
from asuc_bayes.pk import kernels
from asuc_bayes.spec.config import load_model
from asuc_bayes.studies.simulate import simulate_cohort


@pytest.fixture(scope="module")
def spec():
    return load_model()


@pytest.fixture(scope="module")
def data(spec):
    return CohortData.from_patients(simulate_cohort(spec, 8, random_seed=3).patients)


@pytest.fixture(scope="module")
def rule(spec, data):
    return quadrature_rule(spec, data)


def random_points(spec, n: int, seed: int) -> list[MarginalPoint]:
    """Population points around the point estimates, within the spread of a fit's posterior
    on a few dozen subjects (θ ±10 %, ω ±20 %, σ ±10 %, λ ×/÷1.6, γ ±0.1, β ±0.2)."""
    rng = np.random.default_rng(seed)
    base = MarginalPoint.of_spec(spec)

    def scaled(value, log_sd):
        return float(value * np.exp(rng.normal(0.0, log_sd)))

    return [
        MarginalPoint(
            scaled(base.theta_cl, 0.1),
            scaled(base.theta_v, 0.1),
            base.crp_exponent_cl + rng.normal(0.0, 0.1),
            scaled(base.omega_cl, 0.2),
            scaled(base.omega_v, 0.2),
            scaled(base.residual_sd, 0.1),
            scaled(base.tte_lambda, 0.5),
            base.tte_gamma + rng.normal(0.0, 0.1),
            base.tte_beta + rng.normal(0.0, 0.2),
        )
        for _ in range(n)
    ]


def brute_force_log_marginal(spec, data, i: int, point: MarginalPoint, n: int = 601):
    """ln ∫∫ p(y, t, d | ln CL, ln V) N(ln CL) N(ln V) by a dense rectangle rule over μ ±
    (7 ω + 1.5), written from scipy.stats and the kernels' concentration and AUC only (the
    proportional residual with M3 censoring and the Weibull model, λ t^γ)."""
    keep = data.dose_amount_mg[i] > 0
    doses = (data.dose_time_day[i][keep], data.dose_amount_mg[i][keep])
    durations = data.dose_duration_day[i][keep]
    pk = spec.pk
    mu_cl = np.log(
        point.theta_cl
        * (data.weight_kg[i] / pk.reference_weight_kg) ** pk.weight_exponent_cl.estimate
        * (data.crp_mg_l[i] / pk.reference_crp_mg_l) ** point.crp_exponent_cl
    )
    mu_v = np.log(
        point.theta_v
        * (data.weight_kg[i] / pk.reference_weight_kg) ** pk.weight_exponent_v.estimate
    )
    a = np.linspace(mu_cl - 7 * point.omega_cl - 1.5, mu_cl + 7 * point.omega_cl + 1.5, n)
    b = np.linspace(mu_v - 7 * point.omega_v - 1.5, mu_v + 7 * point.omega_v + 1.5, n)
    grid_cl, grid_v = np.meshgrid(a, b, indexing="ij")
    cl, v = np.exp(grid_cl.ravel()), np.exp(grid_v.ravel())
    mine = data.obs_subject == i
    y, censoring = data.obs_value_mg_l[mine], data.obs_censoring[mine]
    f = kernels.concentration(data.obs_time_day[mine], *doses, durations, cl, v)
    f = np.maximum(f, 1e-12)
    sd = point.residual_sd * f
    log_lik = np.where(
        censoring == 0,
        norm.logpdf(y, f, sd),
        np.where(censoring == 1, norm.logcdf(y, f, sd), norm.logsf(y, f, sd)),
    ).sum(axis=1)
    auc = kernels.auc_interval(*spec.tte.auc_window_day, *doses, durations, cl, v)
    x = np.log(np.maximum(auc, 1e-300)) - np.log(cl)
    t, event = data.event_time_day[i], data.event[i]
    log_h = (
        np.log(point.tte_lambda)
        + point.tte_gamma * np.log(t)
        + point.tte_beta * (x - spec.tte.x_ref)
    )
    outcome = event * (np.log(point.tte_gamma) + log_h - np.log(t)) - np.exp(log_h)
    prior = norm.logpdf(grid_cl.ravel(), mu_cl, point.omega_cl) + norm.logpdf(
        grid_v.ravel(), mu_v, point.omega_v
    )
    return logsumexp(log_lik + outcome + prior) + np.log((a[1] - a[0]) * (b[1] - b[0]))


#: Stated accuracy of the rule: |ln p̂_i − ln p_i| per subject at population points within a
#: posterior's spread and at small ω (README, "Population model").
TOLERANCE = 0.02


def test_rule_matches_a_brute_force_grid(spec, data, rule):
    for point in random_points(spec, 3, seed=5):
        got = subject_log_marginal(spec, point, data, rule)
        reference = np.array(
            [brute_force_log_marginal(spec, data, i, point) for i in range(data.n_subjects)]
        )
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, reference, atol=TOLERANCE, rtol=0)


def test_rule_stays_accurate_as_omega_shrinks(spec, data, rule):
    """Where a fixed grid breaks down (the random-effect density narrower than a cell), the
    exact integration of the interpolated likelihood against it does not."""
    base = MarginalPoint.of_spec(spec)
    for omega_cl, omega_v in ((base.omega_cl, 0.1), (base.omega_cl, 0.03), (0.35, 0.3)):
        point = dataclasses.replace(base, omega_cl=omega_cl, omega_v=omega_v)
        got = subject_log_marginal(spec, point, data, rule)
        reference = [brute_force_log_marginal(spec, data, i, point) for i in range(data.n_subjects)]
        np.testing.assert_allclose(got, reference, atol=TOLERANCE, rtol=0, err_msg=str(point))


@pytest.mark.parametrize(
    ("mu", "omega", "step"), [(0.3, 1.0, 0.4), (0.33, 0.01, 0.4), (2.9, 0.5, 0.1), (-1.0, 0.2, 0.5)]
)
def test_node_weights_against_quadrature(mu, omega, step):
    """tent_log_weights and axis_log_weights (with a pivot) against scipy.integrate.quad of
    the hat function times the (pivoted) normal density, ends of the axis included."""
    from scipy.integrate import quad

    from asuc_bayes.inference.population_marginal import axis_log_weights, tent_log_weights

    x = np.arange(-3.0, 3.0 + step / 2, step)
    first, last = np.zeros_like(x), np.zeros_like(x)
    first[0] = last[-1] = 1.0

    def hat(j, t):
        left = 0.0 if j == 0 else 1.0
        right = 0.0 if j == len(x) - 1 else 1.0
        u = (t - x[j]) / step
        return max(0.0, 1.0 - abs(u)) * (left if u < 0 else right)

    pivot_mean, pivot_precision = 0.4, 3.0

    def integrand(t, j, precision):
        pivot = np.exp(-0.5 * precision * (t - pivot_mean) ** 2)
        return hat(j, t) * norm.pdf(t, mu, omega) * pivot

    for j in range(len(x)):
        for precision in (0.0, pivot_precision):
            exact = quad(
                integrand,
                x[j] - step,
                x[j] + step,
                args=(j, precision),
                points=[x[j], mu],
                limit=200,
            )[0]
            got = axis_log_weights(x[j], step, first[j], last[j], pivot_mean, precision, mu, omega)
            assert np.exp(got) == pytest.approx(exact, rel=1e-6, abs=1e-12), (j, precision)
        tent = tent_log_weights(x[j], step, first[j], last[j], mu, omega)
        plain = axis_log_weights(x[j], step, first[j], last[j], pivot_mean, 0.0, mu, omega)
        assert tent == pytest.approx(plain, rel=1e-12), j


def test_adjacent_node_weights_equal_the_elementwise_ones(spec, data, rule):
    """The weights that share the normal CDF and density between neighbouring nodes
    (``adjacent``, the model's) equal those computed node by node, on every axis of the
    rule laid end to end as in the graph, at ω from far below to above the cells; and so do
    their gradients in the graph."""
    import pytensor
    import pytensor.tensor as pt

    from asuc_bayes.inference.population_marginal import axis_log_weights

    table = rule.model_data(data)["axis_data"]
    owner = rule.model_data(data)["axis_subject"]
    axis = owner[:, 0] * 2 + owner[:, 1]  # μ is constant along each axis: its mid-point
    middle = np.bincount(axis, table[:, 0]) / np.bincount(axis)
    centre_of_axis = middle + np.random.default_rng(4).normal(0.0, 0.3, len(middle))
    centre = centre_of_axis[axis]
    for omega in (0.01, 0.1, 0.4, 3.0):
        args = (*table.T, centre, omega)
        shared = axis_log_weights(*args, adjacent=True)
        np.testing.assert_allclose(shared, axis_log_weights(*args), rtol=1e-11, atol=1e-11)
        mu, width = pt.dvector("mu"), pt.dscalar("omega")
        gradients = [
            pytensor.function(
                [mu, width],
                pytensor.grad(
                    axis_log_weights(*table.T, mu[axis], width, pt, adjacent=adjacent).sum(),
                    [mu, width],
                ),
            )(centre_of_axis, omega)
            for adjacent in (True, False)
        ]
        for got, expected in zip(*gradients, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)  # cancellation


def test_too_coarse_a_rule_fails_the_same_check(spec, data):
    """The reference can tell: one 5 × 5 rule per subject misses by more than TOLERANCE."""
    coarse = quadrature_rule(spec, data, levels=(5,))
    point = random_points(spec, 1, seed=5)[0]
    got = subject_log_marginal(spec, point, data, coarse)
    reference = [brute_force_log_marginal(spec, data, i, point) for i in range(data.n_subjects)]
    assert np.max(np.abs(got - reference)) > TOLERANCE


def test_graph_equals_numpy(spec, data, rule):
    """The PyTensor graph of the likelihood is the NumPy one (same function over xp)."""
    import pytensor.tensor as pt

    point = random_points(spec, 1, seed=8)[0]
    values = _graph_data(rule.model_data(data))
    symbolic = MarginalPoint(*(pt.as_tensor_variable(np.float64(v)) for v in vars(point).values()))
    got = _rule_log_marginal(
        spec, symbolic, {k: pt.as_tensor_variable(v) for k, v in values.items()}, pt
    ).eval()
    expected = subject_log_marginal(spec, point, data, rule).sum()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("omegas", [None, (None, 0.05), (2.0, 2.0)])
def test_random_effects_follow_the_exact_conditional_posterior(spec, data, rule, omegas):
    """At one population point repeated 4000 times, each subject's drawn (ln CL, ln V) has
    the mean and SD of its exact conditional posterior (dense grid), within 4 MC SEs; also
    with ω_V far below the rule's cells (the proposal's random-effect-density half) and with
    wide ω (proposals far in the tails, where the outcome's hazard overflows)."""
    import xarray as xr

    point = random_points(spec, 1, seed=11)[0]
    omega_v = None
    if omegas is not None:
        omega_cl, omega_v = omegas
        point = dataclasses.replace(point, omega_cl=omega_cl or point.omega_cl, omega_v=omega_v)
        omega_v = omega_v if omega_v < 0.1 else None
    n_draws = 4000
    posterior = xr.Dataset(
        {
            f.name: (("chain", "draw"), np.full((2, n_draws // 2), getattr(point, f.name)))
            for f in dataclasses.fields(MarginalPoint)
        }
    )
    effects = draw_random_effects(spec, posterior, data, rule, random_seed=2)
    assert effects.importance_ess_median > 0.5 * 64
    assert 0.0 <= effects.importance_ess_low_share < 0.05  # poor resamplings are rare
    for i in range(data.n_subjects):
        subject = SubjectData.of(data, i)
        centre = rule.subjects[i].centre
        half = 8 * np.maximum(rule.subjects[i].sd, [point.omega_cl, point.omega_v])
        a = np.linspace(centre[0] - half[0], centre[0] + half[0], 401)
        b = np.linspace(centre[1] - half[1], centre[1] + half[1], 401)
        if omega_v is not None:  # the posterior lies within the narrow prior: grid that
            _, mu_v = log_typical_values(spec, point, subject.weight_kg, subject.crp_mg_l)
            b = np.linspace(mu_v - 8 * omega_v, mu_v + 8 * omega_v, 401)
        grid_cl, grid_v = np.meshgrid(a, b, indexing="ij")
        log_density = subject.log_density(spec, point, grid_cl.ravel(), grid_v.ravel())
        weight = np.exp(log_density - log_density.max())
        weight /= weight.sum()
        drawn = np.log(np.stack([effects.cl[..., i].ravel(), effects.v[..., i].ravel()]))
        for axis, values in enumerate((grid_cl.ravel(), grid_v.ravel())):
            mean = weight @ values
            sd = np.sqrt(weight @ (values - mean) ** 2)
            se = sd / np.sqrt(n_draws)
            assert abs(drawn[axis].mean() - mean) < 4 * se, (i, axis)
            assert abs(drawn[axis].std() - sd) < 4 * sd / np.sqrt(2 * n_draws) + 1e-3, (i, axis)


def test_fit_cli_rejects_contradicting_methods(tmp_path, capsys):
    from asuc_bayes.interfaces.cli import main

    assert main(["fit", str(tmp_path / "none.csv"), "--two-stage", "--method", "full"]) == 2
    assert "--two-stage contradicts --method full" in capsys.readouterr().err
    args = ["fit", str(tmp_path / "none.csv"), "--sampler", "pymc", "--adaptation", "low_rank"]
    assert main(args) == 2
    assert "adaptation 'low_rank' needs the nutpie sampler" in capsys.readouterr().err


def test_the_default_method_is_marginal_everywhere(spec):
    """fit_population, the fit and sbc commands, SBC replicates and model preparation share
    one default method; a replicate with an unknown method is refused."""
    import inspect

    from asuc_bayes.inference.population import (
        DEFAULT_METHOD,
        fit_population,
        prepare_population_model,
    )
    from asuc_bayes.interfaces.cli.arguments import FIT_METHODS, fit_method
    from asuc_bayes.interfaces.cli.parser import build_parser
    from asuc_bayes.studies.sbc import PopulationReplicate, run_population_sbc

    assert DEFAULT_METHOD == "marginal"
    for function in (fit_population, prepare_population_model, run_population_sbc):
        assert inspect.signature(function).parameters["method"].default == DEFAULT_METHOD
    assert PopulationReplicate(spec, 10).method == DEFAULT_METHOD
    parser = build_parser()
    assert fit_method(parser.parse_args(["fit", "cohort.csv"])) == DEFAULT_METHOD
    sbc = parser.parse_args(["sbc", "--replicates", "2", "--subjects", "10", "--out", "x"])
    assert FIT_METHODS[sbc.method] == DEFAULT_METHOD
    with pytest.raises(ValueError, match="method must be one of marginal, joint, two_stage"):
        PopulationReplicate(spec, 10, method="full")


def test_default_settings_per_method():
    from asuc_bayes.inference.population import default_settings

    assert default_settings("marginal").target_accept == 0.8
    assert default_settings("joint").target_accept == 0.995
    assert default_settings("marginal", draws=None, chains=3).chains == 3
    assert default_settings("marginal").adaptation == "low_rank"
    assert default_settings("joint").adaptation == "diag"
    # PyMC's NUTS has no low-rank mass matrix: a marginal fit with it falls back to diag,
    # and asking for both is refused
    assert default_settings("marginal", sampler="pymc").adaptation == "diag"
    with pytest.raises(ValueError, match="needs the nutpie sampler"):
        default_settings("marginal", sampler="pymc", adaptation="low_rank")
    with pytest.raises(ValueError, match="adaptation must be"):
        default_settings("marginal", adaptation="dense")


@pytest.mark.slow  # one marginal model compilation and a 40-subject fit
def test_marginal_fit_converges_and_keeps_the_fit_schema(spec, tmp_path):
    """The marginal fit of a simulated 40-subject cohort passes every gate (R-hat, bulk ESS,
    no divergence: the previous rule, a midpoint grid, had 1-3 divergences on this cohort in
    the lower ω_V tail where it was inaccurate; README), its DataTree has the schema the
    other commands read (per-subject eta_cl, eta_v, cl, v, ln_auc_cl; population
    parameters), it round-trips through cohort_of_fit, and every
    population parameter's 99 % CrI covers the truth."""
    from asuc_bayes.inference.population import (
        cohort_of_fit,
        default_settings,
        fit_population,
        load_fit,
    )
    from asuc_bayes.inference.population_draws import PARAMETER_NAMES, point_values

    cohort = simulate_cohort(spec, 40, random_seed=21)
    settings = default_settings("marginal", draws=500)  # half the default: test time
    fit = fit_population(cohort.patients, spec, method="marginal", settings=settings, random_seed=4)
    d = fit.diagnostics
    print("\nmarginal fit:", d)
    assert d["rhat_max"] <= 1.01 and d["ess_bulk_min"] >= 400, d
    assert d["divergences"] == 0 and fit.status == "ok", d
    assert fit.tree.attrs["method"] == "marginal"
    posterior = fit.tree["posterior"]
    for name in ("eta_cl", "eta_v", "cl", "v", "ln_auc_cl"):
        assert posterior[name].dims == ("chain", "draw", "subject")
    # each draw's CL is the covariate model at that draw's θ with that draw's η
    from asuc_bayes.inference.population_effects import points_of_posterior
    from asuc_bayes.inference.population_marginal import log_typical_values

    point = points_of_posterior(posterior)
    data = CohortData.from_patients(cohort.patients)
    mu_cl, _ = log_typical_values(spec, point, data.weight_kg, data.crp_mg_l)
    eta = posterior["eta_cl"].values.reshape(-1, data.n_subjects)
    np.testing.assert_allclose(
        np.log(posterior["cl"].values.reshape(-1, data.n_subjects)), mu_cl + eta, rtol=1e-10
    )
    path = tmp_path / "fit.nc"
    fit.save(path)
    again = cohort_of_fit(load_fit(path))
    assert again.ids == tuple(p.id for p in cohort.patients)
    truth = point_values(spec)
    for name in PARAMETER_NAMES:
        low, high = np.quantile(posterior[name].values, [0.005, 0.995])
        assert low <= truth[name] <= high, name
    summary = fit.summary()
    assert summary["status"] == fit.status and summary["method"] == "marginal"


@pytest.mark.slow  # three 16-subject fits (one compilation); ~1 min each on 2 loaded cores
def test_sbc_style_ranks_of_a_few_replicates(spec):
    """Three SBC replicates of the marginal fit (θ̃ from the published prior, a cohort
    simulated at θ̃, fitted): every fit passes its gates, and the 27 ranks of the truths
    among 100 thinned draws are not piled at the ends (a biased or overconfident fit puts
    many ranks in the outer 5 % on each side; under uniformity P(> 8 of 27) < 1e-3)."""
    from asuc_bayes.inference.population import default_settings
    from asuc_bayes.studies.sbc import PopulationReplicate, posterior_ranks

    replicate = PopulationReplicate(
        spec, 16, settings=default_settings("marginal", chains=2, draws=1000), method="marginal"
    )
    rng = np.random.default_rng(0)
    ranks = []
    for seed in (1, 2, 3):
        draws = replicate(seed)
        assert draws.diagnostics["converged"] == 1.0, draws.diagnostics
        ranked = posterior_ranks(draws.truth, draws.posterior, 100, rng)
        ranks.extend(r["rank"] for r in ranked.values())
    outer = sum(r <= 5 or r >= 95 for r in ranks)
    print("\nranks:", ranks)
    assert outer <= 8, ranks


def test_per_node_sufficient_statistics_equal_the_pairs(spec, data, rule, monkeypatch):
    """The measured records' per-node sums (Σ g², Σ h) and the censored pairs' ln Φ(c/σ)
    (one numba pass, :mod:`asuc_bayes.graphs.censored_ops`) give the same log marginal as
    one term per (observation, node) pair through the residual form, for the proportional
    and log-normal errors, in NumPy and in the graph."""
    import pytensor

    import asuc_bayes.inference.population_marginal as marginal

    values = rule.model_data(data)
    assert len(values["measured_node"]) == 0 and values["node_stats"][:, 2].sum() > 0
    assert len(values["censored_node"]) == 0 and len(values["scaled_node"]) > 0
    point = random_points(spec, 1, seed=13)[0]
    fast = subject_log_marginal(spec, point, data, rule)
    model = build_marginal_model(spec, spec.priors("weak"), values)
    monkeypatch.setattr(marginal, "_is_scale_family", lambda *args: False)
    monkeypatch.setattr(marginal, "_scaled_censored", lambda *args: None)
    pairs = rule.model_data(data)
    assert len(pairs["scaled_node"]) == 0 and len(pairs["censored_node"]) > 0
    np.testing.assert_allclose(fast, subject_log_marginal(spec, point, data, rule), rtol=1e-10)
    slow_model = build_marginal_model(spec, spec.priors("weak"), pairs)
    at = slow_model.initial_point()
    logp_grad = [
        pytensor.function(m.value_vars, [m.logp(), *pytensor.grad(m.logp(), m.value_vars)])
        for m in (model, slow_model)
    ]
    args = [at[v.name] for v in model.value_vars]
    assert [v.name for v in model.value_vars] == [v.name for v in slow_model.value_vars]
    for got, want in zip(logp_grad[0](*args), logp_grad[1](*args), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9)
    y, f = np.array([2.0, 30.0]), np.array([3.0, 20.0])
    monkeypatch.undo()
    assert marginal._is_scale_family("proportional", y, f)
    assert marginal._is_scale_family("log_normal", y, f)


def test_node_likelihood_from_sufficient_statistics_equals_the_records(spec, data, rule):
    """Each subject's nodes' ln p(y, t, d | node) per population draw from the marginal
    model's per-node data (sufficient statistics, censored pairs' c, outcome data) equals the
    subject's records evaluated at the nodes, for several draws at once, and so does the
    random-effect density gathered from the axes; a residual form kept as pairs gives no node
    data (the η draws then use the records)."""
    from asuc_bayes.inference.population_effects import SubjectNodes, _node_log_prior
    from asuc_bayes.inference.population_marginal import stack_points

    values = rule.model_data(data)
    nodes = SubjectNodes.all_of(values, rule.n_nodes)
    assert nodes is not None and len(nodes) == data.n_subjects
    assert sum(len(n.scaled_censored) for n in nodes) == len(values["scaled_censored"]) > 0
    point = stack_points(random_points(spec, 5, seed=21))
    for i in range(data.n_subjects):
        subject = SubjectData.of(data, i)
        want = subject.log_likelihood(spec, point, *rule.subjects[i].nodes())
        got = nodes[i].log_likelihood(spec, point)
        assert got.shape == want.shape == (5, rule.n_nodes[i])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        prior = subject.log_prior(spec, point, *rule.subjects[i].nodes())
        on_axes = _node_log_prior(spec, subject, rule.subjects[i], point)
        np.testing.assert_allclose(on_axes, prior, rtol=1e-12, atol=1e-12)
    pairs = dict(values, measured_node=np.array([0]))
    assert SubjectNodes.all_of(pairs, rule.n_nodes) is None


def test_the_scale_family_checks_refuse_a_form_that_is_not_one(monkeypatch):
    """The sufficient statistics and the censored Op are used only where the residual form's
    own terms equal them on the data (at two σ): a form whose terms differ by 1e-6 is kept
    as (observation, node) pairs."""
    import asuc_bayes.inference.population_marginal as marginal

    y, f = np.array([2.0, 30.0]), np.array([3.0, 20.0])
    censored = np.array([[1.0, 1.0, 3.0], [30.0, -1.0, 20.0], [0.5, 1.0, 1e-3]])
    assert marginal._is_scale_family("proportional", y, f)
    assert marginal._scaled_censored("proportional", censored) is not None
    real = marginal.legacy_residual

    class Shifted:
        def __init__(self, form):
            self.form = form

        def __getattr__(self, name):
            return getattr(self.form, name)

        def log_density(self, *args):
            return self.form.log_density(*args) + 1e-6

        def log_censored(self, *args):
            return self.form.log_censored(*args) + 1e-6

    def shifted(form, sd):
        residual, sigma = real(form, sd)
        return Shifted(residual), sigma

    monkeypatch.setattr(marginal, "legacy_residual", shifted)
    assert not marginal._is_scale_family("proportional", y, f)
    assert marginal._scaled_censored("proportional", censored) is None


def test_observation_terms_split_by_kind_equal_the_elementwise_choice(spec):
    """The NumPy evaluation that computes each record's own term only (one flag per record)
    equals the choice between both terms for every record (flags broadcast to the full
    shape take that path), with σ per draw."""
    from asuc_bayes.inference.population_marginal import observation_terms

    rng = np.random.default_rng(6)
    value = np.array([0.5, 3.0, 12.0, 40.0, 7.0])
    measured = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    sign = np.array([1.0, -1.0, -1.0, -1.0, -1.0])
    prediction = rng.lognormal(1.5, 1.0, (3, 4, 5))
    sd = np.array([0.2, 0.3, 0.5])[:, None, None]
    split = observation_terms(spec, sd, value, measured, sign, prediction)
    both = observation_terms(
        spec, sd, value, np.broadcast_to(measured, prediction.shape), sign, prediction
    )
    assert split.shape == both.shape == (3, 4, 5)
    np.testing.assert_allclose(split, both, rtol=1e-14)
    assert np.all(np.isfinite(split))


def test_random_effect_draws_do_not_depend_on_the_threads(spec, data, rule):
    """Each subject's generator is spawned from the seed: one thread or three give the same
    draws, bit for bit (and another seed other draws)."""
    import xarray as xr

    rng = np.random.default_rng(9)
    base = MarginalPoint.of_spec(spec)
    posterior = xr.Dataset(
        {
            f.name: (
                ("chain", "draw"),
                getattr(base, f.name) * np.exp(rng.normal(0, 0.05, (2, 60))),
            )
            for f in dataclasses.fields(MarginalPoint)
        }
    )
    one, three, other = (
        draw_random_effects(spec, posterior, data, rule, random_seed=seed, workers=workers)
        for seed, workers in ((4, 1), (4, 3), (5, 3))
    )
    for name in ("eta_cl", "eta_v", "ln_auc_cl"):
        np.testing.assert_array_equal(getattr(one, name), getattr(three, name))
        assert not np.array_equal(getattr(one, name), getattr(other, name))
    assert one.importance_ess_min == three.importance_ess_min


def test_the_rule_does_not_depend_on_the_threads(spec, data, rule):
    """Subjects' rules built on one thread equal those built on several (the fixture)."""
    serial = quadrature_rule(spec, data, workers=1)
    for name in ("node_data", "node_axis", "axis_data", "pair_index", "pair_data"):
        np.testing.assert_array_equal(getattr(serial, name), getattr(rule, name))
