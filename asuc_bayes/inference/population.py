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

Examples
--------
>>> from asuc_bayes.spec.config import load_model
>>> from asuc_bayes.studies.simulate import simulate_cohort
>>> cohort = simulate_cohort(load_model(), n=4, random_seed=1)
>>> data = CohortData.from_patients(cohort.patients)
>>> data.n_subjects, data.dose_time_day.shape[0]
(4, 4)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from asuc_bayes.data.dataset import (
    BELOW_LLOQ,
    DEFAULT_INFUSION_DURATION_DAY,
    MEASURED,
    Dose,
    EventRecord,
    Observation,
    Patient,
)
from asuc_bayes.graphs.numerics import reproducible_numba
from asuc_bayes.inference.diagnostics import ESS_BULK_MIN, RHAT_MAX
from asuc_bayes.inference.population_draws import omega_to_cv
from asuc_bayes.pk.kernels import (
    NO_END_DAY,
    auc_window_phases,
    dose_phase_times,
    individual_clearance,
    individual_volume,
    infusion_auc,
    infusion_concentration,
    ln_auc_cl,
    weibull_log_likelihood,
    weibull_parameters,
)
from asuc_bayes.provenance import netcdf_attrs, provenance_attrs
from asuc_bayes.spec.config import (
    PARAMETER_NAMES,
    PK_PARAMETER_NAMES,
    TTE_PARAMETER_NAMES,
    ModelSpec,
    PopulationPriors,
    Prior,
)
from asuc_bayes.spec.legacy import legacy_residual

__all__ = [
    "JSON_PARAMETERS",
    "METHODS",
    "CohortData",
    "PopulationFit",
    "PopulationSettings",
    "build_population_model",
    "cohort_of_fit",
    "concentration_log_likelihood",
    "convergence",
    "default_settings",
    "fit_population",
    "fit_summary",
    "load_fit",
    "prepare_population_model",
    "published_values",
]

reproducible_numba()

#: JSON output names -> posterior variables (IIV as CV fractions, λ per day^γ).
JSON_PARAMETERS = {
    "cl": "theta_cl",
    "v": "theta_v",
    "crp_cl": "crp_exponent_cl",
    "iiv_cl_cv": "iiv_cl_cv",
    "iiv_v_cv": "iiv_v_cv",
    "prop_error": "residual_sd",
    "tte_lambda": "tte_lambda",
    "tte_gamma": "tte_gamma",
    "tte_beta": "tte_beta",
}
INDIVIDUAL = ("eta_cl", "eta_v")
_GATED = (*PARAMETER_NAMES, *INDIVIDUAL)
#: Fit methods: ``marginal`` (default), ``joint`` (full NUTS), ``two_stage``.
METHODS = ("marginal", "joint", "two_stage")
#: Columns of the model's ``subject_data`` and ``obs_data`` containers.
SUBJECT_COLUMNS = ("weight_kg", "crp_mg_l", "centring_cl", "centring_v", "event_time_day", "event")
OBSERVATION_COLUMNS = ("value_mg_l", "measured")


@dataclass(frozen=True)
class PopulationSettings:
    """NUTS settings of a population fit (nutpie, numba backend)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    #: 0.995: no divergence in 18 fits of 13 simulated 72-subject cohorts, sampling 46–106 s;
    #: 0.99 left one in the same 18, 0.98 one in six, 0.95 3, 0, 2, 33, 1, 0 on six (README,
    #: "Population model", Measured)
    target_accept: float = 0.995
    cores: int | None = None
    sampler: Literal["nutpie", "pymc"] = "nutpie"

    def __post_init__(self):
        for name in ("draws", "tune", "chains"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "tune" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.chains < 2:
            raise ValueError("chains must be at least 2 (R-hat needs them)")
        if not 0.5 <= self.target_accept < 1:
            raise ValueError(f"target_accept must be in [0.5, 1), got {self.target_accept}")
        if self.sampler not in ("nutpie", "pymc"):
            raise ValueError(f"sampler must be 'nutpie' or 'pymc', got {self.sampler!r}")


@dataclass(frozen=True, eq=False)
class CohortData:
    """A cohort as padded arrays: doses (subject, dose) padded with amount 0 (their times 0
    and durations the default infusion, so every duration stays > 0), observations flat
    with their subject index, one colectomy record per subject."""

    ids: tuple[str, ...]
    weight_kg: np.ndarray
    crp_mg_l: np.ndarray
    dose_time_day: np.ndarray
    dose_amount_mg: np.ndarray
    dose_duration_day: np.ndarray
    obs_subject: np.ndarray
    obs_time_day: np.ndarray
    obs_value_mg_l: np.ndarray
    obs_censoring: np.ndarray
    event_time_day: np.ndarray
    event: np.ndarray
    #: Centring weights w of the random effects (0 non-centred, 1 centred), per subject.
    centring_cl: np.ndarray | None = None
    centring_v: np.ndarray | None = None
    #: End of each dose's effect at a reset (EVID 3/4), (subject, dose); ``None``: no resets
    #: (:data:`~asuc_bayes.pk.kernels.NO_END_DAY` everywhere).
    dose_end_day: np.ndarray | None = None

    @property
    def dose_end(self) -> np.ndarray:
        """:attr:`dose_end_day`, with :data:`~asuc_bayes.pk.kernels.NO_END_DAY` where none."""
        if self.dose_end_day is None:
            return np.full(self.dose_time_day.shape, NO_END_DAY)
        return self.dose_end_day

    @property
    def n_subjects(self) -> int:
        return len(self.ids)

    @classmethod
    def from_patients(
        cls, patients, default_duration_day: float = DEFAULT_INFUSION_DURATION_DAY
    ) -> CohortData:
        """Arrays of validated patients, each with exactly one event record
        (:func:`asuc_bayes.data.dataset.validate_cohort`)."""
        patients = list(patients)
        if not patients:
            raise ValueError("a cohort needs at least one patient")
        for p in patients:
            if len(p.events) != 1:
                raise ValueError(
                    f"patient {p.id!r}: a population fit needs exactly one colectomy record "
                    "(read the data with asuc_bayes.data.dataset.read_cohort)"
                )
        _refuse_steady_state(patients)
        n_dose = max(len(p.doses) for p in patients)
        shape = (len(patients), n_dose)
        dose_time = np.zeros(shape)
        dose_amount = np.zeros(shape)
        dose_duration = np.full(shape, default_duration_day)
        dose_end = np.full(shape, NO_END_DAY)
        for i, p in enumerate(patients):
            k = len(p.doses)
            dose_time[i, :k] = p.dose_time_day
            dose_amount[i, :k] = p.dose_amount_mg
            dose_duration[i, :k] = p.dose_duration_day
            dose_end[i, :k] = p.dose_end_day
        obs_subject = np.concatenate(
            [np.full(len(p.observations), i, dtype=np.int64) for i, p in enumerate(patients)]
        )
        return cls(
            ids=tuple(p.id for p in patients),
            weight_kg=np.array([p.weight_kg for p in patients]),
            crp_mg_l=np.array([p.crp_mg_l for p in patients]),
            dose_time_day=dose_time,
            dose_amount_mg=dose_amount,
            dose_duration_day=dose_duration,
            obs_subject=obs_subject,
            obs_time_day=np.concatenate([p.obs_time_day for p in patients]),
            obs_value_mg_l=np.concatenate([p.obs_value_mg_l for p in patients]),
            obs_censoring=np.concatenate([p.obs_censoring for p in patients]).astype(float),
            event_time_day=np.array([p.events[0].time_day for p in patients]),
            event=np.array([float(p.events[0].event) for p in patients]),
            dose_end_day=dose_end if np.any(dose_end < NO_END_DAY) else None,
        )

    def model_data(self, auc_window_day: tuple[float, float]) -> dict[str, np.ndarray]:
        """Values of the population model's ``pm.Data`` containers.

        ``subject_data`` (subject, :data:`SUBJECT_COLUMNS`) and ``obs_data`` (observation,
        :data:`OBSERVATION_COLUMNS`) hold the per-subject and per-observation values; the
        concentrations and AUCs are sums over sparse (observation, dose) and (subject, dose)
        pairs. Only pairs that can contribute are kept: a real dose (amount > 0) started
        before the sample and not ended by a reset by then (``pair_index``: observation,
        subject; ``pair_phase``: time inside the infusion, after its end, rate), or before the
        end of the AUC window (``auc_subject``; ``auc_phase``: a0, a1, b0, b1, duration, rate,
        with the window cut at the dose's end, as :func:`asuc_bayes.pk.kernels.auc_interval`
        does). Every other pair
        contributes exactly 0 to :func:`asuc_bayes.pk.kernels.concentration` and
        :func:`asuc_bayes.pk.kernels.auc_interval`, so the sums are the same; the padded form
        spent ~2/3 of the gradient's time on those zeros (measured). The phases depend on
        the data only, so they are computed here once. Censored observations are listed
        (``obs_censored``) with the sign s of their M3 term log Φ(s·z) (+1 below the LLOQ,
        −1 above the ULOQ), so that the normal log-CDF is evaluated only for them. Few,
        packed containers: each one costs nutpie's compiled callback time per call and
        compile time (measured: 24 → 8 containers, gradient 81 → 62–68 µs, compile 37 → 18–26 s).
        """
        subject = self.obs_subject
        real = self.dose_amount_mg > 0
        dose_rate = self.dose_amount_mg / self.dose_duration_day
        started = real[subject] & (self.dose_time_day[subject] < self.obs_time_day[:, None])
        started &= self.obs_time_day[:, None] < self.dose_end[subject]
        pair_obs, pair_dose = np.nonzero(started)
        pair_subject = subject[pair_obs]
        during, after = dose_phase_times(
            self.obs_time_day[pair_obs, None],
            self.dose_time_day[pair_subject, pair_dose][:, None],
            self.dose_duration_day[pair_subject, pair_dose][:, None],
        )
        start_day, end_day = auc_window_day
        auc_subject, auc_dose = np.nonzero(real & (self.dose_time_day < end_day))
        duration = self.dose_duration_day[auc_subject, auc_dose]
        dose_end = np.minimum(end_day, self.dose_end[auc_subject, auc_dose])  # end_day if none
        a0, a1, b0, b1 = auc_window_phases(
            np.minimum(start_day, dose_end),
            dose_end,
            self.dose_time_day[auc_subject, auc_dose],
            duration,
        )
        censored = np.flatnonzero(self.obs_censoring != MEASURED)
        subject_columns = {
            "weight_kg": self.weight_kg,
            "crp_mg_l": self.crp_mg_l,
            "centring_cl": _or_zeros(self.centring_cl, self.n_subjects),
            "centring_v": _or_zeros(self.centring_v, self.n_subjects),
            "event_time_day": self.event_time_day,
            "event": self.event,
        }
        observation_columns = {
            "value_mg_l": self.obs_value_mg_l,
            "measured": (self.obs_censoring == MEASURED).astype(float),
        }
        return {
            "subject_data": np.stack([subject_columns[c] for c in SUBJECT_COLUMNS], axis=1),
            "obs_data": np.stack([observation_columns[c] for c in OBSERVATION_COLUMNS], axis=1),
            "obs_censored": censored,
            "obs_censored_sign": np.where(self.obs_censoring[censored] == BELOW_LLOQ, 1.0, -1.0),
            "pair_index": np.stack([pair_obs, pair_subject], axis=1),
            "pair_phase": np.stack(
                [during[:, 0, 0], after[:, 0, 0], dose_rate[pair_subject, pair_dose]], axis=1
            ),
            "auc_subject": auc_subject,
            "auc_phase": np.stack(
                [a0, a1, b0, b1, duration, dose_rate[auc_subject, auc_dose]], axis=1
            ).reshape(-1, 6),
        }

    def with_centring(self, spec: ModelSpec, n_points: int = 61) -> CohortData:
        """Centring weights from each subject's information about its η: w = 1 − posterior
        variance / prior variance, from the exact 2-D quadrature posterior (``grid.py``) at the
        model file's point estimates. Only the sampler's coordinates depend on w."""
        from asuc_bayes.inference.grid import grid_posterior

        weights = np.zeros((self.n_subjects, 2))
        omega2 = np.array([spec.pk.omega_cl, spec.pk.omega_v]) ** 2
        for i, patient in enumerate(self.patients()):
            if not patient.observations:
                continue
            posterior = grid_posterior(spec, patient, n_points=n_points, n_coarse=61)
            covariance = posterior.summary()["eta_cov"]
            weights[i] = np.clip(1.0 - np.diag(covariance) / omega2, 0.0, 1.0)
        return replace(self, centring_cl=weights[:, 0], centring_v=weights[:, 1])

    def patients(self) -> list[Patient]:
        """The cohort back as :class:`Patient` objects (padding removed)."""
        from asuc_bayes.data.dataset import Dose, EventRecord, Observation

        out = []
        for i, pid in enumerate(self.ids):
            keep = self.dose_amount_mg[i] > 0
            doses = tuple(
                Dose(float(t), float(a), float(d), end_time_day=None if e >= NO_END_DAY else e)
                for t, a, d, e in zip(
                    self.dose_time_day[i][keep],
                    self.dose_amount_mg[i][keep],
                    self.dose_duration_day[i][keep],
                    self.dose_end[i][keep].tolist(),
                    strict=True,
                )
            )
            mine = self.obs_subject == i
            observations = tuple(
                Observation(float(t), float(v), int(c))
                for t, v, c in zip(
                    self.obs_time_day[mine],
                    self.obs_value_mg_l[mine],
                    self.obs_censoring[mine],
                    strict=True,
                )
            )
            event = EventRecord(float(self.event_time_day[i]), int(self.event[i]))
            out.append(
                Patient(
                    pid,
                    float(self.weight_kg[i]),
                    float(self.crp_mg_l[i]),
                    doses,
                    observations,
                    (event,),
                )
            )
        return out


def _or_zeros(values, n: int) -> np.ndarray:
    return np.zeros(n) if values is None else np.asarray(values, dtype=float)


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


def _compiled_model(spec, priors, data: CohortData, method: str, extra: dict):
    """nutpie's compiled model for this structure (cached per process), with ``data`` bound."""
    import dataclasses

    import nutpie

    key = (repr(spec), priors, method, data.n_subjects)
    if key not in _COMPILED:
        model = build_population_model(spec, priors, data, method)
        initial = {"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF} if method != "pk" else {}
        compiled = nutpie.compile_pymc_model(
            model, backend="numba", jitter_rvs=set(), initial_points=initial
        )
        support_point = compiled.initial_point_func

        def initial_point(seed):
            base = np.asarray(support_point(seed), dtype=float)
            jitter = np.random.default_rng(seed).uniform(-INIT_JITTER, INIT_JITTER, base.shape)
            return base + jitter

        _COMPILED[key] = dataclasses.replace(compiled, initial_point_func=initial_point)
    compiled = _COMPILED[key]
    used = {variable.name for variable in compiled.shared_var_keys}  # e.g. no events in "pk"
    values = {**data.model_data(spec.tte.auc_window_day), **extra}
    return compiled.with_data(**{k: v for k, v in values.items() if k in used})


def _sample(spec, priors, data, method, settings: PopulationSettings, seed: int, extra=None):
    """Posterior and sampler statistics (xarray Datasets, subject coords set) of one model."""
    extra = extra or {}
    started = time.perf_counter()
    if settings.sampler == "nutpie":
        import nutpie

        compiled = _compiled_model(spec, priors, data, method, extra)
        compiled_at = time.perf_counter()
        trace = nutpie.sample(
            compiled,
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=settings.cores,
            seed=seed,
            target_accept=settings.target_accept,
            progress_bar=False,
            save_warmup=False,
        )
    else:
        model = build_population_model(spec, priors, data, method)
        with model:
            pm.set_data(extra)
        compiled_at = time.perf_counter()
        trace = pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=settings.cores or 1,
            random_seed=seed,
            nuts_sampler="pymc",
            target_accept=settings.target_accept,
            progressbar=False,
            quiet=True,
            compute_convergence_checks=False,
            model=model,
            # no ±1 jitter: it starts chains on the likelihood wall (see INIT_JITTER)
            init="adapt_diag",
            initvals={"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF}
            if method != "pk"
            else None,
        )
    finished = time.perf_counter()
    posterior = trace["posterior"].to_dataset()
    if "subject" in posterior.coords:
        posterior = posterior.assign_coords(subject=list(data.ids))
    stats = trace["sample_stats"].to_dataset()
    keep = [n for n in ("diverging", "step_size", "depth", "n_steps", "energy") if n in stats]
    timing = {"compile_seconds": compiled_at - started, "sampling_seconds": finished - compiled_at}
    return posterior, stats[keep], timing


def _nan_largest(value: float) -> float:
    """``value``, with NaN ordered above everything (+inf): the worst of two diagnostics."""
    return math.inf if math.isnan(value) else value


def _combined_checks(pk_checks: dict[str, Any], tte_checks: dict[str, Any]) -> dict[str, Any]:
    """The gates of a two-stage fit: the worse stage's R-hat and ESS (NaN worst), summed
    divergences, converged only if both stages are."""
    worst_rhat = max(pk_checks, tte_checks, key=lambda c: _nan_largest(c["rhat_max"]))
    worst_ess = min(pk_checks, tte_checks, key=lambda c: -_nan_largest(-c["ess_bulk_min"]))
    return {
        "rhat_max": worst_rhat["rhat_max"],
        "rhat_max_at": worst_rhat["rhat_max_at"],
        "ess_bulk_min": worst_ess["ess_bulk_min"],
        "ess_bulk_min_at": worst_ess["ess_bulk_min_at"],
        "divergences": pk_checks["divergences"] + tte_checks["divergences"],
        "converged": pk_checks["converged"] and tte_checks["converged"],
    }


def _json_diagnostic(value) -> float | None:
    """A diagnostic for JSON: ``None`` (null) when not finite, never a bare NaN."""
    value = float(value)
    return value if math.isfinite(value) else None


def convergence(posterior: xr.Dataset, divergences: int, names) -> dict[str, Any]:
    """Max rank-normalised split R-hat and min bulk ESS over ``names``; the gates.

    A NaN diagnostic (a chain stuck at one value has no within-chain variance) is the worst
    value, not a missing one: it is reported as NaN, named, and fails the gates.
    """
    subset = posterior[[n for n in names if n in posterior]]
    with np.errstate(divide="ignore", invalid="ignore"):  # stuck chain: NaN, reported below
        rhat = az.rhat(subset)
        ess = az.ess(subset, method="bulk")

    def worst(dataset, largest: bool) -> tuple[float, str]:
        """The worst value over every variable and subject (NaN first), and where it is."""
        best = None
        for name in dataset.data_vars:
            values = dataset[name]
            raw = values.values.ravel()
            ordered = np.where(np.isnan(raw), np.inf if largest else -np.inf, raw)
            index = int(np.argmax(ordered) if largest else np.argmin(ordered))
            label = name
            if values.dims:
                label += f"[{values[values.dims[0]].values[index]}]"
            key = ordered[index] if largest else -ordered[index]
            if best is None or key > best[0]:
                best = (key, float(raw[index]), label)
        return best[1], best[2]

    rhat_max, rhat_where = worst(rhat, largest=True)
    ess_min, ess_where = worst(ess, largest=False)
    return {
        "rhat_max": rhat_max,
        "ess_bulk_min": ess_min,
        "divergences": int(divergences),
        "converged": bool(divergences == 0 and rhat_max <= RHAT_MAX and ess_min >= ESS_BULK_MIN),
        "rhat_max_at": rhat_where,
        "ess_bulk_min_at": ess_where,
    }


@dataclass
class PopulationFit:
    """A population fit: its DataTree (groups ``posterior``, ``sample_stats``,
    ``observed_data``, ``constant_data``; provenance in the root attrs) and diagnostics."""

    tree: xr.DataTree
    spec: ModelSpec = field(repr=False)

    @property
    def diagnostics(self) -> dict[str, Any]:
        return {
            k[len("diagnostics_") :]: v
            for k, v in self.tree.attrs.items()
            if k.startswith("diagnostics_")
        }

    @property
    def status(self) -> str:
        return "ok" if self.diagnostics.get("converged") else "unconverged"

    def summary(self) -> dict[str, Any]:
        """The JSON output contract of ``asuc-bayes fit --format json``."""
        return fit_summary(self.tree)

    def save(self, path) -> None:
        """Write the fit (netCDF, h5netcdf); :func:`load_fit` reads it back."""
        self.tree.to_netcdf(path, engine="h5netcdf")


def default_settings(method: str = "joint", **overrides) -> PopulationSettings:
    """The sampler settings of a fit ``method`` (4 chains; the marginal model's ~10
    parameters 1000 draws after 500 tuning steps at target acceptance 0.95, the full model
    1000 + 1000 at 0.995), with ``overrides`` (``None`` values ignored).

    Examples
    --------
    >>> default_settings("marginal").tune, default_settings("joint", draws=200).draws
    (500, 200)
    """
    base = {}
    if method == "marginal":
        from asuc_bayes.inference.population_marginal import (
            MARGINAL_DRAWS,
            MARGINAL_TARGET_ACCEPT,
            MARGINAL_TUNE,
        )

        base = {"draws": MARGINAL_DRAWS, "tune": MARGINAL_TUNE}
        base["target_accept"] = MARGINAL_TARGET_ACCEPT
    base.update({k: v for k, v in overrides.items() if v is not None})
    return PopulationSettings(**base)


def fit_population(
    patients,
    spec: ModelSpec,
    *,
    prior: str = "weak",
    method: Literal["marginal", "joint", "two_stage"] = "joint",
    settings: PopulationSettings | None = None,
    random_seed: int = 0,
) -> PopulationFit:
    """Fit the hierarchical popPK + Weibull model to a cohort by NUTS.

    Parameters
    ----------
    patients
        Validated patients with one colectomy record each
        (:func:`asuc_bayes.data.dataset.read_cohort`).
    spec
        The model file (structure, x_ref, priors).
    prior
        Name of the prior set in the model file (``weak`` or ``published``).
    method
        ``marginal`` (default: the joint model with each subject's random effects integrated
        out by quadrature, NUTS over the population parameters only, then each subject's η
        drawn given each population draw; :mod:`asuc_bayes.inference.population_marginal`),
        ``joint``
        (the same model with every η sampled by NUTS: "full") or ``two_stage`` (see the
        module docstring).
    settings
        Sampler settings (4 chains × 1000 draws after 1000 tuning steps by default).
    random_seed
        Seed of the sampler.
    """
    if settings is None:
        settings = default_settings(method)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    priors = spec.priors(prior)
    data = CohortData.from_patients(patients, spec.pk.default_infusion_duration_day)
    if method == "marginal":
        from asuc_bayes.inference.population_marginal import fit_marginal

        posterior, stats, checks, timing = fit_marginal(spec, priors, data, settings, random_seed)
        checks = {**convergence(posterior, int(stats["diverging"].sum()), _GATED), **checks}
    else:
        data = data.with_centring(spec)
    if method == "joint":
        posterior, stats, timing = _sample(spec, priors, data, "joint", settings, random_seed)
        checks = convergence(posterior, int(stats["diverging"].sum()), _GATED)
    elif method == "two_stage":
        posterior, stats, timing = _sample(spec, priors, data, "pk", settings, random_seed)
        pk_checks = convergence(
            posterior, int(stats["diverging"].sum()), (*PK_PARAMETER_NAMES, *INDIVIDUAL)
        )
        x = posterior["ln_auc_cl"]
        extra = {
            "x_mean": x.mean(("chain", "draw")).values,
            "x_sd": x.std(("chain", "draw")).values,
        }
        tte_posterior, tte_stats, tte_timing = _sample(
            spec, priors, data, "tte", settings, random_seed + 1, extra
        )
        tte_checks = convergence(
            tte_posterior, int(tte_stats["diverging"].sum()), TTE_PARAMETER_NAMES
        )
        for name in (*TTE_PARAMETER_NAMES, "tte_log10_lambda"):
            posterior[name] = tte_posterior[name]
        posterior["ln_auc_cl_stage2"] = tte_posterior["ln_auc_cl"]
        stats = stats.assign(diverging_stage2=tte_stats["diverging"])
        checks = _combined_checks(pk_checks, tte_checks)
        timing = {k: timing[k] + tte_timing[k] for k in timing}
    posterior["iiv_cl_cv"] = omega_to_cv(posterior["omega_cl"])
    posterior["iiv_v_cv"] = omega_to_cv(posterior["omega_v"])
    keep = [
        n
        for n in (
            *PARAMETER_NAMES,
            "tte_log10_lambda",
            "iiv_cl_cv",
            "iiv_v_cv",
            *INDIVIDUAL,
            "cl",
            "v",
            "ln_auc_cl",
            "ln_auc_cl_stage2",
        )
        if n in posterior
    ]
    tree = _fit_tree(
        spec, prior, method, settings, random_seed, data, posterior[keep], stats, checks, timing
    )
    return PopulationFit(tree=tree, spec=spec)


def _fit_tree(
    spec, prior, method, settings, seed, data: CohortData, posterior, stats, checks, timing
):

    subject = {"subject": list(data.ids)}
    constant = xr.Dataset(
        {
            "weight_kg": (("subject",), data.weight_kg),
            "crp_mg_l": (("subject",), data.crp_mg_l),
            "dose_time_day": (("subject", "dose"), data.dose_time_day),
            "dose_amount_mg": (("subject", "dose"), data.dose_amount_mg),
            "dose_duration_day": (("subject", "dose"), data.dose_duration_day),
            "dose_end_day": (("subject", "dose"), data.dose_end),
            "obs_subject": (("obs",), data.obs_subject),
            "obs_time_day": (("obs",), data.obs_time_day),
            "obs_censoring": (("obs",), data.obs_censoring.astype(np.int64)),
            "event_time_day": (("subject",), data.event_time_day),
            "centring_cl": (("subject",), _or_zeros(data.centring_cl, data.n_subjects)),
            "centring_v": (("subject",), _or_zeros(data.centring_v, data.n_subjects)),
        },
        coords=subject,
    )
    observed = xr.Dataset(
        {
            "concentration": (("obs",), data.obs_value_mg_l),
            "colectomy": (("subject",), data.event.astype(np.int64)),
        },
        coords=subject,
    )
    attrs = {
        **provenance_attrs(
            "asuc_bayes population fit",
            model_name=spec.name,
            model_label=spec.label,
            model_path=spec.path,
            model_sha256=spec.sha256,
            model_variants=spec.variants,
            random_seed=seed,
            sampler={
                "sampler": settings.sampler,
                "draws": settings.draws,
                "tune": settings.tune,
                "chains": settings.chains,
                "target_accept": settings.target_accept,
            },
        ),
        "x_ref": spec.tte.x_ref,
        "prior": prior,
        "priors": "; ".join(f"{p.name} ~ {p.describe()}" for p in spec.priors(prior).priors),
        "method": method,
        **netcdf_attrs(checks, prefix="diagnostics_"),
        **netcdf_attrs(timing, prefix="diagnostics_"),
    }
    return xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs=attrs),
            "posterior": posterior,
            "sample_stats": stats,
            "observed_data": observed,
            "constant_data": constant,
        }
    )


def load_fit(path) -> xr.DataTree:
    """Read a fit written by :meth:`PopulationFit.save` (``asuc-bayes fit --out``)."""
    tree = xr.load_datatree(path, engine="h5netcdf")
    if tree.attrs.get("kind") != "asuc_bayes population fit":
        raise ValueError(
            f"{path}: not an asuc_bayes population fit (write one with asuc-bayes fit)"
        )
    return tree


def cohort_of_fit(tree: xr.DataTree) -> CohortData:
    """The fitted cohort's data back from a fit's DataTree."""
    c, o = tree["constant_data"], tree["observed_data"]
    return CohortData(
        ids=tuple(str(s) for s in c["subject"].values),
        weight_kg=c["weight_kg"].values,
        crp_mg_l=c["crp_mg_l"].values,
        dose_time_day=c["dose_time_day"].values,
        dose_amount_mg=c["dose_amount_mg"].values,
        dose_duration_day=c["dose_duration_day"].values,
        obs_subject=c["obs_subject"].values.astype(np.int64),
        obs_time_day=c["obs_time_day"].values,
        obs_value_mg_l=o["concentration"].values,
        obs_censoring=c["obs_censoring"].values.astype(float),
        event_time_day=c["event_time_day"].values,
        event=o["colectomy"].values.astype(float),
        centring_cl=c["centring_cl"].values,
        centring_v=c["centring_v"].values,
        dose_end_day=c["dose_end_day"].values if "dose_end_day" in c else None,
    )


def _refuse_steady_state(patients) -> None:
    """The population model's sparse graph superposes plain infusions (resets are cut in the
    data, :meth:`CohortData.model_data`): a steady-state dose is an error naming the row."""
    from asuc_bayes.data.errors import _error

    for p in patients:
        dose = next((d for d in p.doses if d.steady_state), None)
        if dose is not None:
            raise _error(
                p.id,
                dose.row,
                "SS",
                f"SS={dose.steady_state} (steady state) is not supported by the population fit",
                "write the doses out explicitly (one row per infusion, or ADDL/II), or forecast "
                "the patient alone",
            )


def _statistics(values) -> dict[str, float]:
    flat = np.asarray(values, dtype=float).ravel()
    q = np.quantile(flat, [0.025, 0.5, 0.975])
    return {
        "mean": float(flat.mean()),
        "sd": float(flat.std(ddof=1)),
        "q2.5": float(q[0]),
        "q50": float(q[1]),
        "q97.5": float(q[2]),
    }


def fit_summary(tree: xr.DataTree) -> dict[str, Any]:
    """``{"n_subjects", "n_concentrations", "n_events", "parameters", "diagnostics", ...}``."""
    posterior = tree["posterior"]
    attrs = tree.attrs
    diagnostics = {
        k[len("diagnostics_") :]: v for k, v in attrs.items() if k.startswith("diagnostics_")
    }
    return {
        "n_subjects": int(tree["constant_data"].sizes["subject"]),
        "n_concentrations": int(tree["constant_data"].sizes.get("obs", 0)),
        "n_events": int(tree["observed_data"]["colectomy"].sum()),
        "parameters": {
            key: _statistics(posterior[name].values) for key, name in JSON_PARAMETERS.items()
        },
        "diagnostics": {
            "rhat_max": _json_diagnostic(diagnostics["rhat_max"]),
            "ess_bulk_min": _json_diagnostic(diagnostics["ess_bulk_min"]),
            "divergences": int(diagnostics["divergences"]),
            "converged": bool(diagnostics["converged"]),
            "rhat_max_at": str(diagnostics.get("rhat_max_at", "")),
            "ess_bulk_min_at": str(diagnostics.get("ess_bulk_min_at", "")),
            "chains": int(attrs["chains"]),
            "draws": int(attrs["draws"]),
            "tune": int(attrs["tune"]),
            "target_accept": float(attrs["target_accept"]),
            "sampler": str(attrs["sampler"]),
            "compile_seconds": float(diagnostics["compile_seconds"]),
            "sampling_seconds": float(diagnostics["sampling_seconds"]),
        },
        "model": {
            "name": attrs["model_name"],
            "sha256": attrs["model_sha256"],
            "x_ref": float(attrs["x_ref"]),
        },
        "prior": attrs["prior"],
        "method": attrs["method"],
        "status": "ok" if diagnostics["converged"] else "unconverged",
    }


def published_values(spec: ModelSpec) -> dict[str, tuple[float, tuple[float, float] | None]]:
    """Table 2's estimate and bootstrap 95 % CI in the units of :data:`JSON_PARAMETERS`."""
    pk, tte = spec.pk, spec.tte

    def boot(parameter, scale=1.0):
        if parameter.bootstrap is None:
            return None
        return (parameter.bootstrap[0] * scale, parameter.bootstrap[2] * scale)

    return {
        "cl": (pk.theta_cl.estimate, boot(pk.theta_cl)),
        "v": (pk.theta_v.estimate, boot(pk.theta_v)),
        "crp_cl": (pk.crp_exponent_cl.estimate, boot(pk.crp_exponent_cl)),
        "iiv_cl_cv": (pk.iiv_cv_cl.estimate / 100, boot(pk.iiv_cv_cl, 0.01)),
        "iiv_v_cv": (pk.iiv_cv_v.estimate / 100, boot(pk.iiv_cv_v, 0.01)),
        "prop_error": (pk.residual_sd.estimate, boot(pk.residual_sd)),
        "tte_lambda": (tte.baseline_lambda, None),
        "tte_gamma": (tte.gamma.estimate, boot(tte.gamma)),
        "tte_beta": (tte.beta.estimate, boot(tte.beta)),
    }


def prepare_population_model(
    spec: ModelSpec,
    n_subjects: int,
    *,
    prior: str = "weak",
    method: Literal["marginal", "joint", "two_stage"] = "joint",
) -> None:
    """Compile (once per process) the nutpie model that :func:`fit_population` uses for
    cohorts of ``n_subjects``, e.g. on every worker before a batch of fits, so that the first
    fit's time is sampling only."""
    priors = spec.priors(prior)
    if method == "marginal":  # one compilation serves every cohort size
        from asuc_bayes.inference.population_marginal import prepare_marginal_model

        prepare_marginal_model(spec, priors)
        return
    duration = spec.pk.default_infusion_duration_day
    data = CohortData.from_patients(placeholder_cohort(n_subjects, duration), duration)
    for structure in ("joint",) if method == "joint" else ("pk", "tte"):
        _compiled_model(spec, priors, data, structure, {})


def placeholder_cohort(n_subjects: int, duration_day: float) -> list[Patient]:
    """``n_subjects`` identical one-dose, one-sample patients without colectomy: data for
    compiling a population model ahead of time (its compiled form depends on the number of
    subjects, not on their records, which are bound later)."""
    return [
        Patient(
            f"S{i}",
            70.0,
            30.0,
            (Dose(0.0, 700.0, duration_day),),
            (Observation(7.0, 20.0),),
            events=(EventRecord(90.0, 0),),
        )
        for i in range(n_subjects)
    ]
