"""Provenance of results, and the group schema every result DataTree is checked against.

One writer (:func:`provenance_attrs`) says which model, code and sampler settings produced a
result; one flattener (:func:`netcdf_attrs`) turns diagnostics into netCDF-storable attributes;
one checker (:func:`check_result_tree`) holds each kind of result to its ArviZ-convention
groups and root attributes, when it is written and when it is read back.

Package versions come from the installed distributions' metadata (``importlib.metadata``), so
writing provenance never imports PyMC or ArviZ.

Examples
--------
>>> attrs = provenance_attrs("patient forecast", model_name="m", model_sha256="ab",
...                          random_seed=1)
>>> attrs["kind"], attrs["model_name"], attrs["random_seed"]
('patient forecast', 'm', 1)
>>> sorted(k for k in attrs if k.endswith("_version"))[:2]
['arviz_version', 'asuc_bayes_version']
>>> netcdf_attrs({"precision": {"met": True, "target": 0.05}, "modes": None}, prefix="diagnostics_")
{'diagnostics_precision_met': 1, 'diagnostics_precision_target': 0.05}
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from asuc_bayes._version import __version__
from asuc_bayes.errors import AsucBayesError

__all__ = [
    "MODEL_AVERAGE_KIND",
    "RESULT_SCHEMAS",
    "ResultSchema",
    "ResultSchemaError",
    "check_result_tree",
    "file_sha256",
    "netcdf_attrs",
    "provenance_attrs",
    "sampler_attrs",
    "software_attrs",
]

#: Distributions whose versions every result records.
PACKAGES = ("pymc", "nutpie", "arviz", "numpy", "scipy")


class ResultSchemaError(AsucBayesError, ValueError):
    """A result file or tree that lacks a group or attribute its kind requires."""


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:  # pragma: no cover - every one is a dependency
        return "not installed"


def software_attrs() -> dict[str, str]:
    """``{package}_version`` of asuc_bayes and of :data:`PACKAGES`."""
    return {
        "asuc_bayes_version": __version__,
        **{f"{name}_version": _version(name) for name in PACKAGES},
    }


def file_sha256(path: str | Path | None) -> str:
    """SHA-256 of the file at ``path`` (hex; ``""`` for no path): a model file's identity."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""


def provenance_attrs(
    kind: str,
    *,
    model_name: str,
    model_sha256: str,
    model_label: str = "",
    model_path: str = "",
    model_variants: Iterable[str] = (),
    random_seed: int | None = None,
    sampler: Mapping[str, Any] | None = None,
    created: bool = False,
) -> dict[str, Any]:
    """The root attributes saying what produced a result: its ``kind``, the model (name, label,
    path, sha256 of the file, variants), asuc_bayes and its numerical dependencies' versions,
    the sampler settings (``sampler``: chains, draws, tune...) and the seed. ``created`` adds
    the UTC time (left out by default, so that a result is reproducible byte for byte)."""
    attrs: dict[str, Any] = {
        "kind": kind,
        "model_name": model_name,
        "model_label": model_label or model_name,
        "model_path": model_path,
        "model_sha256": model_sha256,
        "model_variants": ",".join(model_variants),
        **software_attrs(),
    }
    attrs.update(netcdf_attrs(sampler or {}))
    if random_seed is not None:
        attrs["random_seed"] = int(random_seed)
    if created:
        attrs["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return attrs


def sampler_attrs(settings: Any) -> dict[str, Any]:
    """The ``sampler`` of :func:`provenance_attrs` for a patient forecast's settings (anything
    with ``sampler``, ``initial_draws``, ``adaptive``, ``tune``, ``chains``, ``target_accept``:
    :class:`~asuc_bayes.inference.forecast.SamplerSettings`,
    :class:`~asuc_bayes.inference.sampler.SamplerOptions`)."""
    return {
        "sampler": settings.sampler,
        "draws": settings.initial_draws,
        "adaptive_draws": settings.adaptive,
        "tune": settings.tune,
        "chains": settings.chains,
        "target_accept": settings.target_accept,
    }


def _storable(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, int | float | str | list | tuple | np.ndarray):
        return value
    return str(value)


def netcdf_attrs(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``values`` as netCDF attributes: nested mappings flattened with ``_`` (one level),
    booleans as 0/1, NumPy scalars as Python numbers, other objects as text, None left out."""
    attrs: dict[str, Any] = {}
    for key, value in values.items():
        items = value.items() if isinstance(value, Mapping) else [(None, value)]
        for sub, v in items:
            if v is not None:
                attrs[f"{prefix}{key}" + (f"_{sub}" if sub else "")] = _storable(v)
    return attrs


@dataclass(frozen=True)
class ResultSchema:
    """What a kind of result must hold: DataTree groups and root attributes."""

    groups: tuple[str, ...]
    attrs: tuple[str, ...]


_PROVENANCE = ("kind", "model_name", "model_sha256", "asuc_bayes_version")

#: The ``kind`` of a patient's model-averaged forecast (``forecast --model-average --out``).
MODEL_AVERAGE_KIND = "model-averaged patient forecast"

#: The checked schema of each kind of result (the ``kind`` root attribute).
RESULT_SCHEMAS: dict[str, ResultSchema] = {
    "patient forecast": ResultSchema(
        groups=(
            "posterior",
            "sample_stats",
            "predictions",
            "point_estimates",
            "observed_data",
            "constant_data",
        ),
        attrs=(*_PROVENANCE, "patient_id", "status", "random_seed"),
    ),
    "library patient forecast": ResultSchema(
        groups=("posterior", "point_estimates", "observed_data", "constant_data"),
        attrs=(*_PROVENANCE, "patient_id", "status", "random_seed"),
    ),
    "model-averaged patient forecast": ResultSchema(
        groups=("average", "weights", "models"),
        attrs=(*_PROVENANCE, "patient_id", "status", "random_seed"),
    ),
    "asuc_bayes population fit": ResultSchema(
        groups=("posterior", "sample_stats", "observed_data", "constant_data"),
        attrs=(*_PROVENANCE, "method", "random_seed"),
    ),
}


def check_result_tree(tree: Any, kind: str, source: str = "result") -> None:
    """Raise :class:`ResultSchemaError` naming ``source`` and what is missing when ``tree``
    (an :class:`xarray.DataTree`) is not a complete result of ``kind``."""
    schema = RESULT_SCHEMAS[kind]
    found = tree.attrs.get("kind")
    if found != kind:
        raise ResultSchemaError(
            f"{source}: not an asuc_bayes {kind} (its kind is {found!r}; write one with the "
            "command that makes it)"
        )
    missing_groups = [g for g in schema.groups if g not in tree.children]
    missing_attrs = [a for a in schema.attrs if a not in tree.attrs]
    if missing_groups or missing_attrs:
        what = [f"group {g}" for g in missing_groups] + [f"attribute {a}" for a in missing_attrs]
        raise ResultSchemaError(
            f"{source}: an incomplete {kind} (missing {', '.join(what)}); it was not written by "
            "this version of asuc_bayes, or was modified: write it again"
        )
