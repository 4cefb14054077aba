"""``forecast``/``optimize --model-average A,B,C``: posterior model probabilities per patient.

Independent references: the models' marginal likelihoods of two-random-effect models
(Niyigena 2025, one compartment; Fasanmade 2009, two compartments) by a brute-force 2-D grid
integral with the residual densities and the prior written here; the averaged risk against the
weight-mixture of the single-model risks (within its Monte Carlo error); a patient simulated
from model A with rich data gives A the highest weight, both ways round.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.special
from page_text import visible_text

from asuc_bayes.data.dataset import CovariateRecord, Dose, Observation, Patient
from asuc_bayes.decisions.dosing import DosingRequest, PlanOptions
from asuc_bayes.decisions.model_average import average_patient
from asuc_bayes.inference.covariates import baseline_covariates
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.interfaces.cli import EXIT_INPUT, EXIT_OK, main
from asuc_bayes.spec import load_declaration

MODELS = ("niyigena2025", "fasanmade2009")
RICH_TIMES = (0.1, 1.0, 2.0, 4.0, 7.0, 10.0, 13.9, 14.1, 17.0, 21.0, 28.0, 35.0, 41.9)


def _base_patient(pid: str = "p") -> Patient:
    doses = tuple(Dose(t, 400.0, 1 / 12) for t in (0.0, 14.0, 42.0))
    record = CovariateRecord(0.0, (("ALB", 3.2), ("ATI", 0.0), ("SEX", 0.0)))
    return Patient(pid, 70.0, 40.0, doses, (), covariate_records=(record,))


def _problem(name: str, patient: Patient) -> PatientProblem:
    declaration = load_declaration(name)
    return PatientProblem.from_patient(
        declaration, patient, baseline_covariates(patient, declaration)
    )


def _simulated(name: str, seed: int, times=RICH_TIMES) -> Patient:
    """Concentrations simulated from ``name``: η from its prior, its residual error."""
    rng = np.random.default_rng(seed)
    base = _base_patient(f"{name}-{seed}")
    problem = _problem(name, base)
    eta = rng.multivariate_normal(np.zeros(problem.n_eta), problem.omega)
    f = problem.predict(eta[None], np.array(times))[0]
    sd = problem.declaration.residual.sd()
    scale = np.hypot(sd.get("proportional", 0.0) * f, sd.get("additive", 0.0))
    y = np.maximum(f + scale * rng.standard_normal(f.size), 0.05)
    observations = tuple(Observation(t, float(v)) for t, v in zip(times, y, strict=True))
    return dataclasses.replace(base, observations=observations)


def _log_marginal_brute_force(name: str, patient: Patient, n: int = 401) -> float:
    """ln ∫∫ p(y | η) N(η; 0, Ω) dη on a 2-D grid over ±7 prior SDs (Riemann sum), with the
    normal residual densities (proportional or combined) and the prior written here."""
    problem = _problem(name, patient)
    omega = problem.omega
    assert omega.shape == (2, 2) and omega[0, 1] == 0.0
    sd_eta = np.sqrt(np.diag(omega))
    axes = [np.linspace(-7 * s, 7 * s, n) for s in sd_eta]
    e1, e2 = np.meshgrid(*axes, indexing="ij")
    eta = np.stack([e1.ravel(), e2.ravel()], axis=1)
    f = np.asarray(problem.predict(eta), dtype=float)  # (points, records)
    f = np.maximum(f, 1e-12)  # underflow far in the tails: a likelihood of ~0 either way
    y = np.array([o.value_mg_l for o in patient.observations])
    sd = problem.declaration.residual.sd()
    var = (sd.get("proportional", 0.0) * f) ** 2 + sd.get("additive", 0.0) ** 2
    log_lik = np.sum(-0.5 * (y - f) ** 2 / var - 0.5 * np.log(2 * np.pi * var), axis=1)
    log_prior = np.sum(-0.5 * eta**2 / sd_eta**2 - 0.5 * np.log(2 * np.pi * sd_eta**2), axis=1)
    cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    return float(scipy.special.logsumexp(log_lik + log_prior) + np.log(cell))


@pytest.fixture(scope="module")
def sparse_average():
    """A patient with two samples: both models keep some weight."""
    patient = _simulated("fasanmade2009", 11, times=(7.0, 13.9))
    return patient, average_patient(MODELS, patient, random_seed=5, request=DosingRequest())


def test_weights_equal_a_brute_force_grid_integral(sparse_average):
    patient, average = sparse_average
    rich = _simulated("niyigena2025", 4)
    for p, avg in ((patient, average), (rich, average_patient(MODELS, rich, random_seed=1))):
        log_marginal = np.array([_log_marginal_brute_force(name, p) for name in MODELS])
        expected = np.exp(log_marginal - scipy.special.logsumexp(log_marginal))
        got = {m.evidence.name: m for m in avg.models}
        for name, lm, w in zip(MODELS, log_marginal, expected, strict=True):
            assert got[name].evidence.log_marginal == pytest.approx(lm, abs=1e-4)
            assert got[name].weight == pytest.approx(w, abs=1e-5)
            assert got[name].evidence.marginal_method == "grid"
    weights = average.weights
    assert 0.05 < weights.min() and weights.sum() == pytest.approx(1.0)


def test_aic_weights_by_hand(sparse_average):
    patient, average = sparse_average
    score = []
    for name in MODELS:
        problem = _problem(name, patient)
        entry = next(m for m in average.models if m.evidence.name == name)
        eta = entry.evidence.posterior.forecast.map.eta
        score.append(float(problem.log_posterior(eta[None])[0]) - problem.n_eta)
    expected = np.exp(np.array(score) - scipy.special.logsumexp(score))
    got = [next(m.aic_weight for m in average.models if m.evidence.name == n) for n in MODELS]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_averaged_risk_is_the_weight_mixture(sparse_average):
    _, average = sparse_average
    w = average.weights
    risks = [
        np.asarray(m.evidence.posterior.forecast.draws.risk_90d).ravel() for m in average.models
    ]
    exact_mean = sum(wi * r.mean() for wi, r in zip(w, risks, strict=True))
    assert abs(average.risk["mean"] - exact_mean) < 4 * average.risk["mcse"]["mean"]
    for q, p in (("q2.5", 0.025), ("q50", 0.5), ("q97.5", 0.975)):
        cdf = sum(wi * np.mean(r <= average.risk[q]) for wi, r in zip(w, risks, strict=True))
        assert cdf == pytest.approx(p, abs=0.02)
    p_high = [m.p_high for m in average.models]
    assert average.p_high == pytest.approx(float(np.dot(w, p_high)), abs=1e-12)
    entry = average.to_json()["model_average"]
    assert set(entry["risk"]) == {"mean", "sd", "q2.5", "q50", "q97.5", "mcse"}
    assert [m["name"] for m in entry["models"]] == list(MODELS)
    assert (
        entry["models"][1]["extrapolated"] is True and entry["models"][0]["extrapolated"] is False
    )


def test_averaged_dose_on_the_mixture_curve(sparse_average):
    _, average = sparse_average
    dose = average.dose
    w = average.weights
    curves = [dose.per_model[m.evidence.name]["curve"] for m in average.models]
    mean_risk = sum(
        wi * np.array([r["risk_mean"] for r in c]) for wi, c in zip(w, curves, strict=True)
    )
    np.testing.assert_allclose(dose.curve["risk_mean"], mean_risk, rtol=1e-12)
    grid = dose.curve["dose_mg"].to_numpy()
    meets = np.flatnonzero(mean_risk <= dose.request.target_risk)
    assert dose.dose_mg == (grid[meets[0]] if meets.size else grid[-1])
    assert dose.feasible == bool(meets.size) and dose.monotone


def test_averaged_trough_dose_on_the_mixture_curve(sparse_average):
    patient, _ = sparse_average
    request = DosingRequest(dose_time_day=42.0, probability=0.5)
    average = average_patient(
        MODELS,
        patient,
        random_seed=5,
        request=request,
        plan_options=PlanOptions(trough_target_mg_l=3.0),
    )
    dose = average.dose
    assert dose.mode == "trough" and dose.risk is None
    tables = [dose.per_model[n]["trough"]["for_interval"]["curve"] for n in MODELS]
    p = sum(
        w * np.array([r["p_trough_above_target"] for r in t])
        for w, t in zip(average.weights, tables, strict=True)
    )
    np.testing.assert_allclose(dose.curve["p_trough_above_target"], p, rtol=1e-12)
    grid = dose.curve["dose_mg"].to_numpy()
    meets = np.flatnonzero(p >= 0.5)
    assert dose.dose_mg == (grid[meets[0]] if meets.size else grid[-1])
    assert dose.to_json()["trough_target_mg_l"] == 3.0


def test_four_random_effect_weight_against_gauss_hermite():
    """Wojciechowski 2017 (four random effects): the importance-sampling evidence behind its
    weight against adaptive Gauss-Hermite quadrature (9^4 nodes, another method) and a long
    importance run of another seed."""
    from asuc_bayes.inference.marginal import adaptive_quadrature, importance_sampling

    record = CovariateRecord(0.0, (("ALB", 3.5), ("ADA", 0.0)))
    patient = dataclasses.replace(
        _simulated("niyigena2025", 7, times=(7.0, 13.9)), covariate_records=(record,)
    )
    average = average_patient(("niyigena2025", "wojciechowski2017"), patient, random_seed=3)
    entry = average.models[1].evidence
    assert entry.marginal_method == "importance" and entry.marginal_mcse < 0.05
    problem = entry.posterior.problem
    quadrature = adaptive_quadrature(problem, n=9).log_marginal
    long_run = importance_sampling(problem, 100_000, random_seed=99)
    tolerance = 4 * entry.marginal_mcse + 0.01
    assert entry.log_marginal == pytest.approx(quadrature, abs=tolerance)
    assert entry.log_marginal == pytest.approx(long_run.log_marginal, abs=tolerance)
    grid = average.models[0].evidence.log_marginal
    w = 1.0 / (1.0 + np.exp(grid - quadrature))
    assert average.models[1].weight == pytest.approx(w, abs=0.01)


@pytest.mark.parametrize("truth", MODELS)
def test_the_simulating_model_gets_the_highest_weight(truth):
    for seed in (0, 1):
        average = average_patient(MODELS, _simulated(truth, seed), random_seed=seed)
        best = max(average.models, key=lambda m: m.weight)
        assert best.evidence.name == truth and best.weight > 0.8


def test_a_model_missing_a_covariate_is_excluded_with_a_note():
    patient = dataclasses.replace(_simulated("niyigena2025", 3, times=(7.0,)), covariate_records=())
    average = average_patient(MODELS, patient, random_seed=2)
    (excluded,) = average.excluded
    assert excluded.name == "fasanmade2009" and "needs covariate" in excluded.reason
    assert [m.evidence.name for m in average.models] == ["niyigena2025"]
    assert average.models[0].weight == 1.0
    notes = " ".join(average.notes)
    assert "fasanmade2009 excluded" in notes and "only niyigena2025 applies" in notes


DATA = """ID,TIME,EVID,AMT,DV,WT,CRP,ALB,ADA
P1,0,1,400,.,70,30,3.5,0
P1,7,0,0,14,70,30,3.5,0
P1,14,1,400,.,70,30,3.5,0
P2,0,1,400,.,70,30,.,0
P2,7,0,0,14,70,30,.,0
"""


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text(DATA)
    return path


def test_cli_forecast_and_optimize_json(dataset, capsys):
    args = ["--model-average", "niyigena2025,wojciechowski2017", "--format", "json", "--id", "P1"]
    assert main(["forecast", str(dataset), *args]) == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    (entry,) = out["patients"]
    average = entry["model_average"]
    assert [m["name"] for m in average["models"]] == ["niyigena2025", "wojciechowski2017"]
    assert average["models"][1]["marginal_method"] == "importance"
    assert sum(m["weight"] for m in average["models"]) == pytest.approx(1.0)
    assert "NaN" not in json.dumps(out) and "dose" not in average
    assert main(["optimize", str(dataset), *args]) == EXIT_OK
    dose = json.loads(capsys.readouterr().out)["patients"][0]["model_average"]["dose"]
    assert dose["mode"] == "risk" and set(dose["per_model"]) == {
        "niyigena2025",
        "wojciechowski2017",
    }


@pytest.mark.parametrize(
    "value, message",
    [
        ("niyigena2025,nosuchmodel", "unknown model nosuchmodel"),
        ("niyigena2025", "at least two models"),
        ("niyigena2025,fasanmade2009,niyigena2025", "niyigena2025 given more than once"),
        ("niyigena2025,", "empty model name"),
    ],
)
def test_bad_model_lists_exit_2_naming_the_option(dataset, capsys, value, message):
    for command in ("forecast", "optimize"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, str(dataset), "--model-average", value])
        err = capsys.readouterr().err
        assert exit_info.value.code == EXIT_INPUT
        assert "--model-average" in err and message in err and "Traceback" not in err


def test_cli_table_and_an_excluded_model(dataset, capsys):
    args = ["--model-average", "niyigena2025,wojciechowski2017"]
    assert main(["forecast", str(dataset), *args, "--format", "json", "--id", "P2"]) == EXIT_OK
    average = json.loads(capsys.readouterr().out)["patients"][0]["model_average"]
    assert [e["name"] for e in average["excluded"]] == ["wojciechowski2017"]
    reason = average["excluded"][0]["reason"]
    assert "ALB" in reason and "request an imputation" in reason
    assert "impute=" not in reason  # the Python API's syntax is not shown to a CLI user
    assert main(["forecast", str(dataset), *args]) == EXIT_OK
    table = capsys.readouterr().out
    assert "AVERAGE" in table and "wojciechowski2017 excluded" in table


def test_cli_refuses_options_it_does_not_take(dataset, capsys, tmp_path):
    models = ["--model-average", "niyigena2025,fasanmade2009"]
    for command, extra in (
        ("forecast", ["--model", "wojciechowski2017"]),
        ("forecast", ["--checkpoint", str(tmp_path / "ck")]),
        ("optimize", ["--next-sample"]),
    ):
        assert main([command, str(dataset), *models, *extra]) == EXIT_INPUT
        err = capsys.readouterr().err
        assert "fix:" in err and extra[0] in err
    # optimize runs patients on Dask only with --model-average
    for model in (["--model", "wojciechowski2017"], []):
        assert main(["optimize", str(dataset), *model, "--workers", "2"]) == EXIT_INPUT
        err = capsys.readouterr().err
        assert "--workers" in err and "fix:" in err and "Traceback" not in err


def test_cli_out_round_trips_every_number_of_the_json(dataset, capsys, tmp_path):
    """``forecast --model-average --out``: each patient's tree holds the averaged risk draws
    (their mean is the JSON's), the weights and evidence by model, each model's own forecast
    tree with its provenance (the sha256 of its model file) and the excluded models; the file
    reads back through ``load_results``, which checks every model's schema too."""
    import hashlib

    from asuc_bayes.inference.forecast import load_results
    from asuc_bayes.spec import load_declaration

    out = tmp_path / "average.nc"
    args = ["--model-average", "niyigena2025,wojciechowski2017", "--seed", "3"]
    assert main(["forecast", str(dataset), *args, "--format", "json", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    entries = {e["id"]: e for e in json.loads(captured.out)["patients"]}
    assert f"results written to {out}" in captured.err
    tree = load_results(out)
    assert set(tree.children) == set(entries)
    for pid, entry in entries.items():
        node, average = tree[pid], entry["model_average"]
        assert node.attrs["kind"] == "model-averaged patient forecast"
        assert node.attrs["patient_id"] == pid and node.attrs["status"] == entry["status"]
        risk = node["average"]["risk_90d"].values
        assert risk.size == 4000 and float(risk.mean()) == pytest.approx(average["risk"]["mean"])
        weights = node["weights"].to_dataset()
        names = [m["name"] for m in average["models"]]
        assert list(weights["model"].values) == names == list(node["models"].children)
        for i, model in enumerate(average["models"]):
            assert float(weights["weight"][i]) == pytest.approx(model["weight"], rel=1e-12)
            assert float(weights["log_marginal_likelihood"][i]) == pytest.approx(
                model["log_marginal_likelihood"], rel=1e-12
            )
            child = node["models"][model["name"]]
            assert child.attrs["kind"] == "library patient forecast"
            path = load_declaration(model["name"]).path
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            assert child.attrs["model_sha256"] == digest
            assert child.attrs["status"] == model["status"]
        shas = node.attrs["model_sha256"].split(",")
        assert len(shas) == len(names) and node.attrs["model_name"] == ",".join(names)
        excluded = json.loads(node.attrs["excluded"])
        assert [e["name"] for e in excluded] == [e["name"] for e in average["excluded"]]
    assert json.loads(tree["P2"].attrs["excluded"])[0]["name"] == "wojciechowski2017"


@pytest.mark.parametrize("command", ["forecast", "optimize"])
def test_cli_csv_rows_carry_the_json_numbers(dataset, capsys, command):
    """``--format csv``: one row per patient with the averaged risk, each model's weight,
    evidence and risk in ``<model>_*`` columns (an excluded model's reason in
    ``<model>_excluded``), and with ``optimize`` the averaged dose; equal to the JSON."""
    import csv
    import io

    args = ["--model-average", "niyigena2025,wojciechowski2017", "--seed", "3"]
    assert main([command, str(dataset), *args, "--format", "json"]) == EXIT_OK
    entries = {e["id"]: e for e in json.loads(capsys.readouterr().out)["patients"]}
    assert main([command, str(dataset), *args, "--format", "csv"]) == EXIT_OK
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert set(rows) == set(entries) and {"P1", "P2"} <= set(rows)
    for pid, row in rows.items():
        average = entries[pid]["model_average"]
        assert row["status"] == entries[pid]["status"]
        assert row["risk_class"] == average["risk_class"]
        assert float(row["p_high_risk"]) == pytest.approx(average["p_high"], rel=1e-12)
        for s in ("mean", "q2.5", "q97.5"):
            assert float(row[f"risk_90d_{s}"]) == pytest.approx(average["risk"][s], rel=1e-12)
        for model in average["models"]:
            name = model["name"]
            assert float(row[f"{name}_weight"]) == pytest.approx(model["weight"], rel=1e-12)
            assert float(row[f"{name}_log_marginal_likelihood"]) == pytest.approx(
                model["log_marginal_likelihood"], rel=1e-12
            )
            assert float(row[f"{name}_risk_90d_q50"]) == pytest.approx(model["risk"]["q50"])
            assert row[f"{name}_excluded"] == ""
        for excluded in average["excluded"]:
            assert row[f"{excluded['name']}_excluded"] == excluded["reason"]
            assert row[f"{excluded['name']}_status"] == "excluded"
            assert row[f"{excluded['name']}_weight"] == ""
        if command == "optimize":
            dose = average["dose"]
            assert row["mode"] == dose["mode"] == "risk"
            assert float(row["dose_mg"]) == dose["dose_mg"]
            assert float(row["dose_p_meets_target"]) == pytest.approx(dose["p_meets_target"])
        else:
            assert "dose_mg" not in row
    assert rows["P2"]["wojciechowski2017_status"] == "excluded"


def test_cli_report_states_the_json_numbers(dataset, capsys, tmp_path):
    """``forecast --model-average --report``: one page per patient with the averaged risk,
    each model's weight, AIC weight, evidence and risk as in the JSON, the excluded models with
    their reason, the figure, and each model file's sha256."""
    import hashlib

    from asuc_bayes.spec import load_declaration

    report = tmp_path / "average.html"
    args = ["--model-average", "niyigena2025,wojciechowski2017", "--seed", "3"]
    assert main(["forecast", str(dataset), *args, "--format", "json", "--report", str(report)]) == 0
    entries = {e["id"]: e for e in json.loads(capsys.readouterr().out)["patients"]}
    for pid, entry in entries.items():
        page = (tmp_path / f"average-{pid}.html").read_text()
        assert page.count("data:image/png;base64,") == 1 and "{{" not in page
        text = visible_text(page)
        average = entry["model_average"]
        assert f"posterior mean risk {100 * average['risk']['mean']:.1f} %" in text
        assert f"P(high risk) {average['p_high']:.2f}" in text
        for model in average["models"]:
            name = model["name"] + (" *" if model["extrapolated"] else "")
            assert f"{name} {model['weight']:.3f}" in text
            assert f"{model['log_marginal_likelihood']:.2f} {model['marginal_method']}" in text
            path = Path(load_declaration(model["name"]).path)
            assert hashlib.sha256(path.read_bytes()).hexdigest() in text
        for excluded in average["excluded"]:
            assert f"{excluded['name']}: {excluded['reason']}" in text
            assert text.count(excluded["reason"]) == 1  # not repeated under the notes
        for note in average["notes"]:
            if " excluded: " not in note:
                assert note in text
    assert "Models that could not be applied" in (tmp_path / "average-P2.html").read_text()


def _page_text(path: Path) -> tuple[str, str]:
    """(the page, its visible text)."""
    page = path.read_text()
    return page, visible_text(page)


@pytest.mark.parametrize("mode", ["risk", "trough"])
def test_cli_optimize_report_states_the_json_dose(dataset, capsys, tmp_path, mode):
    """``optimize --model-average --report``: the page adds the dose chosen on the averaged
    curve with its goal, every row of the averaged curve, each model's own choice and its value
    at the averaged dose (read from that model's own curve in the JSON), and a second figure;
    every number as in the JSON."""
    report = tmp_path / "plan.html"
    extra = ["--trough-target", "5"] if mode == "trough" else ["--target-risk", "0.12"]
    args = ["--model-average", "niyigena2025,wojciechowski2017", "--id", "P1", "--seed", "2"]
    args += [*extra, "--format", "json", "--report", str(report)]
    code = main(["optimize", str(dataset), *args])
    assert code == EXIT_OK
    (entry,) = json.loads(capsys.readouterr().out)["patients"]
    dose = entry["model_average"]["dose"]
    assert dose["mode"] == mode
    page, text = _page_text(report)
    assert page.count("data:image/png;base64,") == 2 and "{{" not in page
    assert f"{dose['dose_mg']:g} mg ({dose['dose_mg_kg']:.1f} mg/kg)" in text
    weights = {m["name"]: m["weight"] for m in entry["model_average"]["models"]}
    if mode == "risk":
        risk = dose["risk_90d"]
        assert f"averaged 90-day risk {100 * risk['mean']:.1f} % (95 % CrI" in text
        assert f"P(risk ≤ target) {dose['p_meets_target']:.2f}" in text
        assert "90-day risk ≤ 12.0 %" in text
        for row in dose["curve"]:
            assert (
                f"{row['dose_mg']:g} {row['dose_mg_kg']:.1f} {100 * row['risk_mean']:.1f} % "
                f"{row['p_high_risk']:.2f} {row['p_meets_target']:.2f}"
            ) in text
    else:
        assert f"averaged P(trough ≥ target) {dose['p_trough_above_target']:.2f}" in text
        assert "P(trough ≥ 5 mg/L) ≥ 0.80" in text and "every 56 days" in text
        for row in dose["curve"]:
            assert (
                f"{row['dose_mg']:g} {row['dose_mg_kg']:.1f} {row['p_trough_above_target']:.2f}"
            ) in text
    verdict = "Dose on the averaged curve:" if dose["feasible"] else "No dose up to the cap"
    assert verdict in text
    for name, plan in dose["per_model"].items():
        if mode == "risk":
            own, rows, key = plan["recommended"]["dose_mg"], plan["curve"], "risk_mean"
        else:
            chosen = plan["trough"]["for_interval"]
            own, rows, key = chosen["dose_mg"], chosen["curve"], "p_trough_above_target"
        (at,) = [row[key] for row in rows if row["dose_mg"] == dose["dose_mg"]]
        shown = f"{100 * at:.1f} %" if key == "risk_mean" else f"{at:.2f}"
        assert f"{name} {weights[name]:.3f} {own:g} " in text
        assert f"{shown}" in text.split(f"{name} {weights[name]:.3f} {own:g} ", 1)[1][:40]


def test_workers_give_the_same_bytes_as_one_process(dataset, capsys):
    """``--model-average --workers 2`` (a local Dask cluster) averages every patient with its
    own seed: the JSON of ``forecast`` and ``optimize`` is the same, byte for byte, as in this
    process (P2, to whom only one model applies, included)."""
    for command in ("forecast", "optimize"):
        argv = [command, str(dataset), "--model-average", "niyigena2025,wojciechowski2017"]
        argv += ["--format", "json", "--seed", "5"]
        assert main(argv) == EXIT_OK
        alone = capsys.readouterr().out
        assert main([*argv, "--workers", "2"]) == EXIT_OK
        assert capsys.readouterr().out == alone
        assert [p["id"] for p in json.loads(alone)["patients"]] == ["P1", "P2"]


def test_a_patient_no_model_applies_to_is_a_failure_in_its_place(dataset):
    """:func:`average_patients`: a patient none of the models can be applied to is a
    :class:`PatientFailure` in its place (the others go on); with the CLI, an error row and
    exit 2 after the others."""
    from asuc_bayes import read_patients
    from asuc_bayes.decisions.model_average_batch import PatientFailure, average_patients

    patients = read_patients(dataset).patients
    results = average_patients(["wojciechowski2017", "faelens2021"], patients, random_seed=1)
    assert [r.patient_id for r in results] == ["P1", "P2"]
    assert not isinstance(results[0], PatientFailure)
    assert isinstance(results[1], PatientFailure) and "ALB" in results[1].error
