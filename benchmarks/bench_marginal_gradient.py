"""The marginal population fit's cost per log density + gradient against cohort size, in one
run: for each size, the simulated cohort 1000·n + 1 (as the gates study), its rule (nodes,
censored observation-node pairs, seconds to build) and the mean time of 30 evaluations of the
compiled log density and gradient (PyTensor's default backend, numba, as nutpie compiles it)
at the initial point; in the same run, as a baseline, the same for the full model (every
subject's random effects sampled, ``build_population_model(..., "joint")``) on the same
cohort, and their ratio.

Usage: ``python benchmarks/bench_marginal_gradient.py 120 300 1000`` (~5 min; ~2 GB at 1000).
"""

import os
import sys
import time

import pytensor

import asuc_bayes.inference.population_marginal as M
from asuc_bayes.inference.population import CohortData
from asuc_bayes.inference.population.model import build_population_model
from asuc_bayes.spec.config import load_model
from asuc_bayes.studies.simulate import simulate_cohort


def main(sizes: list[int]) -> None:
    spec = load_model()
    priors = spec.priors("weak")
    for n in sizes:
        measure(spec, priors, n)


def measure(spec, priors, n: int) -> None:
    cohort = simulate_cohort(spec, n, random_seed=1000 * n + 1)
    data = CohortData.from_patients(cohort.patients, spec.pk.default_infusion_duration_day)
    t = time.perf_counter()
    rule = M.quadrature_rule(spec, data)
    rule_s = time.perf_counter() - t
    values = rule.model_data(data)
    ms = gradient_ms(M.build_marginal_model(spec, priors, values))
    full_ms = gradient_ms(build_population_model(spec, priors, data, "joint"))
    nodes = int(rule.n_nodes.sum())
    pairs = len(values["censored_node"]) + len(values["scaled_node"])
    print(
        f"n={n}: rule {rule_s:.0f} s, nodes {nodes}, censored pairs {pairs}, "
        f"logp+grad {ms:.1f} ms (full model {full_ms:.3f} ms, ratio {ms / full_ms:.0f}), "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def gradient_ms(model, reps: int = 30) -> float:
    """Mean milliseconds of one compiled log density + gradient at the initial point."""
    ip = model.initial_point()
    vs = model.value_vars
    f = pytensor.function(vs, [model.logp(), *pytensor.grad(model.logp(), vs)])
    args = [ip[v.name] for v in vs]
    for _ in range(3):
        f(*args)
    t = time.perf_counter()
    for _ in range(reps):
        f(*args)
    return (time.perf_counter() - t) / reps * 1e3


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [120, 300, 1000])
