"""Exposure per posterior draw: the draws' parameters, a regimen's dose arrays, the AUC over
the risk window and ln(AUC/CL).

For each draw the AUC over the risk window is linear in the amount of a dose (superposition
of the one-compartment model), so the exposure of a whole dose grid is the fixed regimen's
AUC plus the AUC of 1 mg times each amount.

Examples
--------
>>> from asuc_bayes.data.dataset import Dose
>>> regimen = RegimenArrays.of([Dose(0.0, 400.0, 1 / 12), Dose(14.0, 400.0, 1 / 12)])
>>> regimen.time_day.tolist(), regimen.amount_mg.tolist()
([0.0, 14.0], [400.0, 400.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asuc_bayes.data.dataset import Dose, Patient
from asuc_bayes.inference.forecast import PatientForecast
from asuc_bayes.pk.kernels import auc_interval, ln_auc_cl, weibull_parameters, weibull_risk
from asuc_bayes.spec.config import ModelSpec

__all__ = ["DrawSet", "RegimenArrays", "draws_ln_ratio", "unit_window_auc", "window_auc"]


@dataclass(frozen=True)
class DrawSet:
    """Per-draw individual and time-to-event parameters (flattened over chain and draw).

    The TTE parameters and the residual SD are arrays of the draws' length: constant (the
    model file's values) unless the forecast carries per-draw population parameters.
    """

    clearance: np.ndarray
    volume: np.ndarray
    baseline_lambda: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    residual_sd: np.ndarray

    @property
    def size(self) -> int:
        """The number of draws."""
        return int(self.clearance.size)

    @classmethod
    def posterior(cls, forecast: PatientForecast) -> DrawSet:
        """The posterior draws of a forecast."""
        posterior = forecast.tree["posterior"]
        tte = forecast.spec.tte
        clearance = np.asarray(posterior["cl"].values, dtype=float).ravel()

        def per_draw(name: str, default: float) -> np.ndarray:
            if name in posterior:
                return np.asarray(posterior[name].values, dtype=float).ravel()
            return np.full(clearance.size, float(default))

        return cls(
            clearance=clearance,
            volume=np.asarray(posterior["v"].values, dtype=float).ravel(),
            baseline_lambda=per_draw("tte_lambda", tte.baseline_lambda),
            gamma=per_draw("tte_gamma", tte.gamma.estimate),
            beta=per_draw("tte_beta", tte.beta.estimate),
            residual_sd=per_draw("residual_sd", forecast.spec.pk.residual_sd.estimate),
        )

    @classmethod
    def map_estimate(cls, forecast: PatientForecast) -> DrawSet:
        """The MAP estimate as a single draw, with the model file's TTE values."""
        points = forecast.tree["point_estimates"]
        tte = forecast.spec.tte
        return cls(
            clearance=np.atleast_1d(float(points["cl"].sel(estimate="map"))),
            volume=np.atleast_1d(float(points["v"].sel(estimate="map"))),
            baseline_lambda=np.atleast_1d(tte.baseline_lambda),
            gamma=np.atleast_1d(tte.gamma.estimate),
            beta=np.atleast_1d(tte.beta.estimate),
            residual_sd=np.atleast_1d(forecast.spec.pk.residual_sd.estimate),
        )

    def risk(self, spec: ModelSpec, ln_ratio: np.ndarray) -> np.ndarray:
        """90-day risk of ``ln_ratio`` (draws, ...) with each draw's TTE parameters."""
        tte = spec.tte
        extra = (1,) * (np.ndim(ln_ratio) - 1)
        return weibull_risk(
            tte.horizon_day,
            ln_ratio,
            **weibull_parameters(
                tte,
                baseline_lambda=self.baseline_lambda.reshape(-1, *extra),
                gamma=self.gamma.reshape(-1, *extra),
                beta=self.beta.reshape(-1, *extra),
            ),
        )


@dataclass(frozen=True)
class RegimenArrays:
    """Dose arrays of a regimen (times, amounts, durations, ends at a reset, steady-state
    intervals; see :mod:`asuc_bayes.pk.kernels`) and the doses they come from."""

    time_day: np.ndarray
    amount_mg: np.ndarray
    duration_day: np.ndarray
    end_day: np.ndarray
    ss_interval_day: np.ndarray
    doses: tuple[Dose, ...] = ()

    @classmethod
    def of(cls, doses) -> RegimenArrays:
        """The dose arrays of ``doses`` (in the order a patient's regimen sorts them)."""
        doses = tuple(doses)
        patient = Patient("regimen", 1.0, 1.0, doses)
        return cls(
            patient.dose_time_day,
            patient.dose_amount_mg,
            patient.dose_duration_day,
            patient.dose_end_day,
            patient.dose_ss_interval_day,
            doses,
        )

    def kernel_options(self, keep=slice(None)) -> dict[str, np.ndarray]:
        """The optional dose arrays of the kernels (of the doses ``keep`` selects)."""
        return {
            "dose_end_day": self.end_day[keep],
            "dose_ss_interval_day": self.ss_interval_day[keep],
        }


def window_auc(spec: ModelSpec, regimen: RegimenArrays, draws: DrawSet) -> np.ndarray:
    """AUC over the risk window of ``regimen`` for every draw: (draws,)."""
    start, end = spec.tte.auc_window_day
    if regimen.time_day.size == 0:
        return np.zeros(draws.size)
    return auc_interval(
        start,
        end,
        regimen.time_day,
        regimen.amount_mg,
        regimen.duration_day,
        draws.clearance,
        draws.volume,
        **regimen.kernel_options(),
    )


def unit_window_auc(
    spec: ModelSpec, time_day: np.ndarray, duration_day: float, draws: DrawSet
) -> np.ndarray:
    """AUC over the risk window of 1 mg infused at each of ``time_day`` (k,): (draws, k)."""
    start, end = spec.tte.auc_window_day
    times = np.asarray(time_day, dtype=float).reshape(-1, 1)
    return auc_interval(
        start,
        end,
        times,
        np.ones_like(times),
        np.full_like(times, duration_day),
        draws.clearance[:, None],
        draws.volume[:, None],
    )


def draws_ln_ratio(auc: np.ndarray, draws: DrawSet) -> np.ndarray:
    """ln(AUC/CL) for AUCs (draws, ...), floored as in :func:`forecast.derived_quantities`."""
    extra = (1,) * (np.ndim(auc) - 1)
    return ln_auc_cl(auc, draws.clearance.reshape(-1, *extra))
