"""A virtual ASUC cohort drawn from a library model (``simulate --model NAME``).

The regimens, weights, CRP, sampling design and centres' assay limits are those of the default
simulator (:class:`asuc_bayes.studies.simulate.CohortDesign`, calibrated to Table 1 of Niyigena
2025);
the concentrations come from the library model: η ~ N(0, Ω) in the model file's order, the
model's PK structure (:class:`~asuc_bayes.inference.PatientProblem`) and its residual error,
censored at the centre's LLOQ/ULOQ as M3 records (value = the limit).

Covariates other than weight and CRP are drawn from :data:`COVARIATE_DESIGN`, each from
Table 1 of Niyigena 2025 (the ASUC cohort), independently of each other:

- ``ALB``: log-normal, median 31 g/L, log-SD ln(38/27)/1.349 = 0.253 from the IQR 27-38
  (the log-normal's IQR is 26.1-36.8: it cannot be as right-skewed), clipped to 15-50 g/L;
  written in the unit the model file declares (g/dL in the library), so that the file reads
  back under the model without ``--units``;
- ``ADA``/``ATI`` (anti-drug antibodies): 1 with probability 0.04 (6 of 152 samples);
- ``SEX`` (1 female): 0.35 (18 of 52 with sex known);
- ``IMM`` (immunomodulator): 0.47 (thiopurine exposure, 14 of 30);
- ``CS`` (corticosteroids): 0.87 (13 of 15);
- ``EXTCOL`` (extensive colitis): 0.70 (23 of 33);
- ``MAYO_E`` (endoscopic Mayo subscore): 3 with probability 0.81, else 2 (30:7);
- ``FFM`` (fat-free mass, Janmahasatian 2005) from the weight, the sex and a BMI drawn
  log-normal with median 22 kg/m², IQR 19-26 (Table 1).

A covariate with no design here is an error naming it. The colectomy record comes from the
model's outcome model or, for a model without one, the ASUC outcome model (Niyigena 2025)
attached to this model's ln(AUC_w2-4/CL) — flagged ``extrapolated_outcome`` in the truth;
``outcome=False`` writes no colectomy records. As in the default simulator, infliximab stops
at colectomy (the event time and the doses given are solved as a fixed point).

Examples
--------
>>> cohort = simulate_library_cohort("wojciechowski2017", 3, random_seed=1)
>>> len(cohort.patients), sorted(cohort.truth.columns)[:4]
(3, ['ADA', 'ALB', 'CL', 'CRP'])
>>> bool(cohort.truth["extrapolated_outcome"].all())
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from asuc_bayes.data.dataset import (
    ABOVE_ULOQ,
    BELOW_LLOQ,
    MEASURED,
    CovariateRecord,
    EventRecord,
    Observation,
    Patient,
)
from asuc_bayes.inference import PatientProblem, derived_quantities
from asuc_bayes.inference.problem import doses_from_patient, patient_covariates
from asuc_bayes.spec import ModelDeclaration, load_declaration, with_outcome_from
from asuc_bayes.spec.declaration import OutcomeModel
from asuc_bayes.spec.units import convert
from asuc_bayes.studies.course import (
    draw_follow_up,
    draw_samples,
    draw_weight_crp,
    observed_course,
    planned_doses,
    settle_event_time,
    taken_before,
)
from asuc_bayes.studies.simulate import CohortDesign, SimulatedCohort
from asuc_bayes.studies.validation.npde import simulate_records

__all__ = [
    "COVARIATE_DESIGN",
    "CovariateDraw",
    "draw_covariates",
    "outcome_event_day",
    "simulate_library_cohort",
]

ASUC_OUTCOME_MODEL = "niyigena2025"


@dataclass(frozen=True)
class CovariateDraw:
    """How one covariate is drawn: ``bernoulli`` (P(1) = ``p``), ``lognormal`` (median,
    log-SD, clipped to ``low``-``high``, in ``unit``), ``categorical`` (levels, probabilities)
    or ``ffm`` (Janmahasatian 2005 from WT, SEX and a log-normal BMI)."""

    kind: str
    p: float = 0.0
    median: float = 0.0
    log_sd: float = 0.0
    low: float = -math.inf
    high: float = math.inf
    unit: str = "1"
    levels: tuple[float, ...] = ()
    probabilities: tuple[float, ...] = ()


#: Table 1 of Niyigena 2025 for each covariate a library model may need (module docstring).
COVARIATE_DESIGN: dict[str, CovariateDraw] = {
    "ALB": CovariateDraw("lognormal", median=31.0, log_sd=0.253, low=15.0, high=50.0, unit="g/L"),
    "ADA": CovariateDraw("bernoulli", p=0.04),
    "ATI": CovariateDraw("bernoulli", p=0.04),
    "SEX": CovariateDraw("bernoulli", p=0.35),
    "IMM": CovariateDraw("bernoulli", p=0.47),
    "CS": CovariateDraw("bernoulli", p=0.87),
    "EXTCOL": CovariateDraw("bernoulli", p=0.70),
    "MAYO_E": CovariateDraw("categorical", levels=(2.0, 3.0), probabilities=(0.19, 0.81)),
    "FFM": CovariateDraw("ffm", median=22.0, log_sd=0.233, unit="kg"),
}
#: Order of drawing: FFM needs SEX.
_FIRST = ("SEX",)


def _fat_free_mass_kg(weight_kg: float, female: bool, bmi: float) -> float:
    """Janmahasatian 2005: 9270·WT/(6680 + 216·BMI) (male), 9270·WT/(8780 + 244·BMI) (female).

    >>> round(_fat_free_mass_kg(70.0, False, 22.0), 1)
    56.8
    """
    if female:
        return 9270.0 * weight_kg / (8780.0 + 244.0 * bmi)
    return 9270.0 * weight_kg / (6680.0 + 216.0 * bmi)


def _needed(declaration: ModelDeclaration) -> list[str]:
    used = dict.fromkeys(e.covariate for e in declaration.effects)
    names = [c for c in used if c not in ("WT", "CRP")]
    if "FFM" in names and "SEX" not in names:
        names.append("SEX")
    return sorted(names, key=lambda c: (c not in _FIRST, c))


def draw_covariates(
    declaration: ModelDeclaration, weight_kg: float, rng: np.random.Generator
) -> dict[str, tuple[float, str]]:
    """One patient's covariates other than WT and CRP, ``{name: (value, unit)}``.

    Raises
    ------
    ValueError
        A covariate the model needs has no design in :data:`COVARIATE_DESIGN`.

    Examples
    --------
    >>> draws = draw_covariates(load_declaration("fasanmade2009"), 70.0,
    ...                         np.random.default_rng(0))
    >>> sorted(draws)
    ['ALB', 'ATI', 'SEX']
    """
    out: dict[str, tuple[float, str]] = {}
    for name in _needed(declaration):
        draw = COVARIATE_DESIGN.get(name)
        if draw is None:
            raise ValueError(
                f"model '{declaration.name}': no simulation design for covariate '{name}' "
                f"(known: {', '.join(sorted(COVARIATE_DESIGN))}); fix: simulate with "
                "another model, or add its distribution to COVARIATE_DESIGN"
            )
        if draw.kind == "bernoulli":
            value = float(rng.uniform() < draw.p)
        elif draw.kind == "categorical":
            value = float(rng.choice(draw.levels, p=draw.probabilities))
        elif draw.kind == "lognormal":
            raw = rng.lognormal(math.log(draw.median), draw.log_sd)
            value = float(np.round(np.clip(raw, draw.low, draw.high), 1))
        else:  # ffm
            bmi = float(rng.lognormal(math.log(draw.median), draw.log_sd))
            female = out.get("SEX", (0.0, "1"))[0] == 1.0
            value = float(np.round(_fat_free_mass_kg(weight_kg, female, bmi), 1))
        out[name] = (value, draw.unit)
    return out


def outcome_event_day(outcome: OutcomeModel, cumulative_hazard: float, ln_auc_cl: float) -> float:
    """The day T with H(T; x) = ``cumulative_hazard`` under the Weibull outcome model (with
    E ~ Exp(1), T is a draw of the event time). H is
    :func:`asuc_bayes.pk.kernels.weibull_cumulative_hazard` (the test inverts it back).

    >>> outcome = load_declaration("niyigena2025").outcome
    >>> round(outcome_event_day(outcome, 0.1, 5.0), 1) > 0
    True
    """
    lam = 10.0**outcome.log10_lambda.estimate
    gamma, beta = outcome.gamma.estimate, outcome.beta.estimate
    baseline = cumulative_hazard / math.exp(beta * (ln_auc_cl - outcome.x_ref))
    if outcome.form == "lambda_t_gamma":
        return float((baseline / lam) ** (1.0 / gamma))
    return float(baseline ** (1.0 / gamma) / lam)


def _problem(declaration, patient: Patient, covariates, times=()) -> PatientProblem:
    return PatientProblem.build(
        declaration,
        doses_from_patient(patient),
        time_day=times,
        value_mg_l=np.zeros(len(times)),
        covariates=patient_covariates(patient, covariates),
    )


def _ln_ratio(declaration, patient: Patient, covariates, eta: np.ndarray) -> float:
    problem = _problem(declaration, patient, covariates)
    return float(derived_quantities(problem, eta[None, :]).ln_auc_cl[0])


def _records(
    values: np.ndarray, times: np.ndarray, limits: tuple[float, float]
) -> tuple[Observation, ...]:
    lloq, uloq = limits
    out = []
    for t, y in zip(times, values, strict=True):
        if y < lloq:
            out.append(Observation(float(t), lloq, BELOW_LLOQ))
        elif y > uloq:
            out.append(Observation(float(t), uloq, ABOVE_ULOQ))
        else:
            out.append(Observation(float(t), float(np.round(y, 3)), MEASURED))
    return tuple(out)


def _in_model_unit(decl: ModelDeclaration, name: str, value: float, unit: str) -> float:
    """``value`` (in ``unit``) in the unit ``decl`` declares for covariate ``name``."""
    declared = next((c.unit for c in decl.covariates if c.name == name), unit)
    return float(convert(value, unit, declared)) if declared != unit else value


def _dataset_column(declaration: ModelDeclaration, name: str) -> str:
    for covariate in declaration.covariates:
        if covariate.name == name and covariate.dataset_columns:
            return covariate.dataset_columns[0]
    return name


def simulate_library_cohort(
    declaration: ModelDeclaration | str,
    n: int,
    random_seed: int = 0,
    *,
    outcome: bool = True,
    design: CohortDesign | None = None,
    id_prefix: str = "L",
) -> SimulatedCohort:
    """``n`` virtual patients from a library model (see the module docstring).

    Parameters
    ----------
    declaration
        A :class:`~asuc_bayes.spec.ModelDeclaration` or a library name.
    n
        Number of patients (at least 1).
    random_seed
        Seed; the same seed gives the same cohort.
    outcome
        Simulate colectomy records (the model's outcome model, or the ASUC one attached and
        flagged extrapolated); ``False``: concentrations only, all planned infusions given.
    design
        Weights, CRP, regimens, sampling and assay limits (default :class:`CohortDesign`).

    Returns
    -------
    SimulatedCohort
        Patients (per-patient covariate records at day 0, colectomy records), the truth table
        (η by the model file's names, individual parameters, covariates, ln(AUC/CL), event)
        and ``population`` (the model's name and typical values).
    """
    decl = load_declaration(declaration) if isinstance(declaration, str) else declaration
    if n < 1:
        raise ValueError(f"--n: a positive number of patients, got {n}")
    extrapolated = decl.outcome is None
    if outcome and extrapolated:
        decl = with_outcome_from(decl, load_declaration(ASUC_OUTCOME_MODEL))
    design = design or CohortDesign()
    rng = np.random.default_rng(random_seed)
    omega = decl.random_effects.matrix
    patients, rows = [], []
    for index in range(n):
        patient, row = _one_patient(
            decl, f"{id_prefix}{index + 1:03d}", design, omega, outcome, rng
        )
        row["extrapolated_outcome"] = bool(outcome and extrapolated)
        patients.append(patient)
        rows.append(row)
    population = {"model": decl.name, **{p.name: p.typical.estimate for p in decl.parameters}}
    return SimulatedCohort(
        patients=tuple(patients), truth=pd.DataFrame(rows).set_index("id"), population=population
    )


def _one_patient(decl, pid: str, design: CohortDesign, omega, outcome: bool, rng):
    weight, crp = draw_weight_crp(design, rng)
    covariates = draw_covariates(decl, weight, rng)
    planned = planned_doses(design, weight, decl.default_infusion_duration_day, rng)
    eta = rng.multivariate_normal(np.zeros(omega.shape[0]), omega)
    target, _, end = draw_follow_up(design, rng)
    event_time = math.inf
    stops = design.infusions_stop_at_colectomy
    if outcome:
        event_time, _ = settle_event_time(
            planned,
            lambda given: outcome_event_day(
                decl.outcome,
                target,
                _ln_ratio(decl, Patient(pid, weight, crp, tuple(given)), covariates, eta),
            ),
            stops_infusions=stops,
        )
    event, observed, doses = observed_course(planned, event_time, end, stops_infusions=stops)
    times, centre = draw_samples(design, planned, observed, rng)
    shell = Patient(pid, weight, crp, doses)
    problem = _problem(decl, shell, covariates, times)
    values = simulate_records(problem, eta[None, :], rng)[0] if times.size else np.zeros(0)
    kept = taken_before(times, observed)
    times, values = times[kept], values[kept]
    record = CovariateRecord(
        0.0,
        tuple(
            sorted(
                [
                    (_dataset_column(decl, k), _in_model_unit(decl, k, v, unit))
                    for k, (v, unit) in covariates.items()
                ]
                + [("CRP", crp), ("WT", weight)]
            )
        ),
    )
    patient = Patient(
        pid,
        weight,
        crp,
        doses,
        _records(values, times, design.centres[centre]),
        events=(EventRecord(observed, int(event)),) if outcome else (),
        covariate_records=(record,),
    )
    truth = derived_quantities(_problem(decl, shell, covariates), eta[None, :])
    row = {
        "id": pid,
        "centre": centre + 1,
        "lloq_mg_l": design.centres[centre][0],
        "uloq_mg_l": design.centres[centre][1],
        "WT": weight,
        "CRP": crp,
        **{k: v for k, (v, _) in covariates.items()},
        **{name: float(eta[i]) for i, name in enumerate(decl.random_effects.names)},
        **{k: float(np.asarray(v).reshape(-1)[0]) for k, v in truth.parameters.items()},
        "ln_auc_cl": float(truth.ln_auc_cl[0]),
        "risk_90d": None if truth.risk_90d is None else float(truth.risk_90d[0]),
        "event": int(event),
        "observed_time_day": observed if outcome else None,
        "infusions_planned": len(planned),
        "infusions_given": len(doses),
    }
    return patient, row
