"""The web app under many users: concurrent browser sessions against one session alone.

Run with ``.venv/bin/python benchmarks/bench_app.py`` (part of ``make bench``). For each pool
size — a single serial worker (``--workers 1``) and the default (one worker per core) — the
app runs as ``asuc-bayes app`` in a subprocess and headless Chromium (Debian's
``/usr/bin/chromium`` driven by Playwright, see ``tests/browser_harness.py``) opens
``--sessions`` pages (default 20), each its own Shiny session showing patient P01. Then:

- one session alone changes its body weight ``--solo`` times (the others idle): the time
  from typing the weight to the new risk panel and concentration figure, rendered;
- ``--rounds`` times, every session changes its weight at once (each to its own value): each
  session's update time, and the completed-updates rate (updates / seconds from the first
  change to the last rendered result).

First, the steps of one update as a worker runs them (in this process). Every session's
displayed posterior mean risk must equal a direct ``Forecaster.forecast`` of its own inputs
with the same seed (checked after each round; a mismatch stops the benchmark). Times include
Shiny's 250 ms input debounce and the browser decoding the figure. Printed: the 50th/95th
percentile update times against one session alone, the CPU time per concurrent update of the
app's server process, its workers, the browser and the Playwright driver (``psutil``), and the
rate of the default pool against the serial worker (target >= 1.7x on 2 cores). The machine
is shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser_harness import CHROMIUM, IDLE_JS, chromium, served_app

from asuc_bayes import example_path, load_model, read_patients
from asuc_bayes.decisions.dosing import recommend_dose
from asuc_bayes.inference.forecast import forecaster_for, patient_seed
from asuc_bayes.interfaces.app.pool import default_workers
from asuc_bayes.interfaces.app.svg import concentration_svg
from asuc_bayes.interfaces.plots import (
    concentration_figure,
    dose_risk_figure,
    figure_png,
    ln_ratio_figure,
)

RATE_TARGET = 1.7
TIMEOUT_MS = 600_000

#: Started in a page before its weight is typed: records (start, end) in epoch ms in
#: ``window.__update`` once a new concentration figure is shown and no visible output is busy.
#: Event-driven (DOM mutations anywhere in the document, including the ``shiny-busy`` class of
#: ``<html>``, and image loads, captured): polling every 10 ms in 20 pages cost the browser
#: ~20 % of its CPU per update (measured), which this benchmark must not charge to the app. A
#: 1 s poll is kept only as a safety net.
WATCH_JS = """
(old) => {
  const idle = IDLE;
  const state = {start: Date.now(), end: null};
  window.__update = state;
  const check = () => {
    if (state.end !== null) return;
    const img = document.querySelector('#concentration_plot img');
    if (img && img.src !== old && img.complete && img.naturalWidth > 0 && idle()) {
      state.end = Date.now();
      observer.disconnect();
      document.removeEventListener('load', check, true);
      clearInterval(timer);
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document.documentElement, {subtree: true, childList: true, attributes: true});
  document.addEventListener('load', check, true);
  const timer = setInterval(check, 1000);
}
""".replace("IDLE", IDLE_JS.strip())


@dataclass
class Round:
    """One round: each session's update time (s), the round's wall time (s), and the CPU
    seconds each group of processes used during it (:func:`cpu_seconds`)."""

    seconds: list[float]
    wall_s: float
    cpu_s: dict[str, float] = dataclasses.field(default_factory=dict)


def _group(process: psutil.Process) -> str:
    """The group a process of this benchmark belongs to: the app's server, its workers, the
    browser (Chromium) or the Playwright driver."""
    command = " ".join(process.cmdline())
    if "asuc_bayes.interfaces.cli app" in command:
        return "app server"
    if "multiprocessing" in command:
        return "app workers"
    if "chrom" in process.name():
        return "browser"
    return "other (Playwright driver)"


def cpu_seconds() -> dict[str, float]:
    """Cumulative user + system CPU seconds of this benchmark's child processes, by group."""
    totals: dict[str, float] = {}
    for process in psutil.Process().children(recursive=True):
        try:
            times = process.cpu_times()
            group = _group(process)
        except psutil.Error:  # ended meanwhile
            continue
        totals[group] = totals.get(group, 0.0) + times.user + times.system
    return totals


@dataclass
class Run:
    """The measurements of one pool size."""

    workers: int
    startup_s: float
    solo: list[float]
    rounds: list[Round]

    def concurrent(self) -> list[float]:
        return [s for r in self.rounds for s in r.seconds]

    def rate(self) -> float:
        """Completed updates per second over the concurrent rounds."""
        return len(self.concurrent()) / sum(r.wall_s for r in self.rounds)


class Checker:
    """Displayed risks against direct forecasts of the same inputs (same seed)."""

    def __init__(self):
        self.spec = load_model()
        self.patient = read_patients(example_path()).patients[0]
        self.forecaster = forecaster_for(self.spec)
        self.checked = 0

    def expected(self, weight_kg: float) -> str:
        changed = dataclasses.replace(self.patient, weight_kg=weight_kg)
        seed = patient_seed(0, self.patient.id)
        mean = self.forecaster.forecast(changed, random_seed=seed).summary()
        return f"{100 * mean['posterior']['risk_90d']['mean']:.1f} %"

    def check(self, shown: dict[float, str]) -> None:
        for weight, text in shown.items():
            wanted = self.expected(weight)
            if text != wanted:
                raise SystemExit(f"weight {weight:g} kg: the page shows {text}, expected {wanted}")
            self.checked += 1


def open_sessions(context, url: str, n: int) -> list:
    pages = []
    for _ in range(n):
        page = context.new_page()
        page.goto(url, timeout=TIMEOUT_MS, wait_until="commit")  # the loads overlap
        pages.append(page)
    for page in pages:
        page.wait_for_selector("#risk-mean", timeout=TIMEOUT_MS)
        page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)
        page.get_by_role("tab", name="Covariates").click()
    return pages


def change_weights(pages: list, weights: list[float]) -> Round:
    """Type one weight into each page (one after the other, at once); wait for all results."""
    before = cpu_seconds()
    for page, weight in zip(pages, weights, strict=True):
        old = page.get_attribute("#concentration_plot img", "src")
        page.evaluate(WATCH_JS, old)
        page.fill("#weight_kg", f"{weight:g}")
    spans = []
    for page in pages:
        page.wait_for_function("() => window.__update.end !== null", timeout=TIMEOUT_MS)
        spans.append(page.evaluate("() => [window.__update.start, window.__update.end]"))
    starts, ends = zip(*spans, strict=True)
    seconds = [(end - start) / 1000 for start, end in spans]
    after = cpu_seconds()
    used = {group: after[group] - before.get(group, 0.0) for group in after}
    return Round(seconds, (max(ends) - min(starts)) / 1000, used)


def shown_risks(pages: list, weights: list[float]) -> dict[float, str]:
    return {w: p.inner_text("#risk-mean") for p, w in zip(pages, weights, strict=True)}


def measure(workers: int, sessions: int, solo: int, rounds: int, checker: Checker, start: float):
    """One app with ``workers`` workers: solo changes, then concurrent rounds (weights from
    ``start`` kg in 0.5 kg steps, all distinct: the app caches identical inputs)."""
    weights = iter(start + 0.5 * k for k in range(solo + rounds * sessions))
    begin = time.perf_counter()
    with served_app(timeout_s=900, extra_args=("--workers", str(workers))) as url:
        startup = time.perf_counter() - begin
        with chromium(viewport={"width": 1400, "height": 1400}) as context:
            pages = open_sessions(context, url, sessions)
            alone = []
            for _ in range(solo):
                weight = next(weights)
                alone.extend(change_weights(pages[:1], [weight]).seconds)
                checker.check(shown_risks(pages[:1], [weight]))
            measured = []
            for _ in range(rounds):
                chosen = [next(weights) for _ in pages]
                measured.append(change_weights(pages, chosen))
                checker.check(shown_risks(pages, chosen))
    return Run(workers, startup, alone, measured)


def update_costs(checker: Checker, n: int = 5) -> None:
    """What one update costs in a worker, step by step (medians over ``n`` new weights)."""
    steps: dict[str, list[float]] = {}

    def timed(name: str, step):
        begin = time.perf_counter()
        value = step()
        steps.setdefault(name, []).append(time.perf_counter() - begin)
        return value

    seed = patient_seed(0, checker.patient.id)
    for k in range(n):
        patient = dataclasses.replace(checker.patient, weight_kg=60.0 + 0.7 * k)
        result = timed(
            "forecast", lambda p=patient: checker.forecaster.forecast(p, random_seed=seed)
        )
        timed("its DataTree", lambda r=result: r.tree)
        timed("summary", result.summary)
        timed("concentration figure (SVG, the app's)", lambda r=result: concentration_svg(r))
        timed(
            "concentration figure (PNG, the report's)",
            lambda r=result: figure_png(concentration_figure(r), dpi=96),
        )
        timed(
            "ln(AUC/CL) figure (PNG, its tab)",
            lambda r=result: figure_png(ln_ratio_figure(r), dpi=96),
        )
        rec = timed("dose recommendation (its tab)", lambda r=result: recommend_dose(r).to_json())
        timed(
            "dose-risk figure (PNG, its tab)",
            lambda rec=rec: figure_png(dose_risk_figure(rec), dpi=96),
        )
    print("  one update in a worker, step by step (median):")
    for name, seconds in steps.items():
        print(f"    {name:42s} {1000 * statistics.median(seconds):7.1f} ms")


def pool_rate(checker: Checker, workers: int, jobs: int) -> float:
    """Forecast updates per second of the worker pool alone (no server, no browser): ``jobs``
    distinct forecast jobs (each a new weight, as a session's update) submitted at once."""
    import asyncio

    from asuc_bayes.inference.forecast import SamplerSettings
    from asuc_bayes.interfaces.app.pool import WorkerPool
    from asuc_bayes.interfaces.app.work import ForecastJob

    pool = WorkerPool(checker.spec, SamplerSettings(), workers)
    pool.start()
    patients = [dataclasses.replace(checker.patient, weight_kg=40.0 + 0.5 * k) for k in range(jobs)]

    async def run_all() -> list:
        return await asyncio.gather(*(pool.run(ForecastJob(p, 0)) for p in patients))

    try:
        begin = time.perf_counter()
        views = asyncio.run(run_all())
        seconds = time.perf_counter() - begin
    finally:
        pool.shutdown()
    if not all(hasattr(view, "summary") for view in views):
        raise SystemExit("a forecast job of the pool failed")
    return jobs / seconds


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def report(run: Run) -> None:
    solo = statistics.median(run.solo)
    both = run.concurrent()
    p50, p95 = percentile(both, 50), percentile(both, 95)
    print(f"  workers={run.workers}  (app start-up with warm workers {run.startup_s:.1f} s)")
    print(f"    one session alone          median {solo:6.2f} s   (n={len(run.solo)})")
    print(
        f"    {len(run.rounds[0].seconds)} sessions at once       p50 {p50:6.2f} s "
        f"(x{p50 / solo:.1f} alone)   p95 {p95:6.2f} s (x{p95 / solo:.1f})   (n={len(both)})"
    )
    print(f"    completed updates           {run.rate():6.2f} per s")
    updates = len(both)
    groups = sorted({g for r in run.rounds for g in r.cpu_s})
    cpu = {g: sum(r.cpu_s.get(g, 0.0) for r in run.rounds) / updates for g in groups}
    shares = ", ".join(f"{g} {1000 * c:.0f}" for g, c in cpu.items())
    print(f"    CPU ms per concurrent update: {shares} (total {1000 * sum(cpu.values()):.0f})")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--solo", type=int, default=5)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--pool-jobs", type=int, default=60, help="jobs of the pool-alone rate")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing (scripts/install-browser installs it)")
    checker = Checker()
    checker.expected(70.0)  # load the compiled model before any timing
    print(f"app under {args.sessions} concurrent sessions (patient P01, weight changed)")
    print(f"  before: {load()}")
    update_costs(checker)
    alone = {n: pool_rate(checker, n, args.pool_jobs) for n in (1, args.workers)}
    print(
        f"  the worker pool alone (no server, no browser), {args.pool_jobs} forecast updates at "
        f"once: 1 worker {alone[1]:.2f}/s, {args.workers} workers {alone[args.workers]:.2f}/s "
        f"(x{alone[args.workers] / alone[1]:.2f})"
    )
    serial = measure(1, args.sessions, args.solo, args.rounds, checker, start=45.0)
    report(serial)
    pooled = measure(args.workers, args.sessions, args.solo, args.rounds, checker, start=45.0)
    report(pooled)
    print(f"  after:  {load()}")
    ratio = pooled.rate() / serial.rate()
    verdict = "met" if ratio >= RATE_TARGET else "NOT met"
    print(
        f"  rate, {pooled.workers} workers against 1: x{ratio:.2f} "
        f"(target >= {RATE_TARGET:g}: {verdict})"
    )
    print(f"  every session showed its own correct risk ({checker.checked} updates checked)")


if __name__ == "__main__":
    main()
