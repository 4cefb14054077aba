"""Sampling a population model (nutpie or PyMC's NUTS) and its convergence gates."""

from __future__ import annotations

import math
import time
from typing import Any

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from asuc_bayes.inference.diagnostics import ESS_BULK_MIN, RHAT_MAX
from asuc_bayes.inference.population.data import PopulationSettings
from asuc_bayes.inference.population.model import (
    INIT_LOG10_HAZARD_AT_REF,
    build_population_model,
    compiled_model,
)

__all__ = ["combined_checks", "convergence", "json_diagnostic", "sample_model"]


def sample_model(spec, priors, data, method, settings: PopulationSettings, seed: int, extra=None):
    """Posterior and sampler statistics (xarray Datasets, subject coords set) of one model."""
    extra = extra or {}
    started = time.perf_counter()
    if settings.sampler == "nutpie":
        import nutpie

        compiled = compiled_model(spec, priors, data, method, extra)
        compiled_at = time.perf_counter()
        trace = nutpie.sample(
            compiled,
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=settings.cores,
            seed=seed,
            target_accept=settings.target_accept,
            progress_bar=False,
            save_warmup=False,
        )
    else:
        model = build_population_model(spec, priors, data, method)
        with model:
            pm.set_data(extra)
        compiled_at = time.perf_counter()
        trace = pm.sample(
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
            # no ±1 jitter: it starts chains on the likelihood wall (see INIT_JITTER)
            init="adapt_diag",
            initvals={"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF}
            if method != "pk"
            else None,
        )
    finished = time.perf_counter()
    posterior = trace["posterior"].to_dataset()
    if "subject" in posterior.coords:
        posterior = posterior.assign_coords(subject=list(data.ids))
    stats = trace["sample_stats"].to_dataset()
    keep = [n for n in ("diverging", "step_size", "depth", "n_steps", "energy") if n in stats]
    timing = {"compile_seconds": compiled_at - started, "sampling_seconds": finished - compiled_at}
    return posterior, stats[keep], timing


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


def json_diagnostic(value) -> float | None:
    """A diagnostic for JSON: ``None`` (null) when not finite, never a bare NaN."""
    value = float(value)
    return value if math.isfinite(value) else None


def convergence(posterior: xr.Dataset, divergences: int, names) -> dict[str, Any]:
    """Max rank-normalised split R-hat and min bulk ESS over ``names``; the gates.

    A NaN diagnostic (a chain stuck at one value has no within-chain variance) is the worst
    value, not a missing one: it is reported as NaN, named, and fails the gates.
    """
    subset = posterior[[n for n in names if n in posterior]]
    with np.errstate(divide="ignore", invalid="ignore"):  # stuck chain: NaN, reported below
        rhat = az.rhat(subset)
        ess = az.ess(subset, method="bulk")

    def worst(dataset, largest: bool) -> tuple[float, str]:
        """The worst value over every variable and subject (NaN first), and where it is."""
        best = None
        for name in dataset.data_vars:
            values = dataset[name]
            raw = values.values.ravel()
            ordered = np.where(np.isnan(raw), np.inf if largest else -np.inf, raw)
            index = int(np.argmax(ordered) if largest else np.argmin(ordered))
            label = name
            if values.dims:
                label += f"[{values[values.dims[0]].values[index]}]"
            key = ordered[index] if largest else -ordered[index]
            if best is None or key > best[0]:
                best = (key, float(raw[index]), label)
        return best[1], best[2]

    rhat_max, rhat_where = worst(rhat, largest=True)
    ess_min, ess_where = worst(ess, largest=False)
    return {
        "rhat_max": rhat_max,
        "ess_bulk_min": ess_min,
        "divergences": int(divergences),
        "converged": bool(divergences == 0 and rhat_max <= RHAT_MAX and ess_min >= ESS_BULK_MIN),
        "rhat_max_at": rhat_where,
        "ess_bulk_min_at": ess_where,
    }
