"""The sampled posterior (NUTS, independence MH) against the exact quadrature posterior, MAP
against scipy, results I/O."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import scipy.optimize

from asuc_bayes.inference.forecast import (
    DERIVED,
    PriorProposal,
    SamplerSettings,
    derived_quantities,
    forecast_patients,
    load_results,
    patient_seed,
    results_json,
    save_results,
    summary_from_tree,
)
from asuc_bayes.inference.grid import grid_posterior, log_posterior
from asuc_bayes.spec.config import load_model

from conftest import MULTIMODAL_PATIENTS, REFERENCE_PATIENTS

#: Expected ``diagnostics["method"]`` of each sampler on the (unimodal) reference patients.
REFERENCE_METHODS = {"nutpie": "nuts", "imh": "independence_mh"}


def _reference_forecasts(forecaster, sampler: str) -> dict:
    # 4 chains x 10000 draws: the Monte Carlo error of a tail quantile of the right-skewed
    # AUC is itself ~0.15 posterior SD at 4 x 2500 draws (measured over 8 seeds for the ALQ
    # patient: q97.5 errors -0.17..+0.30 SD, means within 0.03 SD), so fewer draws would
    # test the dice as much as the sampler against the 0.2 SD tolerance.
    settings = SamplerSettings(draws=10000, sampler=sampler)
    return {
        name: forecaster.forecast(patient, random_seed=patient_seed(2026, name), settings=settings)
        for name, patient in REFERENCE_PATIENTS.items()
    }


@pytest.fixture(scope="module")
def reference_forecasts(forecaster):
    """NUTS (nutpie) forecasts of the reference patients."""
    return _reference_forecasts(forecaster, "nutpie")


@pytest.fixture(scope="module")
def imh_reference_forecasts(forecaster):
    """Independence-sampler (the default) forecasts of the reference patients."""
    return _reference_forecasts(forecaster, "imh")


def _map_patients():
    """Reference and multimodal patients, and simulated ones whose MAP five fixed L-BFGS
    starts missed (by 0.7–8.7 log units: the line search stalled on a steep wall)."""
    from asuc_bayes.studies.simulate import simulate_patients

    simulated = simulate_patients(load_model(), 130, random_seed=1).patients
    missed = {"SIM0008", "SIM0027", "SIM0033", "SIM0035", "SIM0122"}
    return {
        **REFERENCE_PATIENTS,
        **MULTIMODAL_PATIENTS,
        **{p.id: p for p in simulated if p.id in missed},
    }


MAP_PATIENTS = _map_patients()


@pytest.mark.parametrize("name", sorted(MAP_PATIENTS))
def test_map_is_the_global_maximum_of_a_brute_force_grid(name, spec, forecaster):
    """Both MAP paths — the MAP alone (starts from scan_maxima) and the posterior's (starts
    from find_modes) — reach the highest point of the log posterior on a 401² grid over ±7
    prior SDs, polished by Nelder–Mead, and the forecast reports that MAP."""
    from asuc_bayes.inference.grid import find_modes

    patient = MAP_PATIENTS[name]
    omega = np.array([spec.pk.omega_cl, spec.pk.omega_v])
    axes = [np.linspace(-7 * w, 7 * w, 401) for w in omega]
    mesh = np.meshgrid(*axes, indexing="ij")
    values = log_posterior(spec, patient, *mesh)
    cell = np.unravel_index(np.nanargmax(values), values.shape)
    best = scipy.optimize.minimize(
        lambda x: -float(log_posterior(spec, patient, x[0], x[1])),
        [mesh[0][cell], mesh[1][cell]],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000},
    )
    alone = forecaster.map_estimate(patient)
    modes = find_modes(spec, patient)
    from_modes = forecaster.map_estimate(patient, starts=[eta for eta, _, _ in modes])
    for result in (alone, from_modes):
        reached = float(log_posterior(spec, patient, *result["eta"]))
        assert reached >= -best.fun - 1e-7
        assert result["eta"] == pytest.approx(best.x, abs=1e-4)
    forecast = forecaster.forecast(
        patient, random_seed=1, settings=SamplerSettings(draws=200, tune=200)
    )
    reported = forecast.tree["point_estimates"]["eta"].sel(estimate="map").values
    assert reported == pytest.approx(from_modes["eta"], abs=1e-12)
    # the summary computed from the draws equals the one read back from the built tree
    summary = forecast.summary()
    assert summary == summary_from_tree(
        forecast.tree, spec, patient, forecast.status, forecast.diagnostics
    )
    summary["status"] = "changed"
    assert forecast.summary()["status"] == forecast.status  # a fresh copy each time
    # dataclasses.replace gives a forecast whose summary follows its new fields
    replaced = dataclasses.replace(forecast, status="unconverged")
    assert replaced.summary()["status"] == "unconverged"
    assert replaced.tree is forecast.tree
    # a forecast whose tree is not built yet pickles (the tree is built for it)
    lazy = forecaster.forecast(patient, random_seed=1, settings=SamplerSettings(draws=200))
    back = pickle.loads(pickle.dumps(lazy))
    assert back.summary() == lazy.summary()
    assert back.tree["posterior"].to_dataset().identical(lazy.tree["posterior"].to_dataset())


@pytest.mark.parametrize("sampler", sorted(REFERENCE_METHODS))
@pytest.mark.parametrize("name", sorted(REFERENCE_PATIENTS))
def test_posterior_matches_exact_grid(name, sampler, spec, request):
    """NUTS and the independence sampler, each against the exact quadrature posterior."""
    fixture = {"nutpie": "reference_forecasts", "imh": "imh_reference_forecasts"}[sampler]
    result = request.getfixturevalue(fixture)[name]
    assert result.status == "ok", result.diagnostics
    assert result.diagnostics["method"] == REFERENCE_METHODS[sampler]
    assert result.diagnostics["divergences"] == 0
    if sampler == "imh":
        assert 0.2 < result.diagnostics["imh_acceptance"] <= 1.0
    summary = result.summary()
    exact = grid_posterior(spec, REFERENCE_PATIENTS[name], n_points=300).summary()
    for quantity in DERIVED:
        ours, grid = summary["posterior"][quantity], exact[quantity]
        sd = grid["sd"]
        assert abs(ours["mean"] - grid["mean"]) <= 0.1 * sd, (quantity, ours, grid)
        assert abs(ours["sd"] - grid["sd"]) <= 0.1 * sd, (quantity, ours, grid)
        for q in ("q2.5", "q50", "q97.5"):
            assert abs(ours[q] - grid[q]) <= 0.2 * sd, (quantity, q, ours, grid)
    assert abs(summary["p_high_risk"] - exact["p_high_risk"]) <= 0.03


@pytest.mark.parametrize("name", sorted(REFERENCE_PATIENTS))
def test_map_matches_scipy_on_independent_density(name, spec, forecaster):
    patient = REFERENCE_PATIENTS[name]
    ours = forecaster.map_estimate(patient)["eta"]

    def negative(x):
        return -float(log_posterior(spec, patient, np.array(x[0]), np.array(x[1])))

    starts = [(0.0, 0.0), (0.5, 1.0), (-0.5, -1.0), (1.0, -1.0), (-1.0, 1.0)]
    fits = [
        scipy.optimize.minimize(
            negative,
            s,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000},
        )
        for s in starts
    ]
    best = min(fits, key=lambda r: r.fun)
    ours_q = derived_quantities(spec, patient, ours)
    ref_q = derived_quantities(spec, patient, best.x)
    for quantity in ("cl", "v", "auc_w2_4"):
        assert ours_q[quantity] == pytest.approx(ref_q[quantity], rel=0.01), quantity
    assert negative(ours) <= best.fun + 1e-6


def test_no_sample_posterior_is_the_prior(spec, reference_forecasts):
    eta = reference_forecasts["no_sample"].tree["posterior"]["eta"].values.reshape(-1, 2)
    omega = np.array([spec.pk.omega_cl, spec.pk.omega_v])
    assert np.all(np.abs(eta.mean(axis=0)) < 0.1 * omega)
    assert np.allclose(eta.std(axis=0), omega, rtol=0.1)
    summary = reference_forecasts["no_sample"].summary()
    assert summary["map"]["cl"] == pytest.approx(summary["a_priori"]["cl"], rel=1e-4)


def test_a_priori_is_the_typical_patient(spec, reference_forecasts):
    summary = reference_forecasts["no_sample"].summary()
    # 70 kg, CRP 30 mg/L: CL = theta_CL and V = theta_V exactly
    assert summary["a_priori"]["cl"] == pytest.approx(0.49)
    assert summary["a_priori"]["v"] == pytest.approx(13.2)


def test_json_contract(spec, reference_forecasts):
    text = json.dumps(results_json(list(reference_forecasts.values()), spec), allow_nan=False)
    document = json.loads(text)
    assert set(document["model"]) >= {"name", "sha256"}
    assert len(document["model"]["sha256"]) == 64
    entry = document["patients"][0]
    assert set(entry) == {
        "id",
        "status",
        "posterior",
        "p_high_risk",
        "risk_class",
        "map",
        "a_priori",
        "diagnostics",
        "parameters",
        "eta",
        "observations",
    }
    point_keys = {*DERIVED, "eta", "parameters"}
    assert set(entry["posterior"]) == set(DERIVED)
    assert set(entry["map"]) == point_keys == set(entry["a_priori"])
    for stats in entry["posterior"].values():
        assert set(stats) == {"mean", "sd", "q2.5", "q50", "q97.5", "mcse"}
        assert set(stats["mcse"]) == {"mean", "q2.5", "q50", "q97.5"}
        assert all(0 < x < stats["sd"] for x in stats["mcse"].values())
        assert stats["q2.5"] <= stats["q50"] <= stats["q97.5"]
    assert {"rhat_max", "ess_bulk_min", "divergences", "chains", "draws", "precision"} <= set(
        entry["diagnostics"]
    )
    precision = entry["diagnostics"]["precision"]
    assert set(precision) == {"target", "met", "worst", "draws", "max_draws", "adaptive"}
    assert precision["draws"] == entry["diagnostics"]["draws"] == 10000
    assert not precision["adaptive"] and precision["met"] is (precision["worst"] <= 0.05)
    assert entry["risk_class"] in ("high", "low")
    assert 0.0 <= entry["p_high_risk"] <= 1.0


def test_datatree_groups_dims_and_provenance(spec, reference_forecasts):
    tree = reference_forecasts["several_samples"].tree
    for group in ("posterior", "predictions", "observed_data", "constant_data", "sample_stats"):
        assert group in tree.children
    assert tree["posterior"]["cl"].dims == ("chain", "draw")
    assert tree["posterior"]["eta"].dims == ("chain", "draw", "random_effect")
    assert tree["predictions"]["concentration"].dims == ("chain", "draw", "time")
    assert tree.attrs["model_sha256"] == spec.sha256
    assert tree.attrs["random_seed"] == patient_seed(2026, "several_samples")


def test_save_load_round_trip(tmp_path, reference_forecasts):
    results = [reference_forecasts["blq_sample"], reference_forecasts["no_sample"]]
    path = tmp_path / "results.nc"
    save_results(results, path)
    loaded = load_results(path)
    for result in results:
        original = result.tree
        back = loaded[result.patient.id]
        assert back.attrs == original.attrs
        for group in original.children:
            assert back[group].to_dataset().identical(original[group].to_dataset()), group


def test_same_seed_same_draws_and_batch_equals_single(spec, forecaster):
    patients = [REFERENCE_PATIENTS["one_sample"], REFERENCE_PATIENTS["accelerated"]]
    settings = SamplerSettings(draws=200, tune=300)
    batch = forecast_patients(
        patients, spec, settings=settings, random_seed=5, forecaster=forecaster
    )
    single = forecast_patients(
        patients[1:], spec, settings=settings, random_seed=5, forecaster=forecaster
    )
    assert np.array_equal(
        batch[1].tree["posterior"]["eta"].values, single[0].tree["posterior"]["eta"].values
    )


def test_pymc_sampler_is_selectable(spec, forecaster):
    settings = SamplerSettings(draws=300, tune=300, sampler="pymc", cores=1)
    result = forecaster.forecast(REFERENCE_PATIENTS["one_sample"], random_seed=3, settings=settings)
    exact = grid_posterior(spec, REFERENCE_PATIENTS["one_sample"]).summary()
    posterior = result.summary()["posterior"]["ln_auc_cl"]
    assert abs(posterior["mean"] - exact["ln_auc_cl"]["mean"]) < 0.25 * exact["ln_auc_cl"]["sd"]


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["nutpie", "imh"])
def test_zero_divergences_on_simulated_patients(spec, forecaster, sampler):
    """The issue's bar: zero divergences (and gates passed) on >= 99 % of 200 patients, for
    NUTS alone and for the default (independence sampler, NUTS where it fails a gate).

    NUTS alone runs one run per patient, 4 x 1000 draws after the default warm-up: the
    adaptive extension appends further runs of the same settings, each tuned on its own (a
    median of ~3 600 draws per chain on these patients), which tripled this test's time (~4
    min of CI) and checks the same thing again; the default sampler's case keeps it."""
    from asuc_bayes.studies.simulate import simulate_patients

    cohort = simulate_patients(spec, 200, random_seed=20261122)
    draws = 1000 if sampler == "nutpie" else None
    results = forecast_patients(
        cohort.patients,
        spec,
        settings=SamplerSettings(sampler=sampler, draws=draws),
        random_seed=1,
        forecaster=forecaster,
    )
    clean = sum(r.diagnostics["divergences"] == 0 for r in results)
    ok = sum(r.status == "ok" for r in results)
    assert clean >= 198, clean
    assert ok >= 198, ok


@pytest.mark.parametrize("name", sorted(MULTIMODAL_PATIENTS))
def test_multimodal_posteriors_use_the_exact_grid(name, spec, forecaster):
    patient = MULTIMODAL_PATIENTS[name]
    result = forecaster.forecast(patient, random_seed=11)
    assert result.status == "ok"
    assert result.diagnostics["method"] == "exact_grid"
    assert result.diagnostics["modes"] >= 2
    summary = result.summary()
    finer = grid_posterior(spec, patient, n_points=801).summary()
    for quantity in DERIVED:
        for statistic in ("mean", "sd", "q2.5", "q50", "q97.5"):
            assert summary["posterior"][quantity][statistic] == pytest.approx(
                finer[quantity][statistic], abs=0.01 * finer[quantity]["sd"]
            ), (quantity, statistic)
    assert summary["p_high_risk"] == pytest.approx(finer["p_high_risk"], abs=0.003)
    # The draws in the tree are independent draws from that posterior.
    eta = result.tree["posterior"]["eta"].values.reshape(-1, 2)
    assert np.allclose(
        eta.mean(axis=0), finer["eta_mean"], atol=0.1 * np.sqrt(np.diag(finer["eta_cov"])).max()
    )


def test_prior_proposal_is_a_normalised_density_of_its_samples(spec, forecaster):
    """The defensive component's density in the whitened coordinates integrates to one and
    agrees with its own samples (quadrant probabilities by 2-D quadrature vs Monte Carlo)."""
    patient = REFERENCE_PATIENTS["several_samples"]
    whitening = forecaster._whitening(patient, forecaster.map_estimate(patient)["eta"])
    proposal = PriorProposal(forecaster._omega, whitening["eta_shift"], whitening["eta_chol"])
    axis = np.linspace(-60, 60, 1201)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    points = np.column_stack([x.ravel(), y.ravel()])
    weights = np.exp(proposal.log_density(points)) * (axis[1] - axis[0]) ** 2
    assert abs(weights.sum() - 1.0) < 2e-3
    samples = proposal.sample(40000, np.random.default_rng(4))
    # Probabilities of quadrants at the samples' quartiles (the density's tails in these
    # coordinates are too heavy for moments to be a fair comparison).
    for q0 in (0.25, 0.5, 0.75):
        for q1 in (0.25, 0.5, 0.75):
            t0, t1 = np.quantile(samples[:, 0], q0), np.quantile(samples[:, 1], q1)
            empirical = np.mean((samples[:, 0] <= t0) & (samples[:, 1] <= t1))
            quadrature = weights[(points[:, 0] <= t0) & (points[:, 1] <= t1)].sum()
            assert abs(empirical - quadrature) < 0.01, (q0, q1, empirical, quadrature)


def test_independence_sampler_hands_over_to_nuts_when_a_gate_fails(spec, forecaster, monkeypatch):
    """A proposal far too narrow for the posterior fails the ESS gate; NUTS then samples."""
    import asuc_bayes.inference.forecast.imh as imh_module  # where the run reads them

    monkeypatch.setattr(imh_module, "IMH_SCALE", 0.02)
    monkeypatch.setattr(imh_module, "IMH_PRIOR_WEIGHT", 1e-9)
    settings = SamplerSettings(draws=500, tune=500, sampler="imh")
    result = forecaster.forecast(REFERENCE_PATIENTS["one_sample"], random_seed=6, settings=settings)
    assert result.diagnostics["method"] == "nuts"
    assert result.diagnostics["sampler"] == "nutpie"
    assert result.diagnostics["attempts"] >= 2
    assert result.diagnostics["imh_acceptance"] < 0.2
    assert result.status == "ok"


def test_per_patient_keys_of_every_model(spec, reference_forecasts):
    """The keys every model's forecast carries (as ``forecast --model NAME``): the individual
    parameters and random effects with their MCSE, the MAP and a-priori η, and the
    observations with PRED (η = 0) and IPRED (MAP), checked against the DataTree's draws and
    the one-infusion closed form written here."""
    result = reference_forecasts["several_samples"]
    entry = result.summary()
    tree = result.tree
    eta = tree["posterior"]["eta"].values
    assert entry["parameters"]["CL"] == entry["posterior"]["cl"]
    assert entry["parameters"]["V"] == entry["posterior"]["v"]
    for i, name in enumerate(("eta_CL", "eta_V")):
        stats = entry["eta"][name]
        assert stats["mean"] == pytest.approx(eta[..., i].mean(), rel=1e-12)
        assert stats["q97.5"] == pytest.approx(np.quantile(eta[..., i], 0.975), rel=1e-12)
        assert 0 < stats["mcse"]["mean"] < stats["sd"]
    point = tree["point_estimates"]["eta"].values
    assert entry["map"]["eta"] == pytest.approx(point[0].tolist())
    assert entry["a_priori"]["eta"] == [0.0, 0.0]
    assert entry["map"]["parameters"] == {"CL": entry["map"]["cl"], "V": entry["map"]["v"]}
    patient = result.patient
    rows = entry["observations"]
    assert [r["time"] for r in rows] == [o.time_day for o in patient.observations]
    assert [r["cens"] for r in rows] == [o.censoring for o in patient.observations]

    def by_hand(t, cl, v):  # superposition of D/(T CL) (1 - e^-kT') e^-k(t - s - T')
        k, total = cl / v, 0.0
        for dose in patient.doses:
            tau = t - dose.time_day
            if tau <= 0:
                continue
            inside = min(tau, dose.duration_day)
            rate = dose.amount_mg / dose.duration_day
            total += rate / cl * (1 - np.exp(-k * inside)) * np.exp(-k * (tau - inside))
        return total

    for row in rows:
        ipred = by_hand(row["time"], entry["map"]["cl"], entry["map"]["v"])
        pred = by_hand(row["time"], entry["a_priori"]["cl"], entry["a_priori"]["v"])
        assert row["ipred"] == pytest.approx(ipred, rel=1e-10)
        assert row["pred"] == pytest.approx(pred, rel=1e-10)
