"""Virtual ASUC patients drawn from the model, with their true individual parameters.

:func:`simulate_patients` draws patients with concentrations in a simple design of its own (kept:
the forecasting tests and benchmarks name patients it draws); :func:`designed_patients` draws
patients without samples in the calibrated design below (the comparison study's patients).
:func:`simulate_cohort` draws Table-1-like cohorts (model card, section 3) for population
fits, calibrated to the paper over repeated 72-patient cohorts (:class:`CohortDesign`
documents every value): weight median 63 kg [IQR 56-75], CRP median 30 mg/L [7-82], the
regimens centres give (:data:`REGIMENS`: a single rescue infusion, 0-1 week, 0-2-6 weeks at
5 or 10 mg/kg, accelerated 0-1-3 weeks, accelerated then every 2-4 weeks at 5 mg/kg; whole
100 mg vials), 1-5 samples per patient taken a median ~26 days after the last infusion,
seven centres' assay limits, and a colectomy record per patient from the published Weibull
model, with infliximab stopped at colectomy.

Colectomy timing is not calibrated: the published Weibull (γ = 1.08, nearly a constant
hazard) makes colectomies by day 90 nearly uniform over the 90 days, median ~40 days in
simulated cohorts; the paper's 32 days (11 events) lies within one cohort's spread
(between-cohort SD ~12 days), so the outcome model is left as published.

Examples
--------
>>> from asuc_bayes.spec.config import load_model
>>> cohort = simulate_patients(load_model(), n=3, random_seed=1)
>>> len(cohort.patients), sorted(cohort.truth.columns)[:3]
(3, ['cl', 'eta_cl', 'eta_v'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from asuc_bayes.data.dataset import (
    ABOVE_ULOQ,
    BELOW_LLOQ,
    MEASURED,
    Dose,
    EventRecord,
    Observation,
    Patient,
)
from asuc_bayes.data.types import dose_kernel_options
from asuc_bayes.pk.kernels import (
    auc_interval,
    concentration,
    individual_pk_parameters,
    ln_auc_cl,
    weibull_parameters,
    weibull_risk,
)
from asuc_bayes.spec.config import ModelSpec
from asuc_bayes.spec.residual import add_residual_error
from asuc_bayes.studies.course import (
    draw_follow_up,
    draw_samples,
    draw_weight_crp,
    observed_course,
    planned_doses,
    settle_event_time,
    taken_before,
)

__all__ = [
    "REGIMENS",
    "TABLE1",
    "CohortDesign",
    "Regimen",
    "SimulatedCohort",
    "cohort_summary",
    "designed_patients",
    "simulate_cohort",
    "simulate_patients",
    "true_parameters",
    "weibull_event_time",
    "write_cohort",
]

#: Assay limits (LLOQ, ULOQ) in mg/L of plausible centres.
ASSAY_LIMITS_MG_L = ((0.3, 24.0), (0.4, 45.0), (1.0, 30.0), (0.5, 60.0))
SCHEDULES_DAY = ((0.0, 14.0, 42.0), (0.0, 7.0, 21.0), (0.0, 4.0, 14.0), (0.0,), (0.0, 14.0))


@dataclass(frozen=True)
class SimulatedCohort:
    """Simulated patients and a table of their true individual parameters (one row each).

    ``population`` holds the population parameters the cohort was drawn with (the model
    file's estimates, or one draw from their published uncertainty).
    """

    patients: tuple[Patient, ...]
    truth: pd.DataFrame
    population: dict = field(default_factory=dict)


def true_parameters(spec: ModelSpec, patient: Patient, eta_cl: float, eta_v: float):
    """Individual (CL, V) of ``patient`` for given random effects, under ``spec``."""
    cl, v = individual_pk_parameters(spec.pk, patient.weight_kg, patient.crp_mg_l, eta_cl, eta_v)
    return float(cl), float(v)


def noisy_observations(spec: ModelSpec, times, doses, cl, v, limits, rng) -> tuple:
    """Concentrations at ``times`` with the model's residual error, censored at the assay
    ``limits`` (LLOQ, ULOQ) as M3 records (the limit as value)."""
    lloq, uloq = limits
    prediction = concentration(
        np.asarray(times, dtype=float),
        np.array([d.time_day for d in doses]),
        np.array([d.amount_mg for d in doses]),
        np.array([d.duration_day for d in doses]),
        np.float64(cl),
        np.float64(v),
        **dose_kernel_options(doses),
    )
    values = add_residual_error(
        prediction, spec.pk.residual_sd.estimate, spec.pk.residual_form, rng
    )
    observations = []
    for t, value in zip(times, values, strict=True):
        if value < lloq:
            observations.append(Observation(float(t), lloq, BELOW_LLOQ))
        elif value > uloq:
            observations.append(Observation(float(t), uloq, ABOVE_ULOQ))
        else:
            observations.append(Observation(float(t), float(np.round(value, 2)), MEASURED))
    return tuple(observations)


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
        observations = noisy_observations(spec, sample_times, doses, cl, v, (lloq, uloq), rng)
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


def designed_patients(
    spec: ModelSpec,
    n: int,
    random_seed: int,
    *,
    design: CohortDesign | None = None,
    id_prefix: str = "SIM",
) -> SimulatedCohort:
    """``n`` virtual patients of the Table-1 design, without samples: covariates and the
    planned regimen as :func:`simulate_cohort` draws them (:class:`CohortDesign`), true η
    from the model. For forecasting studies that set their own sampling
    (:func:`asuc_bayes.studies.comparison.simulate_scenario`).

    Examples
    --------
    >>> from asuc_bayes.spec.config import load_model
    >>> cohort = designed_patients(load_model(), n=4, random_seed=2)
    >>> [p.observations for p in cohort.patients], sorted(cohort.truth.columns)
    ([(), (), (), ()], ['cl', 'eta_cl', 'eta_v', 'v'])
    """
    design = design or CohortDesign()
    if n < 1:
        raise ValueError(f"n must be a positive number of patients, got {n}")
    rng = np.random.default_rng(random_seed)
    pk = spec.pk
    patients, rows = [], []
    for index in range(n):
        pid = f"{id_prefix}{index + 1:04d}"
        weight, crp = draw_weight_crp(design, rng)
        doses = tuple(planned_doses(design, weight, pk.default_infusion_duration_day, rng))
        eta_cl, eta_v = (float(value) for value in rng.normal(0.0, [pk.omega_cl, pk.omega_v]))
        patient = Patient(id=pid, weight_kg=weight, crp_mg_l=crp, doses=doses)
        cl, v = true_parameters(spec, patient, eta_cl, eta_v)
        patients.append(patient)
        rows.append({"id": pid, "eta_cl": eta_cl, "eta_v": eta_v, "cl": cl, "v": v})
    return SimulatedCohort(patients=tuple(patients), truth=pd.DataFrame(rows).set_index("id"))


# -- Table-1-like cohorts with colectomy records ----------------------------------------------

#: Table 1 of the paper (and section 3.1) as (statistic, value) pairs the simulator aims at.
TABLE1 = {
    "n_patients": 72,
    "weight_kg_median": 63.0,
    "weight_kg_iqr": (56.0, 75.0),
    "crp_mg_l_median": 30.0,
    "crp_mg_l_iqr": (7.0, 82.0),
    "first_dose_mg_kg_median": 9.9,
    "first_dose_mg_kg_range": (3.8, 15.0),
    "infusions_median": 3,
    "infusions_range": (1, 7),
    "samples_total": 152,
    "samples_per_patient_counts": (33, 18, 7, 8, 6),
    "days_since_infusion_median": 26.0,
    "days_since_infusion_iqr": (11.0, 42.0),
    "concentration_mg_l_median": 6.7,
    "concentration_mg_l_iqr": (3.9, 10.9),
    "below_lloq_fraction": 11 / 152,
    "above_uloq_fraction": 56 / 152,
    "dosing_period_day_median": 7.0,
    "dosing_period_day_iqr": (0.0, 42.0),
    "colectomy_fraction_90d": 11 / 72,
    "colectomy_day_median": 32.0,
}


@dataclass(frozen=True)
class Regimen:
    """An infusion schedule a centre gives: planned days and dose per infusion (mg/kg).

    The first infusion is ``mg_per_kg`` × weight, later ones ``later_mg_per_kg`` × weight
    (``None``: the same), rounded to whole ``vial_mg`` vials (at least one vial).
    """

    name: str
    days: tuple[float, ...]
    mg_per_kg: float
    later_mg_per_kg: float | None = None


#: The regimens of the virtual centres (Table 1 footnote e: "schedules did not necessarily
#: follow classical induction (eg, 0-2-6 weeks); timing was adapted by each center").
#: Every regimen is one given in ASUC practice: 5 or 10 mg/kg at 0-2-6 weeks (label and
#: intensified), accelerated 0-1-3 weeks (Gibson 2015, PREDICT-UC), a single rescue infusion
#: or a second one after a week (centres that stop, switch or operate after the early
#: response assessment), and an accelerated induction continued every 2-4 weeks at 5 mg/kg
#: (the 6-7 infusions of Table 1's range). No regimen has more than 3 infusions in the
#: first 14 days; 10 mg/kg is never given more than 3 times.
REGIMENS = (
    Regimen("single rescue infusion", (0.0,), 10.0),
    Regimen("0-1 week", (0.0, 7.0), 10.0),
    Regimen("0-2-6 weeks, 5 mg/kg", (0.0, 14.0, 42.0), 5.0),
    Regimen("0-2-6 weeks, 10 then 5 mg/kg", (0.0, 14.0, 42.0), 10.0, 5.0),
    Regimen("0-1-3 weeks (accelerated)", (0.0, 7.0, 21.0), 10.0),
    Regimen("accelerated then every 4 weeks", (0.0, 7.0, 21.0, 49.0, 77.0), 5.0),
    Regimen("accelerated then every 2 weeks", (0.0, 7.0, 14.0, 28.0, 42.0, 56.0, 70.0), 5.0),
)


@dataclass(frozen=True)
class CohortDesign:
    """How virtual cohorts are drawn, calibrated to Table 1 (see :data:`TABLE1`).

    Every default was tuned by simulating 20 cohorts of 72 patients and comparing the mean
    of each Table-1 statistic with the paper's value, the between-cohort SD as the yardstick
    (``tests/test_cohort.py`` prints both); the comment of each attribute says why.

    Attributes
    ----------
    weight_kg_median, weight_log_sd, weight_kg_range
        Log-normal weight: median 63.5 kg and log-SD 0.22 give the IQR [55, 73] kg (a
        log-normal IQR is median × e^(±0.674 σ)), the closest symmetric fit to Table 1's
        slightly right-skewed 63 [56-75].
    crp_mg_l_median, crp_log_sd, crp_mg_l_range
        Log-normal CRP: median 28 mg/L and log-SD 1.8 give 26-29 [8.5, 82-95] over cohorts
        (Table 1: 30 [7-82]; the log-normal cannot be as skewed as the paper's IQR around its
        median), clipped to the assays' range 0.5-400 mg/L.
    regimens, regimen_probabilities
        The regimens (:data:`REGIMENS`) and how often each is given. Chosen so that about
        half the patients get one infusion or two a week apart (Table 1: dosing period median
        7 days, IQR 0-42, so at least a quarter had a single infusion) and the other half 3 or
        more (median 3 infusions, range 1-7); a 10 mg/kg first dose in about 70 % gives the
        first dose median 9.9 mg/kg. Table 1's two medians (3 infusions, 7 days) cannot both
        hold unless about 1 in 10 patients got 3 infusions within a week, which no regimen
        here gives: the mix is a compromise, median 2-3 infusions over 7-21 days (each within
        its between-cohort spread of the paper).
    high_first_dose_probability, high_first_dose_mg_kg
        A few centres give a 15 mg/kg first dose (Table 1's maximum 15.0 mg/kg); later
        infusions keep the regimen's dose.
    vial_mg
        Doses are whole 100 mg vials.
    schedule_jitter_day
        Later infusions move by up to ± this many days (centres adapted the timing).
    samples_per_patient_probabilities
        P(1..5 samples), Table 1's 33/18/7/8/6 of 72.
    sample_time_beta, sampling_window_day, sampling_after_last_dose_day
        Sample days are Beta(2, 1) (skewed late) over (0, min(end of follow-up or colectomy,
        day 90, last planned infusion + 63 days)): TDM during and shortly after treatment,
        tuned to Table 1's time since the most recent infusion, median 26 [11-42] days (a
        window of day 90 for everyone gave 28 [12-51]: single-infusion patients sampled two
        months later).
    centres
        (LLOQ, ULOQ) in mg/L of the seven centres' assays (ELISAs read undiluted have ULOQs of
        12-30 mg/L; LLOQs 0.2-0.4 mg/L). The ULOQs trade two Table-1 figures against each
        other: lower ones bring the measured concentrations' IQR to 6.7 [3.9-10.9] mg/L but
        raise the share above the ULOQ (12-24 mg/L: 56 % against the paper's 37 %), higher
        ones the reverse (12-45 mg/L: 42 % above, measured 8.7 [3.4-15.8]). The model's IIV
        (72 %/88 % CV) and 44 % error spread concentrations wider than the paper's, so both
        cannot match; these limits leave each within ~2 between-cohort SDs (46 % above,
        measured 7.8 [3.0-13.7] mg/L; below LLOQ 9.5 % against 7 %).
    follow_up_day, loss_probability, loss_window_day
        Follow-up ends at day 90; a fraction ``loss_probability`` of patients leave earlier
        (discharge without a later visit), at a uniform day in ``loss_window_day``: 2 %, as
        the paper had colectomy information for 71 of 72 patients.
    infusions_stop_at_colectomy
        True (the clinical course): a colectomy cancels the later infusions, so x =
        ln(AUC_w2-4/CL) of the doses given depends on the event time, and the records do not
        follow the fitted model exactly (the maximum-likelihood β on 3 × 3000 subjects is
        ~10 % steeper than the truth; README, "Population model"). False: every planned
        infusion is given and recorded and the event time is drawn with the planned regimen's
        x, so the data follow the fitted model exactly (for checking estimators:
        ``read_cohort`` refuses the infusions after a colectomy such a cohort's CSV holds).
    """

    weight_kg_median: float = 63.5
    weight_log_sd: float = 0.22
    weight_kg_range: tuple[float, float] = (38.0, 140.0)
    crp_mg_l_median: float = 28.0
    crp_log_sd: float = 1.8
    crp_mg_l_range: tuple[float, float] = (0.5, 400.0)
    regimens: tuple[Regimen, ...] = REGIMENS
    regimen_probabilities: tuple[float, ...] = (0.28, 0.17, 0.13, 0.15, 0.13, 0.08, 0.06)
    high_first_dose_probability: float = 0.04
    high_first_dose_mg_kg: float = 15.0
    vial_mg: float = 100.0
    schedule_jitter_day: float = 2.0
    samples_per_patient_probabilities: tuple[float, ...] = (
        33 / 72,
        18 / 72,
        7 / 72,
        8 / 72,
        6 / 72,
    )
    sample_time_beta: tuple[float, float] = (2.0, 1.0)
    sampling_window_day: float = 90.0
    sampling_after_last_dose_day: float = 63.0
    centres: tuple[tuple[float, float], ...] = (
        (0.3, 12.0),
        (0.2, 16.0),
        (0.2, 16.0),
        (0.3, 20.0),
        (0.2, 24.0),
        (0.4, 30.0),
        (0.2, 30.0),
    )
    follow_up_day: float = 90.0
    loss_probability: float = 0.02
    loss_window_day: tuple[float, float] = (30.0, 90.0)
    infusions_stop_at_colectomy: bool = True

    def __post_init__(self):
        if len(self.regimens) != len(self.regimen_probabilities):
            raise ValueError("regimens and regimen_probabilities need the same length")
        if not np.isclose(sum(self.regimen_probabilities), 1.0):
            raise ValueError("regimen_probabilities must sum to 1")


def weibull_event_time(cumulative_hazard_target, covariate, *, spec: ModelSpec):
    """Time T with H(T; x) = ``cumulative_hazard_target`` under ``spec``'s Weibull model.

    With E ~ Exp(1), T = weibull_event_time(E, x) is a draw of the event time (inverse of
    :func:`asuc_bayes.pk.kernels.weibull_cumulative_hazard`).

    >>> from asuc_bayes.spec.config import load_model
    >>> from asuc_bayes.pk.kernels import weibull_cumulative_hazard
    >>> spec = load_model()
    >>> t = weibull_event_time(0.3, 5.5, spec=spec)
    >>> tte = spec.tte
    >>> h = weibull_cumulative_hazard(t, 5.5, baseline_lambda=tte.baseline_lambda,
    ...     gamma=tte.gamma.estimate, beta=tte.beta.estimate, x_ref=tte.x_ref, form=tte.form)
    >>> bool(np.isclose(h, 0.3))
    True
    """
    tte = spec.tte
    baseline = np.asarray(cumulative_hazard_target) / np.exp(
        tte.beta.estimate * (np.asarray(covariate) - tte.x_ref)
    )
    gamma, lam = tte.gamma.estimate, tte.baseline_lambda
    if tte.form == "lambda_t_gamma":
        return (baseline / lam) ** (1.0 / gamma)
    return baseline ** (1.0 / gamma) / lam


def _event_day_given(spec: ModelSpec, target: float, cl: float, v: float, given) -> float:
    """The event day under ``spec`` with cumulative-hazard target ``target`` and doses ``given``."""
    return float(weibull_event_time(target, _ln_ratio(spec, given, cl, v), spec=spec))


def _ln_ratio(spec: ModelSpec, doses: list[Dose], cl: float, v: float) -> float:
    start, end = spec.tte.auc_window_day
    auc = auc_interval(
        start,
        end,
        np.array([d.time_day for d in doses]),
        np.array([d.amount_mg for d in doses]),
        np.array([d.duration_day for d in doses]),
        np.float64(cl),
        np.float64(v),
        **dose_kernel_options(doses),
    )
    return float(ln_auc_cl(float(auc), cl))


def simulate_cohort(
    spec: ModelSpec,
    n: int,
    random_seed: int,
    *,
    population_uncertainty: bool = False,
    population_values: Mapping[str, float] | None = None,
    design: CohortDesign | None = None,
    id_prefix: str = "C",
) -> SimulatedCohort:
    """A Table-1-like virtual cohort with concentrations, colectomy records and the truth.

    Each patient gets covariates, a regimen, η from the model, a latent Weibull event time,
    samples (with residual error and the centre's assay limits, M3-style records), and one
    colectomy record: DV=1 at the colectomy, or DV=0 at the end of follow-up (day 90, or
    earlier if lost). Infliximab stops at colectomy: later infusions and samples are not in
    the data.

    The covariate that generates the event time is ln(AUC_w2-4/CL) under the doses actually
    given, exactly what a population fit computes from the data. When a colectomy before
    day 28 removes planned infusions, that covariate depends on the event time itself; it
    is resolved as a fixed point with one uniform draw U per patient: T = H⁻¹(−ln U; x(doses
    before T)), iterating from the planned regimen (with β < 0 each iteration can only
    remove infusions, so it converges in at most as many steps as there are infusions).
    The truth keeps both ``ln_auc_cl`` (doses given) and ``ln_auc_cl_planned``.

    Parameters
    ----------
    spec
        The model; its point estimates are the population parameters unless
        ``population_uncertainty``.
    n
        Number of patients.
    random_seed
        Seed; the same seed gives the same cohort.
    population_uncertainty
        Draw the population parameters once from their published uncertainty
        (:meth:`~asuc_bayes.inference.population_draws.PopulationDraws.from_published`, RSE method).
    population_values
        Simulate from these population parameters instead of the model file's estimates:
        one value for each of :data:`~asuc_bayes.inference.population_draws.PARAMETER_NAMES` (ω on
        the
        log scale, λ per day^γ at x_ref), e.g. a draw from a prior (simulation-based
        calibration). The rest of the random stream is that of the default cohort, so the
        model file's point values give the default cohort exactly.
    design
        Covariate, regimen, sampling and assay design (:class:`CohortDesign`).

    Returns
    -------
    SimulatedCohort
        Patients (with ``events``), the truth table (index ``id``) and the population values.

    Examples
    --------
    >>> from asuc_bayes.spec.config import load_model
    >>> cohort = simulate_cohort(load_model(), n=5, random_seed=3)
    >>> [len(p.events) for p in cohort.patients]
    [1, 1, 1, 1, 1]
    >>> bool((cohort.truth["observed_time_day"] <= 90).all())
    True
    """
    from asuc_bayes.inference.population_draws import PopulationDraws, point_values

    design = design or CohortDesign()
    if n < 1:
        raise ValueError(f"n must be a positive number of patients, got {n}")
    rng = np.random.default_rng(random_seed)
    if population_values is not None:
        if population_uncertainty:
            raise ValueError(
                "population_values and population_uncertainty exclude each other: give one"
            )
        draws = PopulationDraws.given(spec, population_values)
        spec = draws.spec_at(0)
        population = {k: float(v[0]) for k, v in draws.as_dict().items()}
    elif population_uncertainty:
        draws = PopulationDraws.from_published(spec, 1, int(rng.integers(2**31)), method="rse")
        spec = draws.spec_at(0)
        population = {k: float(v[0]) for k, v in draws.as_dict().items()}
    else:
        population = point_values(spec)
    pk = spec.pk
    duration = pk.default_infusion_duration_day
    patients, rows = [], []
    for index in range(n):
        pid = f"{id_prefix}{index + 1:03d}"
        weight, crp = draw_weight_crp(design, rng)
        planned = planned_doses(design, weight, duration, rng)
        eta_cl = float(rng.normal(0.0, pk.omega_cl))
        eta_v = float(rng.normal(0.0, pk.omega_v))
        cl, v = true_parameters(spec, Patient(pid, weight, crp, tuple(planned)), eta_cl, eta_v)
        target, lost, end_of_follow_up = draw_follow_up(design, rng)
        stops = design.infusions_stop_at_colectomy
        event_time, consistent = settle_event_time(
            planned, partial(_event_day_given, spec, target, cl, v), stops_infusions=stops
        )
        event, observed_time, recorded = observed_course(
            planned, event_time, end_of_follow_up, stops_infusions=stops
        )
        sample_days, centre = draw_samples(design, planned, observed_time, rng)
        lloq, uloq = design.centres[centre]
        observations = noisy_observations(
            spec, sample_days, recorded, cl, v, design.centres[centre], rng
        )
        kept = taken_before(sample_days, observed_time)
        observations = [o for o, keep in zip(observations, kept, strict=True) if keep]
        patients.append(
            Patient(
                id=pid,
                weight_kg=weight,
                crp_mg_l=crp,
                doses=tuple(recorded),
                observations=tuple(observations),
                events=(EventRecord(observed_time, int(event)),),
            )
        )
        x_given = _ln_ratio(spec, recorded, cl, v)
        tte = spec.tte
        rows.append(
            {
                "id": pid,
                "centre": centre + 1,
                "lloq_mg_l": lloq,
                "uloq_mg_l": uloq,
                "eta_cl": eta_cl,
                "eta_v": eta_v,
                "cl": cl,
                "v": v,
                "ln_auc_cl": x_given,
                "ln_auc_cl_planned": _ln_ratio(spec, planned, cl, v),
                "risk_90d": float(
                    weibull_risk(tte.horizon_day, x_given, **weibull_parameters(tte))
                ),
                "latent_event_time_day": event_time,
                "cumulative_hazard_at_event": float(target),
                "observed_time_day": observed_time,
                "event": int(event),
                "lost_to_follow_up": bool(lost and not event),
                "infusions_planned": len(planned),
                "infusions_given": len(recorded),
                "covariate_fixed_point": consistent,
            }
        )
    return SimulatedCohort(
        patients=tuple(patients), truth=pd.DataFrame(rows).set_index("id"), population=population
    )


def cohort_summary(patients) -> dict:
    """Table-1 statistics of a cohort (keys of :data:`TABLE1`), e.g. to compare a simulated
    cohort with the paper's."""
    weights = np.array([p.weight_kg for p in patients])
    crps = np.array([p.crp_mg_l for p in patients])
    first = np.array([p.doses[0].amount_mg / p.weight_kg for p in patients])
    infusions = np.array([len(p.doses) for p in patients])
    period = np.array([p.dose_time_day.max() - p.dose_time_day.min() for p in patients])
    counts = np.array([len(p.observations) for p in patients])
    since, values, censoring = [], [], []
    for p in patients:
        days = p.dose_time_day
        for o in p.observations:
            since.append(o.time_day - days[days < o.time_day].max())
            censoring.append(o.censoring)
            if o.censoring == MEASURED:
                values.append(o.value_mg_l)
    censoring = np.array(censoring)
    events = [e for p in patients for e in p.events]
    colectomy_days = np.array([e.time_day for e in events if e.event == 1])

    def iqr(x):
        return tuple(float(q) for q in np.quantile(x, [0.25, 0.75]))

    return {
        "n_patients": len(patients),
        "weight_kg_median": float(np.median(weights)),
        "weight_kg_iqr": iqr(weights),
        "crp_mg_l_median": float(np.median(crps)),
        "crp_mg_l_iqr": iqr(crps),
        "first_dose_mg_kg_median": float(np.median(first)),
        "first_dose_mg_kg_range": (float(first.min()), float(first.max())),
        "infusions_median": float(np.median(infusions)),
        "infusions_range": (int(infusions.min()), int(infusions.max())),
        "samples_total": int(counts.sum()),
        "samples_per_patient_counts": tuple(int(np.sum(counts == k)) for k in range(1, 6)),
        "days_since_infusion_median": float(np.median(since)),
        "days_since_infusion_iqr": iqr(since),
        "concentration_mg_l_median": float(np.median(values)) if values else float("nan"),
        "concentration_mg_l_iqr": iqr(values) if values else (float("nan"),) * 2,
        "below_lloq_fraction": float(np.mean(censoring == BELOW_LLOQ)),
        "above_uloq_fraction": float(np.mean(censoring == ABOVE_ULOQ)),
        "dosing_period_day_median": float(np.median(period)),
        "dosing_period_day_iqr": iqr(period),
        "colectomy_fraction_90d": float(
            np.mean([e.event == 1 and e.time_day <= 90 for e in events])
        ),
        "colectomy_day_median": float(np.median(colectomy_days))
        if colectomy_days.size
        else float("nan"),
    }


def write_cohort(cohort: SimulatedCohort, path) -> tuple[Path, Path]:
    """Write the cohort as a NONMEM-style CSV and its truth beside it (``NAME.truth.csv``,
    with the population values used in the leading comment-free columns ``pop_*``)."""
    from asuc_bayes.data.dataset import write_nonmem_csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_nonmem_csv(cohort.patients, path)
    truth_path = path.with_name(path.stem + ".truth.csv")
    truth = cohort.truth.copy()
    for name, value in cohort.population.items():
        truth[f"pop_{name}"] = value
    truth.to_csv(truth_path)
    return path, truth_path
