"""``asuc-bayes validate``: the issue's JSON schema, the table, and errors naming the model."""

from __future__ import annotations

import json

from asuc_bayes.interfaces.cli import EXIT_INPUT, EXIT_OK, main

COHORT = """ID,TIME,EVID,AMT,DV,WT,CRP,ALB,ADA
P1,0,1,400,.,70,30,35,0
P1,6.9,0,0,30,70,30,35,0
P1,13.9,0,0,9.5,70,30,35,0
P1,14,1,400,.,70,30,35,0
P1,27,0,0,6,70,30,35,0
P2,0,1,600,.,80,80,28,0
P2,5,0,0,25,80,80,28,0
P2,12,0,0,5,80,80,28,0
"""
FORECAST_KEYS = {"mpe", "rmse", "within_20", "within_30", "coverage_90"}


def test_validate_json_schema_and_files(tmp_path, capsys):
    path = tmp_path / "cohort.csv"
    path.write_text(COHORT)
    out = tmp_path / "validation"
    argv = ["validate", str(path), "--model", "niyigena2025", "--model", "wojciechowski2017"]
    # albumin in g/L: read in the model file's g/dL it is implausible, and the error says so
    assert main(argv) == EXIT_INPUT
    assert "field ALB: 35 g/dL (the model file's unit)" in capsys.readouterr().err
    argv += ["--units", "ALB=g/L"]
    assert main([*argv, "--format", "json", "--out", str(out)]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert json.loads((out / "validation.json").read_text()) == document
    html = (out / "validation.html").read_text(encoding="utf-8")
    assert "niyigena2025" in html and "data:image/png;base64," in html
    assert (document["n_subjects"], document["n_concentrations"]) == (2, 5)
    assert [m["name"] for m in document["models"]] == ["niyigena2025", "wojciechowski2017"]
    for model in document["models"]:
        assert FORECAST_KEYS <= set(model["a_priori"])
        assert FORECAST_KEYS | {"map_coverage_90"} <= set(model["bayesian"])
        assert {"mean", "variance", "p_value"} <= set(model["npde"])
        assert 0 <= model["mean_weight"] <= 1
    weights = document["average"]["posterior_probability"]
    assert abs(sum(weights.values()) - 1) < 1e-9
    assert main(argv) == EXIT_OK
    assert "model average" in capsys.readouterr().out


def test_validate_unknown_model_is_named(tmp_path, capsys):
    path = tmp_path / "cohort.csv"
    path.write_text(COHORT)
    assert main(["validate", str(path), "--model", "nosuchmodel2099"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "nosuchmodel2099" in err and "Traceback" not in err


def test_validate_engine_options_are_checked(tmp_path, capsys):
    path = tmp_path / "cohort.csv"
    path.write_text(COHORT)
    argv = ["validate", str(path), "--model", "niyigena2025"]
    assert main([*argv, "--workers", "0"]) == EXIT_INPUT
    assert "--workers" in capsys.readouterr().err
    assert main([*argv, "--seed", "-1"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "--seed" in err and "Traceback" not in err
