"""Individual forecasting: MAP + Laplace, full posterior by NUTS, derived quantities, results.

One :class:`Forecaster` per model specification: the PyMC model is declared once, the
log density (for MAP) and the nutpie sampler are compiled once, and each patient is bound
with ``pm.set_data`` / ``with_data``.

The package's modules, by responsibility:

- :mod:`.settings` — :class:`SamplerSettings` and the run-size defaults;
- :mod:`.quantities` — the derived quantities (CL, V, AUC, ln(AUC/CL), risk) and curve times;
- :mod:`.summary` — the output contract's entry of a patient (statistics, MCSE, details);
- :mod:`.adaptive` — the R-hat/ESS gates, :class:`Precision` and the adaptive run length;
- :mod:`.numerics` — single-threaded BLAS, maximisation, finite-difference Hessian;
- :mod:`.imh` — the default sampler (independence Metropolis–Hastings, :class:`PriorProposal`);
- :mod:`.forecaster` — :class:`Forecaster` (MAP, Laplace, sampling, fallbacks);
- :mod:`.exact` — the exact quadrature path (:func:`grid_draws`, :func:`exact_forecast`);
- :mod:`.results` — :class:`PatientForecast`, result trees, JSON and netCDF I/O, provenance;
- :mod:`.patients` — batches: :func:`forecaster_for`, :func:`forecast_patients`,
  :func:`patient_seed`.

Every name is importable from this package, as it was from the former single module.

Examples
--------
>>> from asuc_bayes import Forecaster, load_model, read_patients, example_path
>>> forecaster = Forecaster(load_model())                                 # doctest: +SKIP
>>> patient = read_patients(example_path()).patients[0]                   # doctest: +SKIP
>>> result = forecaster.forecast(patient, random_seed=1)                  # doctest: +SKIP
>>> result.summary()["posterior"]["risk_90d"]["mean"]                     # doctest: +SKIP
"""

from __future__ import annotations

from asuc_bayes.inference.forecast.adaptive import (
    ESS_BULK_MIN,
    PRECISION_PROBS,
    PRECISION_QUANTITIES,
    PRECISION_TARGET,
    RHAT_MAX,
    Precision,
    convergence,
    run_precision,
    until_precise,
)
from asuc_bayes.inference.forecast.exact import exact_forecast, grid_draws, precise_grid_draws
from asuc_bayes.inference.forecast.forecaster import (
    ETA_BOUND_SD,
    IDENTITY_WHITENING,
    SAMPLE_STATS,
    Forecaster,
    nutpie_draws,
)
from asuc_bayes.inference.forecast.imh import (
    IMH_BURN,
    IMH_DF,
    IMH_PRIOR_WEIGHT,
    IMH_SCALE,
    IMH_THIN,
    PriorProposal,
    independence_run,
)
from asuc_bayes.inference.forecast.numerics import (
    finite_difference_hessian,
    maximize,
    single_threaded_blas,
)
from asuc_bayes.inference.forecast.patients import forecast_patients, forecaster_for, patient_seed
from asuc_bayes.inference.forecast.quantities import (
    CURVE_END_DAY,
    DERIVED,
    DERIVED_PK,
    curve_times,
    derived_quantities,
    map_and_a_priori,
    patient_concentration,
)
from asuc_bayes.inference.forecast.results import (
    CURVE_THIN,
    PatientForecast,
    forecast_result,
    forecast_tree,
    load_results,
    provenance,
    results_json,
    results_tree,
    save_results,
)
from asuc_bayes.inference.forecast.settings import (
    DEFAULT_DRAWS,
    MAX_DRAWS_FACTOR,
    SamplerSettings,
    with_settings,
)
from asuc_bayes.inference.forecast.summary import (
    MCSE_PROBS,
    MCSE_STATISTICS,
    STATISTICS,
    json_number,
    patient_details,
    summarize_draws,
    summarize_tree,
    summary_from_tree,
    summary_mcse,
    summary_statistics,
)

#: The former single module's private names, kept for callers that import them from here.
_convergence = convergence
_nutpie_draws = nutpie_draws
_precise_grid_draws = precise_grid_draws
_forecast_result = forecast_result
_json_number = json_number

__all__ = [
    "CURVE_END_DAY",
    "CURVE_THIN",
    "DEFAULT_DRAWS",
    "DERIVED",
    "DERIVED_PK",
    "ESS_BULK_MIN",
    "ETA_BOUND_SD",
    "IDENTITY_WHITENING",
    "IMH_BURN",
    "IMH_DF",
    "IMH_PRIOR_WEIGHT",
    "IMH_SCALE",
    "IMH_THIN",
    "MAX_DRAWS_FACTOR",
    "MCSE_PROBS",
    "MCSE_STATISTICS",
    "PRECISION_PROBS",
    "PRECISION_QUANTITIES",
    "PRECISION_TARGET",
    "RHAT_MAX",
    "SAMPLE_STATS",
    "STATISTICS",
    "Forecaster",
    "PatientForecast",
    "Precision",
    "PriorProposal",
    "SamplerSettings",
    "convergence",
    "curve_times",
    "derived_quantities",
    "exact_forecast",
    "finite_difference_hessian",
    "forecast_patients",
    "forecast_result",
    "forecast_tree",
    "forecaster_for",
    "grid_draws",
    "independence_run",
    "json_number",
    "load_results",
    "map_and_a_priori",
    "maximize",
    "nutpie_draws",
    "patient_concentration",
    "patient_details",
    "patient_seed",
    "precise_grid_draws",
    "provenance",
    "results_json",
    "results_tree",
    "run_precision",
    "save_results",
    "single_threaded_blas",
    "summarize_draws",
    "summarize_tree",
    "summary_from_tree",
    "summary_mcse",
    "summary_statistics",
    "until_precise",
    "with_settings",
]
