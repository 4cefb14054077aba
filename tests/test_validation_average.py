"""The model-averaged predictor scored with the same keys as each model (issue 19).

Independent references: hand computation (mixture weights, risks, pair counts, Brier), the
normal mixture's median by root finding (scipy ``brentq``), the a-priori predictive CDF by
Gauss–Hermite quadrature (``forecast_record``), and a cohort simulated from a 50/50 mixture of
two clearly different models (its averaged NPDE are N(0, 1), each model's are not).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import scipy.optimize
import scipy.special
import scipy.stats

from asuc_bayes.data.types import EventRecord
from asuc_bayes.inference.marginal import WeightedPosterior, prior_nodes
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.interfaces.validation_report import _findings, _npde_rows, _outcome_rows
from asuc_bayes.spec import load_declaration
from asuc_bayes.studies.validation import validate_cohort
from asuc_bayes.studies.validation.leave_future_out import (
    Forecasts,
    LeaveFutureOut,
    forecast_record,
)
from asuc_bayes.studies.validation.npde import mixture_npde, npde_tests, patient_npde
from asuc_bayes.studies.validation.outcome import (
    PatientOutcome,
    average_outcome,
    mixture_median,
    outcome_metrics,
    weighted_quantiles,
)
from asuc_bayes.studies.validation.simulation import (
    simulate_validation_cohort,
    with_scaled_parameter,
)
from asuc_bayes.studies.validation.study import (
    ModelFit,
    PatientValidation,
    average_forecasts,
    summarise,
    validate_patient,
    validation_seed,
)

THRESHOLD = 5.79
K = 1000  # equal-probability atoms of each posterior of ln(AUC/CL)


# --- hand-built fits -------------------------------------------------------------------------


def _forecasts(point, pit, p_censored, density) -> Forecasts:
    return Forecasts(
        np.array(point, float), np.array(pit, float), np.array(p_censored, float), np.log(density)
    )


def _fit(
    name: str,
    *,
    log_marginal: float = -1.0,
    prefix: tuple[float, float] = (0.0, -1.0),
    map_forecasts: Forecasts | None = None,
    outcome: PatientOutcome | None = None,
    npde: np.ndarray | None = None,
) -> ModelFit:
    """Two records (10 mg/L measured, then 1 mg/L below the LLOQ) under a made-up model."""
    base = _forecasts([12.0, 0.5], [0.5, np.nan], [np.nan, 0.3], [0.3, 0.3])
    lfo = LeaveFutureOut(
        time_day=np.array([1.0, 2.0]),
        observed_mg_l=np.array([10.0, 1.0]),
        censoring=np.array([0, 1]),
        first=np.array([True, False]),
        a_priori=base,
        bayesian=base,
        map=map_forecasts or base,
        full=WeightedPosterior(np.zeros((1, 2)), np.ones(1), log_marginal, "grid", 0.0, 1.0),
        prefix_log_marginal=np.array(prefix),
    )
    return ModelFit(
        name,
        2,
        lfo,
        np.zeros(2) if npde is None else npde,
        log_marginal,
        0.0,
        "grid",
        1.0,
        -2.0,
        0.01,
        outcome=outcome,
    )


def _normal_outcome(mu: float, sd: float, risk: float, label: int, extrapolated=False):
    levels = (np.arange(K) + 0.5) / K
    return PatientOutcome(
        ln_auc_cl=mu,
        risk=risk,
        label=label,
        threshold=THRESHOLD,
        extrapolated=extrapolated,
        ln_auc_cl_quantiles=mu + sd * scipy.stats.norm.ppf(levels),
    )


def _normal_mixture_median(mu, sd, w) -> float:
    """The root of Σ w_m Φ((t − μ_m)/σ_m) = ½ (an independent reference)."""

    def cdf(t: float) -> float:
        return float(np.dot(w, scipy.stats.norm.cdf((t - np.array(mu)) / np.array(sd)))) - 0.5

    return scipy.optimize.brentq(cdf, min(mu) - 10 * max(sd), max(mu) + 10 * max(sd))


# --- 1. the averaged MAP forecasts -----------------------------------------------------------


def test_averaged_map_forecasts_are_the_mixture_with_the_bayesian_weights_by_hand():
    """Record 2 is forecast with p(m | y_1) ∝ p_m(y_1) = e^-1 : e^-3 (the full posterior's
    evidence), record 1 with the equal prior; the MAP forecasts of the two models differ."""
    map_a = _forecasts([11.0, 0.8], [0.4, np.nan], [np.nan, 0.25], [0.2, 0.5])
    map_b = _forecasts([7.0, 0.2], [0.9, np.nan], [np.nan, 0.7], [0.05, 0.9])
    a = _fit("a", prefix=(0.0, -1.0), map_forecasts=map_a)
    b = _fit("b", prefix=(0.0, -3.0), map_forecasts=map_b)
    mixed = average_forecasts(PatientValidation("p", (a, b)), None).map
    w = math.exp(-1) / (math.exp(-1) + math.exp(-3))  # 0.8808
    assert mixed.point_mg_l[0] == pytest.approx(0.5 * 11.0 + 0.5 * 7.0)
    assert mixed.pit[0] == pytest.approx(0.5 * 0.4 + 0.5 * 0.9)
    assert mixed.log_density[0] == pytest.approx(math.log(0.5 * 0.2 + 0.5 * 0.05))
    assert mixed.point_mg_l[1] == pytest.approx(w * 0.8 + (1 - w) * 0.2)
    assert mixed.p_censored[1] == pytest.approx(w * 0.25 + (1 - w) * 0.7)
    assert mixed.log_density[1] == pytest.approx(math.log(w * 0.5 + (1 - w) * 0.9))
    # prior weights 1 : 3 shift record 1 (and record 2: p(m | y_1) ∝ π_m p_m(y_1))
    prior = average_forecasts(PatientValidation("p", (a, b)), np.array([1.0, 3.0])).map
    assert prior.pit[0] == pytest.approx(0.25 * 0.4 + 0.75 * 0.9)
    w = 0.25 * math.exp(-1) / (0.25 * math.exp(-1) + 0.75 * math.exp(-3))
    assert prior.p_censored[1] == pytest.approx(w * 0.25 + (1 - w) * 0.7)


def test_averaged_map_coverage_in_the_json_by_hand():
    """Two patients; record 2 (censored) has P(region) 0.25 under a and 0.01 under b; with
    weight 0.881 on a the mixture gives 0.221 (covered at 90 %: >= 0.05); with all the
    evidence on b (prefix -30 against 0), 0.01 (not covered)."""
    map_a = _forecasts([11.0, 0.8], [0.4, np.nan], [np.nan, 0.25], [0.2, 0.5])
    map_b = _forecasts([7.0, 0.2], [0.9, np.nan], [np.nan, 0.01], [0.05, 0.9])
    patients = [
        PatientValidation(
            "p1",
            (
                _fit("a", prefix=(0, -1), map_forecasts=map_a),
                _fit("b", prefix=(0, -3), map_forecasts=map_b),
            ),
        ),
        PatientValidation(
            "p2",
            (
                _fit("a", prefix=(0, -30), map_forecasts=map_a),
                _fit("b", prefix=(0, 0), map_forecasts=map_b),
            ),
        ),
    ]
    out = summarise(patients).to_json()
    json.dumps(out, allow_nan=False)
    average = out["average"]["bayesian"]
    assert average["map_n"] == 2 and average["map_n_censored"] == 2
    assert average["map_coverage_90"] == pytest.approx(0.5)
    # no measured record after the first: no point metrics, null rather than NaN
    assert average["map_mpe"] is None
    assert out["models"][0]["bayesian"]["map_coverage_90"] == 1.0
    assert out["models"][1]["bayesian"]["map_coverage_90"] == 0.0


# --- 2. NPDE of the averaged predictor -------------------------------------------------------


def _problem(declaration, patient):
    return PatientProblem.from_patient(declaration, patient)


def test_mixture_npde_of_a_first_record_is_the_mixture_cdf_by_quadrature():
    """The first decorrelated record is an increasing affine map of the first record, so
    Φ(npde_1) = Σ_m π_m F_m(y_1), F_m the a-priori predictive CDF of model m, here computed
    independently by Gauss–Hermite quadrature over η (forecast_record)."""
    a = load_declaration("niyigena2025")
    b = with_scaled_parameter(a, "CL", 4.0)
    patient = simulate_validation_cohort(a, 1, random_seed=6)[0]
    problems = [_problem(a, patient), _problem(b, patient)]
    order = np.argsort(problems[0].time_day, kind="stable")
    first = int(order[0])
    cdf = [forecast_record(p, prior_nodes(p), first, np.zeros(p.n_eta))[1] for p in problems]
    assert abs(cdf[0] - cdf[1]) > 0.1  # the two models disagree about this record
    for prior in ([0.5, 0.5], [0.2, 0.8]):
        npde = mixture_npde(problems, prior, n_simulations=20_000, random_seed=2)
        expected = float(np.dot(prior, cdf))
        # Monte Carlo SE of a fraction of 20 000 draws: <= 0.0035
        assert scipy.special.ndtr(npde[first]) == pytest.approx(expected, abs=0.015)


def _mixture_cohort(n: int, factor: float, seed: int):
    """Each patient from niyigena2025 or the same with CL × ``factor``, with probability ½."""
    a = load_declaration("niyigena2025")
    b = with_scaled_parameter(a, "CL", factor)
    from_a = simulate_validation_cohort(a, n, random_seed=seed, lloq_mg_l=1.0)
    from_b = simulate_validation_cohort(b, n, random_seed=seed + 1, lloq_mg_l=1.0)
    pick = np.random.default_rng(seed + 2).uniform(size=n) < 0.5
    return a, b, [pa if p else pb for pa, pb, p in zip(from_a, from_b, pick, strict=True)]


def _pooled(a, b, cohort):
    mixed, only_a, only_b = [], [], []
    for i, patient in enumerate(cohort):
        problems = [_problem(a, patient), _problem(b, patient)]
        mixed.append(mixture_npde(problems, random_seed=i))
        only_a.append(patient_npde(problems[0], random_seed=i))
        only_b.append(patient_npde(problems[1], random_seed=i))
    return [npde_tests(np.concatenate(x)) for x in (mixed, only_a, only_b)]


def _standard_normal_within_mc_error(tests) -> bool:
    n = tests.n
    return (
        abs(tests.mean) < 3.3 / math.sqrt(n)
        and abs(tests.variance - 1.0) < 3.3 * math.sqrt(2.0 / (n - 1))
        and tests.p_value > 0.01
    )


def test_averaged_npde_are_standard_normal_on_a_mixture_cohort_small():
    a, b, cohort = _mixture_cohort(150, 4.0, seed=20)
    censored = sum(o.censoring != 0 for p in cohort for o in p.observations)
    assert censored >= 5  # the imputation of censored records is exercised
    mixed, only_a, only_b = _pooled(a, b, cohort)
    assert mixed.n >= 400
    assert _standard_normal_within_mc_error(mixed), mixed
    # each model alone: the other half of the cohort is far off
    assert only_a.mean < -0.15 and only_a.p_value < 1e-3
    assert only_b.mean > 0.25 and only_b.variance > 1.3 and only_b.p_value < 1e-6


@pytest.mark.slow
def test_averaged_npde_are_standard_normal_on_a_mixture_cohort_large():
    """800 patients (~2 400 npde, ~10 s): MC error of the mean 0.02, of the variance 0.03."""
    a, b, cohort = _mixture_cohort(800, 3.0, seed=40)
    mixed, only_a, only_b = _pooled(a, b, cohort)
    assert mixed.n >= 2000
    assert _standard_normal_within_mc_error(mixed), mixed
    assert only_a.p_value < 1e-10 and only_b.p_value < 1e-10


def test_mixture_npde_bad_weights_are_named():
    a = load_declaration("niyigena2025")
    patient = simulate_validation_cohort(a, 1, random_seed=1)[0]
    problems = [_problem(a, patient)] * 2
    with pytest.raises(ValueError, match="prior_weights"):
        mixture_npde(problems, [1.0])
    with pytest.raises(ValueError, match="prior_weights"):
        mixture_npde(problems, [-1.0, 2.0])
    with pytest.raises(ValueError, match="not all be 0"):
        mixture_npde(problems, [0.0, 0.0])
    with pytest.raises(ValueError, match="at least one model"):
        mixture_npde([])


# --- 3. the outcome of the averaged predictor ------------------------------------------------


def test_weighted_quantiles_and_mixture_median_against_independent_references():
    rng = np.random.default_rng(0)
    x = rng.normal(size=501)
    # equal weights: numpy's inverted-CDF quantiles
    levels = (np.arange(K) + 0.5) / K
    np.testing.assert_array_equal(
        weighted_quantiles(x, np.full(x.size, 1 / x.size)),
        np.quantile(x, levels, method="inverted_cdf"),
    )
    # the median of a two-normal mixture against brentq on its CDF
    for mu, sd, w in (
        ([5.0, 6.0], [0.2, 0.3], [0.5, 0.5]),
        ([5.5, 6.5], [0.2, 0.2], [0.622, 0.378]),
        ([5.0, 7.0], [0.1, 0.1], [0.3, 0.7]),
    ):
        quantiles = [m + s * scipy.stats.norm.ppf(levels) for m, s in zip(mu, sd, strict=True)]
        median = mixture_median(quantiles, np.array(w))
        assert median == pytest.approx(_normal_mixture_median(mu, sd, w), abs=2e-3)
    # one model of weight 1: its own median
    assert mixture_median([x, x + 5.0], np.array([1.0, 0.0])) == pytest.approx(
        np.median(x), abs=0.02
    )


# Four patients under two models: (μ_a, σ_a, risk_a, μ_b, σ_b, risk_b, ln p(y|a), ln p(y|b),
# label). Posterior model probability of a: 1/(1+e^-1), e^-2/(e^-2+1), 1/2, 1/(1+e^-0.5).
COHORT = [
    (5.2, 0.2, 0.50, 5.6, 0.3, 0.40, 0.0, -1.0, 1),
    (6.0, 0.2, 0.20, 5.3, 0.2, 0.15, -2.0, 0.0, 1),
    (6.2, 0.2, 0.10, 6.4, 0.2, 0.08, 0.0, 0.0, 0),
    (5.5, 0.2, 0.30, 6.5, 0.2, 0.10, 0.0, -0.5, 0),
]


def _outcome_cohort(extrapolated_b: bool = False) -> list[PatientValidation]:
    patients = []
    for i, (ma, sa, ra, mb, sb, rb, la, lb, y) in enumerate(COHORT):
        fa = _fit("a", log_marginal=la, outcome=_normal_outcome(ma, sa, ra, y))
        fb = _fit("b", log_marginal=lb, outcome=_normal_outcome(mb, sb, rb, y, extrapolated_b))
        patients.append(PatientValidation(f"p{i}", (fa, fb)))
    return patients


def test_averaged_outcome_by_hand_on_four_patients():
    out = summarise(_outcome_cohort(extrapolated_b=True)).to_json()
    json.dumps(out, allow_nan=False)
    w_a = np.array([1 / (1 + math.exp(-1)), math.exp(-2) / (math.exp(-2) + 1), 0.5])
    w_a = np.append(w_a, 1 / (1 + math.exp(-0.5)))
    risk = [w * r[2] + (1 - w) * r[5] for w, r in zip(w_a, COHORT, strict=True)]
    score = [
        _normal_mixture_median([r[0], r[3]], [r[1], r[4]], [w, 1 - w])
        for w, r in zip(w_a, COHORT, strict=True)
    ]
    # by hand: scores ≈ 5.27, 5.35 (cases), 6.30, 5.62 (controls): every case below every
    # control, AUROC 1; below 5.79: both cases and the second control (its mixture puts 0.58
    # of its mass below 5.79)
    assert score[0] < score[1] < score[3] < THRESHOLD < score[2]
    average = out["average"]["outcome"]
    assert average["n_cases"] == 2 and average["n_controls"] == 2
    assert average["auroc"] == pytest.approx(1.0)
    assert average["sensitivity"] == pytest.approx(1.0)
    assert average["specificity"] == pytest.approx(0.5)
    labels = np.array([r[8] for r in COHORT])
    brier = np.mean((np.array(risk) - labels) ** 2)
    assert average["brier"] == pytest.approx(brier)
    reference = outcome_metrics(np.array(score), np.array(risk), labels, THRESHOLD)
    assert average["calibration_slope"] == pytest.approx(reference.calibration_slope, rel=1e-4)
    assert average["calibration_intercept"] == pytest.approx(
        reference.calibration_intercept, rel=1e-6
    )
    assert average["extrapolated"] is True  # one component is
    assert out["average"]["mean_weight"] is None
    assert out["models"][0]["outcome"]["extrapolated"] is False
    # the per-patient averaged outcomes kept for the calibration figure
    result = summarise(_outcome_cohort())
    assert [r.risk for r in result.average_patient_outcomes] == pytest.approx(risk)
    assert result.to_json()["average"]["outcome"]["extrapolated"] is False


def test_average_of_one_certain_model_is_that_model():
    a = _normal_outcome(5.5, 0.2, 0.3, 1)
    b = _normal_outcome(6.5, 0.4, 0.1, 1)
    one = average_outcome([a, b], np.array([1.0, 0.0]))
    assert one.risk == pytest.approx(0.3)
    assert one.ln_auc_cl == pytest.approx(5.5, abs=2e-3)  # the posterior median of a
    with pytest.raises(ValueError, match="threshold"):
        average_outcome([a, dataclasses.replace(b, threshold=6.0)], np.array([0.5, 0.5]))


# --- 4. the JSON contract and the report ------------------------------------------------------


def test_average_has_the_keys_of_a_model_end_to_end():
    """Six patients from a 50/50 mixture, with colectomy records, two two-effect models."""
    a, b, cohort = _mixture_cohort(6, 3.0, seed=60)
    events = [EventRecord(50.0, 1), EventRecord(95.0, 0)]
    cohort = [dataclasses.replace(p, events=(events[i % 2],)) for i, p in enumerate(cohort)]
    result = validate_cohort(cohort, [a, b], random_seed=4)
    out = result.to_json()
    json.dumps(out, allow_nan=False)
    model, average = out["models"][0], out["average"]
    for key in ("name", "a_priori", "bayesian", "npde", "outcome", "mean_weight"):
        assert key in average
    assert average["name"] == "model average" and average["mean_weight"] is None
    for mode in ("a_priori", "bayesian", "npde", "outcome"):
        assert set(model[mode]) <= set(average[mode]), mode
    # the averaged npde: the patients' mixture npde, seeded as the rest (the patient's seed)
    patient = result.patients[0]
    seed = validation_seed(4, cohort[0].id)
    problems = [_problem(a, cohort[0]), _problem(b, cohort[0])]
    order = np.argsort(problems[0].time_day, kind="stable")
    np.testing.assert_array_equal(
        patient.average_npde, mixture_npde(problems, random_seed=seed)[order]
    )
    pooled = np.concatenate([p.average_npde for p in result.patients])
    assert average["npde"]["n"] == pooled.size == model["npde"]["n"]
    assert average["npde"]["mean"] == pytest.approx(pooled.mean())
    # the averaged risk is Σ_m w_m risk_m with the patient's posterior model probabilities
    for p, w, avg in zip(
        result.patients, result.weights, result.average_patient_outcomes, strict=True
    ):
        assert avg.risk == pytest.approx(w @ [f.outcome.risk for f in p.fits])
        assert avg.label == p.fits[0].outcome.label
    assert average["outcome"]["n_cases"] == 3 and average["outcome"]["n_controls"] == 3
    # validating a patient alone gives the same averaged npde
    alone = validate_patient(cohort[0], [a, b], random_seed=seed)
    np.testing.assert_array_equal(alone.average_npde, patient.average_npde)


def test_one_model_average_is_the_model():
    decl = load_declaration("niyigena2025")
    cohort = simulate_validation_cohort(decl, 3, random_seed=9)
    out = validate_cohort(cohort, [decl], random_seed=2).to_json()
    model, average = out["models"][0], out["average"]
    for key in ("map_coverage_90", "map_mpe", "map_rmse", "coverage_90", "mpe"):
        assert average["bayesian"][key] == pytest.approx(model["bayesian"][key]), key
    assert average["npde"] == model["npde"]


def test_bad_prior_weights_are_named_before_any_work():
    decl = load_declaration("niyigena2025")
    cohort = simulate_validation_cohort(decl, 1, random_seed=9)
    with pytest.raises(ValueError, match="prior_weights"):
        validate_cohort(cohort, [decl, with_scaled_parameter(decl, "CL", 2.0)], prior_weights=[1])


def test_report_rows_of_the_average_beside_the_models():
    out = summarise(_outcome_cohort(extrapolated_b=True)).to_json()
    npde_rows = _npde_rows(out)
    assert [r["model"] for r in npde_rows] == ["a", "b", "model average"]
    outcome_rows = _outcome_rows(out)
    assert [r["model"] for r in outcome_rows] == [
        "a",
        "b (extrapolated)",
        "model average (extrapolated)",
    ]
    assert outcome_rows[-1]["cells"][1].startswith("1.00")  # AUROC of the average
    assert outcome_rows[-1]["cells"][3] == "50.0 %"  # its specificity


def test_models_with_different_thresholds_have_no_averaged_outcome():
    patients = _outcome_cohort()
    first = patients[0]
    other = dataclasses.replace(
        first.fits[1], outcome=dataclasses.replace(first.fits[1].outcome, threshold=6.0)
    )
    patients[0] = dataclasses.replace(first, fits=(first.fits[0], other))
    result = summarise(patients)
    assert result.average_patient_outcomes[0] is None
    assert result.to_json()["average"]["outcome"]["n_cases"] == 1  # the other three remain


def test_findings_name_a_rejected_average():
    out = summarise(_outcome_cohort()).to_json()  # the made-up npde are all 0: rejected
    assert _findings(out)[-1].endswith("(global test): a, b.")
    rejected = {**out, "average": {**out["average"], "npde": {"p_value": 0.001}}}
    assert _findings(rejected)[-1].endswith("(global test): a, b, model average.")
