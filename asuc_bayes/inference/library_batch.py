"""Many patients' library-model forecasts on an :class:`~asuc_bayes.inference.engine.Engine`
(``forecast --model NAME --workers N`` or ``--scheduler ADDRESS``).

Each patient's forecast is :func:`~asuc_bayes.inference.forecast_library_patient` with the
seed derived from the run's seed and the patient's ID
(:func:`~asuc_bayes.inference.forecast.patient_seed`), so a patient gets the same draws alone,
in this process or on any worker. The covariates are bound in the calling process (a missing
one is an error before any work starts); the results come back in the patients' order.

Examples
--------
>>> from asuc_bayes.spec import load_declaration
>>> from asuc_bayes.studies.library_simulate import simulate_library_cohort
>>> from asuc_bayes.inference.covariates import baseline_covariates
>>> model = load_declaration("faelens2021")
>>> patients = simulate_library_cohort(model, 2, random_seed=3).patients
>>> jobs = [LibraryJob(p, baseline_covariates(p, model)) for p in patients]
>>> [r.id for r in forecast_library_batch(model, jobs, random_seed=1)]
['L001', 'L002']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asuc_bayes.data.dataset import Patient
from asuc_bayes.inference.engine import Engine
from asuc_bayes.inference.library_forecast import forecast_library_patient
from asuc_bayes.inference.result import LibraryForecast
from asuc_bayes.inference.sampler import SamplerOptions
from asuc_bayes.inference.schedule import CovariateSchedule
from asuc_bayes.spec import ModelDeclaration

__all__ = ["LibraryJob", "forecast_library_batch"]


@dataclass(frozen=True)
class LibraryJob:
    """One patient and the covariates bound for it (and its schedule, if time-varying)."""

    patient: Patient
    covariates: Mapping[str, Any]
    schedule: CovariateSchedule | None = None


def _forecast_job(
    job: LibraryJob,
    *,
    declaration: ModelDeclaration,
    impute: Mapping[str, Any] | str | None,
    attach_outcome: bool,
    random_seed: int,
    options: SamplerOptions | None,
) -> LibraryForecast:
    """One task: the patient's forecast (in a worker or here)."""
    from asuc_bayes.inference.forecast import patient_seed

    return forecast_library_patient(
        declaration,
        job.patient,
        job.covariates,
        impute=impute,
        attach_outcome=attach_outcome,
        random_seed=patient_seed(random_seed, job.patient.id),
        options=options,
        schedule=job.schedule,
    )


def forecast_library_batch(
    declaration: ModelDeclaration,
    jobs: Sequence[LibraryJob],
    *,
    impute: Mapping[str, Any] | str | None = None,
    attach_outcome: bool = True,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[LibraryForecast]:
    """Every job's forecast, in the jobs' order (see the module docstring); ``progress(done,
    total)`` after each patient."""
    return (engine or Engine()).map_in_order(
        _forecast_job,
        jobs,
        chunk_size=None,
        progress=progress,
        declaration=declaration,
        impute=impute,
        attach_outcome=attach_outcome,
        random_seed=random_seed,
        options=options,
    )
