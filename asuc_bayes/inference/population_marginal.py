"""Population fit with each subject's random effects integrated out by quadrature.

The hierarchical model of :mod:`asuc_bayes.inference.population` has two random effects per subject,
(η_CL, η_V). Here they are integrated out subject by subject, so that NUTS samples only the
~10 population parameters φ:

    p(y_i, t_i, d_i | φ) = ∫∫ p(y_i | CL, V, σ) p(t_i, d_i | x_i(CL, V), λ, γ, β)
                              N(ln CL; μ_CL,i(φ), ω²_CL) N(ln V; μ_V,i(φ), ω²_V) d ln CL d ln V

with μ_CL,i = ln(θ_CL (WT_i/70)^0.75 (CRP_i/30)^θ_CRP) and μ_V,i = ln(θ_V WT_i/70), i.e.
η = ln CL − μ (a shift: unit Jacobian). The PK likelihood of the concentrations AND the
Weibull likelihood of the outcome (through x_i = ln(AUC_i/CL_i)) are inside the integral.

**The rule: an adaptive grid in (ln CL, ln V).** Gauss–Hermite rules were measured first and
rejected: many subjects' integrands are far from Gaussian (a single late sample gives a thin
curved ridge; some are bimodal) and 15 × 15 nodes still missed by up to 0.6 log units. Each
subject i gets instead a midpoint rule over the square [−h, h]² in u, mapped by
(ln CL, ln V) = m_i + L_i u, with m_i and L_i L_iᵀ the mean and covariance of the subject's
whole integrand (concentrations and outcome) at the model file's point estimates, its prior
tempered (:data:`PRIOR_POWER`) to cover other population points. The grid is refined
(:data:`LEVELS`) until the log integral at nine population points
(:func:`refinement_points`) moves by at most :data:`TOLERANCE`, then pruned to the nodes
within :data:`PRUNE` log units of the maximum at one of them. Because the nodes are fixed in
(ln CL, ln V), each node's predicted concentrations and x are data (computed once, in NumPy,
by :mod:`asuc_bayes.pk.kernels`); the population parameters enter only through the residual
SD, the random-effect density and the Weibull parameters. Accuracy against a dense brute-force
grid: tests/test_population_marginal.py and README ("Population model").

**Individual random effects.** For every posterior draw φ each subject's (η_CL, η_V) is
drawn from its conditional posterior p(η_i | y_i, t_i, d_i, φ) by sampling-importance
resampling: :data:`N_PROPOSALS` proposals from the rule's cells (a cell chosen with its
node's share of the integral at φ, a uniform point inside it), weighted by the exact
conditional density over the proposal density, one kept ∝ its weight. The Kish effective
sample size of the weights is reported (``diagnostics_importance_ess_min``).

Examples
--------
>>> from asuc_bayes.spec.config import load_model
>>> from asuc_bayes.studies.simulate import simulate_cohort
>>> from asuc_bayes.inference.population import CohortData
>>> spec = load_model()
>>> data = CohortData.from_patients(simulate_cohort(spec, 3, random_seed=1).patients)
>>> rule = quadrature_rule(spec, data, levels=(5,))
>>> rule.n_nodes.tolist() <= [25, 25, 25]
True
>>> point = MarginalPoint.of_spec(spec)
>>> subject_log_marginal(spec, point, data, rule).shape
(3,)
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from asuc_bayes.data.dataset import BELOW_LLOQ, MEASURED
from asuc_bayes.inference.fit_tree import trace_result
from asuc_bayes.pk import kernels
from asuc_bayes.spec.config import ModelSpec, PopulationPriors
from asuc_bayes.spec.legacy import legacy_residual
from asuc_bayes.spec.residual import PREDICTION_FLOOR_MG_L

__all__ = [
    "HALF_WIDTH",
    "LEVELS",
    "N_PROPOSALS",
    "PRIOR_POWER",
    "MarginalPoint",
    "QuadratureRule",
    "build_marginal_model",
    "draw_random_effects",
    "log_typical_values",
    "quadrature_rule",
    "subject_log_marginal",
]

#: Sampler settings of a marginal fit when none are given: ~10 parameters need fewer draws
#: and a lower target acceptance than the full model (README, "Population model").
MARGINAL_DRAWS = 1000
MARGINAL_TUNE = 500
MARGINAL_TARGET_ACCEPT = 0.95
#: Nodes per axis tried per subject, coarsest first (N² nodes before pruning).
LEVELS = (9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257)
#: Refinement stops when the log integral changes by at most this at every test point.
TOLERANCE = 0.005
#: Nodes below max − PRUNE (log units) at every test point are dropped.
PRUNE = 15.0
#: Half-width of the rule in reference posterior SDs (u in [−HALF_WIDTH, HALF_WIDTH]²).
HALF_WIDTH = 5.0
#: Power of the prior in the reference posterior that places each rule (< 1: wider).
PRIOR_POWER = 0.5
#: Proposals per (draw, subject) of the importance resampling of η.
N_PROPOSALS = 64
#: Degrees of freedom of the Student-t proposal.
PROPOSAL_DF = 5.0
#: Upper node counts of the buckets of subjects (one padded table of nodes per bucket).
BUCKETS = (27, 81, 243, 729, 2187, 6561, 66049)
#: Population draws per chunk of the importance resampling (bounds memory).
_CHUNK_DRAWS = 200


@dataclass(frozen=True)
class MarginalPoint:
    """One population point φ (arrays of one shape: one value per draw, or scalars)."""

    theta_cl: Any
    theta_v: Any
    crp_exponent_cl: Any
    omega_cl: Any
    omega_v: Any
    residual_sd: Any
    tte_lambda: Any
    tte_gamma: Any
    tte_beta: Any

    @classmethod
    def of_spec(cls, spec: ModelSpec) -> MarginalPoint:
        """The model file's point estimates."""
        pk, tte = spec.pk, spec.tte
        return cls(
            pk.theta_cl.estimate,
            pk.theta_v.estimate,
            pk.crp_exponent_cl.estimate,
            pk.omega_cl,
            pk.omega_v,
            pk.residual_sd.estimate,
            tte.baseline_lambda,
            tte.gamma.estimate,
            tte.beta.estimate,
        )


def log_typical_values(spec: ModelSpec, point: MarginalPoint, weight_kg, crp_mg_l, xp: Any = np):
    """(μ_CL, μ_V) = ln of the typical CL and V of subjects (kernels' covariate model).

    Examples
    --------
    >>> from asuc_bayes.spec.config import load_model
    >>> spec = load_model()
    >>> mu_cl, mu_v = log_typical_values(spec, MarginalPoint.of_spec(spec), 70.0, 30.0)
    >>> bool(np.isclose(np.exp(mu_cl), spec.pk.theta_cl.estimate))
    True
    """
    pk = spec.pk
    cl = kernels.individual_clearance(
        point.theta_cl,
        weight_kg,
        crp_mg_l,
        0.0,
        weight_exponent=pk.weight_exponent_cl.estimate,
        crp_exponent=point.crp_exponent_cl,
        reference_weight_kg=pk.reference_weight_kg,
        reference_crp_mg_l=pk.reference_crp_mg_l,
        crp_form=pk.crp_form,
        xp=xp,
    )
    v = kernels.individual_volume(
        point.theta_v,
        weight_kg,
        0.0,
        weight_exponent=pk.weight_exponent_v.estimate,
        reference_weight_kg=pk.reference_weight_kg,
        xp=xp,
    )
    return xp.log(cl), xp.log(v)


# -- the integrand, written once over xp (numpy or pytensor.tensor) -----------------------


def _normal_logpdf(value, sd, xp):
    return -0.5 * (value / sd) ** 2 - xp.log(sd) - 0.5 * math.log(2 * math.pi)


def log_integrand(spec, point, log_cl, log_v, mu_cl, mu_v, x, event_time_day, event, xp=np):
    """ln N(ln CL; μ_CL, ω²_CL) + ln N(ln V; μ_V, ω²_V) + the Weibull log-likelihood of the
    colectomy record at x = ln(AUC/CL): every term of a subject's integrand but the
    concentrations' (:func:`observation_terms`). Arguments broadcast."""
    prior = _normal_logpdf(log_cl - mu_cl, point.omega_cl, xp) + _normal_logpdf(
        log_v - mu_v, point.omega_v, xp
    )
    outcome = kernels.weibull_log_likelihood(
        event_time_day,
        event,
        x,
        xp=xp,
        **kernels.weibull_parameters(
            spec.tte,
            baseline_lambda=point.tte_lambda,
            gamma=point.tte_gamma,
            beta=point.tte_beta,
        ),
    )
    return prior + outcome


def observation_terms(spec, residual_sd, value, measured, sign, prediction, xp=np):
    """Log-likelihood of concentration records, elementwise: the residual density of measured
    values (``measured`` 1), ln Φ(s·z) of censored ones (``sign`` s = +1 below the LLOQ, −1
    above the ULOQ, the limit as value). Arguments broadcast."""
    form, sigma = legacy_residual(spec.pk.residual_form, residual_sd)
    density = form.log_density(value, prediction, sigma, xp)
    censored = form.log_censored(value, prediction, sigma, sign, xp)
    return xp.where(measured > 0, density, censored)


def censoring_arrays(data) -> tuple[np.ndarray, np.ndarray]:
    """(measured, sign) of every observation: 1/0, and +1 below the LLOQ else −1."""
    measured = (data.obs_censoring == MEASURED).astype(float)
    sign = np.where(data.obs_censoring == BELOW_LLOQ, 1.0, -1.0)
    return measured, sign


def _grid_moments(log_density, lo, hi, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a 2-D density tabulated on an n × n grid over [lo, hi]."""
    a = np.linspace(lo[0], hi[0], n)
    b = np.linspace(lo[1], hi[1], n)
    mesh_a, mesh_b = np.meshgrid(a, b, indexing="ij")
    points = np.stack([mesh_a.ravel(), mesh_b.ravel()], axis=1)
    values = log_density(points[:, 0], points[:, 1])
    weight = np.exp(values - values.max())
    weight /= weight.sum()
    mean = weight @ points
    centred = points - mean
    return mean, (centred * weight[:, None]).T @ centred


def _reference_moments(spec: ModelSpec, data, prior_power: float):
    """Mean (subject, 2) and covariance (subject, 2, 2) of each subject's (ln CL, ln V)
    under its whole integrand (concentrations and colectomy record) at the model file's
    point estimates, with the prior tempered by ``prior_power`` (ω / √power: wider, to cover
    the conditional posterior at other population points). Two dense grid passes: over
    μ ± 8 tempered prior SDs, then over the first pass's mean ± 8 SDs."""
    base = MarginalPoint.of_spec(spec)
    tempered = dataclasses.replace(
        base,
        omega_cl=base.omega_cl / math.sqrt(prior_power),
        omega_v=base.omega_v / math.sqrt(prior_power),
    )
    n = data.n_subjects
    mean = np.zeros((n, 2))
    covariance = np.zeros((n, 2, 2))
    for i in range(n):
        subject = SubjectData.of(data, i)
        mu = np.array(log_typical_values(spec, base, subject.weight_kg, subject.crp_mg_l))
        sd = np.array([tempered.omega_cl, tempered.omega_v])

        def density(log_cl, log_v, subject=subject):
            return subject.log_density(spec, tempered, log_cl, log_v)

        m, c = _grid_moments(density, mu - 8 * sd, mu + 8 * sd, 161)
        half = 8 * np.sqrt(np.diag(c)) + 1e-3
        mean[i], covariance[i] = _grid_moments(density, m - half, m + half, 121)
    return mean, covariance


# -- the rule ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectRule:
    """One subject's rule: midpoint nodes u_k of an ``n_axis``² grid over [−h, h]² (pruned
    to ``kept``), mapped by (ln CL, ln V) = centre + L u."""

    centre: np.ndarray
    scale: np.ndarray
    n_axis: int
    half_width: float
    kept: np.ndarray

    @property
    def u(self) -> np.ndarray:
        """(node, 2) kept nodes in u."""
        axis = self.half_width * ((np.arange(self.n_axis) + 0.5) / self.n_axis * 2.0 - 1.0)
        u1, u2 = np.meshgrid(axis, axis, indexing="ij")
        return np.stack([u1.ravel(), u2.ravel()], axis=1)[self.kept]

    @property
    def cell_side(self) -> float:
        return 2.0 * self.half_width / self.n_axis

    @property
    def log_cell_area(self) -> float:
        """ln of one cell's area in (ln CL, ln V)."""
        return math.log(self.cell_side**2 * self.scale[0, 0] * self.scale[1, 1])

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(ln CL, ln V) of the kept nodes."""
        points = self.centre + self.u @ self.scale.T
        return points[:, 0], points[:, 1]


@dataclass(frozen=True, eq=False)
class QuadratureRule:
    """Every subject's rule, flattened for the model graph.

    Attributes
    ----------
    subjects
        The per-subject rules.
    node_subject
        (node,) subject of each node (all subjects' nodes, then one padding node).
    node_data
        (node, 6): ln CL, ln V, ln cell area (−1e30 for the padding node), x = ln(AUC/CL),
        the subject's event time (day) and event indicator.
    pair_index
        (pair, 2): (observation, node) of each observation of a subject at each node of it.
    pair_data
        (pair, 4): observation value, measured (1/0), censoring sign, prediction at the node.
    gather
        (subject, max nodes): each subject's node indices, padded with the padding node.
    """

    subjects: tuple[SubjectRule, ...]
    residual_form: str
    node_subject: np.ndarray
    node_data: np.ndarray
    pair_index: np.ndarray
    pair_data: np.ndarray
    gather: np.ndarray

    @property
    def n_nodes(self) -> np.ndarray:
        """Nodes per subject."""
        return np.array([len(r.kept) for r in self.subjects])

    def model_data(self, data) -> dict[str, np.ndarray]:
        """Values of the marginal model's ``pm.Data`` containers: measured records as
        per-node sufficient statistics (``node_stats``: Σ g², Σ h, count; when the residual
        form is a scale family, :func:`_is_scale_family`) or else as (observation, node)
        pairs, censored pairs apart (each gets only its own term), and the subjects in
        buckets of similar node counts (:data:`BUCKETS`), each bucket's table of node indices
        padded to its largest subject only."""
        measured = self.pair_data[:, 1] > 0
        node = self.pair_index[:, 1]
        padding = len(self.node_subject) - 1
        counts = self.n_nodes
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        gathers = {}
        lower = 0
        for b, upper in enumerate(BUCKETS):
            members = np.flatnonzero((counts > lower) & (counts <= upper))
            width = max(1, int(counts[members].max()) if len(members) else 1)
            gather = np.full((len(members), width), padding, dtype=np.int64)
            for row, i in enumerate(members):
                gather[row, : counts[i]] = first[i] + np.arange(counts[i])
            gathers[f"gather_{b}"] = gather
            lower = upper
        measured_node = node[measured]
        measured_data = self.pair_data[measured][:, [0, 3]]
        node_stats = np.zeros((len(self.node_subject), 3))
        if _is_scale_family(self.residual_form, measured_data[:, 0], measured_data[:, 1]):
            # Σ_j ln p(y_j | f_kj, σ) = −½ G_k/σ² − m_k ln σ − H_k − m_k ln √(2π) per node
            form, unit = legacy_residual(self.residual_form, 1.0)
            y, f = measured_data[:, 0], np.maximum(measured_data[:, 1], PREDICTION_FLOOR_MG_L)
            size = len(self.node_subject)
            node_stats[:, 0] = np.bincount(measured_node, form.z(y, f, unit, np) ** 2, size)
            node_stats[:, 1] = np.bincount(measured_node, form.log_scale(y, f, unit, np), size)
            node_stats[:, 2] = np.bincount(measured_node, minlength=size)
            measured_node, measured_data = measured_node[:0], measured_data[:0]
        return {
            "subject_data": np.stack([data.weight_kg, data.crp_mg_l], axis=1),
            "node_subject": self.node_subject,
            "node_data": self.node_data,
            "node_stats": node_stats,
            "measured_node": measured_node,
            "measured_data": measured_data,
            "censored_node": node[~measured],
            "censored_data": self.pair_data[~measured][:, [0, 2, 3]],
            **gathers,
        }


def _is_scale_family(residual_form: str, y: np.ndarray, f: np.ndarray) -> bool:
    """Whether the measured records' log density is −½ (g/σ)² − ln σ − h − ln √(2π) with g
    and h free of σ (proportional and log-normal errors), checked numerically at two σ on
    these records; then per-node sums of g² and h replace the (observation, node) pairs."""
    if len(y) == 0:
        return False
    form, unit = legacy_residual(residual_form, 1.0)
    floored = np.maximum(f, PREDICTION_FLOOR_MG_L)
    g2 = form.z(y, floored, unit, np) ** 2
    h = form.log_scale(y, floored, unit, np)
    for sd in (0.3, 0.7):
        _, sigma = legacy_residual(residual_form, sd)
        exact = form.log_density(y, f, sigma, np)
        fast = -0.5 * g2 / sd**2 - math.log(sd) - h - 0.5 * math.log(2 * math.pi)
        if not np.allclose(exact, fast, rtol=1e-9, atol=1e-9):
            return False
    return True


def refinement_points(spec: ModelSpec) -> list[MarginalPoint]:
    """Population points at which each subject's rule is refined and pruned: the model
    file's point estimates and eight deterministic perturbations of every parameter
    (θ ×1/1.2–1.2, ω ×1/1.4–1.4, σ ×1/1.25–1.25, λ ×1/2.5–2.5, γ ±0.2, β ±0.4, θ_CRP ±0.2)."""
    base = MarginalPoint.of_spec(spec)
    signs = np.array(
        [
            [1, 1, 1, 1, 1, 1, 1, 1, 1],
            [-1, -1, -1, -1, -1, -1, -1, -1, -1],
            [1, -1, 1, -1, 1, -1, 1, -1, 1],
            [-1, 1, -1, 1, -1, 1, -1, 1, -1],
            [1, 1, -1, -1, 1, 1, -1, -1, 1],
            [-1, -1, 1, 1, -1, -1, 1, 1, -1],
            [1, -1, -1, 1, -1, 1, 1, -1, -1],
            [-1, 1, 1, -1, 1, -1, -1, 1, 1],
        ]
    )
    points = [base]
    for s in signs:
        points.append(
            MarginalPoint(
                base.theta_cl * 1.2 ** s[0],
                base.theta_v * 1.2 ** s[1],
                base.crp_exponent_cl + 0.2 * s[2],
                base.omega_cl * 1.4 ** s[3],
                base.omega_v * 1.4 ** s[4],
                base.residual_sd * 1.25 ** s[5],
                base.tte_lambda * 2.5 ** s[6],
                base.tte_gamma + 0.2 * s[7],
                base.tte_beta + 0.4 * s[8],
            )
        )
    return points


def stack_points(points: list[MarginalPoint]) -> MarginalPoint:
    """Several points as one of arrays (point, 1), to broadcast against nodes."""
    return MarginalPoint(
        *(
            np.array([getattr(p, f.name) for p in points], dtype=float)[:, None]
            for f in dataclasses.fields(MarginalPoint)
        )
    )


@dataclass(frozen=True)
class SubjectData:
    """One subject's data, for the NumPy evaluations of its integrand."""

    weight_kg: float
    crp_mg_l: float
    dose_time_day: np.ndarray
    dose_amount_mg: np.ndarray
    dose_duration_day: np.ndarray
    obs_time_day: np.ndarray
    value: np.ndarray
    measured: np.ndarray
    sign: np.ndarray
    event_time_day: float
    event: float

    @classmethod
    def of(cls, data, i: int) -> SubjectData:
        keep = data.dose_amount_mg[i] > 0
        mine = data.obs_subject == i
        measured, sign = censoring_arrays(data)
        return cls(
            float(data.weight_kg[i]),
            float(data.crp_mg_l[i]),
            data.dose_time_day[i][keep],
            data.dose_amount_mg[i][keep],
            data.dose_duration_day[i][keep],
            data.obs_time_day[mine],
            data.obs_value_mg_l[mine],
            measured[mine],
            sign[mine],
            float(data.event_time_day[i]),
            float(data.event[i]),
        )

    def predictions(self, spec: ModelSpec, log_cl: np.ndarray, log_v: np.ndarray):
        """Predicted concentrations (..., n_obs) and x (...) at (ln CL, ln V) arrays."""
        cl, v = np.exp(log_cl), np.exp(log_v)
        doses = (self.dose_time_day, self.dose_amount_mg, self.dose_duration_day)
        prediction = kernels.concentration(self.obs_time_day, *doses, cl, v)
        start_day, end_day = spec.tte.auc_window_day
        auc = kernels.auc_interval(start_day, end_day, *doses, cl, v)
        return prediction, kernels.ln_auc_cl(auc, cl)

    def log_density(self, spec, point, log_cl, log_v, prediction=None, x=None):
        """ln of the integrand at (ln CL, ln V) (broadcast against ``point``'s arrays);
        ``prediction`` (..., n_obs) and ``x`` if already known there."""
        if prediction is None:
            prediction, x = self.predictions(spec, log_cl, log_v)
        mu_cl, mu_v = log_typical_values(spec, point, self.weight_kg, self.crp_mg_l)
        residual_sd = np.asarray(point.residual_sd)[..., None]
        concentrations = observation_terms(
            spec, residual_sd, self.value, self.measured, self.sign, prediction
        ).sum(axis=-1)
        rest = log_integrand(
            spec, point, log_cl, log_v, mu_cl, mu_v, x, self.event_time_day, self.event
        )
        return concentrations + rest


def _subject_rule(
    spec, subject: SubjectData, centre, scale, points, levels, half_width, tolerance, prune
) -> SubjectRule:
    """The coarsest level whose log integral at every refinement point is within
    ``tolerance`` of the next finer level's (the finest level if none is), pruned to the
    nodes above max − ``prune`` at some refinement point."""
    results = []
    for n_axis in levels:
        rule = SubjectRule(centre, scale, n_axis, half_width, np.arange(n_axis**2))
        log_cl, log_v = rule.nodes()
        terms = subject.log_density(spec, points, log_cl, log_v)  # (point, node)
        integral = logsumexp(terms, axis=1) + rule.log_cell_area
        if results and np.max(np.abs(integral - results[-1][2])) <= tolerance:
            break
        results.append((rule, terms, integral))
    rule, terms, _ = results[-1]
    relative = terms - terms.max(axis=1, keepdims=True)
    kept = np.flatnonzero(relative.max(axis=0) > -prune)
    return dataclasses.replace(rule, kept=kept)


def quadrature_rule(
    spec: ModelSpec,
    data,
    *,
    levels: tuple[int, ...] = LEVELS,
    half_width: float = HALF_WIDTH,
    prior_power: float = PRIOR_POWER,
    tolerance: float = TOLERANCE,
    prune: float = PRUNE,
) -> QuadratureRule:
    """Every subject's rule (module docstring), refined and pruned at :func:`refinement_points`."""
    if not levels or min(levels) < 2:
        raise ValueError(f"levels must be node counts >= 2, got {levels!r}")
    if half_width <= 0:
        raise ValueError(f"half_width must be positive, got {half_width}")
    if not 0 < prior_power <= 1:
        raise ValueError(f"prior_power must be in (0, 1], got {prior_power}")
    centre, covariance = _reference_moments(spec, data, prior_power)
    scale = np.linalg.cholesky(covariance + 1e-8 * np.eye(2))
    points = stack_points(refinement_points(spec))
    rules, node_rows, pair_rows, node_subject = [], [], [], []
    n_nodes = 0
    for i in range(data.n_subjects):
        subject = SubjectData.of(data, i)
        rule = _subject_rule(
            spec, subject, centre[i], scale[i], points, levels, half_width, tolerance, prune
        )
        rules.append(rule)
        log_cl, log_v = rule.nodes()
        prediction, x = subject.predictions(spec, log_cl, log_v)
        k = len(log_cl)
        node_rows.append(
            np.stack(
                [
                    log_cl,
                    log_v,
                    np.full(k, rule.log_cell_area),
                    x,
                    np.full(k, subject.event_time_day),
                    np.full(k, subject.event),
                ],
                axis=1,
            )
        )
        node_subject.append(np.full(k, i))
        observations = np.flatnonzero(data.obs_subject == i)
        obs, node = np.meshgrid(observations, np.arange(k), indexing="ij")
        measured, sign = subject.measured, subject.sign
        pair_rows.append(
            (
                np.stack([obs.ravel(), n_nodes + node.ravel()], axis=1),
                np.stack(
                    [
                        np.repeat(subject.value, k),
                        np.repeat(measured, k),
                        np.repeat(sign, k),
                        prediction.T.ravel(),
                    ],
                    axis=1,
                ),
            )
        )
        n_nodes += k
    padding = np.array([[0.0, 0.0, -1e30, 0.0, 1.0, 0.0]])
    counts = [len(r.kept) for r in rules]
    gather = np.full((data.n_subjects, max(counts)), n_nodes)
    start = 0
    for i, k in enumerate(counts):
        gather[i, :k] = np.arange(start, start + k)
        start += k
    return QuadratureRule(
        subjects=tuple(rules),
        residual_form=spec.pk.residual_form,
        node_subject=np.concatenate([*node_subject, [0]]).astype(np.int64),
        node_data=np.concatenate([*node_rows, padding]),
        pair_index=np.concatenate([p[0] for p in pair_rows]).astype(np.int64).reshape(-1, 2),
        pair_data=np.concatenate([p[1] for p in pair_rows]).reshape(-1, 4),
        gather=gather,
    )


def _rule_log_marginal(spec, point: MarginalPoint, rule: dict, xp=np):
    """ln p(y_i, t_i, d_i | φ) by the rule (``rule``: :meth:`QuadratureRule.model_data`):
    per subject (subject,) over NumPy, their sum over PyTensor."""
    node, subject = rule["node_data"], rule["subject_data"]
    mu_cl, mu_v = log_typical_values(spec, point, subject[:, 0], subject[:, 1], xp)
    node_subject = rule["node_subject"]
    terms = node[:, 2] + log_integrand(
        spec,
        point,
        node[:, 0],
        node[:, 1],
        mu_cl[node_subject],
        mu_v[node_subject],
        node[:, 3],
        node[:, 4],
        node[:, 5],
        xp,
    )
    form, sigma = legacy_residual(spec.pk.residual_form, point.residual_sd)
    stats = rule["node_stats"]
    terms = terms - (
        0.5 * stats[:, 0] / point.residual_sd**2
        + stats[:, 2] * (xp.log(point.residual_sd) + 0.5 * math.log(2 * math.pi))
        + stats[:, 1]
    )
    measured, censored = rule["measured_data"], rule["censored_data"]
    density = form.log_density(measured[:, 0], measured[:, 1], sigma, xp)
    m3 = form.log_censored(censored[:, 0], censored[:, 2], sigma, censored[:, 1], xp)
    gathers = [rule[f"gather_{b}"] for b in range(len(BUCKETS))]
    if xp is np:
        terms = terms + np.bincount(rule["measured_node"], density, len(terms))
        terms = terms + np.bincount(rule["censored_node"], m3, len(terms))
        out = np.zeros(len(subject))
        for gather in gathers:
            out[node_subject[gather[:, 0]]] = logsumexp(terms[gather], axis=1)
        return out
    terms = xp.inc_subtensor(terms[rule["measured_node"]], density)
    terms = xp.inc_subtensor(terms[rule["censored_node"]], m3)
    total = 0.0
    for gather in gathers:
        table = terms[gather]
        peak = xp.max(table, axis=1, keepdims=True)
        total = total + (xp.log(xp.exp(table - peak).sum(axis=1)) + peak[:, 0]).sum()
    return total


def subject_log_marginal(spec: ModelSpec, point: MarginalPoint, data, rule: QuadratureRule):
    """ln p(y_i, t_i, d_i | φ) of every subject by the rule (NumPy), shape (subject,).

    The same function, over ``pytensor.tensor``, is the marginal model's likelihood.
    """
    return _rule_log_marginal(spec, point, rule.model_data(data))


# -- the model and its sampling ------------------------------------------------------------


def build_marginal_model(spec: ModelSpec, priors: PopulationPriors, values: dict):
    """The PyMC model of the population parameters with every subject's random effects
    integrated out by its rule; ``values`` are :meth:`QuadratureRule.model_data`.

    Named variables as in :func:`asuc_bayes.inference.population.build_population_model`
    (``theta_cl``
    … ``tte_lambda``), no per-subject variable: every data container's length may change
    with :meth:`nutpie.compiled_pyfunc.CompiledPyfuncModel.with_data`.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from asuc_bayes.inference.population.model import pk_variables, tte_variables

    with pm.Model() as model:
        bound = {name: pm.Data(name, value) for name, value in values.items()}
        pk = pk_variables(priors)
        tte_lambda, gamma, beta = tte_variables(spec, priors)
        point = MarginalPoint(
            pk["theta_cl"],
            pk["theta_v"],
            pk["crp_exponent_cl"],
            pk["omega_cl"],
            pk["omega_v"],
            pk["residual_sd"],
            tte_lambda,
            gamma,
            beta,
        )
        pm.Potential("marginal_loglik", _rule_log_marginal(spec, point, bound, pt))
    return model


_COMPILED: dict[tuple, Any] = {}


def _compiled(spec: ModelSpec, priors: PopulationPriors, values: dict):
    """nutpie's compiled marginal model (cached per process: one compilation serves every
    cohort of any size), with ``values`` bound."""
    from asuc_bayes.inference.population.model import INIT_LOG10_HAZARD_AT_REF, compile_jittered

    key = (repr(spec), priors)
    if key not in _COMPILED:
        model = build_marginal_model(spec, priors, values)
        _COMPILED[key] = compile_jittered(
            model, {"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF}
        )
    return _COMPILED[key].with_data(**values)


def prepare_marginal_model(spec: ModelSpec, priors: PopulationPriors) -> None:
    """Compile the marginal model once in this process (e.g. on every worker)."""
    from asuc_bayes.inference.population.data import CohortData, placeholder_cohort

    duration = spec.pk.default_infusion_duration_day
    data = CohortData.from_patients(placeholder_cohort(2, duration), duration)
    _compiled(spec, priors, quadrature_rule(spec, data, levels=(9,)).model_data(data))


def sample_marginal(spec, priors, data, rule: QuadratureRule, settings, seed: int):
    """NUTS (nutpie) over the population parameters: posterior and sampler statistics
    (xarray Datasets) and the compile/sampling times."""
    from asuc_bayes.inference.population.sampling import nutpie_trace

    started = time.perf_counter()
    compiled = _compiled(spec, priors, rule.model_data(data))
    compiled_at = time.perf_counter()
    trace = nutpie_trace(compiled, settings, seed)
    return trace_result(trace, started, compiled_at, time.perf_counter())


# -- each subject's random effects, drawn exactly given each population draw ----------------


@dataclass(frozen=True)
class RandomEffectDraws:
    """Per (chain, draw, subject): η_CL, η_V, CL (L/day), V (L), x = ln(AUC_w2-4/CL); and
    the Kish effective sample size of the importance weights (min and median over every
    draw and subject)."""

    eta_cl: np.ndarray
    eta_v: np.ndarray
    cl: np.ndarray
    v: np.ndarray
    ln_auc_cl: np.ndarray
    importance_ess_min: float
    importance_ess_median: float


def points_of_posterior(posterior) -> MarginalPoint:
    """The population draws of a posterior Dataset as one point of arrays (draw, 1)."""
    return MarginalPoint(
        *(
            np.asarray(posterior[f.name].values, dtype=float).reshape(-1, 1)
            for f in dataclasses.fields(MarginalPoint)
        )
    )


def _sample_cells(log_p: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` cell indices per row of normalised log probabilities (row, cell), by inverse
    CDF on the rows' CDFs laid end to end (each row r shifted by r)."""
    rows, cells = log_p.shape
    cdf = np.cumsum(np.exp(log_p), axis=1)
    cdf /= cdf[:, -1:]
    offset = np.arange(rows)[:, None]
    flat = (cdf + offset).ravel()
    uniform = rng.random((rows, n)) + offset
    index = np.searchsorted(flat, uniform.ravel(), side="right").reshape(rows, n)
    return np.clip(index - offset * cells, 0, cells - 1)


def _draw_subject(spec, subject: SubjectData, rule: SubjectRule, point, n_proposals, rng):
    """(ln CL, ln V, x, importance ESS) per population draw in ``point`` (draw, 1)."""
    log_cl, log_v = rule.nodes()
    prediction, x = subject.predictions(spec, log_cl, log_v)
    node_terms = subject.log_density(spec, point, log_cl, log_v, prediction, x)  # (draw, node)
    log_p = node_terms - logsumexp(node_terms, axis=1, keepdims=True)
    cells = _sample_cells(log_p, n_proposals, rng)  # (draw, proposal)
    u = rule.u[cells] + rule.cell_side * (rng.random((*cells.shape, 2)) - 0.5)
    proposal = rule.centre + u @ rule.scale.T
    prop_cl, prop_v = proposal[..., 0], proposal[..., 1]
    prop_prediction, prop_x = subject.predictions(spec, prop_cl, prop_v)
    target = subject.log_density(spec, point, prop_cl, prop_v, prop_prediction, prop_x)
    # the proposal's density is p_k / (cell area) inside cell k: the area is one constant
    log_w = target - np.take_along_axis(log_p, cells, axis=1)
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    chosen = np.argmax(log_w + rng.gumbel(size=log_w.shape), axis=1)[:, None]
    ess = np.exp(2 * logsumexp(log_w, axis=1) - logsumexp(2 * log_w, axis=1))
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
) -> RandomEffectDraws:
    """Each subject's (η_CL, η_V) drawn from p(η_i | data_i, φ) for every population draw φ
    of ``posterior`` (chain, draw): sampling-importance resampling with the proposal
    p̂_k(φ)-weighted uniform on the rule's cells (p̂_k the node's share of the integral at
    φ), so weights are nearly flat; one of ``n_proposals`` kept ∝ its weight (module
    docstring). Exact as ``n_proposals`` → ∞; the weights' ESS is reported."""
    if n_proposals < 1:
        raise ValueError(f"n_proposals must be positive, got {n_proposals}")
    shape = posterior["theta_cl"].shape  # (chain, draw)
    point = points_of_posterior(posterior)
    n_draws = point.theta_cl.shape[0]
    out = np.zeros((5, n_draws, data.n_subjects))
    ess = np.zeros((n_draws, data.n_subjects))
    rngs = np.random.SeedSequence(random_seed).spawn(data.n_subjects)
    for i in range(data.n_subjects):
        subject = SubjectData.of(data, i)
        rng = np.random.default_rng(rngs[i])
        for start in range(0, n_draws, _CHUNK_DRAWS):
            chunk = slice(start, start + _CHUNK_DRAWS)
            part = MarginalPoint(
                *(getattr(point, f.name)[chunk] for f in dataclasses.fields(point))
            )
            log_cl, log_v, x, weights_ess = _draw_subject(
                spec, subject, rule.subjects[i], part, n_proposals, rng
            )
            mu_cl, mu_v = log_typical_values(spec, part, subject.weight_kg, subject.crp_mg_l)
            out[0, chunk, i] = log_cl - mu_cl[:, 0]
            out[1, chunk, i] = log_v - mu_v[:, 0]
            out[2, chunk, i] = log_cl
            out[3, chunk, i] = log_v
            out[4, chunk, i] = x
            ess[chunk, i] = weights_ess
    full = (*shape, data.n_subjects)
    return RandomEffectDraws(
        eta_cl=out[0].reshape(full),
        eta_v=out[1].reshape(full),
        cl=np.exp(out[2]).reshape(full),
        v=np.exp(out[3]).reshape(full),
        ln_auc_cl=out[4].reshape(full),
        importance_ess_min=float(ess.min()),
        importance_ess_median=float(np.median(ess)),
    )


def fit_marginal(spec: ModelSpec, priors: PopulationPriors, data, settings, random_seed: int):
    """The marginal fit of :func:`asuc_bayes.inference.population.fit_population`: the rule, NUTS
    over the population parameters, each subject's random effects per draw.

    Returns the posterior (population parameters and, per subject, ``eta_cl``, ``eta_v``,
    ``cl``, ``v``, ``ln_auc_cl``), the sampler statistics, extra diagnostics (the importance
    weights' ESS, the rule's node count) and timings.
    """
    started = time.perf_counter()
    rule = quadrature_rule(spec, data)
    ruled = time.perf_counter()
    if settings.sampler == "nutpie":
        posterior, stats, timing = sample_marginal(spec, priors, data, rule, settings, random_seed)
    else:
        posterior, stats, timing = _sample_pymc(spec, priors, data, rule, settings, random_seed)
    drawn_at = time.perf_counter()
    effects = draw_random_effects(spec, posterior, data, rule, random_seed=random_seed + 1)
    finished = time.perf_counter()
    dims = ("chain", "draw", "subject")
    posterior = posterior.assign(
        {
            name: (dims, getattr(effects, name))
            for name in ("eta_cl", "eta_v", "cl", "v", "ln_auc_cl")
        }
    ).assign_coords(subject=list(data.ids))
    checks = {
        "importance_ess_min": effects.importance_ess_min,
        "importance_ess_median": effects.importance_ess_median,
        "quadrature_nodes": int(rule.n_nodes.sum()),
    }
    timing = {
        **timing,
        "rule_seconds": ruled - started,
        "random_effects_seconds": finished - drawn_at,
    }
    return posterior, stats, checks, timing


def _sample_pymc(spec, priors, data, rule: QuadratureRule, settings, seed: int):
    """:func:`sample_marginal` with PyMC's own NUTS (``sampler="pymc"``)."""
    from asuc_bayes.inference.population.model import INIT_LOG10_HAZARD_AT_REF
    from asuc_bayes.inference.population.sampling import pymc_trace

    started = time.perf_counter()
    model = build_marginal_model(spec, priors, rule.model_data(data))
    compiled_at = time.perf_counter()
    initvals = {"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF}
    trace = pymc_trace(model, settings, seed, initvals)
    return trace_result(trace, started, compiled_at, time.perf_counter())
