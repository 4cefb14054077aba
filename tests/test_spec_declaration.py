"""The generic declaration against today's Niyigena implementation (kernels, grid), units,
imputation and the outcome model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from asuc_bayes.inference.grid import observation_log_likelihood as grid_log_likelihood
from asuc_bayes.pk import kernels
from asuc_bayes.spec import (
    MissingCovariateError,
    Quantity,
    individual_parameters,
    load_declaration,
    with_outcome_from,
)
from asuc_bayes.spec.config import load_model
from asuc_bayes.spec.residual import observation_log_likelihood, residual_form

VARIANTS = [[]] + [[v] for v in load_model().available_variants]


@pytest.mark.parametrize("variants", VARIANTS, ids=lambda v: v[0] if v else "base")
def test_niyigena_cl_v_equal_kernels_for_random_patients(variants):
    spec = load_model(variants=variants)
    decl = load_declaration("niyigena2025", variants=variants)
    rng = np.random.default_rng(7)
    for _ in range(20):
        weight = rng.uniform(35, 140)
        crp = rng.uniform(1.5, 400)
        eta = rng.normal(0.0, 0.8, size=(50, 2))
        cl, v = kernels.individual_pk_parameters(spec.pk, weight, crp, eta[:, 0], eta[:, 1])
        got = individual_parameters(decl, {"WT": weight, "CRP": crp}, eta)
        np.testing.assert_allclose(got["CL"], cl, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got["V"], v, rtol=1e-12, atol=0)
    assert decl.default_infusion_duration_day == spec.pk.default_infusion_duration_day


@pytest.mark.parametrize("variants", [[], ["log_residual"]], ids=["proportional", "log_normal"])
def test_niyigena_residual_and_m3_equal_grid(variants):
    """grid.py and the declaration give the same terms: the density of y for measured records
    (−ln y included for the log-normal form), the M3 terms for censored ones."""
    spec = load_model(variants=variants)
    decl = load_declaration("niyigena2025", variants=variants)
    rng = np.random.default_rng(3)
    values = rng.lognormal(2.0, 1.5, size=200)
    prediction = rng.lognormal(2.0, 1.5, size=200)
    censoring = rng.choice([0, 1, -1], size=200)
    expected = grid_log_likelihood(
        values, censoring, prediction, spec.pk.residual_sd.estimate, spec.pk.residual_form
    )
    got = observation_log_likelihood(
        residual_form(decl.residual.form), values, censoring, prediction, decl.residual.sd()
    )
    np.testing.assert_array_equal(got, expected)
    # and both are scipy's: the density of y (lognorm for ln y ~ N(ln f, σ²)), cdf, sf
    sd = spec.pk.residual_sd.estimate
    if spec.pk.residual_form == "log_normal":
        dist = scipy.stats.lognorm(s=sd, scale=prediction)
    else:
        dist = scipy.stats.norm(prediction, sd * prediction)
    reference = np.select(
        [censoring == 0, censoring == 1],
        [dist.logpdf(values), dist.logcdf(values)],
        dist.logsf(values),
    )
    np.testing.assert_allclose(got, reference, rtol=1e-10)


def test_niyigena_random_effects_from_cv():
    spec = load_model()
    decl = load_declaration("niyigena2025")
    np.testing.assert_allclose(decl.random_effects.sd, [spec.pk.omega_cl, spec.pk.omega_v])
    assert decl.random_effects.names == ("eta_CL", "eta_V")
    assert decl.random_effects.effects[0].cv_percent == 72.1
    # hand computation: sqrt(ln(1 + 0.721^2))
    assert decl.random_effects.sd[0] == pytest.approx(math.sqrt(math.log(1 + 0.721**2)))


def test_niyigena_outcome_model_and_attachment():
    niyigena = load_declaration("niyigena2025")
    assert niyigena.outcome is not None and not niyigena.outcome.extrapolated
    assert niyigena.outcome.x_ref == pytest.approx(load_model().tte.x_ref, rel=1e-15)
    other = with_outcome_from(load_declaration("fasanmade2009"), niyigena)
    assert other.outcome.extrapolated and other.outcome.source_model == "niyigena2025"
    assert other.outcome.beta.estimate == -0.56
    with pytest.raises(ValueError, match="no outcome model"):
        with_outcome_from(niyigena, load_declaration("wojciechowski2017"))


def test_albumin_in_g_per_l_feeds_a_g_per_dl_model():
    decl = load_declaration("fasanmade2009")
    base = {"ATI": 0, "SEX": 0, "WT": 77.0}
    in_g_dl = individual_parameters(decl, {**base, "ALB": 3.2})
    in_g_l = individual_parameters(decl, {**base, "ALB": Quantity(32.0, "g/L")})
    as_pair = individual_parameters(decl, {**base, "ALB": (32.0, "g/L")})
    assert in_g_l["CL"] == pytest.approx(in_g_dl["CL"], rel=1e-14)
    assert as_pair["CL"] == pytest.approx(in_g_dl["CL"], rel=1e-14)
    # hand computation: 0.407 * (3.2 / 4.1)^-1.54
    assert in_g_dl["CL"] == pytest.approx(0.407 * (3.2 / 4.1) ** -1.54, rel=1e-14)


def test_missing_covariate_names_it_and_the_model():
    decl = load_declaration("wojciechowski2017")
    with pytest.raises(MissingCovariateError, match=r"'wojciechowski2017' needs covariate ALB"):
        individual_parameters(decl, {"WT": 70.0, "ADA": 0})


def test_imputation_is_reported_not_silent():
    decl = load_declaration("wojciechowski2017")
    result = individual_parameters(decl, {"WT": 70.0}, impute="reference")
    assert {i.covariate for i in result.imputed} == {"ALB", "ADA"}
    assert result["CL"] == pytest.approx(0.294, rel=1e-14)
    result = individual_parameters(decl, {"WT": 70.0, "ADA": 1}, impute={"ALB": 3.0})
    assert [(i.covariate, i.value, i.unit) for i in result.imputed] == [("ALB", 3.0, "g/dL")]
    assert result["CL"] == pytest.approx(0.294 * (3.0 / 4.0) ** -1.17 * 1.257, rel=1e-14)
    assert individual_parameters(decl, {"WT": 70.0, "ALB": 4.0, "ADA": 0}).imputed == ()


def test_reference_imputation_uses_the_reference_patient():
    decl = load_declaration("fasanmade2011")  # WT effects have references 1 kg and 65 kg
    p = individual_parameters(decl, {}, impute="reference")
    assert {(i.covariate, i.value) for i in p.imputed} == {
        ("WT", 65.0),
        ("ALB", 4.1),
        ("IMM", 0.0),
        ("ATI", 0.0),
    }
    assert p["CL"] == pytest.approx(5.42 * 65 / 1000, rel=1e-13)


def test_binary_covariate_must_be_0_or_1():
    decl = load_declaration("wojciechowski2017")
    with pytest.raises(ValueError, match=r"ADA .* must be 0 or 1"):
        individual_parameters(decl, {"WT": 70.0, "ALB": 4.0, "ADA": 2})


def test_time_varying_covariate_and_draws_broadcast():
    decl = load_declaration("wojciechowski2017")
    ada = np.array([0.0, 0.0, 1.0])  # antibodies appear at the third record
    eta = np.zeros((5, 1, 4))  # 5 draws x 1 x 4 random effects
    eta[:, 0, 0] = np.linspace(-1, 1, 5)
    p = individual_parameters(decl, {"WT": 70.0, "ALB": 4.0, "ADA": ada}, eta)
    assert p["CL"].shape == (5, 3)
    np.testing.assert_allclose(p["CL"][:, 2] / p["CL"][:, 0], 1.257, rtol=1e-14)
    np.testing.assert_allclose(p["CL"][:, 0], 0.294 * np.exp(np.linspace(-1, 1, 5)), rtol=1e-14)


def test_pytensor_path_equals_numpy():
    pt = pytest.importorskip("pytensor.tensor")
    decl = load_declaration("niyigena2025", variants=["log_crp"])
    eta = np.array([[0.3, -0.2], [-1.0, 0.5]])
    weight, crp = pt.dscalar("weight"), pt.dscalar("crp")
    eta_t = pt.dmatrix("eta")
    graph = individual_parameters(decl, {"WT": weight, "CRP": crp}, eta_t, xp=pt)
    got = graph["CL"].eval({weight: 63.0, crp: 80.0, eta_t: eta})
    expected = individual_parameters(decl, {"WT": 63.0, "CRP": 80.0}, eta)["CL"]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_categorical_form_in_pytensor():
    pt = pytest.importorskip("pytensor.tensor")
    decl = load_declaration("faelens2021")
    mayo = pt.dvector("mayo")
    covariates = {"MAYO_E": mayo, "CS": 0.0, "FFM": 52.0, "EXTCOL": 0.0}
    graph = individual_parameters(decl, covariates, None, xp=pt)
    got = graph["KE"].eval({mayo: np.array([1.0, 2.0, 3.0])})
    np.testing.assert_allclose(got, [0.0422, 0.0463, 0.0570], rtol=1e-13)


def test_units_table():
    from asuc_bayes.spec.units import UnitError, convert

    assert convert(40.0, "g/L", "g/dL") == pytest.approx(4.0)
    assert convert(5.0, "mg/dL", "mg/L") == pytest.approx(50.0)
    assert convert(154.0, "lb", "kg") == pytest.approx(69.853225, rel=1e-8)
    with pytest.raises(UnitError, match="different dimensions"):
        convert(1.0, "g/dL", "kg")
    with pytest.raises(UnitError, match="unknown unit 'stone'"):
        convert(1.0, "stone", "kg")


def test_declaration_is_immutable():
    decl = load_declaration("niyigena2025")
    with pytest.raises(AttributeError):
        decl.name = "x"  # type: ignore[misc]
