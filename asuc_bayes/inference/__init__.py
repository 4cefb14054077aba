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

from asuc_bayes.inference.derived import Derived, derived_quantities
from asuc_bayes.inference.library_forecast import forecast_library_patient, forecast_problem
from asuc_bayes.inference.map import MapResult, find_map
from asuc_bayes.inference.problem import (
    PatientProblem,
    doses_from_patient,
    library_unsupported,
    patient_covariates,
    structure_parameter_names,
)
from asuc_bayes.inference.result import LibraryForecast
from asuc_bayes.inference.sampler import SamplerOptions, independence_draws
from asuc_bayes.inference.schedule import (
    COVARIATE_CONVENTIONS,
    CovariateSchedule,
    covariate_schedule,
)

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
