"""The self-contained HTML report of a patient's model average (``forecast``/``optimize
--model-average A,B --report``; template ``templates/model_average_report.html``): the averaged
90-day risk, each model's weight, evidence and risk, the excluded models, the notes, a figure of
the risk under each model and averaged, the inputs and the provenance (each model file's
sha256). With ``optimize``, also the dose chosen on the averaged curve: the goal, the choice,
the averaged curve as a table and a figure beside each model's own curve, and each model's own
choice."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asuc_bayes._version import __version__
from asuc_bayes.decisions.model_average import own_choice, own_curve
from asuc_bayes.interfaces.report.patient_html import (
    input_rows,
    report_environment,
    report_paths,
)
from asuc_bayes.provenance import file_sha256

__all__ = [
    "DoseCriterion",
    "dose_criterion",
    "model_average_report_html",
    "write_model_average_reports",
]


def model_average_report_html(average, patient, *, random_seed: int) -> str:
    """One page about one patient's model average
    (:class:`~asuc_bayes.decisions.model_average.ModelAverage`); ``random_seed``: the seed the
    user gave.

    Examples
    --------
    >>> from asuc_bayes.decisions.model_average import average_patient
    >>> from asuc_bayes.studies.library_simulate import simulate_library_cohort
    >>> patient = simulate_library_cohort("niyigena2025", 1, random_seed=4).patients[0]
    >>> average = average_patient(["niyigena2025", "faelens2021"], patient, random_seed=1)
    >>> page = model_average_report_html(average, patient, random_seed=1)
    >>> "faelens2021" in page and "The models and their weights" in page
    True
    """
    from asuc_bayes.interfaces.plots import figure_png, model_average_figure

    entry = average.to_json()
    summary = entry["model_average"]
    draws = {
        m.evidence.name: np.asarray(m.evidence.posterior.forecast.draws.risk_90d, dtype=float)
        for m in average.models
    }
    weights = {m.evidence.name: m.weight for m in average.models}
    figure = model_average_figure(draws, weights, average.risk_draws)
    doses, samples = input_rows(patient)
    dose = summary.get("dose")
    dose_image = None if dose is None else _dose_image(dose, weights)
    provenance = [
        {"name": m.evidence.name, "sha256": file_sha256(m.evidence.posterior.declaration.path)}
        for m in average.models
    ]
    return (
        report_environment()
        .get_template("model_average_report.html")
        .render(
            a=entry,
            avg=summary,
            models=summary["models"],
            excluded=summary["excluded"],
            # an excluded model's note repeats its reason, listed above it
            notes=[
                note
                for note in summary["notes"]
                if not any(note.startswith(f"{e['name']} excluded:") for e in summary["excluded"])
            ],
            any_extrapolated=any(m["extrapolated"] for m in summary["models"]),
            image=base64.b64encode(figure_png(figure)).decode("ascii"),
            dose=dose,
            dose_goal=None if dose is None else dose_criterion(dose),
            dose_models=None if dose is None else _dose_models(dose, weights),
            dose_schedule=None if dose is None else _trough_schedule(dose),
            dose_image=dose_image,
            doses=doses,
            samples=samples,
            provenance=provenance,
            seed=random_seed,
            version=__version__,
        )
    )


@dataclass(frozen=True)
class DoseCriterion:
    """What the averaged dose must reach: the curve column it is read from (``key``), its
    name (``quantity``) and the ``threshold``, a fraction (the mean risk must stay at or
    below it; a probability reach it)."""

    key: str
    quantity: str
    threshold: float


def dose_criterion(dose: dict) -> DoseCriterion:
    """The :class:`DoseCriterion` of an averaged dose (``dose``: the JSON of
    :class:`~asuc_bayes.decisions.model_average.AveragedDose`).

    Examples
    --------
    >>> dose = {"mode": "risk", "criterion": "mean", "target_risk": 0.2, "probability": 0.8}
    >>> dose_criterion(dose)
    DoseCriterion(key='risk_mean', quantity='posterior mean 90-day risk', threshold=0.2)
    """
    if dose["mode"] == "trough":
        quantity = f"P(trough ≥ {dose['trough_target_mg_l']:g} mg/L)"
        return DoseCriterion("p_trough_above_target", quantity, float(dose["probability"]))
    if dose["criterion"] == "mean":
        quantity = "posterior mean 90-day risk"
        return DoseCriterion("risk_mean", quantity, float(dose["target_risk"]))
    quantity = f"P(90-day risk ≤ {100 * dose['target_risk']:g} %)"
    return DoseCriterion("p_meets_target", quantity, float(dose["probability"]))


def _model_value(plan: dict, key: str, dose_mg: float) -> float | None:
    """One model's own value of the criterion at ``dose_mg`` (None off its grid)."""
    for row in own_curve(plan):
        if row["dose_mg"] == dose_mg:
            return row[key]
    return None


def _dose_models(dose: dict, weights: dict[str, float]) -> list[dict]:
    """Per model: its weight, its own choice and the criterion at the averaged dose."""
    key = dose_criterion(dose).key
    weight_kg = dose["dose_mg"] / dose["dose_mg_kg"]
    rows = []
    for name, plan in dose["per_model"].items():
        dose_mg, feasible = own_choice(plan)
        rows.append(
            {
                "name": name,
                "weight": weights[name],
                "dose_mg": dose_mg,
                "dose_mg_kg": dose_mg / weight_kg,
                "feasible": feasible,
                "at_averaged_dose": _model_value(plan, key, dose["dose_mg"]),
            }
        )
    return rows


def _trough_schedule(dose: dict) -> dict | None:
    """Trough mode: the maintenance schedule the dose is for (from the models' own plans,
    which share the request), else None."""
    if dose["mode"] != "trough":
        return None
    trough = next(iter(dose["per_model"].values()))["trough"]
    return {
        "maintenance_doses": trough["maintenance_doses"],
        "start_day": trough["start_day"],
        "interval_day": trough["for_interval"]["interval_day"],
    }


def _dose_image(dose: dict, weights: dict[str, float]) -> str:
    """The averaged curve beside each model's own, as base64 PNG."""
    from asuc_bayes.interfaces.plots import figure_png, model_average_dose_figure

    goal = dose_criterion(dose)
    key = goal.key
    rows = dose["curve"]
    curves = {
        name: (
            np.array([row["dose_mg"] for row in own_curve(plan)], dtype=float),
            np.array([row[key] for row in own_curve(plan)], dtype=float),
        )
        for name, plan in dose["per_model"].items()
    }
    schedule = _trough_schedule(dose)
    figure = model_average_dose_figure(
        np.array([row["dose_mg"] for row in rows], dtype=float),
        np.array([row[key] for row in rows], dtype=float),
        curves,
        weights,
        threshold=goal.threshold,
        quantity=goal.quantity,
        chosen_mg=dose["dose_mg"],
        feasible=dose["feasible"],
        dose_label=(
            f"dose at day {dose['time_day']:g} (mg)"
            if schedule is None
            else f"dose every {schedule['interval_day']:g} days (mg)"
        ),
    )
    return base64.b64encode(figure_png(figure)).decode("ascii")


def write_model_average_reports(
    averages, patients, path: str | Path, *, random_seed: int
) -> list[Path]:
    """Write one report per model average (``patients``: ID → patient; where:
    :func:`~asuc_bayes.interfaces.report.patient_html.report_paths`); return the paths."""
    paths = report_paths(path, [average.patient_id for average in averages])
    for average, target in zip(averages, paths, strict=True):
        html = model_average_report_html(
            average, patients[average.patient_id], random_seed=random_seed
        )
        target.write_text(html, encoding="utf-8")
    return paths
