"""A small cohort simulated from a declaration, to check the validation on its own model.

Each patient: weight ~ U(45, 100) kg, CRP ~ log-uniform(5, 150) mg/L, infusions of 5 mg/kg at
days 0, 14 and 42 (2 h), 2–4 samples at distinct times of :data:`SAMPLE_DAYS`; η ~ N(0, Ω)
and the declaration's residual error (the PK layer via
:class:`~asuc_bayes.inference.problem.PatientProblem`); values below ``lloq_mg_l`` are
recorded as censored (value = LLOQ).

Examples
--------
>>> cohort = simulate_validation_cohort("niyigena2025", 3, random_seed=2)
>>> len(cohort), all(2 <= len(p.observations) <= 4 for p in cohort)
(3, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from asuc_bayes.data.dataset import BELOW_LLOQ, MEASURED, Dose, Observation, Patient
from asuc_bayes.inference.problem import PatientProblem, doses_from_patient, patient_covariates
from asuc_bayes.spec import ModelDeclaration, load_declaration
from asuc_bayes.studies.validation.npde import simulate_records

__all__ = ["SAMPLE_DAYS", "simulate_validation_cohort", "with_scaled_parameter"]

#: Candidate sampling times (days after the first infusion).
SAMPLE_DAYS = (1.0, 3.0, 7.0, 13.9, 21.0, 27.9, 41.9)
DOSE_DAYS = (0.0, 14.0, 42.0)


def simulate_validation_cohort(
    declaration: ModelDeclaration | str,
    n_patients: int,
    *,
    covariates: Mapping[str, Any] | None = None,
    samples: tuple[int, int] = (2, 4),
    lloq_mg_l: float = 1.0,
    random_seed: int = 0,
) -> list[Patient]:
    """``n_patients`` patients simulated from ``declaration`` (see the module docstring)."""
    decl = load_declaration(declaration) if isinstance(declaration, str) else declaration
    rng = np.random.default_rng(random_seed)
    cohort = []
    for i in range(n_patients):
        weight = float(rng.uniform(45.0, 100.0))
        crp = float(np.exp(rng.uniform(np.log(5.0), np.log(150.0))))
        doses = tuple(Dose(t, 5.0 * weight, 1.0 / 12.0) for t in DOSE_DAYS)
        n_samples = int(rng.integers(samples[0], samples[1] + 1))
        times = np.sort(rng.choice(SAMPLE_DAYS, size=n_samples, replace=False))
        shell = Patient(f"sim{i + 1}", weight, crp, doses)
        problem = PatientProblem.build(
            decl,
            doses_from_patient(shell),
            time_day=times,
            value_mg_l=np.zeros(times.size),
            covariates=patient_covariates(shell, covariates),
        )
        eta = rng.multivariate_normal(np.zeros(problem.n_eta), problem.omega, size=1)
        values = simulate_records(problem, eta, rng)[0]
        observations = tuple(
            Observation(float(t), float(y), MEASURED)
            if y >= lloq_mg_l
            else Observation(float(t), lloq_mg_l, BELOW_LLOQ)
            for t, y in zip(times, values, strict=True)
        )
        cohort.append(Patient(shell.id, weight, crp, doses, observations))
    return cohort


def with_scaled_parameter(
    declaration: ModelDeclaration | str, parameter: str, factor: float
) -> ModelDeclaration:
    """A copy of ``declaration`` with the typical value of ``parameter`` times ``factor``,
    named ``<name>-<parameter>-x<factor>`` (a clearly different model, for checks).

    Examples
    --------
    >>> decl = with_scaled_parameter("niyigena2025", "CL", 3.0)
    >>> decl.name, decl.parameter("CL").typical.estimate
    ('niyigena2025-CL-x3', 1.47)
    """
    decl = load_declaration(declaration) if isinstance(declaration, str) else declaration
    decl.parameter(parameter)  # KeyError naming the model and the parameter
    parameters = tuple(
        dataclasses.replace(
            p, typical=dataclasses.replace(p.typical, estimate=factor * p.typical.estimate)
        )
        if p.name == parameter
        else p
        for p in decl.parameters
    )
    name = f"{decl.name}-{parameter}-x{factor:g}"
    return dataclasses.replace(decl, name=name, parameters=parameters)
