"""A population fit: :func:`fit_population`, its result (:class:`PopulationFit`, a DataTree
with provenance and gates), reading it back and its JSON summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import xarray as xr

from asuc_bayes.inference.fit_tree import (
    POPULATION_FIT_KIND,
    FitResult,
    build_fit_tree,
    convergence,
    diagnostics_of,
    read_fit,
)
from asuc_bayes.inference.forecast.summary import summary_statistics
from asuc_bayes.inference.population.data import (
    DEFAULT_METHOD,
    METHODS,
    CohortData,
    PopulationSettings,
    default_settings,
    or_zeros,
)
from asuc_bayes.inference.population.sampling import (
    combined_checks,
    sample_model,
)
from asuc_bayes.inference.population_draws import omega_to_cv
from asuc_bayes.inference.result import finite_or_none
from asuc_bayes.spec.config import (
    PARAMETER_NAMES,
    PK_PARAMETER_NAMES,
    TTE_PARAMETER_NAMES,
    ModelSpec,
)

__all__ = [
    "FIT_KIND",
    "GATED",
    "INDIVIDUAL",
    "JSON_PARAMETERS",
    "PopulationFit",
    "cohort_of_fit",
    "fit_population",
    "fit_summary",
    "load_fit",
    "population_fit_tree",
    "published_values",
]

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
#: The root ``kind`` attribute of a population fit of the ASUC model.
FIT_KIND = POPULATION_FIT_KIND
INDIVIDUAL = ("eta_cl", "eta_v")
GATED = (*PARAMETER_NAMES, *INDIVIDUAL)


@dataclass
class PopulationFit(FitResult):
    """A population fit: its DataTree (groups ``posterior``, ``sample_stats``,
    ``observed_data``, ``constant_data``; provenance in the root attrs) and diagnostics;
    :meth:`save` writes it, :func:`load_fit` reads it back."""

    tree: xr.DataTree
    spec: ModelSpec = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """The JSON output contract of ``asuc-bayes fit --format json``."""
        return fit_summary(self.tree)


def fit_population(
    patients,
    spec: ModelSpec,
    *,
    prior: str = "weak",
    method: Literal["marginal", "joint", "two_stage"] = DEFAULT_METHOD,
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
        ``marginal`` (the default: the joint model with each subject's random effects
        integrated out by quadrature, NUTS over the population parameters only, then each
        subject's η drawn given each population draw;
        :mod:`asuc_bayes.inference.population_marginal`), ``joint`` (the same model with every
        η sampled by NUTS, "full") or
        ``two_stage`` (see :mod:`asuc_bayes.inference.population.model`).
    settings
        Sampler settings (by default :func:`default_settings` of the method: 4 chains, the
        marginal fit 1000 draws after 300 tuning steps with a low-rank mass matrix, the
        others 1000 after 1000 with a diagonal one).
    random_seed
        Seed of the sampler.
    """
    if settings is None:
        settings = default_settings(method)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if settings.sampler == "imh" and method != "marginal":
        raise ValueError(
            f"sampler 'imh' needs method 'marginal' (method {method!r} samples every "
            "subject's random effects: hundreds of dimensions); use sampler 'nutpie'"
        )
    priors = spec.priors(prior)
    data = CohortData.from_patients(patients, spec.pk.default_infusion_duration_day)
    if method == "marginal":
        from asuc_bayes.inference.population_marginal_fit import fit_marginal

        posterior, stats, checks, timing = fit_marginal(spec, priors, data, settings, random_seed)
        checks = {**convergence(posterior, int(stats["diverging"].sum()), GATED), **checks}
    else:
        data = data.with_centring(spec)
    if method == "joint":
        posterior, stats, timing = sample_model(spec, priors, data, "joint", settings, random_seed)
        checks = convergence(posterior, int(stats["diverging"].sum()), GATED)
    elif method == "two_stage":
        posterior, stats, timing = sample_model(spec, priors, data, "pk", settings, random_seed)
        pk_checks = convergence(
            posterior, int(stats["diverging"].sum()), (*PK_PARAMETER_NAMES, *INDIVIDUAL)
        )
        x = posterior["ln_auc_cl"]
        extra = {
            "x_mean": x.mean(("chain", "draw")).values,
            "x_sd": x.std(("chain", "draw")).values,
        }
        tte_posterior, tte_stats, tte_timing = sample_model(
            spec, priors, data, "tte", settings, random_seed + 1, extra
        )
        tte_checks = convergence(
            tte_posterior, int(tte_stats["diverging"].sum()), TTE_PARAMETER_NAMES
        )
        for name in (*TTE_PARAMETER_NAMES, "tte_log10_lambda"):
            posterior[name] = tte_posterior[name]
        posterior["ln_auc_cl_stage2"] = tte_posterior["ln_auc_cl"]
        stats = stats.assign(diverging_stage2=tte_stats["diverging"])
        checks = combined_checks(pk_checks, tte_checks)
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
    tree = population_fit_tree(
        spec, prior, method, settings, random_seed, data, posterior[keep], stats, checks, timing
    )
    return PopulationFit(tree=tree, spec=spec)


def population_fit_tree(
    spec: ModelSpec,
    prior: str,
    method: str,
    settings: PopulationSettings,
    seed: int,
    data: CohortData,
    posterior: xr.Dataset,
    stats: xr.Dataset,
    checks: dict[str, Any],
    timing: dict[str, float],
) -> xr.DataTree:
    """The DataTree of an ASUC-model population fit
    (:func:`asuc_bayes.inference.fit_tree.build_fit_tree`): the cohort's data as
    ``constant_data`` and ``observed_data``, the model file and prior as attributes, the gates
    (``checks``) and ``timing`` as diagnostics."""
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
            "centring_cl": (("subject",), or_zeros(data.centring_cl, data.n_subjects)),
            "centring_v": (("subject",), or_zeros(data.centring_v, data.n_subjects)),
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
    return build_fit_tree(
        FIT_KIND,
        model={
            "model_name": spec.name,
            "model_label": spec.label,
            "model_path": spec.path,
            "model_sha256": spec.sha256,
            "model_variants": spec.variants,
        },
        random_seed=seed,
        sampler={
            "sampler": settings.sampler,
            "draws": settings.draws,
            "tune": settings.tune,
            "chains": settings.chains,
            "target_accept": settings.target_accept,
            "adaptation": settings.adaptation,
        },
        attrs={
            "x_ref": spec.tte.x_ref,
            "prior": prior,
            "priors": "; ".join(f"{p.name} ~ {p.describe()}" for p in spec.priors(prior).priors),
            "method": method,
        },
        diagnostics={**checks, **timing},
        posterior=posterior,
        sample_stats=stats,
        observed_data=observed,
        constant_data=constant,
    )


def load_fit(path) -> xr.DataTree:
    """Read a fit written by :meth:`PopulationFit.save` (``asuc-bayes fit --out``)."""
    return read_fit(path, (FIT_KIND,), purpose="this command")


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


def fit_summary(tree: xr.DataTree) -> dict[str, Any]:
    """``{"n_subjects", "n_concentrations", "n_events", "parameters", "diagnostics", ...}``."""
    posterior = tree["posterior"]
    attrs = tree.attrs
    diagnostics = diagnostics_of(attrs)
    return {
        "n_subjects": int(tree["constant_data"].sizes["subject"]),
        "n_concentrations": int(tree["constant_data"].sizes.get("obs", 0)),
        "n_events": int(tree["observed_data"]["colectomy"].sum()),
        "parameters": {
            key: summary_statistics(posterior[name].values) for key, name in JSON_PARAMETERS.items()
        },
        "diagnostics": {
            "rhat_max": finite_or_none(diagnostics["rhat_max"]),
            "ess_bulk_min": finite_or_none(diagnostics["ess_bulk_min"]),
            "divergences": int(diagnostics["divergences"]),
            "converged": bool(diagnostics["converged"]),
            "rhat_max_at": str(diagnostics.get("rhat_max_at", "")),
            "ess_bulk_min_at": str(diagnostics.get("ess_bulk_min_at", "")),
            "chains": int(attrs["chains"]),
            "draws": int(attrs["draws"]),
            "tune": int(attrs["tune"]),
            "target_accept": float(attrs["target_accept"]),
            "sampler": str(attrs["sampler"]),
            # the sampler that produced the draws (fits before 2026-12-07: the one asked for)
            "sampler_used": str(diagnostics.get("sampler_used", attrs["sampler"])),
            "imh_refused": str(diagnostics.get("imh_refused", "")),
            "imh_khat": finite_or_none(diagnostics.get("imh_khat", float("nan"))),
            "imh_acceptance_min": finite_or_none(
                diagnostics.get("imh_acceptance_min", float("nan"))
            ),
            # times the proposal was moved to a run's weighted moments (stop 40 on)
            "imh_adaptations": int(diagnostics.get("imh_adaptations", 0)),
            "adaptation": str(attrs.get("adaptation", "diag")),  # fits before 2026-12-07
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
