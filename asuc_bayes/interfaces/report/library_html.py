"""The self-contained HTML report of a library-model forecast (``forecast --model NAME
--report``): the patient report's page (``templates/patient_report.html``) with the library
model's title, population and source, its individual parameters, the covariates used, the
notes, and a visible caveat when the 90-day risk borrows the ASUC outcome model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asuc_bayes.interfaces.report.patient_html import (
    render_forecast_page,
    report_paths,
)

if TYPE_CHECKING:
    from asuc_bayes.data.types import Patient
    from asuc_bayes.inference.result import LibraryForecast
    from asuc_bayes.spec import ModelDeclaration

__all__ = ["LibraryReportItem", "library_report_html", "write_library_reports"]

MAP_LABEL = "MAP (point estimate)"


@dataclass(frozen=True)
class _Outcome:
    """What the figures read of a forecast's outcome model (``forecast.spec.tte``)."""

    auc_window_day: tuple[float, float]
    high_risk_threshold: float


@dataclass(frozen=True)
class _FigureView:
    """A library forecast as the report's figures read one: ``tree`` and ``spec.tte``."""

    tree: Any
    spec: Any


@dataclass(frozen=True)
class _Spec:
    tte: _Outcome


def _parameter_rows(summary: dict, declaration) -> list[dict[str, str]]:
    units = {p.name: p.typical.unit for p in declaration.parameters}
    rows = []
    for name, post in summary["parameters"].items():
        rows.append(
            {
                "name": name,
                "unit": units.get(name, ""),
                "mean": f"{post['mean']:.3g}",
                "sd": f"{post['sd']:.3g}",
                "median": f"{post['q50']:.3g}",
                "interval": f"{post['q2.5']:.3g} – {post['q97.5']:.3g}",
            }
        )
    return rows


def _covariate_text(value: Any) -> str:
    """``value`` or ``(value, unit)`` as text; a dimensionless unit ("1") is not shown."""
    number, unit = value if isinstance(value, tuple) else (value, "")
    text = f"{number:g}" if isinstance(number, int | float) else str(number)
    return text if unit in ("", "1") else f"{text} {unit}"


def _covariate_rows(result, covariates: Mapping[str, Any]) -> list[dict[str, str]]:
    """The covariates entered (baseline) and those imputed, with the reason."""
    rows = [{"name": name, "text": _covariate_text(v)} for name, v in covariates.items()]
    rows += [
        {"name": f"{i.covariate} (imputed)", "text": f"{i.value:g} {i.unit}: {i.reason}"}
        for i in result.imputed
    ]
    return rows


@dataclass(frozen=True)
class LibraryReportItem:
    """One patient's report inputs: the forecast, the patient, the model file as given, the
    covariates entered, the file's sha256 and the per-patient sampler seed."""

    result: LibraryForecast
    patient: Patient
    declaration: ModelDeclaration
    covariates: Mapping[str, Any]
    model_sha256: str
    sampler_seed: int


def library_report_html(
    item: LibraryReportItem,
    *,
    options=None,
    random_seed: int | None = None,
    dosing: dict | None = None,
) -> str:
    """One self-contained HTML page about one patient's library-model forecast.

    Parameters
    ----------
    item
        The forecast (a :class:`~asuc_bayes.inference.result.LibraryForecast` made with an
        outcome model, its own or attached, and carrying its problem, as every forecast made
        here does) and its inputs.
    options, random_seed
        The sampler options and the seed the user gave (the per-patient seed derived from it
        is ``item.sampler_seed``).
    dosing
        Optional JSON of the patient's dose plan (``optimize --model NAME``: risk or trough
        mode), or ``{"error": text}``: the report's dose section, as the patient report's.

    Examples
    --------
    >>> from asuc_bayes.inference import forecast_library_patient
    >>> from asuc_bayes.inference.covariates import baseline_covariates
    >>> from asuc_bayes.spec import load_declaration
    >>> from asuc_bayes.studies.library_simulate import simulate_library_cohort
    >>> model = load_declaration("wojciechowski2017")
    >>> patient = simulate_library_cohort(model, 1, random_seed=4).patients[0]
    >>> covariates = baseline_covariates(patient, model)
    >>> result = forecast_library_patient(
    ...     model, patient, covariates, attach_outcome=True, random_seed=1
    ... )
    >>> page = library_report_html(LibraryReportItem(result, patient, model, covariates, "", 1))
    >>> "Extrapolated risk" in page and "Individual parameters" in page
    True
    """
    from asuc_bayes.inference.library_tree import library_forecast_tree

    result, patient, declaration = item.result, item.patient, item.declaration
    outcome = result.problem.declaration.outcome
    if outcome is None or result.high_risk_threshold is None:
        raise ValueError("the report needs an outcome model (attach the ASUC one)")
    tree = library_forecast_tree(
        result,
        patient,
        declaration,
        model_sha256=item.model_sha256,
        random_seed=item.sampler_seed,
        options=options,
    )
    summary = result.to_json()
    view = _FigureView(tree, _Spec(_Outcome(outcome.auc_window_day, outcome.high_risk_threshold)))
    notes = [*summary.get("notes", []), *summary.get("warnings", [])]
    return render_forecast_page(
        view,
        summary,
        patient,
        dosing=dosing,
        random_seed=random_seed,
        map_label=MAP_LABEL,
        map_source="A point (MAP) forecast",
        library={
            "title": declaration.title,
            "population": declaration.population,
            "source": declaration.source,
            "extrapolated": bool(result.extrapolated_outcome),
            "parameters": _parameter_rows(summary, declaration),
            "covariates": _covariate_rows(result, item.covariates),
            "notes": notes,
        },
    )


def write_library_reports(
    items: list[LibraryReportItem],
    path: str | Path,
    *,
    random_seed: int | None = None,
    options=None,
    dosing: dict[str, dict] | None = None,
) -> list[Path]:
    """Write one report per patient (where:
    :func:`~asuc_bayes.interfaces.report.patient_html.report_paths`; ``dosing``: patient ID →
    its dose plan's JSON); return the paths."""
    paths = report_paths(path, [item.result.id for item in items])
    for item, target in zip(items, paths, strict=True):
        html = library_report_html(
            item,
            options=options,
            random_seed=random_seed,
            dosing=(dosing or {}).get(item.result.id),
        )
        target.write_text(html, encoding="utf-8")
    return paths
