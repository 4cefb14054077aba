"""Machine-readable output of the command line: finite JSON, and CSV tables.

JSON. Every JSON document the CLI writes goes through :func:`dumps_json`: strict JSON
(``allow_nan=False``), where a number that is undefined or unbounded — R-hat of constant
draws, a missing Laplace approximation, no upper limit of quantification — is ``null``,
never ``NaN`` or ``Infinity`` (which most JSON parsers reject).

CSV (``--format csv`` of ``forecast`` and ``optimize``): one row per patient. The rows are
the JSON output contract flattened (the same numbers: a CSV file read back equals the JSON
document, tested), so that a cohort's results open in a spreadsheet or ``pandas.read_csv``
without parsing nested JSON. Column names:

- ``id``, ``status`` (``ok`` | ``unconverged`` | ``error``), ``error`` (the message of an
  error row, else empty), ``risk_class``, ``p_high_risk``;
- ``<quantity>_<statistic>`` for every posterior quantity (``cl`` L/day, ``v`` L,
  ``auc_w2_4`` mg·day/L, ``ln_auc_cl``, ``risk_90d`` fraction) and statistic (``mean``,
  ``sd``, ``q2.5``, ``q50``, ``q97.5``);
- ``map_<quantity>`` and ``a_priori_<quantity>``;
- ``diag_<name>`` for the diagnostics (``rhat_max``, ``ess_bulk_min``, ``divergences``,
  ``chains``, ``draws``, ``tune``, ``method``, ``modes``, ``target_accept``, ``sampler``,
  ``attempts``, ``imh_acceptance``);
- ``optimize`` adds :data:`DOSING_COLUMNS`: the request (``target_risk``, ``criterion``,
  ``probability``), ``feasible``, the recommended dose (``dose_mg``, ``dose_mg_kg``,
  ``vials``, ``dose_time_day``) and its posterior mean 90-day risk ``dose_risk_90d``,
  ``dose_p_high_risk`` and ``dose_p_meets_target``, and the MAP's dose (``map_dose_mg``,
  ``map_dose_mg_kg``, ``map_dose_feasible``, ``map_dose_risk_90d``); then ``mode``
  (``risk`` | ``trough``) and the maintenance trough answer of trough mode
  (``--trough-target``; :data:`TROUGH_FIELDS`): ``trough_target_mg_l``,
  ``trough_probability``, ``trough_status``, for the planned interval ``trough_interval_day``,
  ``trough_feasible``, ``trough_dose_mg``, ``trough_dose_mg_kg``, ``trough_q2.5``,
  ``trough_q50``, ``trough_q97.5`` (mg/L), ``trough_p_above_target``, and for the planned dose
  ``trough_for_dose_mg`` with its ``trough_longest_interval_day``;
- under a library model (``--model NAME``) the rows of ``forecast --model NAME``
  (:func:`library_forecast_columns`), then the same dosing columns
  (:func:`library_dosing_columns`).

An empty cell is a value that does not apply or is undefined (an error row's numbers, a
missing MAP, R-hat of constant draws: ``null`` in the JSON).

Examples
--------
>>> import io
>>> entry = {"id": "P1", "status": "error", "error": "row 3: bad AMT"}
>>> stream = io.StringIO()
>>> write_csv([forecast_row(entry)], FORECAST_COLUMNS, stream)
>>> stream.getvalue().splitlines()[1][:30]
'P1,error,row 3: bad AMT,,,,,,,'
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from asuc_bayes.strict_json import dumps_json, finite_json

__all__ = [
    "DOSING_COLUMNS",
    "FORECAST_COLUMNS",
    "dosing_row",
    "dumps_json",
    "finite_json",
    "forecast_row",
    "library_dosing_columns",
    "library_dosing_row",
    "library_forecast_columns",
    "library_forecast_row",
    "model_average_columns",
    "model_average_row",
    "write_csv",
]

QUANTITIES = ("cl", "v", "auc_w2_4", "ln_auc_cl", "risk_90d")
STATISTICS = ("mean", "sd", "q2.5", "q50", "q97.5")
#: Statistics whose Monte Carlo standard error each posterior S carries (``S.mcse``).
MCSE_STATISTICS = ("mean", "q2.5", "q50", "q97.5")
#: Keys of ``diagnostics.precision`` (the adaptive run length's target and result).
PRECISION = ("target", "met", "worst", "draws", "max_draws", "adaptive")
DIAGNOSTICS = (
    "rhat_max",
    "ess_bulk_min",
    "divergences",
    "chains",
    "draws",
    "tune",
    "method",
    "modes",
    "target_accept",
    "sampler",
    "attempts",
    "imh_acceptance",
)

FORECAST_COLUMNS: tuple[str, ...] = (
    "id",
    "status",
    "error",
    "risk_class",
    "p_high_risk",
    *(f"{q}_{s}" for q in QUANTITIES for s in STATISTICS),
    *(f"{q}_mcse_{s}" for q in QUANTITIES for s in MCSE_STATISTICS),
    *(f"map_{q}" for q in QUANTITIES),
    *(f"a_priori_{q}" for q in QUANTITIES),
    *(f"diag_{d}" for d in DIAGNOSTICS),
    *(f"diag_precision_{p}" for p in PRECISION),
)

#: Columns ``optimize`` adds after :data:`FORECAST_COLUMNS`, with the JSON key each comes from
#: (``recommended``/``map_recommended`` are the nested objects of the ``optimize`` contract).
DOSING_FIELDS: dict[str, tuple[str, ...]] = {
    "target_risk": ("target_risk",),
    "criterion": ("criterion",),
    "probability": ("probability",),
    "feasible": ("feasible",),
    "dose_mg": ("recommended", "dose_mg"),
    "dose_mg_kg": ("recommended", "dose_mg_kg"),
    "vials": ("recommended", "vials"),
    "dose_time_day": ("recommended", "time_day"),
    "dose_risk_90d": ("recommended", "risk_90d"),
    "dose_p_high_risk": ("recommended", "p_high_risk"),
    "dose_p_meets_target": ("recommended", "p_meets_target"),
    "map_dose_mg": ("map_recommended", "dose_mg"),
    "map_dose_mg_kg": ("map_recommended", "dose_mg_kg"),
    "map_dose_feasible": ("map_recommended", "feasible"),
    "map_dose_risk_90d": ("map_recommended", "risk_90d"),
}
#: Trough mode's columns (``optimize --trough-target``), with the JSON key of each.
TROUGH_FIELDS: dict[str, tuple[str, ...]] = {
    "mode": ("mode",),
    "trough_target_mg_l": ("trough", "target_mg_l"),
    "trough_probability": ("trough", "probability"),
    "trough_status": ("trough", "status"),
    "trough_interval_day": ("trough", "for_interval", "interval_day"),
    "trough_feasible": ("trough", "for_interval", "feasible"),
    "trough_dose_mg": ("trough", "for_interval", "dose_mg"),
    "trough_dose_mg_kg": ("trough", "for_interval", "dose_mg_kg"),
    "trough_q2.5": ("trough", "for_interval", "trough_mg_l", "q2.5"),
    "trough_q50": ("trough", "for_interval", "trough_mg_l", "q50"),
    "trough_q97.5": ("trough", "for_interval", "trough_mg_l", "q97.5"),
    "trough_p_above_target": ("trough", "for_interval", "p_trough_above_target"),
    "trough_for_dose_mg": ("trough", "for_dose", "dose_mg"),
    "trough_longest_interval_day": ("trough", "for_dose", "longest_interval_day"),
}
#: A library model's dose plan gives the recommended dose's risk as a posterior summary.
LIBRARY_DOSING_FIELDS = {**DOSING_FIELDS, "dose_risk_90d": ("recommended", "risk_90d", "mean")}
DOSING_COLUMNS: tuple[str, ...] = (*FORECAST_COLUMNS, *DOSING_FIELDS, *TROUGH_FIELDS)


def _get(entry: Mapping[str, Any], *path: str) -> Any:
    value: Any = entry
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def forecast_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The CSV row of one patient's entry of the ``forecast`` JSON contract (or an error
    row ``{"id", "status": "error", "error"}``)."""
    row: dict[str, Any] = {
        "id": entry.get("id"),
        "status": entry.get("status"),
        "error": entry.get("error"),
        "risk_class": entry.get("risk_class"),
        "p_high_risk": entry.get("p_high_risk"),
    }
    for q in QUANTITIES:
        for s in STATISTICS:
            row[f"{q}_{s}"] = _get(entry, "posterior", q, s)
        for s in MCSE_STATISTICS:
            row[f"{q}_mcse_{s}"] = _get(entry, "posterior", q, "mcse", s)
        row[f"map_{q}"] = _get(entry, "map", q)
        row[f"a_priori_{q}"] = _get(entry, "a_priori", q)
    for d in DIAGNOSTICS:
        row[f"diag_{d}"] = _get(entry, "diagnostics", d)
    for p in PRECISION:
        row[f"diag_precision_{p}"] = _get(entry, "diagnostics", "precision", p)
    return row


def library_forecast_columns(parameter_names: Iterable[str]) -> tuple[str, ...]:
    """``forecast --model NAME --format csv`` columns: :data:`FORECAST_COLUMNS`, then ``model``,
    ``outcome_extrapolated``, ``imputed`` (``NAME=value unit``; ``;``-separated) and
    ``param_<P>_<s>`` for each individual parameter P of the model and statistic s."""
    return (
        *FORECAST_COLUMNS,
        "model",
        "outcome_extrapolated",
        "imputed",
        *(f"param_{name}_{s}" for name in parameter_names for s in STATISTICS),
    )


def library_forecast_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The CSV row of one patient's entry of the ``forecast --model NAME`` JSON."""
    row = forecast_row(entry)
    row["model"] = entry.get("model")
    row["outcome_extrapolated"] = _get(entry, "outcome", "extrapolated")
    row["imputed"] = "; ".join(
        f"{i['covariate']}={i['value']:g} {i['unit']}" for i in entry.get("imputed") or ()
    )
    for name, stats in (entry.get("parameters") or {}).items():
        for s in STATISTICS:
            row[f"param_{name}_{s}"] = stats.get(s)
    return row


def _with_plan(
    row: dict[str, Any], plan: Mapping[str, Any], fields: Mapping[str, tuple[str, ...]]
) -> dict[str, Any]:
    if plan.get("error") is not None:
        row["status"], row["error"] = "error", plan["error"]
    for column, path in {**fields, **TROUGH_FIELDS}.items():
        row[column] = _get(plan, *path)
    return row


def dosing_row(forecast: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """The ``optimize`` CSV row: the patient's forecast entry and its dosing plan entry (an
    error entry ``{"id", "error"}`` for a patient whose request was refused)."""
    return _with_plan(forecast_row(forecast), plan, DOSING_FIELDS)


def library_dosing_columns(parameter_names: Iterable[str]) -> tuple[str, ...]:
    """``optimize --model NAME --format csv`` columns: :func:`library_forecast_columns`, then
    the dosing columns of :data:`DOSING_COLUMNS`."""
    return (*library_forecast_columns(parameter_names), *DOSING_FIELDS, *TROUGH_FIELDS)


def library_dosing_row(forecast: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """The ``optimize --model NAME`` CSV row: the patient's ``forecast --model NAME`` entry
    and its dosing plan entry (or an error entry ``{"id", "error"}``)."""
    return _with_plan(library_forecast_row(forecast), plan, LIBRARY_DOSING_FIELDS)


#: Per-model columns of ``--model-average --format csv`` (``<model>_<field>``), with the key of
#: each in the model's entry of ``model_average.models`` (JSON).
AVERAGED_MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "status": ("status",),
    "weight": ("weight",),
    "aic_weight": ("aic_weight",),
    "log_marginal_likelihood": ("log_marginal_likelihood",),
    "marginal_method": ("marginal_method",),
    "marginal_mcse": ("marginal_mcse",),
    "marginal_pareto_k": ("marginal_pareto_k",),
    "extrapolated": ("extrapolated",),
    **{f"risk_90d_{s}": ("risk", s) for s in STATISTICS},
    "p_high_risk": ("p_high",),
}
#: ``optimize --model-average --format csv``: the dose chosen on the averaged curve.
AVERAGED_DOSE_FIELDS: dict[str, tuple[str, ...]] = {
    "mode": ("mode",),
    "feasible": ("feasible",),
    "dose_mg": ("dose_mg",),
    "dose_mg_kg": ("dose_mg_kg",),
    "vials": ("vials",),
    "dose_time_day": ("time_day",),
    "target_risk": ("target_risk",),
    "criterion": ("criterion",),
    "probability": ("probability",),
    "dose_risk_90d_mean": ("risk_90d", "mean"),
    "dose_p_high_risk": ("p_high_risk",),
    "dose_p_meets_target": ("p_meets_target",),
    "trough_target_mg_l": ("trough_target_mg_l",),
    "trough_p_above_target": ("p_trough_above_target",),
}


def model_average_columns(model_names: Iterable[str], *, dosing: bool) -> tuple[str, ...]:
    """``--model-average --format csv`` columns: the averaged risk (as ``risk_90d`` of
    :data:`FORECAST_COLUMNS`), ``random_seed``, ``notes``; then for each model (by its model
    file's name) ``<model>_excluded`` (the reason, empty when it applies) and the fields of
    :data:`AVERAGED_MODEL_FIELDS`; with ``optimize`` the averaged dose's columns."""
    return (
        "id",
        "status",
        "error",
        "risk_class",
        "p_high_risk",
        *(f"risk_90d_{s}" for s in STATISTICS),
        *(f"risk_90d_mcse_{s}" for s in MCSE_STATISTICS),
        "random_seed",
        "notes",
        *(
            f"{name}_{field}"
            for name in model_names
            for field in ("excluded", *AVERAGED_MODEL_FIELDS)
        ),
        *(AVERAGED_DOSE_FIELDS if dosing else ()),
    )


def model_average_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The CSV row of one patient's ``--model-average`` JSON entry (or an error entry
    ``{"id", "error"}``)."""
    average = entry.get("model_average") or {}
    row: dict[str, Any] = {
        "id": entry.get("id"),
        "status": entry.get("status", "error" if entry.get("error") else None),
        "error": entry.get("error"),
        "risk_class": average.get("risk_class"),
        "p_high_risk": average.get("p_high"),
        "random_seed": average.get("random_seed"),
        "notes": "; ".join(average.get("notes") or ()),
    }
    for s in STATISTICS:
        row[f"risk_90d_{s}"] = _get(average, "risk", s)
    for s in MCSE_STATISTICS:
        row[f"risk_90d_mcse_{s}"] = _get(average, "risk", "mcse", s)
    for model in average.get("models") or ():
        for field, path in AVERAGED_MODEL_FIELDS.items():
            row[f"{model['name']}_{field}"] = _get(model, *path)
    for excluded in average.get("excluded") or ():
        row[f"{excluded['name']}_excluded"] = excluded["reason"]
        row[f"{excluded['name']}_status"] = "excluded"
    for column, path in AVERAGED_DOSE_FIELDS.items():
        row[column] = _get(average.get("dose") or {}, *path)
    return row


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None and non-finite numbers, booleans as true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


def write_csv(rows: Iterable[Mapping[str, Any]], columns: tuple[str, ...], stream: TextIO) -> None:
    """Write ``rows`` (dicts keyed by ``columns``) as CSV with a header line."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
