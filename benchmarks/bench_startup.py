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

CLI = [sys.executable, "-m", "asuc_bayes.cli"]
FORECAST = [*CLI, "forecast", "--example", "--id", "P01", "--quiet", "--format", "json"]


def timed(command: list[str], env: dict[str, str] | None = None, expect: int = 0) -> float:
    """Wall-clock seconds of one run of ``command`` (its exit code checked)."""
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if completed.returncode != expect:
        raise RuntimeError(f"{command} exited {completed.returncode}: {completed.stderr[-2000:]}")
    return elapsed


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
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
