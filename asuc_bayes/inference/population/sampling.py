"""Sampling a population model (nutpie or PyMC's NUTS), and a two-stage fit's combined gates
(each stage's are :func:`asuc_bayes.inference.fit_tree.convergence`)."""

from __future__ import annotations

import math
import time
from typing import Any

import pymc as pm

from asuc_bayes.inference.fit_tree import trace_result
from asuc_bayes.inference.population.data import PopulationSettings
from asuc_bayes.inference.population.model import (
    INIT_LOG10_HAZARD_AT_REF,
    build_population_model,
    compiled_model,
)

__all__ = ["combined_checks", "nutpie_trace", "pymc_trace", "sample_model"]


def nutpie_trace(compiled, settings: PopulationSettings, seed: int):
    """nutpie's NUTS on a compiled model with ``settings`` (its mass-matrix adaptation; no
    progress bar, no warm-up kept)."""
    import nutpie

    return nutpie.sample(
        compiled,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        cores=settings.cores,
        seed=seed,
        target_accept=settings.target_accept,
        adaptation=settings.adaptation,
        progress_bar=False,
        save_warmup=False,
    )


def pymc_trace(model: pm.Model, settings: PopulationSettings, seed: int, initvals=None):
    """PyMC's own NUTS on ``model`` with ``settings``, quiet, started at ``initvals`` with
    ``adapt_diag`` (no ±1 jitter: it starts chains on the likelihood wall, see
    :data:`~asuc_bayes.inference.population.model.INIT_JITTER`)."""
    return pm.sample(
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        cores=settings.cores or 1,
        random_seed=seed,
        nuts_sampler="pymc",
        target_accept=settings.target_accept,
        progressbar=False,
        quiet=True,
        compute_convergence_checks=False,
        model=model,
        init="adapt_diag",
        initvals=initvals,
    )


def sample_model(spec, priors, data, method, settings: PopulationSettings, seed: int, extra=None):
    """Posterior and sampler statistics (xarray Datasets, subject coords set) of one model,
    and its compile and sampling times."""
    extra = extra or {}
    started = time.perf_counter()
    if settings.sampler == "nutpie":
        compiled = compiled_model(spec, priors, data, method, extra)
        compiled_at = time.perf_counter()
        trace = nutpie_trace(compiled, settings, seed)
    else:
        model = build_population_model(spec, priors, data, method)
        with model:
            pm.set_data(extra)
        compiled_at = time.perf_counter()
        initvals = {"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF}
        trace = pymc_trace(model, settings, seed, initvals if method != "pk" else None)
    posterior, stats, timing = trace_result(trace, started, compiled_at, time.perf_counter())
    if "subject" in posterior.coords:
        posterior = posterior.assign_coords(subject=list(data.ids))
    return posterior, stats, timing


def _nan_largest(value: float) -> float:
    """``value``, with NaN ordered above everything (+inf): the worst of two diagnostics."""
    return math.inf if math.isnan(value) else value


def combined_checks(pk_checks: dict[str, Any], tte_checks: dict[str, Any]) -> dict[str, Any]:
    """The gates of a two-stage fit: the worse stage's R-hat and ESS (NaN worst), summed
    divergences, converged only if both stages are."""
    worst_rhat = max(pk_checks, tte_checks, key=lambda c: _nan_largest(c["rhat_max"]))
    worst_ess = min(pk_checks, tte_checks, key=lambda c: -_nan_largest(-c["ess_bulk_min"]))
    return {
        "rhat_max": worst_rhat["rhat_max"],
        "rhat_max_at": worst_rhat["rhat_max_at"],
        "ess_bulk_min": worst_ess["ess_bulk_min"],
        "ess_bulk_min_at": worst_ess["ess_bulk_min_at"],
        "divergences": pk_checks["divergences"] + tte_checks["divergences"],
        "converged": pk_checks["converged"] and tte_checks["converged"],
    }
