"""MAP (what the published tool reports) against the full posterior: per patient and by study.

Per patient (:func:`compare_patient`): the MAP plug-in risk beside the posterior mean risk and
its 95 % credible interval; the Laplace (Gaussian at the mode) interval beside the posterior
interval for CL and ln(AUC_w2-4/CL); P(high risk) beside the MAP class, with a flag where the
two would lead to different decisions; and a leave-one-out posterior predictive check of each
observed concentration (a surprising level can mean anti-drug antibodies or a sampling error).

Cohort study (:func:`run_study`): virtual patients with known truth are simulated from the
model under named sampling scenarios, forecast with MAP + Laplace and with the full posterior,
and scored: bias and RMSE, interval coverage, classification against the true ln ratio, and
the Brier score and calibration of the predicted 90-day risk against simulated colectomies.
Because the simulation draws from the model itself, posterior intervals must be calibrated:
coverage near nominal within Monte Carlo error is a strong end-to-end correctness check.

Examples
--------
>>> SCENARIOS["day7"].sample_days
(7.0,)
>>> sorted(SCENARIOS)
['blq', 'day7', 'no_sample', 'trough_week2', 'two_samples']
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED, Observation, Patient
from asuc_bayes.inference.engine import Engine
from asuc_bayes.inference.forecast import (
    Forecaster,
    PatientForecast,
    SamplerSettings,
    derived_quantities,
    forecaster_for,
    patient_seed,
)
from asuc_bayes.inference.grid import grid_posterior
from asuc_bayes.inference.risk_class import is_high_risk, risk_class
from asuc_bayes.pk.kernels import concentration
from asuc_bayes.spec.config import ModelSpec
from asuc_bayes.spec.residual import PREDICTION_FLOOR_MG_L, add_residual_error
from asuc_bayes.strict_json import dumps_json
from asuc_bayes.studies.simulate import designed_patients

__all__ = [
    "INTERVAL_LEVELS",
    "SCENARIOS",
    "Scenario",
    "StudyResult",
    "compare_patient",
    "laplace_draws",
    "predictive_check",
    "run_study",
    "simulate_scenario",
]

#: Central interval levels whose coverage the study reports.
INTERVAL_LEVELS = (0.5, 0.8, 0.9, 0.95)
#: P(high risk) between these bounds is "uncertain": a confident MAP class there misleads.
UNCERTAIN_P_HIGH = (0.2, 0.8)
#: Leave-one-out predictive tail probability below which an observation is flagged.
SURPRISE_P = 0.01
LAPLACE_DRAWS = 4000


@dataclass(frozen=True)
class Scenario:
    """A sampling design: sample days and, optionally, a required censoring outcome."""

    name: str
    description: str
    sample_days: tuple[float, ...]
    #: If set, only patients whose (single) sample falls below this LLOQ (mg/L) are kept.
    below_lloq_mg_l: float | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("day7", "one sample at day 7", (7.0,)),
        Scenario("trough_week2", "one trough just before the week-2 dose (day 13.9)", (13.9,)),
        Scenario(
            "blq",
            "one day-28 sample reported below an LLOQ of 2 mg/L",
            (28.0,),
            below_lloq_mg_l=2.0,
        ),
        Scenario("two_samples", "two samples: day 2 and day 13.9", (2.0, 13.9)),
        Scenario("no_sample", "no sample (a-priori information only)", ()),
    )
}


# -- simulation --------------------------------------------------------------------------
def _observe(spec: ModelSpec, patient: Patient, eta: np.ndarray, days, rng) -> np.ndarray:
    """Concentrations at ``days`` with residual error, for true ``eta``."""
    truth = derived_quantities(spec, patient, np.asarray(eta)[None, :])
    days = np.asarray(days, dtype=float)
    prediction = concentration(
        days,
        patient.dose_time_day,
        patient.dose_amount_mg,
        patient.dose_duration_day,
        np.float64(truth["cl"][0]),
        np.float64(truth["v"][0]),
        dose_end_day=patient.dose_end_day,
        dose_ss_interval_day=patient.dose_ss_interval_day,
    )
    return add_residual_error(prediction, spec.pk.residual_sd.estimate, spec.pk.residual_form, rng)


def simulate_scenario(
    spec: ModelSpec, scenario: Scenario, n: int, random_seed: int
) -> tuple[list[Patient], pd.DataFrame]:
    """``n`` virtual patients sampled under ``scenario``, and their truth.

    Covariates, regimens and true random effects come from
    :func:`asuc_bayes.studies.simulate.designed_patients` (the calibrated Table-1 design of
    the population simulator: weight, CRP, the regimens centres give, whole vials); the
    concentrations at the scenario's days
    are drawn with the model's residual error. Assay limits: LLOQ 0.3 mg/L, ULOQ 60 mg/L
    (rarely reached at these days), or the scenario's LLOQ, in which case patients are drawn
    until ``n`` have their sample below it (selection on observed data keeps the posterior
    calibrated). The truth table holds η, CL, V, ln(AUC_w2-4/CL), the true 90-day risk and a
    simulated colectomy outcome by day 90 (Bernoulli with the true risk).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng([random_seed, 1])
    patients: list[Patient] = []
    rows = []
    batch = 0
    while len(patients) < n:
        cohort = designed_patients(
            spec,
            n=max(n, 50),
            random_seed=int(np.random.SeedSequence([random_seed, batch]).generate_state(1)[0]),
            id_prefix=f"{scenario.name}-{batch}-",
        )
        batch += 1
        if batch > 200:
            raise RuntimeError(f"scenario {scenario.name}: too few patients meet its design")
        for draft in cohort.patients:
            eta = cohort.truth.loc[draft.id, ["eta_cl", "eta_v"]].to_numpy(dtype=float)
            values = _observe(spec, draft, eta, scenario.sample_days, rng)
            lloq = scenario.below_lloq_mg_l or 0.3
            if scenario.below_lloq_mg_l is not None and not np.all(values < lloq):
                continue
            observations = []
            for day, value in zip(scenario.sample_days, values, strict=True):
                if value < lloq:
                    observations.append(Observation(day, lloq, BELOW_LLOQ))
                elif value > 60.0:
                    observations.append(Observation(day, 60.0, ABOVE_ULOQ))
                else:
                    observations.append(Observation(day, float(value), MEASURED))
            patient = replace(
                draft,
                id=f"{scenario.name}{len(patients) + 1:04d}",
                observations=tuple(observations),
            )
            truth = derived_quantities(spec, patient, eta[None, :])
            rows.append(
                {
                    "id": patient.id,
                    "eta_cl": eta[0],
                    "eta_v": eta[1],
                    **{name: float(values[0]) for name, values in truth.items()},
                    "colectomy_90d": bool(rng.uniform() < truth["risk_90d"][0]),
                }
            )
            patients.append(patient)
            if len(patients) == n:
                break
    return patients, pd.DataFrame(rows).set_index("id")


# -- per patient -------------------------------------------------------------------------
def laplace_draws(
    spec: ModelSpec, result: PatientForecast, n: int = LAPLACE_DRAWS, random_seed: int = 0
) -> dict[str, np.ndarray]:
    """Derived quantities under the Laplace approximation N(η_MAP, Σ_Laplace)."""
    points = result.tree["point_estimates"]
    mode = points["eta"].sel(estimate="map").values
    covariance = points["laplace_covariance"].values
    if not np.all(np.isfinite(covariance)):
        return {name: np.full(n, np.nan) for name in ("cl", "v", "ln_auc_cl", "risk_90d")}
    rng = np.random.default_rng(random_seed)
    eta = rng.multivariate_normal(mode, covariance, size=n, method="cholesky")
    return derived_quantities(spec, result.patient, eta)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(np.asarray(values).ravel(), [tail, 1.0 - tail])
    return float(low), float(high)


def predictive_check(
    spec: ModelSpec, result: PatientForecast, n_points: int = 201
) -> list[dict[str, Any]]:
    """Leave-one-out posterior predictive tail probability of each observation.

    For observation i, the posterior given the patient's other observations is computed
    exactly by quadrature (:func:`asuc_bayes.inference.grid.grid_posterior` on the patient without
    that observation: no importance weights, which are unreliable precisely when one sample
    dominates the posterior), and the predictive distribution of a new measurement includes
    the residual error. For a measured value the two-sided tail probability 2·min(F, 1−F) is
    reported; for a BLQ record P(y < LLOQ); for an ALQ record P(y > ULOQ). Observations with
    a tail probability below :data:`SURPRISE_P` are flagged.
    """
    patient = result.patient
    sd = spec.pk.residual_sd.estimate
    proportional = spec.pk.residual_form == "proportional"
    checks = []
    for i, obs in enumerate(patient.observations):
        others = patient.observations[:i] + patient.observations[i + 1 :]
        loo = grid_posterior(spec, replace(patient, observations=others), n_points=n_points)
        f = concentration(
            np.array([obs.time_day]),
            patient.dose_time_day,
            patient.dose_amount_mg,
            patient.dose_duration_day,
            loo.derived["cl"].ravel(),
            loo.derived["v"].ravel(),
            dose_end_day=patient.dose_end_day,
            dose_ss_interval_day=patient.dose_ss_interval_day,
        )[:, 0]
        f = np.maximum(f, PREDICTION_FLOOR_MG_L)
        if proportional:
            cdf_nodes = scipy.stats.norm.cdf(obs.value_mg_l, loc=f, scale=sd * f)
        else:
            cdf_nodes = scipy.stats.lognorm.cdf(obs.value_mg_l, s=sd, scale=f)
        weights = loo.weights.ravel()
        cdf = float(np.sum(weights * cdf_nodes))
        if obs.censoring == MEASURED:
            tail = 2.0 * min(cdf, 1.0 - cdf)
        elif obs.censoring == BELOW_LLOQ:
            tail = cdf
        else:
            tail = 1.0 - cdf
        checks.append(
            {
                "time_day": float(obs.time_day),
                "value_mg_l": float(obs.value_mg_l),
                "censoring": int(obs.censoring),
                "loo_predicted_median_mg_l": _weighted_quantile(f, weights, 0.5),
                "tail_probability": float(np.clip(tail, 0.0, 1.0)),
                "surprising": bool(tail < SURPRISE_P),
            }
        )
    return checks


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, q * cumulative[-1])])


def compare_patient(
    spec: ModelSpec, result: PatientForecast, random_seed: int = 0
) -> dict[str, Any]:
    """MAP versus the full posterior for one forecast (see the module docstring).

    Returns a JSON-ready dict: ``risk_90d`` (MAP plug-in, posterior mean and 95 % CrI),
    ``intervals`` (Laplace and posterior 95 % intervals of ``cl`` and ``ln_auc_cl``),
    ``p_high_risk``, ``map_class``, ``posterior_class`` (P(high risk) ≥ 0.5), ``flags``
    (``"different_class"``, ``"uncertain_class"``, ``"surprising_observation"``) and the
    ``predictive_check`` of each observation.
    """
    summary = result.summary()
    threshold = spec.tte.high_risk_threshold
    posterior = result.tree["posterior"]
    laplace = laplace_draws(spec, result, random_seed=random_seed)
    intervals = {}
    for name in ("cl", "ln_auc_cl"):
        intervals[name] = {
            "map": summary["map"][name],
            "laplace_95": list(_interval(laplace[name], 0.95)),
            "posterior_mean": summary["posterior"][name]["mean"],
            "posterior_95": [
                summary["posterior"][name]["q2.5"],
                summary["posterior"][name]["q97.5"],
            ],
        }
    p_high = summary["p_high_risk"]
    map_class = "high" if summary["map"]["ln_auc_cl"] < threshold else "low"
    posterior_class = risk_class(p_high)
    checks = predictive_check(spec, result)
    flags = []
    if map_class != posterior_class:
        flags.append("different_class")
    if UNCERTAIN_P_HIGH[0] <= p_high <= UNCERTAIN_P_HIGH[1]:
        flags.append("uncertain_class")
    if any(c["surprising"] for c in checks):
        flags.append("surprising_observation")
    risk = posterior["risk_90d"].values
    return {
        "id": result.patient.id,
        "status": result.status,
        "method": result.diagnostics.get("method"),
        "risk_90d": {
            "map_plug_in": summary["map"]["risk_90d"],
            "posterior_mean": summary["posterior"]["risk_90d"]["mean"],
            "posterior_95": [
                summary["posterior"]["risk_90d"]["q2.5"],
                summary["posterior"]["risk_90d"]["q97.5"],
            ],
            "laplace_mean": float(np.mean(laplace["risk_90d"])),
            "p_risk_above_map": float(np.mean(risk > summary["map"]["risk_90d"])),
        },
        "intervals": intervals,
        "p_high_risk": p_high,
        "map_class": map_class,
        "posterior_class": posterior_class,
        "flags": flags,
        "predictive_check": checks,
    }


# -- cohort study ------------------------------------------------------------------------
@dataclass
class StudyResult:
    """Per-patient scores (``table``) and summary metrics (``metrics``) of one scenario."""

    scenario: Scenario
    table: pd.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario.name, "n": len(self.table), **self.metrics}


def _score_patient(spec, result, truth_row, random_seed) -> dict[str, Any]:
    posterior = result.tree["posterior"]
    laplace = laplace_draws(spec, result, random_seed=random_seed)
    summary = result.summary()
    row: dict[str, Any] = {
        "id": result.patient.id,
        "status": result.status,
        "method": result.diagnostics.get("method"),
        "true_ln_auc_cl": truth_row["ln_auc_cl"],
        "true_cl": truth_row["cl"],
        "true_risk_90d": truth_row["risk_90d"],
        "colectomy_90d": bool(truth_row["colectomy_90d"]),
        "map_ln_auc_cl": summary["map"]["ln_auc_cl"],
        "map_cl": summary["map"]["cl"],
        "map_risk_90d": summary["map"]["risk_90d"],
        "posterior_mean_ln_auc_cl": summary["posterior"]["ln_auc_cl"]["mean"],
        "posterior_mean_cl": summary["posterior"]["cl"]["mean"],
        "posterior_mean_risk_90d": summary["posterior"]["risk_90d"]["mean"],
        "p_high_risk": summary["p_high_risk"],
        "laplace_ok": bool(np.all(np.isfinite(laplace["cl"]))),
    }
    for quantity in ("ln_auc_cl", "cl"):
        truth = truth_row[quantity]
        for level in INTERVAL_LEVELS:
            tag = f"{round(level * 100)}_{quantity}"
            low, high = _interval(posterior[quantity].values, level)
            row[f"posterior_covers_{tag}"] = bool(low <= truth <= high)
            low, high = _interval(laplace[quantity], level)
            row[f"map_covers_{tag}"] = bool(low <= truth <= high)
    return row


def _classification(predicted_high: np.ndarray, true_high: np.ndarray) -> dict[str, float]:
    positives, negatives = true_high.sum(), (~true_high).sum()
    return {
        "sensitivity": float((predicted_high & true_high).sum() / positives)
        if positives
        else float("nan"),
        "specificity": float((~predicted_high & ~true_high).sum() / negatives)
        if negatives
        else float("nan"),
        "accuracy": float((predicted_high == true_high).mean()),
    }


def _metrics(table: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Summary metrics of a scored table, posterior and MAP side by side."""
    true_high = table["true_ln_auc_cl"].to_numpy() < threshold
    outcome = table["colectomy_90d"].to_numpy(dtype=float)
    metrics: dict[str, Any] = {}
    for method, ln_column, cl_column, risk_column in (
        ("posterior", "posterior_mean_ln_auc_cl", "posterior_mean_cl", "posterior_mean_risk_90d"),
        ("map", "map_ln_auc_cl", "map_cl", "map_risk_90d"),
    ):
        ln_error = table[ln_column] - table["true_ln_auc_cl"]
        cl_error = np.log(table[cl_column] / table["true_cl"])
        block: dict[str, Any] = {
            "bias_ln_auc_cl": float(ln_error.mean()),
            "rmse_ln_auc_cl": float(np.sqrt((ln_error**2).mean())),
            "bias_log_cl": float(cl_error.mean()),
            "rmse_log_cl": float(np.sqrt((cl_error**2).mean())),
            "brier": float(((table[risk_column] - outcome) ** 2).mean()),
        }
        for level in INTERVAL_LEVELS:
            for quantity in ("ln_auc_cl", "cl"):
                tag = f"{round(level * 100)}_{quantity}"
                block[f"coverage_{tag}"] = float(table[f"{method}_covers_{tag}"].mean())
        if method == "posterior":
            predicted_high = is_high_risk(table["p_high_risk"].to_numpy())
        else:
            predicted_high = table["map_ln_auc_cl"].to_numpy() < threshold
        block["classification"] = _classification(predicted_high, true_high)
        metrics[method] = block
    n = len(table)
    metrics["coverage_mc_se_90"] = float(np.sqrt(0.9 * 0.1 / n))
    metrics["unconverged"] = int((table["status"] != "ok").sum())
    metrics["exact_grid"] = int((table["method"] == "exact_grid").sum())
    metrics["observed_colectomy_rate"] = float(outcome.mean())
    return metrics


def run_study(
    spec: ModelSpec,
    scenario: Scenario | str,
    n: int,
    random_seed: int,
    *,
    settings: SamplerSettings | None = None,
    forecaster: Forecaster | None = None,
    engine: Engine | None = None,
    progress=None,
) -> StudyResult:
    """Simulate ``n`` patients under ``scenario``, forecast each both ways and score them.

    Parameters
    ----------
    forecaster
        The compiled forecaster to use in this process (default: the shared one of ``spec``).
    engine
        Where to run the patients (:class:`asuc_bayes.inference.engine.Engine`; default this
        process).
        Each patient's seed comes from ``random_seed`` and its ID, so the table does not
        depend on the engine.
    progress
        Optional callable ``progress(done, total)`` called after each patient.
    """
    if isinstance(scenario, str):
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose from {sorted(SCENARIOS)}")
        scenario = SCENARIOS[scenario]
    engine = engine or Engine()
    patients, truth = simulate_scenario(spec, scenario, n, random_seed)
    items = [(patient, truth.loc[patient.id]) for patient in patients]
    constant: dict[str, Any] = {"spec": spec, "settings": settings, "random_seed": random_seed}
    if engine.distributed:  # one core per worker process
        constant["settings"] = replace(settings or SamplerSettings(), cores=1)
    elif forecaster is not None:
        constant["forecaster"] = forecaster
    rows = engine.map_in_order(_study_task, items, chunk_size=None, progress=progress, **constant)
    table = pd.DataFrame(rows).set_index("id")
    return StudyResult(scenario, table, _metrics(table, spec.tte.high_risk_threshold))


def _study_task(
    item, *, spec: ModelSpec, settings, random_seed: int, forecaster: Forecaster | None = None
) -> dict[str, Any]:
    """One patient of a study, in whatever process runs it (module level: pickled by name)."""
    patient, truth_row = item
    seed = patient_seed(random_seed, patient.id)
    forecaster = forecaster or forecaster_for(spec)
    result = forecaster.forecast(patient, random_seed=seed, settings=settings)
    return _score_patient(spec, result, truth_row, seed)


def calibration_bins(predicted: np.ndarray, outcome: np.ndarray, n_bins: int = 5) -> pd.DataFrame:
    """Observed colectomy frequency by quantile bin of predicted risk (calibration plot)."""
    predicted = np.asarray(predicted, dtype=float)
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, n_bins + 1)))
    index = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, len(edges) - 2)
    frame = pd.DataFrame({"bin": index, "predicted": predicted, "observed": outcome})
    grouped = frame.groupby("bin")
    return pd.DataFrame(
        {
            "predicted": grouped["predicted"].mean(),
            "observed": grouped["observed"].mean(),
            "n": grouped.size(),
        }
    )


def study_figures(results: list[StudyResult], directory) -> list[str]:
    """Coverage and calibration figures (PNG) of the study; returns the file paths."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    levels = np.array(INTERVAL_LEVELS)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, quantity, label in zip(
        axes, ("ln_auc_cl", "cl"), ("ln(AUC$_{w2-4}$/CL)", "CL"), strict=True
    ):
        ax.plot([0.4, 1], [0.4, 1], color="grey", lw=1, ls=":")
        for result in results:
            for method, style in (("posterior", "-o"), ("map", "--s")):
                coverage = [
                    result.metrics[method][f"coverage_{round(lv * 100)}_{quantity}"]
                    for lv in levels
                ]
                ax.plot(levels, coverage, style, label=f"{result.scenario.name} ({method})")
        ax.set_title(f"Interval coverage of the true {label}")
        ax.set_xlabel("nominal level")
    axes[0].set_ylabel("empirical coverage")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = directory / "coverage.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(str(path))

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":")
        outcome = result.table["colectomy_90d"].to_numpy(dtype=float)
        for column, label, style in (
            ("posterior_mean_risk_90d", "posterior mean", "-o"),
            ("map_risk_90d", "MAP plug-in", "--s"),
        ):
            bins = calibration_bins(result.table[column].to_numpy(), outcome)
            ax.plot(bins["predicted"], bins["observed"], style, label=label)
        ax.set_title(result.scenario.name)
        ax.set_xlabel("predicted 90-day risk")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("observed colectomy by day 90")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path = directory / "calibration.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(str(path))
    return paths


def write_study(results: list[StudyResult], directory) -> list[str]:
    """Figures (PNG), per-patient tables (CSV) and the metrics (JSON) of a study."""
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = study_figures(results, directory)
    for result in results:
        path = directory / f"patients-{result.scenario.name}.csv"
        result.table.to_csv(path)
        paths.append(str(path))
    path = directory / "metrics.json"
    path.write_text(dumps_json([r.to_json() for r in results]))  # NaN -> null
    paths.append(str(path))
    return paths
