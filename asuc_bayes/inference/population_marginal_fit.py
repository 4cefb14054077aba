"""The marginal population fit: the compiled marginal model (one compilation per process),
NUTS over the population parameters, then each subject's random effects per draw
(:mod:`asuc_bayes.inference.population_effects`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from asuc_bayes.inference.fit_tree import trace_result
from asuc_bayes.inference.population_effects import draw_random_effects
from asuc_bayes.inference.population_marginal import (
    QuadratureRule,
    _graph_data,
    build_marginal_model,
    quadrature_rule,
)
from asuc_bayes.spec.config import ModelSpec, PopulationPriors

__all__ = ["fit_marginal", "prepare_marginal_model", "sample_marginal"]

_COMPILED: dict[tuple, Any] = {}


def _compiled(spec: ModelSpec, priors: PopulationPriors, values: dict):
    """nutpie's compiled marginal model with ``values`` bound: disk-cached C callbacks
    (:mod:`asuc_bayes.inference.population_marginal_callback`; one compilation serves every
    cohort of any size and every later process), loaded once per process."""
    from asuc_bayes.inference.population.model import INIT_LOG10_HAZARD_AT_REF
    from asuc_bayes.inference.population_marginal_callback import MarginalCallbacks

    key = (repr(spec), priors)
    graph_values = _graph_data(values)
    if key not in _COMPILED:
        initial = {"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF}
        _COMPILED[key] = MarginalCallbacks(spec, priors, values, initial)
    return _COMPILED[key].model(graph_values)


def prepare_marginal_model(spec: ModelSpec, priors: PopulationPriors) -> None:
    """Compile the marginal model once in this process (e.g. on every worker)."""
    from asuc_bayes.inference.population.data import CohortData, placeholder_cohort

    duration = spec.pk.default_infusion_duration_day
    data = CohortData.from_patients(placeholder_cohort(2, duration), duration)
    _compiled(spec, priors, quadrature_rule(spec, data, levels=(9,)).model_data(data))


def sample_marginal(spec, priors, data, rule: QuadratureRule, settings, seed: int):
    """The population parameters' posterior: independence Metropolis–Hastings from the
    Laplace approximation (``settings.sampler`` ``"imh"``,
    :mod:`asuc_bayes.inference.population_marginal_imh`) when its run is usable and passes
    the gates on the population parameters, else NUTS (nutpie). Returns the posterior and
    sampler statistics (xarray Datasets), what the sampler reported (``checks``: the sampler
    used and, after an independence run, its k̂, efficiency, acceptance and why NUTS was used
    instead, if it was) and the compile/sampling times."""
    from asuc_bayes.inference.population.sampling import nutpie_trace

    started = time.perf_counter()
    compiled = _compiled(spec, priors, rule.model_data(data))
    compiled_at = time.perf_counter()
    checks: dict[str, Any] = {"sampler_used": "nutpie"}
    if settings.sampler == "imh":
        result = _independence(compiled, settings, seed)
        checks = result.checks
        if result.posterior is not None:
            timing = {
                "compile_seconds": compiled_at - started,
                "sampling_seconds": time.perf_counter() - compiled_at,
            }
            return result.posterior, result.stats, checks, timing
    trace = nutpie_trace(compiled, settings, seed)
    posterior, stats, timing = trace_result(trace, started, compiled_at, time.perf_counter())
    return posterior, stats, checks, timing


@dataclass(frozen=True)
class _IndependenceResult:
    posterior: Any
    stats: Any
    checks: dict[str, Any]


def _independence(compiled, settings, seed: int) -> _IndependenceResult:
    """An independence run on the compiled model (its own burn-in,
    :data:`~asuc_bayes.inference.population_marginal_imh.IMH_BURN`; doubled once if its
    population parameters fail the gates), kept if usable and passing them; the checks name
    the sampler that will produce the draws and why, its burn-in and thinning."""
    import numpy as np
    import xarray as xr

    from asuc_bayes.inference.population_marginal_imh import (
        IMH_BURN,
        IMH_THIN,
        expanded_posterior,
        independence_posterior,
    )

    def gates(draws) -> str:
        return _gate_failure(expanded_posterior(compiled, draws))

    start = np.asarray(compiled.callbacks.metadata.start, dtype=float)
    outcome = independence_posterior(
        compiled,
        start,
        chains=settings.chains,
        draws=settings.draws,
        burn=IMH_BURN,
        random_seed=seed,
        workers=settings.cores,
        check=gates,
    )
    checks: dict[str, Any] = {
        "sampler_used": "nutpie" if outcome.refused else "imh",
        "imh_refused": outcome.refused,
        "imh_khat": outcome.khat,
        "imh_importance_efficiency": outcome.importance_efficiency,
        "imh_acceptance_min": (
            float(np.min(outcome.acceptance)) if outcome.acceptance is not None else float("nan")
        ),
        "imh_evaluations": outcome.evaluations,
        "imh_extended": int(outcome.extended),
        "imh_adaptations": outcome.adaptations,
        "imh_burn": IMH_BURN,
        "imh_thin": IMH_THIN * (2 if outcome.extended else 1),
    }
    if outcome.refused:
        return _IndependenceResult(None, None, checks)
    posterior = expanded_posterior(compiled, outcome.draws)
    stats = xr.Dataset(
        {"diverging": (("chain", "draw"), np.zeros(outcome.draws.shape[:2], dtype=bool))},
        coords={"chain": posterior["chain"], "draw": posterior["draw"]},
    )
    return _IndependenceResult(posterior, stats, checks)


def _gate_failure(posterior) -> str:
    """Why the population parameters of ``posterior`` fail the gates ("" if they pass)."""
    from asuc_bayes.inference.fit_tree import convergence
    from asuc_bayes.spec.config import PARAMETER_NAMES

    gates = convergence(posterior, 0, PARAMETER_NAMES)
    if gates["converged"]:
        return ""
    return (
        f"gates failed (R-hat {gates['rhat_max']:.4f} at {gates['rhat_max_at']}, "
        f"bulk ESS {gates['ess_bulk_min']:.0f} at {gates['ess_bulk_min_at']})"
    )


def fit_marginal(spec: ModelSpec, priors: PopulationPriors, data, settings, random_seed: int):
    """The marginal fit of :func:`asuc_bayes.inference.population.fit_population`: the rule, NUTS
    over the population parameters, each subject's random effects per draw.

    Returns the posterior (population parameters and, per subject, ``eta_cl``, ``eta_v``,
    ``cl``, ``v``, ``ln_auc_cl``), the sampler statistics, extra diagnostics (the importance
    weights' ESS, the rule's node count) and timings.
    """
    started = time.perf_counter()
    rule = quadrature_rule(spec, data)
    ruled = time.perf_counter()
    if settings.sampler == "pymc":
        posterior, stats, timing = _sample_pymc(spec, priors, data, rule, settings, random_seed)
        sampled = {"sampler_used": "pymc"}
    else:
        posterior, stats, sampled, timing = sample_marginal(
            spec, priors, data, rule, settings, random_seed
        )
    drawn_at = time.perf_counter()
    effects = draw_random_effects(spec, posterior, data, rule, random_seed=random_seed + 1)
    finished = time.perf_counter()
    dims = ("chain", "draw", "subject")
    posterior = posterior.assign(
        {
            name: (dims, getattr(effects, name))
            for name in ("eta_cl", "eta_v", "cl", "v", "ln_auc_cl")
        }
    ).assign_coords(subject=list(data.ids))
    checks = {
        **sampled,
        "importance_ess_min": effects.importance_ess_min,
        "importance_ess_median": effects.importance_ess_median,
        "importance_ess_low_share": effects.importance_ess_low_share,
        "quadrature_nodes": int(rule.n_nodes.sum()),
    }
    timing = {
        **timing,
        "rule_seconds": ruled - started,
        "random_effects_seconds": finished - drawn_at,
    }
    return posterior, stats, checks, timing


def _sample_pymc(spec, priors, data, rule: QuadratureRule, settings, seed: int):
    """:func:`sample_marginal` with PyMC's own NUTS (``sampler="pymc"``)."""
    from asuc_bayes.inference.population.model import INIT_LOG10_HAZARD_AT_REF
    from asuc_bayes.inference.population.sampling import pymc_trace

    started = time.perf_counter()
    model = build_marginal_model(spec, priors, rule.model_data(data))
    compiled_at = time.perf_counter()
    initvals = {"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF}
    trace = pymc_trace(model, settings, seed, initvals)
    return trace_result(trace, started, compiled_at, time.perf_counter())
