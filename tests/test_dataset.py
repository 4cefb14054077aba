"""Input readers and validation: bundled examples, NONMEM CSV, TOML/YAML, error messages."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from asuc_bayes.data.dataset import (
    ABOVE_ULOQ,
    BELOW_LLOQ,
    MEASURED,
    Dose,
    EventRecord,
    InputError,
    Observation,
    Patient,
    PatientSet,
    PlausibilityLimits,
    example_path,
    parse_patients,
    patients_from_records,
    read_patients,
    validate_patient,
)

EXAMPLES = Path(example_path()).parent
TWO_HOURS = 1.0 / 12.0

HEADER = "ID,TIME,EVID,AMT,DV,CENS,MDV,DVID,WT,CRP"
#: One valid patient: dose day 0 and 14, a sample on day 7 (rows 2, 3, 4).
VALID_ROWS = [
    "P01,0,1,600,.,0,1,.,63,45",
    "P01,7,0,.,25,0,0,1,63,45",
    "P01,14,1,600,.,0,1,.,63,45",
]


def write_csv(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "data.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def raises_input_error(*parts: str):
    """``pytest.raises`` matching every part (literally) in order."""
    return pytest.raises(InputError, match=".*".join(re.escape(part) for part in parts))


# --------------------------------------------------------------------------------------
# Bundled examples
# --------------------------------------------------------------------------------------


def test_example_dataset_covers_the_validation_cases():
    patient_set = read_patients(example_path())
    assert isinstance(patient_set, PatientSet)
    assert patient_set.ids == ("P01", "P02", "P03", "P04", "P05", "P06", "P07", "P08")
    assert patient_set.notes == ()
    patients = {p.id: p for p in patient_set.patients}
    assert len(patients["P01"].observations) == 1
    assert len(patients["P02"].observations) >= 3
    assert BELOW_LLOQ in patients["P03"].obs_censoring
    assert ABOVE_ULOQ in patients["P04"].obs_censoring
    assert patients["P05"].observations == ()
    assert list(patients["P06"].dose_time_day) == [0.0, 4.0, 14.0]
    # planned doses after the last sample, durations from RATE (2 h) and DUR (3 h)
    p07 = patients["P07"]
    assert p07.dose_time_day.max() > p07.obs_time_day.max()
    assert list(p07.dose_duration_day) == pytest.approx([TWO_HOURS, 0.125, 0.125])
    censoring = {int(c) for p in patient_set.patients for c in p.obs_censoring}
    assert censoring == {MEASURED, BELOW_LLOQ, ABOVE_ULOQ}
    for patient in patient_set.patients:
        assert 45 <= patient.weight_kg <= 100
        assert 5 <= patient.crp_mg_l <= 200
        assert all(300 <= d.amount_mg <= 1000 for d in patient.doses)
        assert all(0 < o.value_mg_l <= 100 for o in patient.observations)
        assert patient.doses[0].time_day == 0.0


def test_patient_files_agree_with_the_csv_patient():
    from_toml = read_patients(EXAMPLES / "patient.toml")
    from_yaml = read_patients(EXAMPLES / "patient.yaml")
    (toml_patient,) = from_toml.patients
    (yaml_patient,) = from_yaml.patients
    csv_patient = read_patients(example_path()).by_id(toml_patient.id)
    assert toml_patient == yaml_patient == csv_patient
    assert toml_patient.doses[1].row == "doses[1]"


def test_example_path_points_into_the_package():
    path = example_path()
    assert path.name == "patients.csv" and path.parent.name == "examples"
    assert path.parent.parent.name == "asuc_bayes"
    assert path.is_file()


# --------------------------------------------------------------------------------------
# NONMEM CSV: valid variants
# --------------------------------------------------------------------------------------


def test_minimal_csv_parses_with_default_two_hour_infusion(tmp_path):
    (patient,) = read_patients(write_csv(tmp_path, VALID_ROWS)).patients
    assert patient == Patient(
        "P01",
        63.0,
        45.0,
        (Dose(0.0, 600.0, TWO_HOURS), Dose(14.0, 600.0, TWO_HOURS)),
        (Observation(7.0, 25.0),),
    )
    assert [d.row for d in patient.doses] == [2, 4]
    assert patient.observations[0].row == 3


def test_default_infusion_duration_is_configurable(tmp_path):
    (patient,) = read_patients(
        write_csv(tmp_path, VALID_ROWS), default_infusion_duration_day=0.125
    ).patients
    assert list(patient.dose_duration_day) == [0.125, 0.125]


def test_rate_and_dur_give_the_infusion_duration(tmp_path):
    header = "ID,TIME,EVID,AMT,RATE,DUR,DV,WT,CRP"
    rows = [
        "1,0,1,700,8400,.,.,70,30",  # 700 mg / 8400 mg/day = 2 h
        "1,7,1,700,.,0.0417,.,70,30",  # DUR in days
        "1,14,1,700,-2,.,.,70,30",  # RATE=-2: the default (model) duration
        "1,21,1,700,4200,0.1667,.,70,30",  # both, consistent
    ]
    (patient,) = read_patients(write_csv(tmp_path, rows, header)).patients
    assert list(patient.dose_duration_day) == pytest.approx([TWO_HOURS, 0.0417, TWO_HOURS, 0.1667])


def test_rate_and_dur_inconsistent(tmp_path):
    header = "ID,TIME,EVID,AMT,RATE,DUR,DV,WT,CRP"
    rows = ["P02,0,1,700,8400,0.5,.,70,30"]
    with raises_input_error("patient 'P02', row 2, field RATE", "disagree"):
        read_patients(write_csv(tmp_path, rows, header))


def test_column_names_are_case_insensitive_and_ids_stay_text(tmp_path):
    header = "id,Time,evid,Amt,dv,Cens,wt,crp"
    rows = [
        " 007 ,0,1,600,.,0,63,45",
        " 007 ,7,0,.,25,0,63,45",
        "12,0,1,500,.,0,55,20",
        "12,5,0,.,0.5,1,55,20",
    ]
    patient_set = read_patients(write_csv(tmp_path, rows, header))
    assert patient_set.ids == ("007", "12")
    assert patient_set.by_id("12").observations == (Observation(5.0, 0.5, BELOW_LLOQ),)


def test_records_in_time_order_and_patients_keep_first_appearance_order(tmp_path):
    rows = [
        "B,0,1,600,.,0,1,.,63,45",
        "B,2,0,.,40,0,0,1,63,45",
        "B,10,0,.,12,0,0,1,63,45",
        "B,14,1,600,.,0,1,.,63,45",
        "A,0,1,600,.,0,1,.,70,30",
    ]
    patient_set = read_patients(write_csv(tmp_path, rows))
    assert patient_set.ids == ("B", "A")
    b = patient_set.by_id("B")
    assert list(b.dose_time_day) == [0.0, 14.0]
    assert list(b.obs_time_day) == [2.0, 10.0]
    assert [o.row for o in b.observations] == [3, 4]


def test_time_going_back_within_a_patient_is_an_error(tmp_path):
    # NONMEM rejects data records out of time order; so do we (no silent re-sorting)
    rows = ["B,14,1,600,.,0,1,.,63,45", "B,10,0,.,12,0,0,1,63,45"]
    with raises_input_error("patient 'B', row 3, field TIME", "time goes back: 10 after 14"):
        read_patients(write_csv(tmp_path, rows))


def test_notes_for_mdv_rows_colectomy_records_and_unknown_columns(tmp_path):
    header = HEADER + ",SEX,COMMENT"
    rows = [
        "P01,0,1,600,.,0,1,.,63,45,1,first",
        "P01,7,0,.,25,0,1,1,63,45,1,haemolysed",
        "P01,9,0,.,20,0,0,1,63,45,1,",
        "P01,40,0,.,1,0,0,2,63,45,1,",
    ]
    patient_set = read_patients(write_csv(tmp_path, rows, header))
    (patient,) = patient_set.patients
    assert patient.observations == (Observation(9.0, 20.0),)
    assert patient.events == (EventRecord(40.0, 1),)
    notes = "\n".join(patient_set.notes)
    # a numeric column is kept per record (a library model may declare it); text is not
    assert "column SEX kept per record as covariates" in notes
    assert "column COMMENT ignored (not a number on every row" in notes
    assert [dict(r.values).get("SEX") for r in patient.covariate_records] == [1.0] * 4
    assert "patient 'P01', row 3, field MDV" in notes
    assert "patient 'P01', row 5" in notes and "ignored by forecasting" in notes
    assert set(patient.notes) <= set(patient_set.notes)


def test_mapbayr_blq_and_lloq_columns(tmp_path):
    header = "ID,TIME,EVID,AMT,DV,BLQ,LLOQ,WT,CRP"
    rows = ["P01,0,1,600,.,0,.,63,45", "P01,7,0,.,.,1,0.5,63,45", "P01,9,0,.,3.1,0,0.5,63,45"]
    (patient,) = read_patients(write_csv(tmp_path, rows, header)).patients
    assert patient.observations == (
        Observation(7.0, 0.5, BELOW_LLOQ),
        Observation(9.0, 3.1, MEASURED),
    )


def test_blq_without_lloq(tmp_path):
    header = "ID,TIME,EVID,AMT,DV,BLQ,LLOQ,WT,CRP"
    rows = ["P01,0,1,600,.,0,.,63,45", "P01,7,0,.,.,1,.,63,45"]
    with raises_input_error("patient 'P01', row 3, field LLOQ", "censoring flag without a limit"):
        read_patients(write_csv(tmp_path, rows, header))


def test_covariates_varying_within_a_patient_use_the_first_value(tmp_path):
    rows = [
        "P01,0,1,600,.,0,1,.,.,45",
        "P01,7,0,.,25,0,0,1,63,45",
        "P01,14,1,600,.,0,1,.,65,50",
    ]
    patient_set = read_patients(write_csv(tmp_path, rows))
    (patient,) = patient_set.patients
    assert (patient.weight_kg, patient.crp_mg_l) == (63.0, 45.0)
    notes = "\n".join(patient_set.notes)
    assert "row 4, field WT" in notes and "row 4, field CRP" in notes


def test_accepted_units_and_semicolon_separator(tmp_path):
    header = "ID;TIME;EVID;AMT;DV;WT;CRP;DVUNIT;AMTUNIT"
    rows = ["P01;0;1;600;.;63;45;.;mg", "P01;7;0;.;25;63;45;ug/mL;."]
    (patient,) = read_patients(write_csv(tmp_path, rows, header)).patients
    assert patient.observations == (Observation(7.0, 25.0),)


def test_semicolon_rows_in_a_bom_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("\ufeff" + "\n".join([HEADER, *VALID_ROWS]), encoding="utf-8")
    assert read_patients(path).ids == ("P01",)


def test_validate_patient_sorts_and_accepts_python_patients():
    patient = Patient(
        "x", 70, 30, (Dose(14, 700, TWO_HOURS), Dose(0, 700, TWO_HOURS)), (Observation(7, 20),)
    )
    checked = validate_patient(patient)
    assert list(checked.dose_time_day) == [0.0, 14.0]
    assert checked == dataclasses.replace(patient, doses=tuple(reversed(patient.doses)))


def test_custom_limits():
    patient = Patient("x", 70, 30, (Dose(0, 700, TWO_HOURS),))
    with raises_input_error("patient 'x'", "field amount_mg", "dose must be between"):
        validate_patient(patient, PlausibilityLimits(dose_mg_max=500))


# --------------------------------------------------------------------------------------
# NONMEM CSV: errors name the patient, the row and the field
# --------------------------------------------------------------------------------------

CSV_ERRORS = {
    "non-numeric TIME": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,abc,0,.,25,0,0,1,63,45"],
        ("patient 'P01', row 3, field TIME", "'abc' is not a number"),
    ),
    "empty TIME": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,,0,.,25,0,0,1,63,45"],
        ("patient 'P01', row 3, field TIME", "empty cell"),
    ),
    "empty AMT on a dose": (
        ["P01,0,1,.,.,0,1,.,63,45"],
        ("patient 'P01', row 2, field AMT", "empty cell"),
    ),
    "negative dose": (
        ["P03,0,1,600,.,0,1,.,63,45", "P03,14,1,-600,.,0,1,.,63,45"],
        ("patient 'P03', row 3, field AMT", "dose must be > 0 mg, got -600", "fix:"),
    ),
    "zero dose": (
        ["P03,0,1,0,.,0,1,.,63,45"],
        ("patient 'P03', row 2, field AMT", "dose must be > 0 mg"),
    ),
    "implausible dose": (
        ["P03,0,1,60000,.,0,1,.,63,45"],
        ("patient 'P03', row 2, field AMT", "between 1 and 3000 mg"),
    ),
    "weight out of range": (
        ["P01,0,1,600,.,0,1,.,630,45"],
        ("patient 'P01', row 2, field WT", "body weight must be between 20 and 250 kg"),
    ),
    "weight missing": (
        ["P01,0,1,600,.,0,1,.,.,45", "P01,7,0,.,25,0,0,1,.,45"],
        ("patient 'P01', row 2, field WT", "missing on every row"),
    ),
    "CRP zero": (
        ["P01,0,1,600,.,0,1,.,63,0"],
        ("patient 'P01', row 2, field CRP", "between 0.1 and 1000 mg/L"),
    ),
    "CRP missing": (
        ["P01,0,1,600,.,0,1,.,63,."],
        ("patient 'P01', row 2, field CRP", "missing on every row"),
    ),
    "sample at the first dose": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,0,0,.,25,0,0,1,63,45"],
        ("patient 'P01', row 3, field TIME", "not after the first dose"),
    ),
    "sample before the first dose": (
        ["P01,1,0,.,25,0,0,1,63,45", "P01,2,1,600,.,0,1,.,63,45"],
        ("patient 'P01', row 2, field TIME", "not after the first dose"),
    ),
    "negative time": (
        ["P01,-1,1,600,.,0,1,.,63,45"],
        ("patient 'P01', row 2, field TIME", "time must be ≥ 0"),
    ),
    "time beyond a year": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,400,0,.,25,0,0,1,63,45"],
        ("patient 'P01', row 3, field TIME", "≤ 365"),
    ),
    "zero measured concentration": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,0,0,0,1,63,45"],
        ("patient 'P01', row 3, field DV", "must be > 0", "CENS=1"),
    ),
    "negative measured concentration": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,-2,0,0,1,63,45"],
        ("patient 'P01', row 3, field DV", "must be > 0"),
    ),
    "implausible concentration": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,25000,0,0,1,63,45"],
        ("patient 'P01', row 3, field DV", "≤ 2000 mg/L"),
    ),
    "empty DV on an observation": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,.,0,0,1,63,45"],
        ("patient 'P01', row 3, field DV", "empty cell", "MDV=1"),
    ),
    "BLQ without a limit": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,.,1,0,1,63,45"],
        ("patient 'P01', row 3, field DV", "censoring flag without a limit"),
    ),
    "BLQ with zero limit": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,0,1,0,1,63,45"],
        ("patient 'P01', row 3, field DV", "censoring flag without a limit"),
    ),
    "ALQ without a limit": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,.,-1,0,1,63,45"],
        ("patient 'P01', row 3, field DV", "censoring flag without a limit", "ULOQ"),
    ),
    "CENS out of range": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,25,2,0,1,63,45"],
        ("patient 'P01', row 3, field CENS", "not supported: '2'"),
    ),
    "EVID out of range": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,5,.,.,0,0,1,63,45"],
        ("patient 'P01', row 3, field EVID", "EVID values not supported: '5'"),
    ),
    "MDV out of range": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,25,0,3,1,63,45"],
        ("patient 'P01', row 3, field MDV", "not supported"),
    ),
    "DVID out of range": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,25,0,0,3,63,45"],
        ("patient 'P01', row 3, field DVID", "not supported"),
    ),
    "colectomy flag out of range": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,40,0,.,5,0,0,2,63,45"],
        ("patient 'P01', row 3, field DV", "not supported"),
    ),
    "duplicate sample rows": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,7,0,.,25,0,0,1,63,45", "P01,7,0,.,25,0,0,1,63,45"],
        ("patient 'P01', row 4, field TIME", "duplicate record", "row 3"),
    ),
    "duplicate dose rows": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,0,1,600,.,0,1,.,63,45"],
        ("patient 'P01', row 3, field TIME", "duplicate record", "row 2"),
    ),
    "no dose": (
        ["P01,7,0,.,25,0,0,1,63,45"],
        ("patient 'P01', row 2, field EVID", "no dose"),
    ),
    "overlapping infusions": (
        ["P01,0,1,600,.,0,1,.,63,45", "P01,0.05,1,600,.,0,1,.,63,45"],
        ("patient 'P01', row 3, field TIME", "overlaps", "row 2"),
    ),
    "concentration on a dose row": (
        ["P01,0,1,600,12,0,1,.,63,45"],
        ("patient 'P01', row 2, field DV", "dose row"),
    ),
    "rows of a patient not contiguous": (
        ["P01,0,1,600,.,0,1,.,63,45", "P02,0,1,600,.,0,1,.,63,45", "P01,14,1,600,.,0,1,.,63,45"],
        ("patient 'P01', row 4, field ID", "not contiguous"),
    ),
    "wrong number of cells": (
        ["P01,0,1,600,.,0,1,.,63"],
        ("row 2", "9 cells but the header has 10 columns"),
    ),
}


@pytest.mark.parametrize("rows, expected", CSV_ERRORS.values(), ids=CSV_ERRORS.keys())
def test_csv_errors_name_patient_row_and_field(tmp_path, rows, expected):
    with raises_input_error(*expected):
        read_patients(write_csv(tmp_path, rows))


def test_error_messages_start_with_the_file_name(tmp_path):
    path = write_csv(tmp_path, ["P03,0,1,-600,.,0,1,.,63,45"])
    with pytest.raises(InputError) as info:
        read_patients(path)
    assert str(info.value).startswith(f"{path}: patient 'P03', row 2, field AMT:")


def test_missing_required_column(tmp_path):
    header = "ID,TIME,EVID,AMT,DV,WT"
    with raises_input_error("row 1, field CRP", "missing required column"):
        read_patients(write_csv(tmp_path, ["P01,0,1,600,.,63"], header))


def test_rate_modelled_or_bolus_is_not_supported(tmp_path):
    header = "ID,TIME,EVID,AMT,RATE,DV,WT,CRP"
    for rate, meaning in (("-1", "estimated by the model"), ("0", "bolus"), ("-3", "not a rate")):
        with raises_input_error("patient 'P01', row 2, field RATE", meaning, "not supported"):
            read_patients(write_csv(tmp_path, [f"P01,0,1,600,{rate},.,63,45"], header))


def test_infusion_too_long(tmp_path):
    header = "ID,TIME,EVID,AMT,DUR,DV,WT,CRP"
    with raises_input_error("patient 'P01', row 2, field DUR", "infusion duration"):
        read_patients(write_csv(tmp_path, ["P01,0,1,600,2,.,63,45"], header))


@pytest.mark.parametrize("unit", ["ng/mL", "mg/dL"])
def test_unknown_concentration_units(tmp_path, unit):
    header = "ID,TIME,EVID,AMT,DV,WT,CRP,DVUNIT"
    rows = ["P01,0,1,600,.,63,45,.", f"P01,7,0,.,25000,63,45,{unit}"]
    with raises_input_error("patient 'P01', row 3, field DVUNIT", "unknown units", "fix:"):
        read_patients(write_csv(tmp_path, rows, header))


def test_bare_unit_column_follows_the_record_type(tmp_path):
    header = "ID,TIME,EVID,AMT,DV,WT,CRP,UNIT"
    rows = ["P01,0,1,600,.,63,45,mg", "P01,7,0,.,25,63,45,mg/L"]
    assert read_patients(write_csv(tmp_path, rows, header)).ids == ("P01",)
    rows = ["P01,0,1,600,.,63,45,mg/kg"]
    with raises_input_error("patient 'P01', row 2, field UNIT", "unknown units 'mg/kg'"):
        read_patients(write_csv(tmp_path, rows, header))


def test_empty_file_and_header_only(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with raises_input_error("empty.csv", "empty"):
        read_patients(path)
    with raises_input_error("row 1", "no data rows"):
        read_patients(write_csv(tmp_path, []))


def test_missing_file_and_unknown_suffix(tmp_path):
    with raises_input_error("nope.csv", "no such file"):
        read_patients(tmp_path / "nope.csv")
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"")
    with raises_input_error("'.xlsx'", ".csv", ".toml", ".yaml", ".yml"):
        read_patients(path)


# --------------------------------------------------------------------------------------
# TOML / YAML patient files
# --------------------------------------------------------------------------------------

README_TOML = """
[[patient]]
id = "P01"
weight_kg = 63
crp_mg_l = 45
doses = [{day = 0, mg = 600}, {day = 14, mg_per_kg = 10, duration_h = 2}]
samples = [{day = 7, mg_l = 12.3}, {day = 10, below_lloq = 0.4}, {day = 1, above_uloq = 45}]
"""


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "patient.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_readme_toml_example(tmp_path):
    (patient,) = read_patients(write_toml(tmp_path, README_TOML)).patients
    assert patient == Patient(
        "P01",
        63.0,
        45.0,
        (Dose(0.0, 600.0, TWO_HOURS), Dose(14.0, 630.0, 2.0 / 24.0)),
        (
            Observation(1.0, 45.0, ABOVE_ULOQ),
            Observation(7.0, 12.3, MEASURED),
            Observation(10.0, 0.4, BELOW_LLOQ),
        ),
    )
    assert [o.row for o in patient.observations] == ["samples[2]", "samples[0]", "samples[1]"]


def test_yaml_equals_toml(tmp_path):
    yaml_path = tmp_path / "patient.yml"
    yaml_path.write_text(
        "patient:\n"
        "  - id: P01\n"
        "    weight_kg: 63\n"
        "    crp_mg_l: 45\n"
        "    doses: [{day: 0, mg: 600}, {day: 14, mg_per_kg: 10, duration_h: 2}]\n"
        "    samples:\n"
        "      - {day: 7, mg_l: 12.3}\n"
        "      - {day: 10, below_lloq: 0.4}\n"
        "      - {day: 1, above_uloq: 45}\n",
        encoding="utf-8",
    )
    assert (
        read_patients(yaml_path).patients
        == read_patients(write_toml(tmp_path, README_TOML)).patients
    )


def test_colectomy_and_duration_day(tmp_path):
    text = README_TOML.replace("mg = 600}", "mg = 600, duration_day = 0.125}") + (
        "colectomy = {day = 40, event = 1}\n"
    )
    patient_set = read_patients(write_toml(tmp_path, text))
    (patient,) = patient_set.patients
    assert patient.events == (EventRecord(40.0, 1),)
    assert patient.doses[0].duration_day == 0.125
    assert any("colectomy" in n and "ignored by forecasting" in n for n in patient_set.notes)


def test_numeric_ids_in_patient_files(tmp_path):
    text = README_TOML.replace('id = "P01"', "id = 12")
    assert read_patients(write_toml(tmp_path, text)).ids == ("12",)


TOML_ERRORS = {
    "typo in a patient key": (
        ("weight_kg", "weigth_kg"),
        ("patient 'P01', patient[0], field weigth_kg", "unknown key", "accepted keys", "weight_kg"),
    ),
    "unknown dose key": (
        ("duration_h = 2}", "duration_h = 2, mgkg = 3}"),
        ("patient 'P01', doses[1], field mgkg", "unknown key", "mg_per_kg"),
    ),
    "unknown sample key": (
        ("{day = 10, below_lloq = 0.4}", "{day = 10, blq = 0.4}"),
        ("patient 'P01', samples[1], field blq", "unknown key", "below_lloq"),
    ),
    "two amounts": (
        ("{day = 0, mg = 600}", "{day = 0, mg = 600, mg_per_kg = 10}"),
        ("patient 'P01', doses[0], field mg_per_kg", "only one of mg, mg_per_kg"),
    ),
    "no amount": (
        ("{day = 0, mg = 600}", "{day = 0}"),
        ("patient 'P01', doses[0], field mg/mg_per_kg", "missing"),
    ),
    "no sample day": (
        ("{day = 7, mg_l = 12.3}", "{mg_l = 12.3}"),
        ("patient 'P01', samples[0], field day", "missing"),
    ),
    "negative dose": (
        ("mg = 600", "mg = -600"),
        ("patient 'P01', doses[0], field mg", "dose must be > 0 mg, got -600"),
    ),
    "zero mg per kg": (
        ("mg_per_kg = 10", "mg_per_kg = 0"),
        ("patient 'P01', doses[1], field mg_per_kg", "> 0 mg/kg"),
    ),
    "huge mg per kg": (
        ("mg_per_kg = 10", "mg_per_kg = 100"),
        ("patient 'P01', doses[1], field mg_per_kg", "between 1 and 3000 mg"),
    ),
    "zero measured concentration": (
        ("mg_l = 12.3", "mg_l = 0"),
        ("patient 'P01', samples[0], field mg_l", "must be > 0", "below_lloq"),
    ),
    "zero LLOQ": (
        ("below_lloq = 0.4", "below_lloq = 0"),
        ("patient 'P01', samples[1], field below_lloq", "censoring flag without a limit"),
    ),
    "sample at the first dose": (
        ("{day = 1, above_uloq = 45}", "{day = 0, above_uloq = 45}"),
        ("patient 'P01', samples[2], field day", "not after the first dose"),
    ),
    "non-numeric day": (
        ("{day = 7, mg_l = 12.3}", '{day = "seven", mg_l = 12.3}'),
        ("patient 'P01', samples[0], field day", "'seven' is not a number"),
    ),
    "implausible CRP": (
        ("crp_mg_l = 45", "crp_mg_l = 0"),
        ("patient 'P01', patient[0], field crp_mg_l", "between 0.1 and 1000"),
    ),
    "missing weight": (
        ("weight_kg = 63\n", ""),
        ("patient 'P01', patient[0], field weight_kg", "missing"),
    ),
    "no dose": (
        ("doses = [{day = 0, mg = 600}, {day = 14, mg_per_kg = 10, duration_h = 2}]", ""),
        ("patient 'P01', patient[0], field doses", "no dose"),
    ),
    "infusion too short": (
        ("duration_h = 2", "duration_h = 0.01"),
        ("patient 'P01', doses[1], field duration_h", "infusion duration"),
    ),
    "duplicate samples": (
        ("{day = 10, below_lloq = 0.4}", "{day = 7, mg_l = 11}"),
        ("patient 'P01', samples[1], field day", "duplicate sample", "samples[0]"),
    ),
    "colectomy flag": (
        ("crp_mg_l = 45", "crp_mg_l = 45\ncolectomy = {day = 40, event = 2}"),
        ("patient 'P01', colectomy, field event", "1 (colectomy) or 0"),
    ),
}


@pytest.mark.parametrize("edit, expected", TOML_ERRORS.values(), ids=TOML_ERRORS.keys())
def test_patient_file_errors_name_patient_entry_and_field(tmp_path, edit, expected):
    old, new = edit
    assert old in README_TOML
    with raises_input_error(*expected):
        read_patients(write_toml(tmp_path, README_TOML.replace(old, new, 1)))


def test_duplicate_patient_ids(tmp_path):
    with raises_input_error("patient 'P01', patient[1], field id", "duplicate patient ID"):
        read_patients(write_toml(tmp_path, README_TOML + README_TOML))


def test_unknown_top_level_key_and_invalid_toml(tmp_path):
    with raises_input_error("unknown top-level key 'patients'"):
        read_patients(write_toml(tmp_path, README_TOML.replace("[[patient]]", "[[patients]]")))
    with raises_input_error("patient.toml", "not valid TOML"):
        read_patients(write_toml(tmp_path, "[[patient]\n"))


def test_patients_from_records():
    patient_set = patients_from_records(
        [{"id": "A", "weight_kg": 70, "crp_mg_l": 30, "doses": [{"day": 0, "mg": 700}]}],
        source="api",
    )
    assert patient_set.source == "api"
    assert patient_set.patients == (Patient("A", 70.0, 30.0, (Dose(0.0, 700.0, TWO_HOURS),)),)


# -- uploads parsed in memory -------------------------------------------------------------
@pytest.mark.parametrize("name", ["patients.csv", "patient.toml", "patient.yaml"])
def test_parse_patients_from_memory_equals_the_file_reader(name):
    path = EXAMPLES / name
    from_file = read_patients(path)
    for content in (path.read_bytes(), path.read_text(encoding="utf-8")):
        parsed = parse_patients(content, name)
        assert parsed.patients == from_file.patients
        assert len(parsed.notes) == len(from_file.notes)
        assert parsed.source == name


def test_parse_patients_rejects_size_type_and_encoding_with_the_file_name():
    text = (EXAMPLES / "patients.csv").read_bytes()
    with pytest.raises(InputError, match=r"^big\.csv: the file is .* more than the 100 accepted"):
        parse_patients(text, "big.csv", max_bytes=100)
    with pytest.raises(InputError, match=r"^notes\.txt: unknown file type '\.txt'"):
        parse_patients(text, "notes.txt")
    with pytest.raises(InputError, match=r"^latin\.csv: not UTF-8 text"):
        parse_patients("ID,TIME\nP\xe9,0\n".encode("latin-1"), "latin.csv")
    with pytest.raises(InputError, match=r"^bad\.toml: not valid TOML"):
        parse_patients(b"[[patient]\nid = 1", "bad.toml")
    # YAML is loaded as data only: a Python-object tag is refused, never constructed
    with pytest.raises(InputError, match=r"^evil\.yaml: not valid YAML"):
        parse_patients(b"patient: !!python/object/apply:os.system ['true']", "evil.yaml")


def test_input_errors_keep_patient_location_field_and_detail():
    csv_text = "\n".join([HEADER, VALID_ROWS[0], "P01,7,0,.,abc,0,0,1,63,45"])
    with pytest.raises(InputError) as raised:
        parse_patients(csv_text, "upload.csv")
    error = raised.value
    assert str(error).startswith("upload.csv: patient 'P01', row 3, field DV:")
    assert (error.patient_id, error.location, error.field) == ("P01", 3, "DV")
    assert error.detail.startswith("'abc' is not a number")
    record = {
        "id": "R1",
        "weight_kg": 70,
        "crp_mg_l": 20,
        "doses": [{"day": 0, "mg": 700}, {"day": -2, "mg": 700}],
    }
    with pytest.raises(InputError) as raised:
        patients_from_records([record])
    error = raised.value
    assert (error.patient_id, error.location, error.field) == ("R1", "doses[1]", "day")
    assert error.detail.startswith("time must be ≥ 0 days, got -2")
    assert str(error) == f"patient 'R1', doses[1], field day: {error.detail}"


def test_collect_errors_keeps_reading_past_a_bad_patient(tmp_path):
    """Batch reading: each bad patient's first error is kept (naming patient, row, field), the
    good patients are read, and file-level errors still raise."""
    csv = tmp_path / "batch.csv"
    csv.write_text(
        "ID,TIME,EVID,AMT,DV,WT,CRP\n"
        "P1,0,1,600,.,63,30\nP1,7,0,.,12,63,30\n"
        "P2,0,1,-5,.,63,30\nP2,7,0,.,abc,63,30\n"
        "P3,0,1,600,.,6300,30\n"
        "P4,0,1,600,.,70,20\nP4,9,0,.,8,70,20\n"
    )
    dataset = read_patients(csv, collect_errors=True)
    assert dataset.ids == ("P1", "P4")
    assert [e.patient_id for e in dataset.errors] == ["P2", "P3"]
    assert [(e.location, e.field) for e in dataset.errors] == [(5, "DV"), (6, "WT")]
    assert all(str(e).startswith(f"{csv}: patient") for e in dataset.errors)
    with pytest.raises(InputError, match="row 5, field DV"):
        read_patients(csv)  # the default stops at the first error

    toml = tmp_path / "batch.toml"
    toml.write_text(
        '[[patient]]\nid = "A"\nweight_kg = 63\ncrp_mg_l = 30\ndoses = [{day = 0, mg = 600}]\n'
        '[[patient]]\nid = "B"\nweight_kg = 63\ncrp_mg_l = 30\ndoses = [{day = 0, gram = 1}]\n'
        "[[patient]]\nweight_kg = 63\ncrp_mg_l = 30\ndoses = [{day = 0, mg = 600}]\n"
    )
    dataset = read_patients(toml, collect_errors=True)
    assert dataset.ids == ("A",)
    assert [e.patient_id for e in dataset.errors] == ["B", "patient[2]"]

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("ID,TIME,EVID,AMT,DV,WT,CRP\nP1,0,1,600,.,63\n")
    with pytest.raises(InputError, match="6 cells but the header has 7"):
        read_patients(ragged, collect_errors=True)
