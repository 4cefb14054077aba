"""asuc_bayes: full-Bayesian forecasting of infliximab exposure and colectomy risk in ASUC.

Public API
----------
- :func:`load_model` — a validated model file (``models/*.toml``) with its variants.
- :func:`read_patients`, :func:`example_path` — validated patients from CSV/TOML/YAML.
- :class:`Forecaster` — compiled-once forecasting; :meth:`Forecaster.forecast` returns a
  :class:`PatientForecast` holding an ArviZ-convention :class:`xarray.DataTree`.
- :func:`forecast_patients`, :func:`results_json`, :func:`save_results`, :func:`load_results`.
- :func:`recommend_dose`, :func:`plan_dosing` with :class:`DosingRequest` — dosing to a target
  risk from an existing posterior (see :mod:`asuc_bayes.dosing`).
- Population models (issue 3): :func:`simulate_cohort`, :func:`read_cohort`,
  :func:`fit_population`, :class:`PopulationDraws`, :func:`forecast_with_population`,
  :func:`evaluate_fit` (import them from their modules to keep ``import asuc_bayes`` light).
- Simulation-based calibration of the population fit: :func:`asuc_bayes.sbc.run_population_sbc`
  (any model through :func:`asuc_bayes.sbc.run_sbc`).
"""

from asuc_bayes._version import __version__
from asuc_bayes.config import ModelSpec, ModelSpecError, available_models, load_model
from asuc_bayes.dataset import InputError, Patient, example_path, read_patients
from asuc_bayes.dosing import DosingError, DosingRequest, plan_dosing, recommend_dose
from asuc_bayes.forecast import (
    Forecaster,
    PatientForecast,
    SamplerSettings,
    forecast_patients,
    load_results,
    results_json,
    save_results,
)

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
