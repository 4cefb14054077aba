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

import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import arviz as az
import numpy as np
import pymc as pm
import scipy.optimize
import xarray as xr

from asuc_bayes._version import __version__
from asuc_bayes.config import ModelSpec
from asuc_bayes.dataset import Dose, Observation, Patient
from asuc_bayes.grid import GridPosterior, find_modes, grid_posterior
from asuc_bayes.kernels import (
    AUC_FLOOR_MG_DAY_L,
    auc_interval,
    concentration,
    individual_pk_parameters,
    weibull_risk,
)
from asuc_bayes.model import (
    RANDOM_EFFECTS,
    PatientData,
    build_patient_model,
    log_relative_to_sampler,
    omega_vector,
)
from asuc_bayes.nutpie_density import (
    CachedDensity,
    eta_density,
    eta_from_whitened,
    pack_data,
    sampler_density,
)

__all__ = [
    "DERIVED",
    "Forecaster",
    "PatientForecast",
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
    "summary_statistics",
]

#: Quantities reported for every patient (posterior, MAP, a priori), with units.
DERIVED = {
    "cl": "L/day",
    "v": "L",
    "auc_w2_4": "mg*day/L",
    "ln_auc_cl": "ln((mg*day/L)/(L/day))",
    "risk_90d": "probability",
}
#: Summary statistics of every posterior quantity (the output contract's S).
STATISTICS = ("mean", "sd", "q2.5", "q50", "q97.5")
RHAT_MAX = 1.01
#: The MAP is searched within this many prior SDs of η = 0 (prior density e^-50 there).
ETA_BOUND_SD = 10.0
ESS_BULK_MIN = 400.0
CURVE_END_DAY = 90.0
#: Concentration curves are kept for every CURVE_THIN-th draw (1000 curves by default): the
#: curves dominate the cost of a result and bands for plots need no more.
CURVE_THIN = 4
#: Whitening data of the un-whitened sampler coordinates (shift 0, identity Cholesky factor).
IDENTITY_WHITENING = {"eta_shift": np.zeros(2), "eta_chol": np.eye(2)}


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings; ``escalate_target_accept`` is used for a second attempt when the first
    has divergences or fails the R-hat/ESS gates."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.95
    escalate_target_accept: float | None = 0.99
    sampler: Literal["nutpie", "pymc"] = "nutpie"
    cores: int | None = None
    method: Literal["auto", "nuts", "exact_grid"] = "auto"
    grid_points: int = 401

    def __post_init__(self):
        for name in ("draws", "tune", "chains"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (1 if name != "tune" else 0):
                raise ValueError(
                    f"sampler setting '{name}' must be a positive integer, got {value!r}"
                )
        if self.chains < 2:
            raise ValueError("sampler setting 'chains' must be at least 2 (R-hat needs them)")
        if not 0.5 <= self.target_accept < 1:
            raise ValueError(f"target_accept must be in [0.5, 1), got {self.target_accept}")
        if self.sampler not in ("nutpie", "pymc"):
            raise ValueError(f"sampler must be 'nutpie' or 'pymc', got {self.sampler!r}")
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
    )
    ln_ratio = np.log(np.maximum(auc, AUC_FLOOR_MG_DAY_L)) - np.log(cl)
    risk = weibull_risk(
        tte.horizon_day,
        ln_ratio,
        baseline_lambda=tte.baseline_lambda,
        gamma=tte.gamma.estimate,
        beta=tte.beta.estimate,
        x_ref=tte.x_ref,
        form=tte.form,
    )
    return {"cl": cl, "v": v, "auc_w2_4": auc, "ln_auc_cl": ln_ratio, "risk_90d": risk}


@dataclass
class PatientForecast:
    """The forecast of one patient: a DataTree plus the summary of the output contract."""

    patient: Patient
    tree: xr.DataTree
    status: Literal["ok", "unconverged"]
    diagnostics: dict[str, Any]
    spec: ModelSpec = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """The patient's entry of the JSON output contract."""
        return summarize_tree(self.tree, self.spec, self.patient.id, self.status, self.diagnostics)


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


def summarize_tree(tree, spec, patient_id, status, diagnostics) -> dict[str, Any]:
    posterior = tree["posterior"]
    points = tree["point_estimates"]
    threshold = spec.tte.high_risk_threshold
    ln_ratio = posterior["ln_auc_cl"].values
    if "exact_summary" in tree.children:  # quadrature posterior: exact, no Monte Carlo error
        exact = tree["exact_summary"]
        stats = {
            name: {k: float(exact[name].sel(statistic=k)) for k in STATISTICS} for name in DERIVED
        }
        p_high_risk = float(exact["p_high_risk"])
    else:
        stats = {name: summary_statistics(posterior[name].values) for name in DERIVED}
        p_high_risk = float(np.mean(ln_ratio < threshold))
    median = stats["ln_auc_cl"]["q50"]
    return {
        "id": patient_id,
        "status": status,
        "posterior": stats,
        "p_high_risk": p_high_risk,
        "risk_class": "high" if median < threshold else "low",
        "map": {name: float(points[name].sel(estimate="map")) for name in DERIVED},
        "a_priori": {name: float(points[name].sel(estimate="a_priori")) for name in DERIVED},
        "diagnostics": diagnostics,
    }


class Forecaster:
    """Compiled-once individual forecasting for one model specification.

    Parameters
    ----------
    spec
        The model (see :func:`asuc_bayes.config.load_model`).
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
        self.model = build_patient_model(spec, PatientData.from_patient(template))
        self._omega = omega_vector(spec)
        self._densities: dict[str, CachedDensity] = {}

    # -- compiled densities ---------------------------------------------------------------
    def _density(self, name: Literal["eta", "sampler"]) -> CachedDensity:
        """The disk-cached C callback of the η density (MAP) or the sampled density (NUTS),
        loaded or compiled on first use (see :mod:`asuc_bayes.nutpie_density`)."""
        if name not in self._densities:
            key = repr(self.spec)
            if name == "eta":
                self._densities[name] = eta_density(self.model, self.spec, key)
            else:
                self._densities[name] = sampler_density(self.model, key)
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

    def map_estimate(self, patient: Patient) -> dict[str, Any]:
        """Posterior mode of η (multi-start BFGS) and its Laplace covariance.

        Binds ``patient`` to the model as a side effect.
        """
        with single_threaded_blas():
            return self._map_estimate(patient)

    def _map_estimate(self, patient: Patient) -> dict[str, Any]:
        data = PatientData.from_patient(patient).as_data()
        self._bind(data, IDENTITY_WHITENING)
        density = self._density("eta")
        buffer = pack_data({**data, **IDENTITY_WHITENING})

        def value_and_gradient(eta):
            return density.evaluate(eta, buffer)

        omega = self._omega
        starts = [np.zeros(2)] + [
            np.array([sign_cl * omega[0], sign_v * 1.5 * omega[1]])
            for sign_cl in (-1.0, 1.0)
            for sign_v in (-1.0, 1.0)
        ]
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
                draws=settings.draws,
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
                draws=settings.draws,
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
        map_result = self.map_estimate(patient)
        modes = find_modes(self.spec, patient) if settings.method == "auto" else []
        if settings.method == "exact_grid" or len(modes) > 1:
            method = "exact_grid"
            eta, exact = grid_draws(
                grid_posterior(self.spec, patient, n_points=settings.grid_points),
                settings,
                random_seed,
            )
            trace = None
            checks = _convergence(eta, 0)
            attempts = []
        else:
            method, exact = "nuts", None
            eta, trace, attempts = self._sample_nuts(patient, map_result, settings, random_seed)
            checks = attempts[-1]
        diagnostics = {
            "rhat_max": checks["rhat_max"],
            "ess_bulk_min": checks["ess_bulk_min"],
            "divergences": checks["divergences"],
            "chains": settings.chains,
            "draws": settings.draws,
            "tune": settings.tune if method == "nuts" else 0,
            "method": method,
            "modes": len(modes) if modes else None,
            "target_accept": attempts[-1]["target_accept"] if attempts else None,
            "sampler": settings.sampler if method == "nuts" else "exact_grid",
            "attempts": len(attempts),
        }
        status = "ok" if checks["passed"] else "unconverged"
        tree = forecast_tree(
            self.spec, patient, eta, trace, map_result, diagnostics, status, settings, random_seed
        )
        if exact is not None:
            tree["exact_summary"] = exact
        return PatientForecast(
            patient=patient, tree=tree, status=status, diagnostics=diagnostics, spec=self.spec
        )

    def _sample_nuts(self, patient, map_result, settings, random_seed):
        """NUTS in whitened coordinates; one escalated retry if a gate fails."""
        data = PatientData.from_patient(patient).as_data()
        whitening = self._whitening(patient, map_result["eta"])
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


def grid_draws(
    grid: GridPosterior, settings: SamplerSettings, random_seed: int
) -> tuple[np.ndarray, xr.Dataset]:
    """Independent draws (chain, draw, 2) from an exact quadrature posterior, and its exact
    summary statistics (quantiles by quadrature, not from the draws)."""
    draws = grid.sample(settings.chains * settings.draws, random_seed=random_seed)
    summary = grid.summary()
    exact = xr.Dataset(
        {name: (("statistic",), [summary[name][k] for k in STATISTICS]) for name in DERIVED},
        coords={"statistic": list(STATISTICS)},
    )
    exact["p_high_risk"] = summary["p_high_risk"]
    exact.attrs["grid_points"] = len(grid.eta_cl)
    shape = (settings.chains, settings.draws, len(RANDOM_EFFECTS))
    return draws.reshape(shape), exact


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

    The posterior is :func:`asuc_bayes.grid.grid_posterior` (``settings.grid_points`` per axis;
    or the given ``grid``), its draws are independent, the MAP is the polished grid mode and
    the Laplace covariance comes from SciPy's finite-difference Hessian of the log posterior.
    Used where many alternative models are compared for one patient (sensitivity analyses):
    their differences are then not confounded with sampling noise.

    Examples
    --------
    >>> from asuc_bayes.config import load_model
    >>> from asuc_bayes.dataset import Dose, Observation, Patient
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
    eta, exact = grid_draws(grid, settings, random_seed)
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
        "draws": settings.draws,
        "tune": 0,
        "method": "exact_grid",
        "modes": None,
        "target_accept": None,
        "sampler": "exact_grid",
        "attempts": 0,
    }
    status = "ok" if checks["passed"] else "unconverged"
    tree = forecast_tree(
        spec, patient, eta, None, map_result, diagnostics, status, settings, random_seed
    )
    tree["exact_summary"] = exact
    return PatientForecast(
        patient=patient, tree=tree, status=status, diagnostics=diagnostics, spec=spec
    )


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
    curve_draws = np.arange(0, draws, CURVE_THIN)
    curve = concentration(
        time_day,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        derived["cl"][:, curve_draws],
        derived["v"][:, curve_draws],
    )
    point_eta = np.stack([map_result["eta"], np.zeros(2)])
    point = derived_quantities(spec, patient, point_eta)
    point_curve = concentration(
        time_day,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        point["cl"],
        point["v"],
    )
    predictions = xr.Dataset(
        {
            "concentration": (("chain", "draw", "time"), curve),
            "concentration_map": (("time",), point_curve[0]),
            "concentration_a_priori": (("time",), point_curve[1]),
        },
        coords={"chain": coords["chain"], "draw": curve_draws, "time": time_day},
        attrs={"thinning": f"every {CURVE_THIN}th posterior draw (draw labels match)"},
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
        **{f"diagnostics_{k}": v for k, v in diagnostics.items() if v is not None},
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

    chains, draws = settings.chains, settings.draws
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
    """Attributes that say which model, code and settings produced a result."""
    import nutpie

    return {
        "model_name": spec.name,
        "model_label": spec.label,
        "model_sha256": spec.sha256,
        "model_variants": ",".join(spec.variants),
        "asuc_bayes_version": __version__,
        "pymc_version": pm.__version__,
        "nutpie_version": nutpie.__version__,
        "arviz_version": az.__version__,
        "sampler": settings.sampler,
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "target_accept": settings.target_accept,
        "random_seed": seed,
    }


def _convergence(eta: np.ndarray, diverging: int) -> dict[str, Any]:
    """R-hat (rank-normalised, split) and bulk ESS of each random effect; divergences."""
    dataset = xr.Dataset({"eta": (("chain", "draw", "random_effect"), eta)})
    rhat = float(np.max(az.rhat(dataset)["eta"].values))
    ess = float(np.min(az.ess(dataset, method="bulk")["eta"].values))
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


def results_tree(results: list[PatientForecast]) -> xr.DataTree:
    """One DataTree holding every patient's groups under ``/<patient id>/``."""
    children = {}
    for result in results:
        for path, node in result.tree.subtree_with_keys:
            key = result.patient.id if path == "." else f"{result.patient.id}/{path}"
            children[key] = node.to_dataset(inherit=False)
    root = xr.Dataset(attrs={"patients": ",".join(r.patient.id for r in results)})
    return xr.DataTree.from_dict({"/": root, **children})


def save_results(results: list[PatientForecast], path) -> None:
    """Write all patients' DataTrees to one netCDF file (one group per patient)."""
    results_tree(results).to_netcdf(path, engine="h5netcdf")


def load_results(path) -> xr.DataTree:
    """Read back a file written by :func:`save_results`."""
    return xr.load_datatree(path, engine="h5netcdf")
