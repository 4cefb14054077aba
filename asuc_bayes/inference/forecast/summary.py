"""The output contract's entry of one patient: summary statistics S of every derived quantity
with their Monte Carlo standard errors, the MAP and a-priori values, and the per-patient keys
every model carries (parameters, η, observations with PRED and IPRED).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from asuc_bayes.data.dataset import Patient
from asuc_bayes.inference.diagnostics import monte_carlo_errors
from asuc_bayes.inference.forecast.quantities import DERIVED, DERIVED_PK, patient_concentration
from asuc_bayes.inference.risk_class import risk_class
from asuc_bayes.spec.config import ModelSpec
from asuc_bayes.spec.legacy import RANDOM_EFFECT_NAMES, STRUCTURAL_PARAMETERS

if TYPE_CHECKING:  # annotations only: xarray is imported on first use elsewhere (start-up)
    import xarray as xr

__all__ = [
    "MCSE_PROBS",
    "MCSE_STATISTICS",
    "STATISTICS",
    "json_number",
    "patient_details",
    "summarize_draws",
    "summarize_tree",
    "summary_from_tree",
    "summary_mcse",
    "summary_statistics",
]

#: Summary statistics of every posterior quantity (the output contract's S).
STATISTICS = ("mean", "sd", "q2.5", "q50", "q97.5")
#: The statistics of S whose Monte Carlo standard error S["mcse"] reports, and the quantiles'
#: probabilities.
MCSE_STATISTICS = ("mean", "q2.5", "q50", "q97.5")
MCSE_PROBS = (0.025, 0.5, 0.975)


def summary_statistics(values: np.ndarray) -> dict[str, float]:
    """Mean, SD and 2.5/50/97.5 % quantiles of draws (the output contract's S)."""
    flat = np.asarray(values, dtype=float).ravel()
    q = np.quantile(flat, [0.025, 0.5, 0.975])
    return {
        "mean": float(flat.mean()),
        "sd": float(flat.std(ddof=1)),
        "q2.5": float(q[0]),
        "q50": float(q[1]),
        "q97.5": float(q[2]),
    }


def json_number(value) -> float | None:
    """A float for JSON: None where it is undefined (NaN or infinite).

    >>> json_number(0.5), json_number(float("nan"))
    (0.5, None)
    """
    value = float(value)
    return value if np.isfinite(value) else None


def summary_mcse(
    derived: dict[str, np.ndarray], *, independent: bool = False
) -> dict[str, dict[str, float | None]]:
    """Monte Carlo standard error of the mean and the 2.5/50/97.5 % quantiles of every
    :data:`DERIVED` quantity (the output contract's S["mcse"]), from its draws (chain, draw).

    As ``az.mcse(method="mean")`` and ``az.mcse(method="quantile", prob=p)``
    (:func:`asuc_bayes.inference.diagnostics.monte_carlo_errors`); ``independent`` draws (the exact
    grid's) use the i.i.d. formulas (ESS = number of draws). Undefined values are None.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> draws = {name: rng.normal(size=(4, 1000)) for name in DERIVED}
    >>> mcse = summary_mcse(draws, independent=True)
    >>> sorted(mcse["v"]), round(mcse["v"]["mean"], 3)
    (['mean', 'q2.5', 'q50', 'q97.5'], 0.016)
    """
    names = tuple(derived)
    values = np.stack([np.asarray(derived[name], dtype=float) for name in names], axis=-1)
    if values.ndim == 2:  # one chain, flat
        values = values[None]
    errors = monte_carlo_errors(values, MCSE_PROBS, independent=independent)
    columns = np.vstack([errors.mean, errors.quantile])  # (statistic, quantity)
    return {
        name: {k: json_number(columns[i, j]) for i, k in enumerate(MCSE_STATISTICS)}
        for j, name in enumerate(names)
    }


def summarize_tree(
    tree: xr.DataTree,
    spec: ModelSpec,
    patient_id: str,
    status: str,
    diagnostics: dict[str, Any],
) -> dict[str, Any]:
    """The output contract's entry of a result tree (see :func:`summarize_draws`)."""
    points = tree["point_estimates"]
    return summarize_draws(
        {name: tree["posterior"][name].values for name in DERIVED},
        {name: points[name].sel(estimate=["map", "a_priori"]).values for name in DERIVED},
        tree["exact_summary"].to_dataset() if "exact_summary" in tree.children else None,
        spec,
        patient_id,
        status,
        diagnostics,
    )


def summary_from_tree(
    tree: xr.DataTree,
    spec: ModelSpec,
    patient: Patient,
    status: str,
    diagnostics: dict[str, Any],
) -> dict[str, Any]:
    """The output contract's entry of a patient's result tree, with the per-patient keys of
    every model (:func:`summarize_tree`, then :func:`patient_details`)."""
    entry = summarize_tree(tree, spec, patient.id, status, diagnostics)
    return patient_details(
        entry,
        patient,
        tree["posterior"]["eta"].values,
        tree["point_estimates"]["eta"].values,
        independent="exact_summary" in tree.children,
    )


def summarize_draws(
    derived: dict[str, np.ndarray],
    point: dict[str, np.ndarray],
    exact: xr.Dataset | None,
    spec: ModelSpec,
    patient_id: str,
    status: str,
    diagnostics: dict[str, Any],
) -> dict[str, Any]:
    """The output contract's entry of one patient from its draws.

    ``derived`` and ``point`` map every :data:`DERIVED` quantity to its posterior draws
    (chain, draw) and to its (MAP, a priori) values; ``exact`` is the quadrature summary of an
    exact-grid posterior (:func:`~asuc_bayes.inference.forecast.exact.grid_draws`; its
    statistics replace those of the draws) or
    None. Each S carries ``"mcse"`` (:func:`summary_mcse`): for an exact-grid posterior that
    of the independent draws stored with it (the statistics themselves are quadrature values).
    """
    threshold = spec.tte.high_risk_threshold
    if exact is not None:  # quadrature posterior: exact, no Monte Carlo error
        stats = {
            name: {k: float(exact[name].sel(statistic=k)) for k in STATISTICS} for name in DERIVED
        }
        p_high_risk = float(exact["p_high_risk"])
    else:
        stats = {name: summary_statistics(derived[name]) for name in DERIVED}
        p_high_risk = float(np.mean(np.asarray(derived["ln_auc_cl"]) < threshold))
    for name, mcse in summary_mcse(derived, independent=exact is not None).items():
        stats[name]["mcse"] = mcse
    return {
        "id": patient_id,
        "status": status,
        "posterior": stats,
        "p_high_risk": p_high_risk,
        "risk_class": risk_class(p_high_risk),
        "map": {name: float(point[name][0]) for name in DERIVED},
        "a_priori": {name: float(point[name][1]) for name in DERIVED},
        "diagnostics": diagnostics,
    }


def patient_details(
    entry: dict[str, Any],
    patient: Patient,
    eta: np.ndarray,
    point_eta: np.ndarray,
    *,
    independent: bool,
) -> dict[str, Any]:
    """``entry`` (:func:`summarize_draws`) with the per-patient keys every model's forecast
    carries (as ``forecast --model NAME``): ``parameters`` (S of CL and V: the posterior's
    ``cl`` and ``v``), ``eta`` (S per random effect, with its MCSE), ``map.eta`` and
    ``a_priori.eta`` (lists), ``map.parameters`` and ``a_priori.parameters``, and
    ``observations`` ({time, dv, cens, pred, ipred}: ``pred`` at η = 0, ``ipred`` at the MAP,
    as in NONMEM tables). ``eta`` (chain, draw, 2) are the posterior draws and ``point_eta``
    (2, 2) the MAP and a-priori η."""
    entry["parameters"] = {
        name: entry["posterior"][key]
        for name, key in zip(STRUCTURAL_PARAMETERS, DERIVED_PK, strict=True)
    }
    draws = {name: eta[..., i] for i, name in enumerate(RANDOM_EFFECT_NAMES)}
    mcse = summary_mcse(draws, independent=independent)
    entry["eta"] = {
        name: {**summary_statistics(values), "mcse": mcse[name]} for name, values in draws.items()
    }
    for row, estimate in enumerate(("map", "a_priori")):
        entry[estimate]["eta"] = [float(x) for x in point_eta[row]]
        entry[estimate]["parameters"] = {
            name: entry[estimate][key]
            for name, key in zip(STRUCTURAL_PARAMETERS, DERIVED_PK, strict=True)
        }
    cl = np.array([entry["map"]["cl"], entry["a_priori"]["cl"]])
    v = np.array([entry["map"]["v"], entry["a_priori"]["v"]])
    predicted = patient_concentration(patient, patient.obs_time_day, cl, v)
    entry["observations"] = [
        {
            "time": float(obs.time_day),
            "dv": float(obs.value_mg_l),
            "cens": int(obs.censoring),
            "pred": json_number(predicted[1, k]),
            "ipred": json_number(predicted[0, k]),
        }
        for k, obs in enumerate(patient.observations)
    ]
    return entry
