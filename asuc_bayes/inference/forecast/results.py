"""The result of a patient forecast (:class:`PatientForecast`: its summary now, its DataTree
on first use), the DataTree's groups and provenance, and the results of several patients as
JSON (the output contract) and as one netCDF file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from asuc_bayes._lazy import lazy_module
from asuc_bayes.data.dataset import Patient
from asuc_bayes.graphs.model import RANDOM_EFFECTS
from asuc_bayes.inference.forecast.quantities import (
    DERIVED,
    curve_times,
    derived_quantities,
    map_and_a_priori,
    patient_concentration,
)
from asuc_bayes.inference.forecast.settings import DEFAULT_DRAWS, SamplerSettings
from asuc_bayes.inference.forecast.summary import (
    patient_details,
    summarize_draws,
    summary_from_tree,
)
from asuc_bayes.provenance import (
    MODEL_AVERAGE_KIND,
    check_result_tree,
    netcdf_attrs,
    provenance_attrs,
    sampler_attrs,
)
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "CURVE_THIN",
    "PatientForecast",
    "forecast_result",
    "forecast_tree",
    "load_results",
    "provenance",
    "results_json",
    "results_tree",
    "save_results",
]

# Imported on first use: a forecast from cached densities needs it only for its tree.
xr = lazy_module("xarray")

#: Concentration curves are kept for every CURVE_THIN-th draw (1000 curves by default): the
#: curves dominate the cost of a result and bands for plots need no more.
CURVE_THIN = 4


class _LazyTree:
    """Descriptor of :attr:`PatientForecast.tree`: holds a DataTree or a function of no
    arguments that builds it, called on first access (a batch that keeps only summaries never
    builds a tree: a third of a warm forecast's cost, measured)."""

    def __set_name__(self, owner, name):
        self._slot = f"_{name}_value"

    def __get__(self, instance, owner=None):
        if instance is None:
            raise AttributeError("no default")  # dataclasses: the field is required
        value = instance.__dict__[self._slot]
        if not isinstance(value, xr.DataTree):
            value = instance.__dict__[self._slot] = value()
        return value

    def __set__(self, instance, value):
        instance.__dict__[self._slot] = value


@dataclass(repr=False)
class PatientForecast:
    """The forecast of one patient: a DataTree plus the summary of the output contract.

    ``tree`` may be given as a function of no arguments that builds it; it is then built on
    first access. ``dataclasses.replace`` works as usual (the new forecast's summary is
    derived from its tree).
    """

    patient: Patient
    tree: xr.DataTree = _LazyTree()  # a descriptor: required, built on first access
    status: Literal["ok", "unconverged"]
    diagnostics: dict[str, Any]
    spec: ModelSpec
    #: The output contract's entry when computed from the draws (a fresh copy is returned).
    _summary: dict[str, Any] | None = field(default=None, init=False, compare=False)

    def __repr__(self) -> str:  # never builds the tree
        return f"PatientForecast(patient={self.patient.id!r}, status={self.status!r})"

    def __getstate__(self) -> dict[str, Any]:  # pickling builds the tree (no closures)
        state = dict(self.__dict__)
        state["_tree_value"] = self.tree
        return state

    def summary(self) -> dict[str, Any]:
        """The patient's entry of the JSON output contract."""
        if self._summary is not None:
            return copy.deepcopy(self._summary)
        return summary_from_tree(self.tree, self.spec, self.patient, self.status, self.diagnostics)


def forecast_result(
    spec: ModelSpec,
    patient: Patient,
    eta: np.ndarray,
    trace: dict[str, np.ndarray] | None,
    map_result: dict[str, Any],
    diagnostics: dict[str, Any],
    status: Literal["ok", "unconverged"],
    settings: SamplerSettings,
    seed: int,
    exact: xr.Dataset | None,
) -> PatientForecast:
    """The :class:`PatientForecast` of η draws: its summary now, its DataTree when asked for
    (``exact``: the quadrature summary of an exact-grid posterior, or None)."""
    derived = derived_quantities(spec, patient, eta)
    _, point = map_and_a_priori(spec, patient, map_result["eta"])
    summary = summarize_draws(derived, point, exact, spec, patient.id, status, diagnostics)
    point_eta = np.stack([np.asarray(map_result["eta"], dtype=float), np.zeros(2)])
    summary = patient_details(summary, patient, eta, point_eta, independent=exact is not None)

    def build_tree() -> xr.DataTree:
        tree = forecast_tree(
            spec, patient, eta, trace, map_result, diagnostics, status, settings, seed, derived
        )
        if exact is not None:
            tree["exact_summary"] = exact
        return tree

    result = PatientForecast(patient, build_tree, status, diagnostics, spec)
    result._summary = summary
    return result


def forecast_tree(
    spec: ModelSpec,
    patient: Patient,
    eta: np.ndarray,
    trace: dict[str, np.ndarray] | None,
    map_result: dict[str, Any],
    diagnostics: dict[str, Any],
    status: str,
    settings: SamplerSettings,
    seed: int,
    derived: dict[str, np.ndarray] | None = None,
) -> xr.DataTree:
    """The result DataTree of one patient from η draws (chain, draw, 2); ``derived`` (the
    :data:`DERIVED` quantities per draw) defaults to :func:`derived_quantities` under ``spec``
    (a population-mixture forecast passes its own, computed with each draw's parameters)."""
    chains, draws = eta.shape[:2]
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    if derived is None:
        derived = derived_quantities(spec, patient, eta)
    posterior = xr.Dataset(
        {
            "eta": (("chain", "draw", "random_effect"), eta),
            **{name: (("chain", "draw"), derived[name]) for name in DERIVED},
        },
        coords={**coords, "random_effect": list(RANDOM_EFFECTS)},
    )
    for name, unit in DERIVED.items():
        posterior[name].attrs["units"] = unit
    if trace is None:  # independent draws from the exact posterior
        trace = {"diverging": np.zeros((chains, draws), dtype=bool)}
    sample_stats = xr.Dataset(
        {name: (("chain", "draw"), values) for name, values in trace.items()},
        coords=coords,
    )
    time_day = curve_times(spec, patient)
    stride = CURVE_THIN * max(1, -(-draws // DEFAULT_DRAWS))  # ~1000 curves however long
    curve_draws = np.arange(0, draws, stride)
    curve = patient_concentration(
        patient, time_day, derived["cl"][:, curve_draws], derived["v"][:, curve_draws]
    )
    point_eta, point = map_and_a_priori(spec, patient, map_result["eta"])
    point_curve = patient_concentration(patient, time_day, point["cl"], point["v"])
    predictions = xr.Dataset(
        {
            "concentration": (("chain", "draw", "time"), curve),
            "concentration_map": (("time",), point_curve[0]),
            "concentration_a_priori": (("time",), point_curve[1]),
        },
        coords={"chain": coords["chain"], "draw": curve_draws, "time": time_day},
        attrs={"thinning": f"every {stride}th posterior draw (draw labels match)"},
    )
    predictions["time"].attrs["units"] = "day"
    predictions["concentration"].attrs["units"] = "mg/L"
    point_estimates = xr.Dataset(
        {
            "eta": (("estimate", "random_effect"), point_eta),
            **{name: (("estimate",), point[name]) for name in DERIVED},
            "laplace_covariance": (
                ("random_effect", "random_effect_bis"),
                map_result["covariance"],
            ),
        },
        coords={
            "estimate": ["map", "a_priori"],
            "random_effect": list(RANDOM_EFFECTS),
            "random_effect_bis": list(RANDOM_EFFECTS),
        },
        attrs={
            "map_log_density": map_result["log_density"],
            "laplace_ok": int(map_result["laplace_ok"]),
        },
    )
    observed = xr.Dataset(
        {"concentration": (("obs",), patient.obs_value_mg_l)},
        coords={"obs": np.arange(len(patient.observations))},
    )
    constant = xr.Dataset(
        {
            "obs_time_day": (("obs",), patient.obs_time_day),
            "obs_censoring": (("obs",), patient.obs_censoring),
            "dose_time_day": (("dose",), patient.dose_time_day),
            "dose_amount_mg": (("dose",), patient.dose_amount_mg),
            "dose_duration_day": (("dose",), patient.dose_duration_day),
            "weight_kg": ((), patient.weight_kg),
            "crp_mg_l": ((), patient.crp_mg_l),
        },
        coords={
            "obs": np.arange(len(patient.observations)),
            "dose": np.arange(len(patient.doses)),
        },
    )
    attrs = {
        "patient_id": patient.id,
        "status": status,
        **provenance(spec, settings, seed),
        **netcdf_attrs(diagnostics, prefix="diagnostics_"),
    }
    return xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs=attrs),
            "posterior": posterior,
            "sample_stats": sample_stats,
            "predictions": predictions,
            "point_estimates": point_estimates,
            "observed_data": observed,
            "constant_data": constant,
        }
    )


def provenance(spec: ModelSpec, settings: SamplerSettings, seed: int) -> dict[str, Any]:
    """Attributes that say which model, code and settings produced a patient forecast
    (:func:`asuc_bayes.provenance.provenance_attrs`)."""
    return provenance_attrs(
        "patient forecast",
        model_name=spec.name,
        model_label=spec.label,
        model_path=spec.path,
        model_sha256=spec.sha256,
        model_variants=spec.variants,
        random_seed=seed,
        sampler=sampler_attrs(settings),
    )


def results_json(results: list[PatientForecast], spec: ModelSpec) -> dict[str, Any]:
    """The JSON output contract: model identity and one entry per patient."""
    return {
        "model": {"name": spec.name, "sha256": spec.sha256, "variants": list(spec.variants)},
        "patients": [r.summary() for r in results],
    }


def results_tree(results: list[PatientForecast] | dict[str, xr.DataTree]) -> xr.DataTree:
    """One DataTree holding every patient's groups under ``/<patient id>/`` (from forecasts,
    or from their DataTrees by patient ID as a batch keeps them)."""
    trees = results if isinstance(results, dict) else {r.patient.id: r.tree for r in results}
    children = {}
    for patient_id, tree in trees.items():
        for path, node in tree.subtree_with_keys:
            key = patient_id if path == "." else f"{patient_id}/{path}"
            children[key] = node.to_dataset(inherit=False)
    root = xr.Dataset(attrs={"patients": ",".join(trees)})
    return xr.DataTree.from_dict({"/": root, **children})


#: The kinds of patient forecast a results file may hold.
FORECAST_KINDS = ("patient forecast", "library patient forecast", MODEL_AVERAGE_KIND)


def save_results(results: list[PatientForecast] | dict[str, xr.DataTree], path) -> None:
    """Write all patients' DataTrees to one netCDF file (one group per patient)."""
    results_tree(results).to_netcdf(path, engine="h5netcdf")


def load_results(path) -> xr.DataTree:
    """Read back a file written by :func:`save_results`; each patient's groups and provenance
    are checked (:func:`asuc_bayes.provenance.check_result_tree`) for its kind: a forecast
    of the default path, of a library model (:mod:`asuc_bayes.inference.library_tree`) or a
    model average (:mod:`asuc_bayes.decisions.model_average_tree`; each model's tree too)."""
    tree = xr.load_datatree(path, engine="h5netcdf")
    for patient_id, node in tree.children.items():
        kind = node.attrs.get("kind")
        kind = kind if kind in FORECAST_KINDS else "patient forecast"
        check_result_tree(node, kind, f"{path}: patient {patient_id}")
        if kind == MODEL_AVERAGE_KIND:
            for name, model in node["models"].children.items():
                source = f"{path}: patient {patient_id}, model {name}"
                check_result_tree(model, "library patient forecast", source)
    return tree
