"""PopulationDraws and forecasts integrating over population-parameter uncertainty."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import logsumexp

from asuc_bayes.data.dataset import Dose, Observation, Patient
from asuc_bayes.inference import grid
from asuc_bayes.inference.population_draws import PARAMETER_NAMES, PopulationDraws, point_values
from asuc_bayes.inference.population_forecast import (
    forecast_with_population,
    log_marginal_likelihood,
)
from asuc_bayes.interfaces.cli import main
from asuc_bayes.pk import kernels
from asuc_bayes.spec.config import cv_to_omega
from asuc_bayes.studies.simulate import simulate_cohort

from conftest import truth_fit_tree

PATIENT = Patient(
    "pop",
    63.0,
    45.0,
    tuple(Dose(float(t), 600.0, 1 / 12) for t in (0, 14, 42)),
    (Observation(7.0, 14.5), Observation(13.9, 3.1)),
)


def test_published_draws_follow_the_reported_uncertainty(spec):
    rse = PopulationDraws.from_published(spec, 40000, random_seed=1, method="rse")
    assert np.median(rse.theta_cl) == pytest.approx(0.49, rel=0.01)
    assert np.std(np.log(rse.theta_cl)) == pytest.approx(0.13, rel=0.03)
    assert np.std(rse.tte_beta) == pytest.approx(0.22 * 0.56, rel=0.03)
    assert np.std(np.log10(rse.tte_lambda)) == pytest.approx(0.198 * 2.95, rel=0.03)
    assert np.median(rse.omega_cl) == pytest.approx(cv_to_omega(0.721), rel=0.01)
    boot = PopulationDraws.from_published(spec, 40000, random_seed=1, method="bootstrap")
    low, high = np.quantile(boot.tte_beta, [0.025, 0.975])
    assert (low, high) == pytest.approx((-0.56 - 0.435, -0.56 + 0.435), abs=0.02)
    low, high = np.quantile(boot.theta_v, [0.025, 0.975])
    assert low / high == pytest.approx(9.0 / 18.1, rel=0.03)
    spec_0 = rse.spec_at(0)
    assert spec_0.pk.theta_cl.estimate == rse.theta_cl[0]
    assert spec_0.pk.omega_v == pytest.approx(rse.omega_v[0], rel=1e-12)
    assert spec_0.tte.baseline_lambda == pytest.approx(rse.tte_lambda[0], rel=1e-12)
    assert spec_0.tte.x_ref == spec.tte.x_ref  # the centring constant never moves
    with pytest.raises(ValueError, match="method"):
        PopulationDraws.from_published(spec, 3, 0, method="delta")


def test_draws_from_a_fit_file(spec, tmp_path):
    tree = truth_fit_tree(spec, simulate_cohort(spec, 10, random_seed=1), draws=50)
    path = tmp_path / "fit.nc"
    tree.to_netcdf(path, engine="h5netcdf")
    draws = PopulationDraws.from_fit(path, n=60, random_seed=2)
    assert draws.n == 60 and draws.source == "fit:fit.nc"
    assert draws.spec == spec
    pooled = tree["posterior"]["theta_cl"].values.ravel()
    assert set(draws.theta_cl) <= set(pooled)
    assert PopulationDraws.from_fit(tree).n == pooled.size
    with pytest.raises(FileNotFoundError):
        PopulationDraws.from_fit(tmp_path / "none.nc")


def test_coarse_quadrature_per_draw_matches_the_401_grid(spec):
    """The mixture's 101² grid per draw against the reference 401² grid: summaries within
    0.02 posterior SD (the Monte Carlo error of 4000 draws is ~0.03 SD for these
    quantiles), log marginal likelihood within 1e-3."""
    coarse = grid.grid_posterior(spec, PATIENT, n_points=101, n_coarse=61)
    fine = grid.grid_posterior(spec, PATIENT, n_points=401)
    a, b = coarse.summary(), fine.summary()
    for key in ("cl", "ln_auc_cl", "risk_90d"):
        for stat in ("mean", "q2.5", "q50", "q97.5"):
            assert a[key][stat] == pytest.approx(b[key][stat], abs=0.02 * b[key]["sd"])
    assert log_marginal_likelihood(coarse) == pytest.approx(log_marginal_likelihood(fine), abs=1e-3)


def test_marginal_likelihood_against_monte_carlo_over_the_prior(spec):
    """Z = E_prior[p(y | η)] by 400 000 prior draws of η (independent of any grid)."""
    rng = np.random.default_rng(4)
    eta = rng.normal(0.0, [spec.pk.omega_cl, spec.pk.omega_v], size=(400_000, 2))
    log_likelihood = grid.log_likelihood(spec, PATIENT, eta[:, 0], eta[:, 1])
    monte_carlo = float(logsumexp(log_likelihood) - math.log(eta.shape[0]))
    quadrature = log_marginal_likelihood(grid.grid_posterior(spec, PATIENT, n_points=101))
    assert quadrature == pytest.approx(monte_carlo, abs=0.02)


def test_identical_draws_reproduce_the_standard_forecast(spec):
    """All population draws at the published values: the mixture is the individual posterior
    (exact grid path), equal weights, Kish ESS = S."""
    result = forecast_with_population(PATIENT, PopulationDraws.point(spec, 30), random_seed=3)
    summary = result.summary()
    reference = grid.grid_posterior(spec, PATIENT, n_points=401).summary()
    weights = result.tree["population_weights"]["weight"].values
    np.testing.assert_allclose(weights, 1 / 30, rtol=1e-12)
    assert result.diagnostics["population_ess"] == pytest.approx(30)
    n = 4000
    for key in ("cl", "ln_auc_cl", "risk_90d"):
        sd = reference[key]["sd"]
        assert summary["posterior"][key]["mean"] == pytest.approx(
            reference[key]["mean"], abs=4 * sd / math.sqrt(n)
        )
        for stat in ("q2.5", "q50", "q97.5"):
            assert summary["posterior"][key][stat] == pytest.approx(
                reference[key][stat], abs=0.12 * sd
            )
    assert summary["p_high_risk"] == pytest.approx(reference["p_high_risk"], abs=0.03)
    # MAP at the (identical) population medians: the grid's own mode
    mode = grid.grid_posterior(spec, PATIENT, n_points=401).mode()
    np.testing.assert_allclose(
        result.tree["point_estimates"]["eta"].sel(estimate="map"), mode, atol=1e-4
    )
    assert summary["diagnostics"]["method"] == "population_mixture"
    posterior = result.tree["posterior"]
    for name in PARAMETER_NAMES:
        assert posterior[name].dims == ("chain", "draw")


def test_mixture_against_brute_force_for_three_draws(spec):
    """Three distinct population draws: weights, posterior mean of ln(AUC/CL) and P(high
    risk) against one fixed wide box (±6 ω, 501², no box location) per draw, summed by hand."""
    draws = PopulationDraws.from_published(spec, 3, random_seed=7)
    result = forecast_with_population(PATIENT, draws, random_seed=5, draws_per_chain=2500)
    log_z, means, p_high = [], [], []
    for s in range(3):
        at = draws.spec_at(s)
        omega = np.array([at.pk.omega_cl, at.pk.omega_v])
        axes = [np.linspace(-6 * w, 6 * w, 501) for w in omega]
        mesh = np.meshgrid(*axes, indexing="ij")
        log_joint = grid.log_likelihood(at, PATIENT, *mesh) - 0.5 * (
            (mesh[0] / omega[0]) ** 2 + (mesh[1] / omega[1]) ** 2
        )
        cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
        log_z.append(logsumexp(log_joint) + math.log(cell / (2 * math.pi * omega.prod())))
        w = np.exp(log_joint - logsumexp(log_joint))
        cl, v = kernels.individual_pk_parameters(at.pk, PATIENT.weight_kg, PATIENT.crp_mg_l, *mesh)
        auc = kernels.auc_interval(
            14.0,
            28.0,
            PATIENT.dose_time_day,
            PATIENT.dose_amount_mg,
            PATIENT.dose_duration_day,
            cl.ravel(),
            v.ravel(),
        ).reshape(cl.shape)
        x = np.log(auc) - np.log(cl)
        means.append(float(np.sum(w * x)))
        p_high.append(float(np.sum(w * (x < 5.79))))
    weights = np.exp(np.array(log_z) - logsumexp(log_z))
    np.testing.assert_allclose(
        result.tree["population_weights"]["weight"].values, weights, rtol=2e-3
    )
    summary = result.summary()
    expected_mean = float(np.dot(weights, means))
    sd = summary["posterior"]["ln_auc_cl"]["sd"]
    assert summary["posterior"]["ln_auc_cl"]["mean"] == pytest.approx(
        expected_mean, abs=4 * sd / math.sqrt(1e4)
    )
    assert summary["p_high_risk"] == pytest.approx(float(np.dot(weights, p_high)), abs=0.02)


def test_surprising_patient_is_marked_by_a_low_population_ess(spec):
    """Data no population draw expects concentrate the weights: low Kish ESS, unconverged."""
    draws = PopulationDraws.from_published(spec, 60, random_seed=2)
    extreme = Patient(
        "odd",
        63.0,
        30.0,
        (Dose(0.0, 600.0, 1 / 12),),
        (
            Observation(1.0, 400.0),
            Observation(3.0, 300.0),
            Observation(20.0, 150.0),
            Observation(40.0, 90.0),
        ),
    )
    result = forecast_with_population(extreme, draws, random_seed=1, draws_per_chain=200)
    assert result.diagnostics["population_ess"] < 20
    assert result.status == "unconverged"


def test_forecast_cli_with_a_population_fit(spec, tmp_path, capsys):
    tree = truth_fit_tree(spec, simulate_cohort(spec, 10, random_seed=3), draws=50)
    path = tmp_path / "fit.nc"
    tree.to_netcdf(path, engine="h5netcdf")
    code = main(
        [
            "forecast",
            "--example",
            "--id",
            "P01",
            "--model",
            str(path),
            "--population-draws",
            "20",
            "--draws",
            "200",
            "--format",
            "json",
            "--out",
            str(tmp_path / "f.nc"),
        ]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    patient = payload["patients"][0]
    assert patient["diagnostics"]["method"] == "population_mixture"
    assert set(patient["posterior"]) == {"cl", "v", "auc_w2_4", "ln_auc_cl", "risk_90d"}
    assert payload["model"]["population_fit"]["file"] == str(path)
    assert main(["forecast", "--example", "--model", str(path), "--variant", "log_crp"]) == 2
    capsys.readouterr()
    # options this path would ignore are refused, naming the option, before any work
    for extra in (
        ["--report", str(tmp_path / "r.html")],
        ["--workers", "2"],
        ["--checkpoint", str(tmp_path / "ck")],
        ["--sampler", "nutpie"],
    ):
        assert main(["forecast", "--example", "--model", str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert extra[0] in err and "FIT.nc" in err and "fix:" in err
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "ck").exists()
    # CSV: the JSON's numbers, one row per patient; the fit named on stderr
    csv_args = ["forecast", "--example", "--id", "P01", "--model", str(path)]
    csv_args += ["--population-draws", "20", "--draws", "200", "--format", "csv"]
    assert main(csv_args) == 0
    captured = capsys.readouterr()
    header, row = captured.out.splitlines()[:2]
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert float(values["ln_auc_cl_q50"]) == pytest.approx(
        patient["posterior"]["ln_auc_cl"]["q50"], rel=1e-12
    )
    assert values["diag_method"] == "population_mixture" and "population fit" in captured.err
    assert point_values(spec)["theta_cl"] == spec.pk.theta_cl.estimate


FAILED_GATES = {"rhat_max": 1.31, "ess_bulk_min": 7.0, "divergences": 3, "converged": False}


@pytest.fixture(scope="module")
def unconverged_fit(spec, tmp_path_factory):
    """A fit whose stored gates failed (R-hat 1.31, ESS 7, 3 divergences), as 2 chains x 20
    draws would leave them."""
    tree = truth_fit_tree(
        spec, simulate_cohort(spec, 8, random_seed=4), draws=20, checks=FAILED_GATES
    )
    path = tmp_path_factory.mktemp("fits") / "tiny.nc"
    tree.to_netcdf(path, engine="h5netcdf")
    return path


def test_commands_refuse_an_unconverged_fit(unconverged_fit, tmp_path, capsys):
    """forecast --model, sensitivity --population-fit and evaluate: exit 2 with the fit's
    gates and the fix named, before any computation."""
    path = str(unconverged_fit)
    commands = [
        ["forecast", "--example", "--id", "P01", "--model", path],
        ["sensitivity", "--example", "--id", "P01", "--population-fit", path],
        ["evaluate", path, "--out", str(tmp_path / "e")],
    ]
    for command in commands:
        assert main(command) == 2, command
        message = capsys.readouterr().err
        assert "failed its own convergence gates" in message
        assert "R-hat max 1.31, bulk ESS min 7, 3 divergences" in message
        assert "--allow-unconverged" in message and path in message
    assert not (tmp_path / "e").exists()


def test_forecast_with_an_allowed_unconverged_fit_names_the_fit(
    spec, unconverged_fit, tmp_path, capsys
):
    import hashlib

    sha = hashlib.sha256(unconverged_fit.read_bytes()).hexdigest()
    base = ["forecast", "--example", "--id", "P01", "--model", str(unconverged_fit)]
    base += ["--population-draws", "10", "--draws", "100", "--allow-unconverged"]
    assert main([*base, "--format", "json", "--out", str(tmp_path / "f.nc")]) == 0
    payload = json.loads(capsys.readouterr().out)
    model = payload["model"]
    assert model["sha256"] == sha != spec.sha256
    assert model["name"] == "fit:tiny.nc"
    fit = model["population_fit"]
    assert fit["file"] == str(unconverged_fit) and fit["sha256"] == sha
    assert fit["converged"] is False
    assert fit["diagnostics"] == {"rhat_max": 1.31, "ess_bulk_min": 7.0, "divergences": 3}
    assert fit["structure_model"]["sha256"] == spec.sha256
    from asuc_bayes.inference.forecast import load_results

    saved = load_results(tmp_path / "f.nc")["P01"]
    assert saved.attrs["population_fit_sha256"] == sha
    assert main([*base, "--format", "table"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("model: population fit tiny.nc (sha256 " + sha[:12])
    assert "UNCONVERGED" in header and spec.sha256[:12] in header


def test_evaluate_with_an_allowed_unconverged_fit_records_it(unconverged_fit, tmp_path, capsys):
    out = tmp_path / "e"
    base = ["evaluate", str(unconverged_fit), "--out", str(out), "--replicates", "10"]
    base += ["--bootstrap", "10", "--allow-unconverged", "--format", "json"]
    assert main(base) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["ln_ratio_source"] == "pk_only"
    assert metrics["population_fit"]["converged"] is False
    assert json.loads((out / "metrics.json").read_text())["population_fit"]["file"] == str(
        unconverged_fit
    )


@pytest.mark.slow  # one population model compilation
def test_a_real_tiny_fit_is_refused(spec, tmp_path, capsys):
    """2 chains x 20 draws after 20 tuning steps on 8 patients: the fit's own gates fail, and
    forecast --model refuses it (exit 2) until --allow-unconverged."""
    from asuc_bayes.inference.population import PopulationSettings, fit_population

    fit = fit_population(
        simulate_cohort(spec, 8, random_seed=6).patients,
        spec,
        settings=PopulationSettings(draws=20, tune=20, chains=2),
        random_seed=1,
    )
    assert fit.status == "unconverged"
    path = tmp_path / "tiny.nc"
    fit.save(path)
    command = ["forecast", "--example", "--id", "P01", "--model", str(path)]
    assert main(command) == 2
    assert "failed its own convergence gates" in capsys.readouterr().err
    allowed = [*command, "--population-draws", "5", "--draws", "50", "--allow-unconverged"]
    assert main([*allowed, "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["model"]["population_fit"]["converged"] is False
