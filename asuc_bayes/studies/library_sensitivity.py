"""Sensitivity analyses of one patient under a library model (``sensitivity --model NAME``).

The analyses of :mod:`asuc_bayes.studies.sensitivity` that apply to any declaration, each a full
posterior of the patient (MAP, then the independence sampler; gated):

- ``variant``: each variant the model file declares;
- ``variability``: Ω (every random effect's variance) and the residual error SDs scaled ×0.5
  and ×2;
- ``censoring``: censored samples by M3 (the model), discarded, or imputed (BLQ at LLOQ/2,
  ALQ at the ULOQ; :func:`asuc_bayes.studies.sensitivity.censoring_strategy`);
- ``prior``: the prior (the population distribution of η) and the likelihood power-scaled by
  0.5 and 2 (Kallioinen et al. 2024), each sampled exactly at its own mode (not reweighted);
- ``structural``: every other library model the patient's covariates allow
  (:mod:`asuc_bayes.studies.structural_sensitivity`), the default ASUC model among them.

Risk and P(high risk) come from the model's outcome model or the ASUC one attached (every row
then carries the flag ``extrapolated outcome``). Not applicable to a library model, and said in
the result's notes: the dose rows (the dose search runs under the default model only), the
population-uncertainty rows (a declaration gives no sampling distribution of its population
parameters) and ArviZ's ``psense`` diagnostic (the power-scaled posteriors are sampled instead).

Examples
--------
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> p = Patient("x", 70.0, 30.0, (Dose(0.0, 350.0, 1 / 12),), (Observation(7.0, 12.0),))
>>> [a.name for a in library_alternatives(load_declaration("wojciechowski2017"), p)][:3]
['omega_x0.5', 'omega_x2', 'residual_sd_x0.5']
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from asuc_bayes.data.dataset import Patient
from asuc_bayes.decisions.dosing import DosingRequest
from asuc_bayes.inference import (
    PatientProblem,
    SamplerOptions,
    derived_quantities,
    find_map,
    forecast_problem,
    independence_draws,
)
from asuc_bayes.inference.derived import Derived
from asuc_bayes.inference.map import single_threaded_blas
from asuc_bayes.spec import ModelDeclaration, load_declaration, with_outcome_from
from asuc_bayes.studies.sensitivity import (
    CENSORING_STRATEGIES,
    POWERS,
    THRESHOLD_GRID,
    SensitivityResult,
    censoring_strategy,
)
from asuc_bayes.studies.structural_sensitivity import structural_alternatives, structural_row

__all__ = [
    "LibraryAlternative",
    "alternative_changes",
    "library_alternatives",
    "run_library_sensitivity",
]

ASUC_OUTCOME_MODEL = "niyigena2025"
SCALES = (0.5, 2.0)
#: A power-scaled posterior that fails the gates is sampled once more, this many times longer.
RETRY_DRAWS_FACTOR = 4
NOT_APPLICABLE = (
    "library model: no dose rows (the dose search runs under the default model only), no "
    "population-uncertainty rows (the model file gives no sampling distribution of its "
    "population parameters), no psense diagnostic (the power-scaled posteriors are sampled "
    "instead)"
)


@dataclass(frozen=True)
class LibraryAlternative:
    """One alternative: a declaration, the patient's record and a power-scaling."""

    group: str
    name: str
    description: str
    declaration: ModelDeclaration
    patient: Patient
    prior_power: float = 1.0
    likelihood_power: float = 1.0


def _with_outcome(declaration: ModelDeclaration) -> ModelDeclaration:
    if declaration.outcome is not None:
        return declaration
    return with_outcome_from(declaration, load_declaration(ASUC_OUTCOME_MODEL))


def scaled_omega(declaration: ModelDeclaration, factor: float) -> ModelDeclaration:
    """Every entry of Ω (and each random effect's variance) times ``factor``.

    >>> d = scaled_omega(load_declaration("wojciechowski2017"), 2.0)
    >>> float(d.random_effects.matrix[0, 0])
    0.213858
    """
    effects = declaration.random_effects
    omega = tuple(tuple(factor * x for x in row) for row in effects.omega)
    scaled = tuple(
        dataclasses.replace(
            e, variance=dataclasses.replace(e.variance, estimate=factor * e.variance.estimate)
        )
        for e in effects.effects
    )
    return dataclasses.replace(
        declaration,
        random_effects=dataclasses.replace(effects, omega=omega, effects=scaled),
    )


def scaled_residual(declaration: ModelDeclaration, factor: float) -> ModelDeclaration:
    """Every residual error SD times ``factor``."""
    residual = declaration.residual
    sigma = tuple(
        (name, dataclasses.replace(value, estimate=factor * value.estimate))
        for name, value in residual.sigma
    )
    return dataclasses.replace(declaration, residual=dataclasses.replace(residual, sigma=sigma))


def library_alternatives(
    declaration: ModelDeclaration, patient: Patient
) -> list[LibraryAlternative]:
    """The alternatives of the module docstring (the structural ones aside)."""
    out = []
    for factor in SCALES:
        out.append(
            LibraryAlternative(
                "variability",
                f"omega_x{factor:g}",
                f"Omega x{factor:g} (IIV SDs x{math.sqrt(factor):.2f})",
                scaled_omega(declaration, factor),
                patient,
            )
        )
    for factor in SCALES:
        out.append(
            LibraryAlternative(
                "variability",
                f"residual_sd_x{factor:g}",
                f"residual error SD x{factor:g}",
                scaled_residual(declaration, factor),
                patient,
            )
        )
    for strategy in CENSORING_STRATEGIES[1:]:
        out.append(
            LibraryAlternative(
                "censoring",
                f"censoring_{strategy}",
                f"censored samples {strategy}d" if strategy != "impute" else "censored imputed",
                declaration,
                censoring_strategy(patient, strategy),
            )
        )
    for power in POWERS:
        out.append(
            LibraryAlternative(
                "prior", f"prior_power_{power:g}", f"prior^{power:g}", declaration, patient, power
            )
        )
    for power in POWERS:
        out.append(
            LibraryAlternative(
                "prior",
                f"likelihood_power_{power:g}",
                f"likelihood^{power:g}",
                declaration,
                patient,
                1.0,
                power,
            )
        )
    for name, description in declaration.available_variants:
        if name in declaration.variants or not declaration.path:
            continue
        variant = load_declaration(declaration.path, variants=(*declaration.variants, name))
        out.append(LibraryAlternative("variant", name, description, variant, patient))
    return out


@dataclass(frozen=True)
class _Posterior:
    draws: Derived
    map_point: Derived
    status: str
    problem: PatientProblem


def _posterior(
    alternative: LibraryAlternative,
    covariates: Mapping[str, Any],
    impute: Any,
    random_seed: int,
    options: SamplerOptions,
) -> _Posterior:
    decl = _with_outcome(alternative.declaration)
    problem = PatientProblem.from_patient(decl, alternative.patient, covariates, impute=impute)
    a, b = alternative.prior_power, alternative.likelihood_power
    if a == 1.0 and b == 1.0:
        forecast = forecast_problem(
            problem, alternative.patient.id, random_seed=random_seed, options=options
        )
        map_point = derived_quantities(problem, forecast.map.eta[None, :])
        return _Posterior(forecast.draws, map_point, forecast.status, problem)

    def scaled(eta: np.ndarray) -> np.ndarray:
        return a * problem.log_prior(eta) + b * problem.log_likelihood(eta)

    omega = problem.omega / a  # the scaled prior's covariance: a better search scale
    with single_threaded_blas():
        mode = find_map(scaled, omega)
        eta, info = independence_draws(
            scaled, mode, omega, options=options, random_seed=random_seed
        )
        if not info["passed"]:  # one longer run (there is no NUTS model of a scaled density)
            longer = dataclasses.replace(options, draws=RETRY_DRAWS_FACTOR * options.draws)
            eta, info = independence_draws(
                scaled, mode, omega, options=longer, random_seed=random_seed + 1
            )
    status = "ok" if info["passed"] else "unconverged"
    return _Posterior(
        derived_quantities(problem, eta),
        derived_quantities(problem, mode.eta[None, :]),
        status,
        problem,
    )


def _probe(
    problem: PatientProblem, a: float, b: float, eta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    density = a * problem.log_prior(eta) + b * problem.log_likelihood(eta)
    return np.asarray(density, dtype=float), derived_quantities(problem, eta).ln_auc_cl


def alternative_changes(
    base: PatientProblem,
    alternative: LibraryAlternative,
    covariates: Mapping[str, Any],
    impute: Any = None,
) -> tuple[bool, bool]:
    """Whether ``alternative`` changes the log posterior and the map from η to ln(AUC/CL)
    of the baseline ``base`` (at 8 prior draws of η); neither: it is neutral (the baseline)."""
    decl = _with_outcome(alternative.declaration)
    problem = PatientProblem.from_patient(decl, alternative.patient, covariates, impute=impute)
    eta = np.random.default_rng(0).multivariate_normal(np.zeros(base.n_eta), base.omega, size=8)
    d0, x0 = _probe(base, 1.0, 1.0, eta)
    d1, x1 = _probe(problem, alternative.prior_power, alternative.likelihood_power, eta)
    return (not np.allclose(d0, d1, rtol=1e-12, atol=1e-12)), (
        not np.allclose(x0, x1, rtol=1e-12, atol=1e-12)
    )


def _row(alternative: LibraryAlternative, post: _Posterior, changes, extrapolated: bool):
    draws = post.draws
    ln = np.asarray(draws.ln_auc_cl, dtype=float).ravel()
    risk = np.asarray(draws.risk_90d, dtype=float).ravel()
    threshold = post.problem.declaration.outcome.high_risk_threshold
    q = np.quantile(ln, [0.025, 0.5, 0.975])
    flags = ["extrapolated outcome"] if extrapolated else []
    if post.status != "ok":
        flags.append("UNCONVERGED")
    return {
        "group": alternative.group,
        "name": alternative.name,
        "description": alternative.description,
        "risk_mean": float(risk.mean()),
        "risk_q2.5": float(np.quantile(risk, 0.025)),
        "risk_q97.5": float(np.quantile(risk, 0.975)),
        "p_high_risk": float(np.mean(ln < threshold)),
        "ln_auc_cl_q50": float(q[1]),
        "ln_auc_cl_q2.5": float(q[0]),
        "ln_auc_cl_q97.5": float(q[2]),
        "map_risk": float(np.asarray(post.map_point.risk_90d).ravel()[0]),
        "recommended_dose_mg": math.nan,
        "feasible": None,
        "status": post.status,
        "changes_log_density": bool(changes[0]),
        "changes_derived": bool(changes[1]),
        "structure": alternative.declaration.structure,
        "missing_covariates": "",
        "flags": "; ".join(flags),
    }


def run_library_sensitivity(
    declaration: ModelDeclaration,
    patient: Patient,
    covariates: Mapping[str, Any],
    *,
    random_seed: int = 0,
    structural: bool = True,
    impute: str | None = None,
    covariate_units: Mapping[str, str] | None = None,
    options: SamplerOptions | None = None,
) -> SensitivityResult:
    """The baseline and every alternative of the module docstring for one patient.

    Parameters
    ----------
    declaration
        The library model.
    patient, covariates
        The patient and its covariates other than WT and CRP (name -> ``(value, unit)``).
    structural, impute, covariate_units
        The structural rows, as :func:`asuc_bayes.studies.sensitivity.run_sensitivity`.
    options
        Chains and draws of every posterior (default 4 × 1000).

    Returns
    -------
    SensitivityResult
        ``table`` rows with the columns of the default analysis (dose columns empty),
        ``thresholds`` (P(high risk) over :data:`~asuc_bayes.studies.sensitivity.THRESHOLD_GRID`),
        no
        ``targets``, no ``power_scaling``, and ``notes``.
    """
    options = options or SamplerOptions()
    extrapolated = declaration.outcome is None
    base_alt = LibraryAlternative(
        "baseline", "baseline", "the model as specified", declaration, patient
    )
    impute_map = impute
    base = _posterior(base_alt, covariates, impute_map, random_seed, options)
    rows = [_row(base_alt, base, (False, False), extrapolated)]
    notes = [NOT_APPLICABLE]
    for alternative in library_alternatives(declaration, patient):
        changes = alternative_changes(base.problem, alternative, covariates, impute_map)
        if not any(changes):
            post = base
            notes.append(f"{alternative.name}: neutral for this patient (same posterior)")
        else:
            post = _posterior(alternative, covariates, impute_map, random_seed, options)
        rows.append(_row(alternative, post, changes, extrapolated))
    if structural:
        library = structural_alternatives(
            patient,
            exclude_path=declaration.path,
            impute=impute,
            units=covariate_units,
            random_seed=random_seed,
            options=options,
        )
        rows += [structural_row(a) for a in library]
    if extrapolated:
        notes.append(
            f"risk and P(high risk) from the {ASUC_OUTCOME_MODEL} outcome model, EXTRAPOLATED "
            f"to {declaration.name}"
        )
    unconverged = [r["name"] for r in rows if r["status"] == "unconverged"]
    if unconverged:
        notes.append(f"UNCONVERGED: {', '.join(unconverged)} (rerun with more draws)")
    table = pd.DataFrame(rows)
    first = table.iloc[0]
    table["delta_risk_mean"] = table["risk_mean"] - first["risk_mean"]
    table["delta_p_high_risk"] = table["p_high_risk"] - first["p_high_risk"]
    table["delta_dose_mg"] = math.nan
    ln = np.asarray(base.draws.ln_auc_cl).ravel()
    thresholds = pd.DataFrame(
        {
            "threshold": THRESHOLD_GRID,
            "p_high_risk": [float(np.mean(ln < t)) for t in THRESHOLD_GRID],
        }
    )
    return SensitivityResult(
        patient_id=patient.id,
        request=DosingRequest(),
        table=table,
        thresholds=thresholds,
        targets=pd.DataFrame(
            columns=["target_risk", "recommended_dose_mg", "feasible", "risk_mean"]
        ),
        power_scaling=None,
        notes=tuple(notes),
    )
