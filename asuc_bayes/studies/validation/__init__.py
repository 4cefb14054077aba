"""External validation and model averaging of library models on a cohort (issue 19).

- :func:`validate_cohort` / :func:`validate_patient` — the study (:mod:`.study`);
- :mod:`.metrics` — MPE, RMSE, within ±20/30 %, interval coverage (censoring rule);
- :mod:`.marginal` — marginal likelihood per patient (adaptive quadrature, importance sampling);
- :mod:`.leave_future_out` — a-priori and leave-future-out Bayesian / MAP forecasts;
- :mod:`.npde` — simulation-based decorrelated NPDE with censoring, and their tests;
- :mod:`.averaging` — posterior model probabilities, likelihood/AIC and stacking weights;
- :mod:`.vpc`, :mod:`.figures`, :mod:`.report` — VPC tables, figures and the self-contained
  HTML report (imported on demand: they load matplotlib and jinja2).
"""

from asuc_bayes.studies.validation.study import (
    ModelFit,
    ModelSummary,
    PatientValidation,
    ValidationResult,
    summarise,
    validate_cohort,
    validate_patient,
    validation_seed,
)

__all__ = [
    "ModelFit",
    "ModelSummary",
    "PatientValidation",
    "ValidationResult",
    "summarise",
    "validate_cohort",
    "validate_patient",
    "validation_seed",
]
