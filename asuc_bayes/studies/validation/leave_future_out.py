"""Forecasts of each observation of one patient under one model: a priori and leave-future-out.

For the k-th concentration record (in time order):

- **a priori**: from the covariates only — point prediction PRED = f(η = 0), predictive
  distribution ∫ p(y | η) N(η; 0, Ω) dη;
- **Bayesian (full posterior)**: from the records before it — point prediction the posterior
  mean of f, predictive distribution ∫ p(y | η) p(η | y_<k) dη (the posterior as weighted nodes
  of :mod:`.marginal`); for k = 0 there are no earlier records and this is the a-priori
  forecast (it is flagged ``first`` and left out of the Bayesian metrics);
- **MAP + Laplace**: point prediction f(η̂) at the MAP of the earlier records, predictive
  distribution ∫ p(y | η) N(η; η̂, S) dη with S the Laplace covariance.

Each forecast gives, per record: the point prediction, the PIT of a measured value, the
predictive probability of a censored record's region, and the log predictive density (of the
value, or of the region: the M3 term) used for stacking.

Examples
--------
>>> from asuc_bayes.pk import DoseArrays
>>> from asuc_bayes.spec import load_declaration
>>> from asuc_bayes.inference.problem import PatientProblem
>>> doses = DoseArrays(start_day=[0.0, 14.0], amount_mg=[700.0, 700.0],
...                    duration_day=[1 / 12, 1 / 12])
>>> problem = PatientProblem.build(load_declaration("niyigena2025"), doses,
...                                time_day=[7.0, 13.9], value_mg_l=[15.0, 5.0],
...                                covariates={"WT": 70.0, "CRP": 30.0})
>>> lfo = leave_future_out(problem)
>>> lfo.bayesian.pit.shape, bool(lfo.first[0]), bool(lfo.first[1])
((2,), True, False)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.special

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED
from asuc_bayes.inference.map import MapResult, find_map, single_threaded_blas
from asuc_bayes.inference.marginal import (
    QUADRATURE_NODES,
    WeightedPosterior,
    gauss_hermite_normal,
    posterior,
    prior_nodes,
)
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.spec.residual import PREDICTION_FLOOR_MG_L, residual_form

__all__ = ["Forecasts", "LeaveFutureOut", "forecast_record", "leave_future_out", "prefix"]

#: Gauss–Hermite nodes per dimension of the MAP + Laplace predictive (capped at ~10⁴ nodes).
LAPLACE_NODES = QUADRATURE_NODES


@dataclass(frozen=True)
class Forecasts:
    """Per-record forecasts (arrays over the records; NaN where a field does not apply)."""

    point_mg_l: np.ndarray
    pit: np.ndarray
    p_censored: np.ndarray
    log_density: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Forecasts:
        return cls(*(np.full(n, np.nan) for _ in range(4)))


@dataclass(frozen=True)
class LeaveFutureOut:
    """A priori, Bayesian and MAP forecasts of every record of one patient under one model.

    ``first`` marks records with no earlier record (their Bayesian forecast is a priori).
    ``full`` is the posterior given all the records (its evidence is the patient's marginal
    likelihood).
    """

    time_day: np.ndarray
    observed_mg_l: np.ndarray
    censoring: np.ndarray
    first: np.ndarray
    a_priori: Forecasts
    bayesian: Forecasts
    map: Forecasts
    full: WeightedPosterior
    #: ln p(y_<k) of the records before each record (0 for the first): model averaging
    prefix_log_marginal: np.ndarray | None = None


def prefix(problem: PatientProblem, k: int) -> PatientProblem:
    """The problem with only its first ``k`` records (in the records' order)."""
    return dataclasses.replace(
        problem,
        time_day=problem.time_day[:k],
        value_mg_l=problem.value_mg_l[:k],
        censoring=problem.censoring[:k],
    )


def forecast_record(
    problem: PatientProblem, nodes: WeightedPosterior, index: int, point_eta: np.ndarray | None
) -> tuple[float, float, float, float]:
    """(point, PIT, P(censored region), log predictive density) of record ``index``.

    The predictive distribution is the mixture Σ_j w_j p(y | f(η_j)); the point prediction is
    f(``point_eta``), or the weighted mean of f when ``point_eta`` is None.
    """
    time = problem.time_day[index : index + 1]
    f = np.maximum(np.asarray(problem.predict(nodes.eta, time), dtype=float)[:, 0], 1e-12)
    residual = problem.declaration.residual
    form, sigma = residual_form(residual.form), residual.sd()
    value, code = float(problem.value_mg_l[index]), int(problem.censoring[index])
    limit = max(value, PREDICTION_FLOOR_MG_L) if code != MEASURED else value
    z = np.asarray(form.z(limit, np.maximum(f, PREDICTION_FLOOR_MG_L), sigma, np), dtype=float)
    cdf = float(np.clip(nodes.weight @ scipy.special.ndtr(z), 0.0, 1.0))
    log_w = np.log(np.maximum(nodes.weight, 1e-300))
    if code == MEASURED:
        terms = form.log_density(value, f, sigma, np)
        pit, p_censored = cdf, np.nan
    elif code == BELOW_LLOQ:
        terms = form.log_below(limit, f, sigma, np)
        pit, p_censored = np.nan, cdf
    elif code == ABOVE_ULOQ:
        terms = form.log_above(limit, f, sigma, np)
        pit, p_censored = np.nan, 1.0 - cdf
    else:  # PatientProblem.build rejects other codes
        raise ValueError(f"unknown censoring code {code}")
    log_density = float(scipy.special.logsumexp(log_w + np.asarray(terms, dtype=float)))
    if point_eta is None:
        point = float(nodes.weight @ f)
    else:
        point = float(np.asarray(problem.predict(point_eta[None, :], time))[0, 0])
    return max(point, PREDICTION_FLOOR_MG_L), pit, p_censored, log_density


def _laplace_nodes(
    problem: PatientProblem, mode: MapResult | None
) -> tuple[WeightedPosterior, np.ndarray]:
    """N(η̂, S) of the MAP and Laplace covariance as Gauss–Hermite nodes, and η̂."""
    mode = mode or find_map(problem.log_posterior, problem.omega)
    n = min(LAPLACE_NODES, max(3, int(10_000 ** (1.0 / problem.n_eta))))
    eta, weight = gauss_hermite_normal(mode.eta, mode.covariance, n)
    return WeightedPosterior(eta, weight, 0.0, "laplace", 0.0, 0.0, mode), mode.eta


def _stack(rows: list[tuple[float, float, float, float]]) -> Forecasts:
    if not rows:
        return Forecasts.empty(0)
    return Forecasts(*(np.array(column, dtype=float) for column in zip(*rows, strict=True)))


def leave_future_out(problem: PatientProblem, *, random_seed: int = 0) -> LeaveFutureOut:
    """The a-priori, Bayesian and MAP forecasts of every record (see the module docstring)."""
    with single_threaded_blas():
        return _leave_future_out(problem, random_seed)


def _leave_future_out(problem: PatientProblem, random_seed: int) -> LeaveFutureOut:
    order = np.argsort(problem.time_day, kind="stable")
    problem = dataclasses.replace(
        problem,
        time_day=problem.time_day[order],
        value_mg_l=problem.value_mg_l[order],
        censoring=problem.censoring[order],
    )
    n = problem.time_day.size
    prior = prior_nodes(problem)
    zero = np.zeros(problem.n_eta)
    a_priori = [forecast_record(problem, prior, k, zero) for k in range(n)]
    bayesian, map_rows, evidence = [], [], []
    for k in range(n):
        if k == 0:
            evidence.append(0.0)
            bayesian.append(a_priori[0])
            map_rows.append(a_priori[0])
            continue
        past = prefix(problem, k)
        nodes = posterior(past, random_seed=random_seed + k)
        evidence.append(nodes.log_marginal)
        bayesian.append(forecast_record(problem, nodes, k, None))
        laplace, eta_hat = _laplace_nodes(past, nodes.map)
        map_rows.append(forecast_record(problem, laplace, k, eta_hat))
    full = posterior(problem, random_seed=random_seed + n) if n else prior
    return LeaveFutureOut(
        time_day=problem.time_day,
        observed_mg_l=problem.value_mg_l,
        censoring=problem.censoring,
        first=np.arange(n) == 0,
        a_priori=_stack(a_priori),
        bayesian=_stack(bayesian),
        map=_stack(map_rows),
        full=full,
        prefix_log_marginal=np.array(evidence, dtype=float),
    )
