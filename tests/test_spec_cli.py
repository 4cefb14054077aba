"""``asuc-bayes models``: the JSON schema and the readable table."""

from __future__ import annotations

import json

from asuc_bayes.interfaces.cli import EXIT_INPUT, EXIT_OK, main
from asuc_bayes.spec import available_declarations

KEYS = {
    "name",
    "population",
    "structure",
    "covariates",
    "random_effects",
    "outcome_model",
    "source",
}


def test_models_json_schema(capsys):
    assert main(["models", "--format", "json"]) == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"models"}
    assert [m["name"] for m in out["models"]] == available_declarations()
    for model in out["models"]:
        assert set(model) == KEYS
        assert model["structure"] in ("one_compartment", "two_compartment")
        assert all(set(c) == {"name", "unit"} for c in model["covariates"])
        assert all(isinstance(r, str) for r in model["random_effects"])
        assert isinstance(model["outcome_model"], bool) and model["source"]
    by_name = {m["name"]: m for m in out["models"]}
    assert by_name["niyigena2025"]["outcome_model"] is True
    assert by_name["wojciechowski2017"]["random_effects"] == [
        "eta_CL",
        "eta_V1",
        "eta_Q",
        "eta_V2",
    ]
    assert {"name": "ALB", "unit": "g/dL"} in by_name["fasanmade2009"]["covariates"]


def test_models_table_is_readable(capsys):
    assert main(["models"]) == EXIT_OK
    out = capsys.readouterr().out
    for name in available_declarations():
        assert name in out
    assert "niyigena2025  [one_compartment]  + outcome model" in out
    assert "ALB (g/dL)" in out and "population:" in out


def test_models_reports_a_broken_library_file(capsys, monkeypatch, tmp_path):
    (tmp_path / "broken1999.toml").write_text('[model]\nname = "x"\n[unknown]\n')
    monkeypatch.setattr("asuc_bayes.spec.loader.model_directory", lambda: tmp_path)
    assert main(["models"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "broken1999.toml" in err and "unknown: unknown key" in err and "fix:" in err


def test_engine_refuses_a_library_model_it_cannot_run_yet(capsys):
    """A library declaration is listed and forecast, but the paths that do not run library
    models say so plainly (instead of an 'unknown key' message about the file's format)."""
    assert main(["compare", "--n", "2", "--model", "wojciechowski2017"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "library model" in err and "--model niyigena2025" in err
    assert "Traceback" not in err
