"""Virtual ASUC patients drawn from the model, with their true individual parameters.

Patients resemble Table 1 of the paper (model card, section 3): weight median 63 kg
[IQR 56-75], CRP median 30 mg/L [7-82], first dose 5-10 mg/kg, standard (0-2-6 weeks)
or accelerated schedules, 1-5 samples, assay limits that censor some samples.

Examples
--------
>>> from asuc_bayes.config import load_model
>>> cohort = simulate_patients(load_model(), n=3, random_seed=1)
>>> len(cohort.patients), sorted(cohort.truth.columns)[:3]
(3, ['cl', 'eta_cl', 'eta_v'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from asuc_bayes.config import ModelSpec
from asuc_bayes.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED, Dose, Observation, Patient
from asuc_bayes.kernels import concentration, individual_pk_parameters

__all__ = ["SimulatedCohort", "add_residual_error", "simulate_patients", "true_parameters"]

#: Assay limits (LLOQ, ULOQ) in mg/L of plausible centres.
ASSAY_LIMITS_MG_L = ((0.3, 24.0), (0.4, 45.0), (1.0, 30.0), (0.5, 60.0))
SCHEDULES_DAY = ((0.0, 14.0, 42.0), (0.0, 7.0, 21.0), (0.0, 4.0, 14.0), (0.0,), (0.0, 14.0))


@dataclass(frozen=True)
class SimulatedCohort:
    """Simulated patients and a table of their true individual parameters (one row each)."""

    patients: tuple[Patient, ...]
    truth: pd.DataFrame


def true_parameters(spec: ModelSpec, patient: Patient, eta_cl: float, eta_v: float):
    """Individual (CL, V) of ``patient`` for given random effects, under ``spec``."""
    cl, v = individual_pk_parameters(spec.pk, patient.weight_kg, patient.crp_mg_l, eta_cl, eta_v)
    return float(cl), float(v)


def simulate_patients(
    spec: ModelSpec,
    n: int,
    random_seed: int,
    *,
    max_samples: int = 5,
    min_samples: int = 1,
    id_prefix: str = "SIM",
) -> SimulatedCohort:
    """Draw ``n`` virtual patients with concentrations from the model (residual error included).

    Parameters
    ----------
    spec
        The model to simulate from (typical values, IIV, residual error, default infusion).
    n
        Number of patients.
    random_seed
        Seed of the NumPy generator; the same seed gives the same cohort.
    max_samples, min_samples
        Range of the number of concentration samples per patient (0 allowed).
    """
    rng = np.random.default_rng(random_seed)
    pk = spec.pk
    patients = []
    rows = []
    for index in range(n):
        weight = float(np.clip(np.round(rng.lognormal(np.log(64.0), 0.22), 1), 40, 140))
        crp = float(np.clip(np.round(rng.lognormal(np.log(30.0), 1.4), 1), 0.5, 400))
        mg_per_kg = float(rng.choice([5.0, 10.0], p=[0.35, 0.65]))
        amount = max(100.0, np.round(mg_per_kg * weight / 100.0) * 100.0)
        schedule = SCHEDULES_DAY[rng.integers(len(SCHEDULES_DAY))]
        doses = tuple(
            Dose(time_day=t, amount_mg=amount, duration_day=pk.default_infusion_duration_day)
            for t in schedule
        )
        n_samples = int(rng.integers(min_samples, max_samples + 1))
        sample_times = np.sort(
            rng.choice(np.arange(1, 57), size=n_samples, replace=False)
        ) + np.round(rng.uniform(-0.2, 0.2, size=n_samples), 2)
        eta_cl = float(rng.normal(0.0, pk.omega_cl))
        eta_v = float(rng.normal(0.0, pk.omega_v))
        draft = Patient(
            id=f"{id_prefix}{index + 1:04d}", weight_kg=weight, crp_mg_l=crp, doses=doses
        )
        cl, v = true_parameters(spec, draft, eta_cl, eta_v)
        lloq, uloq = ASSAY_LIMITS_MG_L[rng.integers(len(ASSAY_LIMITS_MG_L))]
        f = concentration(
            sample_times,
            draft.dose_time_day,
            draft.dose_amount_mg,
            draft.dose_duration_day,
            np.float64(cl),
            np.float64(v),
        )
        y = add_residual_error(f, pk.residual_sd.estimate, pk.residual_form, rng)
        observations = []
        for t, value in zip(sample_times, y, strict=True):
            if value < lloq:
                observations.append(Observation(float(t), lloq, BELOW_LLOQ))
            elif value > uloq:
                observations.append(Observation(float(t), uloq, ABOVE_ULOQ))
            else:
                observations.append(Observation(float(t), float(np.round(value, 2)), MEASURED))
        patients.append(
            Patient(
                id=draft.id,
                weight_kg=weight,
                crp_mg_l=crp,
                doses=doses,
                observations=tuple(observations),
            )
        )
        rows.append({"id": draft.id, "eta_cl": eta_cl, "eta_v": eta_v, "cl": cl, "v": v})
    return SimulatedCohort(patients=tuple(patients), truth=pd.DataFrame(rows).set_index("id"))


def add_residual_error(prediction, sigma, residual_form: str, rng: np.random.Generator):
    """Measurements around ``prediction`` with the model's residual error (model card, §1).

    ``proportional``: y = f (1 + σ ε); ``log_normal``: y = f e^(σ ε), with ε ~ N(0, 1) of
    the broadcast shape of ``prediction`` and ``sigma``. A proportional draw can be ≤ 0: it
    is below any LLOQ, and callers censor it there.

    Examples
    --------
    >>> y = add_residual_error(np.full(20000, 10.0), 0.44, "proportional",
    ...                        np.random.default_rng(0))
    >>> round(float(y.mean()), 1), round(float(y.std() / 10.0), 2)
    (10.0, 0.44)
    """
    prediction = np.asarray(prediction, dtype=float)
    noise = rng.standard_normal(np.broadcast_shapes(prediction.shape, np.shape(sigma)))
    if residual_form == "proportional":
        return prediction * (1.0 + sigma * noise)
    if residual_form == "log_normal":
        return prediction * np.exp(sigma * noise)
    raise ValueError(f"unknown residual form {residual_form!r}")
