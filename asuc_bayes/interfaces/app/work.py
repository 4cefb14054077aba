"""What the app's worker processes compute: forecasts, figures, dose recommendations, downloads.

Each job is a small frozen dataclass (hashable: the same job gives the same result, so results
can be cached); :func:`compute` runs one in a worker process and returns a typed view of the
result, with every figure already drawn (once per result: the concentration figure as SVG,
:mod:`asuc_bayes.interfaces.app.svg`; the other tabs' as PNG). A worker keeps its own warm
compiled :class:`~asuc_bayes.inference.forecast.Forecaster` (:func:`start_worker`) and its last few
forecasts, so a figure or dose asked for after the forecast does not sample again.

Only the public API is called (:mod:`asuc_bayes.inference.forecast`,
:mod:`asuc_bayes.decisions.dosing`,
:mod:`asuc_bayes.interfaces.plots`, :mod:`asuc_bayes.interfaces.report`). Nothing about a patient
is logged.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from asuc_bayes.data.dataset import Patient, example_path, read_patients
from asuc_bayes.decisions.dosing import DosingError, recommend_dose
from asuc_bayes.inference.forecast import (
    PatientForecast,
    SamplerSettings,
    forecaster_for,
    patient_seed,
    results_json,
    save_results,
)
from asuc_bayes.interfaces.app.svg import concentration_svg
from asuc_bayes.interfaces.plots import dose_risk_figure, figure_png, ln_ratio_figure
from asuc_bayes.interfaces.report import patient_report_html
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "DosingJob",
    "DosingView",
    "DownloadJob",
    "ExposureJob",
    "Failure",
    "FigureView",
    "ForecastJob",
    "ForecastView",
    "WorkerState",
    "compute",
    "start_worker",
    "worker_pid",
]

#: Figures are drawn at this resolution (the page shows them at most this wide).
FIGURE_DPI = 96
#: Forecasts a worker keeps (a figure or a dose asked for later reuses them).
FORECASTS_KEPT = 8
#: Longest wait at start-up for the other workers to be warm (a cold compile takes ~1 min).
START_TIMEOUT_S = 900.0


# -- jobs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForecastJob:
    """The forecast of a patient: risk panel, table, diagnostics and concentration figure."""

    patient: Patient
    seed: int
    log_scale: bool = True


@dataclass(frozen=True)
class ExposureJob:
    """The posterior density figure of ln(AUC/CL)."""

    patient: Patient
    seed: int


@dataclass(frozen=True)
class DosingJob:
    """A week-2 dose recommendation (``target_risk`` as a fraction) and its dose-risk curve."""

    patient: Patient
    seed: int
    target_risk: float
    criterion: str
    probability: float
    dose_day: float


@dataclass(frozen=True)
class DownloadJob:
    """A download: the HTML report (with ``dosing`` if valid), the JSON or the netCDF."""

    kind: Literal["report", "json", "netcdf"]
    patient: Patient
    seed: int
    dosing: DosingJob | None = None
    generated_at: str = ""


Job = ForecastJob | ExposureJob | DosingJob | DownloadJob


# -- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForecastView:
    """What the page shows of a forecast (``seconds``: the worker's time for it;
    ``figure_svg``: the concentration figure,
    :func:`asuc_bayes.interfaces.app.svg.concentration_svg`)."""

    job: ForecastJob
    summary: dict[str, Any]
    status: str
    diagnostics: dict[str, Any]
    seconds: float
    figure_svg: bytes | None
    cached: bool = False


@dataclass(frozen=True)
class FigureView:
    """A figure drawn for a job (``png`` None when drawing failed)."""

    job: ExposureJob
    png: bytes | None


@dataclass(frozen=True)
class DosingView:
    """A dose recommendation (the ``optimize`` JSON entry), or the error in words."""

    job: DosingJob
    recommendation: dict[str, Any] | None
    error: str | None
    figure_png: bytes | None


@dataclass(frozen=True)
class Failure:
    """A job that failed: a message for the page (never the exception's text)."""

    job: Any
    message: str


# -- the worker process ---------------------------------------------------------------------
@dataclass
class WorkerState:
    """A worker's model, settings and last forecasts (by patient and seed)."""

    spec: ModelSpec
    settings: SamplerSettings
    forecasts: OrderedDict = dataclasses.field(default_factory=OrderedDict)

    def forecast(self, patient: Patient, seed: int) -> PatientForecast:
        """The patient's forecast with ``patient_seed(seed, ID)``, reused when kept."""
        key = (patient, seed)
        if key in self.forecasts:
            self.forecasts.move_to_end(key)
            return self.forecasts[key]
        result = forecaster_for(self.spec).forecast(
            patient, random_seed=patient_seed(seed, patient.id), settings=self.settings
        )
        self.forecasts[key] = result
        while len(self.forecasts) > FORECASTS_KEPT:
            self.forecasts.popitem(last=False)
        return result


_STATE: WorkerState | None = None


def start_worker(spec: ModelSpec, settings: SamplerSettings, lock=None, barrier=None) -> None:
    """Initialise a worker process: load (or compile) the model, run and draw one forecast.

    ``lock`` (shared by the workers) lets one worker at a time load the compiled model, so a
    cold disk cache is compiled once; ``barrier`` makes each worker wait until all are warm.
    """
    global _STATE
    _exit_with_parent(os.getppid())
    state = WorkerState(spec, dataclasses.replace(settings, cores=1))  # one core per worker
    example = read_patients(
        example_path(), default_infusion_duration_day=spec.pk.default_infusion_duration_day
    ).patients[0]
    if lock is not None:
        with lock:
            state.forecast(example, 0)
    warm_jobs = (
        ForecastJob(example, 0),
        ExposureJob(example, 0),
        _example_dosing(example),
        DownloadJob("netcdf", example, 0),
        DownloadJob("report", example, 0, _example_dosing(example)),
    )
    for job in warm_jobs:  # loads fonts, templates and the netCDF writer once, not per user
        _COMPUTE[type(job)](state, job)
    _STATE = state
    if barrier is not None:
        barrier.wait(timeout=START_TIMEOUT_S)


def _exit_with_parent(parent_pid: int, every_s: float = 1.0) -> None:
    """End this worker when the app's process is gone (even killed without clean-up)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _example_dosing(patient: Patient) -> DosingJob:
    return DosingJob(patient, 0, 0.2, "mean", 0.8, 14.0)


def worker_pid() -> int:
    """The worker's process id (a job that shows the worker is running)."""
    return os.getpid()


def compute(job: Job) -> ForecastView | FigureView | DosingView | bytes:
    """Run one job in this worker (after :func:`start_worker`)."""
    if _STATE is None:
        raise RuntimeError("start_worker was not called in this process")
    return _COMPUTE[type(job)](_STATE, job)


def _png(figure) -> bytes:
    return figure_png(figure, dpi=FIGURE_DPI)


def _forecast_view(state: WorkerState, job: ForecastJob) -> ForecastView:
    start = time.perf_counter()
    result = state.forecast(job.patient, job.seed)
    figure = concentration_svg(result, log_scale=job.log_scale)  # ~5 ms; matplotlib ~170 ms
    return ForecastView(
        job,
        result.summary(),
        result.status,
        result.diagnostics,
        time.perf_counter() - start,
        figure,
    )


def _exposure_view(state: WorkerState, job: ExposureJob) -> FigureView:
    result = state.forecast(job.patient, job.seed)
    return FigureView(job, _png(ln_ratio_figure(result, summary=result.summary())))


def _recommendation(state: WorkerState, job: DosingJob) -> dict[str, Any]:
    """The recommendation's JSON entry; raises :class:`DosingError` for a bad request."""
    result = state.forecast(job.patient, job.seed)
    return recommend_dose(
        result,
        target_risk=job.target_risk,
        criterion=job.criterion,
        probability=job.probability,
        dose_time_day=job.dose_day,
    ).to_json()


def _dosing_view(state: WorkerState, job: DosingJob) -> DosingView:
    try:
        recommendation = _recommendation(state, job)
    except DosingError as exc:  # its clinical wording: no CLI options
        return DosingView(job, None, exc.clinical, None)
    figure = _png(dose_risk_figure(recommendation)) if recommendation.get("curve") else None
    return DosingView(job, recommendation, None, figure)


def _download(state: WorkerState, job: DownloadJob) -> bytes:
    result = state.forecast(job.patient, job.seed)
    if job.kind == "json":
        return json.dumps(results_json([result], state.spec), indent=2).encode()
    if job.kind == "netcdf":
        buffer = io.BytesIO()  # in memory: nothing is written to disk
        save_results([result], buffer)
        return buffer.getvalue()
    dosing = None
    if job.dosing is not None:
        try:
            dosing = _recommendation(state, job.dosing)
        except DosingError as exc:
            dosing = {"error": exc.clinical}
    html = patient_report_html(
        result, dosing=dosing, generated_at=job.generated_at, random_seed=job.seed
    )
    return html.encode()


_COMPUTE = {
    ForecastJob: _forecast_view,
    ExposureJob: _exposure_view,
    DosingJob: _dosing_view,
    DownloadJob: _download,
}
