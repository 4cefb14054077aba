"""Numeric kernels against an ODE solver, quadrature, hand calculations; config validation."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.integrate

from asuc_bayes.pk import kernels
from asuc_bayes.spec.config import ModelSpecError, load_model, model_directory

H = 1.0 / 24.0  # one hour in days

#: (dose start days, amounts mg, durations days): standard, accelerated with mixed infusion
#: lengths, and long infusions that overlap one another.
SCHEDULES = {
    "standard": ([0.0, 14.0, 42.0], [700.0, 700.0, 700.0], [2 * H, 2 * H, 2 * H]),
    "accelerated": ([0.0, 4.0, 9.5, 14.0], [500.0, 800.0, 300.0, 600.0], [H, 3 * H, 2 * H, 0.5]),
    "overlapping": ([0.0, 0.3, 0.35], [400.0, 250.0, 100.0], [0.5, 0.2, 1.0]),
}
PARAMETERS = [(0.49, 13.2), (1.7, 6.0), (0.15, 30.0)]


def _ode_concentration(times, dose_time, amount, duration, cl, v):
    """Integrate dA/dt = R(t) − (CL/V)·A piece by piece between dose events."""
    dose_time, amount, duration = map(np.asarray, (dose_time, amount, duration))
    k = cl / v
    events = np.unique(np.concatenate([[0.0], dose_time, dose_time + duration, times]))

    def rate(t):
        active = (dose_time <= t) & (t < dose_time + duration)
        return float(np.sum(amount[active] / duration[active]))

    amounts = {0.0: 0.0}
    a = 0.0
    for start, end in itertools.pairwise(events):
        r = rate(0.5 * (start + end))  # the input rate is constant on the piece
        sol = scipy.integrate.solve_ivp(
            lambda _t, y, r=r: r - k * y,
            (start, end),
            [a],
            method="DOP853",
            rtol=1e-12,
            atol=1e-12,
        )
        a = float(sol.y[0, -1])
        amounts[float(end)] = a
    return np.array([amounts[float(t)] for t in times]) / v


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize(("cl", "v"), PARAMETERS)
def test_concentration_matches_ode(schedule, cl, v):
    dose_time, amount, duration = SCHEDULES[schedule]
    ends = np.add(dose_time, duration)
    times = np.unique(
        np.concatenate(
            [
                np.linspace(0.01, 60.0, 37),
                np.add(dose_time, 0.5 * np.asarray(duration)),  # during each infusion
                ends,
                ends + 0.001,
            ]
        )
    )
    ode = _ode_concentration(times, dose_time, amount, duration, cl, v)
    ours = kernels.concentration(times, dose_time, amount, duration, np.float64(cl), np.float64(v))
    np.testing.assert_allclose(ours, ode, rtol=1e-6, atol=1e-12)


def test_concentration_is_zero_before_the_first_dose_and_ignores_zero_doses():
    dose_time, amount, duration = SCHEDULES["standard"]
    c = kernels.concentration([-1.0, 0.0, 20.0], dose_time, amount, duration, 0.49, 13.2)
    assert c[0] == 0.0 and c[1] == 0.0
    padded = kernels.concentration(
        [-1.0, 0.0, 20.0], [*dose_time, 50.0], [*amount, 0.0], [*duration, 2 * H], 0.49, 13.2
    )
    np.testing.assert_array_equal(padded, c)


def test_concentration_broadcasts_over_draws():
    dose_time, amount, duration = SCHEDULES["accelerated"]
    cl = np.array([[0.3, 0.49], [1.0, 2.0]])
    v = np.array([[10.0, 13.2], [5.0, 20.0]])
    times = np.array([1.0, 7.0, 20.0])
    out = kernels.concentration(times, dose_time, amount, duration, cl, v)
    assert out.shape == (2, 2, 3)
    single = kernels.concentration(times, dose_time, amount, duration, cl[1, 0], v[1, 0])
    np.testing.assert_allclose(out[1, 0], single)


@pytest.mark.parametrize(
    ("start", "end"),
    [(14.0, 28.0), (0.0, 60.0), (0.02, 4.05), (14.02, 14.05), (4.01, 9.55), (0.1, 0.4)],
)
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize(("cl", "v"), PARAMETERS)
def test_auc_interval_matches_quadrature(start, end, schedule, cl, v):
    dose_time, amount, duration = SCHEDULES[schedule]
    breaks = np.concatenate([dose_time, np.add(dose_time, duration)])
    breaks = breaks[(breaks > start) & (breaks < end)]

    def conc(t):
        return float(kernels.concentration(np.array([t]), dose_time, amount, duration, cl, v)[0])

    quad, _ = scipy.integrate.quad(
        conc,
        start,
        end,
        points=breaks if breaks.size else None,
        epsabs=0,
        epsrel=1e-12,
        limit=500,
    )
    ours = kernels.auc_interval(start, end, dose_time, amount, duration, cl, v)
    assert float(ours) == pytest.approx(quad, rel=1e-9)


@pytest.mark.parametrize("k_per_day", [3.0, 10.0, 40.0])
def test_auc_interval_keeps_relative_precision_for_fast_clearance(k_per_day):
    """One dose at day 0, window days 14-28: the AUC is ~e^(-14k) of the total. A difference
    of cumulative AUCs loses every digit here (it returned 0 or negative values); the
    piecewise form must agree with the analytic integral to 1e-10 relative."""
    v, duration, dose = 10.0, 2 * H, 700.0
    cl = k_per_day * v
    rate = dose / duration
    plateau = rate / cl * -np.expm1(-k_per_day * duration)
    analytic = (
        plateau * np.exp(-k_per_day * (14.0 - duration)) * -np.expm1(-k_per_day * 14.0) / k_per_day
    )
    ours = float(kernels.auc_interval(14.0, 28.0, [0.0], [dose], [duration], cl, v))
    assert ours > 0.0
    assert ours == pytest.approx(analytic, rel=1e-10)


@pytest.mark.parametrize(("cl", "v"), PARAMETERS)
def test_auc_to_infinity_is_dose_over_clearance(cl, v):
    assert float(kernels.auc_interval(0.0, 1e5, [0.0], [700.0], [2 * H], cl, v)) == pytest.approx(
        700.0 / cl, rel=1e-12
    )
    dose_time, amount, duration = SCHEDULES["accelerated"]
    total = kernels.auc_interval(0.0, 1e5, dose_time, amount, duration, cl, v)
    assert float(total) == pytest.approx(sum(amount) / cl, rel=1e-12)


def test_auc_interval_broadcasts_over_draws():
    dose_time, amount, duration = SCHEDULES["standard"]
    cl = np.array([0.3, 0.49, 1.2])
    v = np.array([9.0, 13.2, 20.0])
    out = kernels.auc_interval(14.0, 28.0, dose_time, amount, duration, cl, v)
    assert out.shape == (3,)
    for i in range(3):
        assert out[i] == pytest.approx(
            float(kernels.auc_interval(14.0, 28.0, dose_time, amount, duration, cl[i], v[i]))
        )


# ------------------------------------------------------------------ pytensor == numpy


def test_pytensor_concentration_and_auc_equal_numpy():
    dose_time, amount, duration = SCHEDULES["accelerated"]
    times = np.array([0.5 * H, 1.0, 4.05, 9.0, 14.2, 30.0])
    cl_v = np.array([0.2, 0.49, 2.0])
    v_v = np.array([6.0, 13.2, 25.0])
    cl, v = pt.vector("cl"), pt.vector("v")
    fn = pytensor.function(
        [cl, v],
        [
            kernels.concentration(times, dose_time, amount, duration, cl, v, xp=pt),
            kernels.auc_interval(14.0, 28.0, dose_time, amount, duration, cl, v, xp=pt),
        ],
    )
    conc, auc = fn(cl_v, v_v)
    np.testing.assert_allclose(
        conc, kernels.concentration(times, dose_time, amount, duration, cl_v, v_v), rtol=1e-12
    )
    np.testing.assert_allclose(
        auc, kernels.auc_interval(14.0, 28.0, dose_time, amount, duration, cl_v, v_v), rtol=1e-12
    )


@pytest.mark.parametrize("crp_form", ["power", "log_power"])
def test_pytensor_individual_clearance_and_volume_equal_numpy(crp_form):
    kw = {
        "weight_exponent": 0.75,
        "crp_exponent": 0.56,
        "reference_weight_kg": 70.0,
        "reference_crp_mg_l": 30.0,
        "crp_form": crp_form,
    }
    eta = np.array([-0.5, 0.0, 0.7])
    eta_t = pt.vector("eta")
    fn = pytensor.function(
        [eta_t],
        [
            kernels.individual_clearance(0.49, 63.0, 82.0, eta_t, xp=pt, **kw),
            kernels.individual_volume(
                13.2, 63.0, eta_t, weight_exponent=1.0, reference_weight_kg=70.0, xp=pt
            ),
        ],
    )
    cl, v = fn(eta)
    np.testing.assert_allclose(cl, kernels.individual_clearance(0.49, 63.0, 82.0, eta, **kw))
    np.testing.assert_allclose(
        v,
        kernels.individual_volume(13.2, 63.0, eta, weight_exponent=1.0, reference_weight_kg=70.0),
    )


@pytest.mark.parametrize("form", ["lambda_t_gamma", "lambda_t_all_gamma"])
def test_pytensor_weibull_cumulative_hazard_equals_numpy(form):
    params = {"baseline_lambda": 10**-2.95, "gamma": 1.08, "beta": -0.56, "x_ref": 6.563}
    x = np.array([3.0, 5.79, 8.0])
    x_t = pt.vector("x")
    fn = pytensor.function(
        [x_t], kernels.weibull_cumulative_hazard(90.0, x_t, form=form, xp=pt, **params)
    )
    np.testing.assert_allclose(
        fn(x), kernels.weibull_cumulative_hazard(90.0, x, form=form, **params), rtol=1e-12
    )


# ------------------------------------------------------------------------- Weibull

WEIBULL = {"baseline_lambda": 10**-2.95, "gamma": 1.08, "beta": -0.56, "x_ref": 6.563}


@pytest.mark.parametrize("form", ["lambda_t_gamma", "lambda_t_all_gamma"])
def test_weibull_hazard_is_the_derivative_of_the_cumulative_hazard(form):
    t = np.array([0.5, 3.0, 30.0, 90.0])
    x = np.array([4.0, 5.79, 6.5, 9.0])
    step = 1e-5 * t
    upper = kernels.weibull_cumulative_hazard(t + step, x, form=form, **WEIBULL)
    lower = kernels.weibull_cumulative_hazard(t - step, x, form=form, **WEIBULL)
    numeric = (upper - lower) / (2 * step)
    np.testing.assert_allclose(
        kernels.weibull_hazard(t, x, form=form, **WEIBULL), numeric, rtol=1e-7
    )


@pytest.mark.parametrize("form", ["lambda_t_gamma", "lambda_t_all_gamma"])
def test_weibull_log_likelihood_and_risk(form):
    t = np.array([11.0, 32.0, 90.0, 90.0])
    event = np.array([1, 1, 0, 0])
    x = np.array([4.2, 5.5, 6.8, 7.9])
    h = kernels.weibull_hazard(t, x, form=form, **WEIBULL)
    cum = kernels.weibull_cumulative_hazard(t, x, form=form, **WEIBULL)
    np.testing.assert_allclose(
        kernels.weibull_log_likelihood(t, event, x, form=form, **WEIBULL),
        event * np.log(h) - cum,
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        kernels.weibull_risk(t, x, form=form, **WEIBULL), 1 - np.exp(-cum), rtol=1e-12
    )
    # ln t given once (the marginal population model's node data) changes nothing
    given = kernels.weibull_log_likelihood(
        t, event, x, form=form, log_time_day=np.log(t), **WEIBULL
    )
    np.testing.assert_array_equal(
        given, kernels.weibull_log_likelihood(t, event, x, form=form, **WEIBULL)
    )
    # The reference form by hand: H = λ t^γ exp(β (x − x_ref))
    if form == "lambda_t_gamma":
        by_hand = 10**-2.95 * t**1.08 * np.exp(-0.56 * (x - 6.563))
    else:
        by_hand = (10**-2.95 * t) ** 1.08 * np.exp(-0.56 * (x - 6.563))
    np.testing.assert_allclose(cum, by_hand, rtol=1e-12)


def test_weibull_unknown_form_is_rejected():
    with pytest.raises(ValueError, match="unknown Weibull form"):
        kernels.weibull_cumulative_hazard(90.0, 5.0, form="exponential", **WEIBULL)


def _risk(spec, x):
    tte = spec.tte
    return float(
        kernels.weibull_risk(
            tte.horizon_day,
            x,
            baseline_lambda=tte.baseline_lambda,
            gamma=tte.gamma.estimate,
            beta=tte.beta.estimate,
            x_ref=tte.x_ref,
            form=tte.form,
        )
    )


def test_default_model_x_ref_and_risk_at_threshold():
    spec = load_model()
    assert spec.tte.x_ref == pytest.approx(6.563, abs=5e-4)
    assert _risk(spec, 5.79) == pytest.approx(0.200, abs=5e-4)
    # Hand calculation: H(90) = λ 90^γ e^{β (x − x_ref)} = −ln(0.8) at x = 5.79
    lam, gamma, beta = 10**-2.95, 1.08, -0.56
    x_ref = 5.79 - math.log(-math.log(1 - 0.2) / (lam * 90**gamma)) / beta
    assert spec.tte.x_ref == pytest.approx(x_ref, abs=1e-10)
    # Lower exposure (x) means higher risk (β < 0)
    assert _risk(spec, 4.0) > 0.2 > _risk(spec, 7.0)


def test_all_gamma_variant_x_ref_and_risk_at_threshold():
    spec = load_model(variants=["weibull_lambda_t_all_gamma"])
    assert spec.tte.form == "lambda_t_all_gamma"
    assert spec.tte.x_ref == pytest.approx(7.533, abs=5e-4)
    assert _risk(spec, 5.79) == pytest.approx(0.200, abs=5e-4)
    lam, gamma, beta = 10**-2.95, 1.08, -0.56
    x_ref = 5.79 - math.log(-math.log(1 - 0.2) / (lam * 90) ** gamma) / beta
    assert spec.tte.x_ref == pytest.approx(x_ref, abs=1e-10)


# ---------------------------------------------------------------- typical patients


def _typical(spec, weight, crp):
    pk = spec.pk
    cl = kernels.individual_clearance(
        pk.theta_cl.estimate,
        weight,
        crp,
        0.0,
        weight_exponent=pk.weight_exponent_cl.estimate,
        crp_exponent=pk.crp_exponent_cl.estimate,
        reference_weight_kg=pk.reference_weight_kg,
        reference_crp_mg_l=pk.reference_crp_mg_l,
        crp_form=pk.crp_form,
    )
    v = kernels.individual_volume(
        pk.theta_v.estimate,
        weight,
        0.0,
        weight_exponent=pk.weight_exponent_v.estimate,
        reference_weight_kg=pk.reference_weight_kg,
    )
    return float(cl), float(v)


def test_typical_patient_parameters_by_hand():
    spec = load_model()
    assert _typical(spec, 70.0, 30.0) == pytest.approx((0.49, 13.2), rel=1e-12)
    cl, v = _typical(spec, 63.0, 82.0)
    assert cl == pytest.approx(0.49 * (63 / 70) ** 0.75 * (82 / 30) ** 0.56, rel=1e-12)
    assert v == pytest.approx(13.2 * 0.9, rel=1e-12)


def test_log_crp_variant_by_hand():
    spec = load_model(variants=["log_crp"])
    assert spec.pk.crp_form == "log_power"
    cl, v = _typical(spec, 63.0, 82.0)
    assert cl == pytest.approx(
        0.49 * (63 / 70) ** 0.75 * (math.log(82) / math.log(30)) ** 0.56, rel=1e-12
    )
    assert v == pytest.approx(13.2 * 0.9, rel=1e-12)
    assert _typical(spec, 70.0, 30.0) == pytest.approx((0.49, 13.2), rel=1e-12)


def test_reference_weight_63kg_variant_by_hand():
    spec = load_model(variants=["reference_weight_63kg"])
    assert _typical(spec, 63.0, 30.0) == pytest.approx((0.49, 13.2), rel=1e-12)
    cl, v = _typical(spec, 70.0, 82.0)
    assert cl == pytest.approx(0.49 * (70 / 63) ** 0.75 * (82 / 30) ** 0.56, rel=1e-12)
    assert v == pytest.approx(13.2 * 70 / 63, rel=1e-12)


def test_unknown_crp_form_in_kernel_is_rejected():
    with pytest.raises(ValueError, match="unknown crp_form"):
        kernels.individual_clearance(
            0.49,
            70.0,
            30.0,
            0.0,
            weight_exponent=0.75,
            crp_exponent=0.56,
            reference_weight_kg=70.0,
            reference_crp_mg_l=30.0,
            crp_form="linear",
        )


# ----------------------------------------------------------------- config validation

MODEL_TEXT = (model_directory() / "niyigena2025.toml").read_text(encoding="utf-8")


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    assert MODEL_TEXT.count(old) == 1, old
    path = tmp_path / "broken.toml"
    path.write_text(MODEL_TEXT.replace(old, new), encoding="utf-8")
    return path


THETA_CL = '[pk.parameters.theta_cl]\nunit = "L/day"\nestimate = 0.49\n'


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (
            THETA_CL,
            '[pk.parameters.theta_cl]\nunit = "L/day"\n',
            r"missing pk\.parameters\.theta_cl\.estimate",
        ),
        (
            THETA_CL,
            '[pk.parameters.theta_cl]\nunit = "L/day"\nestimate = "0.49"\n',
            r"pk\.parameters\.theta_cl\.estimate must be a number",
        ),
        (
            THETA_CL,
            '[pk.parameters.theta_cl]\nunit = "L/day"\nestimate = -0.49\n',
            r"pk\.parameters\.theta_cl\.estimate = -0\.49 is outside the plausible range",
        ),
        (
            THETA_CL,
            '[pk.parameters.theta_cl]\nunit = "L/day"\nestimate = true\n',
            r"pk\.parameters\.theta_cl\.estimate must be a number",
        ),
        (
            THETA_CL,
            '[pk.parameters.theta_cl]\nunit = "L/day"\nestimate = nan\n',
            r"pk\.parameters\.theta_cl\.estimate = nan is outside",
        ),
        ('crp_form = "power"', 'crp_form = "linear"', r"pk\.crp_form must be one of"),
        ('form = "proportional"', 'form = "additive"', r"pk\.residual\.form must be one of"),
        ('method = "M3"', 'method = "M1"', r"pk\.censoring\.method must be one of"),
        ('form = "lambda_t_gamma"', 'form = "gompertz"', r"tte\.form must be one of"),
        (
            "reference_weight_kg = 70.0",
            'reference_weight_kg = "70"',
            r"pk\.reference_weight_kg must be a number",
        ),
        ("cv_percent = 72.1", "cv_percent = -72.1", r"pk\.iiv\.cl\.cv_percent .* outside"),
        ("sd = 0.44", "sd = 0", r"pk\.residual\.sd.* = 0 is outside"),
        (
            "bootstrap = [0.33, 0.49, 0.63]",
            "bootstrap = [0.63, 0.49, 0.33]",
            r"pk\.parameters\.theta_cl\.bootstrap must be",
        ),
        (
            "auc_window_day = [14.0, 28.0]",
            "auc_window_day = [28.0, 14.0]",
            r"tte\.auc_window_day must be",
        ),
        ('x_ref = "calibrate"', 'x_ref = "auto"', r"tte\.x_ref must be a number"),
        (
            "risk_at_threshold = 0.20",
            "risk_at_threshold = 1.5",
            r"tte\.risk_at_threshold = 1\.5 is outside",
        ),
        (
            "estimate = 0.75\nfixed = true",
            'estimate = 0.75\nfixed = "yes"',
            r"weight_exponent_cl\.fixed must be true or false",
        ),
        (
            '"pk.crp_form" = "log_power"',
            '"pk.crp_forms" = "log_power"',
            r"variants\.log_crp: 'pk\.crp_forms' does not name a key",
        ),
        ("[pk.iiv.v]", "[pk.iiv.vv]", r"unknown key 'pk\.iiv\.vv' \(accepted here: cl, v\)"),
        (
            "rse_percent = 13\n",
            "rse_precent = 13\n",
            r"unknown key 'pk\.parameters\.theta_cl\.rse_precent'",
        ),
        (
            'covariate = "ln_auc_w2_4_over_cl"',
            'covariate = "auc"',
            r"tte\.covariate must be one of",
        ),
        ('x_ref = "calibrate"', "x_ref = nan", r"tte\.x_ref must be a number"),
        ("auc_window_day = [14.0, 28.0]", "auc_window_day = [14.0, inf]", r"tte\.auc_window_day"),
        ("auc_window_day = [14.0, 28.0]", "auc_window_day = [true, 28.0]", r"tte\.auc_window_day"),
        ("estimate = -2.95", "estimate = 5", r"tte\.parameters\.log10_lambda\.estimate = 5"),
        ("[model]\n", "[model]\nname = 3\n[unused]\n", r"unknown key 'unused'"),
        ('name = "niyigena2025-asuc-infliximab"', "name = 3", r"model\.name must be a non-empty"),
    ],
)
def test_broken_model_files_name_the_key(tmp_path, old, new, match):
    path = _broken(tmp_path, old, new)
    variants = ["log_crp"] if "log_crp" in match else []
    with pytest.raises(ModelSpecError, match=match):
        load_model(path, variants=variants)


def test_missing_parameter_table_is_named(tmp_path):
    whole_table = THETA_CL + "rse_percent = 13\nbootstrap = [0.33, 0.49, 0.63]\n"
    path = _broken(tmp_path, whole_table, "")
    with pytest.raises(ModelSpecError, match=r"missing table \[pk\.parameters\.theta_cl\]"):
        load_model(path)
    misspelt = _broken(tmp_path, THETA_CL, "[pk.parameters.theta_clearance]\nestimate = 0.49\n")
    with pytest.raises(ModelSpecError, match=r"unknown key 'pk\.parameters\.theta_clearance'"):
        load_model(misspelt)


def test_unknown_variant_is_named():
    with pytest.raises(ModelSpecError, match=r"unknown variant 'no_such_variant'"):
        load_model(variants=["no_such_variant"])


def test_invalid_toml_and_missing_files(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[pk\nstructure = 1\n", encoding="utf-8")
    with pytest.raises(ModelSpecError, match="not valid TOML"):
        load_model(path)
    with pytest.raises(ModelSpecError, match="does not exist"):
        load_model(tmp_path / "absent.toml")
    with pytest.raises(ModelSpecError, match="unknown model 'no_such_model'"):
        load_model("no_such_model")


def test_copy_of_the_model_file_loads_identically(tmp_path):
    path = tmp_path / "copy.toml"
    path.write_text(MODEL_TEXT, encoding="utf-8")
    copy = load_model(path)
    original = load_model()
    assert copy.pk == original.pk and copy.tte == original.tte
    assert copy.sha256 == original.sha256


@pytest.mark.parametrize("variants", [(), ("log_crp",), ("reference_weight_63kg",)])
def test_individual_pk_parameters_matches_the_separate_kernels(variants):
    spec = load_model(variants=variants)
    eta_cl, eta_v = np.array([-0.3, 0.0, 0.8]), np.array([0.2, -0.5, 0.0])
    cl, v = kernels.individual_pk_parameters(spec.pk, 58.0, 150.0, eta_cl, eta_v)
    typical_cl, typical_v = _typical(spec, 58.0, 150.0)
    np.testing.assert_allclose(cl, typical_cl * np.exp(eta_cl), rtol=1e-12)
    np.testing.assert_allclose(v, typical_v * np.exp(eta_v), rtol=1e-12)


def test_ln_auc_cl_is_floored_and_weibull_parameters_unpack_the_spec():
    """ln(AUC/CL) by hand, and its floor for an underflowed AUC; the Weibull keyword
    arguments are the model file's values, or the per-draw values given."""

    assert kernels.ln_auc_cl(np.float64(700.0), 0.5) == pytest.approx(np.log(1400.0), rel=1e-15)
    floored = kernels.ln_auc_cl(np.array([0.0, 1e-320]), 0.5)
    np.testing.assert_allclose(floored, np.log(1e-300) - np.log(0.5), rtol=1e-15)
    tte = load_model(variants=["weibull_lambda_t_all_gamma"]).tte
    assert kernels.weibull_parameters(tte) == {
        "baseline_lambda": 10.0**tte.log10_lambda.estimate,
        "gamma": tte.gamma.estimate,
        "beta": tte.beta.estimate,
        "x_ref": tte.x_ref,
        "form": "lambda_t_all_gamma",
    }
    gamma = np.array([0.4, 0.5])
    params = kernels.weibull_parameters(tte, gamma=gamma)
    assert params["gamma"] is gamma and params["beta"] == tte.beta.estimate
