"""The app's per-session task and dosing text, without a browser (fast).

:class:`asuc_bayes.interfaces.app.pool.LatestTask` is driven with a stand-in pool whose jobs finish
when
the test says so: a job superseded while it waits is never computed, an older result is never
returned for a newer job, and the newest job's result is. The dose text never says "0 mg".
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import pytest
from shiny import reactive
from shiny.types import SilentOperationInProgressException

from asuc_bayes.interfaces.app.pool import LatestTask
from asuc_bayes.interfaces.app.views import dose_sentences


@dataclass(frozen=True)
class Answer:
    job: str


class GatedPool:
    """Runs a job when its gate opens; records which jobs were started."""

    def __init__(self):
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def run(self, job: str, track=None) -> Answer:
        self.started.append(job)
        gate = self.gates.setdefault(job, asyncio.Event())
        await gate.wait()
        return Answer(job)


def _result(task: LatestTask, job: str):
    with reactive.isolate():
        return task.result_for(job)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_latest_task_computes_only_the_newest_job():
    async def scenario():
        pool = GatedPool()
        task = LatestTask(pool)
        task.submit("A")
        await _settle()
        assert pool.started == ["A"]
        with pytest.raises(SilentOperationInProgressException):
            _result(task, "A")  # running: "in progress", no value
        task.submit("B")  # queued behind A ...
        task.submit("C")  # ... and superseded by C before it starts
        pool.gates["A"].set()
        await _settle()
        assert pool.started == ["A", "C"]  # B was never computed
        with pytest.raises(SilentOperationInProgressException):
            _result(task, "C")  # A's result is never shown for C
        pool.gates.setdefault("C", asyncio.Event()).set()
        await _settle()
        assert _result(task, "C") == Answer("C")
        with pytest.raises(SilentOperationInProgressException):
            _result(task, "A")  # the result answers C only
        assert _result(task, None) is None

    asyncio.run(scenario())


def test_latest_task_after_an_input_error_computes_the_new_job():
    async def scenario():
        pool = GatedPool()
        task = LatestTask(pool)
        task.submit("A")
        await _settle()
        task.submit(None)  # the inputs became invalid: A is cancelled
        task.submit("B")  # ... and valid again before A's cancellation was processed
        await _settle()
        assert pool.started == ["A", "B"]
        pool.gates["B"].set()
        await _settle()
        assert _result(task, "B") == Answer("B")

    asyncio.run(scenario())


def _recommendation(dose_mg, feasible=True, map_mg=100.0, **extra) -> dict:
    risk = {"mean": 0.12, "q2.5": 0.05, "q97.5": 0.25}
    chosen = None
    if dose_mg is not None:
        chosen = {
            "dose_mg": dose_mg,
            "dose_mg_kg": dose_mg / 70,
            "time_day": 14.0,
            "risk_90d": risk,
            "p_high_risk": 0.2,
        }
    on_map = {"dose_mg": map_mg, "feasible": map_mg is not None}
    return {"feasible": feasible, "recommended": chosen, "map_recommended": on_map, **extra}


ZERO_MG = re.compile(r"(?<![\d.])0(\.0+)? ?mg")


@pytest.mark.parametrize(
    ("rec", "decision"),
    [
        (_recommendation(0.0, map_mg=0.0), "No infusion needed on day 14"),
        (
            _recommendation(0.0, notes=["the target is met without this infusion (0 mg)"]),
            "No infusion needed on day 14",
        ),
        (_recommendation(None, feasible=False, reason="below the 5 mg/kg minimum"), "No dose"),
        (_recommendation(700.0), "700 mg (10.0 mg/kg)"),
        (_recommendation(1400.0, feasible=False), "No dose up to the cap reaches the target"),
    ],
)
def test_dose_text_never_says_zero_mg(rec, decision):
    lead, said, rest, beside = dose_sentences(rec)
    text = lead + said + rest + beside
    assert said == decision
    assert not ZERO_MG.search(text), text
    if rec["recommended"] is None or rec["recommended"]["dose_mg"] == 0:
        assert ": " in rest and len(rest) > 10  # the reason, in words
    if rec.get("reason"):
        assert rec["reason"] in rest


def test_app_refuses_fewer_than_one_worker(capsys):
    from asuc_bayes.interfaces.cli import EXIT_INPUT, main

    assert main(["app", "--workers", "0"]) == EXIT_INPUT
    error = capsys.readouterr().err
    assert "--workers 0: must be an integer from 1 to 256" in error
    assert "Traceback" not in error
