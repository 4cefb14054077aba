"""Time-varying covariates, steady state and resets under a library model (wojciechowski2017).

Every reference here is independent of the package's maths: the two-compartment ODEs are
written out and integrated with scipy's ``solve_ivp`` between events, the individual
parameters are the published formulas typed in by hand (CL = 0.294 (WT/70)^0.614
(ALB/4 g/dL)^-1.17 (1 + 0.257 ADA) e^η1, ...), and a covariate's value at a time follows
the convention's definition directly (NONMEM: the first record at or after the time; LOCF:
the last record at or before it), not the package's change-point bookkeeping. Steady state
is checked against a long explicit history of doses, and the MAP against
``scipy.optimize.minimize`` on a log posterior built from the ODE solution.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize

from asuc_bayes.data.dataset import read_patients
from asuc_bayes.inference import (
    PatientProblem,
    covariate_schedule,
    find_map,
    forecast_library_patient,
)
from asuc_bayes.inference.covariates import baseline_covariates
from asuc_bayes.interfaces.cli import EXIT_INPUT, EXIT_OK, main
from asuc_bayes.spec import load_declaration

H2 = 2.0 / 24.0  # the model's 2 h infusion
OMEGA = np.array([0.106929, 0.0225, 1.21, 0.638401])  # variances, CL V1 Q V2
SIGMA_PROP = 0.419
ETA = np.array([0.25, -0.1, 0.4, -0.3])


# -- the independent reference ---------------------------------------------------------------
def parameters(cov: dict[str, float], eta=ETA) -> dict[str, float]:
    """Wojciechowski 2017 by hand (ALB in g/dL)."""
    w = cov["WT"] / 70.0
    return {
        "cl": 0.294 * w**0.614 * (cov["ALB"] / 4.0) ** -1.17 * (1 + 0.257 * cov["ADA"])
        * math.exp(eta[0]),
        "v1": 3.33 * w**0.691 * math.exp(eta[1]),
        "q": 0.0719 * w**1.10 * math.exp(eta[2]),
        "v2": 1.14 * w**0.59 * math.exp(eta[3]),
    }  # fmt: skip


def value_at(records, t: float, convention: str) -> dict[str, float]:
    """The covariates in force at ``t`` by the convention's definition."""
    times = [r[0] for r in records]
    if convention == "nonmem":  # (t_{k-1}, t_k]: the first record at or after t
        later = [r for r in records if r[0] >= t]
        return dict((later[0] if later else records[-1])[1])
    earlier = [r for r in records if r[0] <= t]  # locf: the last record at or before t
    return dict((earlier[-1] if earlier else records[0])[1]) if times else {}


def ode(doses, records, convention, times, *, resets=(), window=None, eta=ETA):
    """Central concentrations at ``times`` (and the AUC over ``window``) by solve_ivp.

    ``doses``: (start, amount, duration); ``records``: (time, {WT, ALB, ADA}) in time order;
    ``resets``: times at which every amount is zeroed (a dose at that time is given after).
    """
    events = sorted(
        {*(d[0] for d in doses), *(d[0] + d[2] for d in doses), *(r[0] for r in records)}
        | set(resets)
        | set(times)
        | set(window or ())
    )
    state, auc, out = np.zeros(2), 0.0, {}
    for a, b in itertools.pairwise([*events, events[-1]]):
        if a in resets:
            state = np.zeros(2)
        out[a] = state[0] / parameters(value_at(records, a, convention), eta)["v1"]
        if b == a:
            break
        p = parameters(value_at(records, 0.5 * (a + b), convention), eta)
        last_reset = max((r for r in resets if r <= a), default=-np.inf)
        rate = sum(amt / dur for s, amt, dur in doses if s <= a < s + dur and s >= last_reset)
        inside = window is not None and window[0] <= a and b <= window[1]

        def rhs(_t, y, p=p, rate=rate, inside=inside):
            flow = p["q"] / p["v1"] * y[0] - p["q"] / p["v2"] * y[1]
            return [rate - p["cl"] / p["v1"] * y[0] - flow, flow, y[0] / p["v1"] * inside]

        sol = scipy.integrate.solve_ivp(
            rhs, (a, b), [*state, 0.0], method="DOP853", rtol=1e-11, atol=1e-12
        )
        state, auc = sol.y[:2, -1], auc + sol.y[2, -1]
    return np.array([out[t] for t in times]), auc


# -- a patient with ALB, ADA and WT changing at records between doses ------------------------
CSV = """ID,TIME,EVID,AMT,DV,WT,CRP,ALB,ADA
P1,0,1,350,.,70,30,3.8,0
P1,7,2,.,.,70,30,3.0,0
P1,13.9,0,.,9.5,70,30,3.0,0
P1,14,1,350,.,70,30,3.0,0
P1,20,0,.,14.0,70,30,3.0,1
P1,27.9,0,.,4.5,64,30,2.6,1
P1,30,2,.,.,64,30,2.6,1
P1,42,1,350,.,64,30,3.4,1
P1,49,0,.,20.0,64,30,3.4,1
"""
TIMES = (3.0, 7.0, 10.0, 13.9, 20.0, 25.0, 27.9, 35.0, 42.0, 49.0, 60.0)


def read(tmp_path, text: str = CSV, name: str = "tv.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path, read_patients(path, allow_unsupported=True).patients[0]


def records_of(patient):
    return [
        (r.time_day, {k: float(r.get(k)) for k in ("WT", "ALB", "ADA")})
        for r in patient.covariate_records
    ]


def doses_of(patient):
    return [(d.time_day, d.amount_mg, d.duration_day) for d in patient.doses]


def problem_for(patient, convention, decl=None):
    decl = decl or load_declaration("wojciechowski2017")
    return PatientProblem.from_patient(
        decl,
        patient,
        baseline_covariates(patient, decl),
        schedule=covariate_schedule(patient, decl, convention=convention),
    )


@pytest.mark.parametrize("convention", ["nonmem", "locf"])
def test_predictions_and_auc_match_solve_ivp(tmp_path, convention):
    _, patient = read(tmp_path)
    problem = problem_for(patient, convention)
    assert problem.time_varying
    got = problem.predict(ETA, TIMES)
    auc = problem.auc(ETA, (14.0, 28.0))
    want, want_auc = ode(doses_of(patient), records_of(patient), convention, TIMES,
                         window=(14.0, 28.0))  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-8)
    assert auc == pytest.approx(want_auc, rel=1e-8)
    # vectorised over draws: a stack of η gives each row's own prediction
    stack = np.stack([ETA, np.zeros(4), -ETA])
    rows = problem.predict(stack, TIMES)
    np.testing.assert_allclose(rows[2], ode(doses_of(patient), records_of(patient), convention,
                                            TIMES, eta=-ETA)[0], rtol=1e-8)  # fmt: skip
    assert rows[0] == pytest.approx(got, rel=1e-13)


def test_the_two_conventions_differ_where_they_should(tmp_path):
    _, patient = read(tmp_path)
    nonmem = problem_for(patient, "nonmem").predict(ETA, TIMES)
    locf = problem_for(patient, "locf").predict(ETA, TIMES)
    # NONMEM applies the day-7 record's albumin (3.0) from day 0 on, LOCF only from day 7:
    # the two differ already on day 3, and at every later time
    differs = np.abs(nonmem / locf - 1.0) > 1e-3
    assert differs.all(), (nonmem, locf)
    # at day 3 NONMEM's clearance is higher (albumin 3.0 < 3.8): lower concentration
    assert nonmem[0] < locf[0]
    # a patient whose records carry one value: both conventions give the same
    flat = CSV.replace(",3.0,", ",3.8,").replace(",2.6,", ",3.8,").replace(",3.4,", ",3.8,")
    flat = flat.replace(",64,", ",70,").replace(",1\n", ",0\n")
    _, same = read(tmp_path, flat, "flat.csv")
    a = problem_for(same, "nonmem").predict(ETA, TIMES)
    b = problem_for(same, "locf").predict(ETA, TIMES)
    assert np.array_equal(a, b)


def test_output_says_time_varying_and_the_convention(tmp_path):
    _, patient = read(tmp_path)
    decl = load_declaration("wojciechowski2017")
    result = forecast_library_patient(
        decl,
        patient,
        baseline_covariates(patient, decl),
        attach_outcome=True,
        random_seed=3,
        schedule=covariate_schedule(patient, decl, convention="locf"),
    ).to_json()
    cov = result["covariates"]
    assert cov["time_varying"] is True and cov["convention"] == "locf"
    assert cov["change_days"] == [7.0, 20.0, 27.9, 42.0]
    assert set(cov["varying"]) == {"ALB", "ADA", "WT"}
    assert any("convention locf" in note for note in result["notes"])
    # the reported CL is the time-weighted mean over days 14-28 of the piecewise CL (MAP)
    eta = np.array(result["map"]["eta"])
    by_hand = (
        6.0 * parameters({"WT": 70, "ALB": 3.0, "ADA": 0}, eta)["cl"]
        + 7.9 * parameters({"WT": 70, "ALB": 3.0, "ADA": 1}, eta)["cl"]
        + 0.1 * parameters({"WT": 64, "ALB": 2.6, "ADA": 1}, eta)["cl"]
    ) / 14.0
    assert result["map"]["cl"] == pytest.approx(by_hand, rel=1e-12)
    assert result["status"] == "ok"


# -- constant covariates: bit-identical to the baseline path ---------------------------------
def test_constant_covariates_are_bit_identical_to_the_baseline_path(tmp_path):
    text = """ID,TIME,EVID,AMT,DV,WT,CRP,ALB,ADA
P1,0,1,350,.,70,30,3.5,0
P1,7,2,.,.,70,30,3.5,0
P1,13.9,0,.,9.5,70,30,3.5,0
P1,14,1,350,.,70,30,3.5,0
P1,27.9,0,.,4.5,70,30,3.5,0
"""
    _, patient = read(tmp_path, text)
    decl = load_declaration("wojciechowski2017")
    covariates = baseline_covariates(patient, decl)
    common = {"attach_outcome": True, "random_seed": 11}
    base = forecast_library_patient(decl, patient, covariates, **common).to_json()
    for convention in ("nonmem", "locf"):
        schedule = covariate_schedule(patient, decl, convention=convention)
        tv = forecast_library_patient(
            decl, patient, covariates, schedule=schedule, **common
        ).to_json()
        assert tv["covariates"]["time_varying"] is False
        assert tv["covariates"]["convention"] == convention
        for key in set(base) - {"covariates", "notes"}:
            assert tv[key] == base[key], key


# -- steady state and resets against solve_ivp ----------------------------------------------
def _problem_of(tmp_path, text, name):
    _, patient = read(tmp_path, text, name)
    return problem_for(patient, "nonmem")


CONST = "70,30,3.5,0"
REC = {"WT": 70.0, "ALB": 3.5, "ADA": 0.0}


def _history(start, interval, amount, n=60):
    """The explicit train behind a steady-state dose: n doses every ``interval`` up to it."""
    return [(start - k * interval, amount, H2) for k in range(n)]


def test_ss1_equals_a_long_explicit_history(tmp_path):
    text = f"""ID,TIME,EVID,AMT,DV,SS,II,WT,CRP,ALB,ADA
P1,0,1,350,.,0,0,{CONST}
P1,30,1,400,.,1,28,{CONST}
P1,40,0,.,10,0,0,{CONST}
"""
    problem = _problem_of(tmp_path, text, "ss1.csv")
    times = (29.0, 30.0, 30.05, 35.0, 57.9, 70.0)
    got = problem.predict(ETA, times)
    # SS=1 resets: the day-0 dose is gone; the train every 28 days up to day 30 remains
    want, _ = ode(_history(30.0, 28.0, 400.0), [(0.0, REC)], "nonmem", times)
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-7)
    # before the SS=1 dose only the day-0 dose acts
    assert got[0] == pytest.approx(ode([(0.0, 350.0, H2)], [(0.0, REC)], "nonmem", (29.0,))[0][0],
                                   rel=1e-8)  # fmt: skip


def test_ss2_adds_the_train_to_what_is_there(tmp_path):
    text = f"""ID,TIME,EVID,AMT,DV,SS,II,WT,CRP,ALB,ADA
P1,0,1,350,.,0,0,{CONST}
P1,30,1,400,.,2,28,{CONST}
P1,40,0,.,10,0,0,{CONST}
"""
    problem = _problem_of(tmp_path, text, "ss2.csv")
    times = (29.0, 30.0, 35.0, 57.9, 70.0)
    got = problem.predict(ETA, times)
    history = [(0.0, 350.0, H2), *_history(30.0, 28.0, 400.0)]
    want, _ = ode(history, [(0.0, REC)], "nonmem", times)
    # the train's virtual doses before day 30 are not in the data: compare from day 30 on
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-7)
    assert got[1] > ode([(0.0, 350.0, H2)], [(0.0, REC)], "nonmem", (30.0,))[0][0]


def test_evid3_and_evid4_resets_match_solve_ivp(tmp_path):
    text = f"""ID,TIME,EVID,AMT,DV,WT,CRP,ALB,ADA
P1,0,1,350,.,{CONST}
P1,14,1,350,.,{CONST}
P1,20,3,.,.,{CONST}
P1,28,1,350,.,{CONST}
P1,35,0,.,12,{CONST}
P1,40,4,500,.,{CONST}
P1,50,0,.,12,{CONST}
"""
    problem = _problem_of(tmp_path, text, "reset.csv")
    times = (19.9, 20.0, 27.0, 28.0, 35.0, 39.99, 40.0, 40.05, 50.0)
    got = problem.predict(ETA, times)
    doses = [(0.0, 350.0, H2), (14.0, 350.0, H2), (28.0, 350.0, H2), (40.0, 500.0, H2)]
    want, _ = ode(doses, [(0.0, REC)], "nonmem", times, resets=(20.0, 40.0))
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    assert got[1] == 0.0 and got[2] == 0.0  # nothing left after the EVID 3 reset


def test_resets_with_time_varying_covariates_match_solve_ivp(tmp_path):
    text = """ID,TIME,EVID,AMT,DV,WT,CRP,ALB,ADA
P1,0,1,350,.,70,30,3.8,0
P1,10,2,.,.,70,30,3.0,1
P1,20,3,.,.,70,30,3.0,1
P1,28,1,350,.,70,30,2.5,1
P1,40,4,500,.,70,30,3.5,0
P1,50,0,.,12,70,30,3.5,0
"""
    _, patient = read(tmp_path, text, "reset_tv.csv")
    times = (5.0, 19.9, 28.0, 35.0, 40.0, 45.0, 50.0)
    doses = [(0.0, 350.0, H2), (28.0, 350.0, H2), (40.0, 500.0, H2)]
    for convention in ("nonmem", "locf"):
        got = problem_for(patient, convention).predict(ETA, times)
        want, _ = ode(doses, records_of(patient), convention, times, resets=(20.0, 40.0))
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("convention", ["nonmem", "locf"])
def test_steady_state_under_changing_covariates_uses_the_ss_records_values(tmp_path, convention):
    """NONMEM computes a steady state with the SS record's own parameters; so does LOCF (the
    record's values hold from it on). Reference: the explicit train under those values."""
    text = """ID,TIME,EVID,AMT,DV,SS,II,WT,CRP,ALB,ADA
P1,20,2,.,.,0,0,70,30,3.8,0
P1,30,1,400,.,1,28,70,30,3.0,0
P1,40,0,.,10,0,0,70,30,2.6,1
P1,50,0,.,10,0,0,70,30,2.6,1
"""
    _, patient = read(tmp_path, text, "ss_tv.csv")
    times = (30.0, 30.05, 35.0, 40.0, 45.0, 57.9, 70.0)
    got = problem_for(patient, convention).predict(ETA, times)
    # from day 30 on, the records at and after the SS record give the same step function as
    # the patient's; before it, the train ran under the SS record's values
    records = [r for r in records_of(patient) if r[0] >= 30.0]
    want, _ = ode(_history(30.0, 28.0, 400.0), records, convention, times)
    np.testing.assert_allclose(got, want, rtol=1e-7)


# -- MAP against scipy on a solve_ivp density -------------------------------------------------
def test_map_matches_scipy_on_an_ode_density(tmp_path):
    _, patient = read(tmp_path)
    problem = problem_for(patient, "nonmem")
    obs_t = tuple(float(t) for t in problem.time_day)
    y = problem.value_mg_l
    doses, records = doses_of(patient), records_of(patient)

    def log_post(eta):
        f, _ = ode(doses, records, "nonmem", obs_t, eta=eta)
        sd = SIGMA_PROP * f
        ll = np.sum(-np.log(sd) - 0.5 * math.log(2 * math.pi) - 0.5 * ((y - f) / sd) ** 2)
        prior = -0.5 * np.sum(eta**2 / OMEGA) - 0.5 * np.sum(np.log(2 * math.pi * OMEGA))
        return prior + ll

    # the densities agree (not just up to a constant) at random points
    rng = np.random.default_rng(5)
    points = rng.normal(0.0, np.sqrt(OMEGA), (3, 4))
    np.testing.assert_allclose(problem.log_posterior(points), [log_post(e) for e in points],
                               rtol=1e-9)  # fmt: skip
    mode = find_map(problem.log_posterior, problem.omega)
    # scipy's own search, from the prior mode, on the ODE density
    ref = scipy.optimize.minimize(
        lambda e: -log_post(e),
        np.zeros(4),
        method="L-BFGS-B",
        options={"eps": 1e-6, "gtol": 1e-6, "ftol": 1e-14},
    )
    assert ref.success
    np.testing.assert_allclose(mode.eta, ref.x, atol=1e-4)
    assert mode.log_density == pytest.approx(-ref.fun, abs=1e-8)
    assert np.abs(mode.eta).max() > 0.05  # the data move the MAP away from the prior mode


@pytest.mark.slow  # ~30 s: PyTensor compiles the unrolled propagation
def test_pymc_graph_matches_numpy_under_time_varying_covariates(tmp_path):
    from asuc_bayes.inference.pymc_model import build_pymc_model

    _, patient = read(tmp_path)
    problem = problem_for(patient, "nonmem")
    model = build_pymc_model(problem)
    logp = model.compile_logp()
    for eta in (ETA, np.zeros(4), -0.5 * ETA):
        assert logp({"eta": eta}) == pytest.approx(float(problem.log_posterior(eta)), abs=1e-9)


# -- the command line -----------------------------------------------------------------------
def test_cli_locf_exits_0_and_reports_it(tmp_path, capsys):
    path, _ = read(tmp_path)
    code = main(["forecast", str(path), "--model", "wojciechowski2017", "--covariates", "locf",
                 "--format", "json", "--seed", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == EXIT_OK
    (entry,) = json.loads(out)["patients"]
    assert entry["covariates"]["convention"] == "locf" and entry["covariates"]["time_varying"]
    assert "NaN" not in out and "Infinity" not in out


def test_cli_invalid_covariates_value_exits_2_naming_the_option(tmp_path, capsys):
    path, _ = read(tmp_path)
    code = main(["forecast", str(path), "--model", "wojciechowski2017", "--covariates", "last"])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and "--covariates last" in err and "nonmem, locf" in err
    assert "Traceback" not in err


def test_cli_steady_state_is_no_longer_refused_by_the_library_path(tmp_path, capsys):
    text = f"""ID,TIME,EVID,AMT,DV,SS,II,WT,CRP,ALB,ADA
P1,0,1,350,.,1,56,{CONST}
P1,40,0,.,6,0,0,{CONST}
"""
    path = tmp_path / "ss.csv"
    path.write_text(text)
    code = main(["forecast", str(path), "--model", "wojciechowski2017", "--format", "json"])
    assert code == EXIT_OK, capsys.readouterr().err


def test_implausible_albumin_in_a_later_record_names_the_row(tmp_path, capsys):
    path, _ = read(tmp_path, CSV.replace("P1,30,2,.,.,64,30,2.6,1", "P1,30,2,.,.,64,30,26,1"))
    code = main(["forecast", str(path), "--model", "wojciechowski2017"])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT and "row 8, field ALB: 26 g/dL" in err, err


def test_asuc_model_uses_baseline_values_and_says_so(tmp_path):
    _, patient = read(tmp_path)
    decl = load_declaration("niyigena2025")
    schedule = covariate_schedule(patient, decl)
    assert schedule.change_day == () and schedule.baseline_only == ("WT",)
    problem = PatientProblem.from_patient(decl, patient, schedule=schedule)
    assert not problem.time_varying
    from asuc_bayes.inference.library_forecast import covariate_use

    notes = covariate_use(problem).notes(decl.label)
    assert any("WT vary between records" in n and "baseline values" in n for n in notes)


def test_change_side_left_is_the_same_by_expm_and_closed_form():
    """The ``change_side`` of :func:`asuc_bayes.pk.propagate` (used by the NONMEM convention)
    gives the same numbers from both sources of the segment propagators, with a sample and a
    steady-state dose at a change time."""
    from asuc_bayes.pk import DoseArrays, TwoCompartment, propagate

    doses = DoseArrays(start_day=[0.0, 30.0], amount_mg=[350.0, 400.0], duration_day=[H2, H2],
                       steady_state_interval_day=[0.0, 28.0], end_day=[30.0, np.inf])  # fmt: skip
    params = {"cl": [0.3, 0.5, 0.4], "v1": [3.3, 3.0, 3.6], "q": [0.07, 0.07, 0.09],
              "v2": [1.1, 1.2, 1.1]}  # fmt: skip
    times = [10.0, 20.0, 30.0, 31.0, 45.0]
    out = {}
    for side in ("left", "right"):
        for method in ("expm", "closed_form"):
            result = propagate(
                TwoCompartment(), doses, params, [20.0, 30.0], times, method=method,
                change_side=side,
            )  # fmt: skip
            out[side, method] = result.concentration
        np.testing.assert_allclose(out[side, "expm"], out[side, "closed_form"], rtol=1e-10)
    left, right = out["left", "expm"], out["right", "expm"]
    assert left[0] == right[0]  # away from a change time the side does not matter
    assert left[1] != right[1]  # at day 20: amount / V1 of the old piece against the new
    assert left[1] * 3.3 == pytest.approx(right[1] * 3.0, rel=1e-12)  # the same amount


def test_covariates_option_says_it_has_no_effect_under_the_asuc_model(capsys):
    from asuc_bayes.interfaces.cli import main

    assert main(["forecast", "--example", "--id", "P01", "--covariates", "locf"]) == 0
    err = capsys.readouterr().err
    assert "--covariates locf has no effect here" in err and "baseline WT and CRP" in err
