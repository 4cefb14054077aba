"""Running many independent tasks on one code path: in this process, on a local cluster of
worker processes, or on a Dask cluster at a scheduler address.

Batch forecasting, cohort studies, repeated population fits and simulation-based calibration
are all maps of a pure task function over independent items (patients, cohorts, seeds). An
:class:`Engine` runs such a map and yields ``(index, result)`` pairs as they complete:

- ``Engine()`` — in this process, one item after another (no cluster, no Dask import);
- ``Engine(workers=N)`` — a Dask ``LocalCluster`` of N single-threaded worker processes
  started for the engine's lifetime;
- ``Engine(scheduler="tcp://host:8786")`` — an existing Dask cluster (``dask scheduler`` and
  ``dask worker`` processes on other machines, with asuc_bayes installed).

Why Dask (``distributed``) rather than Ray: the tasks are coarse (0.1 s to minutes), stateless
and independent, which Dask's futures serve directly; it is pure Python from PyPI (Ray pulls a
large binary runtime), starts a local cluster in ~2 s, and its scheduler runs on any machine
the consortium already has. Task functions must be importable module-level functions (they are
pickled by reference); each worker keeps its own process-wide caches (e.g. one compiled
:class:`asuc_bayes.inference.forecast.Forecaster` per model), so compilation is paid once per
worker.

Results do not depend on the engine: every task's seed is derived from its item (see
:func:`asuc_bayes.inference.forecast.patient_seed`), never from the order of completion, and
nutpie's
draws for a seed do not depend on the number of threads.

Examples
--------
>>> with Engine() as engine:
...     sorted(engine.map(abs, [-2, 1, -3]))
[(0, 2), (1, 1), (2, 3)]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from asuc_bayes.errors import AsucBayesError

__all__ = ["Engine", "EngineError", "auto_chunk_size"]

#: Dask's environment for the worker processes a nanny spawns.
SPAWN_ENVIRONMENT = "distributed.nanny.pre-spawn-environ"


def _worker_environment() -> dict[str, Any]:
    """Dask's worker environment without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets it to 64 KiB so that workers hand freed memory back to the system at once; our
    tasks allocate and free many mid-sized NumPy arrays per patient, and with that setting
    every one became an ``mmap``/``munmap`` pair: measured 2026-11-23, the same 40 forecasts
    took 8.7 s instead of 5.9 s in one process with the variable set, and a 2-worker cluster
    was no faster than one process. The one-thread limits for BLAS/OpenMP are kept.
    """
    import dask

    environment = dict(dask.config.get(SPAWN_ENVIRONMENT, default={}) or {})
    environment.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environment


def _run_chunk(items: list[Any], *, function: Callable[..., Any], **constant: Any) -> list[Any]:
    """One task of :meth:`Engine.map`: ``function`` over a chunk of items, in a worker."""
    return [function(item, **constant) for item in items]


def auto_chunk_size(n_items: int, n_workers: int, *, tasks_per_worker: int = 8) -> int:
    """Items per task: at least ``tasks_per_worker`` tasks per worker (load balance and
    progress) and at most 16 items a task (1000 patients on 2 workers: 63 tasks of ≤ 16).

    Examples
    --------
    >>> auto_chunk_size(1000, 2), auto_chunk_size(10, 2), auto_chunk_size(0, 4)
    (16, 1, 1)
    """
    return int(min(max(n_items // max(n_workers * tasks_per_worker, 1), 1), 16))


class EngineError(AsucBayesError, RuntimeError):
    """The engine could not start or reach its cluster; the message says how to fix it."""


class Engine:
    """Maps task functions over items, here or on a Dask cluster (see the module docstring).

    Parameters
    ----------
    workers
        Worker processes of a local cluster; 1 (default) runs in this process.
    scheduler
        Address of an existing Dask scheduler (``tcp://host:port``); overrides ``workers``.
    connect_timeout_s
        How long to wait for that scheduler.
    """

    def __init__(
        self, *, workers: int = 1, scheduler: str | None = None, connect_timeout_s: float = 20.0
    ):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise EngineError(f"workers must be a positive whole number, got {workers!r}")
        self.workers = workers
        self.scheduler = scheduler
        self.connect_timeout_s = connect_timeout_s
        self._cluster = None
        self._client = None
        self._depth = 0  # nested ``with`` blocks share the running cluster

    @property
    def distributed(self) -> bool:
        """True when tasks run in other processes (a local or remote cluster)."""
        return self.scheduler is not None or self.workers > 1

    @property
    def description(self) -> str:
        if self.scheduler is not None:
            return f"Dask cluster at {self.scheduler}"
        if self.workers > 1:
            return f"local cluster of {self.workers} worker processes"
        return "this process"

    def __enter__(self) -> Engine:
        if not self.distributed:
            return self
        self._depth += 1
        if self._client is not None:  # already running: a function given a started engine
            return self
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise EngineError("the distributed engine needs 'dask[distributed]'") from exc
        try:
            if self.scheduler is not None:
                self._client = Client(self.scheduler, timeout=f"{self.connect_timeout_s}s")
            else:
                with dask.config.set({SPAWN_ENVIRONMENT: _worker_environment()}):
                    self._cluster = LocalCluster(
                        n_workers=self.workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=":0",  # any free port: several clusters can coexist
                        silence_logs=logging.ERROR,
                    )
                self._client = Client(self._cluster)
        except OSError as exc:
            self.close()
            raise EngineError(
                f"could not reach the Dask scheduler at {self.scheduler} ({exc}); start one "
                "with 'dask scheduler' and workers with 'dask worker ADDRESS', or omit "
                "--scheduler to run locally"
            ) from exc
        return self

    def __exit__(self, *exc_info) -> None:
        self._depth = max(self._depth - 1, 0)
        if self._depth == 0:
            self.close()

    def close(self) -> None:
        """Stop the local cluster (a remote cluster is only disconnected)."""
        self._depth = 0
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def map(
        self,
        function: Callable[..., Any],
        items: Iterable[Any],
        *,
        chunk_size: int | None = 1,
        **constant: Any,
    ) -> Iterator[tuple[int, Any]]:
        """``(index, function(item, **constant))`` for every item, in order of completion.

        ``constant`` keyword arguments are shipped to each worker once (scattered), not once
        per task. On a cluster, ``chunk_size`` items make one task (their results arrive
        together); ``None`` picks :func:`auto_chunk_size` — for many short items (0.05 s
        patients) the cost of a Dask task (scheduling, the worker's event loop competing for
        the GIL, the result's round trip) is no longer small beside the item's own.
        """
        items = list(items)
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise EngineError(f"chunk_size must be a positive whole number, got {chunk_size!r}")
        if not self.distributed:
            for index, item in enumerate(items):
                yield index, function(item, **constant)
            return
        if self._client is None:
            raise EngineError("use the engine as a context manager: 'with Engine(...) as e:'")
        from distributed import as_completed

        if chunk_size is None:
            chunk_size = auto_chunk_size(len(items), self.n_workers())
        # each value as one object (wrapped: scatter would spread a list, tuple or dict over
        # futures, a dict's keys becoming cluster keys, and fail on an empty one)
        shared = {
            name: self._client.scatter([value], broadcast=True)[0]
            for name, value in constant.items()
        }
        starts = range(0, len(items), chunk_size)
        chunks = [items[start : start + chunk_size] for start in starts]
        futures = self._client.map(_run_chunk, chunks, function=function, pure=False, **shared)
        position = {future.key: start for start, future in zip(starts, futures, strict=True)}
        for future in as_completed(futures):
            start = position[future.key]
            for offset, result in enumerate(future.result()):
                yield start + offset, result
            future.release()

    def map_in_order(
        self,
        function: Callable[..., Any],
        items: Iterable[Any],
        *,
        chunk_size: int | None = 1,
        progress: Callable[[int, int], None] | None = None,
        **constant: Any,
    ) -> list[Any]:
        """Every ``function(item, **constant)`` (as :meth:`map`, inside ``with self``) in the
        items' order; ``progress(done, total)`` after each result arrives.

        Examples
        --------
        >>> Engine().map_in_order(abs, [-2, 1, -3])
        [2, 1, 3]
        """
        items = list(items)
        results: list[Any] = [None] * len(items)
        with self:
            mapped = self.map(function, items, chunk_size=chunk_size, **constant)
            for done, (index, result) in enumerate(mapped, start=1):
                results[index] = result
                if progress is not None:
                    progress(done, len(items))
        return results

    def n_workers(self) -> int:
        """Worker processes of the cluster (1 in this process)."""
        if self._client is None:
            return self.workers
        return max(len(self._client.scheduler_info().get("workers", {})), 1)

    def run_on_workers(self, function: Callable[..., Any], *args: Any) -> None:
        """Call ``function(*args)`` once in every worker (e.g. to warm caches); here when local."""
        if not self.distributed:
            function(*args)
            return
        if self._client is None:
            raise EngineError("use the engine as a context manager: 'with Engine(...) as e:'")
        self._client.run(function, *args)
