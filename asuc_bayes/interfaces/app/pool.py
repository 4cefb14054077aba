"""Long computations off the event loop: a pool of warm worker processes, and per-session tasks.

:class:`WorkerPool` holds worker processes (``spawn``), each with its own warm compiled
forecaster (:func:`asuc_bayes.interfaces.app.work.start_worker`), so several sessions' forecasts
use every
core and the server's event loop only validates inputs and sends results. Results are cached
by job (the same patient, seed and options give the same result), across sessions.

:class:`LatestTask` is a session's Shiny :class:`~shiny.reactive.ExtendedTask` that always
answers the session's newest job: a job superseded while it waits in the pool is dropped, and
a result that answers an older job is never shown (the output stays "in progress").
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from shiny import reactive, req

from asuc_bayes.inference.forecast import SamplerSettings
from asuc_bayes.interfaces.app.work import (
    DownloadJob,
    Failure,
    compute,
    start_worker,
    worker_pid,
)
from asuc_bayes.spec.config import ModelSpec

__all__ = ["SUPERSEDED", "LatestTask", "WorkerPool", "default_workers", "log"]

#: Results kept by the pool (a view with its figure is ~50-100 kB).
CACHE_SIZE = 64


def log(message: str) -> None:
    """Operational messages only: never a patient's data."""
    print(f"asuc-bayes app: {message}", file=sys.stderr, flush=True)


def default_workers() -> int:
    """One worker per core this process may use.

    >>> default_workers() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Superseded:
    """The marker of a job dropped because a newer one replaced it."""

    def __repr__(self) -> str:
        return "SUPERSEDED"


SUPERSEDED = _Superseded()

_FAILED = {
    "ForecastJob": "The forecast failed for these inputs.",
    "ExposureJob": "The figure could not be drawn for these inputs.",
    "DosingJob": "The dose recommendation failed for these inputs.",
    "DownloadJob": "The download could not be built for these inputs.",
}


class WorkerPool:
    """Warm worker processes that run the app's jobs (see :mod:`asuc_bayes.interfaces.app.work`).

    Parameters
    ----------
    spec, settings
        The model and the sampler settings of every forecast.
    workers
        Worker processes (default: one per usable core).
    debug
        Print tracebacks of failed jobs (they may name input values).
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: SamplerSettings,
        workers: int | None = None,
        *,
        debug: bool = False,
    ):
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"--workers must be a whole number >= 1, got {workers!r}")
        self.spec, self.settings, self.debug = spec, settings, debug
        self.workers = workers or default_workers()
        self._context = multiprocessing.get_context("spawn")
        self._cache: OrderedDict[Any, Any] = OrderedDict()
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> float:
        """Start every worker and wait until all are warm; return the seconds taken.

        Raises ``RuntimeError`` when a worker cannot start (its error is on stderr).
        """
        begin = time.perf_counter()
        lock = self._context.Lock()
        barrier = self._context.Barrier(self.workers)
        self._executor = self._new_executor(lock, barrier)
        # each submission without an idle worker starts one; every worker waits at the barrier
        futures = [self._executor.submit(worker_pid) for _ in range(self.workers)]
        try:
            for future in futures:
                future.result()
        except BrokenProcessPool as exc:
            self.shutdown()
            raise RuntimeError("a worker process could not start the model") from exc
        return time.perf_counter() - begin

    def _new_executor(self, lock=None, barrier=None) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=self._context,
            initializer=start_worker,
            initargs=(self.spec, self.settings, lock, barrier),
        )

    def shutdown(self) -> None:
        """Stop the workers (jobs still waiting are dropped)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def cached(self, job) -> Any | None:
        """The cached result of ``job``, or None."""
        if job in self._cache:
            self._cache.move_to_end(job)
            return self._cache[job]
        return None

    async def run(self, job, track: Callable[[Future], None] | None = None) -> Any:
        """The result of ``job`` from the cache or a worker, without blocking the event loop.

        Returns :data:`SUPERSEDED` if the job's pool future was cancelled before it ran (see
        :class:`LatestTask`), or a :class:`~asuc_bayes.interfaces.app.work.Failure` if it failed.
        """
        hit = self.cached(job)
        if hit is not None:
            return hit
        if self._executor is None:
            self._executor = self._new_executor()  # not started: workers warm on first use
        try:
            future = self._executor.submit(compute, job)
        except (BrokenProcessPool, RuntimeError) as exc:  # broken or shut down
            self._report(job, exc)
            self._executor = None
            return Failure(job, "The computation service restarted: change an input to retry.")
        if track is not None:
            track(future)
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and (task is None or not task.cancelling()):
                return SUPERSEDED
            raise
        except BrokenProcessPool as exc:
            self._report(job, exc)
            self._executor = None  # a worker died (out of memory?): new workers next time
            return Failure(job, "The computation service restarted: change an input to retry.")
        except Exception as exc:
            self._report(job, exc)
            return Failure(job, _FAILED[type(job).__name__])
        if not isinstance(job, DownloadJob):
            self._cache[job] = result
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    def _report(self, job, exc: BaseException) -> None:
        """Log an unexpected error by type only (its text may hold patient values)."""
        log(f"{type(job).__name__} failed ({type(exc).__name__})")
        if self.debug:
            import traceback

            traceback.print_exception(exc)


class LatestTask:
    """A session's :class:`~shiny.reactive.ExtendedTask` that answers only its newest job.

    Call :meth:`submit` from an effect whenever the job changes (None: nothing to compute),
    and :meth:`result_for` from outputs. While a job runs, other sessions and this session's
    other inputs stay responsive (the event loop only awaits the worker).

    At most one invocation of the ExtendedTask is outstanding: a job submitted while one runs
    only becomes the newest job (the waiting pool job of the older one is dropped), and the
    running invocation computes the newest job before it returns. (Queueing several
    invocations in one reactive flush can trip ExtendedTask's own queue.)
    """

    def __init__(self, pool: WorkerPool):
        self._pool = pool
        self._latest: Any = None
        self._future: Future | None = None
        self._running = False
        self.task = reactive.ExtendedTask(self._run)

    def submit(self, job) -> None:
        """Compute ``job`` next, superseding the previous one (dropped if still waiting)."""
        if job == self._latest:
            return
        self._latest = job
        if self._future is not None:
            self._future.cancel()  # only succeeds while it waits in the pool's queue
            self._future = None
        if job is None:
            self._running = False
            self.task.cancel()
        elif not self._running:
            self._running = True
            self.task.invoke(job)

    def cancel(self) -> None:
        """Drop the current job (the session ended)."""
        self.submit(None)

    async def _run(self, job) -> Any:
        job = self._latest  # the newest job when this invocation starts

        def track(future: Future) -> None:
            self._future = future

        while True:
            if job is None:
                self._running = False
                return SUPERSEDED
            try:
                result = await self._pool.run(job, track)
            except Exception:
                self._running = False  # the next submit invokes again
                raise
            if job == self._latest:  # no await between this test and the return
                self._running = False
                return result
            job = self._latest  # superseded while it ran: compute the newest now

    def result_for(self, job) -> Any:
        """The result of ``job`` (reactive); "in progress" until it is there, never an older one."""
        if job is None:
            return None
        value = self.task.result()  # silent "in progress" while running
        if value is SUPERSEDED or getattr(value, "job", None) != job:
            req(False, cancel_output="progress")
        return value
