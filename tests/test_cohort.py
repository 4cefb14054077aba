"""Virtual cohorts (simulate_cohort) and cohort validation for population fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asuc_bayes.cli import main
from asuc_bayes.dataset import InputError, read_cohort, read_patients, write_nonmem_csv
from asuc_bayes.kernels import auc_interval, weibull_cumulative_hazard
from asuc_bayes.population_draws import PopulationDraws
from asuc_bayes.report import format_cohort_summary
from asuc_bayes.simulate import TABLE1, cohort_summary, simulate_cohort


@pytest.fixture(scope="module")
def big_cohort(spec):
    return simulate_cohort(spec, 1440, random_seed=11)  # 20 cohorts of 72


def test_simulated_cohort_matches_table1(big_cohort):
    """Side by side with Table 1 (printed with -s); tolerances are what a cohort of 72 of the
    paper's kind could plausibly show (the model's IIV and error make the concentration
    spread wider than the paper's IQR, and the ALQ share higher)."""
    summary = cohort_summary(big_cohort.patients)
    print("\n" + format_cohort_summary(summary, TABLE1))
    assert summary["weight_kg_median"] == pytest.approx(63, abs=3)
    assert summary["weight_kg_iqr"] == pytest.approx((56, 75), abs=4)
    assert summary["crp_mg_l_median"] == pytest.approx(30, rel=0.2)
    assert summary["crp_mg_l_iqr"][0] == pytest.approx(7, abs=3)
    assert summary["crp_mg_l_iqr"][1] == pytest.approx(82, rel=0.25)
    assert summary["first_dose_mg_kg_median"] == pytest.approx(9.9, abs=0.3)
    low, high = summary["first_dose_mg_kg_range"]
    assert 3 < low < 5 and 14 < high < 17
    assert summary["infusions_median"] == 3
    assert summary["infusions_range"] == (1, 7)
    per_patient = np.array(summary["samples_per_patient_counts"]) / summary["n_patients"]
    np.testing.assert_allclose(
        per_patient, np.array(TABLE1["samples_per_patient_counts"]) / 72, atol=0.04
    )
    samples_per_72 = summary["samples_total"] / summary["n_patients"] * 72
    assert samples_per_72 == pytest.approx(152, rel=0.1)
    assert summary["days_since_infusion_median"] == pytest.approx(26, abs=5)
    assert summary["days_since_infusion_iqr"] == pytest.approx((11, 42), abs=5)
    assert summary["concentration_mg_l_median"] == pytest.approx(6.7, rel=0.25)
    assert 0.03 < summary["below_lloq_fraction"] < 0.15
    assert 0.3 < summary["above_uloq_fraction"] < 0.6
    assert summary["colectomy_fraction_90d"] == pytest.approx(0.15, abs=0.04)
    assert 25 < summary["colectomy_day_median"] < 50


def test_event_times_solve_the_weibull_model_with_the_doses_given(spec, big_cohort):
    """The fixed point: every latent event time solves H(T; x) = E with x = ln(AUC_w2-4/CL)
    recomputed here from the doses in the data (what a population fit computes)."""
    truth = big_cohort.truth
    tte = spec.tte
    start, end = tte.auc_window_day
    x = []
    for patient in big_cohort.patients:
        row = truth.loc[patient.id]
        auc = auc_interval(
            start,
            end,
            patient.dose_time_day,
            patient.dose_amount_mg,
            patient.dose_duration_day,
            np.float64(row.cl),
            np.float64(row.v),
        )
        x.append(np.log(auc) - np.log(row.cl))
        event = patient.events[0]
        assert event.event == row.event and event.time_day == row.observed_time_day
        assert patient.dose_time_day.max() < max(event.time_day, 1e-9) or len(patient.doses) == 1
        assert patient.obs_time_day.max() < event.time_day
    np.testing.assert_allclose(x, truth["ln_auc_cl"], rtol=1e-9)
    hazard = weibull_cumulative_hazard(
        truth["latent_event_time_day"].to_numpy(),
        truth["ln_auc_cl"].to_numpy(),
        baseline_lambda=tte.baseline_lambda,
        gamma=tte.gamma.estimate,
        beta=tte.beta.estimate,
        x_ref=tte.x_ref,
        form=tte.form,
    )
    np.testing.assert_allclose(hazard, truth["cumulative_hazard_at_event"], rtol=1e-8)
    assert truth["covariate_fixed_point"].all()
    early = truth[truth.infusions_given < truth.infusions_planned]
    assert (early.ln_auc_cl <= early.ln_auc_cl_planned + 1e-12).all()
    assert (truth.ln_auc_cl != truth.ln_auc_cl_planned).sum() > 0  # the case does occur


def test_cohort_is_reproducible_and_population_uncertainty_changes_it(spec):
    a = simulate_cohort(spec, 20, random_seed=4)
    b = simulate_cohort(spec, 20, random_seed=4)
    assert a.patients == b.patients and a.truth.equals(b.truth)
    c = simulate_cohort(spec, 20, random_seed=4, population_uncertainty=True)
    assert c.population != a.population
    assert a.population == pytest.approx(
        {k: float(v[0]) for k, v in PopulationDraws.point(spec).as_dict().items()}
    )


def test_cohort_at_given_population_values(spec):
    """population_values: the model file's point values give the default cohort exactly;
    other values are the ones the individual CL/V and the event times are drawn with
    (recomputed here by hand from the covariate model of the model card)."""
    from asuc_bayes.population_draws import point_values

    default = simulate_cohort(spec, 15, random_seed=8)
    same = simulate_cohort(spec, 15, random_seed=8, population_values=point_values(spec))
    assert same.patients == default.patients
    np.testing.assert_allclose(same.truth[["cl", "v"]], default.truth[["cl", "v"]], rtol=1e-12)

    values = {
        "theta_cl": 0.8,
        "theta_v": 6.0,
        "crp_exponent_cl": 0.2,
        "omega_cl": 0.3,
        "omega_v": 0.4,
        "residual_sd": 0.2,
        "tte_lambda": 0.004,
        "tte_gamma": 0.8,
        "tte_beta": -1.0,
    }
    cohort = simulate_cohort(spec, 40, random_seed=8, population_values=values)
    assert cohort.population == pytest.approx(values, rel=1e-12)
    truth = cohort.truth
    weight = np.array([p.weight_kg for p in cohort.patients])
    crp = np.array([p.crp_mg_l for p in cohort.patients])
    cl = 0.8 * (weight / 70) ** 0.75 * (crp / 30) ** 0.2 * np.exp(truth["eta_cl"])
    np.testing.assert_allclose(truth["cl"], cl, rtol=1e-10)
    np.testing.assert_allclose(truth["v"], 6.0 * weight / 70 * np.exp(truth["eta_v"]), rtol=1e-10)
    hazard = weibull_cumulative_hazard(
        truth["latent_event_time_day"].to_numpy(),
        truth["ln_auc_cl"].to_numpy(),
        baseline_lambda=0.004,
        gamma=0.8,
        beta=-1.0,
        x_ref=spec.tte.x_ref,
        form=spec.tte.form,
    )
    np.testing.assert_allclose(hazard, truth["cumulative_hazard_at_event"], rtol=1e-8)
    # the IIV SD: eta spread of 40 subjects is far from the file's omega (0.65, 0.76)
    assert truth["eta_cl"].std() < 0.5 and truth["eta_v"].std() < 0.6

    with pytest.raises(ValueError, match="missing: tte_beta"):
        simulate_cohort(
            spec, 3, 1, population_values={k: v for k, v in values.items() if k != "tte_beta"}
        )
    with pytest.raises(ValueError, match="exclude each other"):
        simulate_cohort(spec, 3, 1, population_values=values, population_uncertainty=True)
    with pytest.raises(ValueError, match="omega_v must be positive"):
        simulate_cohort(spec, 3, 1, population_values={**values, "omega_v": -0.1})


def test_csv_round_trip_and_truth_file(spec, tmp_path):
    assert main(["simulate", "--n", "30", "--seed", "2", "--out", str(tmp_path / "c.csv")]) == 0
    cohort = simulate_cohort(spec, 30, random_seed=2)
    assert read_cohort(tmp_path / "c.csv").patients == cohort.patients
    truth = (tmp_path / "c.truth.csv").read_text().splitlines()
    assert len(truth) == 31 and "eta_cl" in truth[0] and "pop_theta_cl" in truth[0]
    # forecasting still reads the cohort (one valid event record per subject)
    assert len(read_patients(tmp_path / "c.csv").patients) == 30


HEADER = "ID,TIME,EVID,AMT,DV,CENS,MDV,DVID,WT,CRP"
GOOD = [
    "P01,0,1,600,.,.,1,.,63,45",
    "P01,7,0,.,12,0,0,1,63,45",
    "P01,90,0,.,0,0,0,2,63,45",
    "P02,0,1,500,.,.,1,.,58,20",
    "P02,10,0,.,8,0,0,1,58,20",
    "P02,40,0,.,1,0,0,2,58,20",
]


def write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "cohort.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_good_cohort_reads(tmp_path):
    cohort = read_cohort(write(tmp_path, GOOD))
    assert [p.events[0].event for p in cohort.patients] == [0, 1]
    assert any("2 patients, 1 colectomies" in note for note in cohort.notes)


BAD_COHORTS = {
    "subject without doses": (
        [*GOOD[3:], "P03,5,0,.,8,0,0,1,70,30", "P03,90,0,.,0,0,0,2,70,30"],
        ("patient 'P03'", "no dose"),
    ),
    "event record before time 0": (
        ["P01,-3,0,.,0,0,0,2,63,45", *GOOD[:2]],
        ("patient 'P01', row 2, field TIME", "≥ 0"),
    ),
    "event record at time 0": (
        [GOOD[0], "P01,0,0,.,1,0,0,2,63,45", GOOD[1]],
        ("patient 'P01', row 3, field TIME", "after the first dose"),
    ),
    "two event records": (
        [*GOOD[:2], "P01,60,0,.,1,0,0,2,63,45", GOOD[2]],
        ("patient 'P01'", "2 colectomy records", "row 4", "row 5", "keep one record"),
    ),
    "non-binary event DV": (
        [*GOOD[:2], "P01,90,0,.,2,0,0,2,63,45"],
        ("patient 'P01', row 4, field DV", "DV 1 (colectomy"),
    ),
    "covariate varying within a subject": (
        [*GOOD[:2], "P01,90,0,.,0,0,0,2,70,45"],
        ("patient 'P01', row 4, field WT", "differs from the patient's baseline 63"),
    ),
    "no event record": (
        [*GOOD[:2], *GOOD[3:]],
        ("patient 'P01', row 2, field DVID", "no colectomy record", "DV=0"),
    ),
    "dose after colectomy": (
        [*GOOD[3:6], "P02,42,1,500,.,.,1,.,58,20"],
        ("patient 'P02', row 5, field TIME", "after the colectomy at day 40"),
    ),
    "sample after the end of follow-up": (
        [GOOD[0], GOOD[2], "P01,95,0,.,2,0,0,1,63,45"],
        ("patient 'P01', row 4, field TIME", "after the end of follow-up at day 90"),
    ),
}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [pytest.param(rows, expected, id=name) for name, (rows, expected) in BAD_COHORTS.items()],
)
def test_bad_cohorts_get_clear_errors(tmp_path, rows, expected):
    with pytest.raises(InputError) as info:
        read_cohort(write(tmp_path, rows))
    message = str(info.value)
    assert message.startswith(str(tmp_path / "cohort.csv"))
    for part in expected:
        assert part in message, message
    assert "fix:" in message or "no dose" in message


def test_forecasting_still_notes_varying_covariates(tmp_path):
    rows = [*GOOD[:2], "P01,90,0,.,0,0,0,2,70,45"]
    patient_set = read_patients(write(tmp_path, rows))
    assert any("differs from the baseline" in note for note in patient_set.notes)


def test_write_nonmem_csv_round_trips_exactly(spec, tmp_path):
    cohort = simulate_cohort(spec, 10, random_seed=9)
    path = write_nonmem_csv(cohort.patients, tmp_path / "x.csv")
    assert read_patients(path).patients == cohort.patients
