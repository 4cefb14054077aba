"""Figures and files of a simulation-based calibration (``asuc-bayes sbc --out``).

:func:`rank_histogram_figure` draws the rank histograms of an
:class:`~asuc_bayes.studies.sbc.SBCResult`; :func:`write_sbc` writes its ranks, tables and figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from asuc_bayes.interfaces.plots import POSTERIOR_COLOUR, PRIOR_COLOUR, figure_png
from asuc_bayes.studies.sbc import BAND_PROBABILITY, FITTED, PARAMETER_LABELS, SBCResult

__all__ = ["rank_histogram_figure", "write_sbc"]


def rank_histogram_figure(
    result: SBCResult, *, n_bins: int | None = None, include: Iterable[str] = FITTED
):
    """One panel per parameter: the histogram of ranks, the expected count and the
    :data:`BAND_PROBABILITY` binomial band of each bin under uniformity, the chi-square p."""
    from matplotlib.figure import Figure

    include = tuple(include)
    parameters = result.parameters
    n_cols = min(3, len(parameters))
    n_rows = math.ceil(len(parameters) / n_cols)
    figure = Figure(figsize=(3.4 * n_cols, 2.6 * n_rows + 0.7), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    n_ranks = result.n_rank_draws + 1
    for ax, name in zip(axes.ravel(), parameters, strict=False):
        test = result.uniformity(name, n_bins, include)
        left = test.edges[:-1] / n_ranks
        width = np.diff(test.edges) / n_ranks
        steps = test.edges / n_ranks
        ax.fill_between(
            steps,
            np.append(test.band_low, test.band_low[-1]),
            np.append(test.band_high, test.band_high[-1]),
            step="post",
            color=PRIOR_COLOUR,
            alpha=0.22,
            lw=0,
        )
        ax.bar(
            left,
            test.counts,
            width=width,
            align="edge",
            color=POSTERIOR_COLOUR,
            alpha=0.85,
            edgecolor="white",
            lw=0.6,
        )
        ax.step(
            steps, np.append(test.expected, test.expected[-1]), where="post", color="black", lw=0.8
        )
        outside = int(np.sum((test.counts < test.band_low) | (test.counts > test.band_high)))
        p_text = "p = n/a" if math.isnan(test.p_value) else f"χ² p = {test.p_value:.2g}"
        ax.set_title(
            f"{PARAMETER_LABELS.get(name, name)}\n{p_text}, {outside} bin(s) outside band",
            fontsize=9,
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, max(test.band_high.max(), test.counts.max()) * 1.15 + 0.5)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25, axis="y")
    for ax in axes.ravel()[len(parameters) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("rank / (L + 1)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("replicates", fontsize=8)
    counts = result.counts
    n_used = int(np.isin(result.dataset["status"].values, list(include)).sum())
    figure.suptitle(
        f"SBC rank histograms: {n_used} replicates ({counts['unconverged']} unconverged, "
        f"{counts['error']} failed), L = {result.n_rank_draws}; grey: "
        f"{BAND_PROBABILITY:.0%} band of each bin under uniformity",
        fontsize=9,
    )
    return figure


def write_sbc(result: SBCResult, folder, n_bins: int | None = None) -> list[Path]:
    """``sbc.nc`` (ranks), ``uniformity.csv`` (per parameter), ``replicates.csv`` (per
    replicate) and ``rank_histograms.png`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "ranks": folder / "sbc.nc",
        "table": folder / "uniformity.csv",
        "replicates": folder / "replicates.csv",
        "figure": folder / "rank_histograms.png",
    }
    result.save(paths["ranks"])
    result.table(n_bins).to_csv(paths["table"], float_format="%.6g")
    result.replicates().to_csv(paths["replicates"], float_format="%.6g")
    paths["figure"].write_bytes(figure_png(rank_histogram_figure(result, n_bins=n_bins), dpi=120))
    return list(paths.values())
