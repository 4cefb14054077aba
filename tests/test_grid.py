"""The exact quadrature posterior (asuc_bayes.inference.grid) against independent brute-force
checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from scipy.special import logsumexp
from scipy.stats import lognorm, norm

from asuc_bayes.data.dataset import Dose, Observation, Patient
from asuc_bayes.inference.grid import (
    DERIVED_KEYS,
    derived_on_grid,
    find_modes,
    grid_posterior,
    locate_box,
    log_posterior,
    observation_log_likelihood,
    polish_maxima,
)
from asuc_bayes.pk.kernels import concentration
from asuc_bayes.spec.config import load_model

from conftest import INFUSION_DAY, REFERENCE_PATIENTS

STATS = ("mean", "sd", "q2.5", "q50", "q97.5")

#: One 700 mg dose and a single low day-7 level: under the proportional error model the
#: likelihood does not vanish as the prediction grows (the SD grows with it), so the data
#: support a "fast clearance, small volume" mode and the prior a "typical" one.
BIMODAL = Patient(
    "bimodal", 70.0, 30.0, (Dose(0.0, 700.0, INFUSION_DAY),), (Observation(7.0, 3.0),)
)


def _omega(spec):
    return np.array([spec.pk.omega_cl, spec.pk.omega_v])


def _neg_log_posterior(spec, patient):
    def negative(x):
        return -float(log_posterior(spec, patient, x[0], x[1]))

    return negative


def _minimise(spec, patient, start):
    return scipy.optimize.minimize(
        _neg_log_posterior(spec, patient),
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 10_000},
    )


@pytest.fixture(scope="module")
def grids(spec):
    return {name: grid_posterior(spec, p) for name, p in REFERENCE_PATIENTS.items()}


# --------------------------------------------------------------------------- the prior


def test_no_sample_grid_is_the_prior(spec, grids):
    summary = grids["no_sample"].summary()
    omega = _omega(spec)
    assert np.all(np.abs(summary["eta_mean"]) < 1e-3 * omega)
    assert np.allclose(np.diag(summary["eta_cov"]), omega**2, rtol=1e-3)
    assert abs(summary["eta_cov"][0, 1]) < 1e-3 * omega[0] * omega[1]


def test_no_sample_quantiles_match_the_lognormal_prior_exactly(spec, grids):
    grid = grids["no_sample"]
    sd = grid.summary()["cl"]["sd"]
    for q in (0.025, 0.5, 0.975):
        exact = spec.pk.theta_cl.estimate * np.exp(spec.pk.omega_cl * norm.ppf(q))
        assert grid.quantile("cl", q) == pytest.approx(exact, abs=1e-3 * sd)


def test_no_sample_derived_summary_matches_prior_monte_carlo(spec, grids):
    n = 200_000
    rng = np.random.default_rng(20260101)
    eta = rng.normal(size=(n, 2)) * _omega(spec)
    draws = derived_on_grid(spec, REFERENCE_PATIENTS["no_sample"], eta[:, 0], eta[:, 1])
    summary = grids["no_sample"].summary()
    for key in DERIVED_KEYS:
        x = draws[key]
        sd = summary[key]["sd"]
        assert abs(x.mean() - summary[key]["mean"]) < 5 * x.std() / np.sqrt(n), key
        assert x.std() == pytest.approx(sd, rel=0.03), key
        for q in (2.5, 50, 97.5):
            assert abs(np.percentile(x, q) - summary[key][f"q{q:g}"]) < 0.03 * sd, (key, q)
    p_mc = np.mean(draws["ln_auc_cl"] < spec.tte.high_risk_threshold)
    assert abs(p_mc - summary["p_high_risk"]) < 5 * np.sqrt(p_mc * (1 - p_mc) / n)


# ------------------------------------------------------------ brute-force posteriors


@pytest.mark.parametrize("name", ["one_sample", "several_samples", "blq_sample"])
def test_posterior_matches_importance_sampling_from_the_prior(spec, grids, name):
    patient = REFERENCE_PATIENTS[name]
    n = 400_000
    rng = np.random.default_rng(7)
    eta = rng.normal(size=(n, 2)) * _omega(spec)
    # Prior draws weighted by the likelihood = log posterior − log prior.
    log_prior = -0.5 * np.sum((eta / _omega(spec)) ** 2, axis=1)
    log_w = log_posterior(spec, patient, eta[:, 0], eta[:, 1]) - log_prior
    w = np.exp(log_w - logsumexp(log_w))
    ess = 1.0 / np.sum(w**2)
    assert ess > 20_000
    x = derived_on_grid(spec, patient, eta[:, 0], eta[:, 1])["ln_auc_cl"]
    mean = np.sum(w * x)
    sd = np.sqrt(np.sum(w * (x - mean) ** 2))
    exact = grids[name].summary()["ln_auc_cl"]
    assert abs(mean - exact["mean"]) < 5 * exact["sd"] / np.sqrt(ess)
    assert abs(sd - exact["sd"]) < 5 * exact["sd"] / np.sqrt(ess / 2) + 0.01 * exact["sd"]


@pytest.mark.parametrize("name", sorted(REFERENCE_PATIENTS))
def test_refinement_converges(spec, grids, name):
    fine = grids[name].summary()
    coarse = grid_posterior(spec, REFERENCE_PATIENTS[name], n_points=201).summary()
    for key in DERIVED_KEYS:
        for stat in STATS:
            assert abs(coarse[key][stat] - fine[key][stat]) < 0.01 * fine[key]["sd"], (key, stat)
    assert abs(coarse["p_high_risk"] - fine["p_high_risk"]) < 1e-3
    assert np.allclose(coarse["eta_mean"], fine["eta_mean"], atol=1e-4)
    assert np.allclose(coarse["eta_cov"], fine["eta_cov"], atol=1e-4)


def test_weights_are_normalised_and_edge_mass_negligible(grids):
    for name, grid in grids.items():
        w = grid.weights
        assert w.sum() == pytest.approx(1.0, abs=1e-12), name
        edge = w[0].sum() + w[-1].sum() + w[:, 0].sum() + w[:, -1].sum()
        assert edge < 1e-8, name
        assert np.allclose(np.diff(grid.eta_cl), grid.spacing[0])


def test_edge_mass_above_tolerance_raises(spec):
    with pytest.raises(RuntimeError, match="edge of the grid"):
        grid_posterior(spec, REFERENCE_PATIENTS["one_sample"], n_points=101, edge_tolerance=0.0)


# --------------------------------------------------------------------- bimodal safety


def test_real_bimodal_posterior_is_fully_covered(spec):
    # Two separated local maxima of the log posterior.
    first = _minimise(spec, BIMODAL, (0.0, 1.0))
    second = _minimise(spec, BIMODAL, (1.5, -1.5))
    assert np.linalg.norm(first.x - second.x) > 2.0
    assert abs(first.fun - second.fun) < 1.0
    grid = grid_posterior(spec, BIMODAL)
    for mode in (first.x, second.x):
        assert grid.eta_cl[0] + 1.0 < mode[0] < grid.eta_cl[-1] - 1.0
        assert grid.eta_v[0] + 1.0 < mode[1] < grid.eta_v[-1] - 1.0
    # Both modes carry mass: split the grid along the line between them.
    direction = second.x - first.x
    mesh = np.stack(np.meshgrid(grid.eta_cl, grid.eta_v, indexing="ij"), axis=-1)
    side = (mesh - 0.5 * (first.x + second.x)) @ direction > 0
    assert 0.1 < grid.weights[side].sum() < 0.9
    # The located grid agrees with a brute-force fixed grid over ±8 prior SD.
    omega = _omega(spec)
    axes = [np.linspace(-8 * o, 8 * o, 1001) for o in omega]
    mesh_cl, mesh_v = np.meshgrid(*axes, indexing="ij")
    log_p = log_posterior(spec, BIMODAL, mesh_cl, mesh_v)
    w = np.exp(log_p - logsumexp(log_p))
    brute = derived_on_grid(spec, BIMODAL, mesh_cl, mesh_v)
    summary = grid.summary()
    for key in DERIVED_KEYS:
        mean = np.sum(w * brute[key])
        sd = np.sqrt(np.sum(w * (brute[key] - mean) ** 2))
        assert mean == pytest.approx(summary[key]["mean"], abs=1e-3 * sd), key
        assert sd == pytest.approx(summary[key]["sd"], rel=1e-3), key
    assert grid.mode() == pytest.approx(second.x if second.fun < first.fun else first.x, abs=1e-5)


def test_locate_box_covers_two_separated_bumps():
    def two_bumps(x, y):
        a = -0.5 * (((x + 4) / 0.3) ** 2 + ((y + 4) / 0.2) ** 2)
        b = -25.0 - 0.5 * (((x - 5) / 0.25) ** 2 + ((y - 3) / 0.4) ** 2)
        return np.logaddexp(a, b)

    lo, hi = locate_box(two_bumps, [-7, -7], [7, 7])
    # Every point within the max − 30 set of each bump lies in the box (radius sqrt(2·30)σ
    # for the first bump, sqrt(2·5)σ for the second).
    assert lo[0] < -4 - np.sqrt(60) * 0.3 and hi[0] > 5 + np.sqrt(10) * 0.25
    assert lo[1] < -4 - np.sqrt(60) * 0.2 and hi[1] > 3 + np.sqrt(10) * 0.4
    # ... and the box is not the whole search box
    assert lo[0] > -7 and hi[1] < 7


def test_locate_box_expands_towards_mass_outside_the_search_box():
    def far(x, y):
        return -0.5 * (((x - 12) / 0.5) ** 2 + (y / 0.5) ** 2)

    lo, hi = locate_box(far, [-7, -7], [7, 7])
    assert lo[0] < 12 - np.sqrt(60) * 0.5 and hi[0] > 12 + np.sqrt(60) * 0.5
    assert lo[1] < -np.sqrt(60) * 0.5 and hi[1] > np.sqrt(60) * 0.5


def test_locate_box_rejects_a_nowhere_finite_density():
    with pytest.raises(RuntimeError, match="not finite"):
        locate_box(lambda x, y: np.full_like(x, -np.inf), [-1, -1], [1, 1])


def test_strongly_correlated_ridge_is_covered(spec):
    # Repeated late levels after one dose pin only a combination of CL and V (ln C =
    # ln D − ln V − CL/V·t): a thin ridge with correlation ~0.99 that the box must cover.
    patient = Patient(
        "ridge",
        70.0,
        30.0,
        (Dose(0.0, 700.0, INFUSION_DAY),),
        tuple(Observation(42.0 + 0.01 * i, 1.0) for i in range(6)),
    )
    grid = grid_posterior(spec, patient)
    omega = _omega(spec)
    axes = [np.linspace(-8 * o, 8 * o, 801) for o in omega]
    mesh_cl, mesh_v = np.meshgrid(*axes, indexing="ij")
    log_p = log_posterior(spec, patient, mesh_cl, mesh_v)
    inside = log_p > log_p.max() - 25.0
    assert mesh_cl[inside].min() > grid.eta_cl[0] and mesh_cl[inside].max() < grid.eta_cl[-1]
    assert mesh_v[inside].min() > grid.eta_v[0] and mesh_v[inside].max() < grid.eta_v[-1]
    cov = grid.summary()["eta_cov"]
    assert cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]) > 0.95


# --------------------------------------------------------------------------- mode


@pytest.mark.parametrize("name", sorted(REFERENCE_PATIENTS))
def test_mode_matches_scipy_from_several_starts(spec, grids, name):
    patient = REFERENCE_PATIENTS[name]
    starts = [(0.0, 0.0), (0.5, 1.0), (-0.5, -1.0), (1.0, -1.0), (-1.0, 1.0)]
    best = min((_minimise(spec, patient, s) for s in starts), key=lambda r: r.fun)
    mode = grids[name].mode()
    negative = _neg_log_posterior(spec, patient)
    assert negative(mode) <= best.fun + 1e-8
    assert mode == pytest.approx(best.x, abs=1e-4)


# ------------------------------------------------------------------ the likelihood


def test_blq_term_is_the_normal_cdf_by_hand(spec):
    patient = REFERENCE_PATIENTS["blq_sample"]
    eta_cl, eta_v = 0.3, -0.2
    d = derived_on_grid(spec, patient, eta_cl, eta_v)
    f = [
        float(
            np.sum(
                [
                    dose.amount_mg
                    / (dose.duration_day * d["cl"])
                    * (1 - np.exp(-d["cl"] / d["v"] * min(t - dose.time_day, dose.duration_day)))
                    * np.exp(-d["cl"] / d["v"] * max(t - dose.time_day - dose.duration_day, 0))
                    for dose in patient.doses
                    if t > dose.time_day
                ]
            )
        )
        for t in patient.obs_time_day
    ]
    sigma = spec.pk.residual_sd.estimate
    measured, blq = patient.observations
    by_hand = (
        norm.logpdf(measured.value_mg_l, loc=f[0], scale=sigma * f[0])
        + np.log(norm.cdf(blq.value_mg_l, loc=f[1], scale=sigma * f[1]))
        - 0.5 * (eta_cl / spec.pk.omega_cl) ** 2
        - 0.5 * (eta_v / spec.pk.omega_v) ** 2
    )
    assert float(log_posterior(spec, patient, eta_cl, eta_v)) == pytest.approx(by_hand, rel=1e-10)
    # The BLQ term alone: the difference with the measured-only patient.
    measured_only = Patient(
        patient.id, patient.weight_kg, patient.crp_mg_l, patient.doses, (measured,)
    )
    blq_term = float(log_posterior(spec, patient, eta_cl, eta_v)) - float(
        log_posterior(spec, measured_only, eta_cl, eta_v)
    )
    assert blq_term == pytest.approx(np.log(norm.cdf((blq.value_mg_l - f[1]) / (sigma * f[1]))))


def test_alq_and_log_normal_terms_by_hand():
    patient = REFERENCE_PATIENTS["alq_sample"]
    eta_cl, eta_v = -0.4, 0.25
    for variants in ((), ("log_residual",)):
        spec = load_model(variants=variants)
        d = derived_on_grid(spec, patient, eta_cl, eta_v)
        f = concentration(
            patient.obs_time_day,
            patient.dose_time_day,
            patient.dose_amount_mg,
            patient.dose_duration_day,
            d["cl"],
            d["v"],
        )
        sigma = spec.pk.residual_sd.estimate
        alq, measured = patient.observations
        if spec.pk.residual_form == "proportional":
            loglik = norm.logsf(alq.value_mg_l, loc=f[0], scale=sigma * f[0]) + norm.logpdf(
                measured.value_mg_l, loc=f[1], scale=sigma * f[1]
            )
        else:  # the density of y (scipy's lognorm), as NONMEM's OFV and the other models
            loglik = norm.logsf(np.log(alq.value_mg_l), loc=np.log(f[0]), scale=sigma) + (
                lognorm(s=sigma, scale=f[1]).logpdf(measured.value_mg_l)
            )
        prior = -0.5 * ((eta_cl / spec.pk.omega_cl) ** 2 + (eta_v / spec.pk.omega_v) ** 2)
        value = float(log_posterior(spec, patient, eta_cl, eta_v))
        assert value == pytest.approx(loglik + prior, rel=1e-10), variants


def test_log_posterior_broadcasts(spec):
    patient = REFERENCE_PATIENTS["several_samples"]
    eta_cl = np.linspace(-1, 1, 5)[:, None]
    eta_v = np.linspace(-1, 1, 3)[None, :]
    out = log_posterior(spec, patient, eta_cl, eta_v)
    assert out.shape == (5, 3)
    assert out[4, 2] == pytest.approx(float(log_posterior(spec, patient, 1.0, 1.0)))
    assert np.ndim(log_posterior(spec, patient, 0.0, 0.0)) == 0


# ------------------------------------------------------------------------- sampling


def test_sample_reproduces_the_grid_moments(grids):
    grid = grids["several_samples"]
    draws = grid.sample(100_000, random_seed=3)
    assert draws.shape == (100_000, 2)
    assert np.array_equal(draws, grid.sample(100_000, random_seed=3))
    summary = grid.summary()
    sd = np.sqrt(np.diag(summary["eta_cov"]))
    assert np.all(np.abs(draws.mean(axis=0) - summary["eta_mean"]) < 5 * sd / np.sqrt(1e5))
    assert np.allclose(np.cov(draws.T), summary["eta_cov"], rtol=0.03, atol=1e-3)


def test_expectation_and_quantile_accept_arrays(grids):
    grid = grids["one_sample"]
    cl = grid.derived["cl"]
    assert grid.expectation(cl) == pytest.approx(grid.summary()["cl"]["mean"])
    qs = grid.quantile("cl", np.array([0.1, 0.9]))
    assert qs.shape == (2,) and qs[0] < qs[1]
    assert grid.cdf("cl", float(grid.quantile("cl", 0.3))) == pytest.approx(0.3, abs=1e-9)
    with pytest.raises(ValueError, match="grid shape"):
        grid.expectation(np.ones(3))


# ---------------------------------------------------------------- the bimodality scan


def test_found_modes_are_the_local_maxima_scipy_finds(spec):
    """find_modes polishes every basin's grid peak at once (a vectorised compass search):
    its modes must be the local maxima Nelder–Mead reaches from the same peaks."""
    modes = find_modes(spec, BIMODAL)
    assert len(modes) == 2
    assert sum(mass for _, _, mass in modes) == pytest.approx(1.0, abs=0.01)
    omega = _omega(spec)
    for eta, value, _ in modes:
        reference = _minimise(spec, BIMODAL, eta)
        assert eta == pytest.approx(reference.x, abs=2e-3 * omega.max())
        assert value == pytest.approx(-reference.fun, abs=1e-5)


def test_polish_maxima_climbs_ridges_and_ignores_undefined_points():
    def banana(x):  # a curved ridge with its maximum at (1, 1); NaN left of x = -3
        value = -((1.0 - x[..., 0]) ** 2) - 20.0 * (x[..., 1] - x[..., 0] ** 2) ** 2
        return np.where(x[..., 0] < -3.0, np.nan, value)

    starts = np.array([[-2.9, 3.0], [2.0, 4.0], [1.0, 1.0]])
    x, value = polish_maxima(banana, starts, 0.1, tolerance=1e-8)
    reference = scipy.optimize.minimize(
        lambda p: -banana(np.asarray(p)),
        [-1.0, 1.0],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-14},
    )
    assert x == pytest.approx(np.tile(reference.x, (3, 1)), abs=1e-5)
    assert np.all(value > -1e-9)


def test_censored_terms_by_column_equal_the_elementwise_formula():
    """Only censored records get log Φ; by column (censoring per observation) and by
    element (censoring broadcast to the predictions' shape) both equal scipy's."""
    rng = np.random.default_rng(2)
    prediction = rng.uniform(0.5, 40.0, size=(7, 4))
    values = np.array([3.0, 0.5, 35.0, 12.0])
    censoring = np.array([0, 1, -1, 0])
    sigma = 0.4
    expected = np.where(
        censoring == 0,
        norm.logpdf(values, prediction, sigma * prediction),
        np.where(
            censoring == 1,
            norm.logcdf(values, prediction, sigma * prediction),
            norm.logsf(values, prediction, sigma * prediction),
        ),
    )
    by_column = observation_log_likelihood(values, censoring, prediction, sigma, "proportional")
    np.testing.assert_allclose(by_column, expected, rtol=1e-12)
    by_element = observation_log_likelihood(
        values, np.broadcast_to(censoring, prediction.shape), prediction, sigma, "proportional"
    )
    np.testing.assert_allclose(by_element, expected, rtol=1e-12)
