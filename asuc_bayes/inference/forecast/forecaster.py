"""Individual forecasting: MAP + Laplace, full posterior by NUTS, derived quantities, results.

One :class:`Forecaster` per model specification: the PyMC model is declared once, the
log density (for MAP) and the nutpie sampler are compiled once, and each patient is bound
with ``pm.set_data`` / ``with_data``.

Examples
--------
>>> from asuc_bayes import Forecaster, load_model, read_patients, example_path
>>> forecaster = Forecaster(load_model())                                 # doctest: +SKIP
>>> patient = read_patients(example_path()).patients[0]                   # doctest: +SKIP
>>> result = forecaster.forecast(patient, random_seed=1)                  # doctest: +SKIP
>>> result.summary()["posterior"]["risk_90d"]["mean"]                     # doctest: +SKIP
"""

from __future__ import annotations

import copy
import functools
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import scipy.optimize

from asuc_bayes._lazy import lazy_module
from asuc_bayes.data.dataset import Dose, Observation, Patient
from asuc_bayes.graphs.model import (
    RANDOM_EFFECTS,
    PatientData,
    build_patient_model,
    log_relative_to_sampler,
    omega_vector,
    sampler_to_log_relative,
)
from asuc_bayes.graphs.nutpie_density import (
    CachedDensity,
    eta_density,
    eta_from_whitened,
    pack_data,
    sampler_density,
)
from asuc_bayes.inference.diagnostics import (
    ESS_BULK_MIN,
    RHAT_MAX,
    monte_carlo_errors,
    rank_diagnostics,
)
from asuc_bayes.inference.grid import (
    GridPosterior,
    find_modes,
    grid_posterior,
    log_posterior,
    scan_maxima,
)
from asuc_bayes.inference.independence import IndependenceChains, MixtureProposal, StudentTProposal
from asuc_bayes.inference.risk_class import risk_class
from asuc_bayes.pk.kernels import (
    auc_interval,
    concentration,
    individual_pk_parameters,
    ln_auc_cl,
    weibull_parameters,
    weibull_risk,
)
from asuc_bayes.provenance import check_result_tree, netcdf_attrs, provenance_attrs
from asuc_bayes.spec.config import ModelSpec
from asuc_bayes.spec.legacy import RANDOM_EFFECT_NAMES, STRUCTURAL_PARAMETERS

__all__ = [
    "DERIVED",
    "Forecaster",
    "PatientForecast",
    "Precision",
    "SamplerSettings",
    "derived_quantities",
    "exact_forecast",
    "forecast_patients",
    "forecast_tree",
    "forecaster_for",
    "grid_draws",
    "load_results",
    "patient_seed",
    "results_json",
    "results_tree",
    "save_results",
    "summary_mcse",
    "summary_statistics",
]

# Imported on first use: a forecast from cached densities needs none of them (start-up).
pm = lazy_module("pymc")
xr = lazy_module("xarray")

#: Quantities reported for every patient (posterior, MAP, a priori), with units.
DERIVED = {
    "cl": "L/day",
    "v": "L",
    "auc_w2_4": "mg*day/L",
    "ln_auc_cl": "ln((mg*day/L)/(L/day))",
    "risk_90d": "probability",
}
#: The derived quantities that are the individual PK parameters (CL, V), in declaration order.
DERIVED_PK = ("cl", "v")
#: Summary statistics of every posterior quantity (the output contract's S).
STATISTICS = ("mean", "sd", "q2.5", "q50", "q97.5")
#: The statistics of S whose Monte Carlo standard error S["mcse"] reports, and the quantiles'
#: probabilities.
MCSE_STATISTICS = ("mean", "q2.5", "q50", "q97.5")
MCSE_PROBS = (0.025, 0.5, 0.975)
#: The MAP is searched within this many prior SDs of η = 0 (prior density e^-50 there).
ETA_BOUND_SD = 10.0
CURVE_END_DAY = 90.0
#: Concentration curves are kept for every CURVE_THIN-th draw (1000 curves by default): the
#: curves dominate the cost of a result and bands for plots need no more.
CURVE_THIN = 4
#: The independence sampler (``sampler="imh"``, the default): burn-in per chain, thinning, and
#: the multivariate-t proposal's degrees of freedom and scale in the whitened coordinates, where
#: the posterior is ~N(0, I), mixed with the prior (weight IMH_PRIOR_WEIGHT). Measured on 120
#: simulated patients (seed 991) against the exact grid, worst error over the mean and 2.5/50/
#: 97.5 % quantiles of CL, V, AUC, ln(AUC/CL) and risk, in posterior SDs (4 x 1000 draws):
#: IMH median 0.10, 90th centile 0.18, max 0.34; NUTS (nutpie) 0.14, 0.24, 0.52 on the same
#: patients; 110/120 by IMH, 3 handed to NUTS by a gate, 7 bimodal (exact grid); 2.9 x faster
#: per patient than NUTS in the same run. Without the prior component, single-sample patients
#: showed 0.97 SD errors in V's upper tail (a proposal lighter-tailed than the posterior).
IMH_BURN = 50
#: Every IMH_THIN-th state is kept: proposals are cheap (all evaluated in one vectorised call)
#: and thinning by 4 (+~40 ms a patient) roughly doubles the draws' ESS.
IMH_THIN = 4
IMH_DF = 4.0
IMH_SCALE = 1.5
#: Weight of the prior in the defensive mixture proposal: every importance weight is then at
#: most max(likelihood) / IMH_PRIOR_WEIGHT (see :class:`PriorProposal`).
IMH_PRIOR_WEIGHT = 0.2
#: Draws per chain of a run, and the first piece of an adaptive one (``draws=None``).
DEFAULT_DRAWS = 1000
#: The stated precision of an adaptive run: the Monte Carlo standard error of the 2.5 % and
#: 97.5 % quantiles of each PRECISION_QUANTITIES, in posterior SDs of that quantity. With
#: independent draws a tail quantile reaches it at ~2900 effective draws (a normal posterior).
PRECISION_TARGET = 0.05
PRECISION_QUANTITIES = ("ln_auc_cl", "risk_90d")
PRECISION_PROBS = (0.025, 0.975)
#: An adaptive run stops at MAX_DRAWS_FACTOR x DEFAULT_DRAWS draws per chain, met or not.
MAX_DRAWS_FACTOR = 8
#: Whitening data of the un-whitened sampler coordinates (shift 0, identity Cholesky factor).
IDENTITY_WHITENING = {"eta_shift": np.zeros(2), "eta_chol": np.eye(2)}


@dataclass(frozen=True)
class SamplerSettings:
    """Sampler settings of an individual forecast.

    ``sampler="imh"`` (default): an independence Metropolis–Hastings sampler whose proposal is
    a multivariate t around the Laplace approximation mixed with the prior (see
    :meth:`Forecaster._independence_run`); if its draws fail a gate, NUTS (nutpie) samples
    the patient. ``"nutpie"``: NUTS only; ``"pymc"``: PyMC's own NUTS. ``tune`` and the
    target acceptances apply to NUTS; ``escalate_target_accept`` is used for a second NUTS
    attempt when the first has divergences or fails the R-hat/ESS gates.

    ``draws`` (per chain) fixes the size of the run; None (default) makes it adaptive: a
    first piece of :data:`DEFAULT_DRAWS` draws is continued until the MCSE of the 2.5 % and
    97.5 % quantiles of ln(AUC/CL) and of the 90-day risk is at most :data:`PRECISION_TARGET`
    posterior SDs, or ``max_draws`` (8 x 1000) is reached (see :class:`Precision`)."""

    draws: int | None = None
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.95
    escalate_target_accept: float | None = 0.99
    sampler: Literal["imh", "nutpie", "pymc"] = "imh"
    cores: int | None = None
    method: Literal["auto", "nuts", "exact_grid"] = "auto"
    grid_points: int = 401

    @property
    def adaptive(self) -> bool:
        """No ``draws`` given: the run is extended until its tail quantiles reach the stated
        precision (:data:`PRECISION_TARGET`), within ``max_draws``."""
        return self.draws is None

    @property
    def initial_draws(self) -> int:
        """Draws per chain of the first (for a fixed run: the only) piece of the run."""
        return DEFAULT_DRAWS if self.draws is None else self.draws

    @property
    def max_draws(self) -> int:
        """Draws per chain an adaptive run stops at, met or not (a fixed run: ``draws``)."""
        return MAX_DRAWS_FACTOR * DEFAULT_DRAWS if self.draws is None else self.draws

    def __post_init__(self):
        for name in ("draws", "tune", "chains"):
            value = getattr(self, name)
            if name == "draws" and value is None:
                continue
            if not isinstance(value, int) or value < (1 if name != "tune" else 0):
                raise ValueError(
                    f"sampler setting '{name}' must be a positive integer, got {value!r}"
                )
        if self.chains < 2:
            raise ValueError("sampler setting 'chains' must be at least 2 (R-hat needs them)")
        if not 0.5 <= self.target_accept < 1:
            raise ValueError(f"target_accept must be in [0.5, 1), got {self.target_accept}")
        if self.sampler not in ("nutpie", "pymc", "imh"):
            raise ValueError(f"sampler must be 'nutpie', 'pymc' or 'imh', got {self.sampler!r}")
        if self.method not in ("auto", "nuts", "exact_grid"):
            raise ValueError(f"method must be 'auto', 'nuts' or 'exact_grid', got {self.method!r}")


def derived_quantities(spec: ModelSpec, patient: Patient, eta: np.ndarray) -> dict[str, np.ndarray]:
    """CL, V, AUC_w2-4, ln(AUC_w2-4/CL) and 90-day risk for random effects ``eta[..., 2]``."""
    tte = spec.tte
    eta = np.asarray(eta, dtype=float)
    cl, v = individual_pk_parameters(
        spec.pk, patient.weight_kg, patient.crp_mg_l, eta[..., 0], eta[..., 1]
    )
    auc = auc_interval(
        tte.auc_window_day[0],
        tte.auc_window_day[1],
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        cl,
        v,
        dose_end_day=patient.dose_end_day,
        dose_ss_interval_day=patient.dose_ss_interval_day,
    )
    ln_ratio = ln_auc_cl(auc, cl)
    risk = weibull_risk(tte.horizon_day, ln_ratio, **weibull_parameters(tte))
    return {"cl": cl, "v": v, "auc_w2_4": auc, "ln_auc_cl": ln_ratio, "risk_90d": risk}


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


def _json_number(value) -> float | None:
    """A float for JSON: None where it is undefined (NaN or infinite)."""
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
        name: {k: _json_number(columns[i, j]) for i, k in enumerate(MCSE_STATISTICS)}
        for j, name in enumerate(names)
    }


@dataclass(frozen=True)
class Precision:
    """The Monte Carlo precision of a run, against the stated target.

    ``worst`` is the largest MCSE of the 2.5 % and 97.5 % quantiles of the
    :data:`PRECISION_QUANTITIES`, each in posterior SDs of its quantity (infinite where an
    MCSE is undefined); the target is met when ``worst <= target``. ``draws`` per chain;
    ``adaptive`` says whether the run was extended to reach the target (within
    ``max_draws``) or had its size fixed by ``draws``.
    """

    target: float
    worst: float
    draws: int
    max_draws: int
    adaptive: bool

    @property
    def met(self) -> bool:
        return bool(self.worst <= self.target)

    def next_draws(self) -> int:
        """Draws per chain expected to meet the target (MCSE ∝ 1/√draws), with a 20 % margin,
        at least a quarter more than now, rounded up to 100 and capped at ``max_draws``."""
        if not np.isfinite(self.worst):
            return self.max_draws
        wanted = self.draws * 1.2 * (self.worst / self.target) ** 2
        wanted = max(wanted, 1.25 * self.draws)
        return int(min(self.max_draws, 100 * np.ceil(wanted / 100)))

    def as_dict(self) -> dict[str, Any]:
        """The JSON contract's ``diagnostics.precision``."""
        return {
            "target": self.target,
            "met": self.met,
            "worst": _json_number(self.worst),
            "draws": self.draws,
            "max_draws": self.max_draws,
            "adaptive": self.adaptive,
        }


def run_precision(
    spec: ModelSpec,
    patient: Patient,
    eta: np.ndarray,
    settings: SamplerSettings,
    *,
    independent: bool = False,
) -> Precision:
    """The :class:`Precision` of η draws (chain, draw, 2) of ``patient``."""
    derived = derived_quantities(spec, patient, eta)
    values = np.stack([derived[name] for name in PRECISION_QUANTITIES], axis=-1)
    errors = monte_carlo_errors(values, PRECISION_PROBS, independent=independent)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(errors.quantile == 0.0, 0.0, errors.quantile / errors.sd)
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)
    return Precision(
        PRECISION_TARGET,
        float(ratio.max()),
        int(eta.shape[1]),
        settings.max_draws,
        settings.adaptive,
    )


def until_precise(
    spec: ModelSpec,
    patient: Patient,
    eta: np.ndarray,
    settings: SamplerSettings,
    extend,
    *,
    independent: bool = False,
) -> tuple[np.ndarray, Precision]:
    """Continue a run until its :class:`Precision` is met (adaptive ``settings`` only).

    ``extend(n)`` returns the next ``n`` draws (chain, n, 2) of the same run (continued chains
    or fresh independent pieces, never a function of the draws so far); diagnostics are to be
    recomputed on the whole run.
    """
    precision = run_precision(spec, patient, eta, settings, independent=independent)
    while settings.adaptive and not precision.met and eta.shape[1] < settings.max_draws:
        more = precision.next_draws() - eta.shape[1]
        eta = np.concatenate([eta, extend(more)], axis=1)
        precision = run_precision(spec, patient, eta, settings, independent=independent)
    return eta, precision


def summarize_tree(tree, spec, patient_id, status, diagnostics) -> dict[str, Any]:
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


def summary_from_tree(tree, spec, patient: Patient, status, diagnostics) -> dict[str, Any]:
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


def summarize_draws(derived, point, exact, spec, patient_id, status, diagnostics) -> dict[str, Any]:
    """The output contract's entry of one patient from its draws.

    ``derived`` and ``point`` map every :data:`DERIVED` quantity to its posterior draws
    (chain, draw) and to its (MAP, a priori) values; ``exact`` is the quadrature summary of an
    exact-grid posterior (:func:`grid_draws`; its statistics replace those of the draws) or
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
    predicted = concentration(
        patient.obs_time_day,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        cl,
        v,
        dose_end_day=patient.dose_end_day,
        dose_ss_interval_day=patient.dose_ss_interval_day,
    )
    entry["observations"] = [
        {
            "time": float(obs.time_day),
            "dv": float(obs.value_mg_l),
            "cens": int(obs.censoring),
            "pred": _json_number(predicted[1, k]),
            "ipred": _json_number(predicted[0, k]),
        }
        for k, obs in enumerate(patient.observations)
    ]
    return entry


def map_and_a_priori(spec: ModelSpec, patient: Patient, eta_map: np.ndarray):
    """η (2, 2) of the MAP and the a-priori prediction (η = 0), and their derived quantities."""
    point_eta = np.stack([np.asarray(eta_map, dtype=float), np.zeros(2)])
    return point_eta, derived_quantities(spec, patient, point_eta)


class Forecaster:
    """Compiled-once individual forecasting for one model specification.

    Parameters
    ----------
    spec
        The model (see :func:`asuc_bayes.spec.config.load_model`).
    settings
        Default sampler settings (overridable per call).
    """

    def __init__(self, spec: ModelSpec, settings: SamplerSettings | None = None):
        self.spec = spec
        self.settings = settings or SamplerSettings()
        template = Patient(
            id="template",
            weight_kg=70.0,
            crp_mg_l=30.0,
            doses=(Dose(0.0, 700.0, spec.pk.default_infusion_duration_day),),
            observations=(Observation(7.0, 20.0),),
        )
        self._template = PatientData.from_patient(template)
        self._omega = omega_vector(spec)
        self._densities: dict[str, CachedDensity] = {}

    @functools.cached_property
    def model(self):
        """The PyMC model, declared on first use: compiling a density on a cache miss and
        ``sampler="pymc"`` need it; loading cached densities does not (PyMC is not imported)."""
        return build_patient_model(self.spec, self._template)

    # -- compiled densities ---------------------------------------------------------------
    def _density(self, name: Literal["eta", "sampler"]) -> CachedDensity:
        """The disk-cached C callback of the η density (MAP) or the sampled density (NUTS),
        loaded or compiled on first use (see :mod:`asuc_bayes.graphs.nutpie_density`)."""
        if name not in self._densities:
            key = repr(self.spec)
            if name == "eta":
                self._densities[name] = eta_density(lambda: self.model, self.spec, key)
            else:
                self._densities[name] = sampler_density(lambda: self.model, key)
        return self._densities[name]

    # -- data binding -------------------------------------------------------------------
    def _bind(self, data: dict[str, np.ndarray], whitening: dict[str, np.ndarray]) -> None:
        coords = {
            "obs": range(len(data["obs_time_day"])),
            "dose": range(len(data["dose_time_day"])),
        }
        with self.model:
            pm.set_data({**data, **whitening}, coords=coords)

    # -- MAP ----------------------------------------------------------------------------
    def _maximize(self, fun, starts, bound: float) -> scipy.optimize.OptimizeResult:
        """Maximise ``fun`` (value, gradient) from several starts within ±``bound``."""

        def negative(x):
            value, gradient = fun(x)  # -inf where the density cannot be evaluated
            if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
                return np.inf, np.zeros_like(x)
            return -float(value), -np.asarray(gradient, dtype=float)

        best = None
        for start in starts:
            result = scipy.optimize.minimize(
                negative,
                np.asarray(start, dtype=float),
                jac=True,
                method="L-BFGS-B",
                bounds=[(-bound, bound)] * len(start),
                options={"gtol": 1e-9, "ftol": 1e-14, "maxiter": 500},
            )
            if best is None or result.fun < best.fun:
                best = result
        return best

    def map_estimate(self, patient: Patient, starts=None) -> dict[str, Any]:
        """Posterior mode of η (L-BFGS from several starts) and its Laplace covariance.

        ``starts``: the points to climb from (default: the highest local maxima of a coarse
        grid scan, :func:`asuc_bayes.inference.grid.scan_maxima`).
        """
        with single_threaded_blas():
            return self._map_estimate(patient, starts)

    def _map_estimate(self, patient: Patient, starts=None) -> dict[str, Any]:
        data = PatientData.from_patient(patient).as_data()
        density = self._density("eta")
        buffer = pack_data({**data, **IDENTITY_WHITENING})

        def value_and_gradient(eta):
            return density.evaluate(eta, buffer)

        omega = self._omega
        if starts is None:
            starts = scan_maxima(self.spec, patient) or [np.zeros(2)]
        result = self._maximize(value_and_gradient, starts, bound=ETA_BOUND_SD * omega.max())
        hessian = finite_difference_hessian(value_and_gradient, result.x)
        try:
            covariance = np.linalg.inv(-hessian)
            np.linalg.cholesky(covariance)
            laplace_ok = True
        except np.linalg.LinAlgError:
            covariance = np.full((2, 2), np.nan)
            laplace_ok = False
        return {
            "eta": result.x,
            "log_density": -float(result.fun),
            "covariance": covariance,
            "laplace_ok": laplace_ok,
            "optimizer_success": bool(result.success),
        }

    def _whitening(self, patient: Patient, eta_map: np.ndarray) -> dict[str, np.ndarray]:
        """Mode and Laplace Cholesky factor of the posterior in the sampler's coordinates."""
        density = self._density("sampler")
        data = PatientData.from_patient(patient).as_data()
        buffer = pack_data({**data, **IDENTITY_WHITENING})

        def value_and_gradient(coordinates):
            return density.evaluate(coordinates, buffer)

        log_relative = np.array([eta_map[0] - eta_map[1], eta_map[1]])
        start = log_relative_to_sampler(log_relative)
        result = self._maximize(value_and_gradient, [start], bound=50.0)
        hessian = finite_difference_hessian(value_and_gradient, result.x)
        try:
            chol = np.linalg.cholesky(np.linalg.inv(-hessian))
        except np.linalg.LinAlgError:
            chol = np.diag(self._omega)
        return {"eta_shift": result.x, "eta_chol": chol}

    # -- sampling -----------------------------------------------------------------------
    def _sample_once(self, data, whitening, settings: SamplerSettings, target_accept, seed):
        if settings.sampler == "nutpie":
            import nutpie

            compiled = self._density("sampler").compiled_model({**data, **whitening})
            trace = nutpie.sample(
                compiled,
                draws=settings.initial_draws,
                tune=settings.tune,
                chains=settings.chains,
                cores=settings.cores,
                seed=seed,
                progress_bar=False,
                target_accept=target_accept,
                save_warmup=False,
                return_raw_trace=True,  # arrow batches: ~60 ms faster than nutpie's DataTree
            )
            whitened, stats = _nutpie_draws(trace, "eta_whitened", settings)
            eta = eta_from_whitened(whitened, whitening["eta_shift"], whitening["eta_chol"])
        else:
            self._bind(data, whitening)
            trace = pm.sample(
                draws=settings.initial_draws,
                tune=settings.tune,
                chains=settings.chains,
                cores=settings.cores or 1,
                random_seed=seed,
                nuts_sampler="pymc",
                target_accept=target_accept,
                progressbar=False,
                quiet=True,
                compute_convergence_checks=False,
                var_names=["eta"],
                model=self.model,
            )
            eta = np.asarray(trace["posterior"]["eta"].values, dtype=float)
            stats = {
                name: np.asarray(trace["sample_stats"][name].values)
                for name in SAMPLE_STATS
                if name in trace["sample_stats"]
            }
        return eta, int(stats["diverging"].sum()), stats

    def forecast(
        self,
        patient: Patient,
        *,
        random_seed: int = 0,
        settings: SamplerSettings | None = None,
    ) -> PatientForecast:
        """Full posterior, MAP, a-priori prediction and diagnostics for one patient."""
        with single_threaded_blas():
            return self._forecast(patient, random_seed, settings or self.settings)

    def _forecast(
        self, patient: Patient, random_seed: int, settings: SamplerSettings
    ) -> PatientForecast:
        if settings.method == "auto":
            # The scan's modes are the local maxima of the same log posterior (tested equal
            # to the compiled one): the MAP is climbed from them, never from fixed points
            # (which missed it for 6 % of simulated patients, see scan_maxima).
            modes = find_modes(self.spec, patient)
            map_result = self.map_estimate(patient, starts=[eta for eta, _, _ in modes] or None)
        else:
            modes = []
            map_result = self.map_estimate(patient)
        if settings.method == "exact_grid" or len(modes) > 1:
            method = "exact_grid"
            grid = grid_posterior(self.spec, patient, n_points=settings.grid_points)
            eta, exact, precision = _precise_grid_draws(
                self.spec, patient, grid, settings, random_seed
            )
            trace = None
            checks = _convergence(eta, 0)
            attempts = []
        else:
            exact = None
            method, eta, trace, attempts, precision = self._sample_mcmc(
                patient, map_result, settings, random_seed
            )
            checks = attempts[-1]
        sampler = {"exact_grid": "exact_grid", "independence_mh": "imh"}.get(
            method, "pymc" if settings.sampler == "pymc" else "nutpie"
        )
        diagnostics = {
            "rhat_max": checks["rhat_max"],
            "ess_bulk_min": checks["ess_bulk_min"],
            "divergences": checks["divergences"],
            "chains": settings.chains,
            "draws": int(eta.shape[1]),
            "tune": {"nuts": settings.tune, "independence_mh": IMH_BURN}.get(method, 0),
            "method": method,
            "modes": len(modes) if modes else None,
            "target_accept": attempts[-1]["target_accept"] if attempts else None,
            "sampler": sampler,
            "attempts": len(attempts),
            "precision": precision.as_dict(),
        }
        if attempts and attempts[0].get("acceptance") is not None:
            diagnostics["imh_acceptance"] = attempts[0]["acceptance"]
        status = "ok" if checks["passed"] else "unconverged"
        return _forecast_result(
            self.spec,
            patient,
            eta,
            trace,
            map_result,
            diagnostics,
            status,
            settings,
            random_seed,
            exact,
        )

    def _sample_mcmc(self, patient, map_result, settings, random_seed):
        """(method, η draws, sampler statistics, attempts, precision): NUTS, or with
        ``sampler="imh"`` the independence sampler first and NUTS only if it fails a gate.

        An adaptive run (``settings.draws`` None) that passes the gates at its first
        :data:`DEFAULT_DRAWS` draws is then extended (:func:`until_precise`: IMH chains
        continued, NUTS by further independently seeded runs of the same chains appended) and
        the gates are applied again to the whole run."""
        whitening = self._whitening(patient, map_result["eta"])
        if settings.sampler != "imh":
            return self._sample_nuts_precise(patient, settings, random_seed, whitening, [])
        run, to_eta = self._independence_run(patient, whitening, settings, random_seed)
        eta = to_eta(run.extend(settings.initial_draws))
        checks = _convergence(eta, 0)
        if checks["passed"]:
            eta, precision = until_precise(
                self.spec, patient, eta, settings, lambda n: to_eta(run.extend(n))
            )
            checks = _convergence(eta, 0)
        attempt = {
            "sampler": "imh",
            "target_accept": None,
            "seed": random_seed,
            "acceptance": float(run.acceptance.mean()),
            **checks,
        }
        if checks["passed"]:
            trace = {"diverging": np.zeros(eta.shape[:2], dtype=bool)}
            return "independence_mh", eta, trace, [attempt], precision
        nuts = replace(settings, sampler="nutpie")
        return self._sample_nuts_precise(patient, nuts, random_seed, whitening, [attempt])

    def _sample_nuts_precise(self, patient, settings, random_seed, whitening, attempts):
        """NUTS (:meth:`_sample_nuts`), extended while adaptive and short of the precision
        target by runs of ``settings.chains`` chains with seeds derived from the last
        attempt's, appended along the draws (each piece tuned and stationary on its own)."""
        eta, trace, nuts_attempts = self._sample_nuts(patient, settings, random_seed, whitening)
        last = nuts_attempts[-1]
        if not last["passed"]:
            precision = run_precision(self.spec, patient, eta, settings)
            return "nuts", eta, trace, [*attempts, *nuts_attempts], precision
        data = PatientData.from_patient(patient).as_data()
        traces = [trace]

        def extend(n: int) -> np.ndarray:
            seed = np.random.SeedSequence([last["seed"], len(traces)]).generate_state(1)[0]
            piece = replace(settings, draws=n)
            piece_eta, _, piece_trace = self._sample_once(
                data, whitening, piece, last["target_accept"], int(seed)
            )
            traces.append(piece_trace)
            return piece_eta

        eta, precision = until_precise(self.spec, patient, eta, settings, extend)
        trace = {k: np.concatenate([t[k] for t in traces], axis=1) for k in trace}
        checks = _convergence(eta, int(trace["diverging"].sum()))
        nuts_attempts[-1] = {**last, **checks}
        return "nuts", eta, trace, [*attempts, *nuts_attempts], precision

    def _independence_run(self, patient, whitening, settings, random_seed):
        """Independence Metropolis–Hastings (:mod:`asuc_bayes.inference.independence`) on the
        density NUTS
        samples — the posterior in the whitened softplus coordinates z, here evaluated for all
        proposals at once with the NumPy log posterior of :mod:`asuc_bayes.inference.grid` (the same
        density as the PyMC graph, tested) and the coordinates' Jacobian.

        Returns the continuable chains
        (:class:`~asuc_bayes.inference.independence.IndependenceChains`)
        and the map of their draws z to η."""
        shift, chol = whitening["eta_shift"], whitening["eta_chol"]

        def log_target(z):
            log_relative, log_jacobian = sampler_to_log_relative(shift + z @ chol.T)
            eta_cl = log_relative[:, 0] + log_relative[:, 1]
            return log_posterior(self.spec, patient, eta_cl, log_relative[:, 1]) + (
                log_jacobian.sum(axis=1)
            )

        proposal = MixtureProposal(
            [
                StudentTProposal(len(RANDOM_EFFECTS), IMH_DF, IMH_SCALE),
                PriorProposal(self._omega, shift, chol),
            ],
            [1.0 - IMH_PRIOR_WEIGHT, IMH_PRIOR_WEIGHT],
        )
        run = IndependenceChains(
            log_target,
            proposal,
            chains=settings.chains,
            burn=IMH_BURN,
            thin=IMH_THIN,
            random_seed=random_seed,
        )
        return run, lambda z: eta_from_whitened(z, shift, chol)

    def _sample_nuts(self, patient, settings, random_seed, whitening):
        """NUTS in whitened coordinates; one escalated retry if a gate fails."""
        data = PatientData.from_patient(patient).as_data()
        attempts = []
        target_accept = settings.target_accept
        seed = random_seed
        while True:
            eta, diverging, trace = self._sample_once(
                data, whitening, settings, target_accept, seed
            )
            checks = _convergence(eta, diverging)
            attempts.append({"target_accept": target_accept, "seed": seed, **checks})
            escalate = settings.escalate_target_accept
            if checks["passed"] or escalate is None or target_accept >= escalate:
                return eta, trace, attempts
            target_accept, seed = escalate, seed + 1


class PriorProposal:
    """The prior of η, N(0, diag(ω²)), as a distribution of the whitened sampler coordinates
    z (η → (ln k/k_typ, ln V/V_typ) → softplus coordinates c → z = L⁻¹(c − m)).

    Its density in z is N(η(z); 0, Ω) · |dη/dz|, the same change of variables as the sampled
    density's, so target/proposal = the patient's likelihood: bounded.
    """

    def __init__(self, omega: np.ndarray, shift: np.ndarray, chol: np.ndarray):
        self.omega = np.asarray(omega, dtype=float)
        self.shift = np.asarray(shift, dtype=float)
        self.chol = np.asarray(chol, dtype=float)
        self._log_det = float(np.log(np.abs(np.linalg.det(self.chol))))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        eta = rng.standard_normal((n, 2)) * self.omega
        log_relative = np.column_stack([eta[:, 0] - eta[:, 1], eta[:, 1]])
        coordinates = log_relative_to_sampler(log_relative)
        return np.linalg.solve(self.chol, (coordinates - self.shift).T).T

    def log_density(self, z: np.ndarray) -> np.ndarray:
        log_relative, log_jacobian = sampler_to_log_relative(self.shift + z @ self.chol.T)
        eta = np.column_stack([log_relative[:, 0] + log_relative[:, 1], log_relative[:, 1]])
        normal = (
            -0.5 * np.sum((eta / self.omega) ** 2, axis=1)
            - np.sum(np.log(self.omega))
            - np.log(2.0 * np.pi)
        )
        return normal + log_jacobian.sum(axis=1) + self._log_det


def grid_draws(
    grid: GridPosterior, settings: SamplerSettings, random_seed: int
) -> tuple[np.ndarray, xr.Dataset]:
    """Independent draws (chain, draw, 2) from an exact quadrature posterior, and its exact
    summary statistics (quantiles by quadrature, not from the draws)."""
    draws = grid.sample(settings.chains * settings.initial_draws, random_seed=random_seed)
    summary = grid.summary()
    exact = xr.Dataset(
        {name: (("statistic",), [summary[name][k] for k in STATISTICS]) for name in DERIVED},
        coords={"statistic": list(STATISTICS)},
    )
    exact["p_high_risk"] = summary["p_high_risk"]
    exact.attrs["grid_points"] = len(grid.eta_cl)
    shape = (settings.chains, settings.initial_draws, len(RANDOM_EFFECTS))
    return draws.reshape(shape), exact


def _precise_grid_draws(spec, patient, grid, settings, random_seed):
    """:func:`grid_draws`, extended while adaptive by further independent draws (seeds derived
    from ``random_seed``) until their i.i.d. :class:`Precision` is met: (η, exact, precision)."""
    eta, exact = grid_draws(grid, settings, random_seed)
    pieces = [0]

    def extend(n: int) -> np.ndarray:
        pieces.append(n)
        seed = np.random.SeedSequence([random_seed, len(pieces)])
        more = grid.sample(settings.chains * n, random_seed=seed)
        return more.reshape(settings.chains, n, len(RANDOM_EFFECTS))

    eta, precision = until_precise(spec, patient, eta, settings, extend, independent=True)
    return eta, exact, precision


def exact_forecast(
    spec: ModelSpec,
    patient: Patient,
    *,
    settings: SamplerSettings | None = None,
    random_seed: int = 0,
    grid: GridPosterior | None = None,
) -> PatientForecast:
    """The forecast by exact 2-D quadrature alone: nothing compiled, no Monte Carlo error in
    the summaries.

    The posterior is :func:`asuc_bayes.inference.grid.grid_posterior` (``settings.grid_points`` per
    axis;
    or the given ``grid``), its draws are independent, the MAP is the polished grid mode and
    the Laplace covariance comes from SciPy's finite-difference Hessian of the log posterior.
    Used where many alternative models are compared for one patient (sensitivity analyses):
    their differences are then not confounded with sampling noise.

    Examples
    --------
    >>> from asuc_bayes.spec.config import load_model
    >>> from asuc_bayes.data.dataset import Dose, Observation, Patient
    >>> p = Patient("x", 63.0, 30.0, (Dose(0.0, 600.0, 1 / 12),), (Observation(7.0, 14.5),))
    >>> result = exact_forecast(load_model(), p, settings=SamplerSettings(draws=200))
    >>> result.diagnostics["method"], result.status
    ('exact_grid', 'ok')
    """
    with single_threaded_blas():
        return _exact_forecast(spec, patient, settings, random_seed, grid)


def _exact_forecast(spec, patient, settings, random_seed, grid) -> PatientForecast:
    import scipy.differentiate

    settings = settings or SamplerSettings(method="exact_grid")
    if grid is None:
        grid = grid_posterior(spec, patient, n_points=settings.grid_points)
    eta, exact, precision = _precise_grid_draws(spec, patient, grid, settings, random_seed)
    mode = grid.mode()

    def log_density(x):
        return grid.log_density_at(x[0], x[1])

    hessian = scipy.differentiate.hessian(log_density, mode).ddf
    try:
        covariance = np.linalg.inv(-hessian)
        np.linalg.cholesky(covariance)
        laplace_ok = True
    except np.linalg.LinAlgError:
        covariance, laplace_ok = np.full((2, 2), np.nan), False
    map_result = {
        "eta": mode,
        "log_density": float(log_density(mode)),
        "covariance": covariance,
        "laplace_ok": laplace_ok,
    }
    checks = _convergence(eta, 0)
    diagnostics = {
        "rhat_max": checks["rhat_max"],
        "ess_bulk_min": checks["ess_bulk_min"],
        "divergences": 0,
        "chains": settings.chains,
        "draws": int(eta.shape[1]),
        "tune": 0,
        "method": "exact_grid",
        "modes": None,
        "target_accept": None,
        "sampler": "exact_grid",
        "attempts": 0,
        "precision": precision.as_dict(),
    }
    status = "ok" if checks["passed"] else "unconverged"
    return _forecast_result(
        spec, patient, eta, None, map_result, diagnostics, status, settings, random_seed, exact
    )


def _forecast_result(
    spec, patient, eta, trace, map_result, diagnostics, status, settings, seed, exact
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
    spec, patient, eta, trace, map_result, diagnostics, status, settings, seed, derived=None
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
    curve = concentration(
        time_day,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        derived["cl"][:, curve_draws],
        derived["v"][:, curve_draws],
        dose_end_day=patient.dose_end_day,
        dose_ss_interval_day=patient.dose_ss_interval_day,
    )
    point_eta, point = map_and_a_priori(spec, patient, map_result["eta"])
    point_curve = concentration(
        time_day,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        point["cl"],
        point["v"],
        dose_end_day=patient.dose_end_day,
        dose_ss_interval_day=patient.dose_ss_interval_day,
    )
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


_BLAS_CONTROLLER = None


def single_threaded_blas():
    """Context limiting BLAS to one thread.

    The linear algebra of these 2-D problems is tiny; OpenBLAS threads spinning for it on a
    busy 2-core machine made the MAP ~14x slower (366 ms instead of 26 ms per patient,
    measured with other jobs running).
    """
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        import threadpoolctl

        _BLAS_CONTROLLER = threadpoolctl.ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


def finite_difference_hessian(value_and_gradient, x) -> np.ndarray:
    """Hessian at ``x`` as the central difference of the exact gradient (relative error
    ~1e-8 for these smooth 2-D densities), symmetrised."""
    x = np.asarray(x, dtype=float)
    steps = 1e-5 * (1.0 + np.abs(x))
    columns = []
    for i, step in enumerate(steps):
        offset = np.zeros_like(x)
        offset[i] = step
        forward = value_and_gradient(x + offset)[1]
        backward = value_and_gradient(x - offset)[1]
        columns.append((forward - backward) / (2 * step))
    matrix = np.column_stack(columns)
    return 0.5 * (matrix + matrix.T)


#: Sampler statistics kept in the ``sample_stats`` group (those the backend reports).
SAMPLE_STATS = ("diverging", "step_size", "tree_depth", "depth", "n_steps", "energy")


def _nutpie_draws(
    raw_trace, variable: str, settings: SamplerSettings
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draws (chain, draw, 2) of ``variable`` and per-draw statistics from nutpie's raw trace."""
    import pyarrow

    chains, draws = settings.chains, settings.initial_draws
    draw_batches, stat_batches = raw_trace.get_arrow_trace()
    eta = np.empty((chains, draws, len(RANDOM_EFFECTS)))
    stats: dict[str, np.ndarray] = {}
    for chain, (draw_batch, stat_batch) in enumerate(zip(draw_batches, stat_batches, strict=True)):
        tuning = pyarrow.array(stat_batch.column("tuning")).to_numpy(zero_copy_only=False)
        keep = ~tuning.astype(bool)
        values = pyarrow.array(draw_batch.column(variable)).flatten().to_numpy(zero_copy_only=False)
        eta[chain] = values.reshape(-1, len(RANDOM_EFFECTS))[keep]
        for name in SAMPLE_STATS:
            if name in stat_batch.column_names:
                column = pyarrow.array(stat_batch.column(name)).to_numpy(zero_copy_only=False)
                stats.setdefault(name, np.empty((chains, draws), dtype=column.dtype))
                stats[name][chain] = column[keep]
    return eta, stats


def curve_times(spec: ModelSpec, patient: Patient) -> np.ndarray:
    """Plot grid: every half day to day 90 plus each infusion's end (the peaks)."""
    end = max(CURVE_END_DAY, spec.tte.auc_window_day[1], float(patient.dose_time_day.max()) + 14)
    grid = np.linspace(0.0, end, round(end * 2) + 1)
    peaks = patient.dose_time_day + patient.dose_duration_day
    return np.unique(np.concatenate([grid, peaks[peaks <= end]]))


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
        sampler={
            "sampler": settings.sampler,
            "draws": settings.initial_draws,
            "adaptive_draws": settings.adaptive,
            "tune": settings.tune,
            "chains": settings.chains,
            "target_accept": settings.target_accept,
        },
    )


def _convergence(eta: np.ndarray, diverging: int) -> dict[str, Any]:
    """R-hat (rank-normalised, split) and bulk ESS of each random effect; divergences."""
    rhats, esss = rank_diagnostics(eta)  # = az.rhat / az.ess(method="bulk"), faster (tested)
    rhat = float(np.nan if np.isnan(rhats).any() else rhats.max())
    ess = float(np.nan if np.isnan(esss).any() else esss.min())
    passed = diverging == 0 and rhat <= RHAT_MAX and ess >= ESS_BULK_MIN
    return {"rhat_max": rhat, "ess_bulk_min": ess, "divergences": diverging, "passed": passed}


def with_settings(settings: SamplerSettings, **changes) -> SamplerSettings:
    """A copy of ``settings`` with ``changes`` applied (None values ignored)."""
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})


def patient_seed(random_seed: int, patient_id: str) -> int:
    """Seed of one patient, from the run's seed and the patient's ID (not its position), so a
    patient gets the same draws alone or in any batch."""
    sequence = np.random.SeedSequence([random_seed, zlib.crc32(patient_id.encode("utf-8"))])
    return int(sequence.generate_state(1)[0])


_FORECASTERS: dict[ModelSpec, Forecaster] = {}


def forecaster_for(spec: ModelSpec) -> Forecaster:
    """The process-wide :class:`Forecaster` of ``spec``, compiled on first use."""
    if spec not in _FORECASTERS:
        _FORECASTERS[spec] = Forecaster(spec)
    return _FORECASTERS[spec]


def forecast_patients(
    patients,
    spec: ModelSpec,
    *,
    settings: SamplerSettings | None = None,
    random_seed: int = 0,
    forecaster: Forecaster | None = None,
    progress=None,
) -> list[PatientForecast]:
    """Forecast several patients with one compiled model.

    Each patient's seed derives from ``random_seed`` and its ID (:func:`patient_seed`).
    ``progress(done, total)``, if given, is called after each patient.
    """
    forecaster = forecaster or forecaster_for(spec)
    patients = list(patients)
    results = []
    for patient in patients:
        seed = patient_seed(random_seed, patient.id)
        results.append(forecaster.forecast(patient, random_seed=seed, settings=settings))
        if progress is not None:
            progress(len(results), len(patients))
    return results


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


def save_results(results: list[PatientForecast] | dict[str, xr.DataTree], path) -> None:
    """Write all patients' DataTrees to one netCDF file (one group per patient)."""
    results_tree(results).to_netcdf(path, engine="h5netcdf")


def load_results(path) -> xr.DataTree:
    """Read back a file written by :func:`save_results`; each patient's groups and provenance
    are checked (:func:`asuc_bayes.provenance.check_result_tree`)."""
    tree = xr.load_datatree(path, engine="h5netcdf")
    for patient_id, node in tree.children.items():
        check_result_tree(node, "patient forecast", f"{path}: patient {patient_id}")
    return tree
