"""The typed result of one patient's library-model forecast and its JSON form.

:meth:`LibraryForecast.to_json` gives today's contract keys (``posterior`` S for ``cl``, ``v``,
``auc_w2_4``, ``ln_auc_cl``, ``risk_90d``; ``p_high_risk``; ``risk_class``; ``map``;
``a_priori``; ``diagnostics``) and the keys of issue 16: ``parameters`` (S per individual
parameter), ``eta`` (S per random effect, the model file's names), ``map.eta`` (list, model file
order), ``map.parameters``, ``observations`` ({time, dv, cens, pred, ipred}), ``imputed`` and
``outcome``, and ``covariates`` (how per-record covariates were used: time-varying or not,
the convention, the change days; :class:`CovariateUse`) with ``notes`` that say it in
words. S = {mean, sd, q2.5, q50, q97.5, mcse}, ``mcse`` = {mean, q2.5, q50, q97.5}: the
Monte Carlo standard error of each (:func:`summaries_with_mcse`, as the default path's S).
``diagnostics.precision`` states the run's precision (:mod:`asuc_bayes.inference.precision`).
A model without an outcome model has
``risk_90d``, ``p_high_risk`` and ``risk_class`` null. Non-finite numbers become null: the JSON
never holds NaN or Infinity.

Examples
--------
>>> summary_statistics(np.array([1.0, 2.0, 3.0]))["q50"]
2.0
>>> finite_or_none(float("nan")) is None
True
>>> draws = np.random.default_rng(0).normal(size=(4, 1000))
>>> s = summaries_with_mcse({"x": draws}, (4, 1000))["x"]
>>> sorted(s["mcse"]), round(s["mcse"]["mean"], 2)  # ~ SD / sqrt(4000) = 0.016
(['mean', 'q2.5', 'q50', 'q97.5'], 0.02)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asuc_bayes.inference.derived import Derived
from asuc_bayes.inference.diagnostics import monte_carlo_errors
from asuc_bayes.inference.map import MapResult
from asuc_bayes.inference.risk_class import risk_class
from asuc_bayes.spec import Imputation

__all__ = [
    "STATISTICS",
    "CovariateUse",
    "LibraryForecast",
    "finite_or_none",
    "summaries_with_mcse",
    "summary_statistics",
]

STATISTICS = ("mean", "sd", "q2.5", "q50", "q97.5")
#: The statistics of S whose MCSE S["mcse"] reports, and the quantiles' probabilities.
MCSE_STATISTICS = ("mean", "q2.5", "q50", "q97.5")
MCSE_PROBS = (0.025, 0.5, 0.975)
CONTRACT_KEYS = ("cl", "v", "auc_w2_4", "ln_auc_cl", "risk_90d")


def finite_or_none(x: Any) -> float | None:
    """``float(x)``, or None when it is not finite (JSON has no NaN)."""
    value = float(x)
    return value if math.isfinite(value) else None


def summary_statistics(values: np.ndarray) -> dict[str, float | None]:
    """S of draws: mean, SD and the 2.5/50/97.5 % quantiles."""
    flat = np.asarray(values, dtype=float).ravel()
    q = np.quantile(flat, [0.025, 0.5, 0.975])
    stats = (flat.mean(), flat.std(ddof=1), *q)
    return {k: finite_or_none(v) for k, v in zip(STATISTICS, stats, strict=True)}


def summaries_with_mcse(
    columns: dict[str, np.ndarray], shape: tuple[int, int]
) -> dict[str, dict[str, Any]]:
    """S of each array of draws (reshaped to ``shape`` = (chain, draw)) with ``"mcse"``: the
    MCSE of its mean and 2.5/50/97.5 % quantiles, as ``az.mcse(method="mean")`` and
    ``az.mcse(method="quantile", prob=p)``
    (:func:`asuc_bayes.inference.diagnostics.monte_carlo_errors`,
    all columns at once); None where undefined."""
    if not columns:
        return {}
    values = np.stack([np.asarray(v, dtype=float).reshape(shape) for v in columns.values()], -1)
    errors = monte_carlo_errors(values, MCSE_PROBS)
    table = np.vstack([errors.mean, errors.quantile])  # (statistic, column)
    out = {}
    for j, name in enumerate(columns):
        stats: dict[str, Any] = summary_statistics(values[..., j])
        stats["mcse"] = {k: finite_or_none(table[i, j]) for i, k in enumerate(MCSE_STATISTICS)}
        out[name] = stats
    return out


def _point(derived: Derived, index: int) -> dict[str, Any]:
    contract = derived.contract()
    out: dict[str, Any] = {
        k: (finite_or_none(contract[k].reshape(-1)[index]) if k in contract else None)
        for k in CONTRACT_KEYS
    }
    out["parameters"] = {
        k: finite_or_none(v.reshape(-1)[index]) for k, v in derived.parameters.items()
    }
    return out


@dataclass(frozen=True)
class ObservationRow:
    """A record with the typical-patient (pred) and MAP (ipred) predictions, as NONMEM."""

    time_day: float
    dv: float
    cens: int
    pred: float
    ipred: float


@dataclass(frozen=True)
class CovariateUse:
    """How the patient's per-record covariates were used (JSON ``covariates``).

    ``time_varying``: the individual parameters changed over time; ``convention``:
    ``"nonmem"`` or ``"locf"`` (None without per-record covariates); ``change_days``: when
    the parameters changed; ``varying``: the time-varying covariates that changed;
    ``baseline_only``: covariates whose records vary but that the model takes at baseline.
    """

    time_varying: bool = False
    convention: str | None = None
    change_days: tuple[float, ...] = ()
    varying: tuple[str, ...] = ()
    baseline_only: tuple[str, ...] = ()
    #: what the reported individual parameters are when they vary
    parameters: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "time_varying": self.time_varying,
            "convention": self.convention,
            "change_days": [finite_or_none(t) for t in self.change_days],
            "varying": list(self.varying),
            "baseline_only": list(self.baseline_only),
            "parameters": self.parameters,
        }

    def notes(self, model: str) -> list[str]:
        """Plain-language notes for the output."""
        out = []
        if self.time_varying:
            out.append(
                f"time-varying covariates ({', '.join(self.varying)}), convention "
                f"{self.convention}: the individual parameters change at day(s) "
                f"{', '.join(f'{t:g}' for t in self.change_days)}; {self.parameters}"
            )
        if self.baseline_only:
            out.append(
                f"{', '.join(self.baseline_only)} vary between records, but model {model} "
                "uses baseline values (the first record's) for them"
            )
        return out


@dataclass(frozen=True)
class LibraryForecast:
    """One patient's posterior under a library model (see the module docstring)."""

    id: str
    model: str
    status: str
    eta_names: tuple[str, ...]
    #: (chain, draw, n_eta)
    eta: np.ndarray
    draws: Derived
    #: MAP (index 0) and a priori, η = 0 (index 1)
    points: Derived
    map: MapResult
    observations: tuple[ObservationRow, ...]
    imputed: tuple[Imputation, ...]
    diagnostics: dict[str, Any]
    high_risk_threshold: float | None = None
    extrapolated_outcome: bool | None = None
    outcome_source: str | None = None
    warnings: tuple[str, ...] = field(default=())
    covariates: CovariateUse = field(default_factory=CovariateUse)
    #: the :class:`~asuc_bayes.inference.PatientProblem` it was drawn for (its concentration
    #: curves: :func:`asuc_bayes.inference.library_tree.library_predictions`), or None
    problem: Any = field(default=None, repr=False, compare=False)

    @property
    def p_high_risk(self) -> float | None:
        """P(ln(AUC_w2-4/CL) < threshold), or None without an outcome model."""
        if self.high_risk_threshold is None:
            return None
        return float(np.mean(self.draws.ln_auc_cl < self.high_risk_threshold))

    def imputed_json(self) -> list[dict[str, Any]]:
        """The covariates imputed on request: ``[{covariate, value, unit, reason}]``."""
        return [
            {"covariate": i.covariate, "value": i.value, "unit": i.unit, "reason": i.reason}
            for i in self.imputed
        ]

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready entry of this patient (only finite numbers, None for missing)."""
        shape = self.eta.shape[:2]
        contract = summaries_with_mcse(self.draws.contract(), shape)
        posterior = {k: contract.get(k) for k in CONTRACT_KEYS}
        p = self.p_high_risk
        map_entry = _point(self.points, 0)
        map_entry["eta"] = [finite_or_none(x) for x in self.map.eta]
        a_priori = _point(self.points, 1)
        a_priori["eta"] = [0.0] * len(self.eta_names)
        return {
            "id": self.id,
            "model": self.model,
            "status": self.status,
            "posterior": posterior,
            "parameters": summaries_with_mcse(self.draws.parameters, shape),
            "eta": summaries_with_mcse(
                {name: self.eta[..., i] for i, name in enumerate(self.eta_names)}, shape
            ),
            "p_high_risk": p,
            "risk_class": None if p is None else risk_class(p),
            "map": map_entry,
            "a_priori": a_priori,
            "observations": [
                {
                    "time": finite_or_none(o.time_day),
                    "dv": finite_or_none(o.dv),
                    "cens": int(o.cens),
                    "pred": finite_or_none(o.pred),
                    "ipred": finite_or_none(o.ipred),
                }
                for o in self.observations
            ],
            "imputed": self.imputed_json(),
            "outcome": None
            if self.high_risk_threshold is None
            else {
                "source_model": self.outcome_source,
                "extrapolated": bool(self.extrapolated_outcome),
                "high_risk_threshold": self.high_risk_threshold,
            },
            "covariates": self.covariates.to_json(),
            "notes": self.covariates.notes(self.model),
            "warnings": list(self.warnings),
            "diagnostics": {
                k: (finite_or_none(v) if isinstance(v, float) else v)
                for k, v in self.diagnostics.items()
            },
        }
