"""Figures of one patient's forecast (matplotlib, no pyplot state): written once, used by the
web app and the HTML report.

- :func:`concentration_figure` — concentration–time course: a-priori (dashed) and a-posteriori
  (solid, posterior median) curves, the 90 % credible band, the MAP curve, observations with
  censored ones marked, doses, and the day 14–28 AUC window shaded.
- :func:`ln_ratio_figure` — posterior density of ln(AUC_w2-4/CL) with the high-risk threshold,
  the MAP and the a-priori values.
- :func:`dose_risk_figure` — 90-day risk against the dose chosen (from a dose recommendation),
  the recommended and the MAP-recommended doses as labelled lines inside the axes.
- :func:`dose_trough_figure` — trough against the maintenance dose (from a trough plan).
- :func:`model_average_figure` — the 90-day risk under each model and under their average.
- :func:`figure_png` — PNG bytes of a figure (for embedding as base64).

Every figure is a :class:`matplotlib.figure.Figure` built without pyplot, so that concurrent
app sessions share no global state.

Examples
--------
>>> from asuc_bayes.interfaces.plots import concentration_figure, figure_png
>>> figure = concentration_figure(forecast)                                  # doctest: +SKIP
>>> png = figure_png(figure)                                                 # doctest: +SKIP
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.signal
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullLocator

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED

__all__ = [
    "CREDIBLE_BAND",
    "concentration_figure",
    "dose_risk_figure",
    "dose_trough_figure",
    "figure_png",
    "ln_ratio_figure",
    "model_average_figure",
]

#: Central credible band of the concentration curves.
CREDIBLE_BAND = 0.90
#: Colours (colour-blind safe: Okabe–Ito).
POSTERIOR_COLOUR = "#0072B2"
PRIOR_COLOUR = "#555555"
MAP_COLOUR = "#D55E00"
HIGH_RISK_COLOUR = "#CC3311"
LOW_RISK_COLOUR = "#009E73"
WINDOW_COLOUR = "#F0E442"
#: Lowest concentration shown on the log axis (mg/L).
LOG_FLOOR_MG_L = 0.05


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    figure = Figure(figsize=(width, height), layout="tight")
    return figure, figure.add_subplot()


def concentration_figure(
    forecast,
    *,
    log_scale: bool = True,
    width: float = 8.0,
    height: float = 4.8,
    map_label: str = "MAP (published tool)",
) -> Figure:
    """The concentration–time course of one patient's forecast.

    Parameters
    ----------
    forecast
        A :class:`asuc_bayes.inference.forecast.PatientForecast`.
    log_scale
        Logarithmic concentration axis (troughs and censored samples stay visible).
    width, height
        Figure size in inches.
    map_label
        The legend of the MAP curve.

    Returns
    -------
    matplotlib.figure.Figure
    """
    tree = forecast.tree
    predictions = tree["predictions"]
    constant = tree["constant_data"]
    time_day = predictions["time"].values
    curves = predictions["concentration"].values.reshape(-1, time_day.size)
    tail = (1.0 - CREDIBLE_BAND) / 2
    low, median, high = np.quantile(curves, [tail, 0.5, 1.0 - tail], axis=0)
    window = forecast.spec.tte.auc_window_day

    figure, ax = _figure(width, height)
    ax.axvspan(*window, color=WINDOW_COLOUR, alpha=0.25, lw=0, zorder=0)
    ax.fill_between(time_day, low, high, color=POSTERIOR_COLOUR, alpha=0.22, lw=0, zorder=1)
    ax.plot(time_day, median, color=POSTERIOR_COLOUR, lw=2.0, zorder=3)
    ax.plot(
        time_day,
        predictions["concentration_a_priori"].values,
        color=PRIOR_COLOUR,
        lw=1.4,
        ls="--",
        zorder=2,
    )
    ax.plot(
        time_day,
        predictions["concentration_map"].values,
        color=MAP_COLOUR,
        lw=1.2,
        ls=":",
        zorder=4,
    )

    observed = tree["observed_data"]["concentration"].values
    obs_time = constant["obs_time_day"].values
    censoring = constant["obs_censoring"].values
    markers = {
        MEASURED: dict(marker="o", s=36, facecolor="black", edgecolor="black"),
        BELOW_LLOQ: dict(marker="v", s=60, facecolor="white", edgecolor="black", linewidth=1.4),
        ABOVE_ULOQ: dict(marker="^", s=60, facecolor="white", edgecolor="black", linewidth=1.4),
    }
    for code, style in markers.items():
        chosen = censoring == code
        if chosen.any():
            ax.scatter(obs_time[chosen], observed[chosen], zorder=6, **style)

    peak = max(float(np.max(high)), float(np.max(observed, initial=0.0)))
    if log_scale:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_locator(NullLocator())  # dozens of unlabelled ticks cost ~15 %
        floor = max(LOG_FLOOR_MG_L, 0.5 * float(np.min(observed, initial=np.inf)))
        floor = min(floor, 1.0)
        ax.set_ylim(floor, peak * 2.0)
    else:
        ax.set_ylim(0, peak * 1.12)
    ax.set_xlim(time_day[0], time_day[-1])
    dose_time = constant["dose_time_day"].values
    ax.plot(
        dose_time,
        np.full(dose_time.shape, 1.0),
        ls="none",
        marker="v",
        ms=7,
        color="#6A3D9A",
        transform=ax.get_xaxis_transform(),
        clip_on=False,
        zorder=7,
    )
    ax.set_xlabel("days since the first infliximab dose")
    ax.set_ylabel("infliximab concentration (mg/L)")
    ax.grid(alpha=0.25, which="major")
    percent = round(100 * CREDIBLE_BAND)
    handles = [
        Line2D([], [], color=POSTERIOR_COLOUR, lw=2.0, label="a posteriori (posterior median)"),
        Patch(color=POSTERIOR_COLOUR, alpha=0.22, label=f"{percent} % credible band"),
        Line2D([], [], color=PRIOR_COLOUR, lw=1.4, ls="--", label="a priori (typical patient)"),
        Line2D([], [], color=MAP_COLOUR, lw=1.2, ls=":", label=map_label),
        Patch(
            color=WINDOW_COLOUR, alpha=0.35, label=f"AUC window (day {window[0]:g}–{window[1]:g})"
        ),
        Line2D([], [], ls="none", marker="v", color="#6A3D9A", label="infusion"),
    ]
    labels = {MEASURED: "measured", BELOW_LLOQ: "below LLOQ (at LLOQ)", ABOVE_ULOQ: "above ULOQ"}
    for code, label in labels.items():
        if np.any(censoring == code):
            style = markers[code]
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="none",
                    marker=style["marker"],
                    markerfacecolor=style["facecolor"],
                    markeredgecolor="black",
                    ms=7,
                    label=label,
                )
            )
    ax.legend(
        handles=handles,
        fontsize=7.5,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.15),
        ncol=4,
        frameon=False,
    )
    return figure


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``values`` on the evenly spaced ``grid``, Scott's bandwidth
    (as :class:`scipy.stats.gaussian_kde`), by binning and an FFT convolution: ~1 ms instead
    of ~50 ms for 4000 draws, which keeps the app responsive."""
    step = float(grid[1] - grid[0])
    counts, _ = np.histogram(
        values, bins=grid.size, range=(grid[0] - step / 2, grid[-1] + step / 2)
    )
    bandwidth = float(np.std(values, ddof=1)) * values.size ** (-1 / 5)
    if not bandwidth > step / 4:  # (nearly) all draws equal: a spike one bin wide
        return counts / (values.size * step)
    half = int(np.ceil(5 * bandwidth / step))
    offsets = np.arange(-half, half + 1) * step
    kernel = np.exp(-0.5 * (offsets / bandwidth) ** 2)
    kernel /= kernel.sum()
    smoothed = scipy.signal.fftconvolve(counts, kernel, mode="same")
    return np.maximum(smoothed, 0.0) / (values.size * step)


def ln_ratio_figure(
    forecast, *, summary: Mapping[str, Any] | None = None, width: float = 8.0, height: float = 3.4
) -> Figure:
    """Posterior density of ln(AUC_w2-4/CL) with the high-risk threshold, MAP and a priori.

    The area left of the threshold (high risk) is shaded; its probability is printed.
    ``summary`` is ``forecast.summary()`` if the caller has it already.
    """
    summary = summary or forecast.summary()
    threshold = forecast.spec.tte.high_risk_threshold
    values = forecast.tree["posterior"]["ln_auc_cl"].values.ravel()
    map_value = summary["map"]["ln_auc_cl"]
    prior_value = summary["a_priori"]["ln_auc_cl"]
    low = min(np.quantile(values, 0.001), threshold, map_value, prior_value) - 0.4
    high = max(np.quantile(values, 0.999), threshold, map_value, prior_value) + 0.4
    grid = np.linspace(low, high, 400)
    density = _density(values, grid)

    figure, ax = _figure(width, height)
    below = grid <= threshold
    ax.fill_between(grid[below], density[below], color=HIGH_RISK_COLOUR, alpha=0.35, lw=0)
    ax.fill_between(grid[~below], density[~below], color=LOW_RISK_COLOUR, alpha=0.25, lw=0)
    ax.plot(grid, density, color=POSTERIOR_COLOUR, lw=1.8)
    top = float(density.max()) * 1.18
    ax.axvline(threshold, color="black", lw=1.3)
    ax.text(
        threshold,
        top * 0.97,
        f"threshold {threshold:g}",
        ha="center",
        va="top",
        fontsize=8.5,
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.5},
    )
    ax.axvline(map_value, color=MAP_COLOUR, lw=1.4, ls=":")
    ax.axvline(prior_value, color=PRIOR_COLOUR, lw=1.2, ls="--")
    ax.set_ylim(0, top)
    ax.set_xlim(low, high)
    ax.set_yticks([])
    ax.set_xlabel("ln(AUC day 14–28 / CL)")
    ax.set_ylabel("posterior density")
    p_high = summary["p_high_risk"]
    handles = [
        Line2D([], [], color=POSTERIOR_COLOUR, lw=1.8, label="posterior"),
        Patch(color=HIGH_RISK_COLOUR, alpha=0.35, label=f"high risk: P = {p_high:.2f}"),
        Patch(color=LOW_RISK_COLOUR, alpha=0.25, label=f"low risk: P = {1 - p_high:.2f}"),
        Line2D([], [], color=MAP_COLOUR, lw=1.4, ls=":", label=f"MAP {map_value:.2f}"),
        Line2D([], [], color=PRIOR_COLOUR, lw=1.2, ls="--", label=f"a priori {prior_value:.2f}"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


#: Colours of the models in a model average (Okabe–Ito, without the mixture's black).
MODEL_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00")


def model_average_figure(
    model_draws: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    mixture: np.ndarray,
    *,
    width: float = 8.0,
    height: float = 3.4,
) -> Figure:
    """Posterior densities of the 90-day risk under each model (``model_draws``: name →
    draws; labelled with its ``weights``) and of the weighted mixture (``mixture``, its draws).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> a, b = rng.beta(2, 20, 4000), rng.beta(4, 12, 4000)
    >>> figure = model_average_figure({"a": a, "b": b}, {"a": 0.7, "b": 0.3}, a)
    >>> [line.get_label() for line in figure.axes[0].get_legend().get_lines()]
    ['a (weight 0.70)', 'b (weight 0.30)', 'model average']
    """
    values = np.concatenate([np.ravel(v) for v in model_draws.values()] + [np.ravel(mixture)])
    high = min(1.0, float(np.quantile(values, 0.999)) * 1.15 + 0.01)
    grid = np.linspace(0.0, high, 400)
    figure, ax = _figure(width, height)
    top = 0.0
    for (name, draws), colour in zip(model_draws.items(), MODEL_COLOURS * 4, strict=False):
        density = _density(np.ravel(draws), grid)
        top = max(top, float(density.max()))
        ax.plot(
            grid * 100, density, color=colour, lw=1.4, label=f"{name} (weight {weights[name]:.2f})"
        )
    density = _density(np.ravel(mixture), grid)
    top = max(top, float(density.max()))
    ax.plot(grid * 100, density, color="black", lw=2.4, label="model average")
    ax.set_xlim(0, high * 100)
    ax.set_ylim(0, top * 1.1)
    ax.set_yticks([])
    ax.set_xlabel("90-day colectomy risk (%)")
    ax.set_ylabel("posterior density")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


def _padded_dose_limits(dose: np.ndarray) -> tuple[float, float]:
    """x limits half a dose step beyond the first and last doses, so that a line at either
    end is drawn inside the axes, not on its frame."""
    step = float(np.min(np.diff(dose))) if dose.size > 1 else 100.0
    return float(dose.min()) - step / 2, float(dose.max()) + step / 2


def _dose_marker(ax, dose_mg: float, label: str, style: dict, height: float, gid: str) -> Line2D:
    """A labelled vertical line at ``dose_mg`` (label near the top, at ``height`` in axes
    fraction, on the side of the line with more room: set the x limits first)."""
    (line,) = ax.plot([dose_mg, dose_mg], [0, 1], transform=ax.get_xaxis_transform(), **style)
    line.set_gid(gid)
    low, high = ax.get_xlim()
    right_half = dose_mg > (low + high) / 2
    ax.text(
        dose_mg,
        height,
        f" {label} ",
        transform=ax.get_xaxis_transform(),
        ha="right" if right_half else "left",
        va="top",
        fontsize=8,
        color=style["color"],
        bbox={"facecolor": "white", "edgecolor": style["color"], "alpha": 0.9, "pad": 1.5},
        gid=f"{gid}-label",
        zorder=8,
    )
    return line


RECOMMENDED_STYLE = {"color": POSTERIOR_COLOUR, "lw": 2.0, "ls": "-", "zorder": 6}
MAP_RECOMMENDED_STYLE = {"color": MAP_COLOUR, "lw": 2.0, "ls": (0, (5, 2)), "zorder": 7}


def dose_risk_figure(
    recommendation: Mapping[str, Any], *, width: float = 8.0, height: float = 3.6
) -> Figure:
    """90-day risk against the dose being chosen: posterior mean and 95 % CrI, P(high risk).

    The recommended dose (solid blue) and the MAP recommendation (dashed orange) are drawn as
    labelled vertical lines inside the axes (the x range extends half a vial beyond the
    first and last doses); they carry the gids ``recommended-dose`` and
    ``map-recommended-dose``.

    Parameters
    ----------
    recommendation
        The JSON form of a dose recommendation (``DoseRecommendation.to_json()`` of
        :mod:`asuc_bayes.decisions.dosing`): ``curve`` rows with ``dose_mg``, ``risk_mean``,
        ``risk_q2.5``, ``risk_q97.5`` and ``p_high_risk``; ``target_risk``; ``recommended``
        and ``map_recommended`` with ``dose_mg`` (marked only when ``feasible``); the MAP
        plug-in risk is drawn too when the rows have ``map_risk``.
    """
    curve = recommendation["curve"]
    dose = np.array([row["dose_mg"] for row in curve], dtype=float)
    mean = np.array([row["risk_mean"] for row in curve], dtype=float)
    low = np.array([row["risk_q2.5"] for row in curve], dtype=float)
    high = np.array([row["risk_q97.5"] for row in curve], dtype=float)
    p_high = np.array([row["p_high_risk"] for row in curve], dtype=float)

    figure, ax = _figure(width, height)
    ax.fill_between(dose, 100 * low, 100 * high, color=POSTERIOR_COLOUR, alpha=0.2, lw=0)
    ax.plot(dose, 100 * mean, color=POSTERIOR_COLOUR, lw=2.0, marker="o", ms=3)
    ax.plot(dose, 100 * p_high, color=HIGH_RISK_COLOUR, lw=1.4, ls="-.")
    target = 100 * float(recommendation["target_risk"])
    ax.axhline(target, color="black", lw=1.0, ls="--")
    handles = [
        Line2D([], [], color=POSTERIOR_COLOUR, lw=2.0, label="posterior mean 90-day risk"),
        Patch(color=POSTERIOR_COLOUR, alpha=0.2, label="95 % credible interval"),
        Line2D([], [], color=HIGH_RISK_COLOUR, lw=1.4, ls="-.", label="P(high risk)"),
        Line2D([], [], color="black", lw=1.0, ls="--", label=f"target {target:g} %"),
    ]
    if all("map_risk" in row for row in curve):
        map_risk = np.array([row["map_risk"] for row in curve], dtype=float)
        ax.plot(dose, 100 * map_risk, color=MAP_COLOUR, lw=1.2, ls=":")
        handles.append(Line2D([], [], color=MAP_COLOUR, lw=1.2, ls=":", label="MAP plug-in risk"))
    ax.set_xlim(*_padded_dose_limits(dose))
    recommended = recommendation.get("recommended") or {}
    chosen = recommended.get("dose_mg")
    if recommendation.get("feasible", True) and chosen is not None:
        label = f"recommended {chosen:g} mg"
        _dose_marker(ax, chosen, label, RECOMMENDED_STYLE, 0.97, "recommended-dose")
        handles.append(Line2D([], [], label=label, **RECOMMENDED_STYLE))
    map_recommended = recommendation.get("map_recommended") or {}
    on_map = map_recommended.get("dose_mg")
    if map_recommended.get("feasible", True) and on_map is not None:
        label = f"MAP recommendation {on_map:g} mg"
        _dose_marker(ax, on_map, label, MAP_RECOMMENDED_STYLE, 0.84, "map-recommended-dose")
        handles.append(Line2D([], [], label=label, **MAP_RECOMMENDED_STYLE))
    ax.set_ylim(0, 100)
    day = recommended.get("time_day")
    ax.set_xlabel("dose (mg)" if day is None else f"dose at day {day:g} (mg)")
    ax.set_ylabel("percent")
    ax.grid(alpha=0.25)
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


def dose_trough_figure(
    trough: Mapping[str, Any], *, width: float = 8.0, height: float = 3.4
) -> Figure:
    """Trough concentration against the maintenance dose: median and 95 % CrI, the target,
    and the chosen dose (the smallest meeting the target, or the cap) as a labelled line.

    Parameters
    ----------
    trough
        The ``trough`` entry of a trough-mode plan (``TroughPlan.to_json()``).
    """
    rows = trough["for_interval"]["curve"]
    dose = np.array([row["dose_mg"] for row in rows], dtype=float)
    median = np.array([row["trough_q50"] for row in rows], dtype=float)
    low = np.array([row["trough_q2.5"] for row in rows], dtype=float)
    high = np.array([row["trough_q97.5"] for row in rows], dtype=float)
    figure, ax = _figure(width, height)
    ax.fill_between(dose, low, high, color=POSTERIOR_COLOUR, alpha=0.2, lw=0)
    ax.plot(dose, median, color=POSTERIOR_COLOUR, lw=2.0, marker="o", ms=3)
    target = float(trough["target_mg_l"])
    ax.axhline(target, color="black", lw=1.0, ls="--")
    ax.set_xlim(*_padded_dose_limits(dose))
    chosen = float(trough["for_interval"]["dose_mg"])
    label = (
        f"cap {chosen:g} mg (target not reached)"
        if trough["status"] == "not_reachable"
        else f"recommended {chosen:g} mg"
    )
    _dose_marker(ax, chosen, label, RECOMMENDED_STYLE, 0.97, "trough-dose")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_ylim(max(min(float(low.min()), target) / 2, 0.01), max(float(high.max()), target) * 2)
    interval = trough["for_interval"]["interval_day"]
    ax.set_xlabel(f"dose every {interval:g} days (mg)")
    ax.set_ylabel("trough (mg/L)")
    ax.grid(alpha=0.25)
    handles = [
        Line2D([], [], color=POSTERIOR_COLOUR, lw=2.0, label="posterior median trough"),
        Patch(color=POSTERIOR_COLOUR, alpha=0.2, label="95 % credible interval"),
        Line2D([], [], color="black", lw=1.0, ls="--", label=f"target {target:g} mg/L"),
        Line2D([], [], label=label, **RECOMMENDED_STYLE),
    ]
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


def model_average_dose_figure(
    dose_mg: np.ndarray,
    averaged: np.ndarray,
    model_curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    weights: Mapping[str, float],
    *,
    threshold: float,
    quantity: str,
    chosen_mg: float,
    feasible: bool,
    dose_label: str = "dose (mg)",
    width: float = 8.0,
    height: float = 3.4,
) -> Figure:
    """The dosing criterion against the dose under each model (``model_curves``: name →
    (doses, values), labelled with its ``weights``) and averaged (``averaged``, black), with
    the threshold the dose must reach (dashed) and the dose chosen on the averaged curve (a
    labelled line, gid ``averaged-dose``). Values and threshold are fractions, drawn in
    percent; ``quantity`` names them on the y axis.

    Examples
    --------
    >>> dose = np.array([400.0, 500.0, 600.0])
    >>> a, b = np.array([0.25, 0.2, 0.15]), np.array([0.15, 0.1, 0.08])
    >>> figure = model_average_dose_figure(
    ...     dose, 0.5 * (a + b), {"a": (dose, a), "b": (dose, b)}, {"a": 0.5, "b": 0.5},
    ...     threshold=0.2, quantity="mean 90-day risk", chosen_mg=500.0, feasible=True)
    >>> [t.get_text() for t in figure.axes[0].get_legend().get_texts()][-2:]
    ['threshold 20 %', 'averaged: 500 mg']
    """
    figure, ax = _figure(width, height)
    handles = []
    for (name, (doses, values)), colour in zip(
        model_curves.items(), MODEL_COLOURS * 4, strict=False
    ):
        label = f"{name} (weight {weights[name]:.2f})"
        ax.plot(doses, 100 * np.asarray(values, dtype=float), color=colour, lw=1.4, label=label)
        handles.append(Line2D([], [], color=colour, lw=1.4, label=label))
    ax.plot(dose_mg, 100 * averaged, color="black", lw=2.4, marker="o", ms=3)
    handles.append(Line2D([], [], color="black", lw=2.4, label="model average"))
    ax.axhline(100 * threshold, color="black", lw=1.0, ls="--")
    handles.append(
        Line2D([], [], color="black", lw=1.0, ls="--", label=f"threshold {100 * threshold:g} %")
    )
    ax.set_xlim(*_padded_dose_limits(np.asarray(dose_mg, dtype=float)))
    label = f"averaged: {chosen_mg:g} mg" + ("" if feasible else " (cap; not reached)")
    _dose_marker(ax, chosen_mg, label, RECOMMENDED_STYLE, 0.97, "averaged-dose")
    handles.append(Line2D([], [], label=label, **RECOMMENDED_STYLE))
    values = [np.asarray(averaged, dtype=float)] + [np.asarray(v) for _, v in model_curves.values()]
    highest = max(threshold, *(float(np.max(v)) for v in values))
    ax.set_ylim(0, min(100.0, 125.0 * highest + 2.0))  # a low risk curve is not squashed
    ax.set_xlabel(dose_label)
    ax.set_ylabel(f"{quantity} (%)")
    ax.grid(alpha=0.25)
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


#: Fast PNG compression: a few more bytes, ~20 ms less per figure.
PNG_OPTIONS = {"pil_kwargs": {"compress_level": 1}}


def figure_png(figure: Figure, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (no timestamp metadata: the same figure gives the same bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None}, **PNG_OPTIONS)
    return buffer.getvalue()
