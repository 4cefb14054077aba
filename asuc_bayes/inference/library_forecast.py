"""Forecast one patient under any library model: MAP, posterior, derived quantities, result.

:func:`forecast_library_patient` is the entry point: a declaration, a dataset
:class:`~asuc_bayes.data.dataset.Patient` and the covariates the dataset lacks give a
:class:`~asuc_bayes.inference.result.LibraryForecast`.

Examples
--------
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> from asuc_bayes.spec import load_declaration
>>> decl = load_declaration("wojciechowski2017")
>>> doses = tuple(Dose(t, 350.0, 1 / 12) for t in (0.0, 14.0, 42.0))
>>> patient = Patient("p1", 70.0, 30.0, doses, (Observation(13.9, 8.0),))
>>> result = forecast_library_patient(decl, patient, {"ALB": (4.0, "g/dL"), "ADA": 0},
...                                   random_seed=1)
>>> result.status, sorted(result.to_json()["eta"])
('ok', ['eta_CL', 'eta_Q', 'eta_V1', 'eta_V2'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from asuc_bayes.data.dataset import Patient
from asuc_bayes.inference.derived import DEFAULT_AUC_WINDOW_DAY, Derived, derived_quantities
from asuc_bayes.inference.independence import weighted_moments
from asuc_bayes.inference.map import MapResult, find_map, single_threaded_blas
from asuc_bayes.inference.precision import run_precision, until_precise
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.inference.result import CovariateUse, LibraryForecast, ObservationRow
from asuc_bayes.inference.sampler import (
    IMH_BURN,
    SamplerOptions,
    convergence,
    independence_chains,
)
from asuc_bayes.inference.schedule import CovariateSchedule
from asuc_bayes.spec import ModelDeclaration, load_declaration, with_outcome_from

__all__ = ["forecast_library_patient", "forecast_problem"]

#: The model whose outcome (Weibull time to colectomy) ``attach_outcome`` adds.
ASUC_OUTCOME_MODEL = "niyigena2025"
#: IMH runs before the NUTS fallback: at the Laplace proposal, then moment-matched to the first.
IMH_ATTEMPTS = 2


def observation_rows(problem: PatientProblem, eta_map: np.ndarray) -> tuple[ObservationRow, ...]:
    """Each record with its PRED (η = 0) and IPRED (η at the MAP), as in NONMEM tables."""
    if problem.time_day.size == 0:
        return ()
    points = np.stack([np.zeros(problem.n_eta), eta_map])
    pred, ipred = np.asarray(problem.predict(points), dtype=float)
    return tuple(
        ObservationRow(float(t), float(y), int(c), float(p), float(i))
        for t, y, c, p, i in zip(
            problem.time_day, problem.value_mg_l, problem.censoring, pred, ipred, strict=True
        )
    )


def _sample(problem: PatientProblem, mode, options: SamplerOptions, random_seed: int):
    """(method, sampler, η draws, attempts, precision): IMH, then NUTS when a gate fails.

    An adaptive run (``options.draws`` None) that passes the gates at its first piece is
    extended until its precision is met (:func:`until_precise`: IMH chains continued, NUTS by
    further independently seeded runs appended), and the gates are applied again to the whole
    run."""
    attempts: list[dict[str, Any]] = []
    if options.sampler == "imh":
        proposal, seed = mode, random_seed
        for _ in range(IMH_ATTEMPTS):
            run, to_eta = independence_chains(
                problem.log_posterior, proposal, problem.omega, chains=options.chains,
                random_seed=seed,
            )  # fmt: skip
            eta = to_eta(run.extend(options.initial_draws))
            info = convergence(eta)
            precision = None
            if info["passed"]:
                extend = lambda n, run=run, to_eta=to_eta: to_eta(run.extend(n))  # noqa: E731
                eta, precision = until_precise(problem, eta, options, extend)
                info = convergence(eta)
            attempts.append({"sampler": "imh", **info, "acceptance": float(run.acceptance.mean())})
            if info["passed"]:
                return "independence_mh", "imh", eta, attempts, precision
            proposal = moment_matched(mode, eta)
            if proposal is None:
                break
            seed = int(np.random.SeedSequence([random_seed, len(attempts)]).generate_state(1)[0])
    eta, info, precision = _nuts_precise(problem, mode, options, random_seed)
    attempts.append({"sampler": "pymc", "target_accept": options.target_accept, **info})
    return "nuts", "pymc", eta, attempts, precision


def moment_matched(
    mode: MapResult, eta: np.ndarray, weight: np.ndarray | None = None
) -> MapResult | None:
    """A proposal centred at the mean of draws ``eta`` (``(..., n_eta)``; ``weight``: their
    importance weights) with their covariance, or None when that covariance is singular.

    The Laplace covariance at the MAP misses skewed, weakly identified directions (η_Q and
    η_V2 of a two-compartment model: for one example patient under Wojciechowski 2017 the
    first IMH run reached R-hat 1.020 and ESS 354; the moment-matched one 1.001 and 1940, where
    the NUTS fallback took ~30 s). Any proposal leaves IMH and importance sampling exact; their
    gates decide as before.
    """
    moments = weighted_moments(np.asarray(eta, dtype=float).reshape(-1, mode.eta.size), weight)
    if moments is None:
        return None
    mean, covariance = moments
    return replace(mode, eta=mean, covariance=covariance)


def _nuts_precise(problem: PatientProblem, mode, options: SamplerOptions, random_seed: int):
    """NUTS (PyMC) at the MAP, extended while adaptive and short of the precision target by
    further runs of the same chains (seeds derived from ``random_seed``), each tuned on its
    own: (η, gates, precision)."""
    from asuc_bayes.inference.pymc_model import nuts_draws

    def piece(draws: int, seed: int):
        return nuts_draws(
            problem, start=mode.eta, options=replace(options, draws=draws), random_seed=seed
        )

    eta, info = piece(options.initial_draws, random_seed)
    if not info["passed"]:
        return eta, info, run_precision(problem, eta, options)
    divergences = [info["divergences"]]

    def extend(n: int) -> np.ndarray:
        seed = np.random.SeedSequence([random_seed, len(divergences)]).generate_state(1)[0]
        more, more_info = piece(n, int(seed))
        divergences.append(more_info["divergences"])
        return more

    eta, precision = until_precise(problem, eta, options, extend)
    return eta, convergence(eta, sum(divergences)), precision


def forecast_problem(
    problem: PatientProblem,
    patient_id: str,
    *,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
) -> LibraryForecast:
    """The full forecast of a bound :class:`PatientProblem` (see the module docstring)."""
    with single_threaded_blas():
        return _forecast_problem(problem, patient_id, random_seed, options or SamplerOptions())


def _forecast_problem(
    problem: PatientProblem, patient_id: str, random_seed: int, options: SamplerOptions
) -> LibraryForecast:
    mode = find_map(problem.log_posterior, problem.omega)
    method, sampler, eta, attempts, precision = _sample(problem, mode, options, random_seed)
    last = attempts[-1]
    diagnostics: dict[str, Any] = {
        "rhat_max": last["rhat_max"],
        "ess_bulk_min": last["ess_bulk_min"],
        "divergences": last["divergences"],
        "chains": options.chains,
        "draws": int(eta.shape[1]),
        "tune": IMH_BURN if method == "independence_mh" else options.tune,
        "method": method,
        "modes": mode.modes,
        "target_accept": last.get("target_accept"),
        "sampler": sampler,
        "attempts": len(attempts),
        "map_optimizer_success": mode.optimizer_success,
        "laplace_ok": mode.laplace_ok,
        "precision": precision.as_dict(),
    }
    imh = [a for a in attempts if a["sampler"] == "imh"]
    if imh:  # the last IMH run's (the one used, when IMH passed)
        diagnostics["imh_acceptance"] = imh[-1]["acceptance"]
    warnings = []
    if mode.modes > 1:
        warnings.append(
            f"the MAP search found {mode.modes} local maxima: the posterior may be multimodal"
        )
    if not mode.laplace_ok:
        warnings.append("the Hessian at the MAP is not negative definite: proposal from Omega")
    return assemble_forecast(
        problem,
        patient_id,
        status="ok" if last["passed"] else "unconverged",
        eta=eta,
        draws=derived_quantities(problem, eta),
        mode=mode,
        diagnostics=diagnostics,
        warnings=warnings,
    )


def assemble_forecast(
    problem: PatientProblem,
    patient_id: str,
    *,
    status: str,
    eta: np.ndarray,
    draws: Derived,
    mode: MapResult,
    diagnostics: dict[str, Any],
    warnings: list[str],
) -> LibraryForecast:
    """The :class:`LibraryForecast` of posterior ``eta`` (chain, draw, n_eta) and their
    ``draws``: MAP and a-priori points, PRED/IPRED, imputations, outcome and covariate use from
    ``problem`` (the one whose MAP ``mode`` is)."""
    outcome = problem.declaration.outcome
    return LibraryForecast(
        id=patient_id,
        model=problem.declaration.label,
        status=status,
        eta_names=problem.eta_names,
        eta=eta,
        draws=draws,
        points=derived_quantities(problem, np.stack([mode.eta, np.zeros(problem.n_eta)])),
        map=mode,
        observations=observation_rows(problem, mode.eta),
        imputed=problem.imputed,
        diagnostics=diagnostics,
        high_risk_threshold=None if outcome is None else outcome.high_risk_threshold,
        extrapolated_outcome=None if outcome is None else outcome.extrapolated,
        outcome_source=None if outcome is None else outcome.source_model,
        warnings=tuple(warnings),
        covariates=covariate_use(problem),
        problem=problem,
    )


def covariate_use(problem: PatientProblem) -> CovariateUse:
    """How the problem used the patient's per-record covariates (:class:`CovariateUse`)."""
    schedule = problem.schedule
    if schedule is None:
        return CovariateUse()
    outcome = problem.declaration.outcome
    window = outcome.auc_window_day if outcome is not None else DEFAULT_AUC_WINDOW_DAY
    return CovariateUse(
        time_varying=problem.time_varying,
        convention=schedule.convention,
        change_days=tuple(float(t) for t in problem.change_day),
        varying=schedule.varying if problem.time_varying else (),
        baseline_only=schedule.baseline_only,
        parameters=(
            f"the reported parameters are their time-weighted means over the AUC window "
            f"(days {window[0]:g}-{window[1]:g})"
            if problem.time_varying
            else None
        ),
    )


def forecast_library_patient(
    declaration: ModelDeclaration | str,
    patient: Patient,
    covariates: Mapping[str, Any] | None = None,
    *,
    impute: Mapping[str, Any] | str | None = None,
    attach_outcome: bool = False,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
    schedule: CovariateSchedule | None = None,
) -> LibraryForecast:
    """Posterior forecast of one patient under a library model.

    Parameters
    ----------
    declaration
        A :class:`~asuc_bayes.spec.ModelDeclaration` or a library name.
    patient
        Doses, concentration records, weight (``WT``, kg) and CRP (``CRP``, mg/L).
    covariates
        Other covariates the model needs: name -> value in the model's unit, or
        ``(value, unit)`` (e.g. ``{"ALB": (40, "g/L"), "ADA": 0}``).
    impute
        Explicit imputations of missing covariates (reported in the result's ``imputed``).
    attach_outcome
        Attach the ASUC outcome model (Niyigena 2025) to a model without one; the result says
        it is extrapolated.
    random_seed
        Seed of the sampler.
    options
        Chains, draws (default: adaptive, until the stated precision; see
        :class:`~asuc_bayes.inference.sampler.SamplerOptions`) and the fallback's NUTS
        settings.
    schedule
        The patient's time-varying covariates
        (:func:`asuc_bayes.inference.schedule.covariate_schedule`); None: baseline values.

    Raises
    ------
    asuc_bayes.spec.MissingCovariateError
        A covariate is missing and not imputed (the message names it and the fix).
    """
    if isinstance(declaration, str):
        declaration = load_declaration(declaration)
    if attach_outcome and declaration.outcome is None:
        declaration = with_outcome_from(declaration, load_declaration(ASUC_OUTCOME_MODEL))
    problem = PatientProblem.from_patient(
        declaration, patient, covariates, impute=impute, schedule=schedule
    )
    return forecast_problem(problem, patient.id, random_seed=random_seed, options=options)
