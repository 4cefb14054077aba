"""``asuc-bayes forecast --model NAME`` with a library model (two compartments, 4 random effects).

The CLI's answer equals a direct call of the public API with the same seed; covariate columns
are read in the model file's unit unless ``--units`` says otherwise, and a value implausible in
that unit, a missing covariate or an option the path does not take is a clear error (exit 2).
"""

from __future__ import annotations

import json

import pytest
from page_text import visible_text

from asuc_bayes.data.dataset import read_patients
from asuc_bayes.inference import forecast_library_patient
from asuc_bayes.inference.forecast import patient_seed
from asuc_bayes.interfaces.cli import EXIT_INPUT, EXIT_OK, main
from asuc_bayes.spec import load_declaration

DATA = """ID,TIME,EVID,AMT,DV,WT,CRP,ALB,ADA
P1,0,1,400,.,70,30,3.5,0
P1,13.9,0,0,9.5,70,30,3.5,0
P1,14,1,400,.,70,30,3.5,0
"""


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "alb.csv"
    path.write_text(DATA)
    return path


def test_forecast_json_equals_the_api(dataset, capsys):
    assert main(["forecast", str(dataset), "--model", "wojciechowski2017", "--format", "json",
                 "--seed", "4"]) == EXIT_OK  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["model"]["name"] == "wojciechowski2017" and len(out["model"]["sha256"]) == 64
    (entry,) = out["patients"]
    assert list(entry["eta"]) == ["eta_CL", "eta_V1", "eta_Q", "eta_V2"]
    assert set(entry["parameters"]) == {"CL", "V1", "Q", "V2"}
    assert entry["outcome"]["extrapolated"] is True
    assert [o["time"] for o in entry["observations"]] == [13.9]
    patient = read_patients(dataset).patients[0]
    direct = forecast_library_patient(
        load_declaration("wojciechowski2017"),
        patient,
        {"ALB": (3.5, "g/dL"), "ADA": (0.0, "1")},
        attach_outcome=True,
        random_seed=patient_seed(4, "P1"),
    ).to_json()
    assert entry["posterior"]["ln_auc_cl"] == direct["posterior"]["ln_auc_cl"]
    assert entry["map"]["eta"] == direct["map"]["eta"]


def test_albumin_unit_from_the_model_file_or_declared(dataset, capsys):
    code = main(["forecast", str(dataset), "--model", "wojciechowski2017", "--units", "ALB=g/L"])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and "field ALB: 3.5 g/L" in err and "--units ALB=UNIT" in err
    assert "Traceback" not in err


def test_missing_covariate_and_unsupported_options(tmp_path, dataset, capsys):
    path = tmp_path / "no_alb.csv"
    path.write_text(DATA.replace(",ALB,ADA", "").replace(",3.5,0", ""))
    assert main(["forecast", str(path), "--model", "wojciechowski2017"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "needs covariate ALB" in err and "--impute" in err and "impute=" not in err
    checkpoint = str(tmp_path / "ck")
    code = main(
        ["forecast", str(dataset), "--model", "wojciechowski2017", "--checkpoint", checkpoint]
    )
    assert code == EXIT_INPUT and "--checkpoint: not available yet" in capsys.readouterr().err


def test_workers_give_the_same_bytes_as_one_process(tmp_path, capsys):
    """``--workers 2`` (a local Dask cluster) forecasts every patient with its own seed: the
    JSON is the same, byte for byte, as in this process."""
    from asuc_bayes.studies.library_simulate import simulate_library_cohort
    from asuc_bayes.studies.simulate import write_cohort

    cohort = simulate_library_cohort("faelens2021", 5, random_seed=2, outcome=False)
    data, _ = write_cohort(cohort, tmp_path / "c.csv")
    argv = ["forecast", str(data), "--model", "faelens2021", "--format", "json", "--seed", "7"]
    assert main(argv) == EXIT_OK
    alone = capsys.readouterr().out
    assert main([*argv, "--workers", "2"]) == EXIT_OK
    assert capsys.readouterr().out == alone
    assert [p["id"] for p in json.loads(alone)["patients"]] == [p.id for p in cohort.patients]


def _report_text(path) -> str:
    return visible_text(path.read_text())


def test_report_states_the_json_numbers_the_model_and_the_extrapolation(tmp_path, dataset, capsys):
    """``--report`` with a library model: the page names the model, its file's sha256 and the
    seed, shows the JSON's risk, P(high risk), individual parameters and covariates, embeds
    both figures, and says that the risk borrows the ASUC outcome model."""
    report = tmp_path / "r.html"
    argv = ["forecast", str(dataset), "--model", "wojciechowski2017", "--seed", "4"]
    assert main([*argv, "--format", "json", "--report", str(report)]) == EXIT_OK
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    (entry,) = printed["patients"]
    assert f"report written to {report}" in captured.err
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 2 and "{{" not in page
    text = _report_text(report)
    risk = entry["posterior"]["risk_90d"]
    assert f"posterior mean risk {100 * risk['mean']:.1f} %" in text
    assert f"P(high risk) {entry['p_high_risk']:.2f}" in text
    assert printed["model"]["sha256"] in text and "wojciechowski2017" in text
    assert (
        f"per-patient seed, derived from it and the patient ID, is {patient_seed(4, 'P1')}" in text
    )
    assert "Extrapolated risk" in text and "Niyigena et al. (2025)" in text
    q = entry["parameters"]["Q"]
    assert f"Q L/day {q['mean']:.3g} {q['sd']:.3g} {q['q50']:.3g}" in text
    assert "ALB 3.5 g/dL" in text and "ADA 0 " in text
    assert "WARNING" not in text and "MAP (published tool)" not in text


@pytest.mark.parametrize("mode", [[], ["--trough-target", "5"]], ids=["risk", "trough"])
def test_optimize_report_carries_the_plan_of_the_json(tmp_path, dataset, capsys, mode):
    """``optimize --model NAME --report``: the library report with the dose section of the
    plan printed as JSON (risk mode: the recommended dose, its risk and the MAP's; trough
    mode: the answer and the dose table) and the dose figure embedded."""
    report = tmp_path / "dose.html"
    argv = ["optimize", str(dataset), "--model", "wojciechowski2017", "--seed", "4", *mode]
    assert main([*argv, "--format", "json", "--report", str(report)]) == EXIT_OK
    (plan,) = json.loads(capsys.readouterr().out)["patients"]
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 3
    text = _report_text(report)
    assert "Individual parameters" in text and "Extrapolated risk" in text
    if mode:
        trough = plan["trough"]
        assert "Maintenance dose to a trough target" in text and trough["answer"] in text
    else:
        rec, map_rec = plan["recommended"], plan["map_recommended"]
        assert "Dose at day 14 to a target risk" in text
        assert f"{rec['dose_mg']:g} mg ({rec['dose_mg_kg']:.1f} mg/kg)" in text
        assert f"90-day risk {100 * rec['risk_90d']['mean']:.1f} %" in text
        assert f"The MAP (point estimate) would recommend {map_rec['dose_mg']:g} mg" in text


def test_report_warns_when_unconverged_and_escapes_the_patient_id(dataset):
    import dataclasses

    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.interfaces.report.library_html import LibraryReportItem, library_report_html

    patient = read_patients(dataset).patients[0]
    declaration = load_declaration("wojciechowski2017")
    covariates = baseline_covariates(patient, declaration)
    result = forecast_library_patient(
        declaration, patient, covariates, attach_outcome=True, random_seed=1
    )
    result = dataclasses.replace(result, status="unconverged", id="<script>x</script>")
    item = LibraryReportItem(result, patient, declaration, covariates, "abc", 1)
    page = library_report_html(item)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "WARNING: this posterior did not pass the convergence checks" in page


def test_predictions_group_holds_the_map_and_a_priori_curves(tmp_path, dataset, capsys):
    """The curves of ``--out``'s ``predictions`` group pass through the records' IPRED (MAP)
    and PRED (a priori), read off the JSON, at the record times (linear interpolation on the
    half-day grid: within 1 %), and the posterior band holds the median curve."""
    import numpy as np

    from asuc_bayes.inference.forecast import load_results

    out = tmp_path / "forecasts.nc"
    argv = ["forecast", str(dataset), "--model", "wojciechowski2017", "--seed", "4"]
    assert main([*argv, "--format", "json", "--out", str(out)]) == EXIT_OK
    (entry,) = json.loads(capsys.readouterr().out)["patients"]
    predictions = load_results(out)["P1"]["predictions"]
    time = predictions["time"].values
    for record in entry["observations"]:
        at = record["time"]
        map_value = np.interp(at, time, predictions["concentration_map"].values)
        prior_value = np.interp(at, time, predictions["concentration_a_priori"].values)
        assert map_value == pytest.approx(record["ipred"], rel=0.01)
        assert prior_value == pytest.approx(record["pred"], rel=0.01)
    curves = predictions["concentration"].values.reshape(-1, time.size)
    assert curves.shape[0] >= 900 and np.all(np.isfinite(curves))


def test_explicit_imputation_is_applied_and_reported(tmp_path, dataset, capsys):
    """--impute NAME=VALUE gives the same answer as the covariate in the data, and says so;
    --impute reference uses the model's reference values; a malformed entry is an error."""
    path = tmp_path / "no_alb.csv"
    path.write_text(DATA.replace(",ALB,ADA", "").replace(",3.5,0", ""))
    base = ["forecast", "--model", "wojciechowski2017", "--format", "json", "--seed", "4"]
    assert main([*base[:1], str(dataset), *base[1:]]) == EXIT_OK
    given = json.loads(capsys.readouterr().out)["patients"][0]
    imputed_args = [*base[:1], str(path), *base[1:], "--impute", "ALB=3.5", "--impute", "ADA=0"]
    assert main(imputed_args) == EXIT_OK
    imputed = json.loads(capsys.readouterr().out)["patients"][0]
    assert imputed["posterior"]["ln_auc_cl"] == given["posterior"]["ln_auc_cl"]
    assert {i["covariate"]: i["value"] for i in imputed["imputed"]} == {"ALB": 3.5, "ADA": 0.0}
    assert main([*base[:1], str(path), *base[1:], "--impute", "reference"]) == EXIT_OK
    reference = json.loads(capsys.readouterr().out)["patients"][0]
    assert {i["covariate"]: i["value"] for i in reference["imputed"]} == {"ALB": 4.0, "ADA": 0.0}
    for bad in (["--impute", "ALB"], ["--impute", "ALB=high"], ["--impute", "reference",
                "--impute", "ADA=0"]):  # fmt: skip
        assert main([*base[:1], str(path), *base[1:], *bad]) == EXIT_INPUT
        err = capsys.readouterr().err
        assert "--impute" in err and "Traceback" not in err
    # a covariate the model does not have, and albumin in g/L for a model in g/dL
    assert main([*base[:1], str(path), *base[1:], "--impute", "CRPX=3"]) == EXIT_INPUT
    assert "has no covariate CRPX" in capsys.readouterr().err
    assert main([*base[:1], str(path), *base[1:], "--impute", "ALB=40"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "400 g/L, outside the plausible 10-60 g/L" in err and "give ALB in g/dL" in err
    # compare-patient and optimize take it too; the ASUC model says it has no effect
    code = main(["compare-patient", str(path), "--model", "wojciechowski2017", "--impute",
                 "ALB=3.5", "--impute", "ADA=0", "--format", "json", "--seed", "4"])  # fmt: skip
    compared = json.loads(capsys.readouterr().out)["patients"][0]
    assert code == EXIT_OK and [i["covariate"] for i in compared["imputed"]] == ["ALB", "ADA"]
    code = main(["optimize", str(path), "--model", "wojciechowski2017", "--impute", "reference",
                 "--format", "json", "--seed", "4"])  # fmt: skip
    assert code == EXIT_OK and "ALB" in capsys.readouterr().out
    assert main(["forecast", str(dataset), "--impute", "reference", "--draws", "200"]) == EXIT_OK
    assert "--impute reference has no effect here" in capsys.readouterr().err


def test_csv_rows_carry_the_json_numbers(dataset, capsys):
    """forecast --model NAME --format csv: the standard columns, the model's parameters and
    the imputations, each equal to the JSON of the same run."""
    import io

    import pandas as pd

    base = ["forecast", str(dataset), "--model", "wojciechowski2017", "--seed", "4"]
    assert main([*base, "--format", "json"]) == EXIT_OK
    entry = json.loads(capsys.readouterr().out)["patients"][0]
    assert main([*base, "--format", "csv"]) == EXIT_OK
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    row = table.iloc[0]
    assert row["id"] == "P1" and row["model"] == "wojciechowski2017"
    assert row["ln_auc_cl_q50"] == pytest.approx(entry["posterior"]["ln_auc_cl"]["q50"], rel=1e-12)
    assert row["risk_90d_mcse_q97.5"] == pytest.approx(
        entry["posterior"]["risk_90d"]["mcse"]["q97.5"], rel=1e-12
    )
    for name in ("CL", "V1", "Q", "V2"):
        assert row[f"param_{name}_mean"] == pytest.approx(
            entry["parameters"][name]["mean"], rel=1e-12
        )
    assert bool(row["outcome_extrapolated"]) is True
    assert row["diag_method"] == entry["diagnostics"]["method"]


def test_out_writes_each_patients_datatree_with_the_json_numbers(tmp_path, dataset, capsys):
    """``--out`` with a library model: one netCDF file, a checked DataTree per patient whose
    draws give the JSON's summaries and whose provenance names the model file and seed."""
    import numpy as np

    from asuc_bayes.inference.forecast import load_results
    from asuc_bayes.provenance import ResultSchemaError, check_result_tree

    out = tmp_path / "forecasts.nc"
    argv = ["forecast", str(dataset), "--model", "wojciechowski2017", "--seed", "4"]
    assert main([*argv, "--format", "json", "--out", str(out)]) == EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    (entry,) = printed["patients"]
    tree = load_results(out)["P1"]
    assert tree.attrs["model_sha256"] == printed["model"]["sha256"]
    assert tree.attrs["random_seed"] == patient_seed(4, "P1")
    assert tree.attrs["status"] == entry["status"]
    assert json.loads(tree.attrs["covariates"]) == entry["covariates"]
    posterior = tree["posterior"]
    for name in ("ln_auc_cl", "risk_90d", "cl"):
        assert float(posterior[name].mean()) == pytest.approx(entry["posterior"][name]["mean"])
    assert float(posterior["eta_Q"].median()) == pytest.approx(entry["eta"]["eta_Q"]["q50"])
    points = tree["point_estimates"]
    np.testing.assert_allclose(points["eta"].sel(estimate="map"), entry["map"]["eta"])
    ipred = [o["ipred"] for o in entry["observations"]]
    assert list(points["ipred"].values) == pytest.approx(ipred)
    assert list(tree["constant_data"]["dose_amount_mg"].values) == [400.0, 400.0]
    assert list(tree["observed_data"]["concentration"].values) == [9.5]
    damaged = tree.copy()
    del damaged["point_estimates"]
    with pytest.raises(ResultSchemaError, match="missing group point_estimates"):
        check_result_tree(damaged, "library patient forecast")


@pytest.mark.parametrize("mode", [[], ["--trough-target", "5"]], ids=["risk", "trough"])
def test_optimize_csv_carries_the_json_numbers(dataset, capsys, mode):
    """``optimize --model NAME --format csv``: the forecast's columns and the plan's, the JSON's
    numbers (risk mode: the recommended dose's mean risk; trough mode: the trough answer)."""
    import csv
    import io

    from asuc_bayes.interfaces.output import TROUGH_FIELDS, library_dosing_columns

    argv = ["optimize", str(dataset), "--model", "wojciechowski2017", "--seed", "2", *mode]
    assert main([*argv, "--format", "json"]) == EXIT_OK
    (plan,) = json.loads(capsys.readouterr().out)["patients"]
    assert main([*argv, "--format", "csv"]) == EXIT_OK
    text = capsys.readouterr().out
    assert text.splitlines()[0].split(",") == list(library_dosing_columns(["CL", "V1", "Q", "V2"]))
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["id"] == "P1" and row["model"] == "wojciechowski2017"
    assert row["mode"] == plan["mode"] and row["status"] == plan["status"]
    assert float(row["diag_rhat_max"]) == plan["diagnostics"]["rhat_max"]
    if plan["mode"] == "risk":
        assert float(row["dose_mg"]) == plan["recommended"]["dose_mg"]
        assert float(row["dose_risk_90d"]) == plan["recommended"]["risk_90d"]["mean"]
        assert float(row["map_dose_mg"]) == plan["map_recommended"]["dose_mg"]
        assert row["trough_status"] == ""
    else:
        assert row["dose_mg"] == "" and row["trough_status"] == plan["trough"]["status"]
        for column, path in TROUGH_FIELDS.items():
            value = plan
            for key in path:
                value = value[key]
            if isinstance(value, bool):
                assert row[column] == str(value).lower(), column
            else:
                assert row[column] == str(value) or float(row[column]) == value, column
