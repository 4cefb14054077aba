"""One tie rule for the risk class: P(high risk) >= 0.5 is high, in forecast, compare-patient,
the text and HTML reports (the rule lives in asuc_bayes.inference.risk_class)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from asuc_bayes.inference.forecast import SamplerSettings
from asuc_bayes.inference.risk_class import HIGH_RISK_PROBABILITY, is_high_risk, risk_class
from asuc_bayes.interfaces.report import format_table, interpretation, patient_report_html
from asuc_bayes.studies.comparison import compare_patient

from conftest import REFERENCE_PATIENTS


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.0, "low"), (0.4999999, "low"), (0.5, "high"), (0.73, "high"), (1, "high")],
)
def test_risk_class_ties_are_high(p, expected):
    assert risk_class(p) == expected
    assert bool(is_high_risk(p)) == (expected == "high")
    assert HIGH_RISK_PROBABILITY == 0.5


@pytest.mark.parametrize("bad", [math.nan, -0.1, 1.5, math.inf])
def test_risk_class_rejects_non_probabilities(bad):
    with pytest.raises(ValueError, match="probability"):
        risk_class(bad)


@pytest.fixture(scope="module")
def tied_forecast(forecaster):
    """A real forecast whose ln(AUC/CL) draws are moved so that exactly half lie below the
    threshold, the other half far enough above it that the posterior median is above the
    threshold (the old median rule said "low" while compare-patient's P >= 0.5 rule said
    "high")."""
    result = forecaster.forecast(
        REFERENCE_PATIENTS["one_sample"], random_seed=2, settings=SamplerSettings(draws=250)
    )
    threshold = result.spec.tte.high_risk_threshold
    tree = result.tree.copy()
    posterior = tree["posterior"].to_dataset()
    values = posterior["ln_auc_cl"].values
    flat = np.where(np.arange(values.size) % 2 == 0, threshold - 0.3, threshold + 0.5)
    posterior["ln_auc_cl"] = (posterior["ln_auc_cl"].dims, flat.reshape(values.shape))
    tree["posterior"] = posterior
    return dataclasses.replace(result, tree=tree)


def test_forecast_and_compare_patient_agree_on_a_tie(tied_forecast, spec):
    summary = tied_forecast.summary()
    assert summary["p_high_risk"] == 0.5
    assert summary["posterior"]["ln_auc_cl"]["q50"] > spec.tte.high_risk_threshold
    comparison = compare_patient(spec, tied_forecast)
    assert comparison["p_high_risk"] == 0.5
    assert summary["risk_class"] == comparison["posterior_class"] == "high"
    assert "risk class (high when P(high risk) >= 0.5): HIGH" in format_table([tied_forecast], spec)
    sentences = " ".join(interpretation(summary, spec.tte.high_risk_threshold))
    assert "classed as HIGH risk" in sentences and "at least one half" in sentences
    document = patient_report_html(tied_forecast)
    assert '<div class="value high">HIGH</div>' in document
