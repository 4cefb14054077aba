"""compare-patient --model NAME: MAP + Laplace against the posterior under a library model.

References: the MAP against scipy.optimize on PatientProblem.log_posterior; the Laplace
covariance against an independent finite-difference Hessian; the Laplace interval of CL
against the hand-computed log-normal quantiles; for a data-rich patient the posterior
against the Laplace approximation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from asuc_bayes.data.dataset import Dose, Observation, Patient
from asuc_bayes.inference import PatientProblem, SamplerOptions
from asuc_bayes.interfaces.cli import main
from asuc_bayes.spec import load_declaration, with_outcome_from
from asuc_bayes.studies.library_compare import compare_library_patient, compare_problem
from asuc_bayes.studies.library_simulate import simulate_library_cohort
from asuc_bayes.studies.simulate import write_cohort

COVARIATES = {"ALB": (4.0, "g/dL"), "ADA": 0}
OPTIONS = SamplerOptions(chains=4, draws=1000)


def _patient(samples) -> Patient:
    doses = tuple(Dose(t, 350.0, 1 / 12) for t in (0.0, 14.0, 42.0))
    return Patient("p1", 70.0, 30.0, doses, tuple(Observation(t, y) for t, y in samples))


def _problem(samples) -> PatientProblem:
    decl = with_outcome_from(
        load_declaration("wojciechowski2017"), load_declaration("niyigena2025")
    )
    return PatientProblem.from_patient(decl, _patient(samples), COVARIATES)


def _hessian(f, x, step=1e-4):
    d = x.size
    out = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            e_i, e_j = np.eye(d)[i] * step, np.eye(d)[j] * step
            out[i, j] = (
                f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)
            ) / (4 * step**2)
    return out


def test_map_and_laplace_against_scipy():
    problem = _problem([(7.0, 15.0), (13.9, 4.0), (41.9, 2.5)])
    comparison = compare_problem(problem, "p1", random_seed=3, options=OPTIONS)

    def negative(eta):
        return -float(problem.log_posterior(np.asarray(eta)[None, :])[0])

    reference = scipy.optimize.minimize(
        negative,
        np.full(4, 0.1),
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000},
    )
    assert reference.success
    np.testing.assert_allclose(comparison.forecast.map.eta, reference.x, atol=2e-4)
    covariance = np.linalg.inv(_hessian(negative, reference.x))
    np.testing.assert_allclose(comparison.forecast.map.covariance, covariance, rtol=2e-3, atol=1e-6)

    # the Laplace interval of CL: log-normal, ln CL = ln TV_CL + η_CL (hand computation)
    entry = comparison.to_json()
    typical_cl = 0.294 * (4.0 / 4.0) ** -1.17  # WT 70, ALB 4 g/dL, ADA 0
    sd = np.sqrt(comparison.forecast.map.covariance[0, 0])
    mean = np.log(typical_cl) + comparison.forecast.map.eta[0]
    expected = np.exp(mean + np.array([-1, 1]) * scipy.stats.norm.ppf(0.975) * sd)
    # MC standard error of a 2.5 % quantile of 4000 normal draws: 0.042 SD; allow 3.5 SE
    np.testing.assert_allclose(
        np.log(entry["intervals"]["cl"]["laplace_95"]), np.log(expected), atol=0.15 * sd
    )
    assert entry["intervals"]["cl"]["map"] == pytest.approx(np.exp(mean), rel=1e-10)


def test_posterior_close_to_laplace_for_a_data_rich_patient():
    rng = np.random.default_rng(5)
    times = [1.0, 3.0, 7.0, 10.0, 13.9, 16.0, 21.0, 27.9, 35.0, 41.9]
    problem0 = _problem([(t, 1.0) for t in times])
    truth = np.array([0.2, -0.1, 0.3, -0.2])
    f = problem0.predict(truth[None, :])[0]
    y = f * (1 + 0.419 * rng.standard_normal(f.size))
    problem = _problem(list(zip(times, np.maximum(y, 0.5), strict=True)))
    entry = compare_problem(problem, "p1", random_seed=2, options=OPTIONS).to_json()
    assert entry["status"] == "ok"
    for key in ("cl", "ln_auc_cl"):
        i = entry["intervals"][key]
        width = i["posterior_95"][1] - i["posterior_95"][0]
        assert abs(i["laplace_95"][0] - i["posterior_95"][0]) < 0.25 * width
        assert abs(i["laplace_95"][1] - i["posterior_95"][1]) < 0.25 * width
    assert abs(entry["p_high_risk"] - entry["p_high_risk_laplace"]) < 0.1


def test_json_contract_and_flags():
    patient = _patient([(13.9, 3.0)])
    comparison = compare_library_patient(
        "wojciechowski2017", patient, COVARIATES, random_seed=1, options=OPTIONS
    )
    entry = json.loads(json.dumps(comparison.to_json(), allow_nan=False))
    assert set(entry["intervals"]) == {"cl", "v", "auc_w2_4", "ln_auc_cl"}
    assert {"map_plug_in", "posterior_mean", "posterior_95", "laplace_mean"} <= set(
        entry["risk_90d"]
    )
    assert "extrapolated_outcome" in entry["flags"]
    assert entry["outcome"] == {
        "source_model": "niyigena2025",
        "extrapolated": True,
        "high_risk_threshold": 5.79,
    }
    p = entry["p_high_risk"]
    map_class = "high" if entry["intervals"]["ln_auc_cl"]["map"] < 5.79 else "low"
    assert entry["map_class"] == map_class
    assert ("uncertain_class" in entry["flags"]) == (0.2 <= p <= 0.8)


def test_cli_compare_patient_library(tmp_path, capsys):
    cohort = simulate_library_cohort("wojciechowski2017", 3, random_seed=4)
    data, _ = write_cohort(cohort, tmp_path / "c.csv")
    code = main(
        [
            "compare-patient",
            str(data),
            "--id",
            "L001",
            "--model",
            "wojciechowski2017",
            "--format",
            "json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert out["model"]["name"] == "wojciechowski2017"
    assert out["patients"][0]["id"] == "L001"
    assert out["patients"][0]["status"] == ("ok" if code == 0 else "unconverged")
    # the text shows the JSON's numbers
    argv = ["compare-patient", str(data), "--id", "L001", "--model", "wojciechowski2017"]
    assert main(argv) == code
    text = capsys.readouterr().out
    entry = out["patients"][0]
    assert text.startswith("model: ") and "patient L001: " in text
    assert f"MAP plug-in {entry['risk_90d']['map_plug_in']:.1%}" in text
    assert f"ln(AUC/CL)    MAP {entry['intervals']['ln_auc_cl']['map']:.3g} " in text
    assert f"P(high risk) {entry['p_high_risk']:.2f} posterior" in text
    # a sampler the library path would not honour: refused as by forecast --model NAME
    assert main([*argv, "--sampler", "pymc"]) == 2
    assert "--sampler: not available yet with a library model" in capsys.readouterr().err
    # a model needing a covariate the dataset lacks: a clear error, exit 2
    assert main(["compare-patient", str(data), "--model", "fasanmade2009"]) == 2
    assert "needs covariate SEX" in capsys.readouterr().err
