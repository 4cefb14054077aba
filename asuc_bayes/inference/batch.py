"""Batch forecasting of many patients: one compiled model per worker, failures reported per
patient, resumable.

:func:`forecast_batch` maps the forecast of each patient over an :class:`Engine` (this
process, a local cluster of worker processes, or a Dask cluster). A patient whose forecast
fails (an exception, or an unconverged posterior) is reported in its row and the batch goes
on. With a checkpoint directory, every finished row is appended to ``rows.jsonl`` (and, with
``keep_trees``, its DataTree written to ``trees/``) as it arrives, so an interrupted batch
resumes without recomputing finished patients; the directory's ``manifest.json`` records the
model, settings and seed, and a checkpoint of another run is refused.

Examples
--------
>>> from asuc_bayes import example_path, load_model, read_patients
>>> patients = read_patients(example_path()).patients[:2]
>>> result = forecast_batch(patients, load_model(), settings=SamplerSettings(draws=200))
>>> [row.id for row in result.rows], sum(result.counts.values()), result.engine
(['P01', 'P02'], 2, 'this process')
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import xarray as xr

from asuc_bayes.data.dataset import InputError, Patient
from asuc_bayes.errors import AsucBayesError
from asuc_bayes.inference.engine import Engine
from asuc_bayes.inference.forecast import SamplerSettings, forecaster_for, patient_seed
from asuc_bayes.spec.config import ModelSpec

__all__ = ["BatchResult", "BatchRow", "CheckpointError", "forecast_batch", "with_input_errors"]

Status = Literal["ok", "unconverged", "error"]


class CheckpointError(AsucBayesError, ValueError):
    """A checkpoint directory that belongs to another run or cannot be read."""


@dataclass(frozen=True)
class BatchRow:
    """One patient's outcome: the JSON summary (or the error), and the seconds it took."""

    id: str
    status: Status
    summary: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    resumed: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.summary is not None:
            return self.summary
        return {"id": self.id, "status": self.status, "error": self.error}


@dataclass
class BatchResult:
    """Rows in input order, the DataTrees kept (by patient ID) and the engine used."""

    rows: list[BatchRow]
    trees: dict[str, xr.DataTree] = field(default_factory=dict)
    engine: str = "this process"
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "unconverged": 0, "error": 0}
        for row in self.rows:
            out[row.status] += 1
        return out


def _forecast_task(
    patient: Patient, *, spec: ModelSpec, settings: SamplerSettings, random_seed: int, keep_tree
):
    """One patient's forecast in whatever process runs it (module level: pickled by name)."""
    start = time.perf_counter()
    try:
        result = forecaster_for(spec).forecast(
            patient, random_seed=patient_seed(random_seed, patient.id), settings=settings
        )
    except Exception as exc:  # any failure is this patient's row, not the batch's
        row = BatchRow(
            patient.id,
            "error",
            error=f"{type(exc).__name__}: {exc}",
            seconds=time.perf_counter() - start,
        )
        return row, None
    row = BatchRow(
        patient.id, result.status, summary=result.summary(), seconds=time.perf_counter() - start
    )
    return row, (result.tree if keep_tree else None)


def _warm(spec: ModelSpec) -> None:
    """Load (or compile) the model's densities in this process."""
    forecaster = forecaster_for(spec)
    forecaster._density("eta")
    forecaster._density("sampler")


def run_key(spec: ModelSpec, settings: SamplerSettings, random_seed: int) -> str:
    """What makes two batches' rows interchangeable: model, variants, settings and seed."""
    text = json.dumps(
        {
            "model_sha256": spec.sha256,
            "model": repr(spec),
            "settings": asdict(replace(settings, cores=None)),
            "random_seed": random_seed,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _safe_name(patient_id: str) -> str:
    digest = hashlib.sha256(patient_id.encode()).hexdigest()[:10]
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in patient_id)[:40]
    return f"{readable}-{digest}"


class _Checkpoint:
    """Append-only record of finished rows in a directory (one writer: the main process)."""

    def __init__(self, directory, key: str, keep_trees: bool):
        self.directory = Path(directory)
        self.keep_trees = keep_trees
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest = self.directory / "manifest.json"
        if manifest.exists():
            try:
                recorded = json.loads(manifest.read_text())["run_key"]
            except (OSError, ValueError, KeyError) as exc:
                raise CheckpointError(f"{manifest}: not a checkpoint manifest ({exc})") from exc
            if recorded != key:
                raise CheckpointError(
                    f"checkpoint {self.directory} belongs to another run (model, settings or "
                    "seed differ); use a new directory or the same options"
                )
        else:
            manifest.write_text(json.dumps({"run_key": key}))
        self.rows_path = self.directory / "rows.jsonl"
        (self.directory / "trees").mkdir(exist_ok=True)

    def finished(self) -> dict[str, BatchRow]:
        """Rows recorded earlier (with their trees on disk when they are kept)."""
        rows = {}
        if not self.rows_path.exists():
            return rows
        for line in self.rows_path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by the interruption: that patient is recomputed
            row = BatchRow(**record, resumed=True)
            if row.status == "error":
                continue  # failures are retried on resume
            if self.keep_trees and not self.tree_path(row.id).exists():
                continue
            rows[row.id] = row
        return rows

    def tree_path(self, patient_id: str) -> Path:
        return self.directory / "trees" / f"{_safe_name(patient_id)}.nc"

    def record(self, row: BatchRow, tree: xr.DataTree | None) -> None:
        if tree is not None:
            tree.to_netcdf(self.tree_path(row.id), engine="h5netcdf")
        record = {k: v for k, v in asdict(row).items() if k != "resumed"}
        with self.rows_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def forecast_batch(
    patients: Sequence[Patient],
    spec: ModelSpec,
    *,
    settings: SamplerSettings | None = None,
    random_seed: int = 0,
    engine: Engine | None = None,
    checkpoint=None,
    keep_trees: bool = False,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int | None = None,
) -> BatchResult:
    """Forecast every patient; failures and unconverged posteriors are rows, not exceptions.

    Parameters
    ----------
    engine
        Where to run (default: this process). Workers sample with one thread each.
    checkpoint
        Directory recording finished rows; rows found there are not recomputed.
    keep_trees
        Keep each patient's DataTree (memory: ~1.5 MB per patient) in ``trees``.
    progress
        ``progress(done, total)`` after each patient.
    chunk_size
        Patients per task on a cluster (default:
        :func:`asuc_bayes.inference.engine.auto_chunk_size`);
        their rows arrive, and are checkpointed, together.
    """
    settings = settings or SamplerSettings()
    engine = engine or Engine()
    store = (
        None
        if checkpoint is None
        else _Checkpoint(checkpoint, run_key(spec, settings, random_seed), keep_trees)
    )
    start = time.perf_counter()
    rows: dict[str, BatchRow] = {}
    trees: dict[str, xr.DataTree] = {}
    if store is not None:
        known = {p.id for p in patients}
        rows = {pid: row for pid, row in store.finished().items() if pid in known}
        if keep_trees:
            trees = {pid: xr.load_datatree(store.tree_path(pid), engine="h5netcdf") for pid in rows}
    todo = [p for p in patients if p.id not in rows]
    if engine.distributed:
        settings = replace(settings, cores=1)  # one core per worker process
    done = len(rows)
    with engine:
        if todo and engine.distributed:  # here, the first forecast loads the densities
            engine.run_on_workers(_warm, spec)
        for index, (row, tree) in engine.map(
            _forecast_task,
            todo,
            chunk_size=chunk_size,
            spec=spec,
            settings=settings,
            random_seed=random_seed,
            keep_tree=keep_trees,
        ):
            rows[todo[index].id] = row
            if tree is not None:
                trees[row.id] = tree
            if store is not None:
                store.record(row, tree)
            done += 1
            if progress is not None:
                progress(done, len(patients))
    return BatchResult(
        rows=[rows[p.id] for p in patients],
        trees=trees,
        engine=engine.description,
        seconds=time.perf_counter() - start,
    )


def with_input_errors(batch: BatchResult, errors: Sequence[InputError]) -> BatchResult:
    """``batch`` with one ``error`` row for each patient whose data could not be read
    (:attr:`asuc_bayes.data.dataset.PatientSet.errors`), after the forecast rows."""
    rows = [BatchRow(str(e.patient_id), "error", error=str(e)) for e in errors]
    return replace(batch, rows=[*batch.rows, *rows])
