"""sensitivity --model NAME: the analyses that apply to a library model.

References (identities of the posterior, each sampled independently): a Gaussian prior
raised to the power 2 is N(0, Ω/2), so ``prior_power_2`` must equal ``omega_x0.5``; the
likelihood raised to the power 2 is the likelihood of every record given twice.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from asuc_bayes.data.dataset import BELOW_LLOQ, Dose, Observation, Patient
from asuc_bayes.inference import PatientProblem, SamplerOptions, forecast_library_patient
from asuc_bayes.interfaces.cli import main
from asuc_bayes.spec import load_declaration, with_outcome_from
from asuc_bayes.studies.library_sensitivity import (
    alternative_changes,
    library_alternatives,
    run_library_sensitivity,
)
from asuc_bayes.studies.library_simulate import simulate_library_cohort
from asuc_bayes.studies.simulate import write_cohort

WOJ = load_declaration("wojciechowski2017")
COVARIATES = {"ALB": (4.0, "g/dL"), "ADA": 0}
DOSES = tuple(Dose(t, 350.0, 1 / 12) for t in (0.0, 14.0, 42.0))
RECORDS = (Observation(7.0, 14.0), Observation(13.9, 5.0))


@pytest.fixture(scope="module")
def result():
    patient = Patient("p", 70.0, 30.0, DOSES, RECORDS)
    return run_library_sensitivity(WOJ, patient, COVARIATES, random_seed=2, structural=False)


def _row(result, name):
    table = result.table.set_index("name")
    return table.loc[name]


def test_rows_present_and_flagged(result):
    names = set(result.table["name"])
    assert {"baseline", "omega_x0.5", "omega_x2", "residual_sd_x0.5", "residual_sd_x2"} <= names
    assert {"prior_power_0.5", "prior_power_2", "likelihood_power_0.5"} <= names
    assert all("extrapolated outcome" in f for f in result.table["flags"])
    # no censored record: the censoring strategies are neutral (the baseline exactly)
    for name in ("censoring_discard", "censoring_impute"):
        row = _row(result, name)
        assert not row["changes_log_density"] and not row["changes_derived"]
        assert row["risk_mean"] == _row(result, "baseline")["risk_mean"]
    assert any("no dose rows" in note for note in result.notes)
    entry = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert entry["alternatives"][0]["name"] == "baseline"


def test_prior_power_two_is_half_omega(result):
    a, b = _row(result, "prior_power_2"), _row(result, "omega_x0.5")
    for key in ("ln_auc_cl_q2.5", "ln_auc_cl_q50", "ln_auc_cl_q97.5", "risk_mean"):
        assert a[key] == pytest.approx(b[key], abs=0.03)
    assert a["ln_auc_cl_q50"] != pytest.approx(_row(result, "omega_x2")["ln_auc_cl_q50"], abs=1e-3)


def test_likelihood_power_two_is_every_record_twice(result):
    doubled = Patient("p", 70.0, 30.0, DOSES, RECORDS + RECORDS)
    reference = forecast_library_patient(
        WOJ,
        doubled,
        COVARIATES,
        attach_outcome=True,
        random_seed=9,
        options=SamplerOptions(draws=2000),
    )
    assert reference.status == "ok"
    ln = np.asarray(reference.draws.ln_auc_cl).ravel()
    b = np.quantile(ln, [0.025, 0.5, 0.975])
    a = _row(result, "likelihood_power_2")
    assert a["status"] == "ok"
    width = b[2] - b[0]
    for key, value in zip(("ln_auc_cl_q2.5", "ln_auc_cl_q50", "ln_auc_cl_q97.5"), b, strict=True):
        assert a[key] == pytest.approx(value, abs=0.05 * width)
    assert a["ln_auc_cl_q50"] != pytest.approx(_row(result, "baseline")["ln_auc_cl_q50"], abs=1e-4)


def test_censored_record_changes_the_density():
    patient = Patient("p", 70.0, 30.0, DOSES, (*RECORDS, Observation(41.9, 1.0, BELOW_LLOQ)))
    decl = with_outcome_from(WOJ, load_declaration("niyigena2025"))
    base = PatientProblem.from_patient(decl, patient, COVARIATES)
    alternatives = {a.name: a for a in library_alternatives(WOJ, patient)}
    for name in ("censoring_discard", "censoring_impute"):
        density, derived = alternative_changes(base, alternatives[name], COVARIATES)
        assert density and not derived
    assert alternative_changes(base, alternatives["omega_x2"], COVARIATES) == (True, False)
    assert alternative_changes(base, alternatives["prior_power_2"], COVARIATES) == (True, False)


def test_cli_sensitivity_library(tmp_path, capsys):
    cohort = simulate_library_cohort("wojciechowski2017", 2, random_seed=4)
    data, _ = write_cohort(cohort, tmp_path / "c.csv")
    args = [
        "sensitivity",
        str(data),
        "--id",
        "L001",
        "--model",
        "wojciechowski2017",
        "--format",
        "json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["patients"][0]["alternatives"]
    structural = [r for r in rows if r["group"] == "structural"]
    assert {r["name"] for r in structural} >= {"niyigena2025", "fasanmade2009"}
    assert all("other model" in r["flags"] for r in structural)
    assert main([*args, "--population-fit", str(tmp_path / "fit.nc")]) == 2
    assert "--population-fit" in capsys.readouterr().err
    assert np.isfinite(rows[0]["risk_mean"])
