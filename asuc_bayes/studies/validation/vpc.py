"""Visual predictive checks of a validation: VPC and prediction-corrected VPC tables.

For one model over the cohort (:func:`model_records` pools the patients' records):

- every record has the prior-predictive replicates of its patient's records (η ~ N(0, Ω) and
  the residual error; the first :data:`~asuc_bayes.studies.validation.study.VPC_REPLICATES` of the
  NPDE simulations), and the typical prediction PRED = f(η = 0);
- records are binned by time (quantiles of the record times, :func:`time_bins`);
- per bin: the 5th/50th/95th percentiles of the *uncensored* observations, and the
  2.5/50/97.5 % quantiles over replicates of the same percentiles of the uncensored
  simulated values; censored records never enter a percentile, observed or simulated (as in
  the population pcVPC of :mod:`asuc_bayes.studies.evaluation`). Separately: the observed fraction
  of
  censored records and the quantiles of the simulated fraction. A simulated value is censored
  when it falls below its record's LLOQ (or above its ULOQ): the patient's own limit (the
  value of a censored record), else the cohort's median limit, else none;
- the prediction-corrected VPC (Bergstrand et al. 2011) multiplies observed and simulated
  values by PRED_bin / PRED (the bin's median PRED over the record's), kept within
  [1/:data:`PC_MAX`, PC_MAX].

Examples
--------
>>> row_percentiles(np.array([[1.0, 2.0, 3.0, np.nan], [np.nan] * 4]), (50.0,))
array([[ 2.],
       [nan]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED

__all__ = [
    "PC_MAX",
    "VPC_PERCENTILES",
    "ModelRecords",
    "VpcTable",
    "model_records",
    "row_percentiles",
    "time_bins",
    "vpc_table",
]

#: Percentiles of the observations (and of each replicate) per bin.
VPC_PERCENTILES = (5.0, 50.0, 95.0)
#: Quantiles over the replicates shown as the simulated band and line.
BAND_QUANTILES = (2.5, 50.0, 97.5)
#: Prediction-correction factors are kept within [1/PC_MAX, PC_MAX].
PC_MAX = 10.0


@dataclass(frozen=True)
class ModelRecords:
    """Every evaluated record of the cohort under one model, in patient then time order."""

    name: str
    patient_index: np.ndarray
    time_day: np.ndarray
    observed_mg_l: np.ndarray
    censoring: np.ndarray
    #: typical prediction f(η = 0) (the a-priori point prediction)
    pred_mg_l: np.ndarray
    #: leave-future-out posterior-mean prediction (NaN-free; a priori for a first record)
    bayesian_mg_l: np.ndarray
    first: np.ndarray
    #: (replicates, records) prior-predictive values, uncensored
    simulated_mg_l: np.ndarray
    lower_mg_l: np.ndarray
    upper_mg_l: np.ndarray


def _limits(censoring: np.ndarray, value: np.ndarray, patient: np.ndarray):
    """Per record: the patient's LLOQ and ULOQ (module docstring)."""
    below, above = censoring == BELOW_LLOQ, censoring == ABOVE_ULOQ
    default_low = float(np.median(value[below])) if below.any() else 0.0
    default_high = float(np.median(value[above])) if above.any() else np.inf
    lower = np.full(value.size, default_low)
    upper = np.full(value.size, default_high)
    for i in np.unique(patient):
        mine = patient == i
        if (mine & below).any():
            lower[mine] = value[mine & below].max()
        if (mine & above).any():
            upper[mine] = value[mine & above].min()
    return lower, upper


def model_records(result, model: int) -> ModelRecords:
    """The records of every evaluated patient under model number ``model`` of a
    :class:`~asuc_bayes.studies.validation.study.ValidationResult`."""
    done = [p for p in result.patients if p.error is None and p.fits]
    fits = [p.fits[model] for p in done]
    if not fits:
        raise ValueError("validation figures: no evaluated patient")
    parts = [f.forecasts for f in fits]

    def cat(values: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(v) for v in values]) if values else np.zeros(0)

    sims = [f.simulated_mg_l for f in fits]
    if any(s is None for s in sims):
        raise ValueError("validation figures: the fits carry no prior-predictive replicates")
    n_rep = min(s.shape[0] for s in sims)
    patient = cat([np.full(lfo.time_day.size, i) for i, lfo in enumerate(parts)])
    censoring = cat([lfo.censoring for lfo in parts]).astype(int)
    observed = cat([lfo.observed_mg_l for lfo in parts]).astype(float)
    lower, upper = _limits(censoring, observed, patient)
    return ModelRecords(
        name=fits[0].model,
        patient_index=patient,
        time_day=cat([lfo.time_day for lfo in parts]).astype(float),
        observed_mg_l=observed,
        censoring=censoring,
        pred_mg_l=cat([lfo.a_priori.point_mg_l for lfo in parts]),
        bayesian_mg_l=cat([lfo.bayesian.point_mg_l for lfo in parts]),
        first=cat([lfo.first for lfo in parts]).astype(bool),
        simulated_mg_l=np.concatenate([s[:n_rep] for s in sims], axis=1)
        if sims
        else np.zeros((0, 0)),
        lower_mg_l=lower,
        upper_mg_l=upper,
    )


def row_percentiles(values: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Percentiles (linear interpolation, as :func:`numpy.percentile`) of each row's finite
    values; NaN for a row without any. Shape ``(rows, len(percentiles))``.

    Examples
    --------
    >>> x = np.array([[4.0, 1.0, np.nan, 3.0, 2.0]])
    >>> bool(np.allclose(row_percentiles(x, (5, 50, 95)), np.percentile([1, 2, 3, 4], (5, 50, 95))))
    True
    """
    values = np.asarray(values, dtype=float)
    values = np.where(np.isfinite(values), values, np.nan)
    ordered = np.sort(values, axis=1)  # NaN last
    count = np.sum(np.isfinite(values), axis=1)
    out = np.full((values.shape[0], len(percentiles)), np.nan)
    rows = np.flatnonzero(count > 0)
    if rows.size == 0:
        return out
    for k, p in enumerate(percentiles):
        position = p / 100.0 * (count[rows] - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, count[rows] - 1)
        fraction = position - low
        a, b = ordered[rows, low], ordered[rows, high]
        out[rows, k] = a + fraction * (b - a)
    return out


def time_bins(time_day: np.ndarray, n_bins: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges at quantiles of the times (ties merged) and each time's bin.

    Examples
    --------
    >>> edges, bins = time_bins(np.arange(1.0, 8.0), 2)
    >>> edges.tolist(), bins.tolist()
    ([1.0, 4.0, 7.0], [0, 0, 0, 1, 1, 1, 1])
    """
    time_day = np.asarray(time_day, dtype=float)
    edges = np.unique(np.quantile(time_day, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size < 2:
        edges = np.array([edges[0], edges[0]])
    n = edges.size - 1
    bins = np.clip(np.searchsorted(edges, time_day, side="right") - 1, 0, n - 1)
    return edges, bins


@dataclass(frozen=True)
class VpcTable:
    """Per time bin: observed percentiles and simulated bands (see the module docstring)."""

    corrected: bool
    time_median_day: np.ndarray
    n: np.ndarray
    n_uncensored: np.ndarray
    #: (bins, 3): 5th/50th/95th percentiles of the uncensored observations (NaN: none)
    observed: np.ndarray
    #: (bins, 3 percentiles, 3 quantiles over replicates: 2.5/50/97.5 %)
    simulated: np.ndarray
    observed_censored: np.ndarray
    #: (bins, 3): quantiles over replicates of the simulated censored fraction
    simulated_censored: np.ndarray


def _correction(pred: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    pred = np.maximum(np.asarray(pred, dtype=float), 1e-12)
    pred_bin = np.array([np.median(pred[bins == b]) for b in range(n_bins)])
    return np.clip(pred_bin[bins] / pred, 1.0 / PC_MAX, PC_MAX)


def vpc_table(records: ModelRecords, *, corrected: bool = False, n_bins: int = 6) -> VpcTable:
    """The (prediction-corrected when ``corrected``) VPC table of a model's records."""
    if records.time_day.size == 0:
        raise ValueError("VPC: no records")
    _, bins = time_bins(records.time_day, n_bins)
    bins = np.unique(bins, return_inverse=True)[1].reshape(-1)  # empty bins dropped
    n_bins = int(bins.max()) + 1
    factor = (
        _correction(records.pred_mg_l, bins, n_bins)
        if corrected
        else np.ones(records.time_day.size)
    )
    measured = records.censoring == MEASURED
    observed = records.observed_mg_l * factor
    sims = records.simulated_mg_l
    outside = (sims < records.lower_mg_l) | (sims > records.upper_mg_l)
    sims_inside = np.where(outside, np.nan, sims * factor)
    band = np.full((n_bins, len(VPC_PERCENTILES), len(BAND_QUANTILES)), np.nan)
    observed_pct = np.full((n_bins, len(VPC_PERCENTILES)), np.nan)
    censored_band = np.full((n_bins, len(BAND_QUANTILES)), np.nan)
    rows = {"median": [], "n": [], "n_unc": [], "cens": []}
    for b in range(n_bins):
        in_bin = bins == b
        rows["median"].append(float(np.median(records.time_day[in_bin])))
        rows["n"].append(int(in_bin.sum()))
        rows["n_unc"].append(int((in_bin & measured).sum()))
        rows["cens"].append(float(np.mean(~measured[in_bin])))
        observed_pct[b] = row_percentiles(
            np.where(measured[in_bin], observed[in_bin], np.nan)[None, :], VPC_PERCENTILES
        )[0]
        if sims.shape[0] == 0:
            continue
        per_replicate = row_percentiles(sims_inside[:, in_bin], VPC_PERCENTILES)
        band[b] = row_percentiles(per_replicate.T, BAND_QUANTILES)
        fraction = outside[:, in_bin].mean(axis=1)
        censored_band[b] = row_percentiles(fraction[None, :], BAND_QUANTILES)[0]
    return VpcTable(
        corrected=corrected,
        time_median_day=np.array(rows["median"]),
        n=np.array(rows["n"]),
        n_uncensored=np.array(rows["n_unc"]),
        observed=observed_pct,
        simulated=band,
        observed_censored=np.array(rows["cens"]),
        simulated_censored=censored_band,
    )
