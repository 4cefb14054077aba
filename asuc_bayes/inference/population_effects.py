"""Each subject's random effects, drawn exactly given each population draw of a marginal fit.

For every posterior draw φ each subject's (η_CL, η_V) is drawn from its conditional posterior
p(η_i | y_i, t_i, d_i, φ) by sampling-importance resampling: :data:`N_PROPOSALS` proposals
from an equal mixture of the rule's cells (a cell chosen with its node's share of the
integrand at φ, a uniform point inside it) and the random-effect density N(μ_i, ω²) itself,
weighted by the exact conditional density over the mixture density, one kept ∝ its weight.
The Kish effective sample size of the weights is reported (``diagnostics_importance_ess_min``).

The integrand at the rule's nodes comes from the marginal model's own per-node data
(:class:`SubjectNodes`: the sufficient statistics of the measured records, the censored pairs'
ln Φ through :func:`asuc_bayes.graphs.censored_ops.censored_terms_per_scale`, the outcome's
data), so the draws and the likelihood evaluate the same terms.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from asuc_bayes.graphs.censored_ops import censored_terms_per_scale
from asuc_bayes.inference.population_effects_kernels import (
    cell_log_density,
    normalised_cells,
    resample,
)
from asuc_bayes.inference.population_marginal import (
    MarginalPoint,
    QuadratureRule,
    SubjectData,
    SubjectRule,
    _normal_logpdf,
    _per_subject,
    _stats_log_likelihood,
    log_typical_values,
    outcome_log_likelihood,
)
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "LOW_IMPORTANCE_ESS",
    "N_PROPOSALS",
    "RandomEffectDraws",
    "SubjectNodes",
    "draw_random_effects",
    "points_of_posterior",
]

#: Proposals per (draw, subject) of the importance resampling of η.
N_PROPOSALS = 64
#: An importance resampling whose weights' Kish ESS is below this is counted as poor
#: (``diagnostics_importance_ess_low_share``: the share of (draw, subject) pairs).
LOW_IMPORTANCE_ESS = 10.0
#: Population draws per chunk of the importance resampling (bounds memory).
_CHUNK_DRAWS = 200


@dataclass(frozen=True)
class RandomEffectDraws:
    """Per (chain, draw, subject): η_CL, η_V, CL (L/day), V (L), x = ln(AUC_w2-4/CL); and
    the Kish effective sample size of the importance weights (min and median over every
    draw and subject, and the share of (draw, subject) pairs below
    :data:`LOW_IMPORTANCE_ESS`)."""

    eta_cl: np.ndarray
    eta_v: np.ndarray
    cl: np.ndarray
    v: np.ndarray
    ln_auc_cl: np.ndarray
    importance_ess_min: float
    importance_ess_median: float
    importance_ess_low_share: float


def points_of_posterior(posterior) -> MarginalPoint:
    """The population draws of a posterior Dataset as one point of arrays (draw, 1)."""
    return MarginalPoint(
        *(
            np.asarray(posterior[f.name].values, dtype=float).reshape(-1, 1)
            for f in dataclasses.fields(MarginalPoint)
        )
    )


@dataclass(frozen=True)
class SubjectNodes:
    """One subject's nodes as the marginal likelihood holds them (its rows of
    :meth:`QuadratureRule.model_data`): each node's outcome data (x, event time and indicator,
    ln event time), the sufficient statistics of its measured records and its censored pairs'
    c of ln Φ(c/σ), the pairs' nodes counted from the subject's first node."""

    node_data: np.ndarray
    node_stats: np.ndarray
    scaled_censored: np.ndarray
    scaled_node: np.ndarray

    @classmethod
    def all_of(cls, values: dict, n_nodes: np.ndarray) -> list[SubjectNodes] | None:
        """Every subject's nodes from ``values`` (:meth:`QuadratureRule.model_data`) and the
        rule's nodes per subject; ``None`` when records remain as (observation, node) pairs
        (a residual form outside the scale family)."""
        if len(values["measured_node"]) or len(values["censored_node"]):
            return None
        start = np.concatenate([[0], np.cumsum(n_nodes)])
        pair_subject = values["node_subject"][values["scaled_node"]]
        bounds = np.searchsorted(pair_subject, np.arange(len(n_nodes) + 1))
        return [
            cls(
                values["node_data"][start[i] : start[i + 1]],
                values["node_stats"][start[i] : start[i + 1]],
                values["scaled_censored"][bounds[i] : bounds[i + 1]],
                values["scaled_node"][bounds[i] : bounds[i + 1]] - start[i],
            )
            for i in range(len(n_nodes))
        ]

    def log_likelihood(self, spec: ModelSpec, point: MarginalPoint) -> np.ndarray:
        """ln p(y, t, d | node) at every node (columns) for each population draw of ``point``
        (arrays (draw, 1); rows): the same terms as the marginal likelihood's."""
        node = self.node_data
        outcome = outcome_log_likelihood(
            spec, point, node[:, 1], node[:, 2], node[:, 3], np, node[:, 4]
        )
        residual_sd = np.asarray(point.residual_sd, dtype=float).reshape(-1, 1)
        censored = censored_terms_per_scale(
            residual_sd[:, 0], self.scaled_censored, self.scaled_node, len(node)
        )
        return outcome + _stats_log_likelihood(residual_sd, *self.node_stats.T) + censored


def _cell_position(rule: SubjectRule) -> np.ndarray:
    """Each grid index j_CL·n_V + j_V of the rule's tensor grid mapped to its kept node, −1
    where the node was pruned."""
    position = np.full(rule.shape[0] * rule.shape[1], -1, dtype=np.int64)
    position[rule.kept] = np.arange(len(rule.kept))
    return position


def _node_log_prior(spec, subject: SubjectData, rule: SubjectRule, point) -> np.ndarray:
    """The random-effect density at the rule's nodes (draw, node): N(ln CL; μ_CL, ω²_CL) on
    the ln CL axis plus N(ln V; μ_V, ω²_V) on the ln V axis, each evaluated once per axis
    node and gathered (a node count's worth of work instead of the density at every node)."""
    axis_cl, axis_v = rule.axes()
    mu_cl, mu_v = log_typical_values(spec, point, subject.weight_kg, subject.crp_mg_l)
    on_cl = _normal_logpdf(axis_cl - mu_cl, point.omega_cl, np)
    on_v = _normal_logpdf(axis_v - mu_v, point.omega_v, np)
    j = rule.index
    return on_cl[..., j[:, 0]] + on_v[..., j[:, 1]]


def _draw_subject(
    spec,
    subject: SubjectData,
    rule: SubjectRule,
    nodes: SubjectNodes | None,
    point,
    n_proposals,
    rng,
):
    """(ln CL, ln V, x, importance ESS) per population draw in ``point`` (draw, 1).

    Proposal: an equal mixture of the rule's cells (a cell chosen with its node's share of
    the integrand at the draw, a uniform point inside it) and the random-effect density
    N(μ, ω²) itself, which covers the conditional posterior when ω is small against the
    cells. The integrand at the nodes comes from ``nodes`` (per-node sufficient statistics)
    when given, else from the subject's records."""
    log_cl, log_v = rule.nodes()
    if nodes is None:
        node_terms = subject.log_density(spec, point, log_cl, log_v)  # (draw, node)
    else:
        node_terms = _node_log_prior(spec, subject, rule, point) + nodes.log_likelihood(spec, point)
    log_p, cells = normalised_cells(node_terms, rng.random((node_terms.shape[0], n_proposals)))
    jitter = rule.step * (rng.random((*cells.shape, 2)) - 0.5)
    from_cells = np.stack([log_cl[cells], log_v[cells]], axis=-1) + jitter
    mu_cl, mu_v = log_typical_values(spec, point, subject.weight_kg, subject.crp_mg_l)
    omega = np.stack(np.broadcast_arrays(point.omega_cl, point.omega_v), axis=-1)  # (draw, 1, 2)
    mu = np.stack(np.broadcast_arrays(mu_cl, mu_v), axis=-1)
    from_prior = mu + omega * rng.standard_normal((*cells.shape, 2))
    proposal = np.where(rng.random(cells.shape)[..., None] < 0.5, from_cells, from_prior)
    prop_cl, prop_v = np.ascontiguousarray(proposal[..., 0]), np.ascontiguousarray(proposal[..., 1])
    prop_prediction, prop_x = subject.predictions(spec, prop_cl, prop_v)
    with np.errstate(over="ignore", invalid="ignore"):  # far proposals: density 0 (below)
        target = subject.log_density(spec, point, prop_cl, prop_v, prop_prediction, prop_x)
    log_prior = _normal_logpdf(proposal - mu, omega, np).sum(axis=-1)
    origin = np.array([axis[0] for axis in rule.axes()])
    on_cells = cell_log_density(
        log_p,
        prop_cl,
        prop_v,
        origin,
        np.asarray(rule.step, dtype=float),
        np.asarray(rule.shape, dtype=np.int64),
        _cell_position(rule),
    )
    log_q = np.logaddexp(on_cells, log_prior) - math.log(2)
    chosen, ess = resample(np.asarray(target, dtype=float), log_q, rng.gumbel(size=log_q.shape))
    chosen = chosen[:, None]
    pick = lambda values: np.take_along_axis(values, chosen, axis=1)[:, 0]  # noqa: E731
    return pick(prop_cl), pick(prop_v), pick(prop_x), ess


def draw_random_effects(
    spec: ModelSpec,
    posterior,
    data,
    rule: QuadratureRule,
    *,
    random_seed: int = 0,
    n_proposals: int = N_PROPOSALS,
    workers: int | None = None,
) -> RandomEffectDraws:
    """Each subject's (η_CL, η_V) drawn from p(η_i | data_i, φ) for every population draw φ
    of ``posterior`` (chain, draw): sampling-importance resampling with the proposal
    p̂_k(φ)-weighted uniform on the rule's cells (p̂_k the node's share of the integral at
    φ), so weights are nearly flat; one of ``n_proposals`` kept ∝ its weight (module
    docstring). Exact as ``n_proposals`` → ∞; the weights' ESS is reported.

    Subjects are drawn on ``workers`` threads (default: the machine's cores; NumPy releases
    the GIL in its array operations). Each subject has its own generator spawned from
    ``random_seed``, so the draws do not depend on ``workers`` (tested)."""
    if n_proposals < 1:
        raise ValueError(f"n_proposals must be positive, got {n_proposals}")
    shape = posterior["theta_cl"].shape  # (chain, draw)
    point = points_of_posterior(posterior)
    n_draws = point.theta_cl.shape[0]
    out = np.zeros((5, n_draws, data.n_subjects))
    ess = np.zeros((n_draws, data.n_subjects))
    rngs = np.random.SeedSequence(random_seed).spawn(data.n_subjects)
    nodes = SubjectNodes.all_of(rule.model_data(data), rule.n_nodes)

    def draw(i: int) -> None:
        subject = SubjectData.of(data, i)
        rng = np.random.default_rng(rngs[i])
        for start in range(0, n_draws, _CHUNK_DRAWS):
            chunk = slice(start, start + _CHUNK_DRAWS)
            part = MarginalPoint(
                *(getattr(point, f.name)[chunk] for f in dataclasses.fields(point))
            )
            log_cl, log_v, x, weights_ess = _draw_subject(
                spec, subject, rule.subjects[i], nodes and nodes[i], part, n_proposals, rng
            )
            mu_cl, mu_v = log_typical_values(spec, part, subject.weight_kg, subject.crp_mg_l)
            out[0, chunk, i] = log_cl - mu_cl[:, 0]
            out[1, chunk, i] = log_v - mu_v[:, 0]
            out[2, chunk, i] = log_cl
            out[3, chunk, i] = log_v
            out[4, chunk, i] = x
            ess[chunk, i] = weights_ess

    _per_subject(draw, data.n_subjects, workers)
    full = (*shape, data.n_subjects)
    return RandomEffectDraws(
        eta_cl=out[0].reshape(full),
        eta_v=out[1].reshape(full),
        cl=np.exp(out[2]).reshape(full),
        v=np.exp(out[3]).reshape(full),
        ln_auc_cl=out[4].reshape(full),
        importance_ess_min=float(ess.min()),
        importance_ess_median=float(np.median(ess)),
        importance_ess_low_share=float(np.mean(ess < LOW_IMPORTANCE_ESS)),
    )
