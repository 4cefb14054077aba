"""The web app (Shiny for Python): ``asuc-bayes app [--host 127.0.0.1] [--port 8000]``.

The three input tabs of the published tool (dosing regimen, serum samples, covariates), an
upload of a NONMEM-style CSV or TOML/YAML patient file and the bundled examples; the
concentration–time course with its credible band, the risk panel (posterior mean, 95 % CrI,
P(high risk), class, and the MAP beside them), the posterior of ln(AUC_w2-4/CL), diagnostics,
the dosing panel, and downloads (HTML report, JSON, netCDF).

The app only calls the public API (:mod:`asuc_bayes.dataset`, :mod:`asuc_bayes.forecast`,
:mod:`asuc_bayes.plots`, :mod:`asuc_bayes.report`); it holds no model logic. The compiled
:class:`~asuc_bayes.forecast.Forecaster` is process-wide and warmed before the server starts.

Privacy: uploads are read in the browser and sent over the app's websocket; they are parsed
in memory (:func:`asuc_bayes.dataset.parse_patients`) and never written to disk; downloads
are built in memory; nothing about a patient is logged (errors are logged by type only).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import itertools
import json
import re
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from shiny import App, reactive, render, ui

from asuc_bayes.config import ModelSpec, load_model
from asuc_bayes.dataset import (
    ABOVE_ULOQ,
    BELOW_LLOQ,
    MAX_UPLOAD_BYTES,
    InputError,
    Patient,
    PatientSet,
    example_path,
    parse_patients,
    patients_from_records,
    read_patients,
)
from asuc_bayes.dosing import DosingError, recommend_dose
from asuc_bayes.forecast import (
    PatientForecast,
    SamplerSettings,
    forecaster_for,
    patient_seed,
    results_json,
    save_results,
)
from asuc_bayes.plots import (
    PNG_OPTIONS,
    concentration_figure,
    dose_risk_figure,
    ln_ratio_figure,
)
from asuc_bayes.report import method_text, patient_report_html, summary_rows

__all__ = ["create_app", "run_app", "warm_up"]

#: Forecasts kept per app (the same patient and seed give the same forecast).
CACHE_SIZE = 16
DOSE_UNITS = {"mg": "mg", "mg_per_kg": "mg/kg"}
SAMPLE_KINDS = {"mg_l": "measured", "below_lloq": "< LLOQ", "above_uloq": "> ULOQ"}
_KIND_OF_CENSORING = {0: "mg_l", BELOW_LLOQ: "below_lloq", ABOVE_ULOQ: "above_uloq"}


def _log(message: str) -> None:
    """Operational messages only: never a patient's data."""
    print(f"asuc-bayes app: {message}", file=sys.stderr, flush=True)


# -- layout ---------------------------------------------------------------------------------
_CSS = """
.entry-head, .entry-grid { display: grid; gap: 0.35rem; align-items: center; }
.dose-grid { grid-template-columns: 1fr 1.2fr 1.1fr 1fr 2rem; }
.sample-grid { grid-template-columns: 1fr 1.1fr 1.9fr 2rem; }
.entry-head { font-size: 0.78rem; color: #5b6475; margin-bottom: 0.15rem; }
.entry-grid .shiny-input-container { width: 100% !important; margin-bottom: 0; }
.entry-grid .form-control, .entry-grid .form-select { padding: 0.2rem 0.4rem; font-size: 0.9rem; }
.entry-row { margin-bottom: 0.35rem; }
.remove-row { padding: 0 0.3rem; line-height: 1.4; }
.field-error { color: #b3261e; font-size: 0.82rem; }
.field-error:empty { display: none; }
.is-invalid { border-color: #b3261e !important; box-shadow: 0 0 0 0.15rem rgba(179,38,30,.2); }
.upload-box { border: 1px dashed #adb5bd; border-radius: 6px; padding: 0.5rem; }
.upload-note { font-size: 0.8rem; color: #5b6475; }
.research-badge { font-size: 0.75rem; vertical-align: middle; }
table.summary { font-size: 0.88rem; width: 100%; }
table.summary th, table.summary td { padding: 0.2rem 0.45rem; text-align: right; }
table.summary th:first-child, table.summary td:first-child { text-align: left; }
.diagnostics { font-size: 0.86rem; }
.value-box-detail { font-size: 0.82rem; }
.risk-high { color: #b3261e; } .risk-low { color: #00785a; }
.compute-time { font-size: 0.78rem; color: #6c757d; }
.download-choice.no-forecast { pointer-events: none; opacity: 0.45; }
.bslib-value-box .value-box-title { font-size: 0.9rem; }
.bslib-value-box .value-box-value { font-size: 1.7rem; margin-bottom: 0.1rem; }
.bslib-value-box .value-box-area { padding: 0.7rem 0.9rem !important; }
"""

_JS = """
(function () {
  const MAX_BYTES = %(max_bytes)d;
  function toBase64(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }
  document.addEventListener("change", function (event) {
    const element = event.target;
    if (!element || element.id !== "upload_file") return;
    const file = element.files && element.files[0];
    if (!file) return;
    const report = document.getElementById("upload_file-error");
    if (report) report.textContent = "";
    if (file.size > MAX_BYTES) {
      if (report) report.textContent = file.name + ": the file is " + file.size +
        " bytes, more than the " + MAX_BYTES + " accepted (fix: upload only the patients you need)";
      element.value = "";
      return;
    }
    const reader = new FileReader();
    reader.onload = function () {
      Shiny.setInputValue("upload", {name: file.name, size: file.size,
                                     content: toBase64(reader.result)}, {priority: "event"});
      element.value = "";
    };
    reader.readAsArrayBuffer(file);
  });
  $(document).on("shiny:connected", function () {
    Shiny.addCustomMessageHandler("field_errors", function (errors) {
      document.querySelectorAll(".field-error[data-managed]").forEach(function (e) {
        e.textContent = "";
      });
      document.querySelectorAll(".is-invalid").forEach(function (e) {
        e.classList.remove("is-invalid");
      });
      Object.entries(errors.messages || {}).forEach(function ([id, text]) {
        const target = document.getElementById(id + "-error");
        if (target) target.textContent = text;
      });
      (errors.fields || []).forEach(function (id) {
        const input = document.getElementById(id);
        if (input) input.classList.add("is-invalid");
      });
    });
    Shiny.addCustomMessageHandler("downloads", function (state) {
      document.querySelectorAll(".download-choice").forEach(function (link) {
        link.classList.toggle("no-forecast", !state.enabled);
        link.setAttribute("aria-disabled", state.enabled ? "false" : "true");
      });
    });
  });
})();
"""


def _error_slot(element_id: str) -> ui.Tag:
    return ui.div(id=f"{element_id}-error", class_="field-error", data_managed="1", role="alert")


def _entry_row(kind: str, uid: int, *inputs: ui.Tag) -> ui.Tag:
    """One dose or sample row: its inputs, a remove button and the row's error slot."""
    return ui.div(
        ui.div(
            *inputs,
            ui.tags.button(
                "✕",
                type="button",
                class_="btn btn-sm btn-outline-secondary remove-row",
                title=f"remove this {kind}",
                aria_label=f"remove this {kind}",
                onclick=f"Shiny.setInputValue('remove_{kind}', {uid}, {{priority: 'event'}})",
            ),
            class_=f"entry-grid {kind}-grid",
        ),
        _error_slot(f"{kind}-row-{uid}"),
        id=f"{kind}-row-{uid}",
        class_=f"entry-row {kind}-row",
    )


def _dose_row(uid: int, day: float | None, amount: float | None, unit: str, hours: float | None):
    return _entry_row(
        "dose",
        uid,
        ui.input_numeric(f"dose_day_{uid}", None, day, min=0, step=1),
        ui.input_numeric(f"dose_amount_{uid}", None, amount, min=0, step=10),
        ui.input_select(f"dose_unit_{uid}", None, DOSE_UNITS, selected=unit),
        ui.input_numeric(f"dose_hours_{uid}", None, hours, min=0, step=0.5),
    )


def _sample_row(uid: int, day: float | None, value: float | None, kind: str):
    return _entry_row(
        "sample",
        uid,
        ui.input_numeric(f"sample_day_{uid}", None, day, min=0, step=1),
        ui.input_numeric(f"sample_value_{uid}", None, value, min=0, step=1),
        ui.input_select(f"sample_kind_{uid}", None, SAMPLE_KINDS, selected=kind),
    )


def _entry_tab(title: str, kind: str, note: str, columns: tuple[str, ...]):
    """The Dosing or Samples tab: a note, column heads, the rows and an add button."""
    return ui.nav_panel(
        title,
        ui.p(note, class_="upload-note"),
        ui.div(*(ui.span(c) for c in (*columns, "")), class_=f"entry-head {kind}-grid"),
        ui.div(id=f"{kind}-rows"),
        _error_slot(f"{kind}-rows"),
        ui.input_action_button(f"add_{kind}", f"+ add {kind}", class_="btn-sm btn-outline-primary"),
    )


def _sidebar(examples: PatientSet, seed: int) -> ui.Sidebar:
    dosing_tab = _entry_tab(
        "Dosing",
        "dose",
        "Every infusion of the regimen to evaluate: given and planned doses.",
        ("day", "dose", "unit", "duration (h)"),
    )
    samples_tab = _entry_tab(
        "Samples",
        "sample",
        "Serum infliximab concentrations (mg/L = µg/mL). A sample below the assay's lower "
        "limit (< LLOQ) or above its upper limit (> ULOQ): give the limit as the value.",
        ("day", "mg/L", "status"),
    )
    covariates_tab = ui.nav_panel(
        "Covariates",
        ui.input_text("patient_id", "Patient ID", ""),
        _error_slot("patient_id"),
        ui.input_numeric("weight_kg", "Body weight (kg)", None, min=0, step=1),
        _error_slot("weight_kg"),
        ui.input_numeric("crp_mg_l", "Baseline CRP (mg/L)", None, min=0, step=1),
        _error_slot("crp_mg_l"),
    )
    upload = ui.div(
        ui.tags.label("Patient file (NONMEM CSV, TOML or YAML)", for_="upload_file"),
        ui.tags.input(
            type="file",
            id="upload_file",
            accept=".csv,.toml,.yaml,.yml",
            class_="form-control form-control-sm",
            data_shiny_no_bind_input="1",  # read in the browser, never uploaded to disk
        ),
        ui.div(id="upload_file-error", class_="field-error", role="alert"),
        ui.output_ui("upload_notes"),
        ui.div(
            ui.input_action_button(
                "load_example", "Load the examples", class_="btn-sm btn-outline-secondary"
            ),
            class_="mt-2",
        ),
        ui.input_select("patient_pick", "Patient in the file", {p: p for p in examples.ids}),
        class_="upload-box",
    )
    return ui.sidebar(
        upload,
        ui.navset_tab(dosing_tab, samples_tab, covariates_tab, id="input_tabs"),
        ui.accordion(
            ui.accordion_panel(
                "Options",
                ui.input_numeric("seed", "Random seed", seed, min=0, step=1),
                ui.input_switch("log_scale", "Logarithmic concentration axis", True),
            ),
            open=False,
        ),
        width=470,
        title="Patient",
    )


def _dosing_panel() -> ui.Tag:
    return ui.div(
        ui.layout_columns(
            ui.input_numeric("target_risk", "Target 90-day risk (%)", 20, min=1, max=90, step=1),
            ui.input_radio_buttons(
                "criterion",
                "Criterion",
                {"mean": "posterior mean risk ≤ target", "probability": "P(risk ≤ target) ≥"},
                selected="mean",
            ),
            ui.panel_conditional(
                "input.criterion === 'probability'",
                ui.input_numeric(
                    "criterion_probability",
                    "required probability",
                    0.8,
                    min=0.5,
                    max=0.99,
                    step=0.05,
                ),
            ),
            ui.input_numeric("dose_day", "Day of the dose", 14, min=0, step=1),
            col_widths=(3, 3, 3, 3),
        ),
        ui.output_ui("dosing_summary"),
        ui.output_plot("dose_risk_plot", height="330px"),
        ui.p(
            "Whole 100 mg vials up to 20 mg/kg; the dose replaces the regimen's dose on that day "
            "(or is added) and the other doses stay as entered. The recommendation uses this "
            "patient's posterior; the MAP recommendation is what a point forecast would give.",
            class_="upload-note",
        ),
        id="dosing_card",
    )


def _main_panel(spec: ModelSpec) -> list:
    return [
        ui.output_ui("status_banner"),
        ui.output_ui("risk_panel"),
        # one figure at a time: Shiny draws only the visible tab's plot, which keeps an
        # input change fast (each figure costs ~0.2 s to draw)
        ui.navset_card_underline(
            ui.nav_panel(
                "Concentration–time course",
                ui.output_plot("concentration_plot", height="430px"),
            ),
            ui.nav_panel(
                "Exposure marker ln(AUC/CL)",
                ui.output_plot("ln_ratio_plot", height="300px"),
            ),
            ui.nav_panel("Week-2 dose to a target risk", _dosing_panel()),
            id="result_tabs",
        ),
        ui.card(
            ui.card_header("Posterior beside the MAP, and diagnostics"),
            ui.output_ui("summary_table"),
            ui.output_ui("diagnostics"),
        ),
        ui.card(
            ui.card_header("Downloads"),
            ui.div(
                ui.download_button(
                    "download_report", "Patient report (HTML)", class_="download-choice"
                ),
                ui.download_button("download_json", "Results (JSON)", class_="download-choice"),
                ui.download_button("download_netcdf", "Results (netCDF)", class_="download-choice"),
                class_="d-flex gap-2 flex-wrap",
            ),
        ),
        ui.p(
            f"Model {spec.label} (sha256 {spec.sha256[:12]}). Research use only: the model "
            "has not been externally validated.",
            class_="text-muted small",
        ),
    ]


def _app_ui(spec: ModelSpec, examples: PatientSet, seed: int):
    return ui.page_sidebar(
        _sidebar(examples, seed),
        ui.head_content(
            ui.tags.style(_CSS),
            ui.tags.script(_JS % {"max_bytes": MAX_UPLOAD_BYTES}),
        ),
        *_main_panel(spec),
        title=ui.span(
            "asuc_bayes — infliximab in acute severe UC ",
            ui.span("research use only", class_="badge bg-warning text-dark research-badge"),
        ),
        window_title="asuc_bayes",
        lang="en",
    )


# -- server helpers -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Checked:
    """The form, validated: a patient, or the error and where to show it."""

    patient: Patient | None
    message: str | None = None
    messages: dict[str, str] = dataclasses.field(default_factory=dict)
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Outcome:
    """A forecast, or why there is none."""

    forecast: PatientForecast | None
    seconds: float = 0.0
    message: str | None = None
    cached: bool = False


_ENTRY = re.compile(r"^(doses|samples)\[(\d+)\]$")
_DOSE_FIELDS = {
    "day": "dose_day",
    "mg": "dose_amount",
    "mg_per_kg": "dose_amount",
    "mg/mg_per_kg": "dose_amount",
    "duration_h": "dose_hours",
    "duration_day": "dose_hours",
}
_SAMPLE_FIELDS = {
    "day": "sample_day",
    "mg_l": "sample_value",
    "below_lloq": "sample_value",
    "above_uloq": "sample_value",
    "mg_l/below_lloq/above_uloq": "sample_value",
}
_PATIENT_FIELDS = {"id": "patient_id", "weight_kg": "weight_kg", "crp_mg_l": "crp_mg_l"}


def _where_to_show(
    error: InputError, dose_uids: list[int], sample_uids: list[int]
) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(headline, {id of the error slot without "-error": text}, inputs to mark) of an error."""
    location = error.location if isinstance(error.location, str) else ""
    match = _ENTRY.match(location)
    if match:
        kind, index = match.group(1), int(match.group(2))
        if kind == "doses" and index < len(dose_uids):
            uid, names, what = dose_uids[index], _DOSE_FIELDS, "dose"
        elif kind == "samples" and index < len(sample_uids):
            uid, names, what = sample_uids[index], _SAMPLE_FIELDS, "sample"
        else:
            return str(error), {}, ()
        prefix = names.get(error.field or "")
        label = error.field.replace("_", " ") if error.field else what
        text = f"{label}: {error.detail}"
        fields = (f"{prefix}_{uid}",) if prefix else ()
        return f"{what} {index + 1}, {text}", {f"{what}-row-{uid}": text}, fields
    if error.field in _PATIENT_FIELDS:
        element = _PATIENT_FIELDS[error.field]
        return (
            f"covariates, {error.field.replace('_', ' ')}: {error.detail}",
            {element: error.detail},
            (element,),
        )
    if error.field == "doses":
        return f"dosing: {error.detail}", {"dose-rows": error.detail}, ()
    return error.detail, {}, ()


def _plain(value: float, digits: int = 6) -> float | int:
    """``600.0`` -> ``600`` for display in a numeric input; other values rounded."""
    rounded = round(float(value), digits)
    return int(rounded) if rounded.is_integer() else rounded


def _rows_of(patient: Patient) -> tuple[list[dict], list[dict]]:
    doses = [
        {
            "day": _plain(d.time_day),
            "amount": _plain(d.amount_mg, 3),
            "unit": "mg",
            "hours": _plain(d.duration_day * 24.0, 4),
        }
        for d in patient.doses
    ]
    samples = [
        {
            "day": _plain(o.time_day),
            "value": _plain(o.value_mg_l),
            "kind": _KIND_OF_CENSORING[o.censoring],
        }
        for o in patient.observations
    ]
    return doses, samples


def _download_name(patient_id: str, suffix: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", patient_id).strip(".") or "patient"
    return f"asuc-bayes-{safe}{suffix}"


def _unexpected(what: str, exc: Exception, debug: bool) -> None:
    """Log an unexpected error by type only (its text may hold patient values)."""
    _log(f"{what} failed ({type(exc).__name__})")
    if debug:
        import traceback

        traceback.print_exception(exc)


def _drawn(draw, debug: bool):
    """A figure, or no figure (and a log line without patient data) if drawing fails."""
    try:
        return draw()
    except Exception as exc:
        _unexpected("a figure", exc, debug)
        return None


def _fmt_pct(value: float) -> str:
    return f"{100 * value:.1f} %"


# -- the app --------------------------------------------------------------------------------
def warm_up(spec: ModelSpec, settings: SamplerSettings | None = None) -> float:
    """Compile or load the model's densities and run one forecast; return the seconds taken."""
    start = time.perf_counter()
    forecaster = forecaster_for(spec)
    patient = read_patients(
        example_path(), default_infusion_duration_day=spec.pk.default_infusion_duration_day
    ).patients[0]
    forecaster.forecast(patient, random_seed=0, settings=settings)
    return time.perf_counter() - start


def create_app(
    spec: ModelSpec | None = None,
    *,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    debug: bool = False,
) -> App:
    """The Shiny app for ``spec`` (the default model when ``None``).

    Parameters
    ----------
    spec
        The model; forecasts use the process-wide forecaster of this spec.
    settings
        Sampler settings (the defaults of :class:`SamplerSettings` when ``None``).
    seed
        The random seed the app starts with (users can change it under *Options*).
    debug
        Print tracebacks of unexpected errors on stderr (they may name input values).
    """
    spec = spec or load_model()
    settings = settings or SamplerSettings()
    default_duration = spec.pk.default_infusion_duration_day
    examples = read_patients(example_path(), default_infusion_duration_day=default_duration)
    cache: OrderedDict[tuple[Patient, int], PatientForecast] = OrderedDict()

    def forecast_cached(patient: Patient, seed: int) -> PatientForecast:
        key = (patient, seed)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        result = forecaster_for(spec).forecast(
            patient, random_seed=patient_seed(seed, patient.id), settings=settings
        )
        cache[key] = result
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
        return result

    def server(input, output, session):
        uids = itertools.count(1)
        dose_uids: reactive.Value[list[int]] = reactive.value([], name="dose_uids")
        sample_uids: reactive.Value[list[int]] = reactive.value([], name="sample_uids")
        patient_set: reactive.Value[PatientSet] = reactive.value(examples, name="patient_set")
        upload_notes_value: reactive.Value[list[str]] = reactive.value([], name="notes")
        upload_error: reactive.Value[str] = reactive.value("", name="upload_error")

        def fill_form(patient: Patient) -> None:
            doses, samples = _rows_of(patient)
            ui.update_text("patient_id", value=patient.id)
            ui.update_numeric("weight_kg", value=_plain(patient.weight_kg))
            ui.update_numeric("crp_mg_l", value=_plain(patient.crp_mg_l))
            ui.remove_ui("#dose-rows > .dose-row", multiple=True)
            ui.remove_ui("#sample-rows > .sample-row", multiple=True)
            new_doses = [next(uids) for _ in doses]
            new_samples = [next(uids) for _ in samples]
            if doses:
                ui.insert_ui(
                    ui.TagList(*(_dose_row(u, **d) for u, d in zip(new_doses, doses, strict=True))),
                    "#dose-rows",
                )
            if samples:
                rows = (_sample_row(u, **s) for u, s in zip(new_samples, samples, strict=True))
                ui.insert_ui(ui.TagList(*rows), "#sample-rows")
            dose_uids.set(new_doses)
            sample_uids.set(new_samples)

        def show_set(new_set: PatientSet) -> None:
            patient_set.set(new_set)
            ui.update_select(
                "patient_pick",
                choices={p: p for p in new_set.ids},
                selected=new_set.ids[0],
            )
            fill_form(new_set.patients[0])

        @reactive.effect
        def _start():
            with reactive.isolate():
                fill_form(examples.patients[0])

        @reactive.effect
        @reactive.event(input.load_example)
        def _load_example():
            upload_error.set("")
            upload_notes_value.set([])
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
            payload = input.upload() or {}
            name = str(payload.get("name") or "upload")
            content = payload.get("content") or ""
            try:
                if not isinstance(content, str) or len(content) > 4 * MAX_UPLOAD_BYTES // 3 + 8:
                    raise InputError(
                        f"{name}: more than the {MAX_UPLOAD_BYTES:,} bytes accepted (fix: "
                        "upload only the patients you need)"
                    )
                try:
                    data = base64.b64decode(content, validate=True)
                except (binascii.Error, ValueError):
                    raise InputError(f"{name}: the upload was damaged; try again") from None
                new_set = parse_patients(data, name, default_infusion_duration_day=default_duration)
            except InputError as exc:
                upload_error.set(str(exc))
                upload_notes_value.set([])
                return
            upload_error.set("")
            upload_notes_value.set(list(new_set.notes))
            show_set(new_set)

        @reactive.effect
        @reactive.event(input.add_dose)
        def _add_dose():
            current = dose_uids()
            day, amount, unit, hours = 0, 10, "mg_per_kg", _plain(default_duration * 24, 4)
            if current:
                last = current[-1]
                day = (input[f"dose_day_{last}"]() or 0) + 14
                amount = input[f"dose_amount_{last}"]()
                unit = input[f"dose_unit_{last}"]()
                hours = input[f"dose_hours_{last}"]()
            uid = next(uids)
            ui.insert_ui(_dose_row(uid, day, amount, unit, hours), "#dose-rows")
            dose_uids.set([*current, uid])

        @reactive.effect
        @reactive.event(input.add_sample)
        def _add_sample():
            current = sample_uids()
            day = 7
            if current:
                day = (input[f"sample_day_{current[-1]}"]() or 0) + 7
            uid = next(uids)
            ui.insert_ui(_sample_row(uid, day, None, "mg_l"), "#sample-rows")
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

        @reactive.calc
        def checked() -> _Checked:
            doses, samples = dose_uids(), sample_uids()
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
                record["samples"].append(
                    {
                        "day": input[f"sample_day_{uid}"](),
                        input[f"sample_kind_{uid}"](): input[f"sample_value_{uid}"](),
                    }
                )
            try:
                result = patients_from_records(
                    [record], source="form", default_infusion_duration_day=default_duration
                )
            except InputError as exc:
                headline, messages, fields = _where_to_show(exc, doses, samples)
                return _Checked(None, headline, messages, fields)
            return _Checked(result.patients[0])

        @reactive.effect
        async def _show_field_errors():
            state = checked()
            await session.send_custom_message(
                "field_errors",
                {"messages": state.messages, "fields": list(state.fields)},
            )

        @reactive.calc
        def outcome() -> _Outcome:
            state = checked()
            if state.patient is None:
                return _Outcome(None, message=None)
            seed = input.seed()
            seed = int(seed) if isinstance(seed, int | float) and seed >= 0 else 0
            start = time.perf_counter()
            cached = (state.patient, seed) in cache
            try:
                result = forecast_cached(state.patient, seed)
            except Exception as exc:  # never a traceback in the browser or patient data in logs
                _unexpected("a forecast", exc, debug)
                return _Outcome(None, message="The forecast failed for these inputs.")
            return _Outcome(result, time.perf_counter() - start, cached=cached)

        def forecast_or_none() -> PatientForecast | None:
            return outcome().forecast

        @reactive.calc
        def summary() -> dict | None:
            """The forecast's summary, computed once for every output."""
            result = forecast_or_none()
            return None if result is None else result.summary()

        @reactive.effect
        async def _enable_downloads():
            enabled = outcome().forecast is not None
            await session.send_custom_message("downloads", {"enabled": enabled})

        @render.ui
        def upload_notes():
            notes = upload_notes_value()
            error = upload_error()
            parts = []
            if error:
                parts.append(ui.div(error, class_="field-error", id="upload-error-text"))
            if notes:
                parts.append(
                    ui.div(
                        "Ignored while reading: " + "; ".join(notes[:5]),
                        "…" if len(notes) > 5 else "",
                        class_="upload-note",
                    )
                )
            return ui.TagList(*parts)

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
            result = outcome()
            if result.forecast is None:
                return ui.div(result.message, class_="alert alert-danger", role="alert")
            if result.forecast.status != "ok":
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
            result = forecast_or_none()
            if result is None:
                return ui.div(
                    "No forecast: complete the inputs.", class_="text-muted", id="no-forecast"
                )
            s = summary()
            risk = s["posterior"]["risk_90d"]
            threshold = spec.tte.high_risk_threshold
            map_class = "high" if s["map"]["ln_auc_cl"] < threshold else "low"
            return ui.layout_columns(
                ui.value_box(
                    "Posterior mean 90-day colectomy risk",
                    ui.span(_fmt_pct(risk["mean"]), id="risk-mean"),
                    ui.span(
                        f"95 % CrI {_fmt_pct(risk['q2.5'])} – {_fmt_pct(risk['q97.5'])}",
                        class_="value-box-detail",
                        id="risk-interval",
                    ),
                ),
                ui.value_box(
                    "P(high risk)",
                    ui.span(f"{s['p_high_risk']:.2f}", id="p-high-risk"),
                    ui.span(f"P(ln(AUC/CL) < {threshold:g})", class_="value-box-detail"),
                ),
                ui.value_box(
                    "Risk class",
                    ui.span(
                        s["risk_class"].upper(), class_=f"risk-{s['risk_class']}", id="risk-class"
                    ),
                    ui.span(
                        f"posterior median ln(AUC/CL) {s['posterior']['ln_auc_cl']['q50']:.2f}",
                        class_="value-box-detail",
                    ),
                ),
                ui.value_box(
                    "MAP (published tool)",
                    ui.span(_fmt_pct(s["map"]["risk_90d"]), id="map-risk"),
                    ui.span(
                        f"class {map_class.upper()}; "
                        f"a priori {_fmt_pct(s['a_priori']['risk_90d'])}",
                        class_="value-box-detail",
                    ),
                ),
                col_widths=(3, 3, 3, 3),
                id="risk-boxes",
            )

        @render.plot(
            alt="Concentration-time course: a priori, a posteriori and the 90 % band", **PNG_OPTIONS
        )
        def concentration_plot():
            result = forecast_or_none()
            if result is None:
                return None
            log_scale = bool(input.log_scale())
            return _drawn(lambda: concentration_figure(result, log_scale=log_scale), debug)

        @render.plot(
            alt="Posterior density of ln(AUC/CL) with the high-risk threshold", **PNG_OPTIONS
        )
        def ln_ratio_plot():
            result = forecast_or_none()
            if result is None:
                return None
            return _drawn(lambda: ln_ratio_figure(result, summary=summary()), debug)

        @render.ui
        def summary_table():
            result = forecast_or_none()
            if result is None:
                return ui.TagList()
            header = ui.tags.tr(
                *(
                    ui.tags.th(h)
                    for h in ("quantity", "unit", "mean", "95 % CrI", "MAP", "a priori")
                )
            )
            body = [
                ui.tags.tr(
                    ui.tags.td(r["label"]),
                    ui.tags.td(r["unit"]),
                    ui.tags.td(r["mean"]),
                    ui.tags.td(r["interval"]),
                    ui.tags.td(r["map"]),
                    ui.tags.td(r["a_priori"]),
                )
                for r in summary_rows(summary())
            ]
            return ui.tags.table(header, *body, class_="table table-sm summary")

        @render.ui
        def diagnostics():
            state = outcome()
            result = state.forecast
            if result is None:
                return ui.TagList()
            d = result.diagnostics
            status = "converged" if result.status == "ok" else "NOT CONVERGED"
            return ui.div(
                ui.p(
                    ui.strong(f"Diagnostics: {status}. "),
                    method_text(d),
                    f". R-hat max {d['rhat_max']:.3f}, bulk ESS min {d['ess_bulk_min']:.0f}, "
                    f"{d['divergences']} divergences, {d['chains']} chains × {d['draws']} draws.",
                    class_="diagnostics mb-1",
                    id="diagnostics-text",
                ),
                ui.p(
                    "Forecast computed earlier (same inputs and seed)."
                    if state.cached
                    else f"Forecast computed in {state.seconds:.2f} s (seed {input.seed() or 0}).",
                    class_="compute-time",
                ),
            )

        @render.download_button(filename=lambda: _download_name(input.patient_id() or "", ".html"))
        def download_report():
            result = forecast_or_none()
            if result is None:
                raise _DownloadUnavailable()
            stamp = time.strftime("%Y-%m-%d %H:%M")
            yield patient_report_html(result, dosing=dosing_json(), generated_at=stamp)

        @render.download_button(filename=lambda: _download_name(input.patient_id() or "", ".json"))
        def download_json():
            result = forecast_or_none()
            if result is None:
                raise _DownloadUnavailable()
            yield json.dumps(results_json([result], spec), indent=2)

        @render.download_button(filename=lambda: _download_name(input.patient_id() or "", ".nc"))
        def download_netcdf():
            result = forecast_or_none()
            if result is None:
                raise _DownloadUnavailable()
            buffer = io.BytesIO()  # in memory: nothing is written to disk
            save_results([result], buffer)
            yield buffer.getvalue()

        # -- dosing (issue 4) -------------------------------------------------------------
        @reactive.calc
        def dosing_json() -> dict | None:
            result = forecast_or_none()
            if result is None:
                return None
            target = input.target_risk()
            probability = input.criterion_probability()
            day = input.dose_day()
            if target is None or probability is None or day is None:
                return {"error": "give the target risk, the probability and the day of the dose"}
            try:
                recommendation = recommend_dose(
                    result,
                    target_risk=float(target) / 100.0,
                    criterion=input.criterion(),
                    probability=float(probability),
                    dose_time_day=float(day),
                )
            except DosingError as exc:  # the message ends with the CLI option: drop it
                return {"error": re.sub(r" \(--[a-z-]+\)$", "", str(exc))}
            except Exception as exc:
                _unexpected("a dose recommendation", exc, debug)
                return {"error": "The dose recommendation failed for these inputs."}
            return recommendation.to_json()

        @render.ui
        def dosing_summary():
            rec = dosing_json()
            if rec is None:
                return ui.TagList()
            if "error" in rec:
                return ui.div(rec["error"], class_="field-error", id="dosing-error")
            chosen, on_map = rec["recommended"], rec["map_recommended"]
            risk = chosen["risk_90d"]
            interval = (
                f"90-day risk {_fmt_pct(risk['mean'])} (95 % CrI {_fmt_pct(risk['q2.5'])} – "
                f"{_fmt_pct(risk['q97.5'])}), P(high risk) {chosen['p_high_risk']:.2f}"
            )
            dose = f"{chosen['dose_mg']:g} mg ({chosen['dose_mg_kg']:.1f} mg/kg)"
            if chosen["dose_mg"] == 0:
                dose = "0 mg (no dose needed that day)"
            if rec["feasible"]:
                head = ui.span(
                    "Recommended: ",
                    ui.strong(dose, id="recommended-dose"),
                    f" on day {chosen['time_day']:g}: {interval}.",
                )
            else:
                head = ui.span(
                    ui.strong("No dose up to the cap reaches the target", id="recommended-dose"),
                    f"; at the cap, {dose}: {interval}.",
                )
            if on_map.get("feasible"):
                none = " (no dose needed that day)" if on_map["dose_mg"] == 0 else ""
                beside = f" MAP recommendation: {on_map['dose_mg']:g} mg{none}."
            else:
                beside = " MAP: no dose up to the cap reaches the target."
            return ui.p(head, beside, class_="mb-1")

        @render.plot(alt="90-day risk against the week-2 dose", **PNG_OPTIONS)
        def dose_risk_plot():
            rec = dosing_json()
            if rec is None or "error" in rec or not rec.get("curve"):
                return None
            return _drawn(lambda: dose_risk_figure(rec), debug)

    app = App(_app_ui(spec, examples, seed), server, debug=False)
    app.sanitize_errors = True  # a generic message, never an exception text, in the browser
    return app


class _DownloadUnavailable(Exception):
    """No forecast to download (the inputs have an error)."""


def run_app(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    spec: ModelSpec | None = None,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    quiet: bool = False,
    debug: bool = False,
) -> None:
    """Warm the model, then serve the app until interrupted (arguments as :func:`create_app`)."""
    import uvicorn

    spec = spec or load_model()
    if not quiet:
        _log(f"loading the model {spec.label} (the first run on a machine compiles it, ~1 min)")
    seconds = warm_up(spec, settings)
    if not quiet:
        _log(f"model ready in {seconds:.1f} s; serving on http://{host}:{port}")
    uvicorn.run(
        create_app(spec, settings=settings, seed=seed, debug=debug),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ws_max_size=4 * MAX_UPLOAD_BYTES,
    )
