"""The command line: output contract, reproducibility, exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from asuc_bayes import example_path, load_results, read_patients
from asuc_bayes.interfaces.cli import EXIT_INPUT, EXIT_OK, EXIT_UNCONVERGED, main

PATIENT_CSV = """ID,TIME,EVID,AMT,DV,CENS,WT,CRP
A1,0,1,700,.,0,68,45
A1,2,0,.,40,0,68,45
A1,13.9,0,.,8,0,68,45
A1,14,1,700,.,0,68,45
"""

FAST = ["--tune", "500"]  # default 4 x 1000 draws; the gates need a bulk ESS of 400


@pytest.fixture
def patient_csv(tmp_path):
    path = tmp_path / "patient.csv"
    path.write_text(PATIENT_CSV)
    return path


def run(capsys, *argv):
    code = main(["forecast", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_is_one_object_and_reproducible(capsys, patient_csv, spec):
    code, out, err = run(capsys, patient_csv, "--format", "json", "--seed", 4, *FAST)
    assert code == EXIT_OK, err
    document = json.loads(out)  # exactly one JSON object: nothing else on stdout
    assert document["model"]["sha256"] == spec.sha256
    (entry,) = document["patients"]
    assert entry["id"] == "A1"
    assert entry["status"] == "ok"
    assert entry["diagnostics"]["method"] == "independence_mh"  # the default sampler
    assert entry["diagnostics"]["divergences"] == 0
    assert entry["diagnostics"]["draws"] == 1000
    again = run(capsys, patient_csv, "--format", "json", "--seed", 4, *FAST)
    assert again[1] == out
    other_seed = run(capsys, patient_csv, "--format", "json", "--seed", 5, *FAST)
    assert other_seed[1] != out


def test_table_on_the_bundled_example(capsys):
    first = read_patients(example_path()).patients[0].id
    code, out, err = run(capsys, "--example", "--id", first, *FAST)
    assert code == EXIT_OK, err
    assert f"patient {first}: OK" in out
    for label in ("CL", "AUC day 14-28", "ln(AUC/CL)", "90-day colectomy risk", "95% CrI", "MAP"):
        assert label in out


def test_out_file_loads_back(capsys, patient_csv, tmp_path):
    target = tmp_path / "results.nc"
    code, _, err = run(capsys, patient_csv, "--out", target, "--format", "json", *FAST)
    assert code == EXIT_OK, err
    tree = load_results(target)
    assert tree["A1"].attrs["patient_id"] == "A1"
    assert "posterior" in tree["A1"].children


def test_unconverged_posterior_exits_1_unless_allowed(capsys, patient_csv):
    # 4 chains x 30 draws cannot reach a bulk ESS of 400: the gate must fail, loudly.
    code, out, err = run(capsys, patient_csv, "--draws", 30, "--tune", 30, "--format", "json")
    assert code == EXIT_UNCONVERGED
    assert json.loads(out)["patients"][0]["status"] == "unconverged"
    assert "unconverged posterior for A1" in err
    code, out, _ = run(
        capsys, patient_csv, "--draws", 30, "--tune", 30, "--allow-unconverged", "--format", "json"
    )
    assert code == EXIT_OK
    assert json.loads(out)["patients"][0]["status"] == "unconverged"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give either a data file or --example"),
        (["--example", "--id", "NOBODY"], "--id NOBODY"),
        (["--example", "--variant", "no_such_variant"], "no_such_variant"),
        (["--example", "--draws", "0"], "draws"),
        (["--example", "--chains", "1"], "chains"),
        (["missing-file.csv"], "missing-file.csv"),
    ],
)
def test_bad_options_exit_2_with_a_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == EXIT_INPUT
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_bad_data_exits_2_naming_patient_row_and_field(capsys, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(PATIENT_CSV.replace("A1,14,1,700", "A1,14,1,-700"))
    code, out, err = run(capsys, path)
    assert code == EXIT_INPUT
    assert out == ""
    assert "A1" in err
    assert "AMT" in err
    assert "row 5" in err  # the CSV line of the bad dose (header is line 1)


def test_broken_model_file_exits_2(capsys, tmp_path, patient_csv):
    broken = tmp_path / "broken.toml"
    broken.write_text("[model]\nname = 'x'\n")
    code, _, err = run(capsys, patient_csv, "--model", broken)
    assert code == EXIT_INPUT
    assert "broken.toml" in err


def test_console_script_reports_errors_without_traceback(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(PATIENT_CSV.replace("68,45", "68,abc", 1))
    completed = subprocess.run(
        [sys.executable, "-m", "asuc_bayes.interfaces.cli", "forecast", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == EXIT_INPUT
    assert "CRP" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    "command",
    [[], ["forecast"], ["optimize"], ["sensitivity"], ["compare-patient"], ["compare"], ["app"]],
)
def test_help_shows_examples_and_exit_codes(capsys, command):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "exit codes:" in out


def test_progress_bar_only_on_an_interactive_terminal(monkeypatch):
    import io

    from asuc_bayes.interfaces.cli import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for terminal, quiet, shown in ((True, False, True), (True, True, False), (False, False, False)):
        stream = Terminal() if terminal else io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)
        progress = Progress("forecast", 4, quiet=quiet)
        for done in range(1, 5):
            progress(done, 4)
        progress.close()
        assert ("forecast [" in stream.getvalue()) == shown
        if shown:
            assert "4/4" in stream.getvalue()


def test_app_refuses_a_port_in_use(capsys):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code = main(["app", "--port", str(port)])
    assert code == EXIT_INPUT
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
