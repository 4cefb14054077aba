"""Hierarchical population model: joint Bayesian fit of the popPK and Weibull models.

The model (model card, sections 1-2), for subjects i with baseline weight and CRP, doses
actually given, concentrations y_ij and one colectomy record (t_i, d_i):

    CL_i = θ_CL (WT_i/70)^0.75 (CRP_i/30)^θ_CRP e^(η_CL,i),   V_i = θ_V (WT_i/70) e^(η_V,i)
    η_CL,i = ω_CL z_CL,i,  η_V,i = ω_V z_V,i,  z ~ N(0, 1)                      (non-centred)
    y_ij ~ N(f_ij, (σ f_ij)²), M3 censoring below the LLOQ / above the ULOQ
    x_i = ln(AUC_w2-4,i / CL_i)  (closed-form AUC of subject i's doses, own η)
    (t_i, d_i) ~ Weibull: H(t) = λ t^γ e^(β (x_i − x_ref)), right-censored

with the allometric exponents fixed and x_ref the model file's fixed centring constant, so
that λ is the hazard scale at x = x_ref (day^-γ), comparable with the published 0.00112.
Priors come from the model file (``[population.priors.weak|published]``).

**Joint** fit (default): the TTE likelihood sees each subject's x_i as a function of its
η, so PK uncertainty propagates into λ, γ, β. **Two-stage** fit (``method="two_stage"``):
stage 1 fits the PK model alone; stage 2 fits the Weibull model with x_i as a latent
variable with the measurement-error prior x_i ~ N(m_i, s_i²), m_i and s_i the stage-1
posterior mean and SD of x_i. Stage 2 thus carries each subject's PK uncertainty, but not
its non-Gaussian shape nor the correlation between subjects through the shared population
parameters, and stage 1 ignores what the outcome says about exposure.

The model is declared once per (model, priors, method, number of subjects): every data
array is a ``pm.Data`` container and nutpie's compiled model is reused with ``with_data``
for another cohort of the same size within a process (concentration and dose counts may
differ).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from asuc_bayes.graphs.numerics import reproducible_numba
from asuc_bayes.inference.population.data import (
    DEFAULT_METHOD,
    OBSERVATION_COLUMNS,
    SUBJECT_COLUMNS,
    CohortData,
    placeholder_cohort,
)
from asuc_bayes.pk.kernels import (
    individual_clearance,
    individual_volume,
    infusion_auc,
    infusion_concentration,
    ln_auc_cl,
    weibull_log_likelihood,
    weibull_parameters,
)
from asuc_bayes.spec.config import ModelSpec, PopulationPriors, Prior
from asuc_bayes.spec.legacy import legacy_residual

__all__ = [
    "INIT_JITTER",
    "INIT_LOG10_HAZARD_AT_REF",
    "TTE_REFERENCE_DAY",
    "build_population_model",
    "compile_jittered",
    "compiled_model",
    "concentration_log_likelihood",
    "individual_pk",
    "ln_auc_over_cl",
    "pk_variables",
    "predicted_concentration",
    "prepare_population_model",
    "tte_variables",
]

reproducible_numba()


def concentration_log_likelihood(
    values, measured, censored, censored_sign, prediction, residual_sd, form: str
):
    """Σ_j log p(y_j | f_j) with M3 censoring (model card, section 1), as a PyTensor graph.

    Measured records (``measured`` = 1) contribute the residual density at the value (of y,
    also for the log-normal form); censored ones (indices ``censored``, the limit as value)
    ln Φ(s·z), s = +1 below the LLOQ and −1 above the ULOQ (``censored_sign``), with z the
    standardised residual. The equations are the registered residual forms of
    :mod:`asuc_bayes.spec.residual` (predictions floored at ``PREDICTION_FLOOR_MG_L``); the
    normal log-CDF is evaluated for the censored records only.
    """
    residual_form, sigma = legacy_residual(form, residual_sd)
    density = residual_form.log_density(values, prediction, sigma, pt)
    m3 = residual_form.log_censored(
        values[censored], prediction[censored], sigma, censored_sign, pt
    )
    return (measured * density).sum() + m3.sum()


#: Reference time (days) of the sampler's Weibull coordinate log10 H0(t_c).
TTE_REFERENCE_DAY = 30.0


def _log10_ref_scale(tte, gamma):
    """log10 H0(t_c) − log10 λ: γ log10 t_c (λ t^γ), or γ log10 t_c + (γ − 1) log10 λ for
    (λ t)^γ, which is not a shear; only the reference form is reparametrised."""
    if tte.form != "lambda_t_gamma":
        return 0.0
    return gamma * math.log10(TTE_REFERENCE_DAY)


def _prior_distribution(prior: Prior):
    """The model file's prior as an unnamed PyMC distribution."""
    if prior.distribution == "lognormal":
        return pm.LogNormal.dist(mu=math.log(prior.param("median")), sigma=prior.param("log_sd"))
    if prior.distribution == "normal":
        return pm.Normal.dist(mu=prior.param("mean"), sigma=prior.param("sd"))
    return pm.HalfNormal.dist(sigma=prior.param("sd"))


def _prior_variable(prior: Prior, name: str, dims=None):
    """A PyMC random variable with the model file's prior."""
    if prior.distribution == "lognormal":
        return pm.LogNormal(
            name, mu=math.log(prior.param("median")), sigma=prior.param("log_sd"), dims=dims
        )
    if prior.distribution == "normal":
        return pm.Normal(name, mu=prior.param("mean"), sigma=prior.param("sd"), dims=dims)
    return pm.HalfNormal(name, sigma=prior.param("sd"), dims=dims)


def pk_variables(priors: PopulationPriors) -> dict[str, Any]:
    """The six PK population parameters as PyMC variables (inside a model context)."""
    return {
        name: _prior_variable(priors[name], name)
        for name in ("theta_cl", "theta_v", "crp_exponent_cl", "omega_cl", "omega_v", "residual_sd")
    }


def tte_variables(spec: ModelSpec, priors: PopulationPriors):
    """(λ, γ, β) of the Weibull model as PyMC variables (inside a model context).

    λ and γ are strongly correlated (H = λ t^γ over event times of weeks): the sampler
    moves log10 H0(t_c) at a reference time instead, and the prior of log10 λ is applied at
    log10 λ = log10 H0(t_c) − γ log10 t_c (a shear: unit Jacobian).
    """
    gamma = _prior_variable(priors["tte_gamma"], "tte_gamma")
    beta = _prior_variable(priors["tte_beta"], "tte_beta")
    log10_h_ref = pm.Flat("tte_log10_hazard_at_ref")
    log10_lambda = pm.Deterministic(
        "tte_log10_lambda", log10_h_ref - _log10_ref_scale(spec.tte, gamma)
    )
    pm.Potential(
        "tte_log10_lambda_prior",
        pm.logp(_prior_distribution(priors["tte_log10_lambda"]), log10_lambda),
    )
    return pm.Deterministic("tte_lambda", 10.0**log10_lambda), gamma, beta


def individual_pk(spec: ModelSpec, theta_cl, theta_v, crp_exponent, weight, crp, eta_cl, eta_v):
    """(CL_i, V_i) graphs of the population parameters (kernels' covariate model)."""
    pk = spec.pk
    cl = individual_clearance(
        theta_cl,
        weight,
        crp,
        eta_cl,
        weight_exponent=pk.weight_exponent_cl.estimate,
        crp_exponent=crp_exponent,
        reference_weight_kg=pk.reference_weight_kg,
        reference_crp_mg_l=pk.reference_crp_mg_l,
        crp_form=pk.crp_form,
        xp=pt,
    )
    v = individual_volume(
        theta_v,
        weight,
        eta_v,
        weight_exponent=pk.weight_exponent_v.estimate,
        reference_weight_kg=pk.reference_weight_kg,
        xp=pt,
    )
    return cl, v


def ln_auc_over_cl(bound, cl, v):
    """x_i = ln(AUC_w2-4,i / CL_i): the closed-form AUC of each subject's doses
    (:func:`asuc_bayes.pk.kernels.infusion_auc` over the ``auc_*`` pairs of
    :meth:`CohortData.model_data`), floored before the log as everywhere else."""
    subject = bound["auc_subject"]
    phase = bound["auc_phase"]
    cl_pair = cl[subject]
    per_dose = infusion_auc(
        *(phase[:, column] for column in range(6)),  # a0, a1, b0, b1, duration, rate
        cl_pair,
        cl_pair / v[subject],
        xp=pt,
    )
    auc = pt.zeros_like(cl)[subject].inc(per_dose)
    return ln_auc_cl(auc, cl, xp=pt)


def predicted_concentration(bound, cl, v):
    """f_j of every observation: :func:`asuc_bayes.pk.kernels.infusion_concentration` summed
    over the ``pair_*`` (observation, dose) pairs of :meth:`CohortData.model_data`."""
    index, phase = bound["pair_index"], bound["pair_phase"]
    subject = index[:, 1]
    cl_pair = cl[subject]
    per_dose = infusion_concentration(
        phase[:, 0], phase[:, 1], phase[:, 2], cl_pair, cl_pair / v[subject], xp=pt
    )
    return pt.zeros_like(bound["obs_data"][:, 0])[index[:, 0]].inc(per_dose)


def build_population_model(
    spec: ModelSpec,
    priors: PopulationPriors,
    data: CohortData,
    method: Literal["joint", "pk", "tte"] = "joint",
) -> pm.Model:
    """The PyMC population model with ``data`` bound as ``pm.Data``.

    ``method``: ``"joint"`` (PK + TTE), ``"pk"`` (stage 1: PK only) or ``"tte"`` (stage 2:
    Weibull model with x_i ~ N(m_i, s_i²) from the ``pm.Data`` ``x_mean``/``x_sd``).

    Named variables: ``theta_cl``, ``theta_v``, ``crp_exponent_cl``, ``omega_cl``,
    ``omega_v``, ``residual_sd``, ``tte_log10_lambda`` and deterministic ``tte_lambda``,
    ``tte_gamma``, ``tte_beta``; per subject ``z_cl``, ``z_v`` (sampled) and deterministic
    ``eta_cl``, ``eta_v``, ``cl``, ``v``, ``ln_auc_cl`` (dims ``subject``).
    """
    coords = {"subject": list(data.ids)}
    with pm.Model(coords=coords) as model:
        values = data.model_data(spec.tte.auc_window_day)
        bound = {name: pm.Data(name, value) for name, value in values.items()}
        for index, name in enumerate(SUBJECT_COLUMNS):
            bound[name] = bound["subject_data"][:, index]
        for index, name in enumerate(OBSERVATION_COLUMNS):
            bound[f"obs_{name}"] = bound["obs_data"][:, index]
        if method in ("joint", "pk"):
            pk = pk_variables(priors)
            theta_cl, theta_v, crp_exponent = pk["theta_cl"], pk["theta_v"], pk["crp_exponent_cl"]
            omega_cl, omega_v, residual_sd = pk["omega_cl"], pk["omega_v"], pk["residual_sd"]
            # Partially non-centred random effects: η = ω^(1−w) η̃ with η̃ ~ N(0, ω^(2w)), so
            # η ~ N(0, ω²) exactly for any w in [0, 1]; w = 0 is non-centred (subjects the data
            # say little about), w = 1 centred (well-informed subjects).
            w_cl, w_v = bound["centring_cl"], bound["centring_v"]
            z_cl = pm.Normal("z_cl", 0.0, omega_cl**w_cl, dims="subject")
            z_v = pm.Normal("z_v", 0.0, omega_v**w_v, dims="subject")
            eta_cl = pm.Deterministic("eta_cl", omega_cl ** (1.0 - w_cl) * z_cl, dims="subject")
            eta_v = pm.Deterministic("eta_v", omega_v ** (1.0 - w_v) * z_v, dims="subject")
            cl, v = individual_pk(
                spec,
                theta_cl,
                theta_v,
                crp_exponent,
                bound["weight_kg"],
                bound["crp_mg_l"],
                eta_cl,
                eta_v,
            )
            pm.Deterministic("cl", cl, dims="subject")
            pm.Deterministic("v", v, dims="subject")
            prediction = predicted_concentration(bound, cl, v)
            pm.Potential(
                "concentration_loglik",
                concentration_log_likelihood(
                    bound["obs_value_mg_l"],
                    bound["obs_measured"],
                    bound["obs_censored"],
                    bound["obs_censored_sign"],
                    prediction,
                    residual_sd,
                    spec.pk.residual_form,
                ),
            )
            x = pm.Deterministic("ln_auc_cl", ln_auc_over_cl(bound, cl, v), dims="subject")
        else:
            x_mean = pm.Data("x_mean", np.zeros(data.n_subjects))
            x_sd = pm.Data("x_sd", np.ones(data.n_subjects))
            x_std = pm.Normal("x_standardised", 0.0, 1.0, dims="subject")
            x = pm.Deterministic("ln_auc_cl", x_mean + x_sd * x_std, dims="subject")
        if method in ("joint", "tte"):
            tte = spec.tte
            tte_lambda, gamma, beta = tte_variables(spec, priors)
            pm.Potential(
                "colectomy_loglik",
                weibull_log_likelihood(
                    bound["event_time_day"],
                    bound["event"],
                    x,
                    xp=pt,
                    **weibull_parameters(tte, baseline_lambda=tte_lambda, gamma=gamma, beta=beta),
                ).sum(),
            )
    return model


# -- sampling ----------------------------------------------------------------------------

_COMPILED: dict[tuple, Any] = {}
#: Sampler start: the prior's support point (z = 0) with this uniform jitter in the
#: unconstrained coordinates. PyMC's default ±1 jitter starts some chains on the walls of the
#: proportional-error likelihood (log density −1e27, measured), where they never move.
INIT_JITTER = 0.3
#: Start of the Weibull coordinate log10 H0(t_c) (the prior's support point is Flat's 0).
INIT_LOG10_HAZARD_AT_REF = -1.5


def compile_jittered(model: pm.Model, initial_points: dict[str, float]):
    """nutpie's compiled ``model`` (numba) started at its support point, with
    ``initial_points`` overriding it, and a uniform ±:data:`INIT_JITTER` in the unconstrained
    coordinates (the seed's own generator) instead of PyMC's ±1."""
    import dataclasses

    import nutpie

    compiled = nutpie.compile_pymc_model(
        model, backend="numba", jitter_rvs=set(), initial_points=initial_points
    )
    support_point = compiled.initial_point_func

    def initial_point(seed):
        base = np.asarray(support_point(seed), dtype=float)
        jitter = np.random.default_rng(seed).uniform(-INIT_JITTER, INIT_JITTER, base.shape)
        return base + jitter

    return dataclasses.replace(compiled, initial_point_func=initial_point)


def compiled_model(spec, priors, data: CohortData, method: str, extra: dict):
    """nutpie's compiled model for this structure (cached per process), with ``data`` bound."""
    key = (repr(spec), priors, method, data.n_subjects)
    if key not in _COMPILED:
        model = build_population_model(spec, priors, data, method)
        initial = {"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF} if method != "pk" else {}
        _COMPILED[key] = compile_jittered(model, initial)
    compiled = _COMPILED[key]
    used = {variable.name for variable in compiled.shared_var_keys}  # e.g. no events in "pk"
    values = {**data.model_data(spec.tte.auc_window_day), **extra}
    return compiled.with_data(**{k: v for k, v in values.items() if k in used})


def prepare_population_model(
    spec: ModelSpec,
    n_subjects: int,
    *,
    prior: str = "weak",
    method: Literal["marginal", "joint", "two_stage"] = DEFAULT_METHOD,
) -> None:
    """Compile (once per process) the nutpie model that
    :func:`~asuc_bayes.inference.population.fit.fit_population` uses for cohorts of
    ``n_subjects``, e.g. on every worker before a batch of fits, so that the first fit's time
    is sampling only."""
    priors = spec.priors(prior)
    if method == "marginal":  # one compilation serves every cohort size
        from asuc_bayes.inference.population_marginal_fit import prepare_marginal_model

        prepare_marginal_model(spec, priors)
        return
    duration = spec.pk.default_infusion_duration_day
    data = CohortData.from_patients(placeholder_cohort(n_subjects, duration), duration)
    for structure in ("joint",) if method == "joint" else ("pk", "tte"):
        compiled_model(spec, priors, data, structure, {})
