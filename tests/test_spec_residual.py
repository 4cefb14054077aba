"""Residual forms and the stable log Φ against scipy.stats, in NumPy and PyTensor."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from asuc_bayes.spec.residual import RESIDUAL_FORMS, log_phi, residual_form

SIGMA = {"proportional": 0.3, "additive": 0.7, "log_sd": 0.5}


def _scipy(form, f):
    if form == "proportional":
        return stats.norm(f, SIGMA["proportional"] * f)
    if form == "additive":
        return stats.norm(f, SIGMA["additive"])
    if form == "combined":
        return stats.norm(f, np.sqrt((SIGMA["proportional"] * f) ** 2 + SIGMA["additive"] ** 2))
    return stats.lognorm(s=SIGMA["log_sd"], scale=f)


def _points():
    rng = np.random.default_rng(11)
    f = rng.lognormal(1.5, 1.0, 300)
    y = f * rng.lognormal(0.0, 0.6, 300)
    # far tails: limits 30 residual SDs away from the prediction on either side
    y[:10] = f[:10] * 1e-6
    y[10:20] = f[10:20] * 40.0
    return y, f


@pytest.mark.parametrize("name", sorted(RESIDUAL_FORMS))
def test_forms_match_scipy_including_far_tails(name):
    form = residual_form(name)
    y, f = _points()
    ref = _scipy(name, f)
    np.testing.assert_allclose(form.log_density(y, f, SIGMA), ref.logpdf(y), rtol=1e-10)
    np.testing.assert_allclose(form.log_below(y, f, SIGMA), ref.logcdf(y), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(form.log_above(y, f, SIGMA), ref.logsf(y), rtol=1e-10, atol=1e-300)
    assert np.all(np.isfinite(form.log_below(y, f, SIGMA)))


@pytest.mark.parametrize("name", sorted(RESIDUAL_FORMS))
def test_pytensor_forms_match_scipy_including_far_tails(name):
    pt = pytest.importorskip("pytensor.tensor")
    form = residual_form(name)
    y, f = _points()
    yt, ft = pt.dvector("y"), pt.dvector("f")
    ref = _scipy(name, f)
    import pytensor

    fn = pytensor.function(
        [yt, ft],
        [
            form.log_density(yt, ft, SIGMA, pt),
            form.log_below(yt, ft, SIGMA, pt),
            form.log_above(yt, ft, SIGMA, pt),
        ],
    )
    density, below, above = fn(y, f)
    np.testing.assert_allclose(density, ref.logpdf(y), rtol=1e-9)
    np.testing.assert_allclose(below, ref.logcdf(y), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(above, ref.logsf(y), rtol=1e-9, atol=1e-300)


def test_log_phi_both_namespaces_far_tails():
    pt = pytest.importorskip("pytensor.tensor")
    z = np.concatenate([np.linspace(-60, 10, 141), [-1.0, -1.0 - 1e-12, -1e-12, 0.0, 37.0]])
    z = np.concatenate([z, np.random.default_rng(1).normal(0.0, 4.0, 2000)])
    expected = stats.norm.logcdf(z)
    np.testing.assert_allclose(log_phi(z), expected, rtol=1e-12, atol=1e-300)
    zt = pt.dvector("z")
    got = log_phi(zt, pt).eval({zt: z})
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-300)
    # ln Φ(−60) by the asymptotic (Mills ratio) series, independent of scipy: no underflow
    z0 = -60.0
    series = -0.5 * z0**2 - np.log(-z0) - 0.5 * np.log(2 * np.pi) + np.log1p(-1 / z0**2 + 3 / z0**4)
    assert got[0] == pytest.approx(series, rel=1e-12)


def test_log_phi_gradient_is_the_inverse_mills_ratio():
    """d ln Φ(z)/dz of the graph (autodiff through both branches) equals φ(z)/Φ(z) from
    scipy, on either side of the branch point z = 0 and far in the lower tail."""
    pt = pytest.importorskip("pytensor.tensor")
    import pytensor

    z = np.concatenate([np.linspace(-38, 9, 95), [-1e-9, 0.0, 1e-9]])
    zt = pt.dvector("z")
    gradient = pytensor.grad(log_phi(zt, pt).sum(), zt).eval({zt: z})
    expected = np.exp(stats.norm.logpdf(z) - stats.norm.logcdf(z))
    np.testing.assert_allclose(gradient, expected, rtol=1e-10)


def test_observation_log_likelihood_pytensor_equals_numpy():
    pt = pytest.importorskip("pytensor.tensor")
    from asuc_bayes.spec.residual import observation_log_likelihood

    form = residual_form("combined")
    values = np.array([12.0, 0.5, 80.0, 3.0])
    censoring = np.array([0, 1, -1, 0])
    prediction = np.array([10.0, 4.0, 30.0, 1e-20])  # the last prediction is floored
    expected = observation_log_likelihood(form, values, censoring, prediction, SIGMA)
    f, codes = pt.dvector("f"), pt.lvector("codes")  # censoring codes bound as data, too
    got = observation_log_likelihood(form, values, codes, f, SIGMA, xp=pt).eval(
        {f: prediction, codes: censoring}
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    ref = _scipy("combined", np.maximum(prediction, 1e-12))
    np.testing.assert_allclose(
        expected,
        [ref.logpdf(values)[0], ref.logcdf(values)[1], ref.logsf(values)[2], ref.logpdf(values)[3]],
        rtol=1e-12,
    )


@pytest.mark.parametrize("name", sorted(RESIDUAL_FORMS))
def test_log_censored_is_cdf_below_and_sf_above(name):
    """ln Φ(s·z) per record: scipy's logcdf for s = +1, logsf for s = −1, signs mixed."""
    form = residual_form(name)
    y, f = _points()
    sign = np.where(np.arange(y.size) % 2 == 0, 1.0, -1.0)
    ref = _scipy(name, f)
    expected = np.where(sign > 0, ref.logcdf(y), ref.logsf(y))
    np.testing.assert_allclose(
        form.log_censored(y, f, SIGMA, sign), expected, rtol=1e-10, atol=1e-300
    )


def test_numpy_likelihood_by_column_by_element_and_pytensor_agree():
    """The NumPy path evaluates ln Φ for censored records only (by column, or by element when
    the codes broadcast): both equal the PyTensor path, which evaluates every term."""
    pt = pytest.importorskip("pytensor.tensor")
    from asuc_bayes.spec.residual import observation_log_likelihood

    rng = np.random.default_rng(4)
    form = residual_form("log_normal")
    prediction = rng.lognormal(1.0, 1.0, size=(5, 6))
    values = rng.lognormal(1.0, 1.0, size=6)
    censoring = np.array([0, 1, -1, 0, 1, -1])
    sigma = {"log_sd": np.full((5, 1), 0.4)}  # one SD per row (e.g. per draw)
    by_column = observation_log_likelihood(form, values, censoring, prediction, sigma)
    by_element = observation_log_likelihood(
        form, values, np.broadcast_to(censoring, prediction.shape), prediction, sigma
    )
    f, codes = pt.dmatrix("f"), pt.lvector("codes")
    graph = observation_log_likelihood(form, values, codes, f, {"log_sd": 0.4}, xp=pt)
    expected = graph.eval({f: prediction, codes: censoring})
    np.testing.assert_allclose(by_column, expected, rtol=1e-12)
    np.testing.assert_allclose(by_element, expected, rtol=1e-12)
    assert float(observation_log_likelihood(form, 2.0, 1, 3.0, {"log_sd": 0.4})) == (
        pytest.approx(stats.norm.logcdf(np.log(2.0), np.log(3.0), 0.4), rel=1e-12)
    )


def test_unknown_censoring_codes_and_forms_are_named():
    from asuc_bayes.spec.legacy import legacy_residual
    from asuc_bayes.spec.residual import observation_log_likelihood

    form = residual_form("proportional")
    with pytest.raises(ValueError, match=r"censoring: unknown codes \[0, 2\]"):
        observation_log_likelihood(form, [1.0, 2.0], [0, 2], 1.0, {"proportional": 0.3})
    with pytest.raises(ValueError, match=r"pk\.residual_form"):
        legacy_residual("exponential", 0.3)
