"""The marginal fit's compilation, each in a fresh process, on the simulated cohort 1000·n + 1
(as the gates study): the baseline ``nutpie.compile_pymc_model`` (what the fit did until
2026-12-07), then the disk-cached callbacks of
:mod:`asuc_bayes.inference.population_marginal_callback` with an empty cache (cold) and again
(warm, a later process); then, in one process, NUTS on both compiled models with the same seed
(the same draws, checked) taking turns, so that the ratio of their sampling times is the cost
of a leapfrog step through either.

Usage: ``python benchmarks/bench_marginal_compile.py [n] [--rounds R]`` (default 120 subjects,
2 rounds; ~3 min).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def cohort_values(n: int):
    from asuc_bayes.inference.population import CohortData
    from asuc_bayes.inference.population_marginal import quadrature_rule
    from asuc_bayes.spec.config import load_model
    from asuc_bayes.studies.simulate import simulate_cohort

    spec = load_model()
    cohort = simulate_cohort(spec, n, random_seed=1000 * n + 1)
    data = CohortData.from_patients(cohort.patients, spec.pk.default_infusion_duration_day)
    return spec, spec.priors("weak"), quadrature_rule(spec, data).model_data(data)


def compile_model(mode: str, spec, priors, values):
    """The compiled model of ``mode`` (``nutpie`` or ``callbacks``) and whether it was
    loaded from the cache."""
    from asuc_bayes.inference.population.model import INIT_LOG10_HAZARD_AT_REF, compile_jittered
    from asuc_bayes.inference.population_marginal import _graph_data, build_marginal_model
    from asuc_bayes.inference.population_marginal_callback import MarginalCallbacks

    initial = {"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF}
    if mode == "nutpie":
        model = compile_jittered(build_marginal_model(spec, priors, values), initial)
        return model.with_data(**_graph_data(values)), False
    callbacks = MarginalCallbacks(spec, priors, values, initial)
    return callbacks.model(_graph_data(values)), callbacks.loaded_from_cache


def child(mode: str, n: int) -> None:
    spec, priors, values = cohort_values(n)
    started = time.perf_counter()
    _, cached = compile_model(mode, spec, priors, values)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "from_cache": cached}))


def run_child(mode: str, n: int, cache: str) -> dict:
    env = {**os.environ, "ASUC_BAYES_CACHE_DIR": cache}
    out = subprocess.run(
        [sys.executable, __file__, str(n), "--child", mode],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def sampling(n: int, rounds: int, cache: str) -> None:
    import numpy as np
    import nutpie

    os.environ["ASUC_BAYES_CACHE_DIR"] = cache
    spec, priors, values = cohort_values(n)
    models = {
        mode: compile_model(mode, spec, priors, values)[0] for mode in ("nutpie", "callbacks")
    }
    options = {"draws": 200, "tune": 200, "chains": 4, "cores": 2, "seed": 5, "progress_bar": False}
    seconds = {mode: [] for mode in models}
    for _ in range(rounds):
        traces = {}
        for mode, model in models.items():
            started = time.perf_counter()
            traces[mode] = nutpie.sample(model, **options)
            seconds[mode].append(time.perf_counter() - started)
        same = all(
            np.array_equal(
                traces["nutpie"].posterior[k].values, traces["callbacks"].posterior[k].values
            )
            for k in traces["nutpie"].posterior.data_vars
        )
        steps = int(traces["callbacks"].sample_stats["n_steps"].sum())
        print(
            f"  sampling 4 x (200 + 200), {steps} kept-draw leapfrog steps: nutpie "
            f"{seconds['nutpie'][-1]:.1f} s, callbacks {seconds['callbacks'][-1]:.1f} s "
            f"(ratio {seconds['nutpie'][-1] / seconds['callbacks'][-1]:.2f}), same draws {same}, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=["nutpie", "callbacks"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n)
        return
    with tempfile.TemporaryDirectory() as cache:
        baseline = run_child("nutpie", args.n, cache)
        cold = run_child("callbacks", args.n, cache)
        warm = run_child("callbacks", args.n, cache)
        print(
            f"n={args.n}: compilation in a fresh process: nutpie.compile_pymc_model "
            f"{baseline['seconds']:.1f} s; cached callbacks cold {cold['seconds']:.1f} s "
            f"(from cache {cold['from_cache']}), warm {warm['seconds']:.2f} s (from cache "
            f"{warm['from_cache']}; {baseline['seconds'] / warm['seconds']:.0f}x faster than "
            f"the baseline), load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        sampling(args.n, args.rounds, cache)


if __name__ == "__main__":
    main()
