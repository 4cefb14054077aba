"""Cost of the external validation (issue 19: 200 patients, three models, <= 3 minutes on
2 cores), beside the cost of its MAP-only part measured in the same run.

Simulates a cohort from niyigena2025 (:mod:`asuc_bayes.studies.validation.simulation`; 2-4 samples
per patient, BLQ below 1 mg/L), gives every patient the covariates the other models need
(albumin ~ U(25, 45) g/L, no antibodies, sex 0/1 at random), and validates it with
niyigena2025, wojciechowski2017 and fasanmade2009:

- in this process (the default engine), with per-stage timings summed over patients and
  models (problem build, a-priori + leave-future-out forecasts with the full posteriors and
  evidences, NPDE + VPC replicates, outcome), the pooling of the patients, and the HTML report;
- the **MAP-only part**: the MAP fits alone of the same patients and models (one per
  leave-future-out prefix and one of all the records: what a MAP-only validation fits);
- with ``--workers 2`` (a local Dask cluster, its start-up included), checked identical to
  the serial run.

Usage: ``python benchmarks/bench_validate.py [--n 200] [--seed 1] [--workers 2]
[--json benchmarks/results/validate-DATE.json]`` (``--workers 1``: serial only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from dataclasses import fields

import numpy as np

from asuc_bayes.inference.engine import Engine
from asuc_bayes.inference.map import find_map, single_threaded_blas
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.interfaces.validation_report import write_validation_report
from asuc_bayes.spec import load_declaration
from asuc_bayes.studies.validation.leave_future_out import prefix
from asuc_bayes.studies.validation.simulation import simulate_validation_cohort
from asuc_bayes.studies.validation.study import StageSeconds, summarise, validate_cohort

MODELS = ("niyigena2025", "wojciechowski2017", "fasanmade2009")


def cohort_and_covariates(n: int, seed: int):
    cohort = simulate_validation_cohort("niyigena2025", n, random_seed=seed)
    rng = np.random.default_rng(seed + 1)
    covariates = {
        p.id: {
            "ALB": (float(rng.uniform(25.0, 45.0)), "g/L"),
            "ADA": 0,
            "ATI": 0,
            "SEX": int(rng.integers(0, 2)),
        }
        for p in cohort
    }
    return cohort, covariates


def map_only_seconds(cohort, covariates) -> tuple[float, int]:
    """Wall time of the MAP fits alone (every prefix of every patient, every model)."""
    n_fits = 0
    declarations = [load_declaration(m) for m in MODELS]
    start = time.perf_counter()
    with single_threaded_blas():
        for patient in cohort:
            for model in declarations:
                problem = PatientProblem.from_patient(model, patient, covariates[patient.id])
                order = np.argsort(problem.time_day, kind="stable")
                problem = dataclasses.replace(
                    problem,
                    time_day=problem.time_day[order],
                    value_mg_l=problem.value_mg_l[order],
                    censoring=problem.censoring[order],
                )
                for k in range(1, problem.time_day.size + 1):
                    past = prefix(problem, k)
                    find_map(past.log_posterior, past.omega)
                    n_fits += 1
    return time.perf_counter() - start, n_fits


def stage_totals(result) -> dict[str, float]:
    totals = {f.name: 0.0 for f in fields(StageSeconds)}
    for patient in result.patients:
        for fit in patient.fits:
            for name in totals:
                totals[name] += getattr(fit.stage_seconds, name)
    return totals


def checks(result) -> dict[str, float | None]:
    own = result.to_json()["models"][0]
    weights = {m["name"]: m["mean_weight"] for m in result.to_json()["models"]}
    return {
        "npde_mean": own["npde"]["mean"],
        "npde_variance": own["npde"]["variance"],
        "npde_p_value": own["npde"]["p_value"],
        "bayesian_coverage_90": own["bayesian"]["coverage_90"],
        "a_priori_coverage_90": own["a_priori"]["coverage_90"],
        **{f"mean_weight_{k}": v for k, v in weights.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="second run's workers (1: none)")
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args()
    load = os.getloadavg()
    cohort, covariates = cohort_and_covariates(args.n, args.seed)

    start = time.perf_counter()  # warm-up: imports, compiled densities, first calls
    validate_cohort(cohort[:2], MODELS, covariates_of=covariates, random_seed=args.seed)
    warm_seconds = time.perf_counter() - start

    start = time.perf_counter()
    serial = validate_cohort(cohort, MODELS, covariates_of=covariates, random_seed=args.seed)
    serial_seconds = time.perf_counter() - start
    start = time.perf_counter()
    summarise(serial.patients)
    pooling_seconds = time.perf_counter() - start
    stages = stage_totals(serial)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_validation_report(serial, folder, random_seed=args.seed)
        report_seconds = time.perf_counter() - start

    map_seconds, n_map_fits = map_only_seconds(cohort, covariates)

    parallel_seconds = None
    identical = None
    if args.workers > 1:
        start = time.perf_counter()
        parallel = validate_cohort(
            cohort,
            MODELS,
            covariates_of=covariates,
            random_seed=args.seed,
            engine=Engine(workers=args.workers),
        )
        parallel_seconds = time.perf_counter() - start
        identical = all(
            a.fits[m].log_marginal == b.fits[m].log_marginal
            and np.array_equal(a.fits[m].npde, b.fits[m].npde)
            for a, b in zip(serial.patients, parallel.patients, strict=True)
            for m in range(len(MODELS))
        )

    n_records = serial.n_concentrations
    print(
        f"{args.n} patients ({n_records} concentrations, {len(serial.skipped)} skipped), "
        f"models {', '.join(MODELS)}; load average before the run {load[0]:.2f}"
    )
    print(f"  warm-up (2 patients: imports, compiled densities): {warm_seconds:6.1f} s")
    print(
        f"  validation in this process:  {serial_seconds:6.1f} s "
        f"({serial_seconds / args.n * 1000:.0f} ms/patient; target <= 180 s)"
    )
    for name, seconds in stages.items():
        print(f"    {name:<10} {seconds:6.1f} s  (summed over patients and models)")
    print(f"    pooling    {pooling_seconds:6.1f} s")
    print(f"  HTML report:                 {report_seconds:6.1f} s")
    print(
        f"  MAP-only part ({n_map_fits} MAP fits, same patients and models): {map_seconds:6.1f} s;"
        f" validation / MAP-only = {serial_seconds / map_seconds:.1f}x"
    )
    if parallel_seconds is not None:
        print(
            f"  validation on {args.workers} workers (cluster start included): "
            f"{parallel_seconds:6.1f} s; identical to the serial run: {identical}"
        )
    found = checks(serial)
    print("  checks (niyigena2025 simulates the cohort): " + json.dumps(found))
    if args.json:
        record = {
            "n_patients": args.n,
            "n_concentrations": n_records,
            "models": MODELS,
            "load_average_before": load,
            "warm_up_seconds": warm_seconds,
            "serial_seconds": serial_seconds,
            "stage_seconds": stages,
            "pooling_seconds": pooling_seconds,
            "report_seconds": report_seconds,
            "map_only_seconds": map_seconds,
            "map_fits": n_map_fits,
            "workers": args.workers,
            "parallel_seconds": parallel_seconds,
            "parallel_identical": identical,
            "checks": found,
        }
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
