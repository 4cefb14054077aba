"""Adversarial options and output paths: each is refused before any work starts, with exit
code 2 and a message naming the option (no traceback); JSON never holds NaN or Infinity;
``--format csv`` holds the JSON's numbers."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys

import pytest

from asuc_bayes import example_path, read_patients
from asuc_bayes.interfaces.cli import EXIT_INPUT, EXIT_OK, main
from asuc_bayes.interfaces.output import DOSING_COLUMNS, FORECAST_COLUMNS, dumps_json
from asuc_bayes.studies.comparison import SCENARIOS, simulate_scenario

FIRST = read_patients(example_path()).patients[0].id


def _bad_cases(tmp):
    """(argv, option named in the message) — every one must be refused up front."""
    a_file = tmp / "a_file.txt"
    a_file.write_text("x")
    return [
        (["forecast", "--example", "--out", tmp / "missing" / "r.nc"], "--out"),
        (["forecast", "--example", "--out", tmp], "--out"),
        (["forecast", "--example", "--out", "/proc/asuc-bayes-test.nc"], "--out"),
        (["forecast", "--example", "--out", a_file / "r.nc"], "--out"),
        (["forecast", "--example", "--checkpoint", a_file], "--checkpoint"),
        (["forecast", "--example", "--report", tmp], "--report"),
        (["forecast", "--example", "--report", tmp / "no" / "r.html"], "--report"),
        (["forecast", "--example", "--seed", "-1"], "--seed"),
        (["forecast", "--example", "--seed", str(2**40)], "--seed"),
        (["forecast", "--example", "--draws", "100000000"], "--draws"),
        (["forecast", "--example", "--tune", "100000000"], "--tune"),
        (["forecast", "--example", "--tune", "-5"], "--tune"),
        (["forecast", "--example", "--chains", "100000"], "--chains"),
        (["forecast", "--example", "--target-accept", "1.5"], "--target-accept"),
        (["forecast", "--example", "--target-accept", "nan"], "--target-accept"),
        (["forecast", "--example", "--workers", "0"], "--workers"),
        (["forecast", "--example", "--population-draws", "1"], "--population-draws"),
        (["forecast", "--example", "--format", "xml"], "--format"),
        (["forecast", "--example", "--draws", "ten"], "--draws"),
        (["optimize", "--example", "--sample-days", "8,nan,12"], "--sample-days"),
        (["optimize", "--example", "--timing-days", "7:inf"], "--timing-days"),
        (["optimize", "--example", "--timing-days", "0:1e9:0.001"], "--timing-days"),
        (["optimize", "--example", "--sample-days", "400"], "--sample-days"),
        (["optimize", "--example", "--target-risk", "1.2"], "--target-risk"),
        (["optimize", "--example", "--target-risk", "inf"], "--target-risk"),
        (["optimize", "--example", "--probability", "0"], "--probability"),
        (["optimize", "--example", "--dose-time", "nan"], "--dose-time"),
        (["optimize", "--example", "--vial-mg", "-100"], "--vial-mg"),
        (["optimize", "--example", "--max-mg-kg", "1e9"], "--max-mg-kg"),
        (["optimize", "--example", "--n-simulations", "0"], "--n-simulations"),
        (["optimize", "--example", "--lloq", "-inf"], "--lloq"),
        (["optimize", "--example", "--interval-days", "0"], "--interval-days"),
        (["optimize", "--example", "--trough-target", "nan"], "--trough-target"),
        (["sensitivity", "--example", "--grid-points", "5"], "--grid-points"),
        (["sensitivity", "--example", "--out", a_file], "--out"),
        (["compare", "--n", "0"], "--n"),
        (["app", "--port", "70000"], "--port"),
        (["simulate", "--n", "5", "--out", tmp / "missing" / "c.csv"], "--out"),
        (["sbc", "--replicates", "2", "--subjects", "1", "--out", tmp / "s"], "--subjects"),
        (["evaluate", "fit.nc", "--out", tmp / "e", "--replicates", "3"], "--replicates"),
    ]


def _run(argv: list[str]) -> int:
    """``main``'s exit code; argparse's own errors (malformed values) raise SystemExit(2)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_there_are_at_least_twenty_cases(tmp_path):
    assert len(_bad_cases(tmp_path)) >= 20


@pytest.mark.parametrize("index", range(40))
def test_bad_option_exits_2_naming_the_option(index, tmp_path, capsys):
    cases = _bad_cases(tmp_path)
    argv, option = cases[index]
    code = _run([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == EXIT_INPUT, (argv, err)
    assert out == ""
    assert option in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "missing").exists()  # refused before any work


def test_messages_name_the_value_and_the_fix(tmp_path, capsys):
    assert main(["forecast", "--example", "--target-accept", "1.5"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "--target-accept 1.5" in err and "[0.5, 1)" in err and "fix:" in err
    missing = tmp_path / "nowhere" / "r.nc"
    assert main(["forecast", "--example", "--out", str(missing)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert str(missing) in err and "mkdir -p" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["forecast", "--example", "--out", str(folder / "r.nc")]) == EXIT_INPUT
    finally:
        folder.chmod(0o700)
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["forecast", "--example", "--seed", "-1"],
        ["optimize", "--example", "--sample-days", "8,nan"],
        ["forecast", "--example", "--out", "/proc/asuc-bayes-test.nc"],
    ],
)
def test_console_script_shows_no_traceback(argv):
    completed = subprocess.run(
        [sys.executable, "-m", "asuc_bayes.interfaces.cli", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == EXIT_INPUT
    assert "Traceback" not in completed.stderr
    assert argv[2] in completed.stderr
    assert completed.stdout == ""


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_writer_maps_non_finite_numbers_to_null():
    import numpy as np

    document = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": np.float64("nan")}
    assert _strict(dumps_json(document)) == {"a": None, "b": [None, None, 1.5], "c": None}


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _same(cell: str, value) -> bool:
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == ("true" if value else "false")
    if isinstance(value, int | float):
        return float(cell) == float(value)
    return cell == str(value)


def test_forecast_csv_equals_the_json(capsys):
    argv = ["forecast", "--example", "--id", FIRST, "--tune", "500", "--seed", "3"]
    assert main([*argv, "--format", "json"]) == EXIT_OK
    entry = _strict(capsys.readouterr().out)["patients"][0]
    assert main([*argv, "--format", "csv"]) == EXIT_OK
    text = capsys.readouterr().out
    assert text.splitlines()[0].split(",") == list(FORECAST_COLUMNS)
    (row,) = _csv_rows(text)
    assert row["id"] == FIRST and row["status"] == entry["status"]
    assert _same(row["p_high_risk"], entry["p_high_risk"])
    assert row["risk_class"] == entry["risk_class"]
    for quantity, stats in entry["posterior"].items():
        for statistic, value in stats.items():
            if statistic == "mcse":
                for name, mcse in value.items():
                    assert _same(row[f"{quantity}_mcse_{name}"], mcse), (quantity, name)
            else:
                assert _same(row[f"{quantity}_{statistic}"], value), (quantity, statistic)
        assert _same(row[f"map_{quantity}"], entry["map"][quantity])
        assert _same(row[f"a_priori_{quantity}"], entry["a_priori"][quantity])
    for name, value in entry["diagnostics"].items():
        if name == "precision":
            for key, item in value.items():
                assert _same(row[f"diag_precision_{key}"], item), key
        else:
            assert _same(row[f"diag_{name}"], value), name


def test_optimize_csv_equals_the_json(capsys):
    argv = ["optimize", "--example", "--id", FIRST, "--tune", "500", "--seed", "2"]
    assert main([*argv, "--format", "json"]) == EXIT_OK
    plan = _strict(capsys.readouterr().out)["patients"][0]
    assert main([*argv, "--format", "csv"]) == EXIT_OK
    text = capsys.readouterr().out
    assert text.splitlines()[0].split(",") == list(DOSING_COLUMNS)
    (row,) = _csv_rows(text)
    assert _same(row["dose_mg"], plan["recommended"]["dose_mg"])
    assert _same(row["dose_risk_90d"], plan["recommended"]["risk_90d"])
    assert _same(row["dose_p_meets_target"], plan["recommended"]["p_meets_target"])
    assert _same(row["map_dose_mg"], plan["map_recommended"]["dose_mg"])
    assert _same(row["feasible"], plan["feasible"])
    assert _same(row["target_risk"], plan["target_risk"])
    assert row["status"] == plan["status"]
    assert _same(row["diag_rhat_max"], plan["diagnostics"]["rhat_max"])
    assert row["mode"] == "risk" and row["trough_status"] == ""


def _trough_cells_match(row: dict[str, str], plan: dict) -> None:
    """The trough columns of an ``optimize`` CSV row carry the JSON plan's trough answer."""
    from asuc_bayes.interfaces.output import TROUGH_FIELDS

    for column, path in TROUGH_FIELDS.items():
        value = plan
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        assert _same(row[column], value), (column, row[column], value)


def test_optimize_trough_csv_carries_the_trough_answer(capsys):
    """Trough mode's CSV rows hold the maintenance answer (they were empty dosing columns)."""
    argv = ["optimize", "--example", "--id", FIRST, "--trough-target", "5", "--seed", "1"]
    assert main([*argv, "--format", "json"]) == EXIT_OK
    plan = _strict(capsys.readouterr().out)["patients"][0]
    assert main([*argv, "--format", "csv"]) == EXIT_OK
    (row,) = _csv_rows(capsys.readouterr().out)
    assert row["mode"] == "trough" and row["trough_status"] == plan["trough"]["status"]
    assert row["trough_q50"] != "" and row["dose_mg"] == ""
    _trough_cells_match(row, plan)


def _seed_without_true_high_risk(spec, scenario: str, n: int) -> int:
    """The first seed whose ``n`` simulated patients include no truly high-risk one (chosen
    from the simulator itself, so the premise holds whatever its design)."""
    for seed in range(100):
        _, truth = simulate_scenario(spec, SCENARIOS[scenario], n, seed)
        if not (truth["ln_auc_cl"] < spec.tte.high_risk_threshold).any():
            return seed
    raise AssertionError(f"every seed of {scenario} draws a high-risk patient among {n}")


def test_compare_writes_strict_json_even_with_undefined_metrics(spec, tmp_path, capsys):
    """Six patients with no truly high-risk one: the sensitivity of the classification is
    undefined (NaN inside, as tests/test_comparison.py notes); stdout and metrics.json must
    still be strict JSON, with null there."""
    seed = _seed_without_true_high_risk(spec, "two_samples", 6)
    argv = ["compare", "--n", "6", "--scenario", "two_samples", "--seed", str(seed), "--quiet"]
    argv += ["--format", "json", "--tune", "500", "--out", str(tmp_path / "study")]
    assert main(argv) == EXIT_OK
    printed = _strict(capsys.readouterr().out)
    written = _strict((tmp_path / "study" / "metrics.json").read_text())
    assert printed == written
    assert written[0]["map"]["classification"]["sensitivity"] is None


def test_diagnostics_tune_is_the_tuning_the_sampler_did(capsys):
    """--tune is NUTS warm-up: the default IMH path reports its own burn-in (not --tune);
    NUTS reports --tune."""
    from asuc_bayes.inference.forecast import IMH_BURN

    argv = ["forecast", "--example", "--id", FIRST, "--format", "json", "--allow-unconverged"]
    assert main([*argv, "--tune", "700"]) == EXIT_OK
    imh = _strict(capsys.readouterr().out)["patients"][0]["diagnostics"]
    assert (imh["method"], imh["tune"], imh["sampler"]) == ("independence_mh", IMH_BURN, "imh")
    assert IMH_BURN != 700
    assert main([*argv, "--tune", "300", "--sampler", "nutpie"]) == EXIT_OK
    nuts = _strict(capsys.readouterr().out)["patients"][0]["diagnostics"]
    assert (nuts["method"], nuts["tune"], nuts["sampler"]) == ("nuts", 300, "nutpie")
