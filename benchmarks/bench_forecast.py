"""Speed of individual forecasting, as ratios against baselines measured in the same run.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_forecast.py``). Measures,
on the bundled example patients:

- warm full posterior per patient (asuc_bayes: MAP + Laplace whitening + nutpie NUTS,
  4 chains x 1000 draws after 1000 tuning, derived quantities and curves);
- warm MAP (posterior mode + Laplace covariance) per patient;
- the exact-grid posterior (401 x 401 quadrature, :mod:`asuc_bayes.inference.grid`) per patient;
- plain ``pm.sample`` (PyMC's NUTS, non-centred η, default target_accept, same draws) on
  the plain PyMC model of the same patient;
- a first process (import, compile with an empty PyTensor cache, one forecast) and a later
  process reusing the compile cache, each beside a plain-PyMC process doing the same;
- the cost of the stated precision: draws per chain and warm time (median of 3) of the
  default adaptive run against a fixed 4 x 1000-draw run, with the worst tail-quantile MCSE
  of each (``--precision-only``: this part alone).

The machine is shared and noisy: compare the ratios, not the absolute seconds.

Options: ``--patients N`` (first N example patients), ``--skip-processes``,
``--precision-only``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

import pymc as pm

from asuc_bayes import Forecaster, example_path, load_model, read_patients
from asuc_bayes.graphs.model import (
    PatientData,
    censored_concentrations,
    data_dims,
    individual_parameters,
    omega_vector,
)
from asuc_bayes.inference.forecast import SamplerSettings
from asuc_bayes.inference.grid import grid_posterior

DRAWS, TUNE, CHAINS = 1000, 1000, 4


def plain_pymc_model(spec, patient) -> pm.Model:
    """The textbook non-centred individual model: η ~ N(0, ω²), censored observations."""
    data = PatientData.from_patient(patient)
    with pm.Model(coords={"random_effect": ["cl", "v"], **data.coords}) as model:
        bound = {
            name: pm.Data(name, value, dims=data_dims(name))
            for name, value in data.as_data().items()
        }
        z = pm.Normal("z", 0.0, 1.0, dims="random_effect")
        eta = pm.Deterministic("eta", z * omega_vector(spec), dims="random_effect")
        cl, v = individual_parameters(spec, bound, eta)
        censored_concentrations(spec, bound, cl, v)
    return model


def plain_pm_sample(spec, patient, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # divergence warnings are the point of the baseline
        trace = pm.sample(
            draws=DRAWS,
            tune=TUNE,
            chains=CHAINS,
            cores=2,
            random_seed=seed,
            progressbar=False,
            compute_convergence_checks=False,
            model=plain_pymc_model(spec, patient),
        )
    return int(trace["sample_stats"]["diverging"].values.sum())


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - start, value


def precision_cost(forecaster, patients, repeats: int = 3) -> None:
    """Print draws per chain, worst tail MCSE (posterior SDs) and warm seconds (median of
    ``repeats``) of the fixed 4 x 1000 run and the default adaptive run, per patient."""
    print(f"Stated precision: fixed {CHAINS} x {DRAWS} draws vs adaptive (median of {repeats})")
    print(
        f"{'patient':>24} {'draws':>6} {'worst':>6} {'s':>7}   {'draws':>6} {'worst':>6} {'s':>7}"
    )
    ratios = []
    for index, patient in enumerate(patients):
        row = []
        for settings in (SamplerSettings(draws=DRAWS), SamplerSettings()):
            times = []
            for _ in range(repeats):
                seconds, result = timed(
                    forecaster.forecast, patient, random_seed=index, settings=settings
                )
                times.append(seconds)
            precision = result.diagnostics["precision"]
            row.append((precision["draws"], precision["worst"], statistics.median(times)))
        ratios.append(row[1][2] / row[0][2])
        (d0, w0, t0), (d1, w1, t1) = row
        print(f"{patient.id:>24} {d0:6d} {w0:6.3f} {t0:7.3f}   {d1:6d} {w1:6.3f} {t1:7.3f}")
    print(f"median time adaptive / fixed: {statistics.median(ratios):.2f}x")


PROCESS_SCRIPTS = {
    "asuc_bayes": """
        import time; start = time.perf_counter()
        from asuc_bayes import Forecaster, example_path, load_model, read_patients
        patient = read_patients(example_path()).patients[0]
        Forecaster(load_model()).forecast(patient, random_seed=1)
        print(time.perf_counter() - start)
    """,
    "plain pm.sample": """
        import time; start = time.perf_counter()
        import sys; sys.path.insert(0, {bench_dir!r})
        from bench_forecast import plain_pm_sample
        from asuc_bayes import example_path, load_model, read_patients
        patient = read_patients(example_path()).patients[0]
        plain_pm_sample(load_model(), patient, 1)
        print(time.perf_counter() - start)
    """,
}


def process_seconds(name: str, compiledir: str) -> float:
    script = textwrap.dedent(PROCESS_SCRIPTS[name]).format(
        bench_dir=os.path.dirname(os.path.abspath(__file__))
    )
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={compiledir}"}
    env["NUMBA_CACHE_DIR"] = os.path.join(compiledir, "numba")
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument("--precision-only", action="store_true")
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.ERROR)  # pm.sample's per-call banner

    spec = load_model()
    patients = list(read_patients(example_path()).patients)[: args.patients]
    forecaster = Forecaster(spec)
    forecaster.forecast(patients[0], random_seed=0)  # compile nutpie: not part of "warm"
    precision_cost(forecaster, patients)
    print()
    if args.precision_only:
        return

    rows = []
    for index, patient in enumerate(patients):
        t_post, result = timed(forecaster.forecast, patient, random_seed=index)
        t_map = min(timed(forecaster.map_estimate, patient)[0] for _ in range(5))
        t_grid = min(timed(grid_posterior, spec, patient, 401)[0] for _ in range(2))
        t_plain, plain_divergences = timed(plain_pm_sample, spec, patient, index)
        rows.append(
            (
                patient.id,
                t_post,
                result.diagnostics["divergences"],
                t_map,
                t_grid,
                t_plain,
                plain_divergences,
            )
        )

    print(f"Per patient ({CHAINS} chains x {DRAWS} draws + {TUNE} tune), seconds:")
    print(
        f"{'patient':>10} {'asuc_bayes':>10} {'div':>4} {'MAP':>8} {'grid':>8} "
        f"{'pm.sample':>10} {'div':>4}"
    )
    for pid, t_post, div, t_map, t_grid, t_plain, plain_div in rows:
        print(
            f"{pid:>10} {t_post:10.3f} {div:4d} {t_map:8.4f} {t_grid:8.3f} {t_plain:10.3f} "
            f"{plain_div:4d}"
        )
    med = {
        key: statistics.median(row[i] for row in rows)
        for i, key in ((1, "posterior"), (3, "map"), (4, "grid"), (5, "plain"))
    }
    print()
    print(f"median warm posterior  {med['posterior']:.3f} s   (target <= 0.25 s)")
    print(
        f"  / plain pm.sample    {med['posterior'] / med['plain']:.3f}x "
        f"(pm.sample {med['plain']:.2f} s)"
    )
    print(
        f"  / exact grid         {med['posterior'] / med['grid']:.2f}x (grid {med['grid']:.3f} s)"
    )
    print(f"median warm MAP        {1000 * med['map']:.1f} ms  (target <= 20 ms)")
    print(f"  / plain pm.sample    {med['map'] / med['plain']:.5f}x")
    print(f"  / exact grid         {med['map'] / med['grid']:.3f}x")

    if args.skip_processes:
        return
    print()
    with tempfile.TemporaryDirectory() as ours, tempfile.TemporaryDirectory() as plain:
        first = process_seconds("asuc_bayes", ours)
        later = process_seconds("asuc_bayes", ours)
        plain_first = process_seconds("plain pm.sample", plain)
        plain_later = process_seconds("plain pm.sample", plain)
    print("Whole process: import, compile, one forecast (first: empty compile cache), seconds:")
    print(
        f"  first process  {first:6.1f} s  (target <= 20 s)   / plain pm.sample process "
        f"{first / plain_first:.2f}x ({plain_first:.1f} s)"
    )
    print(
        f"  later process  {later:6.1f} s  (target <= 5 s)    / plain pm.sample process "
        f"{later / plain_later:.2f}x ({plain_later:.1f} s)"
    )
    print(
        f"  grid per patient for scale: {med['grid']:.3f} s "
        f"(later process / grid = {later / med['grid']:.0f}x)"
    )


if __name__ == "__main__":
    main()
