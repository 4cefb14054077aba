"""Hierarchical population model: joint Bayesian fit of the popPK and Weibull models.

The package, by responsibility:

- :mod:`~asuc_bayes.inference.population.data` — the sampler settings
  (:class:`PopulationSettings`, :func:`default_settings`) and a cohort as padded arrays
  (:class:`CohortData`, :func:`placeholder_cohort` for ahead-of-time compilation);
- :mod:`~asuc_bayes.inference.population.model` — the PyMC model (priors, PK and Weibull
  variables, likelihoods, :func:`build_population_model`) and its compiled form, cached per
  process (:func:`prepare_population_model`); the model card is its docstring;
- :mod:`~asuc_bayes.inference.population.sampling` — NUTS on one model (the gates,
  :func:`convergence`, and the fit's DataTree are :mod:`asuc_bayes.inference.fit_tree`'s, shared
  with the marginal and library fits);
- :mod:`~asuc_bayes.inference.population.fit` — :func:`fit_population`, the fit's DataTree
  (:class:`PopulationFit`, :func:`load_fit`, :func:`cohort_of_fit`) and its JSON summary
  (:func:`fit_summary`, :func:`published_values`).

Every name is importable from ``asuc_bayes.inference.population`` as before the split.
"""

from __future__ import annotations

from asuc_bayes.inference.fit_tree import convergence
from asuc_bayes.inference.population.data import (
    DEFAULT_METHOD,
    METHODS,
    OBSERVATION_COLUMNS,
    SUBJECT_COLUMNS,
    CohortData,
    PopulationSettings,
    default_settings,
    placeholder_cohort,
)
from asuc_bayes.inference.population.fit import (
    INDIVIDUAL,
    JSON_PARAMETERS,
    PopulationFit,
    cohort_of_fit,
    fit_population,
    fit_summary,
    load_fit,
    population_fit_tree,
    published_values,
)
from asuc_bayes.inference.population.model import (
    INIT_JITTER,
    INIT_LOG10_HAZARD_AT_REF,
    TTE_REFERENCE_DAY,
    build_population_model,
    compiled_model,
    concentration_log_likelihood,
    individual_pk,
    ln_auc_over_cl,
    pk_variables,
    predicted_concentration,
    prepare_population_model,
    tte_variables,
)
from asuc_bayes.inference.population.sampling import (
    combined_checks,
    nutpie_trace,
    pymc_trace,
    sample_model,
)
from asuc_bayes.inference.result import finite_or_none

#: The names these had before the split (tests and benchmarks import them).
_fit_tree = population_fit_tree
_compiled_model = compiled_model
_combined_checks = combined_checks
_json_diagnostic = finite_or_none

__all__ = [
    "DEFAULT_METHOD",
    "INDIVIDUAL",
    "INIT_JITTER",
    "INIT_LOG10_HAZARD_AT_REF",
    "JSON_PARAMETERS",
    "METHODS",
    "OBSERVATION_COLUMNS",
    "SUBJECT_COLUMNS",
    "TTE_REFERENCE_DAY",
    "CohortData",
    "PopulationFit",
    "PopulationSettings",
    "build_population_model",
    "cohort_of_fit",
    "combined_checks",
    "compiled_model",
    "concentration_log_likelihood",
    "convergence",
    "default_settings",
    "fit_population",
    "fit_summary",
    "individual_pk",
    "ln_auc_over_cl",
    "load_fit",
    "nutpie_trace",
    "pk_variables",
    "placeholder_cohort",
    "population_fit_tree",
    "predicted_concentration",
    "prepare_population_model",
    "published_values",
    "pymc_trace",
    "sample_model",
    "tte_variables",
]
