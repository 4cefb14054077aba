"""Bayesian forecasting of one patient under any library model (issue 16, "one model layer").

- :class:`PatientProblem` — a declaration and a patient's data: the log posterior over η,
  written once over ``xp`` (NumPy, or PyTensor for :func:`build_pymc_model`);
- :func:`find_map` — multi-start MAP and Laplace covariance;
- :func:`independence_draws` — the default sampler (IMH at the MAP), gated, with NUTS
  (:func:`nuts_draws`) as the fallback;
- :func:`covariate_schedule` — time-varying covariates per record (NONMEM's convention or
  LOCF) as a :class:`CovariateSchedule`, which makes the parameters piecewise constant;
- :func:`forecast_library_patient` — the whole forecast as a :class:`LibraryForecast`
  (``to_json()``).
"""

from asuc_bayes._lazy import lazy_exports

#: Public name -> the submodule defining it (imported on first use: importing one
#: submodule, e.g. the default forecast, does not import the others).
_EXPORTS = {
    "Derived": "derived",
    "derived_quantities": "derived",
    "forecast_library_patient": "library_forecast",
    "forecast_problem": "library_forecast",
    "MapResult": "map",
    "find_map": "map",
    "PatientProblem": "problem",
    "doses_from_patient": "problem",
    "library_unsupported": "problem",
    "patient_covariates": "problem",
    "structure_parameter_names": "problem",
    "LibraryForecast": "result",
    "SamplerOptions": "sampler",
    "independence_draws": "sampler",
    "COVARIATE_CONVENTIONS": "schedule",
    "CovariateSchedule": "schedule",
    "covariate_schedule": "schedule",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "COVARIATE_CONVENTIONS",
    "CovariateSchedule",
    "Derived",
    "LibraryForecast",
    "MapResult",
    "PatientProblem",
    "SamplerOptions",
    "covariate_schedule",
    "derived_quantities",
    "doses_from_patient",
    "find_map",
    "forecast_library_patient",
    "forecast_problem",
    "independence_draws",
    "library_unsupported",
    "patient_covariates",
    "structure_parameter_names",
]
