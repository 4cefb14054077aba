"""The marginal population fit: the compiled marginal model (one compilation per process),
NUTS over the population parameters, then each subject's random effects per draw
(:mod:`asuc_bayes.inference.population_effects`)."""

from __future__ import annotations

import time
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
    """NUTS (nutpie) over the population parameters: posterior and sampler statistics
    (xarray Datasets) and the compile/sampling times."""
    from asuc_bayes.inference.population.sampling import nutpie_trace

    started = time.perf_counter()
    compiled = _compiled(spec, priors, rule.model_data(data))
    compiled_at = time.perf_counter()
    trace = nutpie_trace(compiled, settings, seed)
    return trace_result(trace, started, compiled_at, time.perf_counter())


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
    if settings.sampler == "nutpie":
        posterior, stats, timing = sample_marginal(spec, priors, data, rule, settings, random_seed)
    else:
        posterior, stats, timing = _sample_pymc(spec, priors, data, rule, settings, random_seed)
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
