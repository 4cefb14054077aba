"""The app's server: each session's form, its jobs in the worker pool, and its outputs.

Every session keeps its own state — the form (rows, upload, picked patient), its tasks and
their last results, its downloads — and shares only the worker pool and its result cache (the
same job gives the same result). Its event loop validates the form and sends results; the
forecasts, figures, dose recommendations and downloads run in the workers
(:class:`~asuc_bayes.interfaces.app.pool.LatestTask`), so one session's forecast never freezes
another's
page and a changed input always ends with the result of the newest inputs.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import time
from collections.abc import Callable
from typing import Any

from shiny import reactive, render, ui

from asuc_bayes.data.dataset import (
    MAX_UPLOAD_BYTES,
    InputError,
    Patient,
    PatientSet,
    parse_patients,
)
from asuc_bayes.interfaces.app.form import CheckedForm, check_record, download_name, plain, rows_of
from asuc_bayes.interfaces.app.layout import dose_row, sample_row
from asuc_bayes.interfaces.app.pool import LatestTask, WorkerPool
from asuc_bayes.interfaces.app.views import (
    diagnostics_block,
    dosing_block,
    figure_img,
    risk_boxes,
)
from asuc_bayes.interfaces.app.views import summary_table as summary_table_tag
from asuc_bayes.interfaces.app.work import (
    DosingJob,
    DownloadJob,
    ExposureJob,
    Failure,
    ForecastJob,
)
from asuc_bayes.spec.config import ModelSpec

__all__ = ["make_server"]

EXPOSURE_TAB = "Exposure marker ln(AUC/CL)"
DOSING_TAB = "Week-2 dose to a target risk"
MIME = {"report": "text/html", "json": "application/json", "netcdf": "application/x-netcdf"}


class _DownloadUnavailable(Exception):
    """No forecast to download (the inputs have an error)."""


def make_server(
    spec: ModelSpec, examples: PatientSet, pool: WorkerPool
) -> Callable[[Any, Any, Any], None]:
    """The Shiny server function: one call per browser session."""
    default_duration = spec.pk.default_infusion_duration_day

    def server(input, output, session):
        checked = _patient_form(input, session, examples, default_duration)
        forecast_job = _forecast_job(input, checked)
        forecast_task = LatestTask(pool)
        exposure_task = LatestTask(pool)
        dosing_task = LatestTask(pool)
        session.on_ended(forecast_task.cancel)
        session.on_ended(exposure_task.cancel)
        session.on_ended(dosing_task.cancel)

        @reactive.calc
        def dosing_job() -> DosingJob | str | None:
            return _dosing_job(input, forecast_job())

        @reactive.effect
        def _submit():
            job = forecast_job()
            tab = input.result_tabs()
            forecast_task.submit(job)
            # the other figures only when their tab is shown (one figure per update)
            exposure = ExposureJob(job.patient, job.seed) if job and tab == EXPOSURE_TAB else None
            exposure_task.submit(exposure)
            dosing = dosing_job() if tab == DOSING_TAB else None
            dosing_task.submit(dosing if isinstance(dosing, DosingJob) else None)

        _result_outputs(input, output, session, spec, checked, forecast_job, forecast_task)
        _tab_outputs(forecast_job, dosing_job, exposure_task, dosing_task)
        _downloads(input, pool, forecast_job, dosing_job)

    return server


def _patient_form(input, session, examples: PatientSet, default_duration: float):
    """The session's form (rows, upload, examples, picker); returns its validated state."""
    uids = itertools.count(1)
    dose_uids: reactive.Value[list[int]] = reactive.value([], name="dose_uids")
    sample_uids: reactive.Value[list[int]] = reactive.value([], name="sample_uids")
    patient_set: reactive.Value[PatientSet] = reactive.value(examples, name="patient_set")
    notes: reactive.Value[list[str]] = reactive.value([], name="notes")
    upload_error: reactive.Value[str] = reactive.value("", name="upload_error")

    def fill_form(patient: Patient) -> None:
        doses, samples = rows_of(patient)
        ui.update_text("patient_id", value=patient.id)
        ui.update_numeric("weight_kg", value=plain(patient.weight_kg))
        ui.update_numeric("crp_mg_l", value=plain(patient.crp_mg_l))
        ui.remove_ui("#dose-rows > .dose-row", multiple=True)
        ui.remove_ui("#sample-rows > .sample-row", multiple=True)
        new_doses = [next(uids) for _ in doses]
        new_samples = [next(uids) for _ in samples]
        if doses:
            rows = (dose_row(u, **d) for u, d in zip(new_doses, doses, strict=True))
            ui.insert_ui(ui.TagList(*rows), "#dose-rows")
        if samples:
            rows = (sample_row(u, **s) for u, s in zip(new_samples, samples, strict=True))
            ui.insert_ui(ui.TagList(*rows), "#sample-rows")
        dose_uids.set(new_doses)
        sample_uids.set(new_samples)

    def show_set(new_set: PatientSet) -> None:
        patient_set.set(new_set)
        choices = {p: p for p in new_set.ids}
        ui.update_select("patient_pick", choices=choices, selected=new_set.ids[0])
        fill_form(new_set.patients[0])

    @reactive.effect
    def _start():
        with reactive.isolate():
            fill_form(examples.patients[0])

    @reactive.effect
    @reactive.event(input.load_example)
    def _load_example():
        upload_error.set("")
        notes.set([])
        show_set(examples)

    @reactive.effect
    @reactive.event(input.patient_pick, ignore_init=True)
    def _pick():
        chosen = input.patient_pick()
        with reactive.isolate():
            current = patient_set()
        if chosen in current.ids:
            fill_form(current.by_id(chosen))

    @reactive.effect
    @reactive.event(input.upload)
    def _upload():
        try:
            new_set = _parse_upload(input.upload() or {}, default_duration)
        except InputError as exc:
            upload_error.set(str(exc))
            notes.set([])
            return
        upload_error.set("")
        notes.set(list(new_set.notes))
        show_set(new_set)

    _row_buttons(input, uids, dose_uids, sample_uids, default_duration)

    @reactive.calc
    def checked() -> CheckedForm:
        doses, samples = dose_uids(), sample_uids()
        record = _form_record(input, doses, samples)
        return check_record(record, doses, samples, default_duration)

    @reactive.effect
    async def _show_field_errors():
        state = checked()
        errors = {"messages": state.messages, "fields": list(state.fields)}
        await session.send_custom_message("field_errors", errors)

    @render.ui
    def upload_notes():
        return _upload_messages(upload_error(), notes())

    return checked


def _upload_messages(error: str, notes: list[str]) -> ui.TagList:
    parts = []
    if error:
        parts.append(ui.div(error, class_="field-error", id="upload-error-text"))
    if notes:
        more = "…" if len(notes) > 5 else ""
        text = "Ignored while reading: " + "; ".join(notes[:5])
        parts.append(ui.div(text, more, class_="upload-note"))
    return ui.TagList(*parts)


def _parse_upload(payload: dict, default_duration: float) -> PatientSet:
    """The patients of an upload (base64 from the browser), parsed in memory."""
    name = str(payload.get("name") or "upload")
    content = payload.get("content") or ""
    if not isinstance(content, str) or len(content) > 4 * MAX_UPLOAD_BYTES // 3 + 8:
        raise InputError(
            f"{name}: more than the {MAX_UPLOAD_BYTES:,} bytes accepted (fix: upload only the "
            "patients you need)"
        )
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{name}: the upload was damaged; try again") from None
    return parse_patients(data, name, default_infusion_duration_day=default_duration)


def _row_buttons(input, uids, dose_uids, sample_uids, default_duration: float) -> None:
    """The add and remove buttons of the dose and sample rows."""

    @reactive.effect
    @reactive.event(input.add_dose)
    def _add_dose():
        current = dose_uids()
        day, amount, unit, hours = 0, 10, "mg_per_kg", plain(default_duration * 24, 4)
        if current:
            last = current[-1]
            day = (input[f"dose_day_{last}"]() or 0) + 14
            amount = input[f"dose_amount_{last}"]()
            unit = input[f"dose_unit_{last}"]()
            hours = input[f"dose_hours_{last}"]()
        uid = next(uids)
        ui.insert_ui(dose_row(uid, day, amount, unit, hours), "#dose-rows")
        dose_uids.set([*current, uid])

    @reactive.effect
    @reactive.event(input.add_sample)
    def _add_sample():
        current = sample_uids()
        day = (input[f"sample_day_{current[-1]}"]() or 0) + 7 if current else 7
        uid = next(uids)
        ui.insert_ui(sample_row(uid, day, None, "mg_l"), "#sample-rows")
        sample_uids.set([*current, uid])

    @reactive.effect
    @reactive.event(input.remove_dose)
    def _remove_dose():
        uid = input.remove_dose()
        ui.remove_ui(f"#dose-row-{int(uid)}")
        dose_uids.set([u for u in dose_uids() if u != uid])

    @reactive.effect
    @reactive.event(input.remove_sample)
    def _remove_sample():
        uid = input.remove_sample()
        ui.remove_ui(f"#sample-row-{int(uid)}")
        sample_uids.set([u for u in sample_uids() if u != uid])


def _form_record(input, doses: list[int], samples: list[int]) -> dict[str, Any]:
    """The form's values as a patient record (the JSON/TOML patient form)."""
    record: dict[str, Any] = {
        "id": input.patient_id() or "",
        "weight_kg": input.weight_kg(),
        "crp_mg_l": input.crp_mg_l(),
        "doses": [],
        "samples": [],
    }
    for uid in doses:
        dose = {
            "day": input[f"dose_day_{uid}"](),
            input[f"dose_unit_{uid}"](): input[f"dose_amount_{uid}"](),
        }
        hours = input[f"dose_hours_{uid}"]()
        if hours is not None:
            dose["duration_h"] = hours
        record["doses"].append(dose)
    for uid in samples:
        kind = input[f"sample_kind_{uid}"]()
        record["samples"].append(
            {"day": input[f"sample_day_{uid}"](), kind: input[f"sample_value_{uid}"]()}
        )
    return record


def _forecast_job(input, checked) -> Callable[[], ForecastJob | None]:
    @reactive.calc
    def forecast_job() -> ForecastJob | None:
        state = checked()
        if state.patient is None:
            return None
        seed = input.seed()
        seed = int(seed) if isinstance(seed, int | float) and seed >= 0 else 0
        return ForecastJob(state.patient, seed, bool(input.log_scale()))

    return forecast_job


#: The dosing panel's message when one of its fields is empty.
DOSING_INCOMPLETE = "give the target risk, the probability and the day of the dose"


def _dosing_job(input, job: ForecastJob | None) -> DosingJob | str | None:
    """The dosing panel's request for the current forecast: a job, the message for an empty
    field, or None without a forecast."""
    if job is None:
        return None
    target, probability, day = input.target_risk(), input.criterion_probability(), input.dose_day()
    if target is None or probability is None or day is None:
        return DOSING_INCOMPLETE
    criterion = input.criterion()
    target_risk = float(target) / 100.0
    return DosingJob(job.patient, job.seed, target_risk, criterion, float(probability), float(day))


def _result_outputs(input, output, session, spec, checked, forecast_job, forecast_task) -> None:
    """The banner, the risk panel, the concentration figure, the table and the diagnostics."""

    def view():
        """The current inputs' forecast view, a Failure, or None (input error)."""
        return forecast_task.result_for(forecast_job())

    def ok_view():
        value = view()
        return None if value is None or isinstance(value, Failure) else value

    @reactive.effect
    async def _enable_downloads():
        enabled = forecast_job() is not None
        await session.send_custom_message("downloads", {"enabled": enabled})

    @render.ui
    def status_banner():
        state = checked()
        if state.patient is None:
            return ui.div(
                ui.strong("Input error: "),
                state.message or "check the inputs",
                " — fix the highlighted field; no forecast is shown until then.",
                class_="alert alert-danger",
                role="alert",
                id="input-error-banner",
            )
        value = view()
        if isinstance(value, Failure):
            return ui.div(value.message, class_="alert alert-danger", role="alert")
        if value.status != "ok":
            return ui.div(
                ui.strong("⚠ Not converged: "),
                "this posterior did not pass the convergence checks (R-hat, ESS, "
                "divergences). Do not use these numbers as they are.",
                class_="alert alert-danger",
                role="alert",
                id="unconverged-banner",
            )
        return ui.TagList()

    @render.ui
    def risk_panel():
        value = ok_view()
        if value is None:
            return ui.div(
                "No forecast: complete the inputs.", class_="text-muted", id="no-forecast"
            )
        return risk_boxes(value.summary, spec.tte.high_risk_threshold)

    @render.ui
    def concentration_plot():
        value = ok_view()
        alt = "Concentration-time course: a priori, a posteriori and the 90 % band"
        return None if value is None else figure_img(value.figure_svg, alt, "image/svg+xml")

    @render.ui
    def summary_table():
        value = ok_view()
        return ui.TagList() if value is None else summary_table_tag(value.summary)

    @render.ui
    def diagnostics():
        value = ok_view()
        return ui.TagList() if value is None else diagnostics_block(value)


def _tab_outputs(forecast_job, dosing_job, exposure_task, dosing_task) -> None:
    """The figures of the other tabs and the dosing panel (computed when their tab is shown)."""

    @render.ui
    def ln_ratio_plot():
        job = forecast_job()
        value = exposure_task.result_for(job and ExposureJob(job.patient, job.seed))
        if value is None or isinstance(value, Failure):
            return None
        alt = "Posterior density of ln(AUC/CL) with the high-risk threshold"
        return figure_img(value.png, alt)

    @reactive.calc
    def dosing_view():
        job = dosing_job()
        return job if isinstance(job, str) else dosing_task.result_for(job)

    @render.ui
    def dosing_summary():
        value = dosing_view()
        if value is None:
            return ui.TagList()
        if isinstance(value, str | Failure):
            text = value if isinstance(value, str) else value.message
            return ui.div(text, class_="field-error", id="dosing-error")
        return dosing_block(value)

    @render.ui
    def dose_risk_plot():
        value = dosing_view()
        if value is None or isinstance(value, str | Failure) or value.figure_png is None:
            return None
        return figure_img(value.figure_png, "90-day risk against the week-2 dose")


def _downloads(input, pool: WorkerPool, forecast_job, dosing_job) -> None:
    """The three downloads, built by a worker in memory (nothing is written to disk)."""

    def name(suffix: str) -> Callable[[], str]:
        return lambda: download_name(input.patient_id() or "", suffix)

    async def build(kind: str) -> bytes:
        job = forecast_job()
        if job is None:
            raise _DownloadUnavailable()
        dosing = dosing_job() if kind == "report" else None
        dosing = dosing if isinstance(dosing, DosingJob) else None
        stamp = time.strftime("%Y-%m-%d %H:%M")
        result = await pool.run(DownloadJob(kind, job.patient, job.seed, dosing, stamp))
        if isinstance(result, Failure) or not isinstance(result, bytes):
            raise _DownloadUnavailable()
        return result

    @render.download_button(filename=name(".html"), media_type=MIME["report"])
    async def download_report():
        yield await build("report")

    @render.download_button(filename=name(".json"), media_type=MIME["json"])
    async def download_json():
        yield await build("json")

    @render.download_button(filename=name(".nc"), media_type=MIME["netcdf"])
    async def download_netcdf():
        yield await build("netcdf")
