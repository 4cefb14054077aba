"""Speed and scale: cost per patient and throughput for 1–1000 patients, cold and warm, and how
the population fit time grows with the cohort.

Run with ``make bench-scale`` (or ``.venv/bin/python benchmarks/bench_scale.py``). Virtual
patients come from :func:`asuc_bayes.studies.simulate.simulate_patients` (fixed seed); a batch of n
is
the first n of them. Measured, all in one run:

- **warm**, in this process after a warm-up forecast of another patient: the posterior path
  (:func:`asuc_bayes.inference.batch.forecast_batch`: MAP, mode scan, NUTS or the exact-grid
  fallback,
  gates, summary) in this process with nutpie's threads on every core (the library default),
  in this process with one core (``cores=1``), and on a local Dask cluster of ``--workers``
  single-core worker processes (cluster start and loading the compiled densities in every
  worker included: a new cluster per batch, as the CLI does); the MAP path
  (``Forecaster.map_estimate``) for every patient, and the exact-grid reference
  (:func:`exact_forecast`, 401² quadrature, the same draws and summary) for the first
  ``--grid-max`` (100) patients of a batch — its cost per patient is flat, and 1000 grid
  posteriors would take longer than everything else together. Ratios posterior/MAP and
  posterior/grid are of these same-run measurements, per patient. The steady throughput of a
  batch is (n − 1) / (time of the last result − time of the first), from
  ``forecast_batch``'s progress callback: it excludes start-up.
- **cold**: a fresh Python process with empty PyTensor and numba caches (temporary
  directories) doing the same for 1 and 10 patients, per path: time to the first result and
  total, from the start of the process (imports included).
- **gates**: of the posteriors, how many passed the gates (no divergence, R-hat ≤ 1.01, bulk
  ESS ≥ 400), how many came from the independence sampler (the default), from NUTS and from
  the exact-grid fallback (bimodal), how many needed a second attempt ("retried": NUTS after
  an independence-sampler gate failure, or NUTS escalated to target_accept 0.99), divergences
  (``diagnostics`` of the rows).
- **population**: :func:`fit_population` (joint, weak priors, 4 chains × 1000 draws by
  default) on :func:`simulate_cohort` cohorts of 36, 72, 144 and 288 subjects: seconds (total,
  compile, sampling), seconds per subject, the log–log slope of time against subjects
  (≤ 1: no worse than linear), divergences and gates per fit.

Every table is printed as Markdown (for ``benchmarks/README.md``); ``--out FILE.json`` keeps
the raw numbers. The machine is shared: the load average is printed before and after.

Options: ``--sizes 1,10,100,1000``, ``--quick`` (1,10,100 and population 36,72),
``--workers 2``, ``--sampler NAME`` (``SamplerSettings.sampler``; default: the library's),
``--seed 1``, ``--grid-max 100``, ``--population-sizes 36,72,144,288``,
``--population-draws N`` (and tune), ``--skip-single-core``, ``--skip-workers``,
``--skip-cold``, ``--skip-population``, ``--skip-patients``, ``--out FILE.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from asuc_bayes import load_model
from asuc_bayes.inference.batch import forecast_batch
from asuc_bayes.inference.engine import Engine
from asuc_bayes.inference.forecast import (
    SamplerSettings,
    exact_forecast,
    forecaster_for,
    patient_seed,
)
from asuc_bayes.inference.population import PopulationSettings, fit_population
from asuc_bayes.studies.simulate import simulate_cohort, simulate_patients

DEFAULT_SIZES = (1, 10, 100, 1000)
QUICK_SIZES = (1, 10, 100)
COLD_SIZES = (1, 10)
POPULATION_SIZES = (36, 72, 144, 288)
QUICK_POPULATION_SIZES = (36, 72)
LIBRARIES = (
    "pymc",
    "pytensor",
    "nutpie",
    "numba",
    "numpy",
    "scipy",
    "arviz",
    "dask",
    "distributed",
)


# -- helpers ----------------------------------------------------------------------------------
def virtual_patients(n: int, seed: int):
    """The first ``n`` virtual patients of the benchmark (same seed: same patients)."""
    return list(simulate_patients(load_model(), n, random_seed=seed).patients)


def sampler_settings(sampler: str | None) -> SamplerSettings:
    """The library's default settings, with ``sampler`` if one is given."""
    return SamplerSettings() if sampler is None else SamplerSettings(sampler=sampler)


def timed_batch(patients, spec, settings, seed, engine) -> dict:
    """``forecast_batch`` with completion times: total, first result, steady throughput, gates."""
    finished: list[float] = []
    start = time.perf_counter()
    result = forecast_batch(
        patients,
        spec,
        settings=settings,
        random_seed=seed,
        engine=engine,
        progress=lambda done, total: finished.append(time.perf_counter()),
    )
    total = time.perf_counter() - start
    n = len(patients)
    steady = (
        (n - 1) / (finished[-1] - finished[0]) if n > 1 and finished[-1] > finished[0] else None
    )
    return {
        "n": n,
        "seconds": total,
        "first_result_seconds": finished[0] - start,
        "steady_patients_per_s": steady,
        **gate_counts(result.rows),
    }


def gate_counts(rows) -> dict:
    """Statuses, methods, escalations and divergences of a batch's rows."""
    counts = {
        "ok": 0,
        "unconverged": 0,
        "error": 0,
        "independence_mh": 0,
        "nuts": 0,
        "exact_grid": 0,
        "escalated": 0,
    }
    divergences = 0
    errors = []
    for row in rows:
        counts[row.status] += 1
        if row.summary is None:
            errors.append(row.error)
            continue
        diagnostics = row.summary["diagnostics"]
        counts[diagnostics["method"]] += 1
        counts["escalated"] += int(diagnostics["attempts"] > 1)
        divergences += int(diagnostics["divergences"])
    return {**counts, "divergences": divergences, "errors": errors[:3]}


def timed_loop(function, patients) -> dict:
    """Seconds of ``function(patient)`` over ``patients``, and the time to the first."""
    start = time.perf_counter()
    first = None
    for patient in patients:
        function(patient)
        if first is None:
            first = time.perf_counter() - start
    return {
        "n": len(patients),
        "seconds": time.perf_counter() - start,
        "first_result_seconds": first,
    }


def map_path(spec):
    forecaster = forecaster_for(spec)
    return forecaster.map_estimate


def grid_path(spec, settings: SamplerSettings, seed: int):
    grid_settings = replace(settings, method="exact_grid")

    def run(patient):
        return exact_forecast(
            spec, patient, settings=grid_settings, random_seed=patient_seed(seed, patient.id)
        ).summary()

    return run


# -- cold processes ---------------------------------------------------------------------------
def cold_child(path: str, n: int, seed: int, sampler: str | None, spawned_epoch: float) -> None:
    """Body of a cold process (``--cold-child``): one path on ``n`` patients, JSON on stdout.

    Times are counted from ``spawned_epoch`` (the parent's ``time.time()`` just before it
    started this interpreter), so interpreter start and imports are included.
    """
    spec = load_model()
    patients = virtual_patients(n, seed)
    settings = sampler_settings(sampler)
    ready = time.time() - spawned_epoch
    if path == "posterior":
        out = timed_batch(patients, spec, settings, seed, Engine())
    elif path == "map":
        out = timed_loop(map_path(spec), patients)
    else:
        out = timed_loop(grid_path(spec, settings, seed), patients)
    out["process_seconds"] = time.time() - spawned_epoch
    out["import_seconds"] = ready
    out["first_result_seconds"] += ready
    print(json.dumps(out))


def cold_process(path: str, n: int, seed: int, sampler: str | None) -> dict:
    """A fresh interpreter with empty compile caches running ``path`` on ``n`` patients."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-cold-") as cache:
        env = {
            **os.environ,
            "PYTENSOR_FLAGS": f"base_compiledir={cache}",
            "NUMBA_CACHE_DIR": os.path.join(cache, "numba"),
        }
        command = [sys.executable, "-W", "ignore", os.path.abspath(__file__)]
        command += ["--cold-child", path, "--cold-n", str(n), "--seed", str(seed)]
        if sampler is not None:
            command += ["--sampler", sampler]
        command += ["--cold-epoch", repr(time.time())]
        out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"cold {path} process failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- measurements -----------------------------------------------------------------------------
def warm_patients(spec, args, settings, report) -> None:
    patients = virtual_patients(max(args.sizes), args.seed)
    warmup = virtual_patients(1, args.seed + 1000)[0]
    warmup = replace(warmup, id="WARMUP")
    forecaster = forecaster_for(spec)
    forecaster.forecast(warmup, random_seed=0, settings=settings)  # load densities, first run
    exact_forecast(spec, warmup, settings=replace(settings, method="exact_grid"))
    map_run, grid_run = map_path(spec), grid_path(spec, settings, args.seed)
    engines = [("threads", lambda: Engine(), settings)]
    if not args.skip_single_core:
        engines.append(("one_core", lambda: Engine(), replace(settings, cores=1)))
    if not args.skip_workers:
        engines.append(("workers", lambda: Engine(workers=args.workers), settings))
    report["warm"] = []
    for n in args.sizes:
        batch = patients[:n]
        entry = {"n": n}
        for name, make_engine, engine_settings in engines:
            entry[name] = timed_batch(batch, spec, engine_settings, args.seed, make_engine())
            progress(f"warm posterior {name} n={n}: {entry[name]['seconds']:.1f} s")
        entry["map"] = timed_loop(map_run, batch)
        entry["grid"] = timed_loop(grid_run, batch[: args.grid_max])
        progress(
            f"warm MAP n={n}: {entry['map']['seconds']:.2f} s, "
            f"grid {entry['grid']['seconds']:.1f} s"
        )
        entry["load"] = os.getloadavg()[0]
        report["warm"].append(entry)
        save(report, args.out)


def cold_patients(args, report) -> None:
    report["cold"] = []
    for n in [s for s in COLD_SIZES if s <= max(args.sizes)]:
        entry = {"n": n}
        for path in ("posterior", "map", "grid"):
            entry[path] = cold_process(path, n, args.seed, args.sampler)
            progress(f"cold {path} n={n}: {entry[path]['process_seconds']:.1f} s")
        entry["load"] = os.getloadavg()[0]
        report["cold"].append(entry)
        save(report, args.out)


def population(spec, args, report) -> None:
    settings = PopulationSettings()
    if args.population_draws is not None:
        settings = replace(settings, draws=args.population_draws, tune=args.population_draws)
    report["population_settings"] = {
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "target_accept": settings.target_accept,
        "sampler": settings.sampler,
    }
    report["population"] = []
    for n in args.population_sizes:
        cohort = simulate_cohort(spec, n, random_seed=args.seed)
        start = time.perf_counter()
        fit = fit_population(cohort.patients, spec, settings=settings, random_seed=args.seed)
        seconds = time.perf_counter() - start
        d = fit.diagnostics
        entry = {
            "n": n,
            "seconds": seconds,
            "compile_seconds": d["compile_seconds"],
            "sampling_seconds": d["sampling_seconds"],
            "divergences": d["divergences"],
            "rhat_max": d["rhat_max"],
            "rhat_max_at": d["rhat_max_at"],
            "ess_bulk_min": d["ess_bulk_min"],
            "ess_bulk_min_at": d["ess_bulk_min_at"],
            "converged": bool(d["converged"]),
            "load": os.getloadavg()[0],
            # leapfrog steps of the kept draws: sampling time = steps x time per step
            "leapfrog_steps": int(fit.tree["sample_stats"]["n_steps"].sum()),
        }
        progress(f"population n={n}: {seconds:.0f} s, {entry['divergences']} divergences")
        report["population"].append(entry)
        total, sampling = population_slopes(report["population"])
        report["population_slope"] = {"total": total, "sampling": sampling}
        save(report, args.out)


def population_slopes(entries) -> tuple[float | None, float | None]:
    """Log–log slopes of the total and the sampling seconds against subjects."""
    sizes = [e["n"] for e in entries]
    return (
        loglog_slope(sizes, [e["seconds"] for e in entries]),
        loglog_slope(sizes, [e["sampling_seconds"] for e in entries]),
    )


def loglog_slope(sizes, seconds) -> float | None:
    """Least-squares slope of ln(seconds) against ln(sizes) (None with fewer than 2 sizes)."""
    if len(sizes) < 2:
        return None
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


# -- tables -----------------------------------------------------------------------------------
def fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def per(entry, scale: float = 1.0) -> str:
    return fmt(scale * entry["seconds"] / entry["n"], 3 if scale == 1.0 else 1)


def per_patient(entry) -> float:
    return entry["seconds"] / entry["n"]


def rate(entry) -> str:
    return fmt(entry["n"] / entry["seconds"], 1)


def print_report(report: dict) -> None:
    """The header (date, machine, settings, load) and every table, in Markdown."""
    m = report["machine"]
    print(f"## Scale benchmark, {report['date']}\n")
    print(
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    )
    s = report["settings"]
    print(
        f"Posterior: {s['chains']} chains × {s['draws']} draws + {s['tune']} tune, sampler "
        f"{s['sampler']}, target_accept {s['target_accept']}, seed {s['seed']}. Load average "
        f"before {fmt(report['load_before'][0])}, after "
        f"{fmt(report.get('load_after', [None])[0])} (1-minute averages)."
    )
    print_tables(report)


def print_tables(report) -> None:
    if report.get("warm"):
        print("\n### Warm, one process (after a warm-up forecast)\n")
        print(
            "| patients | posterior s | posterior s/patient | posterior patients/s | "
            "MAP ms/patient | MAP patients/s | grid s/patient | grid patients/s | "
            "posterior/MAP | posterior/grid | load |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for e in report["warm"]:
            p, m, g = e["threads"], e["map"], e["grid"]
            print(
                f"| {e['n']} | {fmt(p['seconds'], 1)} | {per(p)} | {rate(p)} | "
                f"{per(m, 1000)} | {rate(m)} | {per(g)} | {rate(g)} | "
                f"{fmt(per_patient(p) / per_patient(m), 0)} | "
                f"{fmt(per_patient(p) / per_patient(g))} | "
                f"{fmt(e['load'], 1)} |"
            )
        engines = [k for k in ("threads", "one_core", "workers") if k in report["warm"][0]]
        label = {
            "threads": "this process, all cores",
            "one_core": "this process, 1 core",
            "workers": f"{report['settings']['workers']} workers",
        }
        print("\n### Posterior throughput by engine (warm)\n")
        print(
            "| patients | engine | total s | first result s | patients/s (total) | "
            "patients/s (steady) | ×1 core (steady) |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|")
        for e in report["warm"]:
            base = e.get("one_core", {}).get("steady_patients_per_s")
            for k in engines:
                r = e[k]
                steady = r["steady_patients_per_s"]
                ratio = steady / base if steady and base else None
                print(
                    f"| {e['n']} | {label[k]} | {fmt(r['seconds'], 1)} | "
                    f"{fmt(r['first_result_seconds'])} | {rate(r)} | {fmt(steady, 2)} | "
                    f"{fmt(ratio)} |"
                )
        print("\n### Gates of the posteriors (warm batches)\n")
        print(
            "| patients | engine | ok | unconverged | error | independence MH | NUTS | exact_grid "
            "| retried | divergences |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for e in report["warm"]:
            for k in engines:
                r = e[k]
                print(
                    f"| {e['n']} | {label[k]} | {r['ok']} | {r['unconverged']} | {r['error']} | "
                    f"{r.get('independence_mh', 0)} | {r['nuts']} | {r['exact_grid']} | "
                    f"{r['escalated']} | {r['divergences']} |"
                )
    if report.get("cold"):
        print("\n### Cold: a fresh process with empty compile caches (imports included)\n")
        print(
            "| patients | path | imports s | first result s | total s | warm total s | "
            "cold − warm s |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|")
        warm = {e["n"]: e for e in report.get("warm", [])}
        for e in report["cold"]:
            for path, warm_key in (("posterior", "threads"), ("map", "map"), ("grid", "grid")):
                c = e[path]
                w = warm.get(e["n"], {}).get(warm_key)
                w_seconds = w["seconds"] if w else None
                print(
                    f"| {e['n']} | {path} | {fmt(c['import_seconds'], 1)} | "
                    f"{fmt(c['first_result_seconds'], 1)} | {fmt(c['process_seconds'], 1)} | "
                    f"{fmt(w_seconds, 2)} | "
                    f"{fmt(c['process_seconds'] - w_seconds if w_seconds else None, 1)} |"
                )
    if report.get("population"):
        s = report["population_settings"]
        print(
            f"\n### Population fit (joint, weak priors, {s['chains']} chains × {s['draws']} "
            f"draws + {s['tune']} tune, {s['sampler']})\n"
        )
        print(
            "| subjects | total s | compile s | sampling s | s/subject | leapfrog steps per "
            "draw | ≈ µs per step | divergences | R-hat max | ESS bulk min | gates "
            "| load |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        draws = s["chains"] * s["draws"]
        for e in report["population"]:
            steps = e.get("leapfrog_steps")
            print(
                f"| {e['n']} | {fmt(e['seconds'], 0)} | {fmt(e['compile_seconds'], 0)} | "
                f"{fmt(e['sampling_seconds'], 0)} | {fmt(e['seconds'] / e['n'])} | "
                f"{fmt(steps / draws if steps else None, 1)} | "
                f"{fmt(1e6 * e['sampling_seconds'] / (steps * 2) if steps else None, 0)} | "
                f"{e['divergences']} | {fmt(e['rhat_max'], 3)} ({e['rhat_max_at']}) | "
                f"{fmt(e['ess_bulk_min'], 0)} ({e['ess_bulk_min_at']}) | "
                f"{'pass' if e['converged'] else 'FAIL'} | {fmt(e['load'], 1)} |"
            )
        total, sampling = population_slopes(report["population"])
        print(
            f"\nlog–log slope of time against subjects: total {fmt(total)}, sampling "
            f"{fmt(sampling)} (1 = linear)"
        )
        entries = [e for e in report["population"] if e.get("leapfrog_steps")]
        if len(entries) >= 2:
            sizes = [e["n"] for e in entries]
            steps_slope = loglog_slope(sizes, [e["leapfrog_steps"] for e in entries])
            per_step = loglog_slope(
                sizes, [e["sampling_seconds"] / e["leapfrog_steps"] for e in entries]
            )
            print(
                f"sampling slope = leapfrog steps per draw {fmt(steps_slope)} + time per step "
                f"{fmt(per_step)} (one gradient of the log density per step; the sampling "
                "time also counts the tuning steps, which are not kept: µs per step assumes "
                "as many tuning steps as kept ones)"
            )


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        mem_kb = int(handle.readline().split()[1])
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:  # a missing library is reported, not fatal
            versions[name] = "missing"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "versions": versions,
    }


def save(report: dict, path: str | None) -> None:
    """Write the numbers so far (a long run interrupted late keeps what it measured)."""
    if path:
        with open(path, "w") as handle:
            json.dump(report, handle, indent=2, default=float)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sizes_option(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1,10,100, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive whole numbers, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes_option, default=None)
    parser.add_argument("--quick", action="store_true", help="sizes 1,10,100; population 36,72")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--sampler", default=None, help="SamplerSettings.sampler (default: library)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--population-sizes", type=sizes_option, default=None)
    parser.add_argument("--population-draws", type=int, default=None, help="draws = tune = N")
    parser.add_argument(
        "--grid-max",
        type=int,
        default=100,
        help="time the exact grid on at most this many patients of a batch (per-patient cost)",
    )
    parser.add_argument("--skip-patients", action="store_true")
    parser.add_argument("--skip-single-core", action="store_true")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--skip-population", action="store_true")
    parser.add_argument("--out", default=None, help="write the raw numbers as JSON")
    parser.add_argument("--tables-from", default=None, help="print the tables of a saved --out")
    parser.add_argument(
        "--cold-child", choices=("posterior", "map", "grid"), help=argparse.SUPPRESS
    )
    parser.add_argument("--cold-n", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--cold-epoch", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.ERROR)
    if args.cold_child:
        cold_child(args.cold_child, args.cold_n, args.seed, args.sampler, args.cold_epoch)
        return
    if args.tables_from:
        with open(args.tables_from) as handle:
            print_report(json.load(handle))
        return
    args.sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    args.population_sizes = args.population_sizes or (
        QUICK_POPULATION_SIZES if args.quick else POPULATION_SIZES
    )
    try:
        settings = sampler_settings(args.sampler)
    except ValueError as exc:
        parser.error(f"--sampler: {exc}")
    if args.workers < 2 and not args.skip_workers:
        parser.error("--workers must be at least 2 (1 worker is this process); or --skip-workers")

    spec = load_model()
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "load_before": os.getloadavg(),
        "settings": {
            "draws": settings.draws,
            "tune": settings.tune,
            "chains": settings.chains,
            "sampler": settings.sampler,
            "target_accept": settings.target_accept,
            "seed": args.seed,
            "workers": args.workers,
        },
    }
    if not args.skip_patients:
        warm_patients(spec, args, settings, report)
        if not args.skip_cold:
            cold_patients(args, report)
    if not args.skip_population:
        population(spec, args, report)
    report["load_after"] = os.getloadavg()

    save(report, args.out)
    print_report(report)


if __name__ == "__main__":
    main()
