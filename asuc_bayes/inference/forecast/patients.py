"""Several patients with one compiled model: the process-wide :class:`Forecaster` of a model,
each patient's seed (from the run's seed and the patient's ID), and the batch forecast.

Examples
--------
>>> patient_seed(0, "P01") == patient_seed(0, "P01") != patient_seed(0, "P02")
True
"""

from __future__ import annotations

import zlib

import numpy as np

from asuc_bayes.inference.forecast.forecaster import Forecaster
from asuc_bayes.inference.forecast.results import PatientForecast
from asuc_bayes.inference.forecast.settings import SamplerSettings
from asuc_bayes.spec.config import ModelSpec

__all__ = ["forecast_patients", "forecaster_for", "patient_seed"]


def patient_seed(random_seed: int, patient_id: str) -> int:
    """Seed of one patient, from the run's seed and the patient's ID (not its position), so a
    patient gets the same draws alone or in any batch."""
    sequence = np.random.SeedSequence([random_seed, zlib.crc32(patient_id.encode("utf-8"))])
    return int(sequence.generate_state(1)[0])


_FORECASTERS: dict[ModelSpec, Forecaster] = {}


def forecaster_for(spec: ModelSpec) -> Forecaster:
    """The process-wide :class:`Forecaster` of ``spec``, compiled on first use."""
    if spec not in _FORECASTERS:
        _FORECASTERS[spec] = Forecaster(spec)
    return _FORECASTERS[spec]


def forecast_patients(
    patients,
    spec: ModelSpec,
    *,
    settings: SamplerSettings | None = None,
    random_seed: int = 0,
    forecaster: Forecaster | None = None,
    progress=None,
) -> list[PatientForecast]:
    """Forecast several patients with one compiled model.

    Each patient's seed derives from ``random_seed`` and its ID (:func:`patient_seed`).
    ``progress(done, total)``, if given, is called after each patient.
    """
    forecaster = forecaster or forecaster_for(spec)
    patients = list(patients)
    results = []
    for patient in patients:
        seed = patient_seed(random_seed, patient.id)
        results.append(forecaster.forecast(patient, random_seed=seed, settings=settings))
        if progress is not None:
            progress(len(results), len(patients))
    return results
