"""``optimize --model NAME`` for a library model (Wojciechowski 2017: two compartments, four
random effects, the ASUC outcome model attached and flagged extrapolated).

Independent references: the two-compartment amounts and the AUC are integrated with
``scipy.integrate.solve_ivp`` (the ODE written here, not the analytic superposition), for the
posterior draws' individual parameters, and the dose is found again by a brute-force scan of
the whole-vial grid with the Weibull risk written here; troughs likewise.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from asuc_bayes.data.dataset import Dose, Observation, Patient
from asuc_bayes.decisions.dosing import DosingRequest
from asuc_bayes.decisions.library_dosing import (
    library_posterior,
    library_trough_targets,
    plan_library_dosing,
    recommend_library_dose,
)
from asuc_bayes.inference import derived_quantities
from asuc_bayes.interfaces.cli import EXIT_INPUT, EXIT_OK, main

MODEL = "wojciechowski2017"
COVARIATES = {"ALB": (3.5, "g/dL"), "ADA": 0}
TWO_HOURS = 1 / 12


def _patient() -> Patient:
    doses = (Dose(0.0, 400.0, TWO_HOURS), Dose(14.0, 400.0, TWO_HOURS), Dose(42.0, 400.0, 1 / 12))
    observations = (Observation(7.0, 14.0), Observation(13.9, 6.5))
    return Patient("p1", 70.0, 30.0, doses, observations)


@pytest.fixture(scope="module")
def posterior():
    """The posterior, thinned to 4 × 100 draws (the ODE reference integrates each draw)."""
    full = library_posterior(MODEL, _patient(), COVARIATES, random_seed=3)
    eta = full.forecast.eta[:, ::10]
    draws = derived_quantities(full.problem, eta)  # the forecast's draws, thinned alike
    thinned = dataclasses.replace(full.forecast, eta=eta, draws=draws)
    return dataclasses.replace(full, forecast=thinned)


def _draw_parameters(posterior) -> dict[str, np.ndarray]:
    eta = posterior.eta_draws
    return {k: np.asarray(v, dtype=float) for k, v in posterior.problem.parameters(eta).items()}


def _ode(params, doses, t_end: float, t_marks=()):
    """Central/peripheral amounts and the central AUC of every draw at ``t_marks`` (solve_ivp
    over the piecewise-constant infusion rate; all draws as one linear system)."""
    cl, v1, q, v2 = (params[k] for k in ("CL", "V1", "Q", "V2"))
    n = cl.size
    breaks = sorted(
        {0.0, t_end, *t_marks, *(s for s, _, _ in doses), *(s + d for s, _, d in doses)}
    )
    breaks = [b for b in breaks if b <= t_end]

    def rate(t):
        return sum(a / d for s, a, d in doses if s <= t < s + d)

    def rhs(t, y, r):
        a1, a2 = y[:n], y[n : 2 * n]
        da1 = r - (cl + q) / v1 * a1 + q / v2 * a2
        da2 = q / v1 * a1 - q / v2 * a2
        return np.concatenate([da1, da2, a1 / v1])

    state = np.zeros(3 * n)
    out = {}
    for lo, hi in itertools.pairwise(breaks):
        if lo in t_marks:
            out[lo] = state.copy()
        r = rate(0.5 * (lo + hi))
        sol = solve_ivp(rhs, (lo, hi), state, args=(r,), rtol=1e-10, atol=1e-10, method="DOP853")
        state = sol.y[:, -1]
    out[t_end] = state.copy()
    return {t: (s[:n], s[n : 2 * n], s[2 * n :]) for t, s in out.items()}


def _risk_by_hand(outcome, ln_ratio: np.ndarray) -> np.ndarray:
    lam = 10.0**outcome.log10_lambda.estimate
    t = outcome.horizon_day
    if outcome.form == "lambda_t_gamma":
        baseline = lam * t**outcome.gamma.estimate
    else:
        baseline = (lam * t) ** outcome.gamma.estimate
    return 1.0 - np.exp(-baseline * np.exp(outcome.beta.estimate * (ln_ratio - outcome.x_ref)))


def _risk_at_dose(posterior, params, dose_mg: float) -> np.ndarray:
    """Per-draw 90-day risk with ``dose_mg`` at day 14 (the day-42 dose is outside the window)."""
    start, end = posterior.outcome.auc_window_day
    doses = [(0.0, 400.0, TWO_HOURS), (14.0, dose_mg, TWO_HOURS)]
    states = _ode(params, doses, end, t_marks=(start,))
    auc = states[end][2] - states[start][2]
    return _risk_by_hand(posterior.outcome, np.log(auc / params["CL"]))


def test_chosen_dose_matches_an_ode_dose_scan(posterior):
    params = _draw_parameters(posterior)
    probe = recommend_library_dose(posterior, DosingRequest(target_risk=0.5))
    curve = probe.curve["risk_mean"].to_numpy()
    k = len(curve) // 2  # a target between two grid doses' risks: an interior answer
    target = 0.5 * (curve[k - 1] + curve[k])
    rec = recommend_library_dose(posterior, DosingRequest(target_risk=float(target)))
    assert rec.feasible and rec.monotone
    grid = rec.curve["dose_mg"].to_numpy()
    scan = np.array([_risk_at_dose(posterior, params, d).mean() for d in grid])
    np.testing.assert_allclose(scan, rec.curve["risk_mean"], rtol=1e-7)
    brute = grid[np.flatnonzero(scan <= target)[0]]
    assert rec.dose_mg == brute == grid[k]
    assert np.all(np.diff(scan) < 0)  # more drug, less risk: the scan is monotone too
    risk = _risk_at_dose(posterior, params, rec.dose_mg)
    assert rec.risk_90d["mean"] == pytest.approx(risk.mean(), rel=1e-7)
    assert rec.p_meets_target == np.mean(risk <= target)


def test_probability_criterion_and_extrapolation_flag(posterior):
    params = _draw_parameters(posterior)
    request = DosingRequest(target_risk=0.12, criterion="probability", probability=0.6)
    plan = plan_library_dosing(posterior, request)
    entry = plan.to_json()
    assert entry["extrapolated"] is True and entry["outcome"]["source_model"] == "niyigena2025"
    assert any("EXTRAPOLATED" in note for note in entry["notes"])
    rec = plan.recommendation
    grid = rec.curve["dose_mg"].to_numpy()
    meets = [np.mean(_risk_at_dose(posterior, params, d) <= 0.12) >= 0.6 for d in grid]
    expected = grid[meets.index(True)] if any(meets) else grid[-1]
    assert rec.dose_mg == expected and rec.feasible == any(meets)
    assert np.all(np.diff(rec.curve["p_meets_target"]) >= 0)


def _troughs(posterior, params, dose_mg: float, interval: float, start: float = 42.0):
    """Trough before the next infusion of ``dose_mg`` every ``interval`` from ``start`` (one
    maintenance dose), the earlier doses as given: the ODE's central amount / V1."""
    doses = [(0.0, 400.0, TWO_HOURS), (14.0, 400.0, TWO_HOURS), (start, dose_mg, TWO_HOURS)]
    t = start + interval
    a1, _, _ = _ode(params, doses, t)[t]
    return a1 / params["V1"]


def test_trough_dose_matches_the_ode(posterior):
    params = _draw_parameters(posterior)
    request = DosingRequest(dose_time_day=42.0, probability=0.5)
    probe = library_trough_targets(posterior, 1.0, interval_day=28.0, request=request)
    medians = probe.dose_table["trough_q50"].to_numpy()
    k = len(medians) // 2
    target = float(0.5 * (medians[k - 1] + medians[k]))  # the median crosses it at dose k
    plan = library_trough_targets(posterior, target, interval_day=28.0, request=request)
    grid = plan.dose_table["dose_mg"].to_numpy()
    p = np.array([np.mean(_troughs(posterior, params, d, 28.0) >= target) for d in grid])
    np.testing.assert_array_equal(p, plan.dose_table["p_trough_above_target"])
    assert plan.status == "reachable" and plan.dose_mg == grid[np.flatnonzero(p >= 0.5)[0]]
    chosen = _troughs(posterior, params, plan.dose_mg, 28.0)
    assert plan.trough_mg_l["q50"] == pytest.approx(np.median(chosen), rel=1e-7)
    assert np.all(np.diff(p) >= 0)


def test_trough_not_reachable_reports_the_cap(posterior):
    params = _draw_parameters(posterior)
    request = DosingRequest(dose_time_day=42.0, probability=0.9)
    plan = library_trough_targets(posterior, 40.0, interval_day=56.0, request=request)
    cap = float(plan.dose_table["dose_mg"].iloc[-1])
    assert plan.status == "not_reachable" and plan.dose_mg == cap
    assert np.mean(_troughs(posterior, params, cap, 56.0) >= 40.0) < 0.9
    assert "Not reachable at the cap" in plan.answer


DATA = """ID,TIME,EVID,AMT,DV,WT,CRP,ALB,ADA
P1,0,1,400,.,70,30,3.5,0
P1,7,0,0,14,70,30,3.5,0
P1,13.9,0,0,6.5,70,30,3.5,0
P1,14,1,400,.,70,30,3.5,0
"""


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "alb.csv"
    path.write_text(DATA)
    return path


def test_cli_optimize_library_model_json(dataset, capsys):
    code = main(["optimize", str(dataset), "--model", MODEL, "--format", "json", "--seed", "2"])
    assert code == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["model"]["name"] == MODEL and out["model"]["structure"] == "two_compartment"
    (entry,) = out["patients"]
    assert entry["mode"] == "risk" and entry["extrapolated"] is True
    assert entry["recommended"]["dose_mg"] % 100 == 0 and entry["min_mg_kg"] == 5.0
    assert "NaN" not in json.dumps(entry)
    assert main(["optimize", str(dataset), "--model", MODEL, "--trough-target", "3",
                 "--dose-time", "42", "--format", "json"]) == EXIT_OK  # fmt: skip
    trough = json.loads(capsys.readouterr().out)["patients"][0]
    assert trough["mode"] == "trough" and trough["trough"]["status"] in (
        "reachable",
        "met_at_minimum",
        "not_reachable",
    )


def test_cli_optimize_library_model_errors(dataset, tmp_path, capsys):
    code = main(["optimize", str(dataset), "--model", MODEL, "--next-sample"])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and "--next-sample" in err and "Traceback" not in err
    no_albumin = tmp_path / "no_alb.csv"
    no_albumin.write_text(DATA.replace(",ALB,ADA", "").replace(",3.5,0", ""))
    code = main(["optimize", str(no_albumin), "--model", MODEL])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and "needs covariate ALB" in err
    assert "--impute" in err and "impute=" not in err  # the CLI's option, not the API's
    code = main(["optimize", str(dataset), "--model", MODEL, "--dose-time", "10"])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and "--dose-time" in err
