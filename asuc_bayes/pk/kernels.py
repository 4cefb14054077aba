"""Pure numeric kernels: PK concentration, closed-form AUC, covariate model (and, re-exported
from :mod:`asuc_bayes.pk.weibull`, the Weibull hazard and its exposure covariate).

Every function takes an array namespace ``xp`` (``numpy`` by default, or
``pytensor.tensor``) so that the PyMC graph, the simulator, the exact-grid reference and
the tests share one implementation of each equation (model card, sections 1-2).

The per-mode maths of linear PK is written here once, for one exponential mode e^(−λt):
the phases of an infusion (:func:`infusion_phases`, :func:`window_until`,
:func:`window_phases`), its response to a zero-order infusion and that response's integral
over a window (:func:`mode_infusion_response`, :func:`mode_infusion_auc`) and the train of
a steady-state dose (:func:`steady_state_factor`, :func:`mode_train_response`,
:func:`mode_train_auc`). The one-compartment kernels here use them with one mode (λ = k =
CL/V, gain R/CL), :mod:`asuc_bayes.pk.linear` with the modes of any linear structure (gain
R w/λ) and :mod:`asuc_bayes.pk.closed_form` for its steady-state troughs (F/λ).

Shapes: times ``(..., n_time)``, doses ``(n_dose,)``, individual parameters broadcastable
to the leading ``...`` shape (e.g. one value per posterior draw).

Steady state and resets (NONMEM ``SS``/``II`` and ``EVID`` 3/4). Two optional per-dose arrays
extend a regimen: ``dose_end_day``, when the dose's effect is wiped out by a reset
(:data:`NO_END_DAY` when never), and ``dose_ss_interval_day``, the interval II of a
steady-state dose (0 for a plain infusion). A dose contributes nothing at or after its end.
A steady-state dose of rate R = D/T starting at t_s stands for the same infusion repeated
every II ≥ T days since forever: for τ = t − t_s ≥ 0 it contributes its own infusion plus
the infusions started at t_s − n·II (n = 1, 2, ...), which have all ended (n·II ≥ T), so each
adds R/CL · (1 − e^(−kT)) · e^(−k(τ + n·II − T)); the geometric series
Σ_(n≥1) e^(−k n II) = e^(−k II)/(1 − e^(−k II)) gives the train
R/CL · F · e^(−kτ) with F = (1 − e^(−kT)) e^(−k(II − T)) / (1 − e^(−k II))
(:func:`steady_state_factor`). Before t_s the dose contributes nothing, as in NONMEM, where
the steady state is the amount set at t_s (``SS=1`` also resets earlier doses: the data layer
gives them ``dose_end_day`` = t_s; ``SS=2`` adds to them). Without these arrays (or with
all doses plain) the results are bit-identical to plain superposition.

Examples
--------
>>> import numpy as np

>>> c = concentration(np.array([1.0]), np.array([0.0]), np.array([700.0]), np.array([1 / 12]),
...                   np.float64(0.49), np.float64(13.2))
>>> round(float(c[0]), 2)
51.18
>>> # The AUC of one dose over all time is dose / CL
>>> auc = auc_interval(0.0, 1e6, np.array([0.0]), np.array([700.0]), np.array([1 / 12]),
...                    np.float64(0.49), np.float64(13.2))
>>> bool(np.isclose(auc, 700 / 0.49))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from asuc_bayes.data.types import NO_END_DAY
from asuc_bayes.pk.weibull import (
    AUC_FLOOR_MG_DAY_L,
    ln_auc_cl,
    weibull_baseline_cumulative_hazard,
    weibull_cumulative_hazard,
    weibull_hazard,
    weibull_log_cumulative_hazard,
    weibull_log_likelihood,
    weibull_parameters,
    weibull_risk,
)

__all__ = [
    "AUC_FLOOR_MG_DAY_L",
    "NO_END_DAY",
    "auc_interval",
    "auc_window_phases",
    "concentration",
    "dose_phase_times",
    "individual_clearance",
    "individual_pk_parameters",
    "individual_volume",
    "infusion_auc",
    "infusion_concentration",
    "infusion_phases",
    "ln_auc_cl",
    "mode_infusion_auc",
    "mode_infusion_response",
    "mode_train_auc",
    "mode_train_response",
    "steady_state_factor",
    "weibull_baseline_cumulative_hazard",
    "weibull_cumulative_hazard",
    "weibull_hazard",
    "weibull_log_cumulative_hazard",
    "weibull_log_likelihood",
    "weibull_parameters",
    "weibull_risk",
    "window_phases",
    "window_until",
]


def _as_array(x: Any, xp: Any) -> Any:
    if xp is np:
        return np.asarray(x, dtype=float)
    return xp.as_tensor_variable(x)


def infusion_phases(since_start_day, duration_day, xp: Any = np):
    """(during, after): of the time τ since an infusion's start, the part inside the
    infusion, τ clipped to [0, T], and the part after its end, (τ − T)⁺. Elementwise."""
    during = xp.clip(since_start_day, 0.0, duration_day)
    after = xp.maximum(since_start_day - duration_day, 0.0)
    return during, after


def dose_phase_times(time_day, dose_time_day, dose_duration_day, xp: Any = np):
    """Per (time, dose): time spent inside the infusion and time elapsed after its end.

    ``time_day`` (..., n_time) against doses (..., n_dose) gives (..., n_time, n_dose)
    (:func:`infusion_phases`).
    """
    tau = time_day[..., :, None] - dose_time_day[..., None, :]
    return infusion_phases(tau, dose_duration_day[..., None, :], xp)


def mode_infusion_response(during_day, after_day, rate_per_day, xp: Any = np, *, gain=None):
    """g · (1 − e^(−λ·during)) · e^(−λ·after): one exponential mode's response to a
    zero-order infusion, elementwise.

    ``during``/``after`` are the times spent inside the infusion and elapsed after its end
    (:func:`infusion_phases`); both 0 (a dose not yet started) give 0. The gain g is R w/λ
    for a mode of weight w and R/CL for one compartment; without ``gain`` the response is
    per unit gain. The gain multiplies first, as the kernels have always rounded.

    Examples
    --------
    >>> # long after the start of a long infusion: the plateau, g
    >>> float(mode_infusion_response(1e3, 0.0, 0.1, gain=2.0))
    2.0
    """
    minus_rate = -rate_per_day  # negated once, on the (small) array of rates
    # one expression, so that NumPy reuses its full-size temporaries instead of copying
    if gain is None:
        return -xp.expm1(minus_rate * during_day) * xp.exp(minus_rate * after_day)
    return gain * -xp.expm1(minus_rate * during_day) * xp.exp(minus_rate * after_day)


def infusion_concentration(during_day, after_day, rate_mg_day, clearance, k_per_day, xp: Any = np):
    """Concentration (mg/L) left by one zero-order infusion, elementwise.

    R/CL · (1 − e^(−k·during)) · e^(−k·after) (:func:`mode_infusion_response`), with
    ``during``/``after`` the time spent inside the infusion and elapsed after its end
    (:func:`dose_phase_times`), R the infusion rate and k = CL/V. Both times 0 (a dose not
    yet started) give 0.
    """
    gain = rate_mg_day / clearance
    return mode_infusion_response(during_day, after_day, k_per_day, xp, gain=gain)


def _uses(values, xp: Any, test) -> bool:
    """Whether the optional per-dose ``values`` can change a result: NumPy decides from the
    data (plain regimens keep the plain, bit-identical code path); a symbolic graph always
    includes the terms (its data are bound later)."""
    if values is None:
        return False
    if xp is np:
        return bool(np.any(test(np.asarray(values, dtype=float))))
    return True


def steady_state_factor(k_per_day, duration_day, interval_day, xp: Any = np):
    """F = (1 − e^(−kT)) e^(−k(II − T)) / (1 − e^(−k II)), and 0 where II = 0 (elementwise).

    R/CL · F · e^(−kτ) is the concentration left at τ ≥ 0 after the start of a steady-state
    dose by the infusions of its train before it (module docstring); for any mode of rate λ,
    F/λ is the trough of the train per unit infusion rate. Written with non-positive
    exponents only and with safe values in the masked entries, so that neither the value
    nor a gradient is ever NaN.

    Examples
    --------
    >>> # a bolus-like infusion every II: the trough of the train is r/(1 − r), r = e^(−k II)
    >>> k, ii = 0.05, 14.0
    >>> f = steady_state_factor(k, 1e-9, ii) / (k * 1e-9)
    >>> bool(np.isclose(f, np.exp(-k * ii) / (1 - np.exp(-k * ii)), rtol=1e-6))
    True
    >>> float(steady_state_factor(k, 1 / 12, 0.0))
    0.0
    """
    has_train = interval_day > 0
    safe_interval = xp.where(has_train, interval_day, 1.0)
    factor = (
        -xp.expm1(-k_per_day * duration_day)
        * xp.exp(-k_per_day * xp.maximum(safe_interval - duration_day, 0.0))
        / -xp.expm1(-k_per_day * safe_interval)
    )
    return xp.where(has_train, factor, 0.0)


def mode_train_response(
    since_start_day, rate_per_day, duration_day, interval_day, xp: Any = np, *, gain=None
):
    """g · F · e^(−λτ) for τ ≥ 0 and 0 before: one mode's response to the earlier
    infusions of a steady-state dose's train (:func:`steady_state_factor`; the gain g as in
    :func:`mode_infusion_response`), elementwise."""
    factor = steady_state_factor(rate_per_day, duration_day, interval_day, xp)
    if gain is not None:
        factor = gain * factor
    train = factor * xp.exp(-rate_per_day * xp.maximum(since_start_day, 0.0))
    return xp.where(since_start_day >= 0.0, train, 0.0)


def window_until(start_day, end_day, dose_end_day, xp: Any = np):
    """A window [start, end] cut at a dose's end (a reset), as (min(start, end'), end') with
    end' = min(end, dose_end): the dose contributes nothing after its end."""
    end_day = xp.minimum(end_day, dose_end_day)
    return xp.minimum(start_day, end_day), end_day


def window_phases(start_since_dose_day, end_since_dose_day, duration_day, xp: Any = np):
    """A window in a dose's own times, elementwise: (a0, a1, b0, b1, s0, s1), with [s0, s1]
    its part since the dose's start, [a0, a1] its part inside the infusion (clipped to
    [0, T]) and [b0, b1] its part after the infusion's end (time since the end, from 0).

    Examples
    --------
    >>> [float(x) for x in window_phases(-1.0, 3.0, 2.0)]
    [0.0, 2.0, 0.0, 1.0, 0.0, 3.0]
    """
    s0 = xp.maximum(start_since_dose_day, 0.0)
    s1 = xp.maximum(end_since_dose_day, 0.0)
    return (
        xp.minimum(s0, duration_day),
        xp.minimum(s1, duration_day),
        xp.maximum(s0 - duration_day, 0.0),
        xp.maximum(s1 - duration_day, 0.0),
        s0,
        s1,
    )


def mode_infusion_auc(a0, a1, b0, b1, duration_day, rate_per_day, xp: Any = np):
    """∫ of :func:`mode_infusion_response` per unit gain over a window given by its phases
    (:func:`window_phases`), elementwise: (a1 − a0) − e^(−λ a0)(1 − e^(−λ(a1 − a0)))/λ
    + (1 − e^(−λT)) e^(−λ b0)(1 − e^(−λ(b1 − b0)))/λ. Every term is non-negative.

    Examples
    --------
    >>> # all of a very short infusion's decay: (1 − e^(−λT))/λ ≈ T
    >>> round(float(mode_infusion_auc(0.0, 1e-9, 0.0, 1e4, 1e-9, 0.5) / 1e-9), 6)
    1.0
    """
    minus_rate = -rate_per_day
    inside = (a1 - a0) - xp.exp(minus_rate * a0) * -xp.expm1(minus_rate * (a1 - a0)) / rate_per_day
    decay = (
        -xp.expm1(minus_rate * duration_day)
        * xp.exp(minus_rate * b0)
        * -xp.expm1(minus_rate * (b1 - b0))
        / rate_per_day
    )
    return inside + decay


def mode_train_auc(s0, s1, rate_per_day, duration_day, interval_day, xp: Any = np, *, gain=None):
    """∫ of :func:`mode_train_response` over the part [s0, s1] of a window since a
    steady-state dose's start: g · F · e^(−λ s0)(1 − e^(−λ(s1 − s0)))/λ, elementwise."""
    factor = steady_state_factor(rate_per_day, duration_day, interval_day, xp)
    if gain is not None:
        factor = gain * factor
    minus_rate = -rate_per_day
    return factor * xp.exp(minus_rate * s0) * -xp.expm1(minus_rate * (s1 - s0)) / rate_per_day


def concentration(
    time_day,
    dose_time_day,
    dose_amount_mg,
    dose_duration_day,
    clearance,
    volume,
    xp: Any = np,
    *,
    dose_end_day=None,
    dose_ss_interval_day=None,
):
    """Concentration (mg/L) of a one-compartment model with zero-order infusions.

    For one infusion of amount D over T days starting at t_d, with k = CL/V and τ = t − t_d,
    C = D/(T·CL) · (1 − e^(−k·min(τ, T))) · e^(−k·max(τ − T, 0)) for τ > 0 and 0 otherwise;
    doses add by superposition (R/CL times :func:`mode_infusion_response` per dose). Doses of
    amount 0 contribute nothing (padding). A steady-state dose (``dose_ss_interval_day``
    II > 0) adds its train R/CL · F · e^(−kτ) for τ ≥ 0 (:func:`mode_train_response`,
    :func:`steady_state_factor`); a dose contributes
    nothing at or after ``dose_end_day`` (a reset). Both are optional (module docstring).

    Examples
    --------
    >>> cl, v = np.float64(0.49), np.float64(13.2)
    >>> plain = concentration(np.array([20.0]), np.array([0.0]), np.array([700.0]),
    ...                       np.array([1 / 12]), cl, v)
    >>> reset = concentration(np.array([20.0]), np.array([0.0]), np.array([700.0]),
    ...                       np.array([1 / 12]), cl, v, dose_end_day=np.array([15.0]))
    >>> float(reset[0]), bool(plain[0] > 0)
    (0.0, True)
    """
    time_day, dose_time_day, dose_amount_mg, dose_duration_day, clearance, volume = (
        _as_array(a, xp)
        for a in (time_day, dose_time_day, dose_amount_mg, dose_duration_day, clearance, volume)
    )
    cl = clearance[..., None, None]
    k = cl / volume[..., None, None]
    since_start = time_day[..., :, None] - dose_time_day[..., None, :]
    duration = dose_duration_day[..., None, :]
    rate = dose_amount_mg[..., None, :] / duration
    during, after = infusion_phases(since_start, duration, xp)
    per_dose = infusion_concentration(during, after, rate, cl, k, xp)
    if _uses(dose_ss_interval_day, xp, lambda ii: ii > 0):
        interval = _as_array(dose_ss_interval_day, xp)[..., None, :]
        gain = rate / cl
        per_dose = per_dose + mode_train_response(since_start, k, duration, interval, xp, gain=gain)
    if _uses(dose_end_day, xp, lambda end: end < NO_END_DAY):
        alive = time_day[..., :, None] < _as_array(dose_end_day, xp)[..., None, :]
        per_dose = xp.where(alive, per_dose, 0.0)
    return per_dose.sum(axis=-1)


def auc_interval(
    start_day,
    end_day,
    dose_time_day,
    dose_amount_mg,
    dose_duration_day,
    clearance,
    volume,
    xp: Any = np,
    *,
    dose_end_day=None,
    dose_ss_interval_day=None,
):
    """AUC (mg·day/L) of :func:`concentration` between ``start_day`` and ``end_day``.

    Each infusion (rate R = D/T, k = CL/V) is integrated piecewise over the window
    (:func:`window_phases`; R/CL times :func:`mode_infusion_auc`). Every term is
    non-negative, so a fast clearance gives a small positive AUC rather than the
    cancellation error of a difference of cumulative AUCs. Returns the leading shape of
    ``clearance``. With ``dose_end_day`` each dose's window is cut at its end
    (:func:`window_until`); a steady-state dose (``dose_ss_interval_day``) adds the integral
    of its train, R/CL · F · e^(−k s0) (1 − e^(−k (s1 − s0)))/k with [s0, s1] the window's
    part since the dose's start (:func:`mode_train_auc`).

    Examples
    --------
    >>> # a dose wiped out at day 10: the AUC over days 0-30 is the AUC over days 0-10
    >>> args = (np.array([0.0]), np.array([700.0]), np.array([1 / 12]), 0.49, 13.2)
    >>> cut = auc_interval(0.0, 30.0, *args, dose_end_day=np.array([10.0]))
    >>> bool(np.isclose(cut, auc_interval(0.0, 10.0, *args)))
    True
    """
    dose_time_day, dose_amount_mg, dose_duration_day, clearance, volume = (
        _as_array(a, xp)
        for a in (dose_time_day, dose_amount_mg, dose_duration_day, clearance, volume)
    )
    cl = clearance[..., None]
    k = cl / volume[..., None]
    start_day, end_day = _as_array(start_day, xp), _as_array(end_day, xp)
    if _uses(dose_end_day, xp, lambda end: end < NO_END_DAY):
        start_day, end_day = window_until(start_day, end_day, _as_array(dose_end_day, xp), xp)
    a0, a1, b0, b1, s0, s1 = window_phases(
        start_day - dose_time_day, end_day - dose_time_day, dose_duration_day, xp
    )
    rate = dose_amount_mg / dose_duration_day
    per_dose = infusion_auc(a0, a1, b0, b1, dose_duration_day, rate, cl, k, xp)
    if _uses(dose_ss_interval_day, xp, lambda ii: ii > 0):
        interval = _as_array(dose_ss_interval_day, xp)
        gain = rate / cl
        per_dose = per_dose + mode_train_auc(s0, s1, k, dose_duration_day, interval, xp, gain=gain)
    return per_dose.sum(axis=-1)


def auc_window_phases(start_day, end_day, dose_time_day, dose_duration_day, xp: Any = np):
    """(a0, a1, b0, b1) of each dose for a window [start, end]: [a0, a1] the window's part of
    the infusion (time since its start, clipped to [0, T]), [b0, b1] its part after the
    infusion's end (time since the end, from 0); the first four of :func:`window_phases`."""
    since_start = _as_array(start_day, xp) - dose_time_day
    since_end = _as_array(end_day, xp) - dose_time_day
    return window_phases(since_start, since_end, dose_duration_day, xp)[:4]


def infusion_auc(a0, a1, b0, b1, duration_day, rate_mg_day, clearance, k_per_day, xp: Any = np):
    """AUC (mg·day/L) of one infusion's :func:`infusion_concentration` over a window given by
    its phases (:func:`auc_window_phases`), elementwise: R/CL times
    :func:`mode_infusion_auc`. Every term is non-negative."""
    unit = mode_infusion_auc(a0, a1, b0, b1, duration_day, k_per_day, xp)
    return rate_mg_day / clearance * unit


def _crp_factor(crp_mg_l, reference_crp_mg_l, crp_exponent, crp_form, xp):
    if crp_form == "power":
        return (crp_mg_l / reference_crp_mg_l) ** crp_exponent
    if crp_form == "log_power":
        return (xp.log(crp_mg_l) / np.log(reference_crp_mg_l)) ** crp_exponent
    raise ValueError(f"unknown crp_form {crp_form!r}")


def individual_clearance(
    theta_cl,
    weight_kg,
    crp_mg_l,
    eta_cl,
    *,
    weight_exponent,
    crp_exponent,
    reference_weight_kg,
    reference_crp_mg_l,
    crp_form="power",
    xp: Any = np,
):
    """CL_i = θ_CL · (WT/WT_ref)^0.75 · f(CRP) · exp(η_CL) in L/day."""
    return (
        theta_cl
        * (weight_kg / reference_weight_kg) ** weight_exponent
        * _crp_factor(crp_mg_l, reference_crp_mg_l, crp_exponent, crp_form, xp)
        * xp.exp(eta_cl)
    )


def individual_volume(
    theta_v, weight_kg, eta_v, *, weight_exponent, reference_weight_kg, xp: Any = np
):
    """V_i = θ_V · (WT/WT_ref)^1 · exp(η_V) in L."""
    return theta_v * (weight_kg / reference_weight_kg) ** weight_exponent * xp.exp(eta_v)


def individual_pk_parameters(pk, weight_kg, crp_mg_l, eta_cl, eta_v, xp: Any = np):
    """(CL, V) of a patient under the PK part of a model specification.

    ``pk`` is a :class:`asuc_bayes.spec.config.PKSpec` (typical values, covariate forms,
    reference covariates); ``eta_cl``/``eta_v`` broadcast (e.g. one per posterior draw).
    """
    clearance = individual_clearance(
        pk.theta_cl.estimate,
        weight_kg,
        crp_mg_l,
        eta_cl,
        weight_exponent=pk.weight_exponent_cl.estimate,
        crp_exponent=pk.crp_exponent_cl.estimate,
        reference_weight_kg=pk.reference_weight_kg,
        reference_crp_mg_l=pk.reference_crp_mg_l,
        crp_form=pk.crp_form,
        xp=xp,
    )
    volume = individual_volume(
        pk.theta_v.estimate,
        weight_kg,
        eta_v,
        weight_exponent=pk.weight_exponent_v.estimate,
        reference_weight_kg=pk.reference_weight_kg,
        xp=xp,
    )
    return clearance, volume
