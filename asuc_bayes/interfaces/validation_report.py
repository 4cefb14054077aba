"""The self-contained HTML validation report: tables and figures, for researchers.

:func:`validation_report_html` renders a
:class:`~asuc_bayes.studies.validation.study.ValidationResult`
with the template ``templates/validation_report.html``: the predictive performance of each
model a priori and by Bayesian forecasting (full posterior and MAP), beside the model-averaged
predictor; NPDE and their tests; the colectomy outcome; the model weights; and per model the
VPC and pcVPC (censored fractions apart), the NPDE histogram and QQ plot, observed against
predicted concentrations, then the calibration of the 90-day risk and the per-patient model
weights. Figures are inline PNG (base64): the file needs nothing else. A missing value is
shown as "–". :func:`write_validation_report` writes it to ``validation.html``.

Examples
--------
>>> cell(None), cell(0.1234, "pct"), cell(float("nan"), "3f"), cell(-0.01234, "pct")
('–', '12.3 %', '–', '−1.2 %')
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from asuc_bayes._version import __version__
from asuc_bayes.interfaces.plots import figure_png
from asuc_bayes.interfaces.validation_figures import (
    calibration_figure,
    npde_figure,
    observed_predicted_figure,
    vpc_figure,
    weights_figure,
)
from asuc_bayes.studies.validation.npde import NPDE_SIMULATIONS
from asuc_bayes.studies.validation.study import AVERAGE_NAME, VPC_REPLICATES, ValidationResult
from asuc_bayes.studies.validation.vpc import model_records, vpc_table

__all__ = ["cell", "validation_report_html", "write_validation_report"]

MISSING = "–"
#: Pareto k̂ above which an importance-sampling estimate is flagged (Vehtari et al. 2024).
PARETO_K_RELIABLE = 0.7
FORMATS = {
    "pct": lambda x: f"{100 * x:.1f} %",
    "3f": lambda x: f"{x:.3f}",
    "2f": lambda x: f"{x:.2f}",
    "p": lambda x: f"{x:.3f}" if x >= 0.001 else "< 0.001",
    "g": lambda x: f"{x:.3g}",
    "int": lambda x: f"{int(x)}",
}


def cell(value: Any, fmt: str = "g") -> str:
    """A table cell: ``value`` formatted (``fmt`` a key of :data:`FORMATS`), "–" when missing
    or not finite; a minus sign, not a hyphen."""
    if value is None or isinstance(value, bool):
        return MISSING if value is None else ("yes" if value else "no")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return MISSING
    return FORMATS[fmt](number).replace("-", "−")


def _image(figure) -> str:
    return "data:image/png;base64," + base64.b64encode(figure_png(figure, dpi=96)).decode("ascii")


FORECAST_COLUMNS = (
    ("mpe", "pct"),
    ("rmse", "pct"),
    ("rmse_log", "3f"),
    ("within_20", "pct"),
    ("within_30", "pct"),
    ("coverage_80", "pct"),
    ("coverage_90", "pct"),
)


def _forecast_row(label: str, mode: str, entry: Mapping[str, Any] | None, prefix: str = ""):
    entry = entry or {}
    n, censored = entry.get(prefix + "n"), entry.get(prefix + "n_censored")
    return {
        "model": label,
        "mode": mode,
        "n": MISSING if n is None else f"{n} ({censored} censored)" if censored else f"{n}",
        "cells": [cell(entry.get(prefix + key), fmt) for key, fmt in FORECAST_COLUMNS],
    }


def _forecast_rows(document: Mapping[str, Any]) -> list[dict]:
    rows = []
    for model in document["models"]:
        rows.append(_forecast_row(model["name"], "a priori", model["a_priori"]))
        rows.append(_forecast_row(model["name"], "Bayesian, full posterior", model["bayesian"]))
        rows.append(_forecast_row(model["name"], "Bayesian, MAP", model["bayesian"], "map_"))
    average = document.get("average") or {}
    rows.append(_forecast_row(AVERAGE_NAME, "a priori", average.get("a_priori")))
    rows.append(_forecast_row(AVERAGE_NAME, "Bayesian, full posterior", average.get("bayesian")))
    rows.append(_forecast_row(AVERAGE_NAME, "Bayesian, MAP", average.get("bayesian"), "map_"))
    return rows


def _entries(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The models' entries, then the model average's (named :data:`AVERAGE_NAME`)."""
    average = document.get("average")
    if not average:
        return list(document["models"])
    return [*document["models"], {**average, "name": AVERAGE_NAME}]


def _npde_rows(document: Mapping[str, Any]) -> list[dict]:
    rows = []
    for model in _entries(document):
        npde = model.get("npde") or {}
        cells = [
            cell(npde.get("n"), "int"),
            cell(npde.get("mean"), "3f"),
            cell(npde.get("variance"), "3f"),
            cell(npde.get("mean_p"), "p"),
            cell(npde.get("variance_p"), "p"),
            cell(npde.get("normality_p"), "p"),
            cell(npde.get("p_value"), "p"),
        ]
        rows.append({"model": model["name"], "cells": cells})
    return rows


def _outcome_rows(document: Mapping[str, Any]) -> list[dict]:
    rows = []
    for model in _entries(document):
        outcome = model.get("outcome")
        if outcome is None:
            continue
        auroc = cell(outcome.get("auroc"), "2f")
        if outcome.get("auroc_low") is not None and outcome.get("auroc_high") is not None:
            low, high = cell(outcome["auroc_low"], "2f"), cell(outcome["auroc_high"], "2f")
            auroc = f"{auroc} ({low}–{high})"
        cells = [
            f"{outcome.get('n_cases')} / {outcome.get('n_controls')}",
            auroc,
            cell(outcome.get("sensitivity"), "pct"),
            cell(outcome.get("specificity"), "pct"),
            cell(outcome.get("brier"), "3f"),
            cell(outcome.get("calibration_intercept"), "2f"),
            cell(outcome.get("calibration_slope"), "2f"),
        ]
        name = model["name"] + (" (extrapolated)" if outcome.get("extrapolated") else "")
        rows.append({"model": name, "cells": cells})
    return rows


def _weight_rows(document: Mapping[str, Any]) -> list[dict]:
    average = document.get("average") or {}
    rows = []
    for model in document["models"]:
        name = model["name"]
        evidence = (
            "quadrature"
            if model.get("min_importance_ess") is None
            else (
                f"importance sampling (smallest ESS {cell(model['min_importance_ess'], 'int')}, "
                f"largest Pareto k {cell(model.get('max_pareto_k'), '2f')}, "
                f"largest MCSE {cell(model.get('max_log_marginal_mcse'), '3f')})"
            )
        )
        pareto_k = model.get("max_pareto_k")
        if pareto_k is not None and pareto_k > PARETO_K_RELIABLE:
            evidence += (
                f"; a Pareto k above {PARETO_K_RELIABLE} means that patient's estimate may be "
                "unreliable"
            )
        cells = [
            cell(model.get("mean_weight"), "3f"),
            cell((average.get("likelihood") or {}).get(name), "3f"),
            cell((average.get("aic") or {}).get(name), "3f"),
            cell((average.get("stacking") or {}).get(name), "3f"),
            cell(model.get("log_marginal_total"), "2f"),
        ]
        rows.append({"model": name, "cells": cells, "evidence": evidence})
    return rows


def _findings(document: Mapping[str, Any]) -> list[str]:
    """Plain sentences: the model with the highest mean weight, the smallest Bayesian RMSE, the
    Bayesian 90 % coverage closest to 90 %, and NPDE rejected at the 5 % level (the models' and
    the model average's)."""
    models = document["models"]
    out = []
    if len(models) > 1:
        best = max(models, key=lambda m: m.get("mean_weight") or 0.0)
        out.append(
            f"Highest mean posterior model probability: {best['name']} "
            f"({cell(best.get('mean_weight'), '2f')})."
        )
    scored = [m for m in models if m["bayesian"].get("rmse") is not None]
    if len(scored) > 1:
        best = min(scored, key=lambda m: m["bayesian"]["rmse"])
        out.append(
            f"Smallest imprecision of Bayesian forecasts (RMSE): {best['name']} "
            f"({cell(best['bayesian']['rmse'], 'pct')})."
        )
    covered = [m for m in models if m["bayesian"].get("coverage_90") is not None]
    if len(covered) > 1:
        best = min(covered, key=lambda m: abs(m["bayesian"]["coverage_90"] - 0.9))
        out.append(
            f"Bayesian 90 % coverage closest to 90 %: {best['name']} "
            f"({cell(best['bayesian']['coverage_90'], 'pct')})."
        )
    rejected = [
        m["name"] for m in _entries(document) if (m.get("npde") or {}).get("p_value", 1.0) < 0.05
    ]
    if rejected:
        out.append(
            "NPDE depart from N(0, 1) at the 5 % level (global test): " + ", ".join(rejected) + "."
        )
    return out


def _model_figures(result: ValidationResult, m: int) -> dict[str, str]:
    records = model_records(result, m)
    name = records.name
    return {
        "name": name,
        "vpc": _image(vpc_figure(vpc_table(records, corrected=False), name)),
        "pcvpc": _image(vpc_figure(vpc_table(records, corrected=True), name)),
        "npde": _image(npde_figure(np.concatenate(_npde_of(result, m)), name)),
        "observed_predicted": _image(observed_predicted_figure(records)),
    }


def _npde_of(result: ValidationResult, m: int) -> list[np.ndarray]:
    return [p.fits[m].npde for p in result.patients if p.error is None and p.fits] or [np.zeros(0)]


def _calibration_image(result: ValidationResult) -> str | None:
    series = []
    done = [p for p in result.patients if p.error is None and p.fits]
    for m, summary in enumerate(result.models):
        rows = [p.fits[m].outcome for p in done]
        rows = [r for r in rows if r is not None and r.label is not None]
        if summary.outcome is None or not rows:
            continue
        risk = np.array([r.risk for r in rows])
        label = np.array([r.label for r in rows])
        series.append((summary.name, risk, label))
    averaged = [r for r in result.average_patient_outcomes if r is not None and r.label is not None]
    if series and len(result.models) > 1 and result.average_outcome is not None and averaged:
        risk = np.array([r.risk for r in averaged])
        series.append((AVERAGE_NAME, risk, np.array([r.label for r in averaged])))
    return _image(calibration_figure(series)) if series else None


def validation_report_html(
    result: ValidationResult, *, random_seed: int | None = None, generated_at: str | None = None
) -> str:
    """The report as one HTML string (see the module docstring)."""
    document = result.to_json()
    done = [p for p in result.patients if p.error is None and p.fits]
    n_censored = sum(int(np.sum(p.fits[0].forecasts.censoring != 0)) for p in done)
    names = [m.name for m in result.models]
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("asuc_bayes.interfaces", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    template = environment.get_template("validation_report.html")
    return template.render(
        version=__version__,
        generated_at=generated_at
        or dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", " UTC"),
        random_seed=random_seed,
        n_subjects=result.n_subjects,
        n_concentrations=result.n_concentrations,
        n_censored=n_censored,
        names=names,
        skipped=document["skipped"],
        findings=_findings(document),
        forecast_rows=_forecast_rows(document),
        npde_rows=_npde_rows(document),
        average_name=AVERAGE_NAME,
        outcome_rows=_outcome_rows(document),
        any_extrapolated=any(m.outcome_extrapolated for m in result.models if m.outcome),
        weight_rows=_weight_rows(document),
        model_figures=[_model_figures(result, m) for m in range(len(names))],
        calibration=_calibration_image(result),
        weights=_image(weights_figure(result.weights, names)),
        threshold=_threshold(result),
        npde_simulations=NPDE_SIMULATIONS,
        vpc_replicates=min(VPC_REPLICATES, NPDE_SIMULATIONS),
    )


def _threshold(result: ValidationResult) -> str | None:
    """The high-risk threshold of ln(AUC_w2-4/CL) of the outcome model (None: no outcome)."""
    for p in result.patients:
        for fit in p.fits:
            if fit.outcome is not None:
                return f"{fit.outcome.threshold:g}"
    return None


def write_validation_report(
    result: ValidationResult, folder: str | Path, *, random_seed: int | None = None
) -> Path:
    """Write ``validation.html`` into ``folder`` (created if needed); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "validation.html"
    path.write_text(validation_report_html(result, random_seed=random_seed), encoding="utf-8")
    return path
