"""Dosing to a target risk: recommendations checked on the draws through the full-regimen
kernel, against the exact quadrature posterior, the MAP by brute force, timing, regimens,
troughs, the pre-posterior sampling analysis against an exact grid computation, bad requests
and the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

from asuc_bayes.data.dataset import BELOW_LLOQ, MEASURED, Dose
from asuc_bayes.decisions.dosing import (
    REGIMEN_TEMPLATES,
    DosingError,
    DosingRequest,
    PlanOptions,
    check_request,
    compare_regimens,
    default_sampling_days,
    infusion_timing,
    plan_dosing,
    recommend_dose,
    sampling_value,
    trough_targets,
    with_dose,
)
from asuc_bayes.inference.forecast import (
    PatientForecast,
    SamplerSettings,
    derived_quantities,
    patient_seed,
)
from asuc_bayes.inference.grid import derived_on_grid, grid_posterior, observation_log_likelihood
from asuc_bayes.interfaces.cli import main
from asuc_bayes.interfaces.report import format_dosing
from asuc_bayes.pk.kernels import concentration
from asuc_bayes.spec.residual import add_residual_error

from conftest import INFUSION_DAY, REFERENCE_PATIENTS

#: Patients whose decision at day 14 is after their last sample (and a prior-only one).
DOSING_PATIENTS = ("one_sample", "blq_sample", "alq_sample", "no_sample", "accelerated")


@pytest.fixture(scope="module")
def forecasts(forecaster):
    settings = SamplerSettings(draws=2500)
    return {
        name: forecaster.forecast(
            REFERENCE_PATIENTS[name], random_seed=patient_seed(7, name), settings=settings
        )
        for name in DOSING_PATIENTS
    }


def _eta_draws(result: PatientForecast) -> np.ndarray:
    return result.tree["posterior"]["eta"].values.reshape(-1, 2)


def _risk_with_dose(result: PatientForecast, dose_mg: float, day: float = 14.0) -> np.ndarray:
    """Per-draw 90-day risk with ``dose_mg`` at ``day``: the full regimen through the kernels."""
    patient = with_dose(result.patient, day, dose_mg, INFUSION_DAY)
    return derived_quantities(result.spec, patient, _eta_draws(result))["risk_90d"]


def _vial_range(request: DosingRequest, weight_kg: float) -> tuple[int, int]:
    """(first, last) whole-vial counts: the minimum rounded up, the cap rounded down."""
    first = math.ceil(request.min_mg_per_kg * weight_kg / request.vial_mg - 1e-9)
    return first, math.floor(request.max_mg_per_kg * weight_kg / request.vial_mg + 1e-9)


def _meets(risk: np.ndarray, request: DosingRequest) -> bool:
    if request.criterion == "mean":
        return bool(risk.mean() <= request.target_risk)
    return bool((risk <= request.target_risk).mean() >= request.probability)


REQUESTS = (
    DosingRequest(),
    DosingRequest(criterion="probability", probability=0.8),
    DosingRequest(target_risk=0.12, criterion="probability", probability=0.9),
    DosingRequest(target_risk=0.02),  # not reachable for anyone
)


@pytest.mark.parametrize("name", DOSING_PATIENTS)
@pytest.mark.parametrize("request_index", range(len(REQUESTS)))
def test_recommended_dose_meets_criterion_and_one_vial_less_does_not(
    name, request_index, forecasts
):
    request = REQUESTS[request_index]
    result = forecasts[name]
    rec = recommend_dose(result, request)
    assert rec.monotone
    assert rec.dose_mg % request.vial_mg == 0
    first, cap = _vial_range(request, result.patient.weight_kg)
    # Never below the minimum (5 mg/kg by default), never 0 mg.
    assert rec.dose_mg >= request.min_mg_per_kg * result.patient.weight_kg > 0
    if rec.feasible:
        assert _meets(_risk_with_dose(result, rec.dose_mg), request)
        less = _meets(_risk_with_dose(result, rec.dose_mg - request.vial_mg), request)
        assert rec.met_at_minimum == (rec.dose_mg == first * request.vial_mg)
        if not rec.met_at_minimum:
            assert not less
        else:
            assert any("already met at the minimum dose" in note for note in rec.notes)
    else:
        assert rec.dose_mg == cap * request.vial_mg
        assert not _meets(_risk_with_dose(result, rec.dose_mg), request)
        assert any("not met at the cap" in note for note in rec.notes)
    # The curve's statistics are those of the draws through the full-regimen kernel.
    row = rec.curve[rec.curve["dose_mg"] == rec.dose_mg].iloc[0]
    risk = _risk_with_dose(result, rec.dose_mg)
    assert row["risk_mean"] == pytest.approx(risk.mean(), rel=1e-9)
    assert rec.risk_90d["q97.5"] == pytest.approx(np.quantile(risk, 0.975), rel=1e-9)


def test_unreachable_target_is_reported_infeasible(forecasts):
    rec = recommend_dose(forecasts["one_sample"], target_risk=0.02)
    assert not rec.feasible and not rec.map_feasible
    assert rec.to_json()["feasible"] is False


@pytest.mark.parametrize("name", DOSING_PATIENTS)
def test_map_recommendation_matches_brute_force_on_the_map(name, forecasts):
    result = forecasts[name]
    rec = recommend_dose(result)
    eta_map = result.tree["point_estimates"]["eta"].sel(estimate="map").values
    first, cap = _vial_range(rec.request, result.patient.weight_kg)
    assert len(rec.curve) == cap - first + 1
    for row, vials in enumerate(range(first, cap + 1)):
        patient = with_dose(result.patient, 14.0, 100.0 * vials, INFUSION_DAY)
        risk = float(derived_quantities(result.spec, patient, eta_map)["risk_90d"])
        assert rec.curve["map_risk"][row] == pytest.approx(risk, rel=1e-9)
        if risk <= 0.2:
            assert rec.map_dose_mg == 100.0 * vials
            break
    else:
        assert not rec.map_feasible


def _grid_recommendation(spec, patient, request, n_points=201):
    """Recommendation from the exact quadrature posterior: independent of the draws."""
    grid = grid_posterior(spec, patient, n_points=n_points)
    mesh = np.meshgrid(grid.eta_cl, grid.eta_v, indexing="ij")
    first_vials, n_vials = _vial_range(request, patient.weight_kg)
    values = []
    for vials in range(first_vials, n_vials + 1):
        modified = with_dose(patient, 14.0, vials * request.vial_mg, INFUSION_DAY)
        at_dose = replace(grid, derived=derived_on_grid(spec, modified, *mesh))
        if request.criterion == "mean":
            values.append(at_dose.expectation("risk_90d"))
        else:
            values.append(at_dose.cdf("risk_90d", request.target_risk))
    values = np.array(values)
    if request.criterion == "mean":
        meets = values <= request.target_risk
    else:
        meets = values >= request.probability
    first = first_vials + int(np.argmax(meets)) if meets.any() else None
    return first, values, first_vials


@pytest.mark.parametrize("name", DOSING_PATIENTS)
@pytest.mark.parametrize("request_index", range(3))
def test_recommendation_agrees_with_the_exact_grid_posterior(name, request_index, forecasts):
    request = REQUESTS[request_index]
    result = forecasts[name]
    rec = recommend_dose(result, request)
    first, values, offset = _grid_recommendation(result.spec, result.patient, request)
    ours = round(rec.dose_mg / request.vial_mg) if rec.feasible else None
    if ours == first:
        return
    # A one-vial difference is allowed only where the exact criterion value at the disputed
    # dose is within Monte Carlo error (10 000 draws) of its threshold.
    assert ours is not None and first is not None and abs(ours - first) == 1, (ours, first)
    disputed = min(ours, first)
    if request.criterion == "mean":
        risk = _risk_with_dose(result, disputed * request.vial_mg)
        tolerance = 4 * risk.std() / math.sqrt(risk.size / 2)  # ESS ~ draws/2 for NUTS
        assert abs(values[disputed - offset] - request.target_risk) <= tolerance
    else:
        p = request.probability
        assert abs(values[disputed - offset] - p) <= 4 * math.sqrt(p * (1 - p) / 5000)


def test_monotonicity_is_checked_not_assumed(forecasts):
    """Per-draw TTE parameters with a positive exposure effect make risk rise with the dose:
    the check must say so (and it reads per-draw parameters from the posterior group)."""
    result = forecasts["one_sample"]
    tree = result.tree.copy()
    posterior = tree["posterior"].to_dataset()
    shape = posterior["cl"].shape
    posterior["tte_beta"] = (("chain", "draw"), np.full(shape, 0.56))
    posterior["tte_lambda"] = (("chain", "draw"), np.full(shape, 0.00112))
    posterior["tte_gamma"] = (("chain", "draw"), np.full(shape, 1.08))
    tree["posterior"] = posterior
    flipped = replace(result, tree=tree)
    rec = recommend_dose(flipped)
    assert not rec.monotone
    assert np.all(np.diff(rec.curve["risk_mean"]) > 0)
    assert any("not monotone" in note for note in rec.notes)
    # β = 0 per draw: the dose cannot move the risk at all.
    posterior["tte_beta"] = (("chain", "draw"), np.zeros(shape))
    tree["posterior"] = posterior
    flat = recommend_dose(replace(result, tree=tree))
    assert np.ptp(flat.curve["risk_mean"]) < 1e-12


def test_timing_search_against_the_full_regimen(forecasts):
    result = forecasts["one_sample"]  # doses 0, 14, 42; sample at day 7
    days = np.arange(7.0, 15.0)
    timing = infusion_timing(result, 600.0, days)
    for row in timing.table.to_dict(orient="records"):
        moved = with_dose(
            with_dose(result.patient, 14.0, 0.0, INFUSION_DAY), row["time_day"], 600.0, INFUSION_DAY
        )
        risk = derived_quantities(result.spec, moved, _eta_draws(result))["risk_90d"]
        assert row["risk_mean"] == pytest.approx(risk.mean(), rel=1e-9)
        assert row["meets_target"] == (risk.mean() <= 0.2)
    # AUC over days 14-28 is largest for an infusion at day 14: risk falls towards day 14.
    assert np.all(np.diff(timing.table["risk_mean"]) < 0)
    meeting = timing.table["time_day"][timing.table["meets_target"]]
    assert timing.latest_day == (meeting.max() if len(meeting) else None)
    assert timing.earliest_day == (meeting.min() if len(meeting) else None)


def test_timing_excludes_days_overlapping_another_infusion(forecasts):
    result = forecasts["no_sample"]  # doses 0, 14, 42, no sample
    request = DosingRequest(dose_time_day=42.0)
    timing = infusion_timing(result, 700.0, [13.95, 14.0, 21.0, 28.0], request=request)
    overlaps = dict(zip(timing.table["time_day"], timing.table["overlaps_infusion"], strict=True))
    assert overlaps == {13.95: True, 14.0: True, 21.0: False, 28.0: False}
    assert not timing.table["meets_target"][timing.table["overlaps_infusion"]].any()


def test_regimen_table_against_hand_built_regimens(forecasts):
    result = forecasts["one_sample"]  # 63 kg, 600 mg at 0, sample at day 7
    comparison = compare_regimens(result)
    table = comparison.table.set_index("name")
    summary = result.summary()
    assert table.loc["as_given", "risk_mean"] == pytest.approx(
        summary["posterior"]["risk_90d"]["mean"], rel=1e-9
    )
    standard = next(t for t in REGIMEN_TEMPLATES if t.name == "standard_5")
    # Day 0 given (before the day-7 sample); 5 mg/kg x 63 kg = 315 mg -> 4 vials at 14 and 42.
    expected = [(0.0, 600.0), (14.0, 400.0), (42.0, 400.0)]
    assert [(d["day"], d["mg"]) for d in comparison.doses[standard.name]] == expected
    patient = replace(result.patient, doses=tuple(Dose(t, a, INFUSION_DAY) for t, a in expected))
    risk = derived_quantities(result.spec, patient, _eta_draws(result))["risk_90d"]
    assert table.loc["standard_5", "risk_mean"] == pytest.approx(risk.mean(), rel=1e-9)
    rec = recommend_dose(result)
    assert table.loc["recommended", "risk_mean"] == pytest.approx(rec.risk_90d["mean"], rel=1e-9)


def _direct_troughs(result, start, dose_mg, interval, maintenance_doses=1) -> np.ndarray:
    """Per-draw trough through the concentration kernel on the full regimen: the doses before
    ``start`` as given, then ``maintenance_doses`` infusions of ``dose_mg`` every ``interval``."""
    given = [d for d in result.patient.doses if d.time_day < start]
    planned = [start + k * interval for k in range(maintenance_doses)]
    times = np.array([d.time_day for d in given] + planned)
    amounts = np.array([d.amount_mg for d in given] + [dose_mg] * maintenance_doses)
    posterior = result.tree["posterior"]
    cl, v = posterior["cl"].values.ravel(), posterior["v"].values.ravel()
    trough_day = np.array([start + maintenance_doses * interval])
    return concentration(trough_day, times, amounts, np.full(times.size, INFUSION_DAY), cl, v)[:, 0]


def _check_dose_table(result, plan, start, interval, maintenance_doses=1) -> list[float]:
    """Every row of the dose–trough table against the kernel; returns P(trough >= target)."""
    probabilities = []
    for row in plan.dose_table.to_dict(orient="records"):
        troughs = _direct_troughs(result, start, row["dose_mg"], interval, maintenance_doses)
        for label, q in (("2.5", 0.025), ("50", 0.5), ("97.5", 0.975)):
            assert row[f"trough_q{label}"] == pytest.approx(np.quantile(troughs, q), rel=1e-9)
        p = float((troughs >= plan.target_mg_l).mean())
        assert row["p_trough_above_target"] == pytest.approx(p, abs=1e-12)
        probabilities.append(p)
    return probabilities


def test_trough_reachable_dose_and_interval_against_the_concentration_kernel(forecasts):
    result = forecasts["one_sample"]  # 63 kg; 600 mg at 0, 14, 42; sample at day 7
    request = DosingRequest(dose_time_day=14.0, probability=0.8, max_mg_per_kg=40.0)
    plan = trough_targets(result, 10.0, interval_day=28.0, request=request)
    first, cap = _vial_range(request, 63.0)
    assert list(plan.dose_table["dose_mg"]) == [100.0 * n for n in range(first, cap + 1)]
    probabilities = _check_dose_table(result, plan, 14.0, 28.0)
    meets = [p >= 0.8 for p in probabilities]
    assert plan.status == "reachable" and plan.dose_feasible  # neither the minimum nor none
    assert plan.dose_mg == plan.dose_table["dose_mg"][meets.index(True)]
    assert not meets[0] and plan.dose_mg > 100.0 * first
    troughs = _direct_troughs(result, 14.0, plan.dose_mg, 28.0)
    assert plan.trough_mg_l["q50"] == pytest.approx(np.median(troughs), rel=1e-9)
    # The longest interval with that dose: met at it, not one day longer.
    longest = plan.longest_interval_day
    assert longest is not None and longest >= 28.0
    assert (_direct_troughs(result, 14.0, plan.dose_mg, longest) >= 10.0).mean() >= 0.8
    assert (_direct_troughs(result, 14.0, plan.dose_mg, longest + 1.0) >= 10.0).mean() < 0.8
    assert plan.answer.startswith(f"{plan.dose_mg:g} mg")
    assert f"the longest interval reaching the target is {longest:g} days" in plan.answer
    assert any(
        "replaces the planned infusions" in n and "600 mg at day 42" in n for n in plan.notes
    )


def test_trough_not_reachable_at_the_cap_says_what_the_cap_achieves(forecasts):
    result = forecasts["one_sample"]
    request = DosingRequest(dose_time_day=42.0, probability=0.8)  # cap 20 mg/kg: 1200 mg
    plan = trough_targets(result, 10.0, interval_day=56.0, request=request)
    probabilities = _check_dose_table(result, plan, 42.0, 56.0)
    assert max(probabilities) < 0.8  # the kernel agrees: no dose up to the cap reaches it
    assert plan.status == "not_reachable" and not plan.dose_feasible
    assert plan.dose_mg == 1200.0 == plan.interval_dose_mg
    at_cap = _direct_troughs(result, 42.0, 1200.0, 56.0)
    assert plan.p_trough_above_target == pytest.approx((at_cap >= 10.0).mean(), abs=1e-12)
    assert plan.trough_mg_l["q97.5"] == pytest.approx(np.quantile(at_cap, 0.975), rel=1e-9)
    # The interval the cap needs: brute force over the same candidates (7-84 days).
    meeting = [
        interval
        for interval in range(7, 85)
        if (_direct_troughs(result, 42.0, 1200.0, float(interval)) >= 10.0).mean() >= 0.8
    ]
    assert meeting and plan.longest_interval_day == max(meeting)
    assert plan.answer.startswith("Not reachable at the cap: 1200 mg (19.0 mg/kg)")
    assert f"longest interval reaching the target is {max(meeting)} days" in plan.answer
    # The text output leads with that answer; no risk sections, no "0 mg".
    plan_text = format_dosing([plan_dosing(result, request, _trough_options(10.0))], result.spec)
    assert "ANSWER: Not reachable at the cap" in plan_text
    for absent in ("RECOMMENDED", "mean risk", "timing of", " 0 mg", "MAP", "is the one chosen"):
        assert absent not in plan_text, absent
    assert "median trough" in plan_text and "P(>=target)" in plan_text


def test_trough_target_met_at_the_minimum_dose(forecasts):
    result = forecasts["one_sample"]
    request = DosingRequest(dose_time_day=14.0, min_mg_per_kg=5.0)
    plan = trough_targets(result, 0.5, interval_day=21.0, request=request)
    probabilities = _check_dose_table(result, plan, 14.0, 21.0)
    assert probabilities[0] >= 0.8
    assert plan.status == "met_at_minimum" and plan.dose_mg == 400.0  # 315 mg rounded up
    assert plan.answer.startswith("The target is already met at the minimum dose: 400 mg")
    assert plan.longest_interval_day >= 21.0


def _trough_options(target: float) -> PlanOptions:
    return PlanOptions(trough_target_mg_l=target, trough_interval_day=56.0)


def test_minimum_dose_is_never_undercut_and_never_zero(forecasts):
    """A target every dose meets: the minimum is recommended (with a note), never 0 mg; the
    MAP recommendation too; a minimum that no whole-vial dose under the cap satisfies is an
    error naming the options."""
    result = forecasts["one_sample"]
    rec = recommend_dose(result, DosingRequest(target_risk=0.9, min_mg_per_kg=3.0))
    assert rec.feasible and rec.met_at_minimum and rec.map_met_at_minimum
    assert rec.dose_mg == rec.map_dose_mg == 200.0  # 3 mg/kg x 63 kg = 189 mg -> 2 vials
    assert rec.curve["dose_mg"].min() == 200.0
    entry = rec.to_json()
    assert entry["recommended"]["met_at_minimum"] and entry["dose_range_mg"] == [200.0, 1200.0]
    text = format_dosing([plan_dosing(result, rec.request)], result.spec)
    assert "TARGET ALREADY MET AT THE MINIMUM DOSE" in text and " 0 mg" not in text
    with pytest.raises(DosingError, match=r"no whole-vial dose.*--min-mg-kg"):
        check_request(result.patient, result.spec, DosingRequest(min_mg_per_kg=5, max_mg_per_kg=5))


def test_sampling_day_must_leave_time_for_the_assay_result(forecasts):
    """Day 13.9 is the most informative candidate before a day-14 dose, but its result (1 day
    turnaround) arrives after that dose: day 13 is recommended instead."""
    result = forecasts["no_sample"]
    days = [1.0, 7.0, 13.0, 13.9]
    instant = sampling_value(result, days, n_simulations=200, turnaround_day=0.0)
    assert instant.recommended_day == 13.9
    assert instant.table["result_in_time"].all()
    late = sampling_value(result, days, n_simulations=200, turnaround_day=1.0)
    assert late.latest_useful_day == 13.0
    assert list(late.table["result_in_time"]) == [True, True, True, False]
    in_time = late.table[late.table["result_in_time"]]
    assert late.recommended_day == in_time["time_day"][in_time["expected_sd_reduction"].idxmax()]
    assert late.recommended_day != 13.9
    assert any("arrives after the dose at day 14" in note for note in late.notes)
    entry = late.to_json()
    assert entry["latest_useful_day"] == 13.0 and entry["turnaround_days"] == 1.0
    # Nothing in time: no recommendation, and the output says why.
    none = sampling_value(result, [13.5, 13.9], n_simulations=50, turnaround_day=1.0)
    assert none.recommended_day is None
    assert "no candidate day leaves time" in "\n".join(
        format_dosing([replace(plan_dosing(result), sampling=none)], result.spec).splitlines()
    )
    # The default candidate days end at the latest useful day.
    assert default_sampling_days(result.patient, DosingRequest(), turnaround_day=2.0).max() == 12.0


@pytest.fixture(scope="module")
def low_dose_prior_only(forecaster):
    """No sample, 300 mg doses: P(high risk) ≈ 0.24, so one sample can change the class."""
    patient = REFERENCE_PATIENTS["no_sample"]
    patient = replace(patient, doses=tuple(replace(d, amount_mg=300.0) for d in patient.doses))
    return forecaster.forecast(patient, random_seed=3, settings=SamplerSettings(draws=2500))


@pytest.mark.parametrize(("name", "day"), [("one_sample", 12.0), ("low_dose_prior_only", 13.9)])
def test_sampling_value_against_an_exact_grid_preposterior(name, day, forecasts, request):
    """Expected posterior SD of ln(AUC/CL) after one more sample, and the probability that the
    risk class changes: reweighted posterior draws (the engine) against the exact quadrature
    posterior updated on each of its own simulated samples."""
    if name in forecasts:
        result = forecasts[name]
    else:
        result = request.getfixturevalue(name)
    spec, patient = result.spec, result.patient
    n_sim, lloq = 400, 0.3
    analysis = sampling_value(result, [day], n_simulations=n_sim, lloq_mg_l=lloq)
    row = analysis.table.iloc[0]

    grid = grid_posterior(spec, patient, n_points=151)
    weights = grid.weights.ravel()
    ln_ratio = grid.derived["ln_auc_cl"].ravel()
    cl, v = grid.derived["cl"].ravel(), grid.derived["v"].ravel()
    f = concentration(
        np.array([day]),
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        cl,
        v,
    )[:, 0]
    rng = np.random.default_rng(11)
    truth = rng.choice(weights.size, size=n_sim, p=weights)
    values = add_residual_error(f[truth], 0.44, "proportional", rng)
    below = values < lloq
    recorded = np.where(below, lloq, values)
    censoring = np.where(below, BELOW_LLOQ, MEASURED)
    sds, classes = [], []
    high_now = np.sum(weights * (ln_ratio < 5.79)) >= 0.5
    for value, code in zip(recorded, censoring, strict=True):
        log_w = np.log(weights + 1e-300) + observation_log_likelihood(
            value, code, f, 0.44, "proportional"
        )
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        mean = w @ ln_ratio
        sds.append(math.sqrt(max(w @ ln_ratio**2 - mean**2, 0.0)))
        classes.append((w @ (ln_ratio < 5.79) >= 0.5) != high_now)
    sds = np.array(sds)
    tolerance = 4 * math.sqrt(2) * sds.std() / math.sqrt(n_sim) + 0.01
    assert row["expected_sd_ln_auc_cl"] == pytest.approx(sds.mean(), abs=tolerance)
    assert analysis.current_sd_ln_auc_cl == pytest.approx(
        grid.summary()["ln_auc_cl"]["sd"], rel=0.05
    )
    p = np.mean(classes)
    assert abs(row["p_class_change"] - p) <= 4 * math.sqrt(max(p * (1 - p), 0.01) * 2 / n_sim)
    if name == "low_dose_prior_only":
        assert 0.05 < p < 0.4  # the comparison is not between two zeros
    assert row["particle_ess_median"] > 200


def test_sampling_value_recommends_the_most_informative_day(forecasts):
    analysis = sampling_value(
        forecasts["no_sample"], [1.0, 7.0, 13.9], n_simulations=200, turnaround_day=0.0
    )
    table = analysis.table
    best = table["time_day"][table["expected_sd_reduction"].idxmax()]
    assert analysis.recommended_day == best
    # One sample always narrows the prior of ln(AUC/CL) on average.
    assert (table["expected_sd_ln_auc_cl"] < analysis.current_sd_ln_auc_cl).all()


def test_plan_json_contract_and_tree_round_trip(forecasts, tmp_path):
    plan = plan_dosing(
        forecasts["one_sample"],
        DosingRequest(criterion="probability"),
        PlanOptions(sample_days=(10.0, 13.0), n_simulations=100),
    )
    entry = json.loads(json.dumps(plan.to_json()))
    assert entry["mode"] == "risk" and entry["min_mg_kg"] == 5.0
    for key in ("id", "target_risk", "criterion", "feasible", "recommended", "map_recommended"):
        assert key in entry
    assert set(entry["recommended"]) >= {
        "dose_mg",
        "dose_mg_kg",
        "time_day",
        "risk_90d",
        "p_high_risk",
    }
    assert set(entry["recommended"]["risk_90d"]) == {"mean", "sd", "q2.5", "q50", "q97.5"}
    assert set(entry["map_recommended"]) >= {"dose_mg", "dose_mg_kg"}
    assert set(entry["curve"][0]) >= {
        "dose_mg",
        "risk_mean",
        "risk_q2.5",
        "risk_q97.5",
        "p_high_risk",
    }
    assert {"timing", "regimens", "next_sample", "status", "diagnostics"} <= set(entry)
    assert "trough" not in entry
    path = tmp_path / "dosing.nc"
    plan.to_tree().to_netcdf(path, engine="h5netcdf")
    loaded = xr.load_datatree(path, engine="h5netcdf")
    np.testing.assert_allclose(
        loaded["dosing/curve"]["risk_mean"].values, plan.recommendation.curve["risk_mean"]
    )
    assert loaded["dosing"].attrs["recommended_dose_mg"] == plan.recommendation.dose_mg
    assert loaded["dosing/sampling"].sizes["candidate_sample_day"] == 2
    # Trough mode: the trough plan alone, no risk recommendation.
    trough = plan_dosing(forecasts["one_sample"], DosingRequest(), _trough_options(3.0))
    entry = json.loads(json.dumps(trough.to_json()))
    assert entry["mode"] == "trough" and "recommended" not in entry and "curve" not in entry
    assert entry["trough"]["status"] in ("reachable", "met_at_minimum", "not_reachable")
    assert entry["trough"]["answer"] == trough.trough.answer
    assert set(entry["trough"]["for_interval"]["curve"][0]) >= {
        "dose_mg",
        "dose_mg_kg",
        "trough_q2.5",
        "trough_q50",
        "trough_q97.5",
        "p_trough_above_target",
        "meets_target",
    }
    trough.to_tree().to_netcdf(tmp_path / "trough.nc", engine="h5netcdf")
    loaded = xr.load_datatree(tmp_path / "trough.nc", engine="h5netcdf")
    assert loaded["dosing"].attrs["trough_status"] == trough.trough.status
    assert "dosing/curve" not in loaded


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target_risk": 0.0}, "--target-risk"),
        ({"target_risk": 1.0}, "--target-risk"),
        ({"target_risk": float("nan")}, "--target-risk"),
        ({"probability": 1.2}, "--probability"),
        ({"probability": 0.0}, "--probability"),
        ({"criterion": "median"}, "--criterion"),
        ({"vial_mg": 0.0}, "--vial-mg"),
        ({"max_mg_per_kg": -1.0}, "--max-mg-kg"),
        ({"dose_time_day": -2.0}, "--dose-time"),
        ({"min_mg_per_kg": 0.0}, "--min-mg-kg"),
        ({"min_mg_per_kg": -5.0}, "--min-mg-kg"),
        ({"min_mg_per_kg": float("nan")}, "--min-mg-kg"),
        ({"min_mg_per_kg": float("inf")}, "--min-mg-kg"),
        ({"min_mg_per_kg": True}, "--min-mg-kg"),
        ({"min_mg_per_kg": 25.0}, "--min-mg-kg"),  # above the 20 mg/kg cap
    ],
)
def test_bad_requests_name_the_option(options, message):
    with pytest.raises(DosingError, match=message):
        DosingRequest(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_simulations": 5}, "--n-simulations"),
        ({"lloq_mg_l": 1.0, "uloq_mg_l": 0.5}, "--uloq"),
        ({"trough_target_mg_l": -1.0}, "--trough-target"),
        ({"trough_target_mg_l": 5.0, "maintenance_doses": 0}, "--maintenance-doses"),
        ({"timing_days": ()}, "--timing-days"),
        ({"turnaround_day": -1.0}, "--turnaround-days"),
        ({"turnaround_day": float("nan")}, "--turnaround-days"),
        ({"trough_target_mg_l": 5.0, "next_sample": True}, "--next-sample"),
        ({"trough_target_mg_l": 5.0, "timing_days": (7.0,)}, "--timing-days"),
    ],
)
def test_bad_plan_options_name_the_option(options, message):
    with pytest.raises(DosingError, match=message):
        PlanOptions(**options)


def test_patient_level_request_errors(spec):
    sampled_late = REFERENCE_PATIENTS["several_samples"]  # last sample at day 41.8
    with pytest.raises(DosingError, match=r"before the last sample \(day 41.8\).*--dose-time"):
        check_request(sampled_late, spec, DosingRequest())
    light = replace(REFERENCE_PATIENTS["no_sample"], weight_kg=40.0)
    with pytest.raises(DosingError, match="below one vial"):
        check_request(light, spec, DosingRequest(max_mg_per_kg=2.0, min_mg_per_kg=1.0))
    with pytest.raises(DosingError, match="overlap the infusion at day 14"):
        check_request(REFERENCE_PATIENTS["no_sample"], spec, DosingRequest(dose_time_day=14.05))
    with pytest.raises(DosingError, match="must not precede the last sample"):
        infusion_timing(
            forecast=_fake_forecast(spec, REFERENCE_PATIENTS["one_sample"]), dose_mg=600, days=[5.0]
        )


def _fake_forecast(spec, patient) -> PatientForecast:
    """A forecast with prior draws (enough for request checks that need a forecast)."""
    rng = np.random.default_rng(0)
    eta = rng.normal(0.0, [spec.pk.omega_cl, spec.pk.omega_v], size=(2, 50, 2))
    derived = derived_quantities(spec, patient, eta)
    point = derived_quantities(spec, patient, np.zeros((2, 2)))
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({k: (("chain", "draw"), val) for k, val in derived.items()}),
            "point_estimates": xr.Dataset(
                {k: (("estimate",), val) for k, val in point.items()},
                coords={"estimate": ["map", "a_priori"]},
            ),
        }
    )
    return PatientForecast(patient=patient, tree=tree, status="ok", diagnostics={}, spec=spec)


def test_cli_optimize_json_and_errors(capsys):
    code = main(
        [
            "optimize",
            "--example",
            "--id",
            "P01",
            "--id",
            "P02",
            "--format",
            "json",
            "--draws",
            "500",
            "--criterion",
            "probability",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2  # P02 was sampled at day 20, after its day-14 dose
    payload = json.loads(captured.out)
    by_id = {p["id"]: p for p in payload["patients"]}
    assert by_id["P01"]["criterion"] == "probability" and by_id["P01"]["probability"] == 0.8
    assert by_id["P01"]["recommended"]["time_day"] == 14.0
    assert "before the last sample" in by_id["P02"]["error"]
    assert "P02" in captured.err

    assert main(["optimize", "--example", "--target-risk", "1.5"]) == 2
    assert "--target-risk" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["optimize", "--example", "--timing-days", "7:x"])
    assert exit_info.value.code == 2
    assert "START:END[:STEP]" in capsys.readouterr().err


def test_cli_optimize_table_with_all_sections(capsys, tmp_path):
    common = ["optimize", "--example", "--id", "P05", "--draws", "500"]
    code = main([*common, "--sample-days", "7,13,13.9", "--n-simulations", "100"])
    out = capsys.readouterr().out
    assert code == 0
    for text in (
        "RECOMMENDED",
        "MAP (published tool)",
        "infused on another day",
        "standard_5",
        "one more sample",
        "latest useful sampling day is 13",
        "<-- recommended",
        "(result too late)",
    ):
        assert text in out, text
    report = tmp_path / "trough.html"
    code = main([*common, "--trough-target", "3", "--seed", "11", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    assert "ANSWER: " in out and "trough target: trough >= 3 mg/L" in out
    assert "mean risk" not in out and "regimen" not in out
    document = report.read_text(encoding="utf-8")
    assert "Maintenance dose to a trough target" in document
    assert '<dd class="seed">11 ' in document


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--min-mg-kg", "0"], "--min-mg-kg"),
        (["--min-mg-kg", "nan"], "--min-mg-kg"),
        (["--min-mg-kg", "30"], "--min-mg-kg"),
        (["--turnaround-days", "-1"], "--turnaround-days"),
        (["--trough-target", "3", "--next-sample"], "--next-sample"),
    ],
)
def test_cli_optimize_rejects_bad_dose_range_and_turnaround(options, message, capsys):
    assert main(["optimize", "--example", "--id", "P01", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
