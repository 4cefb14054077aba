"""The app's worker pool runs jobs in parallel: two jobs submitted at once run in two worker
processes at the same time (what lets two cores serve two sessions)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from asuc_bayes.data.dataset import example_path, read_patients
from asuc_bayes.inference.forecast import SamplerSettings
from asuc_bayes.interfaces.app.pool import WorkerPool
from asuc_bayes.interfaces.app.work import ForecastJob
from asuc_bayes.spec.config import load_model


def busy_interval(seconds: float) -> tuple[int, float, float]:
    """Keep a core busy for ``seconds``; return (pid, start, end) in wall-clock seconds."""
    start = time.time()
    while time.time() - start < seconds:
        pass
    return os.getpid(), start, time.time()


@pytest.mark.slow  # two warm workers: each loads the model and draws every figure (~20-60 s)
def test_two_workers_run_two_jobs_at_the_same_time():
    pool = WorkerPool(load_model(), SamplerSettings(), workers=2)
    pool.start()
    try:
        executor = pool._executor
        futures = [executor.submit(busy_interval, 1.0) for _ in range(2)]
        (pid_a, start_a, end_a), (pid_b, start_b, end_b) = (f.result() for f in futures)
        assert pid_a != pid_b  # two processes
        assert max(start_a, start_b) < min(end_a, end_b)  # running at the same time

        patient = read_patients(example_path()).patients[0]

        async def both():
            jobs = [ForecastJob(patient, seed) for seed in (11, 12)]
            return await asyncio.gather(*(pool.run(job) for job in jobs))

        views = asyncio.run(both())  # real jobs through the same pool: both answered
        assert [v.job.seed for v in views] == [11, 12]
        assert all(v.figure_svg.startswith(b"<svg") for v in views)
    finally:
        pool.shutdown()
