"""Speed of the generic (library-model) forecast beside today's two-effect Forecaster.

Run with ``.venv/bin/python benchmarks/bench_library.py``. On the bundled example patients,
in one process and one run (the machine is shared: compare the ratios):

- today's :class:`asuc_bayes.Forecaster` (niyigena2025, 2 random effects): warm posterior
  (its default: exact mode scan, MAP, IMH, gates, derived quantities and curves) and MAP;
- the generic path (:func:`asuc_bayes.inference.forecast_problem`) on niyigena2025 (2 random
  effects) and on wojciechowski2017 (4 random effects; albumin 4 g/dL, no antibodies):
  warm posterior (MAP, IMH 4 x 1000 draws, gates, derived quantities, result) and MAP alone.

Targets (issue 16): four random effects, warm posterior <= 0.25 s and MAP <= 30 ms per patient.
Prints one JSON object (medians over patients, seconds) with the load average before and after.

Options: ``--patients N`` (first N example patients), ``--repeat R`` (timings per patient, the
minimum is kept: the least disturbed run on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from asuc_bayes import Forecaster, example_path, load_model, read_patients
from asuc_bayes.inference import PatientProblem, find_map, forecast_problem
from asuc_bayes.inference.map import single_threaded_blas
from asuc_bayes.spec import load_declaration

EXTRA_COVARIATES = {"wojciechowski2017": {"ALB": (4.0, "g/dL"), "ADA": 0}, "niyigena2025": {}}


def best_of(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    patients = list(read_patients(example_path()).patients)[: args.patients]
    load_before = os.getloadavg()
    spec = load_model()
    forecaster = Forecaster(spec)
    forecaster.forecast(patients[0], random_seed=0)  # compile / load the cached densities
    results: dict[str, list[float]] = {}

    def record(key: str, seconds: float) -> None:
        results.setdefault(key, []).append(seconds)

    problems = {
        name: [
            PatientProblem.from_patient(load_declaration(name), p, EXTRA_COVARIATES[name])
            for p in patients
        ]
        for name in EXTRA_COVARIATES
    }
    for problem in problems["wojciechowski2017"][:1]:  # warm imports and caches
        forecast_problem(problem, "warm", random_seed=0)
    for i, patient in enumerate(patients):
        record(
            "today_2re_posterior", best_of(lambda p=patient: forecaster.forecast(p), args.repeat)
        )
        record("today_2re_map", best_of(lambda p=patient: forecaster.map_estimate(p), args.repeat))
        for name, key in (("niyigena2025", "generic_2re"), ("wojciechowski2017", "generic_4re")):
            problem = problems[name][i]

            def posterior(problem=problem, seed=i):
                return forecast_problem(problem, str(seed), random_seed=seed)

            def mode(problem=problem):
                with single_threaded_blas():
                    return find_map(problem.log_posterior, problem.omega)

            record(f"{key}_posterior", best_of(posterior, args.repeat))
            record(f"{key}_map", best_of(mode, args.repeat))
            result = posterior()
            results.setdefault(f"{key}_status", []).append(result.status)  # type: ignore[arg-type]
    medians = {k: statistics.median(v) for k, v in results.items() if not k.endswith("_status")}
    out = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "patients": len(patients),
        "repeat": args.repeat,
        "median_seconds": medians,
        "ratios": {
            "generic_4re_posterior / today_2re_posterior": medians["generic_4re_posterior"]
            / medians["today_2re_posterior"],
            "generic_2re_posterior / today_2re_posterior": medians["generic_2re_posterior"]
            / medians["today_2re_posterior"],
            "generic_4re_map / today_2re_map": medians["generic_4re_map"]
            / medians["today_2re_map"],
        },
        "targets": {
            "generic_4re_posterior <= 0.25 s": medians["generic_4re_posterior"] <= 0.25,
            "generic_4re_map <= 0.030 s": medians["generic_4re_map"] <= 0.030,
        },
        "status": {k: v for k, v in results.items() if k.endswith("_status")},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
