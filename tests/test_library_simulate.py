"""simulate --model NAME: a virtual cohort from a library model.

References: the written NONMEM CSV read back by the reader (doses, records, ALB/ADA columns);
the simulated concentrations decomposed into (i) the prediction at the true parameters against
an ODE integrated with scipy's solve_ivp, (ii) standardised residual errors against N(0, 1),
(iii) the true η against N(0, Ω); the typical-patient trough median against a Monte Carlo
written here from the closed form of the published model; the Weibull event day inverted back
through the kernel's cumulative hazard; the covariate design against Table 1.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats
from pk_reference import OdeRegimen, solve

from asuc_bayes.data.dataset import MEASURED, read_patients
from asuc_bayes.interfaces.cli import main
from asuc_bayes.pk.kernels import weibull_cumulative_hazard
from asuc_bayes.spec import load_declaration
from asuc_bayes.studies.library_simulate import (
    _problem,
    draw_covariates,
    outcome_event_day,
    simulate_library_cohort,
)
from asuc_bayes.studies.simulate import CohortDesign, Regimen, write_cohort

WOJ = load_declaration("wojciechowski2017")


def test_written_cohort_reads_back(tmp_path):
    cohort = simulate_library_cohort("fasanmade2009", 6, random_seed=3)
    data, truth = write_cohort(cohort, tmp_path / "c.csv")
    back = read_patients(data).patients
    assert truth.is_file() and len(back) == 6
    for original, read in zip(cohort.patients, back, strict=True):
        assert read.id == original.id
        assert read.doses == original.doses
        assert read.observations == original.observations
        assert read.events == original.events
        first = dict(read.covariate_records[0].values)
        row = cohort.truth.loc[original.id]
        # written in the model file's unit (g/dL), the truth table keeps g/L
        assert first["ALB"] == pytest.approx(row["ALB"] / 10.0)
        assert first["ADA"] == row["ATI"]  # ATI is written to the dataset's ADA column
        assert first["SEX"] == row["SEX"]


def test_event_day_inverts_the_cumulative_hazard():
    outcome = load_declaration("niyigena2025").outcome
    for target, x in ((0.05, 4.0), (0.3, 5.79), (2.0, 7.5)):
        t = outcome_event_day(outcome, target, x)
        h = weibull_cumulative_hazard(
            t,
            x,
            baseline_lambda=10.0**outcome.log10_lambda.estimate,
            gamma=outcome.gamma.estimate,
            beta=outcome.beta.estimate,
            x_ref=outcome.x_ref,
            form=outcome.form,
        )
        assert float(h) == pytest.approx(target, rel=1e-10)


def test_concentrations_follow_the_model():
    """Truth predictions against solve_ivp; residuals ~ N(0, 1); η ~ N(0, Ω)."""
    design = CohortDesign(centres=((-math.inf, math.inf),))  # no censoring: all measured
    cohort = simulate_library_cohort(WOJ, 300, random_seed=11, outcome=False, design=design)
    truth = cohort.truth
    z = []
    for k, patient in enumerate(cohort.patients):
        row = truth.loc[patient.id]
        params = {"cl": row["CL"], "v1": row["V1"], "q": row["Q"], "v2": row["V2"]}
        times = [o.time_day for o in patient.observations]
        regimen = OdeRegimen(
            [(d.time_day, d.amount_mg, d.duration_day) for d in patient.doses], pieces=[params]
        )
        if k < 8:  # the ODE is slow: check the predictions on a few patients
            f_ode, _ = solve("two_compartment", regimen, times)
        else:
            f_ode = None
        covariates = {"ALB": (row["ALB"], "g/L"), "ADA": row["ADA"]}
        problem = _problem(WOJ, patient, covariates, np.array(times))
        eta = np.array([row[n] for n in WOJ.random_effects.names])
        f = problem.predict(eta[None, :])[0]
        if f_ode is not None:
            np.testing.assert_allclose(f, f_ode, rtol=1e-8)
        y = np.array([o.value_mg_l for o in patient.observations])
        assert all(o.censoring == MEASURED for o in patient.observations)
        z.extend(((y - f) / (0.419 * f)).tolist())
    z = np.array(z)
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert abs(z.std() - 1) < 0.1
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    eta = truth[list(WOJ.random_effects.names)].to_numpy()
    variances = np.diag(WOJ.random_effects.matrix)
    n = eta.shape[0]
    for i, var in enumerate(variances):
        # chi-square bounds of the sample variance (99.9 %)
        low, high = scipy.stats.chi2.ppf([0.0005, 0.9995], n) / n
        assert low < np.mean(eta[:, i] ** 2) / var < high


def test_typical_patient_trough_median_within_mc_error():
    """A typical patient's week-2 trough (70 kg, ALB 4 g/dL, ADA 0; 5 mg/kg at day 0, 2 h)
    by the simulator against a Monte Carlo written here from the published equations."""
    design = CohortDesign(
        weight_kg_median=70.0,
        weight_log_sd=0.0,
        regimens=(Regimen("day 0", (0.0,), 5.0),),
        regimen_probabilities=(1.0,),
        high_first_dose_probability=0.0,
        vial_mg=1.0,
        centres=((-math.inf, math.inf),),
        samples_per_patient_probabilities=(1.0, 0.0, 0.0, 0.0, 0.0),
    )
    from asuc_bayes.studies import library_simulate

    original = library_simulate.COVARIATE_DESIGN
    fixed = dict(original)
    fixed["ALB"] = library_simulate.CovariateDraw("lognormal", median=40.0, log_sd=0.0, unit="g/L")
    fixed["ADA"] = library_simulate.CovariateDraw("bernoulli", p=0.0)
    library_simulate.COVARIATE_DESIGN = fixed
    try:
        cohort = simulate_library_cohort(WOJ, 800, random_seed=5, outcome=False, design=design)
    finally:
        library_simulate.COVARIATE_DESIGN = original
    # reference: biexponential infusion solution written out (not the package's closed form)
    rng = np.random.default_rng(99)
    sims, times = [], []
    for p in cohort.patients:
        t = p.observations[0].time_day
        times.append(t)
        sims.append(p.observations[0].value_mg_l)
    times = np.array(times)
    eta = rng.multivariate_normal(np.zeros(4), WOJ.random_effects.matrix, size=times.size)
    cl, v1, q, v2 = (np.array([0.294, 3.33, 0.0719, 1.14])[None, :] * np.exp(eta)).T
    k10, k12, k21 = cl / v1, q / v1, q / v2
    s = k10 + k12 + k21
    alpha = (s + np.sqrt(s**2 - 4 * k10 * k21)) / 2
    beta = (s - np.sqrt(s**2 - 4 * k10 * k21)) / 2
    dur, rate = 1 / 12, 350.0 / (1 / 12)
    a = (alpha - k21) / (v1 * (alpha - beta))
    b = (k21 - beta) / (v1 * (alpha - beta))

    def infusion_term(rate_coef, lam):
        return rate * rate_coef / lam * (1 - np.exp(-lam * dur)) * np.exp(-lam * (times - dur))

    f = infusion_term(a, alpha) + infusion_term(b, beta)
    reference = f * (1 + 0.419 * rng.standard_normal(times.size))
    # the two samples have the same distribution (same times): two-sample KS and medians
    assert scipy.stats.ks_2samp(sims, reference).pvalue > 1e-3
    m_sim, m_ref = np.median(sims), np.median(reference)
    se = 1.2533 * np.std(reference) / math.sqrt(times.size)  # SE of a median (normal approx.)
    assert abs(m_sim - m_ref) < 4 * math.sqrt(2) * se


def test_covariate_design_matches_table1():
    rng = np.random.default_rng(0)
    fasanmade = load_declaration("fasanmade2009")
    draws = [draw_covariates(fasanmade, 63.0, rng) for _ in range(4000)]
    alb = np.array([d["ALB"][0] for d in draws])
    sex = np.array([d["SEX"][0] for d in draws])
    assert {d["ALB"][1] for d in draws} == {"g/L"}
    assert np.median(alb) == pytest.approx(31.0, abs=0.5)  # Table 1: 31 [27-38] g/L
    # the log-normal's IQR is 26.1-36.8 g/L (it cannot be as right-skewed as Table 1's)
    assert np.quantile(alb, [0.25, 0.75]) == pytest.approx([27.0, 38.0], abs=1.5)
    assert sex.mean() == pytest.approx(0.35, abs=0.03)  # 35 % female


def test_unknown_covariate_is_an_error_naming_it():
    decl = dataclasses.replace(
        WOJ, effects=(*WOJ.effects, dataclasses.replace(WOJ.effects[1], covariate="HB"))
    )
    with pytest.raises(ValueError, match="no simulation design for covariate 'HB'"):
        draw_covariates(decl, 63.0, np.random.default_rng(0))


def test_cli_simulate_library(tmp_path, capsys):
    out = tmp_path / "c.csv"
    assert main(["simulate", "--model", "wojciechowski2017", "--n", "4", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "EXTRAPOLATED" in err
    header = out.read_text().splitlines()[0].split(",")
    assert {"ALB", "ADA", "WT", "CRP", "DVID"} <= set(header)
    assert (
        main(
            [
                "simulate",
                "--model",
                "wojciechowski2017",
                "--n",
                "4",
                "--no-outcome",
                "--out",
                str(tmp_path / "d.csv"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert all(not p.events for p in read_patients(tmp_path / "d.csv").patients)
    assert main(["simulate", "--model", "wojciechowski2017", "--population-uncertainty"]) == 2
    assert "--population-uncertainty" in capsys.readouterr().err


def test_a_design_without_cancelled_infusions_keeps_the_doses_after_a_colectomy():
    """The design flag reaches library cohorts: by default no infusion follows a colectomy;
    with ``infusions_stop_at_colectomy=False`` the planned ones after it stay in the records
    (and no sample is taken after it in either)."""

    def doses_after_event(cohort) -> int:
        count = 0
        for patient in cohort.patients:
            (event,) = patient.events
            assert np.all(patient.obs_time_day < event.time_day)
            if event.event:
                count += int(np.sum(patient.dose_time_day > event.time_day))
        return count

    clinical = simulate_library_cohort("fasanmade2009", 200, random_seed=7)
    kept = simulate_library_cohort(
        "fasanmade2009",
        200,
        random_seed=7,
        design=CohortDesign(infusions_stop_at_colectomy=False),
    )
    assert doses_after_event(clinical) == 0
    assert doses_after_event(kept) > 0
