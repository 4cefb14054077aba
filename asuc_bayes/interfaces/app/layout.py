"""The app's page: the input sidebar, the result tabs, and the page's CSS and JavaScript.

Only layout: every output is filled by :mod:`asuc_bayes.interfaces.app.server`. The three figures
are
``output_ui`` slots that receive a PNG drawn by a worker process (one ``<img>`` each).
"""

from __future__ import annotations

from shiny import ui

from asuc_bayes.data.dataset import MAX_UPLOAD_BYTES, PatientSet
from asuc_bayes.spec.config import ModelSpec

__all__ = ["DOSE_UNITS", "RESULT_TABS", "SAMPLE_KINDS", "app_ui", "dose_row", "sample_row"]

DOSE_UNITS = {"mg": "mg", "mg_per_kg": "mg/kg"}
SAMPLE_KINDS = {"mg_l": "measured", "below_lloq": "< LLOQ", "above_uloq": "> ULOQ"}
#: The result tabs: (title, the figure output it shows).
RESULT_TABS = {
    "Concentration–time course": "concentration_plot",
    "Exposure marker ln(AUC/CL)": "ln_ratio_plot",
    "Week-2 dose to a target risk": "dose_risk_plot",
}

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
.figure-slot img { max-width: 100%; height: auto; display: block; }
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


def dose_row(uid: int, day: float | None, amount: float | None, unit: str, hours: float | None):
    """One infusion's row: day, amount, unit, duration (h); ids end with ``_<uid>``."""
    return _entry_row(
        "dose",
        uid,
        ui.input_numeric(f"dose_day_{uid}", None, day, min=0, step=1),
        ui.input_numeric(f"dose_amount_{uid}", None, amount, min=0, step=10),
        ui.input_select(f"dose_unit_{uid}", None, DOSE_UNITS, selected=unit),
        ui.input_numeric(f"dose_hours_{uid}", None, hours, min=0, step=0.5),
    )


def sample_row(uid: int, day: float | None, value: float | None, kind: str):
    """One serum sample's row: day, value (mg/L), status; ids end with ``_<uid>``."""
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
        ui.output_ui("dose_risk_plot", class_="figure-slot"),
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
        # one figure at a time: a worker draws only the visible tab's figure, once per
        # result (each costs ~0.1-0.2 s of matplotlib)
        ui.navset_card_underline(
            ui.nav_panel(
                "Concentration–time course",
                ui.output_ui("concentration_plot", class_="figure-slot"),
            ),
            ui.nav_panel(
                "Exposure marker ln(AUC/CL)",
                ui.output_ui("ln_ratio_plot", class_="figure-slot"),
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


def app_ui(spec: ModelSpec, examples: PatientSet, seed: int) -> ui.Tag:
    """The whole page: the patient sidebar, the result tabs, the tables and the downloads."""
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
