"""Forecasts over a library popPK fit's population draws (``forecast --model FIT.nc``).

References: the published model's own forecast (a sample of identical published draws must
give the same posterior, within Monte Carlo error); brute-force self-normalised importance
sampling from the prior of every population draw (an independent estimate of the mixture's
posterior mean and of its population weights); the declaration rewritten by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp

from asuc_bayes.data.dataset import Dose, Observation, Patient
from asuc_bayes.inference.derived import derived_quantities
from asuc_bayes.inference.library_forecast import forecast_library_patient
from asuc_bayes.inference.library_population_forecast import (
    PopulationSample,
    declaration_at,
    forecast_with_library_fit,
)
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.spec import load_declaration

WOJCIECHOWSKI_COVARIATES = {"ALB": (4.0, "g/dL"), "ADA": 0}


def _patient() -> Patient:
    doses = tuple(Dose(t, 350.0, 1 / 12) for t in (0.0, 14.0))
    return Patient("p1", 70.0, 30.0, doses, (Observation(13.9, 6.0), Observation(27.5, 9.0)))


def _close(a: dict, b: dict, key: str, k: float = 5.0) -> bool:
    """|a - b| within k combined MCSEs of the two estimates."""
    return abs(a[key] - b[key]) <= k * math.hypot(a["mcse"][key], b["mcse"][key])


def test_declaration_at_rewrites_typical_values_omega_and_sigma():
    decl = load_declaration("wojciechowski2017")
    shift = np.array([0.1, -0.2, 0.0, 0.3])
    omega = np.array([0.2, 0.1, 0.5, 0.4])
    new = declaration_at(decl, shift, omega, {"proportional": 0.25})
    for effect, d in zip(decl.random_effects.effects, shift, strict=True):
        assert new.parameter(effect.parameter).typical.estimate == pytest.approx(
            decl.parameter(effect.parameter).typical.estimate * math.exp(d), rel=1e-15
        )
    np.testing.assert_allclose(new.random_effects.matrix, np.diag(omega**2), rtol=1e-15)
    assert new.residual.sd() == {"proportional": 0.25}
    assert new.effects == decl.effects and new.structure == decl.structure
    # the patient's covariate-adjusted typical CL moves by e^δ_CL exactly
    patient = _patient()
    before = PatientProblem.from_patient(decl, patient, WOJCIECHOWSKI_COVARIATES)
    after = PatientProblem.from_patient(new, patient, WOJCIECHOWSKI_COVARIATES)
    cl = derived_quantities(before, np.zeros((1, 4))).cl[0]
    assert derived_quantities(after, np.zeros((1, 4))).cl[0] == pytest.approx(
        cl * math.exp(0.1), rel=1e-12
    )


def test_sample_of_published_draws_gives_the_published_forecast():
    decl = load_declaration("wojciechowski2017")
    patient = _patient()
    mixture = forecast_with_library_fit(
        patient, PopulationSample.published(decl, 8), WOJCIECHOWSKI_COVARIATES, random_seed=3
    ).to_json()
    direct = forecast_library_patient(
        decl, patient, WOJCIECHOWSKI_COVARIATES, random_seed=3
    ).to_json()
    assert mixture["status"] == "ok"
    for key in ("mean", "q2.5", "q50", "q97.5"):
        assert _close(mixture["posterior"]["ln_auc_cl"], direct["posterior"]["ln_auc_cl"], key)
        assert _close(mixture["posterior"]["cl"], direct["posterior"]["cl"], key)
    assert mixture["map"]["eta"] == pytest.approx(direct["map"]["eta"], abs=1e-4)


def _brute_force(decl, patient, sample: PopulationSample, n: int, seed: int):
    """Posterior mean of ln(AUC/CL) and the population weights by sampling η from each draw's
    prior (self-normalised importance sampling with the prior mixture as proposal)."""
    rng = np.random.default_rng(seed)
    log_w, values = [], []
    for s in range(sample.n):
        problem = PatientProblem.from_patient(
            sample.declaration_at(s), patient, WOJCIECHOWSKI_COVARIATES
        )
        eta = rng.multivariate_normal(np.zeros(problem.n_eta), problem.omega, size=n)
        log_w.append(np.asarray(problem.log_likelihood(eta)))
        values.append(derived_quantities(problem, eta).ln_auc_cl)
    log_w, values = np.concatenate(log_w), np.concatenate(values)
    w = np.exp(log_w - logsumexp(log_w))
    per_draw = w.reshape(sample.n, n).sum(axis=1)
    mean = float(np.sum(w * values))
    se = float(np.sqrt(np.sum(w**2 * (values - mean) ** 2)))
    return mean, se, per_draw


def test_mixture_matches_brute_force_prior_sampling_over_two_population_draws():
    decl = load_declaration("wojciechowski2017")
    base = PopulationSample.published(decl, 2)
    sample = PopulationSample(
        decl,
        np.array([[0.0, 0.0, 0.0, 0.0], [0.35, 0.1, -0.2, 0.0]]),
        base.omega_sd * np.array([[1.0], [0.7]]),
        {"proportional": np.array([0.419, 0.3])},
        "test",
    )
    patient = _patient()
    result = forecast_with_library_fit(
        patient, sample, WOJCIECHOWSKI_COVARIATES, random_seed=5, draws_per_chain=2000
    )
    mean, se, per_draw = _brute_force(decl, patient, sample, 200_000, seed=7)
    summary = result.to_json()["posterior"]["ln_auc_cl"]
    assert abs(summary["mean"] - mean) <= 5 * math.hypot(summary["mcse"]["mean"], se)
    # the mixture's share of each population draw is its evidence weight
    chosen_share = (
        np.bincount(_chosen_draws(result, sample, patient), minlength=sample.n)
        / result.eta[..., 0].size
    )
    assert 0.05 < per_draw[1] < 0.95  # both draws matter: the test has power
    np.testing.assert_allclose(chosen_share, per_draw, atol=0.03)


def _chosen_draws(result, sample, patient) -> np.ndarray:
    """Which population draw each posterior draw came from, recovered from its CL: each draw's
    CL is TV_s · e^η, so e^η_CL · TV_s reproduces it only for its own s."""
    eta = result.eta.reshape(-1, result.eta.shape[-1])
    cl = result.draws.cl.reshape(-1)
    candidates = []
    for s in range(sample.n):
        problem = PatientProblem.from_patient(
            sample.declaration_at(s), patient, WOJCIECHOWSKI_COVARIATES
        )
        candidates.append(derived_quantities(problem, eta).cl)
    return np.argmin(np.abs(np.log(np.stack(candidates)) - np.log(cl)), axis=0)


def test_data_that_few_population_draws_explain_are_flagged_unconverged():
    decl = load_declaration("wojciechowski2017")
    rng = np.random.default_rng(0)
    n = 40
    sample = PopulationSample(
        decl,
        rng.normal(0.0, 1.5, size=(n, 4)),
        np.full((n, 4), 0.05),  # tight Ω: each draw explains only data near its own typical
        {"proportional": np.full(n, 0.05)},
        "test",
    )
    result = forecast_with_library_fit(
        _patient(), sample, WOJCIECHOWSKI_COVARIATES, random_seed=1, draws_per_chain=250
    )
    assert result.status == "unconverged"
    assert result.diagnostics["population_ess"] < 20
    assert "few population draws" in result.warnings[0]


def test_from_fit_reads_a_fit_tree_in_the_model_files_order():
    decl = load_declaration("wojciechowski2017")
    names = list(decl.random_effects.names)
    chains, draws = 2, 5
    shift = np.arange(chains * draws * 4, dtype=float).reshape(chains, draws, 4) / 100.0
    posterior = xr.Dataset(
        {
            # stored in reversed order: the reader must select by name
            "log_typical_shift": (("chain", "draw", "eta_name"), shift[..., ::-1]),
            "omega_sd": (("chain", "draw", "eta_name"), np.full((chains, draws, 4), 0.3)),
            "sigma_proportional": (("chain", "draw"), np.full((chains, draws), 0.2)),
        },
        coords={"eta_name": names[::-1]},
    )
    tree = xr.DataTree.from_dict({"posterior": posterior})
    sample = PopulationSample.from_fit(tree, decl, n=chains * draws, random_seed=0)
    np.testing.assert_array_equal(sample.log_typical_shift, shift.reshape(-1, 4))
    assert sample.sigma["proportional"].shape == (chains * draws,)
    assert sample.source == "fit"


def _synthetic_fit(path, decl, *, converged: bool = True, sha256: str | None = None) -> None:
    """A library popPK fit file whose posterior is the published values with a little spread
    (the attributes identify_fit reads, the groups PopulationSample.from_fit reads)."""
    import hashlib
    from pathlib import Path

    from asuc_bayes.inference.fit_tree import LIBRARY_FIT_KIND

    rng = np.random.default_rng(4)
    names = list(decl.random_effects.names)
    shape = (2, 50)
    posterior = xr.Dataset(
        {
            "log_typical_shift": (
                ("chain", "draw", "eta_name"),
                rng.normal(0.0, 0.05, (*shape, len(names))),
            ),
            "omega_sd": (
                ("chain", "draw", "eta_name"),
                decl.random_effects.sd * np.exp(rng.normal(0.0, 0.05, (*shape, len(names)))),
            ),
            **{
                f"sigma_{name}": (("chain", "draw"), np.full(shape, value.estimate))
                for name, value in decl.residual.sigma
            },
        },
        coords={"eta_name": names},
    )
    tree = xr.DataTree.from_dict({"posterior": posterior})
    tree.attrs = {
        "kind": LIBRARY_FIT_KIND,
        "model_name": decl.name,
        "model_sha256": sha256 or hashlib.sha256(Path(decl.path).read_bytes()).hexdigest(),
        "model_variants": "",
        "method": "popPK",
        "prior": "test",
        "diagnostics_converged": int(converged),
        "diagnostics_rhat_max": 1.003 if converged else 1.2,
        "diagnostics_ess_bulk_min": 900.0 if converged else 40.0,
        "diagnostics_divergences": 0,
    }
    tree.to_netcdf(path, engine="h5netcdf")


def _cohort_csv(tmp_path):
    from asuc_bayes.studies.library_simulate import simulate_library_cohort
    from asuc_bayes.studies.simulate import write_cohort

    cohort = simulate_library_cohort("wojciechowski2017", 2, random_seed=2, outcome=False)
    data, _ = write_cohort(cohort, tmp_path / "cohort.csv")
    return data


def test_cli_forecast_over_a_library_fit_names_the_fit(tmp_path, capsys):
    import json

    from asuc_bayes.interfaces.cli import main

    decl = load_declaration("wojciechowski2017")
    fit = tmp_path / "fit.nc"
    _synthetic_fit(fit, decl)
    data = _cohort_csv(tmp_path)
    args = ["forecast", str(data), "--model", str(fit), "--population-draws", "20"]
    code = main([*args, "--draws", "250", "--format", "json", "--seed", "3"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload["model"]["name"] == "wojciechowski2017"
    assert payload["model"]["population_fit"]["kind"] == "asuc_bayes library popPK fit"
    assert payload["model"]["population_fit"]["converged"] is True
    assert len(payload["patients"]) == 2
    for entry in payload["patients"]:
        assert entry["diagnostics"]["method"] == "population_mixture"
        assert entry["diagnostics"]["population_draws"] == 20
        assert sorted(entry["eta"]) == sorted(decl.random_effects.names)
    # the same seed gives the same JSON
    assert main([*args, "--draws", "250", "--format", "json", "--seed", "3"]) == 0
    assert json.loads(capsys.readouterr().out) == payload


def test_cli_refuses_an_unconverged_or_stale_library_fit(tmp_path, capsys):
    from asuc_bayes.interfaces.cli import main

    decl = load_declaration("wojciechowski2017")
    data = _cohort_csv(tmp_path)
    unconverged = tmp_path / "unconverged.nc"
    _synthetic_fit(unconverged, decl, converged=False)
    assert main(["forecast", str(data), "--model", str(unconverged)]) == 2
    assert "--allow-unconverged" in capsys.readouterr().err
    stale = tmp_path / "stale.nc"
    _synthetic_fit(stale, decl, sha256="0" * 64)
    assert main(["forecast", str(data), "--model", str(stale)]) == 2
    err = capsys.readouterr().err
    assert "the fit was made with wojciechowski2017" in err and "refit" in err
    # a command that needs a fit of the ASUC model says what the file is
    assert main(["evaluate", str(stale), "--out", str(tmp_path / "ev")]) == 2
    assert "library model's popPK fit of model wojciechowski2017" in capsys.readouterr().err


def test_cli_csv_over_a_library_fit(tmp_path, capsys):
    import io

    import pandas as pd

    from asuc_bayes.interfaces.cli import main

    decl = load_declaration("wojciechowski2017")
    fit = tmp_path / "fit.nc"
    _synthetic_fit(fit, decl)
    data = _cohort_csv(tmp_path)
    args = ["forecast", str(data), "--model", str(fit), "--population-draws", "10"]
    assert main([*args, "--draws", "200", "--format", "csv", "--seed", "3"]) == 0
    captured = capsys.readouterr()
    table = pd.read_csv(io.StringIO(captured.out))
    assert list(table["model"]) == ["wojciechowski2017"] * 2
    assert "param_Q_q50" in table.columns and "population fit fit.nc" in captured.err
