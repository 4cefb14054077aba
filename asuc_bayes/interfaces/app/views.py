"""The page's result elements, built from the typed results of the workers (no model logic).

Pure functions of a result: the risk panel, the posterior-vs-MAP table, the diagnostics line,
the figures (a PNG as an ``<img>``) and the dose recommendation in words. A dosing result
without a dose to give is said in words, never as "0 mg".
"""

from __future__ import annotations

import base64
import re
from typing import Any

from shiny import ui

from asuc_bayes.interfaces.app.form import fmt_pct
from asuc_bayes.interfaces.app.work import DosingView, ForecastView
from asuc_bayes.interfaces.report import method_text, summary_rows

__all__ = [
    "diagnostics_block",
    "dose_sentences",
    "dosing_block",
    "figure_img",
    "risk_boxes",
    "summary_table",
]


def figure_img(image: bytes | None, alt: str, media_type: str = "image/png") -> ui.Tag:
    """A PNG (or, with ``media_type="image/svg+xml"``, SVG) figure as an inline image; a
    message when the figure could not be drawn.

    >>> str(figure_img(None, "x"))
    '<div class="text-muted">The figure could not be drawn.</div>'
    >>> str(figure_img(b"<svg/>", "x", "image/svg+xml"))
    '<img src="data:image/svg+xml;base64,PHN2Zy8+" alt="x"/>'
    """
    if image is None:
        return ui.div("The figure could not be drawn.", class_="text-muted")
    source = f"data:{media_type};base64," + base64.b64encode(image).decode("ascii")
    return ui.img(src=source, alt=alt)


def risk_boxes(summary: dict[str, Any], high_risk_threshold: float) -> ui.Tag:
    """The four value boxes: posterior mean risk, P(high risk), risk class, the MAP."""
    risk = summary["posterior"]["risk_90d"]
    map_class = "high" if summary["map"]["ln_auc_cl"] < high_risk_threshold else "low"
    return ui.layout_columns(
        ui.value_box(
            "Posterior mean 90-day colectomy risk",
            ui.span(fmt_pct(risk["mean"]), id="risk-mean"),
            ui.span(
                f"95 % CrI {fmt_pct(risk['q2.5'])} – {fmt_pct(risk['q97.5'])}",
                class_="value-box-detail",
                id="risk-interval",
            ),
        ),
        ui.value_box(
            "P(high risk)",
            ui.span(f"{summary['p_high_risk']:.2f}", id="p-high-risk"),
            ui.span(f"P(ln(AUC/CL) < {high_risk_threshold:g})", class_="value-box-detail"),
        ),
        ui.value_box(
            "Risk class",
            ui.span(
                summary["risk_class"].upper(),
                class_=f"risk-{summary['risk_class']}",
                id="risk-class",
            ),
            ui.span(
                f"posterior median ln(AUC/CL) {summary['posterior']['ln_auc_cl']['q50']:.2f}",
                class_="value-box-detail",
            ),
        ),
        ui.value_box(
            "MAP (published tool)",
            ui.span(fmt_pct(summary["map"]["risk_90d"]), id="map-risk"),
            ui.span(
                f"class {map_class.upper()}; a priori {fmt_pct(summary['a_priori']['risk_90d'])}",
                class_="value-box-detail",
            ),
        ),
        col_widths=(3, 3, 3, 3),
        id="risk-boxes",
    )


def summary_table(summary: dict[str, Any]) -> ui.Tag:
    """The posterior beside the MAP and the a-priori values (CL, V, AUC, ln(AUC/CL), risk)."""
    heads = ("quantity", "unit", "mean", "95 % CrI", "MAP", "a priori")
    header = ui.tags.tr(*(ui.tags.th(h) for h in heads))
    keys = ("label", "unit", "mean", "interval", "map", "a_priori")
    body = [ui.tags.tr(*(ui.tags.td(r[k]) for k in keys)) for r in summary_rows(summary)]
    return ui.tags.table(header, *body, class_="table table-sm summary")


def diagnostics_block(view: ForecastView) -> ui.Tag:
    """The convergence line and how long the forecast took."""
    d = view.diagnostics
    status = "converged" if view.status == "ok" else "NOT CONVERGED"
    timing = (
        "Forecast computed earlier (same inputs and seed)."
        if view.cached
        else f"Forecast and figure computed in {view.seconds:.2f} s (seed {view.job.seed})."
    )
    return ui.div(
        ui.p(
            ui.strong(f"Diagnostics: {status}. "),
            method_text(d),
            f". R-hat max {d['rhat_max']:.3f}, bulk ESS min {d['ess_bulk_min']:.0f}, "
            f"{d['divergences']} divergences, {d['chains']} chains × {d['draws']} draws.",
            class_="diagnostics mb-1",
            id="diagnostics-text",
        ),
        ui.p(timing, class_="compute-time"),
    )


_ZERO_MG = re.compile(r"(?<![\d.])0(?:\.0+)? ?mg\b")


def _given(dose: dict[str, Any] | None) -> bool:
    """A dose to give: a positive amount in mg."""
    amount = (dose or {}).get("dose_mg")
    return isinstance(amount, int | float) and amount > 0


def _why_no_dose(rec: dict[str, Any]) -> str:
    """The reason the result has no dose, in words (from its notes when they give one)."""
    notes = [n for n in rec.get("notes") or [] if isinstance(n, str) and not _ZERO_MG.search(n)]
    for key in ("reason", "no_dose_reason"):
        if isinstance(rec.get(key), str) and not _ZERO_MG.search(rec[key]):
            notes.insert(0, rec[key])
    if rec.get("feasible"):
        notes.insert(0, "the target is met without an infusion that day")
    return "; ".join(notes) or "no dose on the grid meets the request"


def dose_sentences(rec: dict[str, Any]) -> tuple[str, str, str, str]:
    """The recommendation in words: (lead, the dose or the decision, the rest, the MAP's).

    A result without a positive dose (none, or 0 mg) is said in words with the reason:

    >>> risk = {"mean": 0.1, "q2.5": 0.05, "q97.5": 0.2}
    >>> rec = {"feasible": True, "recommended": {"dose_mg": 0.0, "dose_mg_kg": 0.0,
    ...     "time_day": 14, "risk_90d": risk, "p_high_risk": 0.1},
    ...     "map_recommended": {"dose_mg": 0.0, "feasible": True}}
    >>> lead, decision, rest, beside = dose_sentences(rec)
    >>> decision, beside
    ('No infusion needed on day 14', ' MAP: no infusion needed that day.')
    >>> rest[:50]
    ': the target is met without an infusion that day; '
    """
    chosen = rec.get("recommended") or {}
    day = chosen.get("time_day")
    on_day = f" on day {day:g}" if isinstance(day, int | float) else ""
    risk = chosen.get("risk_90d")
    interval = ""
    if isinstance(risk, dict):
        interval = (
            f"90-day risk {fmt_pct(risk['mean'])} (95 % CrI {fmt_pct(risk['q2.5'])} – "
            f"{fmt_pct(risk['q97.5'])}), P(high risk) {chosen['p_high_risk']:.2f}"
        )
    if not _given(chosen):
        lead, decision = "", f"No infusion needed{on_day}" if rec.get("feasible") else "No dose"
        rest = f": {_why_no_dose(rec)}" + (f"; {interval}." if interval else ".")
    else:
        dose = f"{chosen['dose_mg']:g} mg ({chosen['dose_mg_kg']:.1f} mg/kg)"
        if rec.get("feasible"):
            lead, decision, rest = "Recommended: ", dose, f"{on_day}: {interval}."
        else:
            lead, decision = "", "No dose up to the cap reaches the target"
            rest = f"; at the cap, {dose}: {interval}."
    on_map = rec.get("map_recommended") or {}
    if not on_map.get("feasible"):
        beside = " MAP: no dose up to the cap reaches the target."
    elif _given(on_map):
        beside = f" MAP recommendation: {on_map['dose_mg']:g} mg."
    else:
        beside = " MAP: no infusion needed that day."
    return lead, decision, rest, beside


def dosing_block(view: DosingView) -> ui.Tag:
    """The recommendation in words, or the request's error."""
    if view.recommendation is None:
        return ui.div(view.error or "No recommendation.", class_="field-error", id="dosing-error")
    lead, decision, rest, beside = dose_sentences(view.recommendation)
    return ui.p(ui.span(lead, ui.strong(decision, id="recommended-dose"), rest), beside)
