"""Batch forecasting and the engine: batch equals one-at-a-time, a local cluster of worker
processes equals this process, failures are rows, interrupted batches resume."""

from __future__ import annotations

import json
import os

import dask
import pytest

import asuc_bayes.inference.batch as batch_module
from asuc_bayes.data.dataset import example_path, read_patients
from asuc_bayes.inference.batch import CheckpointError, forecast_batch
from asuc_bayes.inference.engine import Engine, EngineError
from asuc_bayes.inference.forecast import SamplerSettings, forecast_patients

SETTINGS = SamplerSettings(draws=500, tune=500)


@pytest.fixture(scope="module")
def patients():
    return read_patients(example_path()).patients


@pytest.fixture(scope="module")
def in_process(patients, spec, forecaster):
    return forecast_batch(patients, spec, settings=SETTINGS, random_seed=11)


def test_batch_equals_one_at_a_time(patients, spec, in_process):
    single = forecast_patients(patients, spec, settings=SETTINGS, random_seed=11)
    assert [r.to_json() for r in in_process.rows] == [r.summary() for r in single]
    assert [r.id for r in in_process.rows] == [p.id for p in patients]


#: Dask's scheduler start-up (distributed/node.py, its HTTP routes) leaves a socket for the
#: garbage collector: a ResourceWarning inside Dask, reported as unraisable; not ours to fix.
DASK_SOCKET_WARNINGS = (
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
)


@DASK_SOCKET_WARNINGS[0]
@DASK_SOCKET_WARNINGS[1]
def test_local_cluster_of_worker_processes_gives_identical_results(patients, spec, in_process):
    with Engine(workers=2) as engine:
        assert engine.distributed
        distributed = forecast_batch(
            patients[:4], spec, settings=SETTINGS, random_seed=11, engine=engine
        )
        # workers: one BLAS thread each, and no MALLOC_TRIM_THRESHOLD_ (it made them 1.5x
        # slower than this process; see engine._worker_environment)
        names = ["MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"]
        environment = dict(engine.map(os.getenv, names))
        # several patients a task (their rows arrive together): the same rows
        chunked = forecast_batch(
            patients[:4], spec, settings=SETTINGS, random_seed=11, engine=engine, chunk_size=3
        )
        assert sorted(engine.map(abs, [-1, 2, -3, 4, -5], chunk_size=2)) == [
            (0, 1),
            (1, 2),
            (2, 3),
            (3, 4),
            (4, 5),
        ]
        with pytest.raises(EngineError, match="chunk_size must be a positive whole number"):
            list(engine.map(abs, [1], chunk_size=0))
    assert [environment[i] for i in range(3)] == [None, "1", "1"]
    assert [r.to_json() for r in chunked.rows] == [r.to_json() for r in in_process.rows[:4]]
    assert dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"]
    assert distributed.engine == "local cluster of 2 worker processes"
    assert [r.to_json() for r in distributed.rows] == [r.to_json() for r in in_process.rows[:4]]


def test_a_failing_patient_is_a_row_not_an_exception(patients, spec, monkeypatch, forecaster):
    class Failing:
        def forecast(self, patient, **kwargs):
            if patient.id == "P03":
                raise FloatingPointError("log density not finite")
            return forecaster.forecast(patient, **kwargs)

    monkeypatch.setattr(batch_module, "forecaster_for", lambda spec: Failing())
    result = forecast_batch(patients[:4], spec, settings=SETTINGS, random_seed=11)
    statuses = {row.id: row.status for row in result.rows}
    assert statuses["P03"] == "error"
    assert "FloatingPointError: log density not finite" in result.rows[2].error
    assert result.rows[2].to_json() == {
        "id": "P03",
        "status": "error",
        "error": "FloatingPointError: log density not finite",
    }
    assert {statuses[p] for p in ("P01", "P02", "P04")} <= {"ok", "unconverged"}


def test_unconverged_posteriors_are_reported_in_their_rows(patients, spec, forecaster):
    tiny = SamplerSettings(draws=60, tune=60, escalate_target_accept=None)
    result = forecast_batch(patients[:3], spec, settings=tiny, random_seed=2)
    assert all(r.status in ("ok", "unconverged") for r in result.rows)
    assert result.counts["unconverged"] >= 1  # 240 draws cannot reach a bulk ESS of 400


def test_interrupted_batch_resumes_without_recomputing(patients, spec, in_process, tmp_path):
    first = forecast_batch(
        patients[:5], spec, settings=SETTINGS, random_seed=11, checkpoint=tmp_path, keep_trees=True
    )
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    # Interrupted after three patients, in the middle of writing the fourth row.
    (tmp_path / "rows.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])
    resumed = forecast_batch(
        patients[:5], spec, settings=SETTINGS, random_seed=11, checkpoint=tmp_path, keep_trees=True
    )
    assert [r.resumed for r in resumed.rows] == [True, True, True, False, False]
    assert [r.to_json() for r in resumed.rows] == [r.to_json() for r in first.rows]
    assert set(resumed.trees) == {p.id for p in patients[:5]}
    assert [r.to_json() for r in resumed.rows] == [r.to_json() for r in in_process.rows[:5]]
    with pytest.raises(CheckpointError, match="another run"):
        forecast_batch(patients[:5], spec, settings=SETTINGS, random_seed=12, checkpoint=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest) == {"run_key"}


@DASK_SOCKET_WARNINGS[0]
@DASK_SOCKET_WARNINGS[1]
def test_engine_errors():
    with pytest.raises(EngineError, match="chunk_size must be a positive whole number"):
        list(Engine().map(abs, [1], chunk_size=0))
    with pytest.raises(EngineError, match="positive whole number"):
        Engine(workers=0)
    with pytest.raises(EngineError, match="could not reach the Dask scheduler"):
        with Engine(scheduler="tcp://127.0.0.1:1", connect_timeout_s=2):
            pass


BAD_PATIENT_CSV = (
    "ID,TIME,EVID,AMT,DV,WT,CRP\n"
    "P1,0,1,600,.,63,30\nP1,7,0,.,12,63,30\n"
    "P2,0,1,-5,.,63,30\nP2,7,0,.,12,63,30\n"
    "P3,0,1,600,.,70,20\nP3,9,0,.,8,70,20\n"
)


def test_cli_batch_reports_a_bad_patient_in_its_row_and_resumes(tmp_path, capsys, spec):
    """--checkpoint selects the batch path: P2's bad dose is an error row (exit code 2 after
    the others), and a second run takes every finished patient from the checkpoint."""
    from asuc_bayes.interfaces.cli import EXIT_INPUT, main

    data = tmp_path / "patients.csv"
    data.write_text(BAD_PATIENT_CSV)
    argv = [str(data), "--checkpoint", str(tmp_path / "ck"), "--seed", "3", "--tune", "500"]
    assert main(["forecast", *argv, "--format", "json"]) == EXIT_INPUT
    out, err = capsys.readouterr()
    first = json.loads(out)
    rows = {row["id"]: row for row in first["patients"]}
    assert [row["status"] for row in first["patients"]] == ["ok", "ok", "error"]
    assert "patient 'P2', row 4, field AMT" in rows["P2"]["error"]
    assert "field AMT" in err
    assert rows["P1"]["diagnostics"]["rhat_max"] <= 1.01

    assert main(["forecast", *argv]) == EXIT_INPUT
    table = capsys.readouterr().out
    assert "2 ok, 0 unconverged, 1 failed (2 taken from the checkpoint)" in table
    assert main(["forecast", *argv, "--format", "json"]) == EXIT_INPUT
    assert json.loads(capsys.readouterr().out) == first  # resumed rows are the same rows


def test_cli_batch_option_errors(tmp_path, capsys):
    from asuc_bayes.interfaces.cli import EXIT_INPUT, main

    data = tmp_path / "patients.csv"
    data.write_text(BAD_PATIENT_CSV)
    code = main(["forecast", str(data), "--workers", "2", "--report", str(tmp_path / "r.html")])
    assert code == EXIT_INPUT
    assert "--report is not available" in capsys.readouterr().err
    assert main(["forecast", str(data), "--workers", "0"]) == EXIT_INPUT
    assert "--workers 0: must be an integer from 1" in capsys.readouterr().err


@DASK_SOCKET_WARNINGS[0]
@DASK_SOCKET_WARNINGS[1]
def test_a_started_engine_given_to_a_function_keeps_its_one_cluster():
    """forecast_batch (and run_sbc) enter the engine they are given: a nested ``with`` must
    reuse the running cluster, not start a second one and stop it on the way out."""
    with Engine(workers=2) as engine:
        client = engine._client
        with engine:
            assert engine._client is client
        assert engine._client is client  # still running after the inner block
        assert sorted(engine.map(abs, [-1, 2])) == [(0, 1), (1, 2)]
    assert engine._client is None


def _constants(item, **constant):
    return item, constant


@DASK_SOCKET_WARNINGS[0]
@DASK_SOCKET_WARNINGS[1]
def test_constants_reach_the_workers_unchanged():
    """Every ``constant`` of ``Engine.map`` arrives as the object given: an empty dict, a dict
    (whose keys must not become cluster keys), a tuple (not turned into a list), None."""
    constant = {"empty": {}, "units": {"WT": "kg"}, "models": ("a", "b"), "none": None}
    with Engine(workers=2) as engine:
        results = engine.map_in_order(_constants, [1, 2], **constant)
    assert results == [(1, constant), (2, constant)]
    assert all(type(got["models"]) is tuple for _, got in results)
