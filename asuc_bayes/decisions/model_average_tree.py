"""A patient's model-averaged forecast as a DataTree (``forecast --model-average A,B --out``).

Groups under the patient: ``average`` (``risk_90d``: the resampled mixture of the models' 90-day
risk draws, dim ``draw``), ``weights`` (per model, dim ``model``: the posterior model
probability ``weight``, ``aic_weight``, ``log_marginal_likelihood`` with its method, Monte Carlo
error and Pareto k̂, and ``p_high``; NaN where a quantity does not apply) and ``models/<name>``:
each model's own forecast tree (:func:`asuc_bayes.inference.library_tree.library_forecast_tree`,
kind ``library patient forecast``, with its own provenance). Root attributes: the provenance of
:func:`asuc_bayes.provenance.provenance_attrs` (kind :data:`MODEL_AVERAGE_KIND`; ``model_name``
and ``model_sha256`` list the models and their files' sha256, comma-separated, in the
average's order), ``patient_id``, ``status``, ``prior_weights``, and as JSON text the
excluded models and the notes. :func:`asuc_bayes.inference.forecast.load_results` checks the
patient's groups and every model's.

Examples
--------
>>> from asuc_bayes.provenance import RESULT_SCHEMAS
>>> RESULT_SCHEMAS[MODEL_AVERAGE_KIND].groups
('average', 'weights', 'models')
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from asuc_bayes.data.types import Patient
from asuc_bayes.decisions.model_average import ModelAverage, model_seeds
from asuc_bayes.inference.library_tree import library_forecast_tree
from asuc_bayes.inference.sampler import SamplerOptions
from asuc_bayes.provenance import (
    MODEL_AVERAGE_KIND,
    file_sha256,
    provenance_attrs,
    sampler_attrs,
)

__all__ = ["MODEL_AVERAGE_KIND", "model_average_tree"]


def _number(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _weights(average: ModelAverage) -> xr.Dataset:
    models = [m.evidence for m in average.models]
    variables = {
        "weight": [m.weight for m in average.models],
        "aic_weight": [_number(m.aic_weight) for m in average.models],
        "log_marginal_likelihood": [e.log_marginal for e in models],
        "marginal_mcse": [e.marginal_mcse for e in models],
        "marginal_pareto_k": [_number(e.pareto_k) for e in models],
        "p_high": [m.p_high for m in average.models],
    }
    dataset = xr.Dataset(
        {name: ("model", np.asarray(values, dtype=float)) for name, values in variables.items()},
        coords={"model": [e.name for e in models]},
    )
    dataset["marginal_method"] = ("model", np.array([e.marginal_method for e in models], dtype=str))
    return dataset


def model_average_tree(
    average: ModelAverage, patient: Patient, *, options: SamplerOptions | None = None
) -> xr.DataTree:
    """The DataTree of one patient's model average (see the module docstring); ``options``:
    the sampler options each model's posterior was drawn with.

    Examples
    --------
    >>> from asuc_bayes.decisions.model_average import average_patient
    >>> from asuc_bayes.studies.library_simulate import simulate_library_cohort
    >>> cohort = simulate_library_cohort("niyigena2025", 1, random_seed=4)
    >>> patient = cohort.patients[0]
    >>> average = average_patient(["niyigena2025", "faelens2021"], patient, random_seed=1)
    >>> tree = model_average_tree(average, patient)
    >>> sorted(tree["models"].children) == sorted(m.evidence.name for m in average.models)
    True
    """
    options = options or SamplerOptions()
    model_seed = model_seeds(average.random_seed)[0]
    children: dict[str, xr.DataTree] = {}
    for model in average.models:
        posterior = model.evidence.posterior
        declaration = posterior.declaration
        children[model.evidence.name] = library_forecast_tree(
            posterior.forecast,
            patient,
            declaration,
            model_sha256=file_sha256(declaration.path),
            random_seed=model_seed,
            options=options,
        )
    attrs = provenance_attrs(
        MODEL_AVERAGE_KIND,
        model_name=",".join(children),
        model_sha256=",".join(c.attrs["model_sha256"] for c in children.values()),
        random_seed=average.random_seed,
        sampler=sampler_attrs(options),
    )
    attrs |= {
        "patient_id": average.patient_id,
        "status": average.status,
        "prior_weights": "equal",
        "excluded": json.dumps([{"name": e.name, "reason": e.reason} for e in average.excluded]),
        "notes": json.dumps(list(average.notes)),
    }
    average_group = xr.Dataset(
        {"risk_90d": ("draw", np.asarray(average.risk_draws, dtype=float))},
        coords={"draw": np.arange(len(average.risk_draws))},
    )
    nodes: dict[str, xr.Dataset] = {
        "/": xr.Dataset(attrs=attrs),
        "average": average_group,
        "weights": _weights(average),
        "models": xr.Dataset(),
    }
    for name, child in children.items():
        for path, node in child.subtree_with_keys:
            key = f"models/{name}" if path == "." else f"models/{name}/{path}"
            nodes[key] = node.to_dataset(inherit=False)
    return xr.DataTree.from_dict(nodes)
