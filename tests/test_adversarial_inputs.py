"""Malformed and hostile data inputs: each is an InputError naming the patient, the row (or
entry, or line) and the field, never a traceback, a hang or a silent wrong answer; and a few
valid but unusual files that must be read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from asuc_bayes.data.dataset import InputError, read_patients
from asuc_bayes.interfaces.cli import main

H = "ID,TIME,EVID,AMT,DV,WT,CRP"
DOSE = "P1,0,1,600,.,63,45"
SAMPLE = "P1,7,0,.,25,63,45"
TOML_HEAD = "[[patient]]\nid = 'P1'\n"
HX = "ID,TIME,EVID,AMT,RATE,DUR,ADDL,II,SS,CMT,MDV,DVID,DV,WT,CRP"


def x(time="0", evid="1", amt="600", rate=".", dur=".", addl=".", ii=".", ss=".", cmt="."):
    """A row of the HX layout (a dose unless told otherwise)."""
    dv = "." if evid != "0" else "25"
    return f"P1,{time},{evid},{amt},{rate},{dur},{addl},{ii},{ss},{cmt},.,.,{dv},63,45"


def csv(*rows: str, header: str = H) -> str:
    return "\n".join([header, *rows]) + "\n"


#: name -> (file name, content, options, parts the message must contain, in order)
CASES: dict[str, tuple[str, str | bytes, dict, tuple[str, ...]]] = {
    # ---- CSV cells ---------------------------------------------------------------------
    "underscore in DV": (
        "a.csv",
        csv(DOSE, "P1,7,0,.,_,63,45"),
        {},
        ("patient 'P1'", "row 3", "field DV", "'_' is not a number"),
    ),
    "digit separator in AMT": (
        "a.csv",
        csv("P1,0,1,1_000,.,63,45"),
        {},
        ("patient 'P1'", "row 2", "field AMT", "'1_000'"),
    ),
    "nan in DV": (
        "a.csv",
        csv(DOSE, "P1,7,0,.,nan,63,45"),
        {},
        ("row 3", "field DV", "'nan' is not a number"),
    ),
    "inf in TIME": (
        "a.csv",
        csv(DOSE, "P1,inf,0,.,3,63,45"),
        {},
        ("row 3", "field TIME", "not a number"),
    ),
    "Arabic-Indic digits in DV": (
        "a.csv",
        csv(DOSE, "P1,7,0,.,١٢,63,45"),
        {},
        ("row 3", "field DV", "not a number"),
    ),
    "1e400 in AMT": (
        "a.csv",
        csv("P1,0,1,1e400,.,63,45"),
        {},
        ("row 2", "field AMT", "not a number"),
    ),
    "10**400 in WT": (
        "a.csv",
        csv("P1,0,1,600,.,1" + "0" * 400 + ",45"),
        {},
        ("row 2", "field WT", "not a number"),
    ),
    "bad cell on an MDV=1 row": (
        "a.csv",
        csv(DOSE + ",1", "P1,7,0,.,_,63,45,1", header=H + ",MDV"),
        {},
        ("row 3", "field DV", "not a number"),
    ),
    # ---- CSV regimen items -------------------------------------------------------------
    "RATE=0": (
        "a.csv",
        csv(x(rate="0"), header=HX),
        {},
        ("patient 'P1'", "row 2", "field RATE", "bolus"),
    ),
    "RATE=-1": (
        "a.csv",
        csv(x(rate="-1"), header=HX),
        {},
        ("row 2", "field RATE", "estimated by the model"),
    ),
    "RATE=-2 with DUR": (
        "a.csv",
        csv(x(rate="-2", dur="0.1"), header=HX),
        {},
        ("row 2", "field RATE", "RATE=-2"),
    ),
    "DUR=0": ("a.csv", csv(x(dur="0"), header=HX), {}, ("row 2", "field DUR", "> 0")),
    "CMT=3 on a dose": (
        "a.csv",
        csv(x(cmt="3"), header=HX),
        {},
        ("row 2", "field CMT", "CMT=3", "central"),
    ),
    "CMT=3 on a sample": (
        "a.csv",
        csv(x(), x("7", "0", ".", cmt="3"), header=HX),
        {},
        ("row 3", "field CMT", "CMT=3"),
    ),
    "CMT=-1": ("a.csv", csv(x(cmt="-1"), header=HX), {}, ("row 2", "field CMT")),
    "EVID=5": ("a.csv", csv(x(), x("7", "5"), header=HX), {}, ("row 3", "field EVID", "'5'")),
    "EVID=1.5": ("a.csv", csv(x(evid="1.5"), header=HX), {}, ("row 2", "field EVID", "'1.5'")),
    "EVID empty": ("a.csv", csv(x(evid=""), header=HX), {}, ("row 2", "field EVID", "empty cell")),
    "negative II": (
        "a.csv",
        csv(x(addl="2", ii="-14"), header=HX),
        {},
        ("row 2", "field II", "≥ 0"),
    ),
    "ADDL without II": (
        "a.csv",
        csv(x(addl="2"), header=HX),
        {},
        ("row 2", "field II", "ADDL without an interval"),
    ),
    "SS without II": (
        "a.csv",
        csv(x(ss="1"), header=HX),
        {},
        ("row 2", "field II", "SS without an interval"),
    ),
    "SS=3": ("a.csv", csv(x(ss="3"), header=HX), {}, ("row 2", "field SS", "'3'")),
    "SS on a sample row": (
        "a.csv",
        csv(x(), x("7", "0", ".", ss="1"), header=HX),
        {},
        ("row 3", "field SS", "not a dose"),
    ),
    "ADDL on a sample row": (
        "a.csv",
        csv(x(), x("7", "0", ".", addl="2", ii="7"), header=HX),
        {},
        ("row 3", "field ADDL", "not a dose"),
    ),
    "AMT on a sample row": (
        "a.csv",
        csv(x(), x("7", "0", "300"), header=HX),
        {},
        ("row 3", "field AMT", "not a dose"),
    ),
    "ADDL of 100000": (
        "a.csv",
        csv(x(addl="100000", ii="1"), header=HX),
        {},
        ("row 2", "field ADDL", "runs to day"),
    ),
    "reset inside an ADDL series": (
        "a.csv",
        csv(x(addl="3", ii="14"), x("20", "3", "."), header=HX),
        {},
        ("row 3", "field EVID", "ADDL", "row 2"),
    ),
    "DVID=3": (
        "a.csv",
        csv(DOSE + ",.", "P1,7,0,.,25,63,45,3", header=H + ",DVID"),
        {},
        ("row 3", "field DVID", "'3'"),
    ),
    # ---- CSV times ---------------------------------------------------------------------
    "time goes back": (
        "a.csv",
        csv("P1,14,1,600,.,63,45", SAMPLE),
        {},
        ("patient 'P1'", "row 3", "field TIME", "time goes back"),
    ),
    "DATE unparseable": (
        "a.csv",
        csv("P1,2024-13-45,08:00,1,600,.,63,45", header="ID,DATE,TIME,EVID,AMT,DV,WT,CRP"),
        {},
        ("row 2", "field DATE"),
    ),
    "DATE ambiguous": (
        "a.csv",
        csv("P1,03/04/2024,08:00,1,600,.,63,45", header="ID,DATE,TIME,EVID,AMT,DV,WT,CRP"),
        {},
        ("row 2", "field DATE", "ambiguous"),
    ),
    "mixed time formats": (
        "a.csv",
        csv(
            "P1,2024-03-01,08:00,1,600,.,63,45",
            "P1,2024-03-08,7,0,.,25,63,45",
            header="ID,DATE,TIME,EVID,AMT,DV,WT,CRP",
        ),
        {},
        ("row 3", "field TIME", "mixed time formats"),
    ),
    "clock time without DATE": (
        "a.csv",
        csv("P1,08:00,1,600,.,63,45"),
        {},
        ("row 2", "field TIME", "without a DATE column"),
    ),
    "bad clock time": (
        "a.csv",
        csv("P1,2024-03-01,25:61,1,600,.,63,45", header="ID,DATE,TIME,EVID,AMT,DV,WT,CRP"),
        {},
        ("row 2", "field TIME", "not a valid clock time"),
    ),
    "DATETIME with a zone": (
        "a.csv",
        csv("P1,2024-03-01T08:00+02:00,1,600,.,63,45", header="ID,DATETIME,EVID,AMT,DV,WT,CRP"),
        {},
        ("row 2", "field DATETIME", "no zone"),
    ),
    "hours unit column with days": (
        "a.csv",
        csv("P1,0,1,600,.,63,45,h", header=H + ",TIMEUNIT"),
        {},
        ("row 2", "field TIMEUNIT", "time_unit='hours'"),
    ),
    # ---- CSV layout --------------------------------------------------------------------
    "ragged row": (
        "a.csv",
        csv(DOSE, "P1,7,0,.,25,63"),
        {},
        ("row 3", "6 cells but the header has 7 columns"),
    ),
    "duplicate column": (
        "a.csv",
        csv(DOSE + ",1", header=H + ",wt"),
        {},
        ("row 1", "field WT", "duplicate column name"),
    ),
    "missing column": (
        "a.csv",
        csv("P1,0,1,600,.,63", header="ID,TIME,EVID,AMT,DV,WT"),
        {},
        ("row 1", "field CRP", "missing required column"),
    ),
    "rows not contiguous": (
        "a.csv",
        csv(DOSE, "P2,0,1,600,.,63,45", SAMPLE),
        {},
        ("patient 'P1'", "row 4", "field ID", "not contiguous"),
    ),
    "input count mismatch": (
        "a.csv",
        "1,0,1,600,.,63,45\n",
        {"input": "ID TIME EVID AMT DV WT"},
        ("row 1", "7 cells but the input list names 6 columns"),
    ),
    "input bad entry": (
        "a.csv",
        csv(DOSE),
        {"input": "ID TIME EVID AMT DV WT 1CRP"},
        ("input: entry '1CRP'",),
    ),
    "input duplicate name": (
        "a.csv",
        csv(DOSE),
        {"input": "ID TIME EVID AMT DV DV CRP"},
        ("input: column DV listed twice",),
    ),
    "ignore option unknown": (
        "a.csv",
        csv(DOSE),
        {"ignore": "X"},
        ("ignore: 'X' is not accepted",),
    ),
    "time unit unknown": ("a.csv", csv(DOSE), {"time_unit": "weeks"}, ("time_unit: 'weeks'",)),
    "cell beyond the CSV field limit": (
        "a.csv",
        csv('P1,0,1,"' + "6" * 200_000 + '",.,63,45'),
        {},
        ("row 2", "unreadable CSV", "larger than"),
    ),
    "NUL byte in a cell": (
        "a.csv",
        csv("P1,0,1,6\x0000,.,63,45"),
        {},
        ("patient 'P1'", "row 2", "field AMT", "not a number"),
    ),
    "not UTF-8": (
        "a.csv",
        (H + "\nP\xe91,0,1,600,.,63,45\n").encode("latin-1"),
        {},
        ("not UTF-8",),
    ),
    "layout options on a patient file": (
        "a.toml",
        "[[patient]]\nid = 'P1'\n",
        {"time_unit": "hours"},
        ("apply to NONMEM CSV datasets only",),
    ),
    # ---- TOML ----------------------------------------------------------------------------
    "TOML 10**400": (
        "a.toml",
        "[[patient]]\nid = 'P1'\nweight_kg = 1" + "0" * 400 + "\n",
        {},
        ("not valid TOML", "patient[0].weight_kg", "too large"),
    ),
    "TOML 5000-digit integer": (
        "a.toml",
        "[[patient]]\nid = 'P1'\nweight_kg = 1" + "0" * 5000 + "\n",
        {},
        ("not valid TOML", "digits"),
    ),
    "TOML deep nesting": (
        "a.toml",
        "x = " + "[" * 5000 + "]" * 5000 + "\n",
        {},
        ("not valid TOML", "nested"),
    ),
    "TOML moderately deep nesting": (
        "a.toml",
        "x = " + "[" * 30 + "]" * 30 + "\n",
        {},
        ("not valid TOML", "nested more than 16 levels"),
    ),
    "TOML duplicate key": (
        "a.toml",
        "[[patient]]\nid = 'P1'\nid = 'P2'\n",
        {},
        ("not valid TOML",),
    ),
    "TOML nested value for a number": (
        "a.toml",
        TOML_HEAD + "weight_kg = [[[1]]]\ncrp_mg_l = 4\ndoses = [{day = 0, mg = 600}]\n",
        {},
        ("patient 'P1'", "patient[0]", "field weight_kg", "not a number"),
    ),
    "TOML text with a separator": (
        "a.toml",
        "[[patient]]\nid = 'P1'\nweight_kg = '6_3'\ncrp_mg_l = 4\ndoses = [{day = 0, mg = 600}]\n",
        {},
        ("patient 'P1'", "field weight_kg", "not a number"),
    ),
    "TOML unknown dose key": (
        "a.toml",
        TOML_HEAD + "weight_kg = 63\ncrp_mg_l = 4\ndoses = [{day = 0, mg = 600, addl = 2}]\n",
        {},
        ("patient 'P1'", "doses[0]", "field addl", "unknown key"),
    ),
    # ---- YAML ----------------------------------------------------------------------------
    "YAML duplicate key": (
        "a.yaml",
        "patient:\n  - id: P1\n    weight_kg: 63\n    weight_kg: 70\n",
        {},
        ("not valid YAML", "duplicate key 'weight_kg'", "line 4"),
    ),
    "YAML duplicate key in a dose": (
        "a.yaml",
        "patient:\n  - id: P1\n    doses:\n      - {day: 0, mg: 600, mg: 700}\n",
        {},
        ("duplicate key 'mg'", "line 4"),
    ),
    "YAML alias": (
        "a.yaml",
        "d: &d {day: 0, mg: 600}\npatient:\n  - id: P1\n    doses: [*d]\n",
        {},
        ("not valid YAML", "alias *d", "line 4"),
    ),
    "YAML deep nesting": (
        "a.yaml",
        "patient: " + "[" * 5000 + "]" * 5000 + "\n",
        {},
        ("not valid YAML", "nested more than 16 levels"),
    ),
    "YAML 10**400": (
        "a.yaml",
        "patient:\n  - id: P1\n    weight_kg: 1" + "0" * 400 + "\n",
        {},
        ("not valid YAML", "patient[0].weight_kg", "too large"),
    ),
    "YAML .nan": (
        "a.yaml",
        "patient:\n  - id: P1\n    weight_kg: .nan\n    crp_mg_l: 4\n"
        "    doses: [{day: 0, mg: 600}]\n",
        {},
        ("patient 'P1'", "field weight_kg", "not a finite number"),
    ),
    "YAML python tag": (
        "a.yaml",
        "patient: !!python/object/apply:os.system ['true']\n",
        {},
        ("not valid YAML",),
    ),
    "YAML unhashable key": (
        "a.yaml",
        "? [a, b]\n: 1\n",
        {},
        ("not valid YAML", "line 1", "not a plain value"),
    ),
    "YAML not a mapping": ("a.yaml", "- 1\n- 2\n", {}, ("must hold a table/mapping",)),
    "YAML empty id": (
        "a.yaml",
        "patient:\n  - id: ''\n    weight_kg: 63\n",
        {},
        ("patient[0]", "field id", "empty patient ID"),
    ),
    "YAML syntax error": ("a.yaml", "patient: [\n", {}, ("not valid YAML", "line")),
}


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_there_are_enough_cases():
    assert len(CASES) >= 45


@pytest.mark.parametrize(("name", "content", "options", "parts"), CASES.values(), ids=CASES.keys())
def test_bad_input_is_a_clear_input_error(tmp_path, name, content, options, parts):
    path = write(tmp_path, name, content)
    with pytest.raises(InputError) as info:
        read_patients(path, **options)
    message = str(info.value)
    assert message.startswith(str(path)) or message.split(":")[0] in {
        "input",
        "ignore",
        "time_unit",
    }
    position = 0
    for part in parts:
        found = message.find(part, position)
        assert found >= 0, f"{part!r} not in order in {message!r}"
        position = found + len(part)
    assert "Traceback" not in message and len(message) < 1200
    error = info.value
    if any(p.startswith("field ") for p in parts):
        assert error.field is not None and error.location is not None
    if isinstance(error.location, int) and error.location > 1 and error.field is not None:
        # a record-level error names its patient (as text and as an attribute)
        assert error.patient_id == "P1" and "patient 'P1'" in message


def test_alias_bomb_is_rejected_fast(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = write(tmp_path, "bomb.yaml", "\n".join(lines) + "\npatient: *a9\n")
    start = time.perf_counter()
    with pytest.raises(InputError, match="alias"):
        read_patients(path)
    assert time.perf_counter() - start < 2.0


CLI_SUBSET = [
    "underscore in DV",
    "RATE=0",
    "CMT=3 on a dose",
    "EVID=5",
    "ADDL without II",
    "time goes back",
    "DATE unparseable",
    "TOML 10**400",
    "TOML deep nesting",
    "YAML duplicate key",
    "YAML alias",
    "YAML deep nesting",
]


@pytest.mark.parametrize("case", CLI_SUBSET)
def test_cli_exits_2_without_a_traceback(tmp_path, capsys, case):
    name, content, _, parts = CASES[case]
    path = write(tmp_path, name, content)
    assert main(["forecast", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("asuc-bayes: error: ") and parts[-1] in err
    assert "Traceback" not in err


def test_cli_layout_options(tmp_path, capsys):
    path = write(tmp_path, "h.csv", "1 0 1 600 . 63 45\n")
    assert main(["forecast", str(path), "--input", "ID TIME EVID AMT DV", "--id", "1"]) == 2
    assert "7 cells but the input list names 5 columns" in capsys.readouterr().err
    assert main(["forecast", str(path), "--units", "ALB=mg/dL"]) == 2
    assert "not a unit the current model knows" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["forecast", str(path), "--time-unit", "weeks"])
    capsys.readouterr()


def test_ss_shorter_than_its_infusion_through_the_cli_exits_2_naming_the_row(tmp_path, capsys):
    # SS is evaluated by the engine now (tests/test_steady_state_engine.py); an interval
    # shorter than the infusion is still refused
    path = write(tmp_path, "ss.csv", csv(x(ss="1", ii="0.01"), x("7", "0", "."), header=HX))
    assert main(["forecast", str(path)]) == 2
    err = capsys.readouterr().err
    assert "row 2, field II: SS=1 needs a dosing interval II ≥ the infusion duration" in err


# --------------------------------------------------------------------------------------
# Valid but unusual
# --------------------------------------------------------------------------------------


def _reference(tmp_path: Path):
    return read_patients(write(tmp_path, "ref.csv", csv(DOSE, SAMPLE))).patients


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbf" + csv(DOSE, SAMPLE).encode(),  # UTF-8 BOM
        csv(DOSE, SAMPLE).replace("\n", "\r\n").encode(),  # CRLF
        csv(DOSE, SAMPLE, header=H.lower()).encode(),  # lowercase header
        csv(DOSE, SAMPLE).replace(",", ";").encode(),  # semicolons
        csv(DOSE, SAMPLE).replace(",", "\t").encode(),  # tabs
        (csv(DOSE + ",", SAMPLE + ",")).encode(),  # trailing empty cells
        csv(DOSE, SAMPLE).replace("\n", "\n\n").encode(),  # blank lines
    ],
    ids=["bom", "crlf", "lowercase", "semicolons", "tabs", "trailing-cells", "blank-lines"],
)
def test_unusual_but_valid_csv(tmp_path, content):
    assert read_patients(write(tmp_path, "u.csv", content)).patients == _reference(tmp_path)


def test_string_ids_are_kept_exactly(tmp_path):
    path = write(tmp_path, "ids.csv", csv("0123,0,1,600,.,63,45", "12:30,0,1,600,.,63,45"))
    assert read_patients(path).ids == ("0123", "12:30")
    yaml_text = (
        "patient:\n"
        "  - {id: 0123, weight_kg: 63, crp_mg_l: 45, doses: [{day: 0, mg: 600}]}\n"
        "  - {id: 12:30, weight_kg: 63, crp_mg_l: 45, doses: [{day: 0, mg: 600}]}\n"
        "  - {id: 0x1F, weight_kg: 63, crp_mg_l: 45, doses: [{day: 0, mg: 600}]}\n"
    )
    assert read_patients(write(tmp_path, "ids.yaml", yaml_text)).ids == ("0123", "12:30", "0x1F")


@pytest.mark.parametrize(
    "model_text",
    [
        "[pk]\ndefault_infusion_duration_day = 1" + "0" * 400 + "\n",
        "a = " + "[" * 3000 + "]" * 3000,
    ],
    ids=["huge-integer", "deep-nesting"],
)
def test_hostile_model_file_exits_2(tmp_path, capsys, model_text):
    data = write(tmp_path, "a.csv", csv(DOSE, SAMPLE))
    model = write(tmp_path, "model.toml", model_text)
    assert main(["forecast", str(data), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asuc-bayes: error: ") and str(model) in err
    assert "Traceback" not in err
