"""Many patients' model averages on an :class:`~asuc_bayes.inference.engine.Engine`
(``forecast``/``optimize --model-average A,B --workers N`` or ``--scheduler ADDRESS``).

Each patient's average is :func:`~asuc_bayes.decisions.model_average.average_patient` with
the seed derived from the run's seed and the patient's ID
(:func:`~asuc_bayes.inference.forecast.patient_seed`), so a patient gets the same numbers
alone, in this process or on any worker. A patient the average cannot be made for (no model
applies, a dosing request it cannot take) is a :class:`PatientFailure` in its place, not an
exception; the results come back in the patients' order.

Examples
--------
>>> from asuc_bayes.studies.library_simulate import simulate_library_cohort
>>> patients = simulate_library_cohort("niyigena2025", 2, random_seed=4).patients
>>> results = average_patients(["niyigena2025", "faelens2021"], patients, random_seed=1)
>>> [(type(r).__name__, r.patient_id) for r in results]
[('ModelAverage', 'L001'), ('ModelAverage', 'L002')]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from asuc_bayes.data.dataset import InputError, Patient
from asuc_bayes.decisions.dosing import DosingError, DosingRequest, PlanOptions
from asuc_bayes.decisions.model_average import ModelAverage, ModelAverageError, average_patient
from asuc_bayes.inference.engine import Engine
from asuc_bayes.inference.sampler import SamplerOptions

__all__ = ["PatientFailure", "average_patients"]


@dataclass(frozen=True)
class PatientFailure:
    """A patient whose model average could not be made, and why."""

    patient_id: str
    error: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.patient_id, "error": self.error}


def _average_task(
    patient: Patient,
    *,
    models: Sequence[str],
    units: Mapping[str, str] | None,
    random_seed: int,
    options: SamplerOptions | None,
    request: DosingRequest | None,
    plan_options: PlanOptions | None,
) -> ModelAverage | PatientFailure:
    """One task: the patient's average (in a worker or here), or why there is none."""
    from asuc_bayes.inference.forecast import patient_seed

    try:
        return average_patient(
            models,
            patient,
            units,
            random_seed=patient_seed(random_seed, patient.id),
            options=options,
            request=request,
            plan_options=plan_options,
        )
    except (ModelAverageError, InputError, DosingError) as exc:
        return PatientFailure(patient.id, str(exc))


def average_patients(
    models: Sequence[str],
    patients: Sequence[Patient],
    units: Mapping[str, str] | None = None,
    *,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
    request: DosingRequest | None = None,
    plan_options: PlanOptions | None = None,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ModelAverage | PatientFailure]:
    """Every patient's model average (or :class:`PatientFailure`), in the patients' order (see
    the module docstring); ``progress(done, total)`` after each patient."""
    return (engine or Engine()).map_in_order(
        _average_task,
        patients,
        chunk_size=None,
        progress=progress,
        models=tuple(models),
        units=units,
        random_seed=random_seed,
        options=options,
        request=request,
        plan_options=plan_options,
    )
