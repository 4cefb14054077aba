"""The Weibull time-to-colectomy model: its exposure covariate and hazard kernels.

x = ln(AUC/CL) is the exposure covariate (:func:`ln_auc_cl`); the cumulative hazard
H(t) = H0(t) · exp(β (x − x_ref)) (:func:`weibull_cumulative_hazard`) is the definition the
hazard, the risk and the right-censored log-likelihood derive from (model card, section 2).
Every function takes an array namespace ``xp`` (``numpy`` by default, or
``pytensor.tensor``). All of it is re-exported by :mod:`asuc_bayes.pk.kernels`, its former
home, so ``from asuc_bayes.pk.kernels import weibull_risk`` keeps working.

Examples
--------
>>> import numpy as np
>>> risk = weibull_risk(90.0, np.log(1200.0), baseline_lambda=1e-3, gamma=0.5, beta=-1.0,
...                     x_ref=np.log(1200.0))
>>> bool(np.isclose(risk, 1 - np.exp(-1e-3 * 90.0**0.5)))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "AUC_FLOOR_MG_DAY_L",
    "ln_auc_cl",
    "weibull_baseline_cumulative_hazard",
    "weibull_cumulative_hazard",
    "weibull_hazard",
    "weibull_log_cumulative_hazard",
    "weibull_log_likelihood",
    "weibull_parameters",
    "weibull_risk",
]


#: AUCs are floored here before taking logs: below it the concentration has underflowed and
#: ln(AUC/CL) ≈ −700 (90-day risk 1) is the right limit for every reported quantity.
AUC_FLOOR_MG_DAY_L = 1e-300


def ln_auc_cl(auc_mg_day_l, clearance_l_day, xp: Any = np):
    """x = ln(AUC/CL), the Weibull model's exposure covariate, with the AUC floored at
    :data:`AUC_FLOOR_MG_DAY_L` (an underflowed AUC gives x ≈ −700, not −inf). Broadcasts.

    Examples
    --------
    >>> float(ln_auc_cl(np.float64(600.0), 0.5)) == float(np.log(1200.0))
    True
    >>> bool(np.isfinite(ln_auc_cl(0.0, 0.5)))
    True
    """
    return xp.log(xp.maximum(auc_mg_day_l, AUC_FLOOR_MG_DAY_L)) - xp.log(clearance_l_day)


def weibull_parameters(tte, *, baseline_lambda=None, gamma=None, beta=None) -> dict[str, Any]:
    """The keyword arguments of the Weibull kernels (``baseline_lambda``, ``gamma``, ``beta``,
    ``x_ref``, ``form``) for a :class:`asuc_bayes.spec.config.TTESpec`: its point estimates, or the
    values given (per-draw arrays, PyTensor variables) in their place.

    Examples
    --------
    >>> from asuc_bayes.spec.config import load_model
    >>> tte = load_model().tte
    >>> risk = weibull_risk(tte.horizon_day, tte.high_risk_threshold, **weibull_parameters(tte))
    >>> round(float(risk), 3) == tte.risk_at_threshold
    True
    >>> weibull_parameters(tte, gamma=np.array([0.5, 0.6]))["gamma"].shape
    (2,)
    """
    return {
        "baseline_lambda": tte.baseline_lambda if baseline_lambda is None else baseline_lambda,
        "gamma": tte.gamma.estimate if gamma is None else gamma,
        "beta": tte.beta.estimate if beta is None else beta,
        "x_ref": tte.x_ref,
        "form": tte.form,
    }


def weibull_baseline_cumulative_hazard(time_day, baseline_lambda, gamma, form, xp: Any = np):
    """Baseline cumulative hazard H0(t): λ t^γ, or (λ t)^γ for ``lambda_t_all_gamma``."""
    if form == "lambda_t_gamma":
        return baseline_lambda * time_day**gamma
    if form == "lambda_t_all_gamma":
        return (baseline_lambda * time_day) ** gamma
    raise ValueError(f"unknown Weibull form {form!r}")


def weibull_cumulative_hazard(
    time_day,
    covariate,
    *,
    baseline_lambda,
    gamma,
    beta,
    x_ref,
    form="lambda_t_gamma",
    xp: Any = np,
):
    """H(t) = H0(t) · exp(β (x − x_ref)); the definition every other TTE quantity derives from."""
    return weibull_baseline_cumulative_hazard(time_day, baseline_lambda, gamma, form, xp) * xp.exp(
        beta * (covariate - x_ref)
    )


def weibull_hazard(time_day, covariate, *, gamma, xp: Any = np, **params):
    """h(t) = dH/dt = γ H(t) / t for both Weibull forms."""
    return (
        gamma
        * weibull_cumulative_hazard(time_day, covariate, gamma=gamma, xp=xp, **params)
        / time_day
    )


def weibull_risk(time_day, covariate, xp: Any = np, **params):
    """Probability of the event by ``time_day``: 1 − exp(−H(t))."""
    return -xp.expm1(-weibull_cumulative_hazard(time_day, covariate, xp=xp, **params))


def weibull_log_cumulative_hazard(
    time_day,
    covariate,
    *,
    baseline_lambda,
    gamma,
    beta,
    x_ref,
    form="lambda_t_gamma",
    xp: Any = np,
    log_time_day=None,
):
    """ln H(t) of :func:`weibull_cumulative_hazard`, written on the log scale so that it
    neither underflows nor overflows for extreme covariates (ln H0(t) + β (x − x_ref)).
    ``log_time_day``, when given, is ln t computed once (data evaluated many times)."""
    log_time = xp.log(time_day) if log_time_day is None else log_time_day
    if form == "lambda_t_gamma":
        log_baseline = xp.log(baseline_lambda) + gamma * log_time
    elif form == "lambda_t_all_gamma":
        log_baseline = gamma * (xp.log(baseline_lambda) + log_time)
    else:
        raise ValueError(f"unknown Weibull form {form!r}")
    return log_baseline + beta * (covariate - x_ref)


def weibull_log_likelihood(time_day, event, covariate, xp: Any = np, log_time_day=None, **params):
    """Right-censored log-likelihood: event · ln h(t) − H(t), with ln h = ln γ + ln H − ln t
    (h = dH/dt = γ H / t) and ln H from :func:`weibull_log_cumulative_hazard` (``log_time_day``
    as there)."""
    log_time = xp.log(time_day) if log_time_day is None else log_time_day
    log_cumulative = weibull_log_cumulative_hazard(
        time_day, covariate, xp=xp, log_time_day=log_time, **params
    )
    log_hazard = xp.log(params["gamma"]) + log_cumulative - log_time
    return event * log_hazard - xp.exp(log_cumulative)
