"""asuc_bayes: full-Bayesian forecasting of infliximab exposure and colectomy risk in ASUC.

Public API
----------
- :func:`load_model` — a validated model file (``models/*.toml``) with its variants.
- :func:`read_patients`, :func:`example_path` — validated patients from CSV/TOML/YAML.
- :class:`Forecaster` — compiled-once forecasting; :meth:`Forecaster.forecast` returns a
  :class:`PatientForecast` holding an ArviZ-convention :class:`xarray.DataTree`.
- :func:`forecast_patients`, :func:`results_json`, :func:`save_results`, :func:`load_results`.
- :func:`recommend_dose`, :func:`plan_dosing` with :class:`DosingRequest` — dosing to a target
  risk from an existing posterior (see :mod:`asuc_bayes.decisions.dosing`).
- Population models (issue 3): :func:`simulate_cohort`, :func:`read_cohort`,
  :func:`fit_population`, :class:`PopulationDraws`, :func:`forecast_with_population`,
  :func:`evaluate_fit` (import them from their modules to keep ``import asuc_bayes`` light).
- Simulation-based calibration of the population fit:
:func:`asuc_bayes.studies.sbc.run_population_sbc`
  (any model through :func:`asuc_bayes.studies.sbc.run_sbc`).

The names above are imported on first use (module ``__getattr__``), so that ``import
asuc_bayes`` and the command line start without loading PyMC, PyTensor or ArviZ.

Examples
--------
>>> import asuc_bayes
>>> asuc_bayes.load_model().name
'niyigena2025-asuc-infliximab'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from asuc_bayes._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from asuc_bayes.data.dataset import InputError, Patient, example_path, read_patients
    from asuc_bayes.decisions.dosing import DosingError, DosingRequest, plan_dosing, recommend_dose
    from asuc_bayes.inference.forecast import (
        Forecaster,
        PatientForecast,
        SamplerSettings,
        forecast_patients,
        load_results,
        results_json,
        save_results,
    )
    from asuc_bayes.spec.config import ModelSpec, ModelSpecError, available_models, load_model

#: Public name -> the module defining it (imported when the name is first used).
_PUBLIC = {
    "ModelSpec": "spec.config",
    "ModelSpecError": "spec.config",
    "available_models": "spec.config",
    "load_model": "spec.config",
    "InputError": "data.dataset",
    "Patient": "data.dataset",
    "example_path": "data.dataset",
    "read_patients": "data.dataset",
    "DosingError": "decisions.dosing",
    "DosingRequest": "decisions.dosing",
    "plan_dosing": "decisions.dosing",
    "recommend_dose": "decisions.dosing",
    "Forecaster": "inference.forecast",
    "PatientForecast": "inference.forecast",
    "SamplerSettings": "inference.forecast",
    "forecast_patients": "inference.forecast",
    "load_results": "inference.forecast",
    "results_json": "inference.forecast",
    "save_results": "inference.forecast",
}

__all__ = [
    "DosingError",
    "DosingRequest",
    "Forecaster",
    "InputError",
    "ModelSpec",
    "ModelSpecError",
    "Patient",
    "PatientForecast",
    "SamplerSettings",
    "__version__",
    "available_models",
    "example_path",
    "forecast_patients",
    "load_model",
    "load_results",
    "plan_dosing",
    "read_patients",
    "recommend_dose",
    "results_json",
    "save_results",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'asuc_bayes' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"asuc_bayes.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
