"""NONMEM datasets as pharmacometricians write them: ADDL/II, EVID 2-4, SS, CMT, RATE=-2,
time units, clock times, $INPUT lists, IGNORE=, per-record covariates, DataFrames, notes,
and the writer's round trip."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asuc_bayes.data.dataset import (
    CovariateRecord,
    Dose,
    InputError,
    Patient,
    Reset,
    example_path,
    read_patients,
    unsupported_by_engine,
    write_nonmem_csv,
)
from asuc_bayes.inference.grid import scan_maxima
from asuc_bayes.pk.kernels import NO_END_DAY, concentration, individual_pk_parameters
from asuc_bayes.spec.config import load_model

TWO_HOURS = 1.0 / 12.0
HEADER = "ID,TIME,EVID,AMT,ADDL,II,DV,WT,CRP"


def write(tmp_path: Path, lines: list[str], name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def raises(*parts: str):
    return pytest.raises(InputError, match=".*".join(re.escape(p) for p in parts))


def only(patient_set):
    (patient,) = patient_set.patients
    return patient


# --------------------------------------------------------------------------------------
# ADDL / II
# --------------------------------------------------------------------------------------

ADDL_ROWS = [HEADER, "P1,0,1,600,2,14,.,63,45", "P1,7,0,.,.,.,25,63,45", "P1,35,0,.,.,.,9,63,45"]
EXPLICIT_ROWS = [
    HEADER,
    "P1,0,1,600,.,.,.,63,45",
    "P1,7,0,.,.,.,25,63,45",
    "P1,14,1,600,.,.,.,63,45",
    "P1,28,1,600,.,.,.,63,45",
    "P1,35,0,.,.,.,9,63,45",
]


def _one_compartment_reference(times, doses, clearance, volume):
    """Concentrations by hand: each infusion D over T at rate D/T, superposed."""
    k = clearance / volume
    total = np.zeros_like(times)
    for start, amount, duration in doses:
        rate = amount / duration
        for i, t in enumerate(times):
            tau = t - start
            if tau <= 0:
                continue
            during = min(tau, duration)
            after = max(tau - duration, 0.0)
            total[i] += rate / clearance * (1 - math.exp(-k * during)) * math.exp(-k * after)
    return total


def test_addl_regimen_equals_the_same_regimen_written_out(tmp_path):
    addl = only(read_patients(write(tmp_path, ADDL_ROWS, "addl.csv")))
    explicit = only(read_patients(write(tmp_path, EXPLICIT_ROWS, "explicit.csv")))
    assert addl.doses == explicit.doses
    assert addl == explicit
    assert [d.time_day for d in addl.doses] == [0.0, 14.0, 28.0]
    assert addl.doses[2].row == "row 2 (ADDL dose 2 of 2)"

    spec = load_model()
    times = np.linspace(0.01, 60, 200)
    for patient_map in (addl, explicit):
        assert np.array_equal(patient_map.dose_time_day, explicit.dose_time_day)
    eta_map = scan_maxima(spec, explicit)[0]
    assert np.array_equal(scan_maxima(spec, addl)[0], eta_map)
    curves = {}
    for name, patient in (("addl", addl), ("explicit", explicit)):
        for label, eta in (("a_priori", (0.0, 0.0)), ("map", eta_map)):
            cl, v = individual_pk_parameters(
                spec.pk, patient.weight_kg, patient.crp_mg_l, np.array(eta[0]), np.array(eta[1])
            )
            curves[name, label] = concentration(
                times,
                patient.dose_time_day,
                patient.dose_amount_mg,
                patient.dose_duration_day,
                cl,
                v,
            )
            if name == "addl":  # independent reference: superposition by hand
                doses = [(0.0, 600.0, TWO_HOURS), (14.0, 600.0, TWO_HOURS), (28, 600, TWO_HOURS)]
                expected = _one_compartment_reference(times, doses, float(cl), float(v))
                np.testing.assert_allclose(curves[name, label], expected, rtol=1e-10)
    for label in ("a_priori", "map"):
        assert np.array_equal(curves["addl", label], curves["explicit", label])


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("P1,0,1,600,2,.,.,63,45", ("row 2, field II", "ADDL without an interval")),
        ("P1,0,1,600,2,0,.,63,45", ("row 2, field II", "ADDL without an interval")),
        ("P1,0,1,600,2,-14,.,63,45", ("row 2, field II", "II must be ≥ 0")),
        ("P1,0,1,600,1.5,14,.,63,45", ("row 2, field ADDL", "whole number")),
        ("P1,0,1,600,-1,14,.,63,45", ("row 2, field ADDL", "whole number")),
        ("P1,0,1,600,100000,14,.,63,45", ("row 2, field ADDL", "runs to day")),
        ("P1,0,1,600,30,14,.,63,45", ("ADDL dose 27 of 30", "≤ 365 days")),
    ],
)
def test_addl_errors(tmp_path, row, expected):
    with raises(*expected):
        read_patients(write(tmp_path, [HEADER, row]))


def test_ii_without_addl_or_ss_is_a_note(tmp_path):
    patient_set = read_patients(write(tmp_path, [HEADER, "P1,0,1,600,0,14,.,63,45"]))
    assert any("II without ADDL or SS has no effect" in n for n in patient_set.notes)


# --------------------------------------------------------------------------------------
# Time units, clock times
# --------------------------------------------------------------------------------------


def test_hours_equal_days(tmp_path):
    header = "ID,TIME,EVID,AMT,RATE,DUR,ADDL,II,DV,WT,CRP"
    days = [
        header,
        "P1,0,1,600,7200,.,.,.,.,63,45",
        "P1,0.5,0,.,.,.,.,.,40,63,45",
        "P1,14,1,600,.,0.125,1,14,.,63,45",
        "P1,35,0,.,.,.,.,.,9,63,45",
    ]
    hours = [
        header,
        "P1,0,1,600,300,.,.,.,.,63,45",
        "P1,12,0,.,.,.,.,.,40,63,45",
        "P1,336,1,600,.,3,1,336,.,63,45",
        "P1,840,0,.,.,.,.,.,9,63,45",
    ]
    in_days = only(read_patients(write(tmp_path, days, "days.csv")))
    in_hours = only(read_patients(write(tmp_path, hours, "hours.csv"), time_unit="hours"))
    assert in_hours == in_days
    assert [d.duration_day for d in in_days.doses] == [TWO_HOURS, 0.125, 0.125]


def test_times_in_hours_read_as_days_get_a_note(tmp_path):
    rows = [HEADER, "P1,0,1,600,.,.,.,63,45", "P1,168,0,.,.,.,9,63,45", "P1,336,1,600,.,.,.,63,45"]
    patient_set = read_patients(write(tmp_path, rows))
    notes = "\n".join(patient_set.notes)
    assert "patient 'P1', row 3, field TIME: the times look like hours" in notes
    assert "--time-unit hours" in notes
    assert "row 3, field TIME: record at day 168 is beyond the model's validated horizon" in notes


def test_median_dosing_interval_near_336_gets_a_note(tmp_path):
    rows = [HEADER, "P1,0,1,600,.,.,.,63,45", "P1,2.5,0,.,.,.,9,63,45", "P1,330,1,600,.,.,.,63,45"]
    notes = "\n".join(read_patients(write(tmp_path, rows)).notes)
    assert "row 4, field TIME: the times look like hours" in notes


def test_clock_times_equal_relative_days(tmp_path):
    relative = [
        "ID,TIME,EVID,AMT,DV,WT,CRP",
        "P1,0,1,600,.,63,45",
        "P1,0.5,0,.,40,63,45",
        "P1,14.041666666666666,1,600,.,63,45",
        "P2,0,1,700,.,80,20",
        "P2,7,0,.,20,80,20",
    ]
    dated = [
        "ID,DATE,TIME,EVID,AMT,DV,WT,CRP",
        "P1,2024-02-28,20:00,1,600,.,63,45",
        "P1,2024-02-29,08:00,0,.,40,63,45",  # across a leap day
        "P1,2024-03-13,21:00,1,600,.,63,45",
        "P2,2023-12-31,23:30,1,700,.,80,20",
        "P2,2024-01-07,23:30,0,.,20,80,20",
    ]
    iso = ["ID,DATETIME,EVID,AMT,DV,WT,CRP"] + [
        ",".join([r.split(",")[0], f"{r.split(',')[1]}T{r.split(',')[2]}", *r.split(",")[3:]])
        for r in dated[1:]
    ]
    european = [dated[0]] + [
        ",".join(
            [r.split(",")[0], "/".join(reversed(r.split(",")[1].split("-"))), *r.split(",")[2:]]
        )
        for r in dated[1:]
    ]
    expected = read_patients(write(tmp_path, relative, "relative.csv")).patients
    assert read_patients(write(tmp_path, dated, "dated.csv")).patients == expected
    assert read_patients(write(tmp_path, iso, "iso.csv")).patients == expected
    with raises("row 2, field DATE", "ambiguous", "date_format"):
        read_patients(write(tmp_path, european, "european.csv"))
    read = read_patients(write(tmp_path, european, "european.csv"), date_format="%d/%m/%Y")
    assert read.patients == expected


# --------------------------------------------------------------------------------------
# $INPUT lists and IGNORE=
# --------------------------------------------------------------------------------------

REFERENCE = ["ID,TIME,AMT,DV,EVID,WT,CRP", "1,0,600,.,1,63,45", "1,7,.,25,0,63,45"]


@pytest.mark.parametrize(
    ("lines", "options"),
    [
        # no header, the columns named by $INPUT (with a dropped one)
        (["1,0,600,x,.,1,63,45", "1,7,.,y,25,0,63,45"], "ID TIME AMT NOTE=DROP DV EVID WT CRP"),
        # a header with other names: recognised and skipped; aliases
        (
            ["SUBJ,T,DOSE,CONC,FLAG,KG,CRP", "1,0,600,.,1,63,45", "1,7,.,25,0,63,45"],
            "SUBJ=ID T=TIME DOSE=AMT CONC=DV FLAG=EVID KG=WT CRP",
        ),
        # $INPUT text as written in a control stream, blank-separated data, =DROP/SKIP
        (["1 0 600 0 . 1 63 45", "1 7 . 0 25 0 63 45"], "$INPUT ID TIME AMT SKIP DV EVID WT CRP"),
        (["1,0,600,0,.,1,63,45", "1,7,.,0,25,0,63,45"], "ID TIME AMT =DROP DV EVID WT CRP"),
    ],
)
def test_input_list_equals_a_header(tmp_path, lines, options):
    expected = read_patients(write(tmp_path, REFERENCE, "reference.csv")).patients
    got = read_patients(write(tmp_path, lines, "input.csv"), input=options).patients
    assert got == expected


@pytest.mark.parametrize(
    ("lines", "ignore"),
    [
        (["# comment", *REFERENCE[:2], "# another", REFERENCE[2]], "#"),
        (
            [
                "C,ID,TIME,AMT,DV,EVID,WT,CRP",
                "C,1,0,900,.,1,63,45",
                *[f".,{r}" for r in REFERENCE[1:]],
            ],
            "C",
        ),
        (["ID,TIME,AMT,DV,EVID,WT,CRP", "@ excluded", "A,1,2,3", *REFERENCE[1:]], "@"),
    ],
)
def test_ignore_variants(tmp_path, lines, ignore):
    expected = read_patients(write(tmp_path, REFERENCE, "reference.csv")).patients
    if ignore == "C":  # the C column itself is dropped through $INPUT
        got = read_patients(
            write(tmp_path, lines, "c.csv"), ignore="C", input="C=DROP ID TIME AMT DV EVID WT CRP"
        )
    else:
        got = read_patients(write(tmp_path, lines, "ignore.csv"), ignore=ignore)
    assert got.patients == expected


def test_ignore_at_with_input_skips_the_header(tmp_path):
    expected = read_patients(write(tmp_path, REFERENCE, "reference.csv")).patients
    got = read_patients(
        write(tmp_path, REFERENCE, "at.csv"), ignore="@", input="ID TIME AMT DV EVID WT CRP"
    )
    assert got.patients == expected


# --------------------------------------------------------------------------------------
# EVID, MDV, CMT, RATE=-2, SS, resets
# --------------------------------------------------------------------------------------

FULL = "ID,TIME,EVID,AMT,RATE,SS,II,CMT,MDV,DV,WT,CRP,ALB"


def test_evid2_covariate_change_is_kept_and_the_baseline_used(tmp_path):
    rows = [
        FULL,
        "P1,0,1,600,-2,.,.,1,1,.,63,45,30",
        "P1,3,2,.,.,.,.,.,1,.,63,20,33",
        "P1,7,0,.,.,.,.,2,0,25,63,20,33",
        "P1,10,0,.,.,.,.,1,1,.,63,20,33",
    ]
    patient_set = read_patients(write(tmp_path, rows), default_infusion_duration_day=0.125)
    patient = only(patient_set)
    assert patient.crp_mg_l == 45.0 and patient.doses == (Dose(0.0, 600.0, 0.125),)
    later = (("ALB", 33.0), ("CRP", 20.0), ("WT", 63.0))
    assert patient.covariate_records == (
        CovariateRecord(0.0, (("ALB", 30.0), ("CRP", 45.0), ("WT", 63.0))),
        CovariateRecord(3.0, later),
        CovariateRecord(7.0, later),
        CovariateRecord(10.0, later),  # the MDV=1 row's values are kept too
    )
    assert [r.row for r in patient.covariate_records] == [2, 3, 4, 5]
    notes = "\n".join(patient_set.notes)
    assert (
        "row 3, field CRP: CRP differs from the baseline 45 (row 2): 20 (row 3), 20 (row" in notes
    )
    assert "the current model uses the baseline value" in notes
    assert "ALB kept per record" in notes
    assert "row 5, field MDV: observation row with MDV=1 ignored" in notes


def test_steady_state_is_kept_and_reaches_the_engine(tmp_path):
    rows = [FULL, "P1,0,1,600,.,1,56,1,1,.,63,45,.", "P1,7,0,.,.,.,.,1,0,25,63,45,."]
    patient = only(read_patients(write(tmp_path, rows)))
    assert patient.doses[0].steady_state == 1
    assert patient.doses[0].steady_state_interval_day == 56.0
    assert unsupported_by_engine(patient) is None
    # the arrays every forecasting path reads carry the steady state
    assert patient.dose_ss_interval_day.tolist() == [56.0]
    assert patient.dose_end_day.tolist() == [NO_END_DAY]
    # an infusion longer than its interval is refused, naming the row
    long = replace(patient, doses=(replace(patient.doses[0], steady_state_interval_day=0.05),))
    with raises("row 2, field II", "shorter than the infusion"):
        _ = long.dose_time_day


def test_reset_cuts_earlier_doses_and_reaches_the_engine(tmp_path):
    rows = [
        FULL,
        "P1,0,1,600,.,.,.,1,1,.,63,45,.",
        "P1,7,0,.,.,.,.,1,0,25,63,45,.",
        "P1,20,4,700,.,.,.,1,1,.,63,45,.",
        "P1,27,0,.,.,.,.,1,0,30,63,45,.",
    ]
    patient = only(read_patients(write(tmp_path, rows)))
    assert patient.resets == (Reset(20.0),)
    assert patient.doses == (
        Dose(0.0, 600.0, TWO_HOURS, end_time_day=20.0),
        Dose(20.0, 700.0, TWO_HOURS),
    )
    assert unsupported_by_engine(patient) is None
    assert patient.dose_end_day.tolist() == [20.0, NO_END_DAY]
    assert patient.dose_ss_interval_day.tolist() == [0.0, 0.0]


def test_reset_before_any_dose_is_exact_and_dropped(tmp_path):
    rows = [
        FULL,
        "P1,0,3,.,.,.,.,.,1,.,63,45,.",
        "P1,0,1,600,.,.,.,1,1,.,63,45,.",
        "P1,7,0,.,.,.,.,1,0,25,63,45,.",
    ]
    patient_set = read_patients(write(tmp_path, rows))
    assert only(patient_set).resets == ()
    assert any("reset before any dose" in n for n in patient_set.notes)


# --------------------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------------------


def test_sample_during_infusion_and_mg_per_kg_notes(tmp_path):
    rows = ["ID,TIME,EVID,AMT,DUR,DV,WT,CRP", "P1,0,1,10,0.125,.,63,45", "P1,0.1,0,.,.,3,63,45"]
    notes = "\n".join(read_patients(write(tmp_path, rows)).notes)
    assert "row 3, field TIME: sample at day 0.1 is taken during the infusion of row 2" in notes
    assert "row 2, field AMT: AMT 10 mg looks like a dose in mg/kg" in notes
    assert "630 mg" in notes


def test_examples_still_read_without_notes():
    assert read_patients(example_path()).notes == ()


# --------------------------------------------------------------------------------------
# DataFrames, units, the writer's round trip
# --------------------------------------------------------------------------------------


def test_dataframe_equals_the_file(tmp_path):
    expected = read_patients(write(tmp_path, ADDL_ROWS, "addl.csv"))
    frame = pd.read_csv(tmp_path / "addl.csv", na_values=["."])  # IDs as text, NaN cells
    frame["ID"] = frame["ID"].astype(str)
    assert read_patients(frame).patients == expected.patients
    numeric = pd.DataFrame(
        {"ID": [1.0, 1.0], "TIME": [0, 7], "AMT": [600, np.nan], "DV": [np.nan, 25.0],
         "WT": [63] * 2, "CRP": [45] * 2}
    )  # fmt: skip
    patient_set = read_patients(numeric)
    assert patient_set.ids == ("1",) and patient_set.source == "DataFrame"


def test_units_are_checked_and_kept(tmp_path):
    path = write(tmp_path, REFERENCE)
    assert read_patients(path, units=["alb=g/l"]).units == (("ALB", "g/L"),)
    assert read_patients(path, units={"ALB": "g/dL"}).units == (("ALB", "g/dL"),)
    with raises("units: ALB='mg/dL' is not a unit the current model knows", "ALB=g/L"):
        read_patients(path, units={"ALB": "mg/dL"})
    with raises("units: 'ALB'", "NAME=UNIT"):
        read_patients(path, units=["ALB"])


def test_writer_round_trips_ss_resets_and_covariate_records(tmp_path):
    rows = [
        FULL,
        "P1,0,1,600,.,.,.,1,1,.,63,45,30",
        "P1,3,2,.,.,.,.,.,1,.,63,20,33",
        "P1,7,0,.,.,.,.,2,0,25,63,20,33",
        "P1,9,2,.,.,.,.,.,1,.,63,20,33",
        "P1,20,4,700,14400,.,.,1,1,.,64,20,33",
        "P1,20,0,.,.,.,.,1,1,.,64,21,.",  # MDV=1: a third record at day 20
        "P1,27,0,.,.,.,.,1,0,30,64,20,33",
        "P1,30,0,.,.,.,.,1,0,20,.,.,.",  # no covariates: no record
        "P2,0,1,600,.,1,28,1,1,.,70,10,40",
        "P2,0,1,300,.,2,14,1,1,.,70,10,40",  # hmm: two doses at one time are an error
    ]
    with raises("patient 'P2', row 11, field TIME", "duplicate"):
        read_patients(write(tmp_path, rows), allow_unsupported=True)
    rows[-1] = "P2,1,1,300,.,2,14,1,1,.,70,10,40"
    original = read_patients(write(tmp_path, rows), allow_unsupported=True)
    written = write_nonmem_csv(original.patients, tmp_path / "written.csv")
    again = read_patients(written, allow_unsupported=True)
    assert again.patients == original.patients
    for before, after in zip(original.patients, again.patients, strict=True):
        assert before.covariate_records == after.covariate_records
        assert before.resets == after.resets
    assert original.by_id("P1").doses[0].end_time_day == 20.0
    assert original.by_id("P2").doses[1].steady_state == 2


def test_writer_round_trips_expanded_addl_and_python_patients(tmp_path):
    original = read_patients(write(tmp_path, ADDL_ROWS))
    again = read_patients(write_nonmem_csv(original.patients, tmp_path / "w.csv"))
    assert again.patients == original.patients
    python = Patient("X", 70.0, 30.0, (Dose(0.0, 700.0, 0.125), Dose(14.0, 700.0, 0.125)))
    assert read_patients(write_nonmem_csv([python], tmp_path / "p.csv")).patients == (python,)


def test_without_evid_a_row_with_an_amount_is_a_dose_and_cmt2_is_observed(tmp_path):
    rows = ["ID TIME AMT CMT MDV DV WT CRP", "1 0 600 1 1 . 63 45", "1 7 . 2 0 25 63 45"]
    expected = read_patients(write(tmp_path, REFERENCE, "reference.csv")).patients
    assert read_patients(write(tmp_path, rows)).patients == expected


def test_clock_times_with_durations_in_hours(tmp_path):
    dated = [
        "ID,DATETIME,EVID,AMT,DUR,DV,WT,CRP",
        "P1,2024-03-01T08:00,1,600,3,.,63,45",
        "P1,2024-03-08T08:00,0,.,.,25,63,45",
    ]
    patient = only(read_patients(write(tmp_path, dated), time_unit="hours"))
    assert patient.doses == (Dose(0.0, 600.0, 0.125),)
    assert patient.obs_time_day.tolist() == [7.0]


def test_rows_skipped_by_ignore_are_counted_in_a_note(tmp_path):
    lines = ["ID,TIME,AMT,DV,EVID,WT,CRP", "1,0,600,.,1,63,45", "A1,0,600,.,1,63,45"]
    patient_set = read_patients(write(tmp_path, lines), ignore="@")
    assert patient_set.ids == ("1",)
    assert "ignore='@' (IGNORE=) skipped 1 row: 3" in patient_set.notes


def test_steady_state_inside_an_addl_series_is_an_error(tmp_path):
    rows = [
        "ID,TIME,EVID,AMT,ADDL,II,SS,DV,WT,CRP",
        "P1,0,1,600,3,14,.,.,63,45",
        "P1,20,1,600,.,14,1,.,63,45",
    ]
    with raises("row 3, field SS", "falls within the additional doses (ADDL) of row 2"):
        read_patients(write(tmp_path, rows), allow_unsupported=True)


def test_cohort_from_a_dataframe_equals_the_file(tmp_path):
    from asuc_bayes.data.dataset import read_cohort

    lines = [
        "ID,TIME,EVID,AMT,DV,DVID,WT,CRP",
        "P1,0,1,600,.,.,63,45",
        "P1,7,0,.,25,1,63,45",
        "P1,90,0,.,0,2,63,45",
    ]
    path = write(tmp_path, lines)
    frame = pd.read_csv(path, na_values=["."])
    assert read_cohort(frame).patients == read_cohort(path).patients


def test_evid2_without_covariates_is_reported(tmp_path):
    rows = [FULL, "P1,0,1,600,.,.,.,1,1,.,63,45,.", "P1,3,2,.,.,.,.,.,1,.,.,.,."]
    patient_set = read_patients(write(tmp_path, rows))
    assert "patient 'P1', row 3, field EVID: other-type event (EVID=2) without" in "\n".join(
        patient_set.notes
    )
    assert len(only(patient_set).covariate_records) == 1
