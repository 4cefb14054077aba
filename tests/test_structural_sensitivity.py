"""Structural sensitivity: the patient under every other library model its covariates allow.

References: the library models' covariates read from the TOML files directly; the rows'
numbers against direct ``forecast_library_patient`` calls with the same seed; albumin given
in g/L (declared with units) against the same value in g/dL; missing covariates named, never
skipped; unconverged forecasts flagged in the table, JSON and figure."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from asuc_bayes.data.dataset import CovariateRecord, Dose, Observation, Patient
from asuc_bayes.inference import forecast_library_patient
from asuc_bayes.inference.covariates import dataset_covariates
from asuc_bayes.interfaces.cli import main
from asuc_bayes.interfaces.report import format_sensitivity
from asuc_bayes.spec import available_declarations, load_declaration
from asuc_bayes.studies.sensitivity import run_sensitivity, write_sensitivity
from asuc_bayes.studies.structural_sensitivity import (
    model_covariates,
    structural_alternative,
    structural_alternatives,
    structural_row,
)

SEED = 7
DOSES = tuple(Dose(t, 700.0, 1 / 12) for t in (0.0, 14.0, 42.0))
#: WT and CRP only (the default model's covariates).
PLAIN = Patient("plain", 70.0, 30.0, DOSES, (Observation(7.0, 20.0),))
#: Albumin 35 g/L at day 0 (a later record gives 20 g/L) and no antibodies, as a NONMEM
#: dataset gives them per record.
WITH_ALB = replace(
    PLAIN,
    id="with_alb",
    covariate_records=(
        CovariateRecord(14.0, (("ALB", 20.0),)),
        CovariateRecord(0.0, (("ADA", 0.0), ("ALB", 35.0), ("WT", 70.0))),
    ),
)
OTHER_MODELS = sorted(set(available_declarations()) - {"niyigena2025"})


@pytest.fixture(scope="module")
def spec():
    from asuc_bayes.spec.config import load_model

    return load_model()


@pytest.fixture(scope="module")
def with_alb_result(spec):
    return run_sensitivity(
        spec,
        WITH_ALB,
        random_seed=SEED,
        grid_points=41,
        population_draws=0,
        covariate_units={"ALB": "g/L"},
    )


def _structural(result) -> dict[str, dict]:
    table = result.table
    return {r["name"]: r for r in table[table["group"] == "structural"].to_dict("records")}


def test_model_covariates_are_those_of_the_model_files():
    for name in OTHER_MODELS:  # (niyigena2025's file is of the legacy layout)
        declaration = load_declaration(name)
        raw = tomllib.loads(Path(declaration.path).read_text(encoding="utf-8"))
        expected = {effect["covariate"] for effect in raw.get("effects", [])}
        assert set(model_covariates(declaration)) == expected, name


def test_covariates_take_the_earliest_record_in_the_declared_or_model_files_unit():
    woj = load_declaration("wojciechowski2017")
    expected = {"ALB": (35.0, "g/L"), "ADA": (0.0, "1")}
    assert dataset_covariates(WITH_ALB, [woj], {"ALB": "g/L"}) == expected
    with pytest.raises(ValueError, match="field ALB: 35 g/dL"):  # the model file's unit: 350 g/L
        dataset_covariates(WITH_ALB, [woj])
    assert dataset_covariates(PLAIN, [woj]) == {}
    # Fasanmade 2009 reads its ATI from the dataset's ADA column (dataset_columns)
    fasanmade = load_declaration("fasanmade2009")
    assert dataset_covariates(WITH_ALB, [fasanmade], {"ALB": "g/L"})["ATI"] == (0.0, "1")


def test_patient_with_only_weight_and_crp_gets_a_missing_row_per_other_model(spec):
    result = run_sensitivity(spec, PLAIN, random_seed=SEED, grid_points=41, population_draws=0)
    rows = _structural(result)
    assert sorted(rows) == OTHER_MODELS  # every other model, none silently skipped
    for name, row in rows.items():
        needed = [c for c in model_covariates(load_declaration(name)) if c not in ("WT", "CRP")]
        assert row["status"] == "missing_covariates", name
        assert row["missing_covariates"] == ", ".join(needed)
        assert f"missing {', '.join(needed)}" in row["description"]
        assert np.isnan(row["ln_auc_cl_q50"]) and np.isnan(row["risk_mean"])
    assert "ALB" in rows["wojciechowski2017"]["missing_covariates"]
    text = format_sensitivity([result], spec)
    assert "wojciechowski2017   two_compartment; not run: missing ALB, ADA" in text
    payload = json.loads(json.dumps(result.to_json(), allow_nan=False))
    entry = next(a for a in payload["alternatives"] if a["name"] == "wojciechowski2017")
    assert entry["missing_covariates"] == ["ALB", "ADA"] and entry["risk_mean"] is None


def test_a_model_needing_only_weight_and_crp_runs_for_that_patient():
    full = load_declaration("wojciechowski2017")
    weight_only = replace(full, effects=tuple(e for e in full.effects if e.covariate == "WT"))
    alternative = structural_alternative(weight_only, PLAIN, random_seed=SEED)
    assert alternative.status == "ok" and alternative.missing == ()
    direct = forecast_library_patient(weight_only, PLAIN, attach_outcome=True, random_seed=SEED)
    assert structural_row(alternative)["ln_auc_cl_q50"] == np.median(direct.draws.ln_auc_cl)


def test_wojciechowski_row_equals_a_direct_forecast(with_alb_result):
    row = _structural(with_alb_result)["wojciechowski2017"]
    direct = forecast_library_patient(
        "wojciechowski2017",
        WITH_ALB,
        {"ALB": (3.5, "g/dL"), "ADA": 0},  # 35 g/L, converted by the model layer
        attach_outcome=True,
        random_seed=SEED,
    )
    assert direct.status == "ok" and row["status"] == "ok"
    ln_auc = direct.draws.ln_auc_cl.ravel()
    assert row["ln_auc_cl_q50"] == pytest.approx(np.median(ln_auc), rel=1e-12)
    assert row["ln_auc_cl_q2.5"] == pytest.approx(np.quantile(ln_auc, 0.025), rel=1e-12)
    assert row["risk_mean"] == pytest.approx(direct.draws.risk_90d.mean(), rel=1e-12)
    # P(high risk) by hand: the share of draws below the attached outcome's threshold 5.79
    assert direct.high_risk_threshold == pytest.approx(5.79)
    assert row["p_high_risk"] == pytest.approx(np.mean(ln_auc < 5.79), abs=1e-12)
    assert row["structure"] == "two_compartment"
    assert np.isnan(row["recommended_dose_mg"])
    # the other models lack covariates this patient does not have
    assert _structural(with_alb_result)["fasanmade2009"]["missing_covariates"] == "SEX"


def test_flags_table_json_and_figure(spec, with_alb_result, tmp_path):
    row = _structural(with_alb_result)["wojciechowski2017"]
    assert row["flags"].split("; ")[:2] == ["other model", "extrapolated outcome"]
    payload = json.loads(json.dumps(with_alb_result.to_json(), allow_nan=False))
    entry = next(a for a in payload["alternatives"] if a["name"] == "wojciechowski2017")
    assert "extrapolated outcome" in entry["flags"] and entry["group"] == "structural"
    assert entry["delta_risk_mean"] == pytest.approx(
        row["risk_mean"] - with_alb_result.table.iloc[0]["risk_mean"]
    )
    text = format_sensitivity([with_alb_result], spec)
    assert "ok; other model; extrapolated outcome" in text
    assert any("extrapolated outcome" in note for note in with_alb_result.notes)
    paths = write_sensitivity([with_alb_result], tmp_path)
    assert (tmp_path / "tornado-with_alb.png").stat().st_size > 10_000
    assert "structural" in (tmp_path / "sensitivity-with_alb.csv").read_text()
    assert str(tmp_path / "sensitivity.json") in paths


def test_unconverged_forecast_is_flagged(spec, with_alb_result, monkeypatch, tmp_path):
    import asuc_bayes.studies.structural_sensitivity as module
    from asuc_bayes.studies.sensitivity import _structural_notes

    real = module.forecast_library_patient
    monkeypatch.setattr(
        module,
        "forecast_library_patient",
        lambda *a, **k: replace(real(*a, **k), status="unconverged"),
    )
    alternative = structural_alternative(
        load_declaration("wojciechowski2017"), WITH_ALB, units={"ALB": "g/L"}, random_seed=SEED
    )
    row = structural_row(alternative)
    assert row["status"] == "unconverged" and "UNCONVERGED" in row["flags"].split("; ")
    notes = _structural_notes([alternative])
    assert any(
        note.startswith("UNCONVERGED library forecast (wojciechowski2017)") for note in notes
    )
    table = with_alb_result.table.copy()
    index = table.index[table["name"] == "wojciechowski2017"][0]
    for key, value in row.items():
        table.at[index, key] = value
    result = replace(with_alb_result, table=table)
    line = next(x for x in format_sensitivity([result], spec).splitlines() if "wojciechowski" in x)
    assert "unconverged; other model; extrapolated outcome; UNCONVERGED" in line
    assert json.loads(json.dumps(result.to_json(), allow_nan=False))
    write_sensitivity([result], tmp_path)  # the figure labels and hatches it


def test_impute_reference_runs_every_model_and_reports_the_imputations():
    rows = {
        a.model: a
        for a in structural_alternatives(
            PLAIN,
            exclude_path=load_declaration("niyigena2025").path,
            impute="reference",
            random_seed=SEED,
        )
    }
    assert sorted(rows) == OTHER_MODELS
    for name, alternative in rows.items():
        assert alternative.status == "ok", name
        imputed = {i.covariate for i in alternative.forecast.imputed}
        assert imputed == set(model_covariates(load_declaration(name))) - {"WT", "CRP"}
        assert all(f"imputed {c} = " in "; ".join(alternative.flags) for c in imputed)
    with pytest.raises(ValueError, match="impute"):
        structural_alternatives(PLAIN, impute="mean")


def test_rejected_covariate_value_is_an_error_row():
    bad = replace(
        WITH_ALB, covariate_records=(CovariateRecord(0.0, (("ADA", 2.0), ("ALB", 35.0))),)
    )
    alternative = structural_alternative(
        load_declaration("wojciechowski2017"), bad, units={"ALB": "g/L"}
    )
    assert alternative.status == "error" and "ADA" in alternative.message
    assert "not run" in structural_row(alternative)["description"]


def test_cli_sensitivity_structural_options(capsys):
    args = ["sensitivity", "--example", "--id", "P01", "--grid-points", "41"]
    args += ["--population-draws", "0", "--format", "json"]
    assert main([*args, "--impute", "reference"]) == 0
    entry = json.loads(capsys.readouterr().out)["patients"][0]
    structural = {a["name"]: a for a in entry["alternatives"] if a["group"] == "structural"}
    assert sorted(structural) == OTHER_MODELS
    assert any(f.startswith("imputed ALB") for f in structural["wojciechowski2017"]["flags"])
    from asuc_bayes.interfaces.cli import build_parser

    assert build_parser().parse_args([*args, "--no-structural"]).structural is False
    assert build_parser().parse_args(args).structural is True
    with pytest.raises(SystemExit) as exc:
        main([*args, "--impute", "mean"])
    assert exc.value.code == 2
    assert "--impute" in capsys.readouterr().err


def test_an_implausible_albumin_is_an_error_row_naming_the_unit():
    """ALB 3.5 in a dataset declared in g/L (a g/dL value): an error row, never a silent
    answer."""
    record = WITH_ALB.covariate_records[0]
    low = replace(record, values=tuple((k, 3.5 if k == "ALB" else v) for k, v in record.values))
    patient = replace(WITH_ALB, covariate_records=(low,))
    declaration = load_declaration("wojciechowski2017")
    row = structural_alternative(declaration, patient, units={"ALB": "g/L"})
    assert row.status == "error" and "field ALB: 3.5 g/L" in row.message
