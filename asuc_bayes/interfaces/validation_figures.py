"""Figures of a validation (matplotlib, no pyplot state), for the HTML report.

- :func:`vpc_figure` — VPC or pcVPC of uncensored concentrations, with a censored-fraction
  panel (:mod:`.vpc`);
- :func:`npde_figure` — histogram of the NPDE against the N(0, 1) density, and their QQ plot;
- :func:`observed_predicted_figure` — observed against predicted concentrations, a priori and
  by Bayesian forecasting (measured records);
- :func:`calibration_figure` — observed colectomy fraction against the predicted 90-day risk
  (groups by quantiles of the risk, 95 % Wilson intervals), one series per model;
- :func:`weights_figure` — each patient's posterior model probabilities.

Examples
--------
>>> import numpy as np
>>> figure = npde_figure(np.random.default_rng(0).standard_normal(50), "model A")
>>> len(figure.axes)
2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.stats
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from asuc_bayes.data.dataset import MEASURED
from asuc_bayes.studies.validation.vpc import VPC_PERCENTILES, ModelRecords, VpcTable

__all__ = [
    "MODEL_COLOURS",
    "calibration_figure",
    "npde_figure",
    "observed_predicted_figure",
    "risk_groups",
    "vpc_figure",
    "weights_figure",
]

#: Okabe–Ito colours (colour-blind safe), one per model.
MODEL_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
SIMULATED_COLOURS = {5.0: "#0072B2", 50.0: "#D55E00", 95.0: "#0072B2"}


def _figure(width: float, height: float, **margins: float) -> Figure:
    """A figure with fixed margins (no automatic layout: it draws the figure twice, ~40 % of
    the time of a PNG)."""
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(**margins)
    return figure


def _plain_log_axis(axis) -> None:
    """Log-axis ticks at 1, 2, 5 × 10^k labelled as plain numbers (0.5, 10, 200)."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _log_limits(values: np.ndarray, margin: float = 1.5) -> tuple[float, float]:
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return 0.1, 100.0
    return float(values.min() / margin), float(values.max() * margin)


def vpc_figure(table: VpcTable, title: str) -> Figure:
    """Concentration panel (observed percentiles, simulated 95 % bands) and censored fractions."""
    figure = _figure(9.5, 3.8, left=0.08, right=0.98, bottom=0.13, top=0.92, wspace=0.25)
    ax, ax_censored = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    t = table.time_median_day
    for k, p in enumerate(VPC_PERCENTILES):
        colour = SIMULATED_COLOURS[p]
        band = table.simulated[:, k, :]
        ax.fill_between(t, band[:, 0], band[:, 2], color=colour, alpha=0.18, lw=0)
        ax.plot(t, band[:, 1], color=colour, ls="--", lw=1)
        ax.plot(t, table.observed[:, k], color=colour, marker="o", lw=1.5, ms=4)
    ax.plot([], [], color="grey", marker="o", lw=1.5, label="observed 5th, 50th, 95th pct.")
    ax.plot([], [], color="grey", ls="--", lw=1, label="simulated (median)")
    ax.fill_between([], [], [], color="grey", alpha=0.25, label="simulated 95 % interval")
    ax.set_yscale("log")
    _plain_log_axis(ax.yaxis)
    ax.set_ylim(*_log_limits(np.concatenate([table.observed.ravel(), table.simulated.ravel()])))
    ax.set_xlabel("time since first dose (day)")
    what = "prediction-corrected concentration" if table.corrected else "concentration"
    ax.set_ylabel(f"{what} (mg/L)")
    ax.set_title(f"{title}: {'pcVPC' if table.corrected else 'VPC'}", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    band = table.simulated_censored
    ax_censored.fill_between(t, band[:, 0], band[:, 2], color="#7B3294", alpha=0.25, lw=0)
    ax_censored.plot(t, band[:, 1], color="#7B3294", ls="--", lw=1, label="simulated")
    ax_censored.plot(
        t, table.observed_censored, color="#7B3294", marker="o", lw=1.5, ms=4, label="observed"
    )
    ax_censored.set_ylim(0, 1)
    ax_censored.set_xlabel("time since first dose (day)")
    ax_censored.set_ylabel("fraction censored")
    ax_censored.set_title("censored samples", fontsize=10)
    ax_censored.legend(fontsize=7)
    return figure


def npde_figure(npde: np.ndarray, title: str) -> Figure:
    """Histogram with the N(0, 1) density, and the QQ plot against N(0, 1)."""
    x = np.sort(np.asarray(npde, dtype=float).ravel())
    figure = _figure(8.0, 3.3, left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.28)
    ax_hist, ax_qq = figure.subplots(1, 2)
    grid = np.linspace(-4.0, 4.0, 201)
    if x.size:
        bins = int(np.clip(np.sqrt(x.size), 5, 30))
        ax_hist.hist(x, bins=bins, density=True, color="#56B4E9", edgecolor="white")
    ax_hist.plot(grid, scipy.stats.norm.pdf(grid), color="black", lw=1.2, label="N(0, 1)")
    ax_hist.set_xlabel("NPDE")
    ax_hist.set_ylabel("density")
    ax_hist.set_title(f"{title}: NPDE", fontsize=10)
    ax_hist.legend(fontsize=7)
    if x.size:
        theoretical = scipy.stats.norm.ppf((np.arange(1, x.size + 1) - 0.5) / x.size)
        ax_qq.plot(theoretical, x, "o", ms=3, color="#0072B2", alpha=0.7)
        low = float(min(theoretical[0], x[0], -3.0))
        high = float(max(theoretical[-1], x[-1], 3.0))
        ax_qq.plot([low, high], [low, high], color="black", lw=1)
    ax_qq.set_xlabel("N(0, 1) quantile")
    ax_qq.set_ylabel("NPDE quantile")
    ax_qq.set_title("QQ plot", fontsize=10)
    return figure


def observed_predicted_figure(records: ModelRecords) -> Figure:
    """Observed against a-priori and Bayesian (leave-future-out) predictions, log axes."""
    measured = records.censoring == MEASURED
    figure = _figure(8.0, 3.6, left=0.09, right=0.98, bottom=0.14, top=0.91, wspace=0.08)
    axes = figure.subplots(1, 2, sharex=True, sharey=True)
    later = measured & ~records.first
    panels = (
        (axes[0], records.pred_mg_l, measured, "a priori (covariates only)"),
        (axes[1], records.bayesian_mg_l, later, "Bayesian, from earlier samples"),
    )
    values = np.concatenate([records.observed_mg_l[measured], records.pred_mg_l[measured]])
    values = np.concatenate([values, records.bayesian_mg_l[later]])
    low, high = _log_limits(values, 1.3)
    for ax, predicted, keep, label in panels:
        ax.plot(predicted[keep], records.observed_mg_l[keep], "o", ms=3, alpha=0.6)
        ax.plot([low, high], [low, high], color="black", lw=1)
        for factor in (0.7, 1.3):
            ax.plot([low, high], [low * factor, high * factor], color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            _plain_log_axis(axis)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_xlabel("predicted (mg/L)")
        ax.set_title(f"{records.name}: {label}", fontsize=9)
    axes[0].set_ylabel("observed (mg/L)")
    return figure


def _wilson(successes: np.ndarray, n: np.ndarray, z: float = 1.959964) -> np.ndarray:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.stack([centre - half, centre + half])


def risk_groups(risk: np.ndarray, n_groups: int) -> np.ndarray:
    """Group index of each patient: quantile groups of the predicted risk (ties together).

    Examples
    --------
    >>> risk_groups(np.array([0.1, 0.5, 0.2, 0.9]), 2).tolist()
    [0, 1, 0, 1]
    """
    risk = np.asarray(risk, dtype=float)
    edges = np.unique(np.quantile(risk, np.linspace(0.0, 1.0, n_groups + 1)))
    if edges.size < 2:
        return np.zeros(risk.size, dtype=int)
    return np.clip(np.searchsorted(edges, risk, side="right") - 1, 0, edges.size - 2)


def calibration_figure(outcomes: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> Figure:
    """Observed colectomy fraction per group of predicted 90-day risk, per model.

    ``outcomes``: (model name, predicted risk, label 0/1) per model. Groups are the quintiles
    of the risk (fewer with fewer than 50 patients: about 10 patients per group).
    """
    figure = _figure(4.6, 4.2, left=0.14, right=0.97, bottom=0.12, top=0.93)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="black", lw=1, label="perfect calibration")
    for m, (name, risk, label) in enumerate(outcomes):
        risk, label = np.asarray(risk, dtype=float), np.asarray(label, dtype=float)
        groups = risk_groups(risk, int(np.clip(risk.size // 10, 1, 5)))
        xs, ys, counts, events = [], [], [], []
        for g in np.unique(groups):
            mine = groups == g
            xs.append(risk[mine].mean())
            ys.append(label[mine].mean())
            counts.append(mine.sum())
            events.append(label[mine].sum())
        interval = _wilson(np.array(events), np.array(counts, dtype=float))
        colour = MODEL_COLOURS[m % len(MODEL_COLOURS)]
        ys_arr = np.array(ys)
        ax.errorbar(
            xs,
            ys_arr,
            yerr=np.abs(np.stack([ys_arr - interval[0], interval[1] - ys_arr])),
            fmt="o-",
            color=colour,
            capsize=3,
            ms=4,
            label=name,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted 90-day colectomy risk")
    ax.set_ylabel("observed colectomy fraction")
    ax.set_title("calibration of the 90-day risk", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    return figure


def weights_figure(weights: np.ndarray, names: Sequence[str]) -> Figure:
    """Stacked posterior model probabilities per patient (patients ordered by the first
    model's weight, then the second's)."""
    weights = np.asarray(weights, dtype=float)
    n_patients = weights.shape[0]
    keys = tuple(-weights[:, m] for m in reversed(range(weights.shape[1])))
    order = np.lexsort(keys) if n_patients else np.zeros(0, dtype=int)
    figure = _figure(9.0, 3.0, left=0.07, right=0.99, bottom=0.16, top=0.9)
    ax = figure.add_subplot()
    bottom = np.zeros(n_patients)
    edges = np.arange(n_patients + 1) - 0.5
    for m, name in enumerate(names):
        top = bottom + weights[order, m]
        colour = MODEL_COLOURS[m % len(MODEL_COLOURS)]
        if n_patients:  # one step patch per model, not a bar per patient (fast for 1000s)
            ax.stairs(top, edges, baseline=bottom, fill=True, color=colour, label=name, lw=0)
        bottom = top
    ax.set_xlim(-0.5, max(n_patients, 1) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel("patients (ordered by weight)")
    ax.set_ylabel("posterior model probability")
    ax.set_title("per-patient model weights", fontsize=10)
    ax.legend(fontsize=7, loc="upper right", ncol=min(len(names), 3))
    return figure
