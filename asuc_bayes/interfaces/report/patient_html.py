"""The self-contained HTML patient report (template ``templates/patient_report.html``) and
where it is written."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from asuc_bayes._lazy import lazy_module
from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED
from asuc_bayes.interfaces.report.tables import interpretation, method_text, summary_rows

jinja2 = lazy_module("jinja2")  # the HTML report only: not on a forecast's table or JSON path


DOSE_ROWS_MG_KG_DIGITS = 1


def input_rows(patient) -> tuple[list[dict], list[dict]]:
    """The report's dose and sample table rows of ``patient`` (formatted text)."""
    doses = [
        {
            "day": f"{d.time_day:g}",
            "mg": f"{d.amount_mg:g}",
            "mg_kg": f"{d.amount_mg / patient.weight_kg:.{DOSE_ROWS_MG_KG_DIGITS}f}",
            "hours": f"{d.duration_day * 24:.3g}",
        }
        for d in patient.doses
    ]
    status = {
        MEASURED: "measured",
        BELOW_LLOQ: "below LLOQ (value = LLOQ)",
        ABOVE_ULOQ: "above ULOQ (value = ULOQ)",
    }
    samples = [
        {"day": f"{o.time_day:g}", "value": f"{o.value_mg_l:g}", "status": status[o.censoring]}
        for o in patient.observations
    ]
    return doses, samples


def patient_report_html(
    forecast,
    *,
    dosing: dict | None = None,
    generated_at: str | None = None,
    random_seed: int | None = None,
) -> str:
    """One self-contained HTML page about one patient's forecast.

    Inputs, the concentration and ln(AUC/CL) figures (embedded PNG), the risk summary with
    intervals and the MAP beside it, the dose recommendation (or the trough plan) when
    ``dosing`` is given, diagnostics with a visible warning when the posterior is
    unconverged, provenance, and a plain-language interpretation with the paper's caveats.
    The text is for clinicians: no command-line options. Every string from the input (the
    patient ID above all) is HTML-escaped.

    Parameters
    ----------
    forecast
        A :class:`asuc_bayes.inference.forecast.PatientForecast`.
    dosing
        Optional JSON of the same patient's dosing: ``DoseRecommendation.to_json()`` or
        ``DosingPlan.to_json()`` (risk or trough mode), or ``{"error": text}`` when no
        recommendation could be made (the report says why, without command-line options).
    generated_at
        Optional time stamp printed in the header (none by default, so that the same
        forecast gives the same bytes).
    random_seed
        The seed the user gave (shown under provenance); the per-patient sampler seed derived
        from it is shown only as a technical detail. ``None``: only the sampler's seed.
    """
    return render_forecast_page(
        forecast,
        forecast.summary(),
        forecast.patient,
        dosing=dosing,
        random_seed=random_seed,
        generated_at=generated_at,
    )


def render_forecast_page(
    forecast,
    summary: dict,
    patient,
    *,
    dosing: dict | None = None,
    random_seed: int | None = None,
    generated_at: str | None = None,
    map_label: str = "MAP (published tool)",
    map_source: str = "The published tool",
    library: dict | None = None,
) -> str:
    """The patient report page of a forecast as the figures read one (``forecast.tree``,
    ``forecast.spec.tte``), its JSON ``summary`` and ``patient``: figures, risk cards, tables,
    dose section, interpretation, diagnostics and provenance; ``map_label``/``map_source``
    name the MAP; ``library``: the library model's own section (None: the ASUC model's)."""
    from asuc_bayes.inference.forecast import ESS_BULK_MIN, RHAT_MAX
    from asuc_bayes.interfaces.plots import (
        concentration_figure,
        dose_risk_figure,
        dose_trough_figure,
        figure_png,
        ln_ratio_figure,
    )

    def encoded(figure) -> str:
        return base64.b64encode(figure_png(figure)).decode("ascii")

    images = {
        "concentration": encoded(concentration_figure(forecast, map_label=map_label)),
        "ln_ratio": encoded(ln_ratio_figure(forecast, summary=summary)),
        "dose_risk": encoded(dose_risk_figure(dosing)) if dosing and dosing.get("curve") else None,
        "dose_trough": encoded(dose_trough_figure(dosing["trough"]))
        if dosing and dosing.get("trough")
        else None,
    }
    doses, samples = input_rows(patient)
    threshold = forecast.spec.tte.high_risk_threshold
    return render_report(
        s=summary,
        d=summary["diagnostics"],
        p=dict(forecast.tree.attrs),
        patient=patient,
        rows=summary_rows(summary),
        doses=doses,
        samples=samples,
        images=images,
        dosing=clinical_dosing(dosing),
        seed=seed_text(forecast, random_seed),
        threshold=f"{threshold:g}",
        map_class="high" if summary["map"]["ln_auc_cl"] < threshold else "low",
        gates={"rhat": RHAT_MAX, "ess": ESS_BULK_MIN},
        method_text=method_text(summary["diagnostics"]),
        interpretation=interpretation(summary, threshold, map_source),
        library=library,
        map_label=map_label,
        generated_at=generated_at,
    )


def report_environment():
    """The Jinja environment of the report templates (``templates/``): HTML-escaped, a
    missing name an error, filters ``pct`` (a fraction as a percentage) and ``mgl`` (a
    concentration)."""
    from asuc_bayes.decisions.dosing import concentration_text

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("asuc_bayes.interfaces", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["pct"] = lambda value: f"{100 * value:.1f} %"
    environment.filters["mgl"] = concentration_text
    return environment


def render_report(**context) -> str:
    """The patient report template (``templates/patient_report.html``) rendered with
    ``context`` (escaped; a missing name is an error)."""
    return report_environment().get_template("patient_report.html").render(**context)


def clinical_dosing(dosing: dict | None) -> dict | None:
    """``dosing`` for clinicians: an error without command-line options, and the interval
    rows worth showing of a trough plan."""
    if dosing is None:
        return None
    if "error" in dosing:
        from asuc_bayes.decisions.dosing import clinical_text

        return {"error": clinical_text(str(dosing["error"]))}
    if dosing.get("trough"):
        trough = dosing["trough"]
        keep = {trough["for_interval"]["interval_day"], trough["for_dose"]["longest_interval_day"]}
        rows = [
            row
            for row in trough["for_dose"]["intervals"]
            if row["interval_day"] % 7 == 0 or row["interval_day"] in keep
        ]
        return {**dosing, "interval_rows": rows}
    return dosing


def seed_text(forecast, random_seed: int | None) -> dict[str, str]:
    """The seed the user gave, and the sampler's per-patient seed as a technical detail."""
    sampler = str(forecast.tree.attrs.get("random_seed", "unknown"))
    if random_seed is None:
        return {"given": None, "sampler": sampler}
    return {"given": str(random_seed), "sampler": sampler}


def report_paths(path: str | Path, patient_ids) -> list[Path]:
    """Where :func:`write_patient_reports` writes: ``path`` itself for one patient; for several,
    ``<stem>-<ID><suffix>`` beside it (characters other than letters, digits, ``.``, ``_`` and
    ``-`` in the ID become ``_``; clashes get ``-2``, ``-3``...)."""
    path = Path(path)
    ids = list(patient_ids)
    if len(ids) == 1:
        return [path]
    suffix = path.suffix or ".html"
    paths, taken = [], set()
    for patient_id in ids:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", patient_id).strip(".") or "patient"
        candidate, n = f"{path.stem}-{safe}", 2
        while candidate.lower() in taken:
            candidate, n = f"{path.stem}-{safe}-{n}", n + 1
        taken.add(candidate.lower())
        paths.append(path.with_name(candidate + suffix))
    return paths


def write_patient_reports(
    results, path: str | Path, *, dosing: dict | None = None, random_seed: int | None = None
) -> list[Path]:
    """Write one HTML report per patient (see :func:`report_paths`); return the paths.

    ``dosing`` maps patient IDs to dose recommendations or plans (JSON form, or ``{"error":
    text}``); ``random_seed`` is the seed the user gave (shown under provenance).
    """
    paths = report_paths(path, [r.patient.id for r in results])
    for result, target in zip(results, paths, strict=True):
        html = patient_report_html(
            result, dosing=(dosing or {}).get(result.patient.id), random_seed=random_seed
        )
        target.write_text(html, encoding="utf-8")
    return paths
