"""The paper's evaluation of a population fit: pcVPC, Kaplan–Meier VPC by risk group, ROC of
ln(AUC_w2-4/CL) for colectomy after day 28, the Youden threshold and the classification
table (paper sections 2.2-2.4, 3.3-3.4, Figures 1-2).

Every replicate of a visual predictive check uses one posterior draw of the population
parameters, so the prediction intervals include parameter uncertainty:

- **pcVPC** (Bergstrand et al. 2011): concentrations are simulated for every subject's doses
  and sample times with new η ~ N(0, ω²) and residual error, censored at the subject's own
  assay limits like the data, and prediction-corrected: pcY = Y · PRED_bin / PRED, with PRED
  the typical-subject prediction (η = 0) at the posterior median population parameters and
  PRED_bin its median in the time bin (the factor kept within [0.1, 10]). Percentiles are
  those of the uncensored values only, observed and simulated alike; the fractions below
  LLOQ and above ULOQ are compared in their own panel.
- **KM-VPC**: subjects are grouped by the median of their ln(AUC_w2-4/CL) (source as for the
  ROC) against the threshold (5.79); each replicate draws every subject's event time from the
  Weibull model with that draw's λ, γ, β and the subject's x in the same posterior draw, censored
  at the subject's end of follow-up (day 90 after an observed colectomy).
- **ROC**: colectomies before day 28 are excluded as in the paper; the predictor is the
  posterior median of ln(AUC_w2-4/CL), lower meaning higher risk, by default from the PK
  model alone as in the paper (:func:`pk_only_ln_ratios`: each subject's concentrations,
  never its outcome), optionally the joint fit's (``ln_ratio_source="joint"``). AUROC with a
  bootstrap 95 % CI over subjects (the paper's non-parametric interval) and its posterior
  distribution (uncertainty of each x); the Youden-optimal threshold with both
  distributions; sensitivity, specificity, accuracy and Fisher's exact test at the
  published threshold and at the Youden threshold.

Examples
--------
>>> round(auroc(np.array([5.0, 6.0, 7.0, 8.0]), np.array([1, 0, 1, 0])), 2)
0.75
>>> kaplan_meier(np.array([2.0, 3.0, 3.0, 5.0]), np.array([1, 1, 0, 1]), np.array([0, 2.5, 4, 6]))
array([1.  , 0.75, 0.5 , 0.  ])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
import xarray as xr

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ
from asuc_bayes.inference.population import CohortData, cohort_of_fit
from asuc_bayes.inference.population_draws import PopulationDraws
from asuc_bayes.pk.kernels import concentration, individual_clearance, individual_volume
from asuc_bayes.spec.config import PARAMETER_NAMES, PK_PARAMETER_NAMES, ModelSpec
from asuc_bayes.strict_json import dumps_json
from asuc_bayes.studies.simulate import weibull_event_time

__all__ = [
    "Evaluation",
    "auroc",
    "classification",
    "evaluate_fit",
    "kaplan_meier",
    "km_vpc",
    "pcvpc",
    "pcvpc_axis_limits",
    "pk_only_ln_ratios",
    "roc_curve",
    "write_evaluation",
    "youden_threshold",
]

VPC_PERCENTILES = (5.0, 50.0, 95.0)
EARLY_COLECTOMY_DAY = 28.0
#: Where the subjects' ln(AUC_w2-4/CL) for ROC and risk groups come from.
LN_RATIO_SOURCES = ("pk_only", "joint")
LN_RATIO_DESCRIPTIONS = {
    "pk_only": "posterior median of ln(AUC_w2-4/CL) per subject from the PK model alone "
    "(concentrations, covariates, doses; fit's median population PK parameters; outcome "
    "not used)",
    "joint": "posterior median of ln(AUC_w2-4/CL) per subject from the fit (a joint fit "
    "uses each subject's own outcome)",
}
#: The prediction correction PRED_bin / PRED is kept within [1/PC_MAX, PC_MAX].
PC_MAX = 10.0


# -- statistics -----------------------------------------------------------------------------
def kaplan_meier(time_day, event, at_day) -> np.ndarray:
    """Product-limit survival estimate S(t) at ``at_day`` (right-continuous)."""
    time_day = np.asarray(time_day, dtype=float)
    event = np.asarray(event, dtype=bool)
    event_times = np.unique(time_day[event])
    survival = np.ones(event_times.size)
    current = 1.0
    for k, t in enumerate(event_times):
        at_risk = np.sum(time_day >= t)
        deaths = np.sum((time_day == t) & event)
        current *= 1.0 - deaths / at_risk
        survival[k] = current
    index = np.searchsorted(event_times, np.asarray(at_day, dtype=float), side="right")
    return np.concatenate([[1.0], survival])[index]


def auroc(x, outcome) -> float:
    """Area under the ROC curve of ``x`` as a predictor of ``outcome`` (1), lower x meaning
    higher risk: P(x of a random non-event > x of a random event), ties counted half."""
    x = np.asarray(x, dtype=float)
    outcome = np.asarray(outcome, dtype=bool)
    events, others = x[outcome], x[~outcome]
    if events.size == 0 or others.size == 0:
        return float("nan")
    greater = (others[None, :] > events[:, None]).sum()
    ties = (others[None, :] == events[:, None]).sum()
    return float((greater + 0.5 * ties) / (events.size * others.size))


def roc_curve(x, outcome) -> pd.DataFrame:
    """Sensitivity and specificity of "high risk if x < c" for every threshold c between
    consecutive distinct values (and beyond both ends)."""
    x = np.asarray(x, dtype=float)
    outcome = np.asarray(outcome, dtype=bool)
    values = np.unique(x)
    thresholds = np.concatenate(
        [[values[0] - 1.0], 0.5 * (values[1:] + values[:-1]), [values[-1] + 1.0]]
    )
    high = x[None, :] < thresholds[:, None]
    sensitivity = (high & outcome).sum(1) / max(outcome.sum(), 1)
    specificity = (~high & ~outcome).sum(1) / max((~outcome).sum(), 1)
    return pd.DataFrame(
        {"threshold": thresholds, "sensitivity": sensitivity, "specificity": specificity}
    )


def youden_threshold(x, outcome) -> float:
    """Threshold maximising sensitivity + specificity − 1 (the smallest if tied)."""
    curve = roc_curve(x, outcome)
    j = curve["sensitivity"] + curve["specificity"] - 1.0
    return float(curve["threshold"].iloc[int(np.argmax(j.to_numpy()))])


def classification(x, outcome, threshold: float) -> dict[str, Any]:
    """The 2 × 2 table of "high risk if x < threshold" against the outcome."""
    x = np.asarray(x, dtype=float)
    outcome = np.asarray(outcome, dtype=bool)
    high = x < threshold
    tp, fn = int(np.sum(high & outcome)), int(np.sum(~high & outcome))
    fp, tn = int(np.sum(high & ~outcome)), int(np.sum(~high & ~outcome))
    _, p_value = scipy.stats.fisher_exact([[tp, fp], [fn, tn]])
    n = tp + fn + fp + tn
    return {
        "threshold": float(threshold),
        "true_positive": tp,
        "false_negative": fn,
        "false_positive": fp,
        "true_negative": tn,
        "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
        "specificity": tn / (tn + fp) if tn + fp else float("nan"),
        "accuracy": (tp + tn) / n if n else float("nan"),
        "colectomy_rate_high": tp / (tp + fp) if tp + fp else float("nan"),
        "colectomy_rate_low": fn / (fn + tn) if fn + tn else float("nan"),
        "fisher_p": float(p_value),
    }


# -- visual predictive checks ---------------------------------------------------------------
def _draw_indices(posterior: xr.Dataset, n: int, rng) -> np.ndarray:
    total = posterior.sizes["chain"] * posterior.sizes["draw"]
    return rng.choice(total, size=n, replace=n > total)


def _flat(posterior: xr.Dataset, name: str) -> np.ndarray:
    values = posterior[name].values
    return values.reshape(-1, *values.shape[2:])


def _individual(spec: ModelSpec, data: CohortData, theta_cl, theta_v, crp_exponent, eta_cl, eta_v):
    pk = spec.pk
    cl = individual_clearance(
        theta_cl,
        data.weight_kg,
        data.crp_mg_l,
        eta_cl,
        weight_exponent=pk.weight_exponent_cl.estimate,
        crp_exponent=crp_exponent,
        reference_weight_kg=pk.reference_weight_kg,
        reference_crp_mg_l=pk.reference_crp_mg_l,
        crp_form=pk.crp_form,
    )
    v = individual_volume(
        theta_v,
        data.weight_kg,
        eta_v,
        weight_exponent=pk.weight_exponent_v.estimate,
        reference_weight_kg=pk.reference_weight_kg,
    )
    return cl, v


def _predict(data: CohortData, cl, v) -> np.ndarray:
    s = data.obs_subject
    return concentration(
        data.obs_time_day[:, None],
        data.dose_time_day[s],
        data.dose_amount_mg[s],
        data.dose_duration_day[s],
        cl[s],
        v[s],
        dose_end_day=data.dose_end[s],
    )[:, 0]


def _limits(data: CohortData, assay_limits: dict[str, tuple[float, float]] | None):
    """Per-observation (LLOQ, ULOQ).

    From ``assay_limits`` (by subject ID) when given, else from the subject's censored records
    (their value is the limit). A limit the subject's records do not show is the median of
    the limits the other subjects show, widened so as never to censor the subject's own
    measured values (a subject with none of its own is then censored like the cohort,
    which keeps the uncensored percentiles of observed and simulated data comparable); with
    no censored record in the whole cohort, 0 / infinity.
    """
    n_obs = data.obs_time_day.size
    below_all = data.obs_censoring == BELOW_LLOQ
    above_all = data.obs_censoring == ABOVE_ULOQ
    measured = data.obs_censoring == 0
    lower_seen = [
        data.obs_value_mg_l[(data.obs_subject == i) & below_all].max()
        for i in range(data.n_subjects)
        if ((data.obs_subject == i) & below_all).any()
    ]
    upper_seen = [
        data.obs_value_mg_l[(data.obs_subject == i) & above_all].min()
        for i in range(data.n_subjects)
        if ((data.obs_subject == i) & above_all).any()
    ]
    default_lower = float(np.median(lower_seen)) if lower_seen else 0.0
    default_upper = float(np.median(upper_seen)) if upper_seen else np.inf
    lower = np.zeros(n_obs)
    upper = np.full(n_obs, np.inf)
    for i, pid in enumerate(data.ids):
        mine = data.obs_subject == i
        if assay_limits and pid in assay_limits:
            lower[mine], upper[mine] = assay_limits[pid]
            continue
        values = data.obs_value_mg_l[mine & measured]
        below, above = mine & below_all, mine & above_all
        lower[mine] = (
            data.obs_value_mg_l[below].max()
            if below.any()
            else min(default_lower, values.min() if values.size else np.inf)
        )
        upper[mine] = (
            data.obs_value_mg_l[above].min()
            if above.any()
            else max(default_upper, values.max() if values.size else -np.inf)
        )
    return lower, upper


def _prediction_correction(pred: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """PRED_bin / PRED per observation, kept within [1/PC_MAX, PC_MAX].

    A typical-subject prediction far below its bin's median (a sample weeks after the last
    dose of a fast-clearing typical subject, PRED ~ 1e-6 mg/L) would otherwise multiply the
    observation by up to 1e12 and make the plot unreadable; observed and simulated values of
    the same sample get the same factor, so the cap changes the scale, not the comparison.
    """
    pred_bin = np.array([np.median(pred[bins == b]) for b in range(n_bins)])
    with np.errstate(divide="ignore"):
        correction = pred_bin[bins] / pred
    return np.clip(np.nan_to_num(correction, nan=1.0, posinf=PC_MAX), 1.0 / PC_MAX, PC_MAX)


def _uncensored_percentiles(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Percentiles :data:`VPC_PERCENTILES` of ``values[keep]`` (NaN when nothing is kept)."""
    if not keep.any():
        return np.full(len(VPC_PERCENTILES), np.nan)
    return np.percentile(values[keep], VPC_PERCENTILES)


def pcvpc(
    spec: ModelSpec,
    data: CohortData,
    posterior: xr.Dataset,
    *,
    replicates: int = 200,
    n_bins: int = 6,
    random_seed: int = 0,
    assay_limits: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Prediction-corrected VPC table with censoring handled separately.

    Per time bin: the observed 5/50/95th percentiles of the *uncensored* observations and
    the 2.5/50/97.5 % quantiles over replicates of the same percentiles of the uncensored
    simulated values (censored records never enter the percentiles, observed or simulated,
    so no percentile sits at a limit merely because of censoring: the M3 practice of the
    field, e.g. Bergstrand et al. 2011, the ``vpc`` R package); and, separately, the
    observed fractions below LLOQ and above ULOQ with the 2.5/50/97.5 % quantiles of the
    simulated fractions. A bin with no uncensored value has NaN percentiles.

    pcY = Y · PRED_bin / PRED with PRED the typical-subject prediction at the posterior
    median population parameters, the factor kept within [1/:data:`PC_MAX`, PC_MAX]
    (:func:`_prediction_correction`).
    """
    rng = np.random.default_rng(random_seed)
    medians = {
        n: float(np.median(posterior[n].values)) for n in ("theta_cl", "theta_v", "crp_exponent_cl")
    }
    zero = np.zeros(data.n_subjects)
    typical_cl, typical_v = _individual(
        spec, data, medians["theta_cl"], medians["theta_v"], medians["crp_exponent_cl"], zero, zero
    )
    pred = _predict(data, typical_cl, typical_v)
    times = data.obs_time_day
    edges = np.unique(np.quantile(times, np.linspace(0, 1, n_bins + 1)))
    n_bins = edges.size - 1
    bins = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, n_bins - 1)
    correction = _prediction_correction(pred, bins, n_bins)
    lower, upper = _limits(data, assay_limits)
    observed = data.obs_value_mg_l * correction
    measured = data.obs_censoring == 0
    indices = _draw_indices(posterior, replicates, rng)
    flat = {n: _flat(posterior, n) for n in PK_PARAMETER_NAMES}
    simulated_percentiles = np.empty((replicates, n_bins, len(VPC_PERCENTILES)))
    simulated_below = np.empty((replicates, n_bins))
    simulated_above = np.empty((replicates, n_bins))
    for r, s in enumerate(indices):
        eta_cl = rng.normal(0.0, flat["omega_cl"][s], data.n_subjects)
        eta_v = rng.normal(0.0, flat["omega_v"][s], data.n_subjects)
        cl, v = _individual(
            spec,
            data,
            flat["theta_cl"][s],
            flat["theta_v"][s],
            flat["crp_exponent_cl"][s],
            eta_cl,
            eta_v,
        )
        f = _predict(data, cl, v)
        noise = rng.standard_normal(f.size)
        if spec.pk.residual_form == "proportional":
            y = f * (1.0 + flat["residual_sd"][s] * noise)
        else:
            y = f * np.exp(flat["residual_sd"][s] * noise)
        below, above = y < lower, y > upper
        inside = ~(below | above)
        y = y * correction
        for b in range(n_bins):
            in_bin = bins == b
            simulated_percentiles[r, b] = _uncensored_percentiles(y, in_bin & inside)
            simulated_below[r, b] = below[in_bin].mean()
            simulated_above[r, b] = above[in_bin].mean()
    rows = []
    for b in range(n_bins):
        in_bin = bins == b
        row = {
            "bin": b,
            "time_low_day": edges[b],
            "time_high_day": edges[b + 1],
            "time_median_day": float(np.median(times[in_bin])),
            "n": int(in_bin.sum()),
            "n_uncensored": int((in_bin & measured).sum()),
            "observed_censored_fraction": float((data.obs_censoring[in_bin] != 0).mean()),
            "observed_below_lloq_fraction": float(
                (data.obs_censoring[in_bin] == BELOW_LLOQ).mean()
            ),
            "observed_above_uloq_fraction": float(
                (data.obs_censoring[in_bin] == ABOVE_ULOQ).mean()
            ),
        }
        observed_percentiles = _uncensored_percentiles(observed, in_bin & measured)
        for k, p in enumerate(VPC_PERCENTILES):
            row[f"observed_p{p:g}"] = float(observed_percentiles[k])
            column = simulated_percentiles[:, b, k]
            column = column[np.isfinite(column)]
            low, mid, high = (
                np.quantile(column, [0.025, 0.5, 0.975]) if column.size else (np.nan,) * 3
            )
            row[f"simulated_p{p:g}_lo"] = float(low)
            row[f"simulated_p{p:g}_median"] = float(mid)
            row[f"simulated_p{p:g}_hi"] = float(high)
        for name, values in (
            ("below_lloq", simulated_below[:, b]),
            ("above_uloq", simulated_above[:, b]),
            ("censored", simulated_below[:, b] + simulated_above[:, b]),
        ):
            low, mid, high = np.quantile(values, [0.025, 0.5, 0.975])
            row[f"simulated_{name}_lo"] = float(low)
            row[f"simulated_{name}_median"] = float(mid)
            row[f"simulated_{name}_hi"] = float(high)
        rows.append(row)
    return pd.DataFrame(rows)


def pcvpc_axis_limits(table: pd.DataFrame, margin: float = 1.5) -> tuple[float, float]:
    """Log-axis limits of the pcVPC concentration panel from the plotted values.

    The smallest and largest finite plotted value (observed percentiles and simulated
    intervals), widened by the factor ``margin`` each side.

    >>> t = pd.DataFrame({"observed_p5": [1.0, np.nan], "simulated_p95_hi": [30.0, 20.0]})
    >>> pcvpc_axis_limits(t)
    (0.6666666666666666, 45.0)
    """
    columns = [c for c in table.columns if c.startswith(("observed_p", "simulated_p"))]
    values = table[columns].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return (0.1, 100.0)
    return (float(values.min() / margin), float(values.max() * margin))


def risk_groups(posterior: xr.Dataset, threshold: float) -> np.ndarray:
    """True for subjects whose posterior median ln(AUC_w2-4/CL) is below ``threshold``."""
    return np.median(_flat(posterior, "ln_auc_cl"), axis=0) < threshold


def pk_only_ln_ratios(
    tree: xr.DataTree,
    spec: ModelSpec,
    *,
    n_draws: int = 400,
    random_seed: int = 0,
    grid_points: int = 101,
) -> np.ndarray:
    """Each subject's posterior draws of ln(AUC_w2-4/CL) from the PK model alone.

    As in the paper (EBEs of the popPK model), a subject's ratio is estimated from its own
    covariates, doses and concentrations only, never from its outcome: the individual
    posterior over (η_CL, η_V) is computed exactly by quadrature
    (:func:`asuc_bayes.inference.grid.grid_posterior`, the forecasting path) at the fit's posterior
    median population PK parameters (θ_CL, θ_V, CRP exponent, ω's, residual SD), with the
    colectomy record removed. The population values of a joint fit are informed by all
    outcomes together (as the paper's final popPK estimates came from all patients), but no
    subject's own outcome enters its own ratio.

    Returns
    -------
    numpy.ndarray
        Shape (n_draws, n_subjects), the subjects in the fit's order.
    """
    from dataclasses import replace

    from asuc_bayes.inference.forecast import derived_quantities
    from asuc_bayes.inference.grid import grid_posterior
    from asuc_bayes.inference.population_forecast import median_spec

    center = median_spec(PopulationDraws.from_fit(tree, spec=spec))
    rng = np.random.default_rng(random_seed)
    patients = cohort_of_fit(tree).patients()
    x = np.empty((n_draws, len(patients)))
    for i, patient in enumerate(patients):
        patient = replace(patient, events=())
        grid = grid_posterior(center, patient, n_points=grid_points, n_coarse=61)
        eta = grid.sample(n_draws, random_seed=int(rng.integers(2**63)))
        x[:, i] = derived_quantities(center, patient, eta)["ln_auc_cl"]
    return x


def km_vpc(
    spec: ModelSpec,
    data: CohortData,
    posterior: xr.Dataset,
    *,
    replicates: int = 200,
    random_seed: int = 0,
    grid_day: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> pd.DataFrame:
    """Kaplan–Meier VPC by risk group: observed KM and the 2.5/50/97.5 % quantiles of the
    simulated KM curves on a daily grid (columns ``group``, ``day``, ``observed``,
    ``simulated_lo``, ``simulated_median``, ``simulated_hi``, ``n``).

    ``high`` (boolean per subject) gives the risk groups; by default the posterior median
    ln ratio of the fit against the threshold. Event times are always simulated from the
    fit's posterior draws (λ, γ, β and each subject's x in the same draw)."""
    rng = np.random.default_rng(random_seed)
    grid_day = np.arange(0.0, spec.tte.horizon_day + 1.0) if grid_day is None else grid_day
    if high is None:
        high = risk_groups(posterior, spec.tte.high_risk_threshold)
    censor_day = np.where(data.event == 1, spec.tte.horizon_day, data.event_time_day)
    x = _flat(posterior, "ln_auc_cl")
    draws = PopulationDraws(
        spec,
        **{name: _flat(posterior, name) for name in PARAMETER_NAMES},
        source="fit",
    )
    indices = _draw_indices(posterior, replicates, rng)
    curves = {group: np.empty((replicates, grid_day.size)) for group in ("low", "high")}
    for r, s in enumerate(indices):
        target = -np.log(rng.uniform(size=data.n_subjects))
        t = weibull_event_time(target, x[s], spec=draws.spec_at(int(s)))
        observed_time = np.minimum(t, censor_day)
        event = t <= censor_day
        for group, members in (("low", ~high), ("high", high)):
            if members.any():
                curves[group][r] = kaplan_meier(observed_time[members], event[members], grid_day)
            else:
                curves[group][r] = np.nan
    rows = []
    for group, members in (("low", ~high), ("high", high)):
        observed = (
            kaplan_meier(data.event_time_day[members], data.event[members] == 1, grid_day)
            if members.any()
            else np.full(grid_day.size, np.nan)
        )
        low, mid, hi = (
            np.nanquantile(curves[group], [0.025, 0.5, 0.975], axis=0)
            if members.any()
            else (np.full(grid_day.size, np.nan),) * 3
        )
        for k, day in enumerate(grid_day):
            rows.append(
                {
                    "group": group,
                    "day": float(day),
                    "n": int(members.sum()),
                    "observed": float(observed[k]),
                    "simulated_lo": float(low[k]),
                    "simulated_median": float(mid[k]),
                    "simulated_hi": float(hi[k]),
                }
            )
    return pd.DataFrame(rows)


# -- the whole evaluation -------------------------------------------------------------------
class Evaluation(dict):
    """Results of :func:`evaluate_fit`: ``metrics`` (JSON-ready), ``pcvpc`` and ``km_vpc``
    tables, ``roc`` curve, ``subjects`` table, distributions for the figures."""


def evaluate_fit(
    tree: xr.DataTree,
    spec: ModelSpec,
    *,
    replicates: int = 200,
    bootstrap: int = 2000,
    random_seed: int = 0,
    ln_ratio_source: str = "pk_only",
) -> Evaluation:
    """The paper's evaluation of a population fit (see the module docstring).

    ``ln_ratio_source`` chooses the subjects' ln(AUC_w2-4/CL) for the ROC, the Youden
    threshold, the classification tables and the KM-VPC risk groups: ``"pk_only"`` (default,
    as the paper: :func:`pk_only_ln_ratios`, independent of each subject's outcome) or
    ``"joint"`` (the fit's posterior, which for a joint fit is informed by the subject's own
    outcome and so flatters the discrimination).
    """
    if ln_ratio_source not in LN_RATIO_SOURCES:
        raise ValueError(
            f"ln_ratio_source must be one of {', '.join(LN_RATIO_SOURCES)}, got {ln_ratio_source!r}"
        )
    rng = np.random.default_rng(random_seed)
    posterior = tree["posterior"].to_dataset()
    data = cohort_of_fit(tree)
    threshold = spec.tte.high_risk_threshold
    if ln_ratio_source == "pk_only":
        x_draws = pk_only_ln_ratios(tree, spec, random_seed=random_seed)
    else:
        x_draws = _flat(posterior, "ln_auc_cl")
    x = np.median(x_draws, axis=0)
    keep = ~((data.event == 1) & (data.event_time_day < EARLY_COLECTOMY_DAY))
    outcome = (data.event == 1) & (data.event_time_day <= spec.tte.horizon_day)
    xs, ys = x[keep], outcome[keep]
    auc = auroc(xs, ys)
    boot_auc, boot_youden = [], []
    n = xs.size
    for _ in range(bootstrap):
        pick = rng.integers(0, n, n)
        if ys[pick].any() and (~ys[pick]).any():
            boot_auc.append(auroc(xs[pick], ys[pick]))
            boot_youden.append(youden_threshold(xs[pick], ys[pick]))
    thinned = x_draws[rng.choice(x_draws.shape[0], min(1000, x_draws.shape[0]), replace=False)]
    posterior_auc = np.array([auroc(draw[keep], ys) for draw in thinned])
    posterior_youden = np.array([youden_threshold(draw[keep], ys) for draw in thinned])
    youden = youden_threshold(xs, ys) if ys.any() and (~ys).any() else float("nan")

    def interval(values) -> list[float]:
        values = np.asarray(values, dtype=float)
        return (
            [float(q) for q in np.quantile(values, [0.025, 0.975])]
            if values.size
            else [float("nan")] * 2
        )

    high = x < threshold
    metrics = {
        "n_subjects": int(data.n_subjects),
        "n_roc": int(keep.sum()),
        "excluded_early_colectomies": int((~keep).sum()),
        "n_colectomies_roc": int(ys.sum()),
        "auroc": auc,
        "auroc_bootstrap_95": interval(boot_auc),
        "auroc_posterior_median": float(np.median(posterior_auc)),
        "auroc_posterior_95": interval(posterior_auc),
        "youden_threshold": youden,
        "youden_bootstrap_95": interval(boot_youden),
        "youden_posterior_median": float(np.median(posterior_youden)),
        "youden_posterior_95": interval(posterior_youden),
        "classification_published_threshold": classification(xs, ys, threshold),
        "classification_youden_threshold": classification(xs, ys, youden),
        "risk_groups": {
            "threshold": threshold,
            "high": int(high.sum()),
            "low": int((~high).sum()),
            "colectomies_high": int(((data.event == 1) & high).sum()),
            "colectomies_low": int(((data.event == 1) & ~high).sum()),
        },
        "replicates": replicates,
        "bootstrap": bootstrap,
        "ln_ratio_source": ln_ratio_source,
        "x_source": LN_RATIO_DESCRIPTIONS[ln_ratio_source],
    }
    subjects = pd.DataFrame(
        {
            "id": list(data.ids),
            "ln_auc_cl_median": x,
            "ln_auc_cl_q2.5": np.quantile(x_draws, 0.025, axis=0),
            "ln_auc_cl_q97.5": np.quantile(x_draws, 0.975, axis=0),
            "risk_group": np.where(high, "high", "low"),
            "event": data.event.astype(int),
            "time_day": data.event_time_day,
            "in_roc": keep,
        }
    )
    result = Evaluation(
        metrics=metrics,
        pcvpc=pcvpc(spec, data, posterior, replicates=replicates, random_seed=random_seed),
        km_vpc=km_vpc(
            spec, data, posterior, replicates=replicates, random_seed=random_seed, high=high
        ),
        roc=roc_curve(xs, ys),
        subjects=subjects,
        posterior_auroc=posterior_auc,
        posterior_youden=posterior_youden,
        bootstrap_youden=np.asarray(boot_youden),
    )
    return result


def write_evaluation(result: Evaluation, folder) -> list[Path]:
    """Figures (PNG) and tables (CSV, JSON) of an evaluation into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    path = folder / "metrics.json"
    path.write_text(dumps_json(result["metrics"]) + "\n")  # NaN -> null
    written.append(path)
    for name in ("pcvpc", "km_vpc", "roc", "subjects"):
        path = folder / f"{name}.csv"
        result[name].to_csv(path, index=False)
        written.append(path)

    table = result["pcvpc"]
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4), gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    t = table["time_median_day"]
    for p, colour in zip(VPC_PERCENTILES, ("tab:blue", "tab:red", "tab:blue"), strict=True):
        ax.fill_between(
            t,
            table[f"simulated_p{p:g}_lo"],
            table[f"simulated_p{p:g}_hi"],
            color=colour,
            alpha=0.2,
            label={5.0: "simulated 5th & 95th: 95 % PI", 50.0: "simulated 50th: 95 % PI"}.get(p),
        )
        ax.plot(t, table[f"simulated_p{p:g}_median"], color=colour, ls="--", lw=1)
        ax.plot(
            t,
            table[f"observed_p{p:g}"],
            color=colour,
            marker="o",
            lw=1.5,
            label=f"observed {p:g}th",
        )
    ax.plot([], [], color="grey", ls="--", lw=1, label="simulated median percentile")
    ax.set_yscale("log")
    ax.set_ylim(*pcvpc_axis_limits(table))
    ax.set_xlabel("time since first dose (day)")
    ax.set_ylabel("prediction-corrected concentration (mg/L)")
    ax.set_title("pcVPC of uncensored concentrations")
    ax.legend(fontsize=7, loc="best")
    ax = axes[1]
    for name, label, colour in (
        ("below_lloq", "below LLOQ", "tab:purple"),
        ("above_uloq", "above ULOQ", "tab:orange"),
    ):
        ax.fill_between(
            t,
            table[f"simulated_{name}_lo"],
            table[f"simulated_{name}_hi"],
            color=colour,
            alpha=0.25,
            label=f"{label}: simulated 95 % PI",
        )
        ax.plot(
            t,
            table[f"observed_{name}_fraction"],
            marker="o",
            color=colour,
            label=f"{label}: observed",
        )
    ax.set_ylim(0, 1)
    ax.set_xlabel("time since first dose (day)")
    ax.set_ylabel("fraction of samples censored")
    ax.set_title("censored fractions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = folder / "pcvpc.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    km = result["km_vpc"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, group in zip(axes, ("low", "high"), strict=True):
        part = km[km["group"] == group]
        ax.fill_between(
            part["day"],
            part["simulated_lo"],
            part["simulated_hi"],
            color="grey",
            alpha=0.35,
            label="model 95 % PI",
        )
        ax.step(part["day"], part["observed"], where="post", color="k", label="observed KM")
        ax.set_title(f"{group}-risk phenotype (n = {int(part['n'].iloc[0])})")
        ax.set_xlabel("day")
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("colectomy-free")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path = folder / "km_vpc.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    metrics = result["metrics"]
    roc = result["roc"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    ax = axes[0]
    ax.plot(1 - roc["specificity"], roc["sensitivity"], drawstyle="steps-post", color="k")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    youden = metrics["classification_youden_threshold"]
    ax.plot(
        1 - youden["specificity"],
        youden["sensitivity"],
        "o",
        color="red",
        label=f"Youden {metrics['youden_threshold']:.2f}",
    )
    lo, hi = metrics["auroc_bootstrap_95"]
    ax.set_title(f"ROC, colectomy after day 28: AUROC {metrics['auroc']:.2f} [{lo:.2f}-{hi:.2f}]")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.legend(fontsize=8)
    ax = axes[1]
    bins = np.linspace(3, 9, 49)
    ax.hist(result["bootstrap_youden"], bins=bins, alpha=0.5, density=True, label="bootstrap")
    ax.hist(
        result["posterior_youden"],
        bins=bins,
        alpha=0.5,
        density=True,
        label="posterior (x uncertainty)",
    )
    ax.axvline(
        metrics["classification_published_threshold"]["threshold"],
        color="red",
        ls="--",
        label="published 5.79",
    )
    ax.set_xlabel("Youden-optimal threshold of ln(AUC_w2-4/CL)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = folder / "roc.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
