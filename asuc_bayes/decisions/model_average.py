"""Bayesian model averaging of one patient's forecast and dose over library models.

``forecast``/``optimize --model-average A,B,C``: each model's posterior of the patient
(:func:`asuc_bayes.decisions.library_dosing.library_posterior`, the ASUC outcome model attached,
extrapolated, to a model without one) and its marginal likelihood of the patient's
concentrations, ln p(y | m) = ln ∫ p(y | η) p(η) dη (:mod:`asuc_bayes.inference.marginal`:
trapezoid quadrature over the prior for two random effects, importance sampling with its MCSE
beyond). With equal prior weights the posterior model probabilities are
w_m = p(y | m) / Σ_k p(y | k) (:func:`asuc_bayes.inference.averaging.probabilities`); the
mapbayr-style AIC weights (:func:`~asuc_bayes.inference.averaging.aic_weights`, from the
MAP
fit) are reported beside them, for information.

The averaged forecast is the mixture Σ_m w_m p(risk | y, m): its S is computed from the models'
posterior draws resampled in proportion to the weights (seeded); its P(high risk) is
Σ_m w_m P_m(high risk). The averaged dose is chosen on the averaged curve:
mean risk(d) = Σ_m w_m mean_m(d) and P(risk ≤ target)(d) = Σ_m w_m P_m(risk ≤ target)(d)
(in trough mode P(trough ≥ target)(d) = Σ_m w_m P_m(trough ≥ target)(d)).

A model that cannot be applied to the patient (a covariate missing and not imputed, an
implausible covariate value) is excluded with a note naming the reason.

Examples
--------
>>> parse_model_list("niyigena2025, wojciechowski2017")
('niyigena2025', 'wojciechowski2017')
>>> parse_model_list("niyigena2025")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
asuc_bayes.decisions.model_average.ModelAverageError: --model-average: give at least two models...
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asuc_bayes.data.dataset import InputError, Patient
from asuc_bayes.decisions.dosing import DosingRequest, PlanOptions
from asuc_bayes.decisions.dosing.criteria import dose_choice, is_monotone, json_records
from asuc_bayes.decisions.dosing.dose import dose_json
from asuc_bayes.decisions.library_dosing import (
    LibraryPosterior,
    decision_for,
    library_posterior,
    plan_library_dosing,
    risk_curve,
    with_outcome,
)
from asuc_bayes.inference.averaging import aic_weights, probabilities
from asuc_bayes.inference.covariates import baseline_covariates
from asuc_bayes.inference.diagnostics import monte_carlo_errors
from asuc_bayes.inference.marginal import (
    QUADRATURE_MAX_DIM,
    WeightedPosterior,
    grid_quadrature,
    importance_sampling,
    prior_nodes,
)
from asuc_bayes.inference.result import finite_or_none, summary_statistics
from asuc_bayes.inference.risk_class import risk_class
from asuc_bayes.inference.sampler import SamplerOptions
from asuc_bayes.spec import MissingCovariateError, available_declarations, load_declaration

__all__ = [
    "AveragedDose",
    "AveragedModel",
    "ExcludedModel",
    "ModelAverage",
    "ModelAverageError",
    "ModelEvidence",
    "average_dose",
    "average_patient",
    "fit_model",
    "format_model_average",
    "mixture_draws",
    "model_evidence",
    "model_seeds",
    "own_choice",
    "own_curve",
    "parse_model_list",
]

OPTION = "--model-average"


class ModelAverageError(ValueError):
    """A model list or an averaging request that cannot be used (the message names the fix)."""


def parse_model_list(text: str) -> tuple[str, ...]:
    """The models of ``--model-average A,B,C``: at least two, distinct, each a library name
    (``asuc-bayes models``) or an existing ``.toml`` model file.

    Raises
    ------
    ModelAverageError
        Fewer than two models, an empty name, a duplicate, or an unknown model.
    """
    names = tuple(part.strip() for part in str(text).split(","))
    example = f"e.g. {OPTION} niyigena2025,wojciechowski2017"
    if any(not name for name in names):
        raise ModelAverageError(f"{OPTION}: an empty model name in {text!r} (fix: {example})")
    if len(names) < 2:
        raise ModelAverageError(
            f"{OPTION}: give at least two models separated by commas, got {text!r} (fix: "
            f"{example}; for one model use --model)"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ModelAverageError(
            f"{OPTION}: {', '.join(duplicates)} given more than once (fix: list each model once)"
        )
    library = available_declarations()
    unknown = [
        n for n in names if n not in library and not (n.endswith(".toml") and Path(n).is_file())
    ]
    if unknown:
        raise ModelAverageError(
            f"{OPTION}: unknown model {', '.join(unknown)} (fix: one of {', '.join(library)}, "
            "or a .toml model file; 'asuc-bayes models' lists them)"
        )
    return names


# -- one model ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelEvidence:
    """One model's posterior of the patient and its marginal likelihood of the data."""

    name: str
    posterior: LibraryPosterior
    #: ln p(y | model) (0 without concentrations)
    log_marginal: float
    #: "grid" (quadrature), "importance" or "prior" (no data)
    marginal_method: str
    #: Monte Carlo standard error of ``log_marginal`` (0 for quadrature)
    marginal_mcse: float
    #: ln p(y, η̂) at the MAP (the objective of likelihood/AIC weights)
    map_log_density: float
    n_eta: int
    #: Pareto k̂ of the importance weights (None for quadrature); above 0.7: unreliable
    pareto_k: float | None = None

    @property
    def has_data(self) -> bool:
        return self.posterior.problem.time_day.size > 0


@dataclass(frozen=True)
class ExcludedModel:
    """A model that cannot be applied to the patient, and why."""

    name: str
    reason: str


def model_evidence(posterior: LibraryPosterior, *, random_seed: int = 0) -> WeightedPosterior:
    """The :class:`~asuc_bayes.inference.marginal.WeightedPosterior` of the patient's data
    under the posterior's model, reusing its MAP: the prior without data, trapezoid
    quadrature up to :data:`~asuc_bayes.inference.marginal.QUADRATURE_MAX_DIM` random
    effects, importance sampling beyond (as
    :func:`asuc_bayes.inference.marginal.posterior`).
    """
    problem = posterior.problem
    mode = posterior.forecast.map
    if problem.time_day.size == 0:
        return prior_nodes(problem)
    if problem.n_eta <= QUADRATURE_MAX_DIM:
        return grid_quadrature(problem, mode=mode)
    return importance_sampling(problem, random_seed=random_seed, mode=mode)


def fit_model(
    name: str,
    patient: Patient,
    units: Mapping[str, str] | None = None,
    *,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
) -> ModelEvidence | ExcludedModel:
    """One model's :class:`ModelEvidence` for ``patient``, or :class:`ExcludedModel` when a
    covariate it needs is missing (or implausible)."""
    declaration = with_outcome(load_declaration(name))
    try:
        covariates = baseline_covariates(patient, declaration, units)
        posterior = library_posterior(
            declaration, patient, covariates, random_seed=random_seed, options=options
        )
    except MissingCovariateError as exc:
        # the reason is shown by the CLI and the report too: no API syntax in it
        return ExcludedModel(declaration.name, exc.problem)
    except InputError as exc:
        return ExcludedModel(declaration.name, str(exc))
    evidence = model_evidence(posterior, random_seed=random_seed)
    return ModelEvidence(
        name=declaration.name,
        posterior=posterior,
        log_marginal=float(evidence.log_marginal),
        marginal_method=evidence.method,
        pareto_k=evidence.pareto_k,
        marginal_mcse=float(evidence.mcse),
        map_log_density=float(posterior.forecast.map.log_density),
        n_eta=posterior.problem.n_eta,
    )


# -- weights and mixtures -------------------------------------------------------------------
def _weights(fits: Sequence[ModelEvidence]) -> tuple[np.ndarray, np.ndarray | None]:
    """(posterior model probabilities, AIC weights or None without data)."""
    weights = probabilities(np.array([[f.log_marginal for f in fits]]))[0]
    if not all(f.has_data for f in fits):
        return weights, None
    density = np.array([[f.map_log_density for f in fits]])
    return weights, aic_weights(density, np.array([f.n_eta for f in fits]))[0]


def mixture_draws(
    draws: Sequence[np.ndarray], weights: np.ndarray, n: int, *, random_seed: int = 0
) -> np.ndarray:
    """``n`` draws of the mixture Σ_m w_m p_m: the number from each model multinomial in the
    weights, each drawn uniformly (with replacement) from that model's draws (first axis).

    Examples
    --------
    >>> a, b = np.zeros(100), np.ones(100)
    >>> round(float(mixture_draws([a, b], np.array([0.25, 0.75]), 40_000, random_seed=1).mean()), 2)
    0.75
    """
    rng = np.random.default_rng(random_seed)
    counts = rng.multinomial(n, np.asarray(weights, dtype=float) / np.sum(weights))
    parts = [
        np.asarray(d)[rng.integers(0, len(d), size=c)]
        for d, c in zip(draws, counts, strict=True)
        if c
    ]
    return rng.permutation(np.concatenate(parts))


def _summary(values: np.ndarray, mcse: Mapping[str, float | None]) -> dict[str, Any]:
    return {**summary_statistics(values), "mcse": dict(mcse)}


def _model_mcse(risk: np.ndarray) -> dict[str, float | None]:
    """MCSE of the mean and the 2.5/50/97.5 % quantiles of draws ``(chain, draw)``."""
    errors = monte_carlo_errors(np.asarray(risk, dtype=float)[..., None])
    keys = ("q2.5", "q50", "q97.5")
    return {
        "mean": finite_or_none(errors.mean[0]),
        **{k: finite_or_none(errors.quantile[i, 0]) for i, k in enumerate(keys)},
    }


def _mixture_mcse(
    mixture: np.ndarray, weights: np.ndarray, model_mcse: Sequence[Mapping]
) -> dict[str, float | None]:
    """MCSE of the mixture's S: of the mean, √(Σ w_m² MCSE_m² + Var/n) (the models' Monte
    Carlo error, weights fixed, and the resampling's); of each quantile, √(Σ w_m² MCSE_m² +
    the resampling's i.i.d. quantile MCSE²) (an approximation: a model's quantile error stands
    for its error at the mixture's quantile)."""
    resampling = monte_carlo_errors(mixture[None, :, None], independent=True)
    out: dict[str, float | None] = {}
    for i, key in enumerate(("mean", "q2.5", "q50", "q97.5")):
        own = resampling.mean[0] if key == "mean" else resampling.quantile[i - 1, 0]
        parts = [m[key] for m in model_mcse]
        if any(p is None for p in parts):
            out[key] = None
            continue
        total = float(own) ** 2 + sum(w * w * p * p for w, p in zip(weights, parts, strict=True))
        out[key] = finite_or_none(math.sqrt(total))
    return out


# -- the averaged forecast ------------------------------------------------------------------
@dataclass(frozen=True)
class AveragedModel:
    """One model in the average: its evidence, weight, AIC weight, risk S and P(high)."""

    evidence: ModelEvidence
    weight: float
    aic_weight: float | None
    risk: dict[str, Any]
    p_high: float

    def to_json(self) -> dict[str, Any]:
        posterior = self.evidence.posterior
        return {
            "name": self.evidence.name,
            "weight": finite_or_none(self.weight),
            "aic_weight": None if self.aic_weight is None else finite_or_none(self.aic_weight),
            "log_marginal_likelihood": finite_or_none(self.evidence.log_marginal),
            "marginal_method": self.evidence.marginal_method,
            "marginal_mcse": finite_or_none(self.evidence.marginal_mcse),
            "marginal_pareto_k": None
            if self.evidence.pareto_k is None
            else finite_or_none(self.evidence.pareto_k),
            "status": posterior.forecast.status,
            "extrapolated": posterior.extrapolated,
            "risk": self.risk,
            "p_high": finite_or_none(self.p_high),
        }


@dataclass(frozen=True)
class AveragedDose:
    """The dose chosen on the averaged curve, beside each model's own choice.

    ``curve`` columns: ``dose_mg``, ``dose_mg_kg`` and, in risk mode, ``risk_mean``,
    ``p_high_risk``, ``p_meets_target``; in trough mode ``p_trough_above_target``.
    """

    mode: str
    request: DosingRequest
    curve: pd.DataFrame
    feasible: bool
    dose_mg: float
    weight_kg: float
    monotone: bool
    #: risk mode: S of the averaged risk at the dose (resampled mixture)
    risk: dict[str, Any] | None
    p_high: float | None
    #: risk mode: Σ w P_m(risk ≤ target); trough mode: Σ w P_m(trough ≥ target)
    p_meets_target: float
    #: name -> that model's own plan (JSON)
    per_model: dict[str, dict[str, Any]]
    trough_target_mg_l: float | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        request = self.request
        out: dict[str, Any] = {
            "mode": self.mode,
            "feasible": self.feasible,
            **dose_json(self.dose_mg, self.weight_kg, request),
            "min_mg_kg": request.min_mg_per_kg,
            "max_mg_kg": request.max_mg_per_kg,
            "probability": request.probability,
            "monotone": self.monotone,
            "curve": json_records(self.curve),
            "per_model": self.per_model,
            "notes": list(self.notes),
        }
        if self.mode == "risk":
            out |= {
                "target_risk": request.target_risk,
                "criterion": request.criterion,
                "risk_90d": self.risk,
                "p_high_risk": self.p_high,
                "p_meets_target": self.p_meets_target,
            }
        else:
            out |= {
                "trough_target_mg_l": self.trough_target_mg_l,
                "p_trough_above_target": self.p_meets_target,
            }
        return out


@dataclass(frozen=True)
class ModelAverage:
    """One patient's model-averaged forecast (and dose, for ``optimize``)."""

    patient_id: str
    models: tuple[AveragedModel, ...]
    excluded: tuple[ExcludedModel, ...]
    risk: dict[str, Any]
    p_high: float
    random_seed: int
    notes: tuple[str, ...] = ()
    dose: AveragedDose | None = None
    #: the resampled mixture of the 90-day risk draws
    risk_draws: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def weights(self) -> np.ndarray:
        return np.array([m.weight for m in self.models])

    @property
    def status(self) -> str:
        ok = all(m.evidence.posterior.forecast.status == "ok" for m in self.models)
        return "ok" if ok else "unconverged"

    def to_json(self) -> dict[str, Any]:
        average: dict[str, Any] = {
            "models": [m.to_json() for m in self.models],
            "excluded": [{"name": e.name, "reason": e.reason} for e in self.excluded],
            "prior_weights": "equal",
            "risk": self.risk,
            "p_high": finite_or_none(self.p_high),
            "risk_class": risk_class(self.p_high),
            "random_seed": self.random_seed,
            "notes": list(self.notes),
        }
        if self.dose is not None:
            average["dose"] = self.dose.to_json()
        return {"id": self.patient_id, "status": self.status, "model_average": average}


#: Draws of the resampled mixture (the size of one model's default posterior, 4 × 1000).
MIXTURE_DRAWS = 4000


def model_seeds(random_seed: int) -> tuple[int, int]:
    """The seeds of a patient's model average: (every model's posterior, the mixture and the
    averaged dose), derived from the patient's seed.

    Examples
    --------
    >>> model_seeds(1) == model_seeds(1) != model_seeds(2)
    True
    """
    first, second = np.random.SeedSequence(random_seed).generate_state(2)
    return int(first), int(second)


def average_patient(
    models: Sequence[str],
    patient: Patient,
    units: Mapping[str, str] | None = None,
    *,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
    request: DosingRequest | None = None,
    plan_options: PlanOptions | None = None,
) -> ModelAverage:
    """The model-averaged forecast of ``patient`` over ``models`` (names or model files).

    With a ``request`` (:class:`asuc_bayes.decisions.dosing.DosingRequest`), also the dose chosen
    on the
    averaged curve (:func:`average_dose`; trough mode when ``plan_options`` has a trough
    target).

    Raises
    ------
    ModelAverageError
        No model can be applied to the patient.
    asuc_bayes.decisions.dosing.DosingError
        A dosing request this patient cannot take.
    """
    seeds = model_seeds(random_seed)
    fits, excluded = [], []
    for name in models:
        fit = fit_model(name, patient, units, random_seed=int(seeds[0]), options=options)
        (excluded if isinstance(fit, ExcludedModel) else fits).append(fit)
    if not fits:
        reasons = "; ".join(f"{e.name}: {e.reason}" for e in excluded)
        raise ModelAverageError(
            f"patient {patient.id}: none of the models of {OPTION} can be applied ({reasons})"
        )
    notes = [f"{e.name} excluded: {e.reason}" for e in excluded]
    if len(fits) == 1:
        notes.append(f"only {fits[0].name} applies to this patient: it has weight 1")
    weights, aic = _weights(fits)
    if aic is None:
        notes.append("no concentrations: the weights are the prior's (equal); no AIC weights")
    entries, risks, model_mcse = [], [], []
    for i, fit in enumerate(fits):
        forecast = fit.posterior.forecast
        risk = np.asarray(forecast.draws.risk_90d, dtype=float)
        mcse = _model_mcse(risk)
        risks.append(risk.ravel())
        model_mcse.append(mcse)
        entries.append(
            AveragedModel(
                evidence=fit,
                weight=float(weights[i]),
                aic_weight=None if aic is None else float(aic[i]),
                risk=_summary(risk, mcse),
                p_high=float(forecast.p_high_risk),
            )
        )
        if forecast.status != "ok":
            notes.append(f"{fit.name}: the posterior did not pass the convergence gates")
        if fit.pareto_k is not None and fit.pareto_k > 0.7:
            notes.append(
                f"{fit.name}: the importance weights' Pareto k is {fit.pareto_k:.2f} (> 0.7): "
                "its marginal likelihood, and so its weight, is unreliable"
            )
        if fit.marginal_method == "importance" and fit.marginal_mcse > 0.1:
            notes.append(
                f"{fit.name}: the marginal likelihood's Monte Carlo error is "
                f"{fit.marginal_mcse:.2f} on the log scale: its weight is uncertain"
            )
    if any(fit.posterior.extrapolated for fit in fits):
        notes.append(
            "EXTRAPOLATED: the 90-day risk of "
            + ", ".join(f.name for f in fits if f.posterior.extrapolated)
            + " uses the ASUC outcome model (Niyigena 2025) on that model's ln(AUC_w2-4/CL)"
        )
    mixture = mixture_draws(risks, weights, MIXTURE_DRAWS, random_seed=int(seeds[1]))
    dose = None
    if request is not None:
        dose = average_dose(
            [f.posterior for f in fits],
            weights,
            request,
            plan_options,
            random_seed=int(seeds[1]),
        )
    return ModelAverage(
        patient_id=patient.id,
        models=tuple(entries),
        excluded=tuple(excluded),
        risk=_summary(mixture, _mixture_mcse(mixture, weights, model_mcse)),
        p_high=float(np.dot(weights, [e.p_high for e in entries])),
        random_seed=random_seed,
        notes=tuple(notes),
        dose=dose,
        risk_draws=mixture,
    )


# -- the averaged dose ----------------------------------------------------------------------
def average_dose(
    posteriors: Sequence[LibraryPosterior],
    weights: np.ndarray,
    request: DosingRequest,
    plan_options: PlanOptions | None = None,
    *,
    random_seed: int = 0,
) -> AveragedDose:
    """The smallest whole-vial dose meeting the criterion on the weight-averaged curve.

    Risk mode: mean risk(d) = Σ_m w_m mean_m(d) ≤ target (criterion ``mean``), or
    Σ_m w_m P_m(risk ≤ target)(d) ≥ probability (``probability``); the cap, infeasible, when
    no dose does. Trough mode (``plan_options.trough_target_mg_l``): Σ_m w_m P_m(trough ≥
    target)(d) ≥ probability.
    """
    weights = np.asarray(weights, dtype=float)
    plans = [plan_library_dosing(p, request, plan_options) for p in posteriors]
    per_model = {p.posterior.declaration.name: p.to_json() for p in plans}
    first = posteriors[0]
    weight_kg = float(first.patient.weight_kg)
    trough = plans[0].trough is not None
    if trough:
        grid = plans[0].trough.dose_table["dose_mg"].to_numpy()
        p_meets = _mix(weights, [p.trough.dose_table["p_trough_above_target"] for p in plans])
        meets = p_meets >= request.probability
        curve = pd.DataFrame(
            {"dose_mg": grid, "dose_mg_kg": grid / weight_kg, "p_trough_above_target": p_meets}
        )
        monotone = is_monotone(p_meets, increasing=True)
    else:
        curves = [p.recommendation.curve for p in plans]
        grid = curves[0]["dose_mg"].to_numpy()
        if any(not np.array_equal(c["dose_mg"], grid) for c in curves):  # the patient's grid
            raise ModelAverageError("the models' dose grids differ: cannot average the curves")
        mean_risk = _mix(weights, [c["risk_mean"] for c in curves])
        p_meets = _mix(weights, [c["p_meets_target"] for c in curves])
        curve = pd.DataFrame(
            {
                "dose_mg": grid,
                "dose_mg_kg": grid / weight_kg,
                "risk_mean": mean_risk,
                "p_high_risk": _mix(weights, [c["p_high_risk"] for c in curves]),
                "p_meets_target": p_meets,
            }
        )
        meets = (
            mean_risk <= request.target_risk
            if request.criterion == "mean"
            else p_meets >= request.probability
        )
        monotone = is_monotone(mean_risk, increasing=False) and is_monotone(
            p_meets, increasing=True
        )
    at, feasible = dose_choice(meets)
    notes = [] if monotone else ["the averaged curve is not monotone in the dose: check it"]
    if not feasible:
        notes.append(f"the target is not met at the cap ({grid[-1]:g} mg): the cap is reported")
    risk = p_high = None
    if not trough:
        columns, model_mcse = [], []
        for posterior in posteriors:
            decision = decision_for(posterior, request)
            _, risk_at = risk_curve(posterior, decision, grid[at : at + 1], request.dose_time_day)
            columns.append(risk_at[:, 0])
            model_mcse.append(_model_mcse(risk_at[:, 0].reshape(posterior.forecast.eta.shape[:2])))
        mixture = mixture_draws(columns, weights, MIXTURE_DRAWS, random_seed=random_seed)
        risk = _summary(mixture, _mixture_mcse(mixture, weights, model_mcse))
        p_high = float(curve["p_high_risk"].iloc[at])
    return AveragedDose(
        mode="trough" if trough else "risk",
        request=request,
        curve=curve,
        feasible=feasible,
        dose_mg=float(grid[at]),
        weight_kg=weight_kg,
        monotone=monotone,
        risk=risk,
        p_high=p_high,
        p_meets_target=float(p_meets[at]),
        per_model=per_model,
        trough_target_mg_l=None if plan_options is None else plan_options.trough_target_mg_l,
        notes=tuple(notes),
    )


def _mix(weights: np.ndarray, columns: Sequence[Any]) -> np.ndarray:
    return np.sum(weights[:, None] * np.stack([np.asarray(c, dtype=float) for c in columns]), 0)


# -- text -----------------------------------------------------------------------------------
def format_model_average(averages: Sequence[ModelAverage]) -> str:
    """One block per patient: each model's weight, AIC weight, ln p(y), risk and P(high);
    the averaged risk and P(high); the averaged dose when there is one."""
    lines: list[str] = []
    for average in averages:
        entry = average.to_json()["model_average"]
        lines += [
            f"patient {average.patient_id}: model average ({average.status.upper()})",
            f"  {'model':<20}{'weight':>8}{'AIC w':>8}{'ln p(y)':>10}  {'mean risk [95% CrI]':<26}"
            f"{'P(high)':>8}",
        ]
        for m in entry["models"]:
            aic = "-" if m["aic_weight"] is None else f"{m['aic_weight']:.3f}"
            flag = " *" if m["extrapolated"] else ""
            lines.append(
                f"  {m['name'] + flag:<20}{m['weight']:>8.3f}{aic:>8}"
                f"{m['log_marginal_likelihood']:>10.2f}  {_risk_text(m['risk']):<26}"
                f"{m['p_high']:>8.2f}"
            )
        lines.append(
            f"  {'AVERAGE':<36}{'':>10}  {_risk_text(entry['risk']):<26}{entry['p_high']:>8.2f}"
            f"   risk class: {entry['risk_class'].upper()}"
        )
        if average.dose is not None:
            lines += _dose_lines(average.dose)
        lines += [f"  note: {note}" for note in entry["notes"]]
        lines.append("  (* outcome model extrapolated from the ASUC model)")
        lines.append("")
    return "\n".join(lines).rstrip()


def _risk_text(risk: Mapping[str, Any]) -> str:
    return f"{risk['mean']:.1%} [{risk['q2.5']:.1%}, {risk['q97.5']:.1%}]"


def _dose_lines(dose: AveragedDose) -> list[str]:
    verdict = "RECOMMENDED" if dose.feasible else "TARGET NOT REACHABLE; at the cap"
    if dose.mode == "risk":
        goal = (
            f"mean risk <= {dose.request.target_risk:.0%}"
            if dose.request.criterion == "mean"
            else f"P(risk <= {dose.request.target_risk:.0%}) >= {dose.request.probability:.0%}"
        )
        detail = f"averaged risk {_risk_text(dose.risk)}, P(high) {dose.p_high:.2f}"
    else:
        goal = f"P(trough >= {dose.trough_target_mg_l:g} mg/L) >= {dose.request.probability:.0%}"
        detail = f"averaged P(trough >= target) {dose.p_meets_target:.2f}"
    own = ", ".join(f"{name} {own_choice(plan)[0]:g} mg" for name, plan in dose.per_model.items())
    return [
        f"  averaged dose ({goal}, day {dose.request.dose_time_day:g}): {verdict} "
        f"{dose.dose_mg:g} mg ({dose.dose_mg / dose.weight_kg:.1f} mg/kg): {detail}",
        f"  each model alone: {own}",
    ]


def own_choice(plan: Mapping[str, Any]) -> tuple[float, bool]:
    """(dose in mg, whether it reaches the target) that one model's own plan chooses
    (``plan``: an entry of :attr:`AveragedDose.per_model`; the cap when not reached)."""
    if plan["mode"] == "trough":
        chosen = plan["trough"]["for_interval"]
        return float(chosen["dose_mg"]), bool(chosen["feasible"])
    return float(plan["recommended"]["dose_mg"]), bool(plan["feasible"])


def own_curve(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dose curve rows of one model's own plan (risk mode: ``dose_mg``, ``risk_mean``,
    ``p_meets_target``, …; trough mode: ``dose_mg``, ``p_trough_above_target``, …)."""
    if plan["mode"] == "trough":
        return plan["trough"]["for_interval"]["curve"]
    return plan["curve"]
