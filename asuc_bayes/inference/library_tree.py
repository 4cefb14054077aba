"""A library-model forecast as an ArviZ-convention DataTree (``forecast --model NAME --out``).

Groups: ``posterior`` (each random effect by the model file's name, each individual
parameter, and ``cl``, ``v``, ``auc_w2_4``, ``ln_auc_cl``, ``risk_90d`` with an outcome
model; dims chain, draw), ``predictions`` (concentration curves: :func:`library_predictions`;
when the forecast carries its problem, as every forecast made here does),
``point_estimates`` (the same at the MAP and a priori, η = 0; dim
``estimate``; and the records' ``pred``/``ipred``), ``observed_data`` (the records' values)
and ``constant_data`` (record times and censoring, the doses). Root attributes: the provenance
of :func:`asuc_bayes.provenance.provenance_attrs` (kind ``library patient forecast``, the
model file's name, path and sha256, the seed and sampler settings), ``patient_id``,
``status``, the diagnostics (``diagnostics_*``), the outcome model's source, and as JSON text
the imputed covariates, how per-record covariates were used and the warnings.
:func:`asuc_bayes.inference.forecast.save_results` writes a file of them;
:func:`asuc_bayes.inference.forecast.load_results` reads it back and checks each patient's
schema.

Examples
--------
>>> from asuc_bayes.provenance import RESULT_SCHEMAS
>>> RESULT_SCHEMAS[LIBRARY_FORECAST_KIND].groups
('posterior', 'point_estimates', 'observed_data', 'constant_data')
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from asuc_bayes.data.types import Patient
from asuc_bayes.inference.derived import Derived
from asuc_bayes.inference.result import LibraryForecast
from asuc_bayes.inference.sampler import SamplerOptions
from asuc_bayes.provenance import netcdf_attrs, provenance_attrs, sampler_attrs
from asuc_bayes.spec import ModelDeclaration

__all__ = ["LIBRARY_FORECAST_KIND", "library_forecast_tree", "library_predictions"]

#: Concentration curves are kept for about this many posterior draws (evenly thinned).
CURVES = 1000
#: Curves computed together (bounds the memory of a long dosing history's superposition).
_CURVE_BLOCK = 50

#: The ``kind`` root attribute of a library-model patient forecast.
LIBRARY_FORECAST_KIND = "library patient forecast"


def _quantities(derived: Derived, dims: tuple[str, ...]) -> dict[str, tuple]:
    contract = derived.contract()
    clash = sorted(set(derived.parameters) & set(contract))
    if clash:  # the model file loader refuses such names (RESERVED_PARAMETER_NAMES)
        raise ValueError(f"individual parameter(s) {clash} clash with the derived quantities")
    values = {**derived.parameters, **contract}
    return {name: (dims, np.asarray(v, dtype=float)) for name, v in values.items()}


def _posterior(result: LibraryForecast) -> xr.Dataset:
    chains, draws = result.eta.shape[:2]
    variables = {
        name: (("chain", "draw"), result.eta[..., i]) for i, name in enumerate(result.eta_names)
    }
    variables |= _quantities(result.draws, ("chain", "draw"))
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    return xr.Dataset(variables, coords=coords)


def library_predictions(result: LibraryForecast, patient: Patient) -> xr.Dataset | None:
    """The ``predictions`` group: the central concentration (mg/L) on the plot grid
    (:func:`~asuc_bayes.inference.forecast.quantities.curve_times_to`) for about
    :data:`CURVES` evenly thinned posterior draws, at the MAP and a priori (η = 0); None when
    the forecast does not carry its problem."""
    from asuc_bayes.inference.forecast.quantities import curve_times_to

    problem = result.problem
    if problem is None or len(patient.doses) == 0:
        return None
    outcome = problem.declaration.outcome
    time_day = curve_times_to(0.0 if outcome is None else outcome.auc_window_day[1], patient)
    chains, draws = result.eta.shape[:2]
    stride = max(1, -(-chains * draws // CURVES))
    kept = np.arange(0, draws, stride)
    draws_of_curves = result.eta[:, kept].reshape(-1, result.eta.shape[-1])
    curve = np.concatenate(  # in blocks: (draws, times, doses) intermediates stay small
        [
            problem.predict(draws_of_curves[start : start + _CURVE_BLOCK], time_day)
            for start in range(0, len(draws_of_curves), _CURVE_BLOCK)
        ]
    ).reshape(chains, kept.size, time_day.size)
    points = problem.predict(
        np.stack([np.asarray(result.map.eta, dtype=float), np.zeros(len(result.eta_names))]),
        time_day,
    )
    predictions = xr.Dataset(
        {
            "concentration": (("chain", "draw", "time"), curve),
            "concentration_map": (("time",), points[0]),
            "concentration_a_priori": (("time",), points[1]),
        },
        coords={"chain": np.arange(chains), "draw": kept, "time": time_day},
        attrs={"thinning": f"every {stride}th posterior draw (draw labels match)"},
    )
    predictions["time"].attrs["units"] = "day"
    predictions["concentration"].attrs["units"] = "mg/L"
    return predictions


def _point_estimates(result: LibraryForecast) -> xr.Dataset:
    eta = np.vstack([np.asarray(result.map.eta, dtype=float), np.zeros(len(result.eta_names))])
    observations = result.observations
    variables = {
        "eta": (("estimate", "random_effect"), eta),
        **_quantities(result.points, ("estimate",)),
        "pred": (("obs",), np.array([o.pred for o in observations], dtype=float)),
        "ipred": (("obs",), np.array([o.ipred for o in observations], dtype=float)),
    }
    coords = {
        "estimate": ["map", "a_priori"],
        "random_effect": list(result.eta_names),
        "obs": np.arange(len(observations)),
    }
    return xr.Dataset(variables, coords=coords)


def _data(result: LibraryForecast, patient: Patient) -> tuple[xr.Dataset, xr.Dataset]:
    observations = result.observations
    obs = {"obs": np.arange(len(observations))}
    observed = xr.Dataset(
        {"concentration": (("obs",), np.array([o.dv for o in observations], dtype=float))},
        coords=obs,
    )
    constant = xr.Dataset(
        {
            "obs_time_day": (("obs",), np.array([o.time_day for o in observations], dtype=float)),
            "obs_censoring": (("obs",), np.array([o.cens for o in observations], dtype=int)),
            "dose_time_day": (("dose",), patient.dose_time_day),
            "dose_amount_mg": (("dose",), patient.dose_amount_mg),
            "dose_duration_day": (("dose",), patient.dose_duration_day),
            "dose_ss_interval_day": (("dose",), patient.dose_ss_interval_day),
        },
        coords={**obs, "dose": np.arange(len(patient.doses))},
    )
    observed["concentration"].attrs["units"] = "mg/L"
    return observed, constant


def library_forecast_tree(
    result: LibraryForecast,
    patient: Patient,
    declaration: ModelDeclaration,
    *,
    model_sha256: str,
    random_seed: int,
    options: SamplerOptions | None = None,
) -> xr.DataTree:
    """The DataTree of one patient's library-model forecast (see the module docstring).

    Parameters
    ----------
    result
        The forecast (:func:`asuc_bayes.inference.forecast_library_patient`).
    patient
        The patient it was made for (its doses go to ``constant_data``).
    declaration, model_sha256
        The model file it was made with, and that file's sha256.
    random_seed, options
        The seed and sampler options of the forecast (provenance).
    """
    options = options or SamplerOptions()
    attrs = provenance_attrs(
        LIBRARY_FORECAST_KIND,
        model_name=declaration.name,
        model_label=declaration.label,
        model_path=declaration.path,
        model_sha256=model_sha256,
        model_variants=declaration.variants,
        random_seed=random_seed,
        sampler=sampler_attrs(options),
    )
    attrs |= {"patient_id": result.id, "status": result.status}
    attrs |= netcdf_attrs(result.diagnostics, prefix="diagnostics_")
    if result.high_risk_threshold is not None:
        attrs |= {
            "outcome_source_model": str(result.outcome_source),
            "outcome_extrapolated": int(bool(result.extrapolated_outcome)),
            "high_risk_threshold": float(result.high_risk_threshold),
        }
    attrs["imputed"] = json.dumps(result.imputed_json())
    attrs["covariates"] = json.dumps(result.covariates.to_json())
    attrs["warnings"] = json.dumps(list(result.warnings))
    observed, constant = _data(result, patient)
    groups = {
        "/": xr.Dataset(attrs=attrs),
        "posterior": _posterior(result),
        "point_estimates": _point_estimates(result),
        "observed_data": observed,
        "constant_data": constant,
    }
    predictions = library_predictions(result, patient)
    if predictions is not None:
        groups["predictions"] = predictions
    return xr.DataTree.from_dict(groups)
