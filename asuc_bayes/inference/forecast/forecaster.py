"""The compiled-once individual forecaster of the default model (:class:`Forecaster`): MAP
and Laplace approximation, the default sampler (independence Metropolis–Hastings) with NUTS
as the fallback, the exact grid for multimodal posteriors, and the adaptive run length.

One :class:`Forecaster` per model specification: the PyMC model is declared once, the
log density (for MAP) and the nutpie sampler are compiled once, and each patient is bound
with ``pm.set_data`` / ``with_data``.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from asuc_bayes._lazy import lazy_module
from asuc_bayes.data.dataset import Dose, Observation, Patient
from asuc_bayes.graphs.model import (
    RANDOM_EFFECTS,
    PatientData,
    build_patient_model,
    log_relative_to_sampler,
    omega_vector,
)
from asuc_bayes.graphs.nutpie_density import (
    CachedDensity,
    eta_density,
    eta_from_whitened,
    pack_data,
    sampler_density,
)
from asuc_bayes.inference.forecast.adaptive import convergence, run_precision, until_precise
from asuc_bayes.inference.forecast.exact import precise_grid_draws
from asuc_bayes.inference.forecast.imh import IMH_BURN, independence_run
from asuc_bayes.inference.forecast.numerics import (
    finite_difference_hessian,
    maximize,
    single_threaded_blas,
)
from asuc_bayes.inference.forecast.results import PatientForecast, forecast_result
from asuc_bayes.inference.forecast.settings import SamplerSettings
from asuc_bayes.inference.grid import find_modes, grid_posterior, scan_maxima
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "ETA_BOUND_SD",
    "IDENTITY_WHITENING",
    "SAMPLE_STATS",
    "Forecaster",
    "nutpie_draws",
]

# Imported on first use: a forecast from cached densities needs none of them (start-up).
pm = lazy_module("pymc")

#: The MAP is searched within this many prior SDs of η = 0 (prior density e^-50 there).
ETA_BOUND_SD = 10.0
#: Whitening data of the un-whitened sampler coordinates (shift 0, identity Cholesky factor).
IDENTITY_WHITENING = {"eta_shift": np.zeros(2), "eta_chol": np.eye(2)}


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
        result = maximize(value_and_gradient, starts, bound=ETA_BOUND_SD * omega.max())
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
        result = maximize(value_and_gradient, [start], bound=50.0)
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
            whitened, stats = nutpie_draws(trace, "eta_whitened", settings)
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
            eta, exact, precision = precise_grid_draws(
                self.spec, patient, grid, settings, random_seed
            )
            trace = None
            checks = convergence(eta, 0)
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
        return forecast_result(
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
        :data:`~.settings.DEFAULT_DRAWS` draws is then extended (:func:`until_precise`: IMH chains
        continued, NUTS by further independently seeded runs of the same chains appended) and
        the gates are applied again to the whole run."""
        whitening = self._whitening(patient, map_result["eta"])
        if settings.sampler != "imh":
            return self._sample_nuts_precise(patient, settings, random_seed, whitening, [])
        run, to_eta = independence_run(
            self.spec, patient, self._omega, whitening, settings, random_seed
        )
        eta = to_eta(run.extend(settings.initial_draws))
        checks = convergence(eta, 0)
        if checks["passed"]:
            eta, precision = until_precise(
                self.spec, patient, eta, settings, lambda n: to_eta(run.extend(n))
            )
            checks = convergence(eta, 0)
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
        checks = convergence(eta, int(trace["diverging"].sum()))
        nuts_attempts[-1] = {**last, **checks}
        return "nuts", eta, trace, [*attempts, *nuts_attempts], precision

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
            checks = convergence(eta, diverging)
            attempts.append({"target_accept": target_accept, "seed": seed, **checks})
            escalate = settings.escalate_target_accept
            if checks["passed"] or escalate is None or target_accept >= escalate:
                return eta, trace, attempts
            target_accept, seed = escalate, seed + 1


#: Sampler statistics kept in the ``sample_stats`` group (those the backend reports).
SAMPLE_STATS = ("diverging", "step_size", "tree_depth", "depth", "n_steps", "energy")


def nutpie_draws(
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
