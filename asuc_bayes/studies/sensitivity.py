"""Sensitivity analyses of one patient's forecast: how the 90-day risk, P(high risk) and the
recommended dose move under assumptions nobody can check.

Every alternative is a model specification, a patient record and a power-scaling of the
posterior, and each is forecast by exact 2-D quadrature (:func:`forecast.exact_forecast`): the
differences between alternatives are then differences between exact posteriors, not sampling
noise, and no alternative model needs compiling. The alternatives (:func:`alternatives`):

- ``variant``: each alternative reading of the model card declared in the model file
  (reference weight 63 kg, log-CRP covariate, log-scale residual error, 1 h and 3 h
  infusions, the (λt)^γ Weibull form); for infusion variants, the patient's infusions of the
  model's default duration take the variant's;
- ``variability``: IIV (ω of both random effects) and the residual error SD scaled ×0.5 and ×2;
- ``censoring``: censored samples handled by M3 (the model), discarded, or imputed (BLQ at
  LLOQ/2, ALQ at the ULOQ);
- ``prior``: the prior (the population distribution of η) and the likelihood power-scaled by
  0.5 and 2 (Kallioinen et al. 2024); ArviZ's ``psense`` diagnostic is reported beside them;
- ``threshold``: the high-risk threshold 5.79 moved to 5.5 and 6.1 with x_ref recalibrated so
  that the threshold keeps its 20 % risk (the model file's rule);
- ``target``: the target risk of the dose recommendation at 15 % and 25 %;
- ``population``: population-parameter uncertainty propagated against the typical values:
  draws from the published RSEs and from the bootstrap CIs (independent draws: the paper gives
  no covariances, and λ and γ are strongly negatively correlated in any fit, so the spread of
  the risk is overstated), and from a fitted population posterior when one is given. Each is
  forecast exactly up to Monte Carlo over the population draws
  (:func:`asuc_bayes.inference.population_forecast.forecast_with_population`);
- ``structural``: every other library model (``asuc-bayes models``) the patient's covariates
  allow, by posterior sampling with the ASUC outcome attached and flagged extrapolated; a
  model whose covariates the patient lacks gets a row naming them
  (:mod:`asuc_bayes.studies.structural_sensitivity`).

Each row reports whether the alternative changes the posterior's log density and whether it
changes the map from η to the derived quantities (regimen, covariates, risk function); an
alternative that changes neither is *neutral* for this patient and reproduces the baseline
exactly (e.g. censoring strategies for a patient without censored samples).

Examples
--------
>>> from asuc_bayes.spec.config import load_model
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> p = Patient("x", 63.0, 30.0, (Dose(0.0, 600.0, 1 / 12),), (Observation(7.0, 14.5),))
>>> [a.name for a in alternatives(load_model(), p)][:3]
['reference_weight_63kg', 'log_crp', 'log_residual']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED, Patient
from asuc_bayes.decisions.dosing import DosingError, DosingRequest, recommend_dose
from asuc_bayes.inference.forecast import (
    PatientForecast,
    SamplerSettings,
    derived_quantities,
    exact_forecast,
)
from asuc_bayes.inference.grid import (
    grid_posterior,
    log_posterior,
    log_prior,
    observation_log_likelihood,
)
from asuc_bayes.inference.population_draws import PopulationDraws, point_values
from asuc_bayes.inference.population_forecast import forecast_with_population
from asuc_bayes.inference.sampler import SamplerOptions
from asuc_bayes.pk.kernels import concentration
from asuc_bayes.spec.config import ModelSpec, calibrate_x_ref, cv_to_omega, load_model
from asuc_bayes.strict_json import dumps_json
from asuc_bayes.studies.structural_sensitivity import (
    STRUCTURAL_GROUP,
    StructuralAlternative,
    structural_alternatives,
    structural_row,
)

__all__ = [
    "CENSORING_STRATEGIES",
    "Alternative",
    "SensitivityResult",
    "alternatives",
    "censoring_strategy",
    "run_sensitivity",
    "scaled_variability",
    "with_threshold",
]

#: How censored samples can be handled: the model's M3, dropped, or imputed.
CENSORING_STRATEGIES = ("m3", "discard", "impute")
SCALE_FACTORS = (0.5, 2.0)
POWERS = (0.5, 2.0)
THRESHOLDS = (5.5, 6.1)
TARGETS = (0.15, 0.25)
#: The P(high risk) table covers these thresholds, and the dose table these targets.
THRESHOLD_GRID = tuple(np.round(np.arange(5.4, 6.21, 0.1), 2))
TARGET_GRID = (0.10, 0.15, 0.20, 0.25, 0.30)


@dataclass(frozen=True)
class Alternative:
    """One alternative assumption: the model, the patient record and a power-scaling."""

    group: str
    name: str
    description: str
    spec: ModelSpec
    patient: Patient
    prior_power: float = 1.0
    likelihood_power: float = 1.0
    target_risk: float | None = None  # only the dose recommendation's target changes
    population: PopulationDraws | None = None  # population parameters integrated over


# -- building alternatives -----------------------------------------------------------------
def _cv_percent_for_omega(omega: float) -> float:
    """The %CV whose log-normal SD is ``omega`` (inverse of :func:`config.cv_to_omega`)."""
    return 100.0 * math.sqrt(math.expm1(omega * omega))


def scaled_variability(
    spec: ModelSpec, iiv_factor: float = 1.0, residual_factor: float = 1.0
) -> ModelSpec:
    """``spec`` with ω of both random effects × ``iiv_factor`` and the residual SD ×
    ``residual_factor``.

    Examples
    --------
    >>> spec = load_model()
    >>> round(scaled_variability(spec, iiv_factor=2.0).pk.omega_cl / spec.pk.omega_cl, 6)
    2.0
    >>> scaled_variability(spec) == spec
    True
    """
    pk = spec.pk
    iiv_cl = replace(
        pk.iiv_cv_cl,
        estimate=_cv_percent_for_omega(iiv_factor * cv_to_omega(pk.iiv_cv_cl.estimate / 100)),
    )
    iiv_v = replace(
        pk.iiv_cv_v,
        estimate=_cv_percent_for_omega(iiv_factor * cv_to_omega(pk.iiv_cv_v.estimate / 100)),
    )
    if iiv_factor == 1.0:
        iiv_cl, iiv_v = pk.iiv_cv_cl, pk.iiv_cv_v
    residual = replace(pk.residual_sd, estimate=residual_factor * pk.residual_sd.estimate)
    return replace(spec, pk=replace(pk, iiv_cv_cl=iiv_cl, iiv_cv_v=iiv_v, residual_sd=residual))


def with_threshold(spec: ModelSpec, threshold: float) -> ModelSpec:
    """``spec`` with the high-risk threshold moved and, when the model file calibrates x_ref to
    the threshold's risk, x_ref recalibrated (so the threshold keeps its 20 %)."""
    tte = spec.tte
    x_ref = tte.x_ref
    if tte.risk_at_threshold is not None:
        x_ref = calibrate_x_ref(
            tte.form,
            tte.baseline_lambda,
            tte.gamma.estimate,
            tte.beta.estimate,
            tte.horizon_day,
            threshold,
            tte.risk_at_threshold,
        )
    return replace(spec, tte=replace(tte, high_risk_threshold=float(threshold), x_ref=x_ref))


def censoring_strategy(patient: Patient, strategy: str) -> Patient:
    """The patient's record under a censoring strategy: ``m3`` (as is), ``discard`` (censored
    samples dropped) or ``impute`` (BLQ as measured LLOQ/2, ALQ as measured at the ULOQ)."""
    if strategy not in CENSORING_STRATEGIES:
        raise ValueError(f"censoring strategy must be one of {CENSORING_STRATEGIES}")
    if strategy == "m3":
        return patient
    if strategy == "discard":
        kept = tuple(o for o in patient.observations if o.censoring == MEASURED)
        return replace(patient, observations=kept)
    imputed = []
    for o in patient.observations:
        if o.censoring == BELOW_LLOQ:
            o = replace(o, value_mg_l=o.value_mg_l / 2.0, censoring=MEASURED)
        elif o.censoring == ABOVE_ULOQ:
            o = replace(o, censoring=MEASURED)
        imputed.append(o)
    return replace(patient, observations=tuple(imputed))


def _with_default_infusion(patient: Patient, old_day: float, new_day: float) -> Patient:
    doses = tuple(
        replace(d, duration_day=new_day) if abs(d.duration_day - old_day) < 1e-12 else d
        for d in patient.doses
    )
    return replace(patient, doses=doses)


def alternatives(
    spec: ModelSpec,
    patient: Patient,
    *,
    population_draws: int = 0,
    population_fit=None,
    random_seed: int = 0,
) -> list[Alternative]:
    """Every alternative of the module docstring for ``patient`` under ``spec`` (the baseline
    itself excluded).

    ``population_draws`` > 0 adds the population-uncertainty alternatives with that many
    draws from the published RSEs and bootstrap CIs, and from ``population_fit`` (a fit's
    netCDF path or DataTree) when given.
    """
    out = []
    for name, description in spec.available_variants.items():
        if name in spec.variants:
            continue
        variant = load_model(spec.path, variants=[*spec.variants, name])
        record = _with_default_infusion(
            patient,
            spec.pk.default_infusion_duration_day,
            variant.pk.default_infusion_duration_day,
        )
        out.append(Alternative("variant", name, description, variant, record))
    for factor in SCALE_FACTORS:
        out.append(
            Alternative(
                "variability",
                f"iiv_x{factor:g}",
                f"IIV (ω of CL and V) × {factor:g}",
                scaled_variability(spec, iiv_factor=factor),
                patient,
            )
        )
    for factor in SCALE_FACTORS:
        out.append(
            Alternative(
                "variability",
                f"residual_x{factor:g}",
                f"residual error SD × {factor:g}",
                scaled_variability(spec, residual_factor=factor),
                patient,
            )
        )
    descriptions = {
        "discard": "censored samples discarded",
        "impute": "censored samples imputed (BLQ at LLOQ/2, ALQ at the ULOQ)",
    }
    for strategy, description in descriptions.items():
        out.append(
            Alternative(
                "censoring",
                f"censoring_{strategy}",
                description,
                spec,
                censoring_strategy(patient, strategy),
            )
        )
    for power in POWERS:
        out.append(
            Alternative(
                "prior", f"prior_power_{power:g}", f"prior^{power:g}", spec, patient, power, 1.0
            )
        )
    for power in POWERS:
        out.append(
            Alternative(
                "prior",
                f"likelihood_power_{power:g}",
                f"likelihood^{power:g}",
                spec,
                patient,
                1.0,
                power,
            )
        )
    for threshold in THRESHOLDS:
        out.append(
            Alternative(
                "threshold",
                f"threshold_{threshold:g}",
                f"high-risk threshold {threshold:g} (x_ref recalibrated)",
                with_threshold(spec, threshold),
                patient,
            )
        )
    for target in TARGETS:
        out.append(
            Alternative(
                "target",
                f"target_{target:g}",
                f"target risk {target:.0%} for the recommended dose",
                spec,
                patient,
                target_risk=target,
            )
        )
    if population_draws > 0:
        sources = [
            (
                "population_published_rse",
                "population parameters from the published RSEs (independent)",
                PopulationDraws.from_published(spec, population_draws, random_seed, method="rse"),
            ),
            (
                "population_published_bootstrap",
                "population parameters from the bootstrap 95 % CIs (independent)",
                PopulationDraws.from_published(
                    spec, population_draws, random_seed, method="bootstrap"
                ),
            ),
        ]
        if population_fit is not None:
            fitted = PopulationDraws.from_fit(population_fit, population_draws, random_seed)
            sources.append(("population_fit", f"population posterior of {fitted.source}", fitted))
        for name, description, draws in sources:
            out.append(
                Alternative("population", name, description, spec, patient, population=draws)
            )
    return out


# -- running ---------------------------------------------------------------------------------
@dataclass
class SensitivityResult:
    """Baseline and alternatives of one patient (``table``), P(high risk) over thresholds
    (``thresholds``), the recommended dose over targets (``targets``) and ArviZ's
    power-scaling diagnostic (``power_scaling``)."""

    patient_id: str
    request: DosingRequest
    table: pd.DataFrame
    thresholds: pd.DataFrame
    targets: pd.DataFrame
    power_scaling: pd.DataFrame | None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        def records(frame):
            return [
                {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
                for row in frame.to_dict(orient="records")
            ]

        return {
            "id": self.patient_id,
            "target_risk": self.request.target_risk,
            "criterion": self.request.criterion,
            "alternatives": [
                _json_lists(row) for row in records(self.table.replace({np.nan: None}))
            ],
            "thresholds": records(self.thresholds),
            "targets": records(self.targets.replace({np.nan: None})),
            "power_scaling": None
            if self.power_scaling is None
            else records(self.power_scaling.reset_index(names="quantity")),
            "notes": list(self.notes),
        }


def _json_lists(row: dict[str, Any]) -> dict[str, Any]:
    """A table row for JSON: ``flags`` and ``missing_covariates`` as lists."""
    row = dict(row)
    row["flags"] = row["flags"].split("; ") if row.get("flags") else []
    missing = row.get("missing_covariates")
    row["missing_covariates"] = missing.split(", ") if missing else []
    return row


def _probe_points(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """A 7 × 7 lattice of η over ±2 prior SDs, where alternatives are compared."""
    axes = [np.linspace(-2.0, 2.0, 7) * w for w in (spec.pk.omega_cl, spec.pk.omega_v)]
    return tuple(a.ravel() for a in np.meshgrid(*axes, indexing="ij"))


def _changes(baseline: Alternative, alternative: Alternative) -> tuple[bool, bool]:
    """(log density differs beyond a constant, derived quantities differ) on the probe lattice.

    Population draws change both unless every draw equals the baseline's point values."""
    if alternative.population is not None:
        point = point_values(baseline.spec)
        varies = any(
            not np.allclose(values, point[name], rtol=1e-12, atol=0.0)
            for name, values in alternative.population.as_dict().items()
        )
        return varies, varies
    eta_cl, eta_v = _probe_points(baseline.spec)

    def density(a: Alternative) -> np.ndarray:
        return log_posterior(
            a.spec,
            a.patient,
            eta_cl,
            eta_v,
            prior_power=a.prior_power,
            likelihood_power=a.likelihood_power,
        )

    difference = density(alternative) - density(baseline)
    changes_density = bool(np.ptp(difference) > 1e-9)
    eta = np.column_stack([eta_cl, eta_v])
    derived = [derived_quantities(a.spec, a.patient, eta) for a in (baseline, alternative)]
    changes_derived = (
        any(
            not np.allclose(derived[0][k], derived[1][k], rtol=1e-12, atol=0.0)
            for k in ("cl", "v", "auc_w2_4", "risk_90d")
        )
        or baseline.spec.tte.high_risk_threshold != alternative.spec.tte.high_risk_threshold
    )
    return changes_density, changes_derived


def _forecast(alternative: Alternative, grid_points: int, random_seed: int) -> PatientForecast:
    if alternative.population is not None:
        return forecast_with_population(
            alternative.patient, alternative.population, random_seed=random_seed
        )
    grid = grid_posterior(
        alternative.spec,
        alternative.patient,
        n_points=grid_points,
        prior_power=alternative.prior_power,
        likelihood_power=alternative.likelihood_power,
    )
    settings = SamplerSettings(method="exact_grid", grid_points=grid_points)
    return exact_forecast(
        alternative.spec, alternative.patient, settings=settings, random_seed=random_seed, grid=grid
    )


def _row(
    alternative: Alternative,
    forecast: PatientForecast,
    request: DosingRequest,
    changes: tuple[bool, bool],
) -> dict[str, Any]:
    summary = forecast.summary()
    risk = summary["posterior"]["risk_90d"]
    dose, feasible = math.nan, None
    if request is not None:
        target = alternative.target_risk or request.target_risk
        rec = recommend_dose(forecast, replace(request, target_risk=target))
        dose, feasible = rec.dose_mg, rec.feasible
    return {
        "group": alternative.group,
        "name": alternative.name,
        "description": alternative.description,
        "risk_mean": risk["mean"],
        "risk_q2.5": risk["q2.5"],
        "risk_q97.5": risk["q97.5"],
        "p_high_risk": summary["p_high_risk"],
        "ln_auc_cl_q50": summary["posterior"]["ln_auc_cl"]["q50"],
        "ln_auc_cl_q2.5": summary["posterior"]["ln_auc_cl"]["q2.5"],
        "ln_auc_cl_q97.5": summary["posterior"]["ln_auc_cl"]["q97.5"],
        "map_risk": summary["map"]["risk_90d"],
        "recommended_dose_mg": dose,
        "feasible": feasible,
        "status": forecast.status,
        "changes_log_density": changes[0],
        "changes_derived": changes[1],
        "structure": alternative.spec.pk.structure if alternative.group == "baseline" else "",
        "missing_covariates": "",
        "flags": "",
    }


def _structural_notes(library: list[StructuralAlternative]) -> list[str]:
    notes = []
    if any(a.forecast is not None for a in library):
        notes.append(
            "structural rows: other library models sampled (MCMC), with the ASUC outcome "
            "model attached where they have none (extrapolated outcome); no dose search "
            "under them (it works with the default model's forecast only)"
        )
    unconverged = [a.model for a in library if a.forecast is not None and a.status != "ok"]
    if unconverged:
        notes.append(
            f"UNCONVERGED library forecast ({', '.join(unconverged)}): its numbers are not "
            "reliable (rerun with more draws)"
        )
    return notes


def power_scaling_diagnostic(forecast: PatientForecast) -> pd.DataFrame | None:
    """ArviZ's ``psense_summary`` (prior and likelihood power-scaling sensitivity) of CL, V,
    ln(AUC/CL) and the 90-day risk, from the forecast's draws with their log prior and
    per-sample log likelihood. None without samples (no likelihood to scale)."""
    import arviz as az

    patient, spec = forecast.patient, forecast.spec
    if not patient.observations:
        return None
    posterior = forecast.tree["posterior"]
    eta = posterior["eta"].values
    cl, v = posterior["cl"].values, posterior["v"].values
    prediction = concentration(
        patient.obs_time_day,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        cl,
        v,
        dose_end_day=patient.dose_end_day,
        dose_ss_interval_day=patient.dose_ss_interval_day,
    )
    log_lik = observation_log_likelihood(
        patient.obs_value_mg_l,
        patient.obs_censoring,
        prediction,
        spec.pk.residual_sd.estimate,
        spec.pk.residual_form,
    )
    dims = ("chain", "draw")
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(
                {k: (dims, posterior[k].values) for k in ("cl", "v", "ln_auc_cl", "risk_90d")}
            ),
            "log_prior": xr.Dataset({"eta": (dims, log_prior(spec, eta[..., 0], eta[..., 1]))}),
            "log_likelihood": xr.Dataset({"concentration": ((*dims, "obs"), log_lik)}),
        }
    )
    # psense_summary logs general advice whenever it flags something; the diagnosis column
    # says it for each quantity, and the CLI's output must stay data only.
    logger = logging.getLogger("arviz_stats.psense")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        frame = az.psense_summary(tree, round_to=6)
    finally:
        logger.setLevel(level)
    return pd.DataFrame(frame)


def run_sensitivity(
    spec: ModelSpec,
    patient: Patient,
    request: DosingRequest | None = None,
    *,
    random_seed: int = 0,
    grid_points: int = 201,
    population_draws: int = 200,
    population_fit=None,
    structural: bool = True,
    impute: str | None = None,
    covariate_units: Mapping[str, str] | None = None,
    structural_options: SamplerOptions | None = None,
) -> SensitivityResult:
    """The baseline and every alternative of :func:`alternatives` for one patient.

    Parameters
    ----------
    request
        The dose recommendation to track (default :class:`DosingRequest`); if the patient
        cannot take it (e.g. a sample after the dose time), the dose columns stay empty.
    grid_points
        Points per axis of each exact quadrature posterior.
    population_draws, population_fit
        Population draws per population-uncertainty alternative (0: none), and an optional
        fitted population posterior (netCDF path or DataTree) as a further source.
    structural, impute, covariate_units, structural_options
        Add a ``structural`` row per library model other than ``spec``'s
        (:mod:`asuc_bayes.studies.structural_sensitivity`): forecast when the patient has its
        covariates (per-record covariates in ``covariate_units``, else the dataset's), or
        imputed with ``impute="reference"``, else a row naming the missing covariates; the
        library forecasts' chains and draws (``structural_options``).
    """
    request = request or DosingRequest()
    notes = []
    try:
        from asuc_bayes.decisions.dosing import check_request

        check_request(patient, spec, request)
        dose_request: DosingRequest | None = request
    except DosingError as exc:
        dose_request = None
        notes.append(f"no dose recommendation: {exc}")
    baseline = Alternative("baseline", "baseline", "the model as specified", spec, patient)
    base_forecast = _forecast(baseline, grid_points, random_seed)
    rows = [_row(baseline, base_forecast, dose_request, (False, False))]
    others = alternatives(
        spec,
        patient,
        population_draws=population_draws,
        population_fit=population_fit,
        random_seed=random_seed,
    )
    for alternative in others:
        changes = _changes(baseline, alternative)
        if alternative.group == "target" and dose_request is None:
            continue
        if not any(changes) and alternative.group != "target":
            forecast = base_forecast  # neutral for this patient: the baseline exactly
        else:
            forecast = _forecast(alternative, grid_points, random_seed)
        rows.append(_row(alternative, forecast, dose_request, changes))
    if structural:
        library = structural_alternatives(
            patient,
            exclude_path=spec.path,
            impute=impute,
            units=covariate_units,
            random_seed=random_seed,
            options=structural_options,
        )
        rows += [structural_row(a) for a in library]
        notes += _structural_notes(library)
    table = pd.DataFrame(rows)
    base = table.iloc[0]
    table["delta_risk_mean"] = table["risk_mean"] - base["risk_mean"]
    table["delta_p_high_risk"] = table["p_high_risk"] - base["p_high_risk"]
    table["delta_dose_mg"] = table["recommended_dose_mg"] - base["recommended_dose_mg"]
    neutral = table.index[(~table["changes_log_density"]) & (~table["changes_derived"])]
    for index in neutral[1:]:
        if table.loc[index, "group"] not in ("target", STRUCTURAL_GROUP):
            notes.append(f"{table.loc[index, 'name']}: neutral for this patient (same model)")
    grid = grid_posterior(spec, patient, n_points=grid_points)
    thresholds = pd.DataFrame(
        {
            "threshold": THRESHOLD_GRID,
            "p_high_risk": [grid.cdf("ln_auc_cl", t) for t in THRESHOLD_GRID],
        }
    )
    target_rows = []
    for target in TARGET_GRID:
        if dose_request is None:
            break
        rec = recommend_dose(base_forecast, replace(dose_request, target_risk=target))
        target_rows.append(
            {
                "target_risk": target,
                "recommended_dose_mg": rec.dose_mg,
                "feasible": rec.feasible,
                "risk_mean": rec.risk_90d["mean"],
            }
        )
    if any(a.population is not None and a.name.startswith("population_published") for a in others):
        notes.append(
            "published population uncertainty is drawn independently per parameter (the paper "
            "gives no covariances); λ and γ are strongly negatively correlated in any fit, so "
            "the spread of the risk is overstated there — a fitted posterior (--population-fit) "
            "keeps the correlations"
        )
    power = power_scaling_diagnostic(base_forecast)
    if power is None:
        notes.append("no samples: the likelihood cannot be power-scaled (prior-only forecast)")
    return SensitivityResult(
        patient_id=patient.id,
        request=request,
        table=table,
        thresholds=thresholds,
        targets=pd.DataFrame(
            target_rows, columns=["target_risk", "recommended_dose_mg", "feasible", "risk_mean"]
        ),
        power_scaling=power,
        notes=tuple(notes),
    )


def tornado_figure(result: SensitivityResult, path) -> str:
    """Tornado plot (PNG): change of mean risk, P(high risk) and recommended dose per
    alternative, sorted by the change of mean risk."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt

    table = result.table.iloc[1:].copy()
    order = np.argsort(-np.abs(np.nan_to_num(table["delta_risk_mean"].to_numpy())), kind="stable")
    table = table.iloc[order]
    is_structural = (table["group"] == STRUCTURAL_GROUP).to_numpy()
    # parametric alternatives on top, the structural ones (other models) below a rule
    table = pd.concat([table[~is_structural], table[is_structural]]).iloc[::-1]
    n_structural = int(is_structural.sum())
    labels = [_tornado_label(row) for row in table.to_dict(orient="records")]
    base = result.table.iloc[0]
    panels = (
        ("delta_risk_mean", f"Δ mean 90-day risk (baseline {base['risk_mean']:.1%})", 100.0),
        ("delta_p_high_risk", f"Δ P(high risk) (baseline {base['p_high_risk']:.2f})", 1.0),
        (
            "delta_dose_mg",
            f"Δ recommended dose, mg (baseline {base['recommended_dose_mg']:g})",
            1.0,
        ),
    )
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.32 * len(table) + 1.6), sharey=True)
    colors = {
        "variant": "#4C72B0",
        "variability": "#DD8452",
        "censoring": "#55A868",
        "prior": "#8172B3",
        "threshold": "#C44E52",
        "target": "#937860",
        "population": "#DA8BC3",
        STRUCTURAL_GROUP: "#2F4F4F",
    }
    y = np.arange(len(table))
    hatches = ["//" if s == "unconverged" else None for s in table["status"]]
    for ax, (column, title, scale) in zip(axes, panels, strict=True):
        values = table[column].to_numpy(dtype=float) * scale
        bars = ax.barh(
            y, np.nan_to_num(values), color=[colors.get(g, "grey") for g in table["group"]]
        )
        for bar, hatch in zip(bars, hatches, strict=True):
            bar.set_hatch(hatch)
        if 0 < n_structural < len(table):
            ax.axhline(n_structural - 0.5, color="grey", lw=0.8, ls="--")
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_title(title, fontsize=9)
        if column == "delta_risk_mean":
            ax.set_xlabel("percentage points")
    axes[0].set_yticks(y, labels, fontsize=8)
    present = [g for g in colors if g in set(table["group"])]
    handles = [matplotlib.patches.Patch(color=colors[g], label=g) for g in present]
    axes[2].legend(handles=handles, fontsize=8, loc="lower right")
    fig.suptitle(f"Sensitivity of patient {result.patient_id}'s forecast", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _tornado_label(row: dict[str, Any]) -> str:
    """An alternative's label: neutral, or for another model whether it ran and its flags."""
    name = row["name"]
    if row["group"] == STRUCTURAL_GROUP:
        if row["missing_covariates"]:
            return f"{name} (not run: missing {row['missing_covariates']})"
        if row["status"] == "error":
            return f"{name} (not run: error)"
        marks = ["other model"]
        if "extrapolated outcome" in row["flags"]:
            marks.append("extrapolated outcome")
        if row["status"] != "ok":
            marks.append("UNCONVERGED")
        return f"{name} ({', '.join(marks)})"
    neutral = not (row["changes_log_density"] or row["changes_derived"])
    return f"{name} (neutral)" if neutral and row["group"] != "target" else name


def write_sensitivity(results: list[SensitivityResult], directory) -> list[str]:
    """Tornado figure (PNG) and table (CSV) per patient, and all results as JSON."""
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for result in results:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in result.patient_id)
        paths.append(tornado_figure(result, directory / f"tornado-{safe}.png"))
        path = directory / f"sensitivity-{safe}.csv"
        result.table.to_csv(path, index=False)
        paths.append(str(path))
    path = directory / "sensitivity.json"
    path.write_text(dumps_json([r.to_json() for r in results]))  # NaN -> null
    paths.append(str(path))
    return paths
