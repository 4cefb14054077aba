"""The self-contained HTML report of a patient's model average (``forecast --model-average
A,B --report``; template ``templates/model_average_report.html``): the averaged 90-day risk,
each model's weight, evidence and risk, the excluded models, the notes, a figure of the risk
under each model and averaged, the inputs and the provenance (each model file's sha256)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from asuc_bayes._version import __version__
from asuc_bayes.interfaces.report.patient_html import (
    input_rows,
    report_environment,
    report_paths,
)
from asuc_bayes.provenance import file_sha256

__all__ = ["model_average_report_html", "write_model_average_reports"]


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
            doses=doses,
            samples=samples,
            provenance=provenance,
            seed=random_seed,
            version=__version__,
        )
    )


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
