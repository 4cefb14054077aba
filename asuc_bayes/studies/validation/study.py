"""External validation of library models on a cohort, without refitting them.

:func:`validate_patient` evaluates one patient under every model (a function of one patient,
for the batch engine); :func:`summarise` pools patients into a :class:`ValidationResult`;
:func:`validate_cohort` does both. Per model: a-priori and leave-future-out Bayesian / MAP
forecast metrics (:mod:`.metrics`, :mod:`.leave_future_out`), NPDE and their tests
(:mod:`.npde`), and per patient the model weights of :mod:`.averaging` from the marginal
likelihoods of :mod:`.marginal`.

The model-averaged predictor is scored with the same metrics: its forecasts (a priori, full
posterior and MAP) mix the models' with the weights p(m | y_<k) (:func:`average_forecasts`);
its NPDE are against the mixture of the models' prior predictives with the prior model weights
(:func:`~asuc_bayes.studies.validation.npde.mixture_npde`, per patient in :func:`validate_patient`);
its outcome mixes each patient's models with their posterior probabilities given all the
patient's concentrations (:func:`average_outcomes`).

Patients are independent: :func:`validate_cohort` maps :func:`validate_patient` over an
:class:`~asuc_bayes.inference.engine.Engine` (this process, local worker processes or a Dask
cluster),
each patient with the seed :func:`validation_seed` derives from the run's seed and its ID, so
that neither the cohort's order nor the engine changes a patient's results.

A patient for whom some model cannot be evaluated (a missing covariate, ...) is left out of
every model's summary and listed in ``skipped`` with the reason, so that all the models are
compared on the same patients.

Examples
--------
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> p = Patient("p1", 70.0, 30.0, (Dose(0.0, 700.0, 1 / 12),),
...             (Observation(2.0, 40.0), Observation(6.0, 20.0), Observation(10.0, 9.0)))
>>> result = validate_cohort([p], ["niyigena2025"], random_seed=1)
>>> result.n_subjects, result.n_concentrations, result.to_json()["models"][0]["mean_weight"]
(1, 3, 1.0)
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.special

from asuc_bayes.data.dataset import MEASURED, Patient
from asuc_bayes.inference.averaging import aic_weights, probabilities, stacking_weights
from asuc_bayes.inference.engine import Engine
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.spec import ModelDeclaration, load_declaration
from asuc_bayes.studies.validation.leave_future_out import (
    Forecasts,
    LeaveFutureOut,
    leave_future_out,
)
from asuc_bayes.studies.validation.metrics import PointMetrics, coverage, point_metrics
from asuc_bayes.studies.validation.npde import (
    NpdeTests,
    mixture_npde,
    npde_and_simulations,
    npde_tests,
)
from asuc_bayes.studies.validation.outcome import (
    OutcomeMetrics,
    PatientOutcome,
    average_outcome,
    outcome_metrics,
    patient_outcome,
)

__all__ = [
    "VPC_REPLICATES",
    "ForecastSummary",
    "ModelFit",
    "ModelSummary",
    "PatientValidation",
    "StageSeconds",
    "ValidationResult",
    "average_forecasts",
    "average_outcomes",
    "summarise",
    "validate_cohort",
    "validate_patient",
    "validation_seed",
]

#: Prior-predictive replicates of each patient's records kept for the VPC figures (the first
#: of the NPDE simulations).
VPC_REPLICATES = 200
#: The name of the model-averaged predictor in the JSON and the report.
AVERAGE_NAME = "model average"

Covariates = Callable[[Patient], Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None


@dataclass(frozen=True)
class StageSeconds:
    """Wall time of the stages of one patient under one model (seconds)."""

    #: problem build (covariates, doses, the declaration's structure)
    build: float = 0.0
    #: a-priori and leave-future-out forecasts, with the full posterior and its evidence
    forecasts: float = 0.0
    #: NPDE (and the VPC replicates: the same simulations)
    npde: float = 0.0
    #: exposure and risk of the outcome model
    outcome: float = 0.0


@dataclass(frozen=True)
class ModelFit:
    """One patient under one model: forecasts, npde, evidence and MAP objective."""

    model: str
    n_eta: int
    forecasts: LeaveFutureOut
    npde: np.ndarray
    log_marginal: float
    log_marginal_mcse: float
    log_marginal_method: str
    ess: float
    map_log_density: float
    seconds: float
    #: Pareto k̂ of the importance weights of the evidence (None: quadrature)
    pareto_k: float | None = None
    #: posterior exposure/risk and label, for a patient with one colectomy record
    outcome: PatientOutcome | None = None
    #: prior-predictive replicates of the records (VPC_REPLICATES, n_records), in time order
    simulated_mg_l: np.ndarray | None = None
    stage_seconds: StageSeconds = StageSeconds()


@dataclass(frozen=True)
class PatientValidation:
    """One patient under every model (``fits`` in the models' order), or why it was skipped."""

    patient_id: str
    fits: tuple[ModelFit, ...]
    error: str | None = None
    #: npde of the records (in time order) under the model-averaged prior predictive
    #: (:func:`~asuc_bayes.studies.validation.npde.mixture_npde`, the prior model weights)
    average_npde: np.ndarray | None = None


def _declaration(model: ModelDeclaration | str) -> ModelDeclaration:
    return load_declaration(model) if isinstance(model, str) else model


def _covariates(covariates_of: Covariates, patient: Patient) -> Mapping[str, Any]:
    if covariates_of is None:
        return {}
    if callable(covariates_of):
        return covariates_of(patient)
    return covariates_of.get(patient.id, {})


def _fit(
    problem: PatientProblem,
    random_seed: int,
    patient: Patient | None = None,
    build_seconds: float = 0.0,
) -> ModelFit:
    start = time.perf_counter()
    lfo = leave_future_out(problem, random_seed=random_seed)
    after_forecasts = time.perf_counter()
    order = np.argsort(problem.time_day, kind="stable")
    npde, simulated = npde_and_simulations(problem, random_seed=random_seed)
    npde, simulated = npde[order], simulated[:VPC_REPLICATES, order]
    after_npde = time.perf_counter()
    full = lfo.full
    outcome = None
    if patient is not None and len(patient.events) == 1:
        outcome = patient_outcome(problem, full, patient)
    end = time.perf_counter()
    return ModelFit(
        model=problem.declaration.label,
        n_eta=problem.n_eta,
        forecasts=lfo,
        npde=npde,
        log_marginal=full.log_marginal,
        log_marginal_mcse=full.mcse,
        log_marginal_method=full.method,
        ess=full.ess,
        map_log_density=float("nan") if full.map is None else full.map.log_density,
        seconds=end - start + build_seconds,
        pareto_k=full.pareto_k,
        outcome=outcome,
        simulated_mg_l=simulated,
        stage_seconds=StageSeconds(
            build=build_seconds,
            forecasts=after_forecasts - start,
            npde=after_npde - after_forecasts,
            outcome=end - after_npde,
        ),
    )


def validate_patient(
    patient: Patient,
    models: Sequence[ModelDeclaration | str],
    covariates: Mapping[str, Any] | None = None,
    *,
    random_seed: int = 0,
    prior_weights: Sequence[float] | None = None,
) -> PatientValidation:
    """Evaluate one patient under every model (see the module docstring).

    ``covariates``: what the dataset lacks (name -> value or ``(value, unit)``), as for
    :meth:`PatientProblem.from_patient`. ``prior_weights``: the prior model probabilities of
    the model-averaged prior predictive whose npde are ``average_npde`` (default: equal).
    Errors of the patient's data or covariates are returned in ``error``, never raised.
    """
    fits, problems = [], []
    try:
        for model in models:
            start = time.perf_counter()
            problem = PatientProblem.from_patient(_declaration(model), patient, covariates)
            fits.append(_fit(problem, random_seed, patient, time.perf_counter() - start))
            problems.append(problem)
    except ValueError as error:  # MissingCovariateError, bad records
        return PatientValidation(patient.id, (), f"{type(error).__name__}: {error}")
    average_npde = _average_npde(problems, fits, prior_weights, random_seed)
    return PatientValidation(patient.id, tuple(fits), None, average_npde)


def _average_npde(
    problems: list[PatientProblem],
    fits: list[ModelFit],
    prior_weights: Sequence[float] | None,
    random_seed: int,
) -> np.ndarray:
    """The npde under the model-averaged prior predictive, in time order (as ``fits``')."""
    if len(problems) == 1:
        return fits[0].npde
    order = np.argsort(problems[0].time_day, kind="stable")
    return mixture_npde(problems, prior_weights, random_seed=random_seed)[order]


@dataclass(frozen=True)
class ForecastSummary:
    """Pooled forecast metrics: point metrics of measured records and interval coverages."""

    n: int
    n_censored: int
    point: PointMetrics | None
    coverage_80: float | None
    coverage_90: float | None


@dataclass(frozen=True)
class ModelSummary:
    """One model over the cohort."""

    name: str
    a_priori: ForecastSummary
    bayesian: ForecastSummary
    map: ForecastSummary
    npde: NpdeTests | None
    #: None without cases and controls (colectomy records: :mod:`.outcome`)
    outcome: OutcomeMetrics | None
    outcome_extrapolated: bool
    mean_weight: float
    mean_likelihood_weight: float
    mean_aic_weight: float
    stacking_weight: float
    log_marginal_total: float
    max_log_marginal_mcse: float
    #: the smallest importance-sampling ESS (None: every evidence by quadrature)
    min_importance_ess: float | None
    #: the largest Pareto k̂ of the importance weights (None: every evidence by quadrature)
    max_pareto_k: float | None
    mean_seconds_per_patient: float


@dataclass(frozen=True)
class ValidationResult:
    """The validation of several models on one cohort (``to_json`` for the CLI)."""

    n_subjects: int
    n_concentrations: int
    models: tuple[ModelSummary, ...]
    #: per patient (rows) and model (columns): posterior model probabilities
    weights: np.ndarray
    #: the model-averaged forecasts (:func:`average_forecasts`)
    average_a_priori: ForecastSummary | None
    average_bayesian: ForecastSummary | None
    patients: tuple[PatientValidation, ...]
    skipped: tuple[tuple[str, str], ...]
    #: the model-averaged MAP + Laplace forecasts (:func:`average_forecasts`)
    average_map: ForecastSummary | None = None
    #: NPDE tests of the model-averaged prior predictive (``PatientValidation.average_npde``)
    average_npde: NpdeTests | None = None
    #: the outcome of the model-averaged predictor (:func:`average_outcomes`)
    average_outcome: OutcomeMetrics | None = None
    average_outcome_extrapolated: bool = False
    #: per evaluated patient (in ``patients``' order, skipped ones left out): the averaged
    #: outcome (None: no single colectomy record)
    average_patient_outcomes: tuple[PatientOutcome | None, ...] = ()
    #: the prior model probabilities (None: equal)
    prior_weights: tuple[float, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (relative errors as fractions, ``None`` for what is undefined)."""
        return {
            "n_subjects": self.n_subjects,
            "n_concentrations": self.n_concentrations,
            "models": [_model_json(m) for m in self.models],
            "average": {
                "name": AVERAGE_NAME,
                "method": "posterior model probability ("
                + ("equal prior weights" if self.prior_weights is None else "given prior weights")
                + ")",
                "a_priori": None
                if self.average_a_priori is None
                else _forecast_json(self.average_a_priori),
                "bayesian": _average_bayesian_json(self.average_bayesian, self.average_map),
                "npde": _npde_json(self.average_npde),
                "outcome": _outcome_metrics_json(
                    self.average_outcome, self.average_outcome_extrapolated
                ),
                # the average has no weight of its own: null (README, "validate")
                "mean_weight": None,
                "posterior_probability": {m.name: _num(m.mean_weight) for m in self.models},
                "likelihood": {m.name: _num(m.mean_likelihood_weight) for m in self.models},
                "aic": {m.name: _num(m.mean_aic_weight) for m in self.models},
                "stacking": {m.name: _num(m.stacking_weight) for m in self.models},
            },
            "skipped": [{"id": i, "reason": r} for i, r in self.skipped],
        }


def _num(x: Any) -> float | int | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _forecast_json(summary: ForecastSummary, prefix: str = "") -> dict[str, Any]:
    point = summary.point
    out: dict[str, Any] = {}
    for field in ("mpe", "rmse", "rmse_log", "within_20", "within_30"):
        out[prefix + field] = None if point is None else _num(getattr(point, field))
    out[prefix + "coverage_80"] = _num(summary.coverage_80)
    out[prefix + "coverage_90"] = _num(summary.coverage_90)
    out[prefix + "n"] = summary.n
    out[prefix + "n_censored"] = summary.n_censored
    return out


def _average_bayesian_json(
    bayesian: ForecastSummary | None, map_: ForecastSummary | None
) -> dict[str, Any] | None:
    if bayesian is None:
        return None
    return {**_forecast_json(bayesian), **({} if map_ is None else _forecast_json(map_, "map_"))}


def _outcome_metrics_json(
    outcome: OutcomeMetrics | None, extrapolated: bool
) -> dict[str, Any] | None:
    if outcome is None:
        return None
    out = {k: v if isinstance(v, int) else _num(v) for k, v in vars(outcome).items()}
    out["extrapolated"] = extrapolated
    return out


def _npde_json(tests: NpdeTests | None) -> dict[str, Any] | None:
    if tests is None:
        return None
    npde: dict[str, Any] = {
        k: _num(getattr(tests, k))
        for k in ("mean", "variance", "mean_p", "variance_p", "normality_p", "p_value")
    }
    npde["n"] = tests.n
    return npde


def _model_json(m: ModelSummary) -> dict[str, Any]:
    return {
        "name": m.name,
        "a_priori": _forecast_json(m.a_priori),
        "bayesian": {**_forecast_json(m.bayesian), **_forecast_json(m.map, "map_")},
        "npde": _npde_json(m.npde),
        "outcome": _outcome_metrics_json(m.outcome, m.outcome_extrapolated),
        "mean_weight": _num(m.mean_weight),
        "log_marginal_total": _num(m.log_marginal_total),
        "max_log_marginal_mcse": _num(m.max_log_marginal_mcse),
        "min_importance_ess": _num(m.min_importance_ess),
        "max_pareto_k": _num(m.max_pareto_k),
        "mean_seconds_per_patient": _num(m.mean_seconds_per_patient),
    }


def _pooled(
    lfos: list[LeaveFutureOut], get: Callable[[LeaveFutureOut], np.ndarray], skip_first: bool
) -> np.ndarray:
    parts = [get(f)[~f.first] if skip_first else get(f) for f in lfos]
    return np.concatenate(parts) if parts else np.zeros(0)


def _summary(lfos: list[LeaveFutureOut], which: str, skip_first: bool) -> ForecastSummary:
    def forecasts(f: LeaveFutureOut) -> Forecasts:
        return getattr(f, which)

    censoring = _pooled(lfos, lambda f: f.censoring, skip_first)
    measured = censoring == MEASURED
    observed = _pooled(lfos, lambda f: f.observed_mg_l, skip_first)
    point = _pooled(lfos, lambda f: forecasts(f).point_mg_l, skip_first)
    pit = _pooled(lfos, lambda f: forecasts(f).pit, skip_first)
    p_censored = _pooled(lfos, lambda f: forecasts(f).p_censored, skip_first)
    return ForecastSummary(
        n=int(censoring.size),
        n_censored=int((~measured).sum()),
        point=point_metrics(observed[measured], point[measured]),
        coverage_80=coverage(pit, p_censored, censoring, 0.80),
        coverage_90=coverage(pit, p_censored, censoring, 0.90),
    )


def _outcome(done: list[PatientValidation], m: int) -> OutcomeMetrics | None:
    rows = [p.fits[m].outcome for p in done]
    return _outcome_of([r for r in rows if r is not None and r.label is not None])


def _outcome_of(rows: list[PatientOutcome]) -> OutcomeMetrics | None:
    if not rows:
        return None
    return outcome_metrics(
        np.array([r.ln_auc_cl for r in rows]),
        np.array([r.risk for r in rows]),
        np.array([r.label for r in rows]),
        rows[0].threshold,
    )


def average_forecasts(patient: PatientValidation, prior: np.ndarray | None) -> LeaveFutureOut:
    """The Bayesian-model-averaged forecasts of one patient's records.

    Record k is forecast by the mixture of the models' forecasts with the weights
    p(m | y_<k) ∝ π_m p_m(y_<k) (the prior π for the first record, and a priori): the PIT,
    probability of a censored region and point prediction (mean of f) are the weighted sums,
    the predictive density the weighted mixture. The MAP forecasts are mixed alike, with the
    same weights p(m | y_<k) (the full posterior's evidence): the mixture of the models'
    MAP + Laplace predictives, its point prediction Σ_m p(m | y_<k) f_m(η̂_m).
    """
    fits = patient.fits
    lfo0 = fits[0].forecasts
    evidence = np.stack([f.forecasts.prefix_log_marginal for f in fits], axis=1)
    bayes_w = probabilities(evidence, prior)  # (n_records, n_models)
    prior_w = probabilities(np.zeros_like(evidence), prior)

    def mix(which: str, w: np.ndarray) -> Forecasts:
        parts = [getattr(f.forecasts, which) for f in fits]

        def weighted(field: str) -> np.ndarray:
            return np.sum(w * np.stack([getattr(x, field) for x in parts], axis=1), axis=1)

        lpd = np.stack([x.log_density for x in parts], axis=1)
        log_density = scipy.special.logsumexp(lpd + np.log(np.maximum(w, 1e-300)), axis=1)
        return Forecasts(
            weighted("point_mg_l"), weighted("pit"), weighted("p_censored"), log_density
        )

    return dataclasses.replace(
        lfo0,
        a_priori=mix("a_priori", prior_w),
        bayesian=mix("bayesian", bayes_w),
        map=mix("map", bayes_w),
    )


def _min_ess(done: list[PatientValidation], m: int) -> float | None:
    values = [p.fits[m].ess for p in done if p.fits[m].log_marginal_method == "importance"]
    return min(values) if values else None


def summarise(
    patients: Sequence[PatientValidation], prior_weights: Sequence[float] | None = None
) -> ValidationResult:
    """Pool per-patient validations (all with the same models) into a :class:`ValidationResult`."""
    done = [p for p in patients if p.error is None and p.fits]
    skipped = tuple(
        (p.patient_id, p.error or "no model evaluated") for p in patients if p not in done
    )
    if not done:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise ValueError(f"validation: no patient could be evaluated{first}")
    names = [f.model for f in done[0].fits]
    log_marginal = np.array([[f.log_marginal for f in p.fits] for p in done])
    map_density = np.array([[f.map_log_density for f in p.fits] for p in done])
    n_eta = np.array([f.n_eta for f in done[0].fits])
    with_data = np.array([np.isfinite(row).all() for row in map_density])
    posterior = probabilities(
        log_marginal, None if prior_weights is None else np.array(prior_weights)
    )
    likelihood = probabilities(map_density[with_data]) if with_data.any() else posterior
    aic = aic_weights(map_density[with_data], n_eta) if with_data.any() else posterior
    lpd = np.concatenate(
        [np.stack([f.forecasts.bayesian.log_density for f in p.fits], axis=1) for p in done]
    )
    stacking = stacking_weights(lpd)
    summaries = []
    for m, name in enumerate(names):
        lfos = [p.fits[m].forecasts for p in done]
        npde = np.concatenate([p.fits[m].npde for p in done])
        summaries.append(
            ModelSummary(
                name=name,
                a_priori=_summary(lfos, "a_priori", skip_first=False),
                bayesian=_summary(lfos, "bayesian", skip_first=True),
                map=_summary(lfos, "map", skip_first=True),
                npde=npde_tests(npde),
                outcome=_outcome(done, m),
                outcome_extrapolated=any(
                    p.fits[m].outcome is not None and p.fits[m].outcome.extrapolated for p in done
                ),
                mean_weight=float(posterior[:, m].mean()),
                mean_likelihood_weight=float(likelihood[:, m].mean()),
                mean_aic_weight=float(aic[:, m].mean()),
                stacking_weight=float(stacking[m]),
                log_marginal_total=float(log_marginal[:, m].sum()),
                max_log_marginal_mcse=float(max(p.fits[m].log_marginal_mcse for p in done)),
                min_importance_ess=_min_ess(done, m),
                max_pareto_k=max(
                    (p.fits[m].pareto_k for p in done if p.fits[m].pareto_k is not None),
                    default=None,
                ),
                mean_seconds_per_patient=float(np.mean([p.fits[m].seconds for p in done])),
            )
        )
    prior = None if prior_weights is None else np.array(prior_weights, dtype=float)
    averaged = [average_forecasts(p, prior) for p in done]
    patient_outcomes = average_outcomes(done, posterior)
    rows = [r for r in patient_outcomes if r is not None and r.label is not None]
    return ValidationResult(
        average_a_priori=_summary(averaged, "a_priori", skip_first=False),
        average_bayesian=_summary(averaged, "bayesian", skip_first=True),
        average_map=_summary(averaged, "map", skip_first=True),
        average_npde=_average_npde_tests(done, summaries),
        average_outcome=_outcome_of(rows),
        average_outcome_extrapolated=any(r.extrapolated for r in patient_outcomes if r),
        average_patient_outcomes=tuple(patient_outcomes),
        prior_weights=None if prior is None else tuple(float(x) for x in prior),
        n_subjects=len(done),
        n_concentrations=int(sum(p.fits[0].forecasts.time_day.size for p in done)),
        models=tuple(summaries),
        weights=posterior,
        patients=tuple(patients),
        skipped=skipped,
    )


def _average_npde_tests(
    done: list[PatientValidation], summaries: list[ModelSummary]
) -> NpdeTests | None:
    """NPDE tests of the model average (a single model's own; None if a patient lacks them)."""
    if len(summaries) == 1:
        return summaries[0].npde
    if any(p.average_npde is None for p in done):
        return None
    return npde_tests(np.concatenate([p.average_npde for p in done]))


def average_outcomes(
    done: Sequence[PatientValidation], weights: np.ndarray
) -> list[PatientOutcome | None]:
    """Per patient, the outcome of the model average (:func:`.outcome.average_outcome`) with
    its posterior model probabilities given all its concentrations (``weights``, rows in
    ``done``'s order); None for a patient without an outcome under every model, or whose
    models' outcome models disagree on its label or the high-risk threshold (their horizons or
    thresholds differ: no common score to average)."""
    out: list[PatientOutcome | None] = []
    for p, w in zip(done, np.atleast_2d(weights), strict=True):
        rows = [f.outcome for f in p.fits]
        comparable = all(r is not None for r in rows) and (
            len({(r.label, r.threshold) for r in rows}) == 1
        )
        out.append(average_outcome(rows, w) if comparable else None)
    return out


def validation_seed(random_seed: int, patient_id: str) -> int:
    """The seed of one patient: from the run's seed and the patient's ID, not its position.

    The ID is hashed with SHA-256 (UTF-8 bytes; the first 8 bytes of the digest, little
    endian), a hash that is the same in every process and Python version (Python's ``hash``
    of a string is salted per process), and mixed with ``random_seed`` by
    :class:`numpy.random.SeedSequence`. Reordering the cohort, or validating a patient alone,
    therefore gives the patient the same draws.

    Examples
    --------
    >>> validation_seed(0, "P01") == validation_seed(0, "P01") != validation_seed(1, "P01")
    True
    >>> import hashlib
    >>> key = int.from_bytes(hashlib.sha256(b"P01").digest()[:8], "little")
    >>> validation_seed(0, "P01") == int(np.random.SeedSequence([0, key]).generate_state(1)[0])
    True
    """
    if isinstance(random_seed, bool) or not isinstance(random_seed, int | np.integer):
        raise ValueError(f"random_seed must be a whole number >= 0, got {random_seed!r}")
    if random_seed < 0:
        raise ValueError(f"random seed must be >= 0 (--seed), got {random_seed}")
    key = int.from_bytes(hashlib.sha256(str(patient_id).encode("utf-8")).digest()[:8], "little")
    return int(np.random.SeedSequence([int(random_seed), key]).generate_state(1)[0])


def _validate_task(
    item: tuple[Patient, Mapping[str, Any]],
    *,
    declarations: Sequence[ModelDeclaration],
    random_seed: int,
    prior_weights: Sequence[float] | None = None,
) -> PatientValidation:
    """One patient in whatever process runs it (module level: pickled by name)."""
    patient, covariates = item
    return validate_patient(
        patient,
        declarations,
        covariates,
        random_seed=validation_seed(random_seed, patient.id),
        prior_weights=prior_weights,
    )


def validate_cohort(
    patients: Sequence[Patient],
    models: Sequence[ModelDeclaration | str],
    *,
    covariates_of: Covariates = None,
    prior_weights: Sequence[float] | None = None,
    random_seed: int = 0,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int | None = None,
) -> ValidationResult:
    """Validate ``models`` on ``patients`` (see the module docstring).

    Parameters
    ----------
    patients
        The cohort (e.g. :func:`asuc_bayes.data.dataset.read_patients`). Patient IDs must be
        distinct (each patient's seed derives from its ID).
    models
        Declarations or library names.
    covariates_of
        The covariates the dataset lacks: a function of the patient, or a mapping patient id
        -> covariates.
    prior_weights
        Prior model probabilities (default: equal).
    random_seed
        Seed (>= 0); each patient uses :func:`validation_seed` (``random_seed``, its ID), so
        the results do not depend on the cohort's order nor on the engine.
    engine
        Where the patients are evaluated (default: this process, one after another); an
        :class:`asuc_bayes.inference.engine.Engine` with workers or a scheduler runs them in
        parallel.
    progress
        ``progress(done, total)`` after each patient.
    chunk_size
        Patients per task on a cluster (default:
        :func:`asuc_bayes.inference.engine.auto_chunk_size`).
    """
    if not models:
        raise ValueError("validation: give at least one model (--model NAME)")
    declarations = [_declaration(m) for m in models]
    labels = [d.label for d in declarations]
    if len(set(labels)) != len(labels):
        raise ValueError(f"validation: models must be distinct, got {labels}")
    ids = [p.id for p in patients]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"validation: patient IDs must be distinct, repeated: {repeated[:5]}")
    validation_seed(random_seed, "")  # the seed's own check, before any work
    if prior_weights is not None:  # its own check, before any work
        probabilities(np.zeros((1, len(declarations))), np.array(prior_weights, dtype=float))
        prior_weights = tuple(float(x) for x in prior_weights)
    items = [(p, _covariates(covariates_of, p)) for p in patients]
    results: list[PatientValidation] = (engine or Engine()).map_in_order(
        _validate_task,
        items,
        chunk_size=chunk_size,
        progress=progress,
        declarations=declarations,
        random_seed=random_seed,
        # only when given (a Dask scatter of None is avoided)
        **({} if prior_weights is None else {"prior_weights": prior_weights}),
    )
    return summarise(results, prior_weights)
