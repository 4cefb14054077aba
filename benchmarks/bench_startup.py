"""Start-up of the command line in fresh processes, against ``import numpy, scipy``.

Measures, each in a new Python process and repeated (median and minimum reported):

- ``baseline``: ``python -c "import numpy, scipy"`` — measured in the same run, because these
  machines are shared and noisy: the ratios are what to compare between runs;
- ``--help``, ``forecast --help`` and an argument error (``forecast --example --seed -1``);
- ``forecast warm``: one bundled patient, every cache filled (the usual case);
- ``forecast cold``: the same with empty caches — new ``ASUC_BAYES_CACHE_DIR`` (the compiled
  densities), ``PYTENSOR_FLAGS=base_compiledir=...`` and ``NUMBA_CACHE_DIR`` in a temporary
  folder — i.e. the first forecast on a fresh machine (``make example`` pays it once);
  then ``forecast recached``: again with those caches, now filled.

Then, where a warm one-patient forecast spends its time (``PHASES``, each fresh process timing
its own steps in order): importing the CLI, SciPy's optimizers, numba and the rest of the
forecasting path; loading each cached density callback and its first evaluation (which compiles
PyTensor's object-mode helpers); the forecast itself. Medians over the repeats.

Usage: ``.venv/bin/python benchmarks/bench_startup.py [--repeats 5] [--cold-runs 1]``.
Prints one line per measurement and the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "asuc_bayes.interfaces.cli"]
FORECAST = [*CLI, "forecast", "--example", "--id", "P01", "--quiet", "--format", "json"]


def timed(command: list[str], env: dict[str, str] | None = None, expect: int = 0) -> float:
    """Wall-clock seconds of one run of ``command`` (its exit code checked)."""
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if completed.returncode != expect:
        raise RuntimeError(f"{command} exited {completed.returncode}: {completed.stderr[-2000:]}")
    return elapsed


#: Run in a fresh process: prints one ``name seconds`` line per step of a warm forecast.
PHASES = """
import time
marks = [("start", time.perf_counter())]
def mark(name):
    marks.append((name, time.perf_counter()))
import asuc_bayes.interfaces.cli
mark("import the CLI")
import scipy.optimize
mark("import scipy.optimize (with scipy.linalg)")
import numba
mark("import numba")
import numpy as np
import asuc_bayes.inference.forecast as F
from asuc_bayes import example_path, load_model, read_patients
from asuc_bayes.graphs.model import PatientData
from asuc_bayes.graphs.nutpie_density import pack_data
mark("import the rest of the forecasting path")
spec = load_model()
patient = [p for p in read_patients(example_path()).patients if p.id == "P01"][0]
forecaster = F.forecaster_for(spec)
buffer = pack_data({**PatientData.from_patient(patient).as_data(), **F.IDENTITY_WHITENING})
mark("read the model and the patient")
eta = forecaster._density("eta")
mark("load the MAP callback (numba refresh, PyTensor imports)")
eta.evaluate(np.zeros(2), buffer)
mark("its first evaluation (compiles object-mode helpers)")
sampler = forecaster._density("sampler")
mark("load the sampler callback")
sampler.evaluate(np.zeros(2), buffer)
mark("the sampler callback's first evaluation (idem)")
result = forecaster.forecast(patient, random_seed=F.patient_seed(0, patient.id))
result.summary()
mark("the forecast (MAP, IMH, adaptive run, summary)")
for (_, before), (name, after) in zip(marks, marks[1:]):
    print(f"{after - before:.4f} {name}")
"""


def phases(repeats: int) -> dict[str, list[float]]:
    """Seconds of each step of :data:`PHASES` over ``repeats`` fresh processes."""
    steps: dict[str, list[float]] = {}
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", PHASES], capture_output=True, text=True, check=True
        ).stdout
        for line in out.strip().splitlines():
            seconds, name = line.split(" ", 1)
            steps.setdefault(name, []).append(float(seconds))
    return steps


def cold_environment(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ASUC_BAYES_CACHE_DIR"] = str(folder / "asuc_bayes")
    env["PYTENSOR_FLAGS"] = f"base_compiledir={folder / 'pytensor'}"
    env["NUMBA_CACHE_DIR"] = str(folder / "numba")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per warm measurement (5)")
    parser.add_argument("--cold-runs", type=int, default=1, help="cold forecasts (1; 0: none)")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()}  ({os.cpu_count()} CPUs)")
    timed(FORECAST)  # fill the caches of this checkout if need be (not measured)
    cases = {
        "baseline: import numpy, scipy": ([sys.executable, "-c", "import numpy, scipy"], 0),
        "asuc-bayes --help": ([*CLI, "--help"], 0),
        "asuc-bayes forecast --help": ([*CLI, "forecast", "--help"], 0),
        "argument error (--seed -1)": ([*CLI, "forecast", "--example", "--seed", "-1"], 2),
        "forecast, 1 patient, warm": (FORECAST, 0),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so that load changes hit every case alike
        for name, (command, expect) in cases.items():
            results[name].append(timed(command, expect=expect))
    for _ in range(args.cold_runs):
        with tempfile.TemporaryDirectory() as folder:
            env = cold_environment(Path(folder))
            results.setdefault("forecast, 1 patient, cold", []).append(timed(FORECAST, env))
            results.setdefault("forecast, 1 patient, recached", []).append(timed(FORECAST, env))
    baseline = statistics.median(results["baseline: import numpy, scipy"])
    print(f"{'measurement':<34} {'median s':>9} {'min s':>7} {'x baseline':>11}  runs")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<34} {median:9.2f} {min(times):7.2f} {median / baseline:11.1f}  {len(times)}")
    print("where a warm one-patient forecast spends its time (medians, s):")
    for name, times in phases(args.repeats).items():
        print(f"  {statistics.median(times):6.3f}  {name}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
