"""Population model: likelihood terms against scipy/lifelines, the PyMC graph against an
independent NumPy log density, prior predictive check, the fit CLI and parameter recovery."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED, write_nonmem_csv
from asuc_bayes.inference import grid
from asuc_bayes.inference.population import (
    JSON_PARAMETERS,
    CohortData,
    PopulationSettings,
    build_population_model,
    concentration_log_likelihood,
    convergence,
    fit_population,
    load_fit,
)
from asuc_bayes.inference.population_draws import PARAMETER_NAMES, PopulationDraws, point_values
from asuc_bayes.interfaces.cli import main
from asuc_bayes.pk import kernels
from asuc_bayes.spec.config import PK_PARAMETER_NAMES
from asuc_bayes.studies.simulate import cohort_summary, simulate_cohort

CENSORING = np.array([MEASURED, MEASURED, BELOW_LLOQ, BELOW_LLOQ, ABOVE_ULOQ, ABOVE_ULOQ, MEASURED])
VALUES = np.array([12.0, 0.3, 0.5, 2.0, 45.0, 10.0, 3.0])
PREDICTION = np.array([10.0, 25.0, 3.0, 40.0, 5.0, 60.0, 1e-6])


@pytest.mark.parametrize("form", ["proportional", "log_normal"])
def test_censored_likelihood_terms_against_scipy(form):
    """M3 terms by scipy's own distributions: pdf for measured, cdf below the LLOQ, sf above
    the ULOQ; the PyTensor graph (erfcx-based log-CDF) agrees, deep in the tails too."""
    import pytensor.tensor as pt

    sd = 0.44
    if form == "proportional":
        dists = [scipy.stats.norm(f, sd * f) for f in PREDICTION]
        points = VALUES
    else:
        dists = [scipy.stats.norm(np.log(f), sd) for f in PREDICTION]
        points = np.log(VALUES)
    expected = []
    for dist, point, code, value in zip(dists, points, CENSORING, VALUES, strict=True):
        if code == MEASURED:
            density = dist.logpdf(point) - (np.log(value) if form == "log_normal" else 0.0)
            expected.append(density)
        elif code == BELOW_LLOQ:
            expected.append(dist.logcdf(point))
        else:
            expected.append(dist.logsf(point))

    def graph_total(index):
        """The model's summed graph over the records ``index``."""
        censoring = CENSORING[index]
        censored = np.flatnonzero(censoring != MEASURED)
        total = concentration_log_likelihood(
            pt.as_tensor(VALUES[index]),
            pt.as_tensor((censoring == MEASURED).astype(float)),
            pt.as_tensor(censored),
            pt.as_tensor(np.where(censoring[censored] == BELOW_LLOQ, 1.0, -1.0)),
            pt.as_tensor(PREDICTION[index]),
            sd,
            form,
        )
        return float(total.eval())

    # term by term (one record at a time), then all records together
    terms = [graph_total(np.array([i])) for i in range(len(VALUES))]
    # (1e-10: PyMC's normal_lcdf, used here before, is off by up to 8e-8, its √2 a float32)
    np.testing.assert_allclose(terms, expected, rtol=1e-10, atol=1e-12)
    assert graph_total(np.arange(len(VALUES))) == pytest.approx(sum(expected), rel=1e-9)
    # the same terms as the independent quadrature reference (grid.py)
    from dataclasses import replace

    from asuc_bayes.spec.config import load_model

    spec = load_model()
    spec = replace(spec, pk=replace(spec.pk, residual_form=form))
    # grid.py's NumPy terms: the same density of y (−ln y included for the log-normal form)
    np.testing.assert_allclose(
        grid._observation_log_likelihood(spec, VALUES, CENSORING, PREDICTION), expected, rtol=1e-10
    )


def test_weibull_log_likelihood_against_lifelines():
    """With β = 0 our right-censored Weibull log-likelihood (H = λ t^γ) at lifelines' MLE
    equals lifelines' maximised log-likelihood (its S = exp(−(t/λ_L)^ρ): λ = λ_L^−ρ, γ = ρ)."""
    lifelines = pytest.importorskip("lifelines")
    rng = np.random.default_rng(3)
    times = rng.weibull(1.3, 60) * 50 + 0.5
    censor = rng.uniform(20, 120, 60)
    event = (times <= censor).astype(float)
    observed = np.minimum(times, censor)
    fitter = lifelines.WeibullFitter().fit(observed, event)
    ours = kernels.weibull_log_likelihood(
        observed,
        event,
        0.0,
        baseline_lambda=fitter.lambda_ ** (-fitter.rho_),
        gamma=fitter.rho_,
        beta=0.0,
        x_ref=0.0,
    ).sum()
    assert ours == pytest.approx(fitter.log_likelihood_, rel=1e-9)


@pytest.fixture(scope="module")
def cohort72(spec):
    return simulate_cohort(spec, 72, random_seed=2)


def _numpy_log_density(spec, priors, data: CohortData, values: dict) -> float:
    """The joint log density written independently: scipy priors, the grid module's
    observation likelihood, kernels' Weibull likelihood (NumPy)."""
    from dataclasses import replace

    total = 0.0
    for name in PK_PARAMETER_NAMES:
        total += priors[name].frozen().logpdf(values[name])
    total += priors["tte_gamma"].frozen().logpdf(values["tte_gamma"])
    total += priors["tte_beta"].frozen().logpdf(values["tte_beta"])
    total += priors["tte_log10_lambda"].frozen().logpdf(np.log10(values["tte_lambda"]))
    total += scipy.stats.norm.logpdf(values["eta_cl"], 0, values["omega_cl"]).sum()
    total += scipy.stats.norm.logpdf(values["eta_v"], 0, values["omega_v"]).sum()
    draws = PopulationDraws(spec, **{k: np.array([values[k]]) for k in PARAMETER_NAMES})
    at = draws.spec_at(0)
    at = replace(
        at,
        pk=replace(at.pk, residual_sd=replace(at.pk.residual_sd, estimate=values["residual_sd"])),
    )
    x = []
    for i, patient in enumerate(data.patients()):
        eta = (values["eta_cl"][i], values["eta_v"][i])
        total += float(grid.log_likelihood(at, patient, *eta))
        x.append(float(grid.derived_on_grid(at, patient, *eta)["ln_auc_cl"]))
    tte = spec.tte
    total += kernels.weibull_log_likelihood(
        data.event_time_day,
        data.event,
        np.array(x),
        baseline_lambda=values["tte_lambda"],
        gamma=values["tte_gamma"],
        beta=values["tte_beta"],
        x_ref=tte.x_ref,
        form=tte.form,
    ).sum()
    return total


def test_sparse_pairs_reproduce_the_padded_kernels(spec, cohort72):
    """The model sums concentrations and AUCs over (observation, dose) and (subject, dose)
    pairs that can contribute: equal to the padded NumPy kernels (every dose of every
    subject), including padding, doses after a sample, a sample at a dose's start, doses
    after the AUC window and an infusion straddling the window's start."""
    import pytensor.tensor as pt

    from asuc_bayes.inference.population import ln_auc_over_cl, predicted_concentration

    edge = CohortData(
        ids=("A", "B", "C"),
        weight_kg=np.array([60.0, 70.0, 80.0]),
        crp_mg_l=np.array([30.0, 10.0, 90.0]),
        dose_time_day=np.array([[0.0, 14.0, 0.0], [0.0, 30.0, 45.0], [13.9, 0.0, 0.0]]),
        dose_amount_mg=np.array([[500.0, 500.0, 0.0], [700.0, 700.0, 700.0], [800.0, 0, 0]]),
        dose_duration_day=np.array([[1 / 12, 1 / 12, 1 / 12], [0.1, 0.1, 2.0], [1.0, 1, 1]]),
        obs_subject=np.array([0, 0, 0, 1, 1, 2, 2]),
        obs_time_day=np.array([0.0, 14.0, 20.0, 10.0, 46.0, 14.2, 40.0]),
        obs_value_mg_l=np.ones(7),
        obs_censoring=np.array([0.0, 1, -1, 0, 0, 1, 0]),
        event_time_day=np.array([90.0, 90.0, 50.0]),
        event=np.array([0.0, 0.0, 1.0]),
    )
    simulated = CohortData.from_patients(cohort72.patients, spec.pk.default_infusion_duration_day)
    rng = np.random.default_rng(3)
    for data in (edge, simulated):
        values = data.model_data(spec.tte.auc_window_day)
        assert len(values["pair_index"]) < data.obs_subject.size * data.dose_time_day.shape[1]
        cl = rng.lognormal(np.log(0.5), 0.8, data.n_subjects)
        v = rng.lognormal(np.log(13.0), 0.8, data.n_subjects)
        bound = {k: pt.as_tensor(x) for k, x in values.items()}
        cl_t, v_t = pt.as_tensor(cl), pt.as_tensor(v)
        prediction = predicted_concentration(bound, cl_t, v_t).eval()
        x = ln_auc_over_cl(bound, cl_t, v_t).eval()
        s = data.obs_subject
        padded = [
            kernels.concentration(
                data.obs_time_day[j : j + 1],
                data.dose_time_day[s[j]],
                data.dose_amount_mg[s[j]],
                data.dose_duration_day[s[j]],
                cl[s[j]],
                v[s[j]],
            )[0]
            for j in range(s.size)
        ]
        np.testing.assert_allclose(prediction, padded, rtol=1e-12, atol=1e-300)
        start, end = spec.tte.auc_window_day
        auc = kernels.auc_interval(
            start, end, data.dose_time_day, data.dose_amount_mg, data.dose_duration_day, cl, v
        )
        np.testing.assert_allclose(x, np.log(auc) - np.log(cl), rtol=1e-12)
    assert prediction.min() > 0  # (simulated samples all follow a dose)


@pytest.mark.parametrize("prior", ["weak", "published"])
def test_pymc_log_density_matches_an_independent_numpy_computation(spec, cohort72, prior):
    """The population model's graph (partial centring, λ–γ shear) against the model written
    again in NumPy/scipy at random points, in the natural parameters (no log-transform
    Jacobians): equal to rounding (1e-10 relative) once the density of the sampled
    z = η / ω^(1−w) is converted to that of η (+ Σ (1 − w) ln ω)."""
    data = CohortData.from_patients(cohort72.patients).with_centring(spec, n_points=31)
    priors = spec.priors(prior)
    model = build_population_model(spec, priors, data)
    logp = model.compile_logp(jacobian=False)
    rng = np.random.default_rng(5)
    differences, magnitudes = [], []
    for _ in range(3):
        values = {k: v * float(np.exp(rng.normal(0, 0.1))) for k, v in point_values(spec).items()}
        values["tte_beta"] = -0.5 + rng.normal(0, 0.1)
        values["crp_exponent_cl"] = 0.5 + rng.normal(0, 0.1)
        eta_cl = rng.normal(0, 0.5, data.n_subjects)
        eta_v = rng.normal(0, 0.5, data.n_subjects)
        values["eta_cl"], values["eta_v"] = eta_cl, eta_v
        w_cl, w_v = data.centring_cl, data.centring_v
        point = {
            "theta_cl_log__": np.log(values["theta_cl"]),
            "theta_v_log__": np.log(values["theta_v"]),
            "crp_exponent_cl": values["crp_exponent_cl"],
            "omega_cl_log__": np.log(values["omega_cl"]),
            "omega_v_log__": np.log(values["omega_v"]),
            "residual_sd_log__": np.log(values["residual_sd"]),
            "z_cl": eta_cl / values["omega_cl"] ** (1 - w_cl),
            "z_v": eta_v / values["omega_v"] ** (1 - w_v),
            "tte_gamma_log__": np.log(values["tte_gamma"]),
            "tte_beta": values["tte_beta"],
            "tte_log10_hazard_at_ref": np.log10(values["tte_lambda"])
            + values["tte_gamma"] * np.log10(30.0),
        }
        pymc_value = float(logp(point))
        magnitudes.append(abs(pymc_value))
        # z's density differs from η's by the Jacobian of η = ω^(1-w) z: Σ (1-w) ln ω
        jacobian = ((1 - w_cl) * np.log(values["omega_cl"])).sum() + (
            (1 - w_v) * np.log(values["omega_v"])
        ).sum()
        differences.append(pymc_value - (_numpy_log_density(spec, priors, data, values) + jacobian))
    # both include every normalising constant and the same residual density (of y): equal to
    # rounding, point by point (measured: 4e-13 relative at most)
    np.testing.assert_array_less(np.abs(differences), 1e-10 * np.array(magnitudes))


def test_prior_predictive_check_of_the_weak_priors(spec):
    """Cohorts simulated from weak-prior draws of the population parameters give plausible
    concentrations (median per cohort mostly 0.5-100 mg/L) and 90-day colectomy rates that
    span rare to common without piling up at 0 or 1: proper and sensible on the natural
    scale."""
    priors = spec.priors("weak")
    rng = np.random.default_rng(8)
    n = 60
    draws = {
        name: priors[name].rvs(rng, n) for name in (*PK_PARAMETER_NAMES, "tte_gamma", "tte_beta")
    }
    draws["tte_lambda"] = 10 ** priors["tte_log10_lambda"].rvs(rng, n)
    draws = {k: draws[k] for k in PARAMETER_NAMES}
    population = PopulationDraws(spec, **draws, source="weak prior")
    medians, rates = [], []
    for s in range(n):
        cohort = simulate_cohort(population.spec_at(s), 40, random_seed=s)
        summary = cohort_summary(cohort.patients)
        latent = cohort.truth
        rates.append(float((latent.latent_event_time_day <= 90).mean()))
        medians.append(summary["concentration_mg_l_median"])
    medians = np.array(medians)
    rates = np.array(rates)
    print(
        f"\nprior predictive: cohort median concentration quantiles (5/50/95 %) "
        f"{np.nanquantile(medians, [0.05, 0.5, 0.95]).round(2)} mg/L; 90-day colectomy "
        f"rate quantiles {np.quantile(rates, [0.05, 0.5, 0.95]).round(2)}"
    )
    assert np.nanmean((medians > 0.5) & (medians < 100)) > 0.8
    assert 0.01 < np.median(rates) < 0.6
    assert np.mean(rates < 0.999) > 0.8 and np.mean(rates > 0.001) > 0.5


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory, cohort72):
    path = tmp_path_factory.mktemp("cohort") / "cohort.csv"
    write_nonmem_csv(cohort72.patients, path)
    return path


@pytest.mark.slow
def test_fit_cli_json_contract_table_and_out(cohort_csv, tmp_path, capsys):
    """Small sampling settings: the contract, not the numbers."""
    out = tmp_path / "fit.nc"
    common = ["--draws", "100", "--tune", "100", "--chains", "2", "--allow-unconverged"]
    code = main(
        ["fit", str(cohort_csv), "--format", "json", "--out", str(out), "--seed", "3", *common]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_subjects"] == 72 and summary["n_events"] >= 1
    assert set(summary["parameters"]) == set(JSON_PARAMETERS)
    for stats in summary["parameters"].values():
        assert set(stats) == {"mean", "sd", "q2.5", "q50", "q97.5"}
        assert stats["q2.5"] <= stats["q50"] <= stats["q97.5"]
    assert 0.05 < summary["parameters"]["iiv_cl_cv"]["mean"] < 3  # a fraction, not percent
    assert {"rhat_max", "ess_bulk_min", "divergences"} <= set(summary["diagnostics"])
    assert summary["diagnostics"]["adaptation"] == "low_rank"  # the marginal fit's default
    tree = load_fit(out)
    assert tree.attrs["adaptation"] == "low_rank"
    assert tree["posterior"]["eta_cl"].dims == ("chain", "draw", "subject")
    assert tree.attrs["prior"] == "weak" and tree.attrs["model_sha256"]
    code = main(["fit", str(cohort_csv), "--seed", "3", *common])
    text = capsys.readouterr().out
    assert code == 0 and "bootstrap 95% CI" in text and "0.49" in text
    assert main(["fit", str(cohort_csv), "--prior", "nonsense"]) == 2
    assert "no prior set 'nonsense'" in capsys.readouterr().err


def test_fit_cli_rejects_a_bad_cohort(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(
        "ID,TIME,EVID,AMT,DV,CENS,MDV,DVID,WT,CRP\nP1,0,1,600,.,.,1,.,63,45\nP1,7,0,.,12,0,0,1,63,45\n"
    )
    assert main(["fit", str(path)]) == 2
    assert "no colectomy record" in capsys.readouterr().err


@pytest.mark.slow
def test_parameter_recovery_on_a_72_patient_cohort(spec, cohort72):
    """Simulated from the published point estimates, fitted with weak priors: every
    population parameter's 99 % CrI covers its true value, and the 95 % CrIs of the 144
    individual η cover the truth at a rate compatible with 95 % (3 binomial SEs)."""
    fit = fit_population(
        cohort72.patients,
        spec,
        method="joint",  # the full model (the marginal fit has its own recovery test)
        settings=PopulationSettings(draws=500, tune=1000),
        random_seed=1,
    )
    posterior = fit.tree["posterior"]
    truth = point_values(spec)
    print("\nrecovery:", fit.diagnostics)
    for name in PARAMETER_NAMES:
        low, high = np.quantile(posterior[name].values, [0.005, 0.995])
        print(f"  {name:<16} truth {truth[name]:.4g}  99% CrI [{low:.4g}, {high:.4g}]")
        assert low <= truth[name] <= high, name
    covered = []
    for effect in ("eta_cl", "eta_v"):
        values = posterior[effect].values.reshape(-1, 72)
        low, high = np.quantile(values, [0.025, 0.975], axis=0)
        true = cohort72.truth.loc[list(posterior["subject"].values), effect].to_numpy()
        covered.extend((low <= true) & (true <= high))
    rate = float(np.mean(covered))
    assert abs(rate - 0.95) < 3 * np.sqrt(0.95 * 0.05 / len(covered)), rate
    # divergences are reported (printed above), not asserted: their count is noisy (README)


@pytest.mark.slow
def test_two_stage_fit_carries_pk_uncertainty(spec, cohort72):
    fit = fit_population(
        cohort72.patients,
        spec,
        method="two_stage",
        settings=PopulationSettings(draws=300, tune=500, chains=2),
        random_seed=2,
    )
    posterior = fit.tree["posterior"]
    assert fit.tree.attrs["method"] == "two_stage"
    for name in PARAMETER_NAMES:
        assert posterior[name].dims == ("chain", "draw")
    # stage 2's latent x has at least the spread of the stage-1 posterior it was given
    stage1_sd = posterior["ln_auc_cl"].std(("chain", "draw"))
    stage2_sd = posterior["ln_auc_cl_stage2"].std(("chain", "draw"))
    assert float((stage2_sd / stage1_sd).median()) > 0.7
    assert np.all(posterior["tte_beta"].values < 1.5)


def test_convergence_gates_treat_a_stuck_parameter_as_failing():
    """A parameter that never moved has a NaN R-hat (no within-chain variance): that is the
    worst value, reported where it is, and fails the gates — never skipped as missing (the
    other R-hats here are ≈ 1, so skipping the NaN would pass the fit)."""
    rng = np.random.default_rng(3)
    eta = rng.normal(size=(4, 500, 3))
    eta[:, :, 1] = 0.25  # subject B stuck at one value in every chain
    posterior = xr.Dataset(
        {
            "theta_cl": (("chain", "draw"), rng.normal(size=(4, 500))),
            "eta_cl": (("chain", "draw", "subject"), eta),
        },
        coords={"subject": ["A", "B", "C"]},
    )
    checks = convergence(posterior, 0, ["theta_cl", "eta_cl"])
    assert np.isnan(checks["rhat_max"]) and checks["rhat_max_at"] == "eta_cl[B]"
    assert not checks["converged"]
    healthy = convergence(posterior, 0, ["theta_cl"])
    assert healthy["converged"] and healthy["rhat_max"] < 1.01  # the same data, mixed part
    assert healthy["rhat_max_at"] == "theta_cl"
    assert not convergence(posterior, 1, ["theta_cl"])["converged"]  # one divergence fails


def test_an_undefined_diagnostic_is_the_worst_of_two_stages_and_null_in_json():
    """Two-stage fits keep the worse stage's R-hat and ESS; NaN (a stuck parameter) must win,
    whichever stage it is in, and the JSON summary carries it as null, not a bare NaN."""
    from asuc_bayes.inference.population import _combined_checks, _json_diagnostic
    from asuc_bayes.interfaces.report import _diagnostic

    def stage(rhat, ess, where, divergences=0):
        converged = divergences == 0 and rhat <= 1.01 and ess >= 400
        return {
            "rhat_max": rhat,
            "rhat_max_at": where,
            "ess_bulk_min": ess,
            "ess_bulk_min_at": where,
            "divergences": divergences,
            "converged": converged,
        }

    pk, stuck = stage(1.005, 900.0, "eta_cl[P1]"), stage(float("nan"), 950.0, "tte_beta")
    for first, second in ((pk, stuck), (stuck, pk)):
        both = _combined_checks(first, second)
        assert np.isnan(both["rhat_max"]) and both["rhat_max_at"] == "tte_beta"
        assert both["ess_bulk_min"] == 900.0 and not both["converged"]
    slow = stage(1.004, float("nan"), "omega_v", divergences=2)
    both = _combined_checks(pk, slow)
    assert both["rhat_max"] == 1.005 and both["ess_bulk_min_at"] == "omega_v"
    assert np.isnan(both["ess_bulk_min"]) and both["divergences"] == 2
    assert _combined_checks(pk, stage(1.003, 800.0, "v"))["converged"]
    assert _json_diagnostic(float("nan")) is None and _json_diagnostic(1.004) == 1.004
    assert json.dumps({"rhat_max": _json_diagnostic(float("nan"))}) == '{"rhat_max": null}'
    assert _diagnostic(None, ".3f").startswith("undefined")
    assert _diagnostic(1.0041, ".3f") == "1.004"
