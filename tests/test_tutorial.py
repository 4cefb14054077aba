"""docs/tutorial.py runs end to end through the public API (few patients, outputs in tmp)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.py"


def _load_tutorial():
    spec = importlib.util.spec_from_file_location("asuc_bayes_tutorial", TUTORIAL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tutorial_runs_and_writes_its_outputs(tmp_path, capsys, forecaster):
    scores = _load_tutorial().main(tmp_path, cohort=3)
    out = capsys.readouterr().out
    for step in ("90-day colectomy risk", "report:", "dose at day 14", "regimens compared"):
        assert step in out
    document = json.loads((tmp_path / "forecast.json").read_text())
    assert document["patients"][0]["id"] == "T01"
    html = (tmp_path / "report.html").read_text()
    assert "T01" in html and "<html" in html.lower()
    assert (tmp_path / "forecast.nc").stat().st_size > 0
    assert scores["patients"] == 3
    for step in (
        "library: ",
        "under wojciechowski2017: ok",
        "model weights:",
        "model-average report",
    ):
        assert step in out
    assert "niyigena2025" in (tmp_path / "average.html").read_text()
    assert 0 <= scores["cl_95_coverage"] <= 1 and 0 <= scores["risk_class_accuracy"] <= 1
