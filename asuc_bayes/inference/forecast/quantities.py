"""The quantities reported for a patient under the default model: CL, V, AUC_w2-4,
ln(AUC_w2-4/CL) and the 90-day risk per draw of η, at the MAP and a priori, and the time grid
of the concentration curves.

(The library models' counterpart is :mod:`asuc_bayes.inference.derived`.)

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.spec.config import load_model
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> p = Patient("x", 63.0, 30.0, (Dose(0.0, 600.0, 1 / 12),), (Observation(7.0, 14.5),))
>>> point_eta, point = map_and_a_priori(load_model(), p, np.array([0.1, -0.1]))
>>> sorted(point) == sorted(DERIVED), point["cl"].shape
(True, (2,))
>>> float(curve_times(load_model(), p)[-1])
90.0
"""

from __future__ import annotations

import numpy as np

from asuc_bayes.data.dataset import Patient
from asuc_bayes.pk.kernels import (
    auc_interval,
    concentration,
    individual_pk_parameters,
    ln_auc_cl,
    weibull_parameters,
    weibull_risk,
)
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "CURVE_END_DAY",
    "DERIVED",
    "DERIVED_PK",
    "curve_times",
    "derived_quantities",
    "map_and_a_priori",
    "patient_concentration",
]

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
#: The concentration curves run to this day at least.
CURVE_END_DAY = 90.0


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


def map_and_a_priori(
    spec: ModelSpec, patient: Patient, eta_map: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """η (2, 2) of the MAP and the a-priori prediction (η = 0), and their derived quantities."""
    point_eta = np.stack([np.asarray(eta_map, dtype=float), np.zeros(2)])
    return point_eta, derived_quantities(spec, patient, point_eta)


def patient_concentration(
    patient: Patient, time_day: np.ndarray, cl: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Concentrations (mg/L) after ``patient``'s doses at ``time_day`` (last axis) for
    individual CL (L/day) and V (L) of any leading shape
    (:func:`asuc_bayes.pk.kernels.concentration`, with the patient's steady-state dosing)."""
    return concentration(
        time_day,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        cl,
        v,
        dose_end_day=patient.dose_end_day,
        dose_ss_interval_day=patient.dose_ss_interval_day,
    )


def curve_times(spec: ModelSpec, patient: Patient) -> np.ndarray:
    """Plot grid: every half day to day 90 plus each infusion's end (the peaks)."""
    return curve_times_to(spec.tte.auc_window_day[1], patient)


def curve_times_to(window_end_day: float, patient: Patient) -> np.ndarray:
    """Plot grid to day 90, the end of the AUC window, 14 days after the last infusion and the
    last record (whichever is latest): every half day plus each infusion's end (the peaks)."""
    last_record = float(np.max(patient.obs_time_day, initial=0.0))
    end = max(CURVE_END_DAY, window_end_day, float(patient.dose_time_day.max()) + 14, last_record)
    grid = np.linspace(0.0, end, round(end * 2) + 1)
    peaks = patient.dose_time_day + patient.dose_duration_day
    return np.unique(np.concatenate([grid, peaks[peaks <= end]]))
