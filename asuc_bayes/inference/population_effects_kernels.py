"""The sampling mechanics of the random-effect draws, in one numba pass each.

:mod:`asuc_bayes.inference.population_effects` draws every subject's (η_CL, η_V) for every
population draw by sampling-importance resampling over the rule's cells. The model's maths
(the integrand at the nodes and at the proposals) stays in NumPy, shared with the marginal
likelihood; what is here is only the bookkeeping around it, which NumPy did in several passes
over (draw, node) arrays:

- :func:`normalised_cells`: each row's log shares (the integrand over its log-sum-exp) and the
  cells chosen by inverse CDF from given uniforms (one pass for the maximum, one for the
  exponentials and the running sum, a binary search per uniform);
- :func:`cell_log_density`: the log density of the cell proposal at proposal points (the share
  of the cell holding the point over its area);
- :func:`resample`: the importance weights' log, the Gumbel-max choice and the Kish effective
  sample size.

Random numbers are drawn by the caller (NumPy generators), so the draws still depend only on
the seed. Each kernel's NumPy equivalent is in ``tests/test_population_effects_kernels.py``.

Examples
--------
>>> import numpy as np
>>> log_p, cells = normalised_cells(np.log([[1.0, 3.0]]), np.array([[0.2, 0.3, 0.9]]))
>>> bool(np.allclose(np.exp(log_p), [[0.25, 0.75]])), cells.tolist()
(True, [[0, 1, 1]])
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["cell_log_density", "normalised_cells", "resample"]

#: Log weights at or below this are zero weights (astronomically small, as in the NumPy code).
_NEGLIGIBLE_LOG_WEIGHT = -1e100


@numba.njit(cache=True, nogil=True)
def normalised_cells(log_terms: np.ndarray, uniform: np.ndarray):
    """(log shares (row, node), cell indices (row, proposal)): each row of ``log_terms`` minus
    its log-sum-exp, and for each uniform u of the row (``uniform`` in [0, 1)) the first cell
    whose cumulative share exceeds u (inverse CDF; cells of zero share are never chosen).

    Raises ``ValueError`` when a row has no finite term (no cell to choose)."""
    rows, cells = log_terms.shape
    log_share = np.empty((rows, cells))
    chosen = np.empty(uniform.shape, dtype=np.int64)
    running = np.empty(cells)
    for row in range(rows):
        peak = -np.inf
        for k in range(cells):
            peak = max(peak, log_terms[row, k])
        if not math.isfinite(peak):
            raise ValueError("a row of node terms has no finite value")
        total = 0.0
        for k in range(cells):
            total += math.exp(log_terms[row, k] - peak)
            running[k] = total
        log_total = peak + math.log(total)
        for k in range(cells):
            log_share[row, k] = log_terms[row, k] - log_total
        for i in range(uniform.shape[1]):
            index = np.searchsorted(running, uniform[row, i] * total, side="right")
            chosen[row, i] = min(index, cells - 1)
    return log_share, chosen


@numba.njit(cache=True, nogil=True)
def cell_log_density(
    log_share: np.ndarray,
    log_cl: np.ndarray,
    log_v: np.ndarray,
    origin: np.ndarray,
    step: np.ndarray,
    shape: np.ndarray,
    position: np.ndarray,
) -> np.ndarray:
    """ln density of the cell proposal at points (row, proposal): the log share (row, node) of
    the cell holding each point (the node nearest to it on the grid of ``origin``, ``step``
    and ``shape`` (ln CL, ln V), ``position`` mapping a grid index j_CL·n_V + j_V to its kept
    node or −1) over the cell's area; −inf outside every kept cell."""
    rows, n = log_cl.shape
    log_area = math.log(step[0] * step[1])
    out = np.empty((rows, n))
    for row in range(rows):
        for i in range(n):
            j_cl = np.rint((log_cl[row, i] - origin[0]) / step[0])
            j_v = np.rint((log_v[row, i] - origin[1]) / step[1])
            node = -1
            if 0 <= j_cl < shape[0] and 0 <= j_v < shape[1]:
                node = position[int(j_cl) * shape[1] + int(j_v)]
            out[row, i] = log_share[row, node] - log_area if node >= 0 else -np.inf
    return out


@numba.njit(cache=True, nogil=True)
def resample(log_target: np.ndarray, log_proposal: np.ndarray, gumbel: np.ndarray):
    """(chosen proposal per row, Kish ESS per row) of importance weights
    ``log_target − log_proposal`` (row, proposal): one proposal kept ∝ its weight by the
    Gumbel-max trick with the given Gumbel noise; non-finite and astronomically small log
    weights are zero weights; a row without a positive weight has ESS 0."""
    rows, n = log_target.shape
    chosen = np.zeros(rows, dtype=np.int64)
    ess = np.zeros(rows)
    log_weight = np.empty(n)
    for row in range(rows):
        peak, best = -np.inf, -np.inf
        for i in range(n):
            value = log_target[row, i] - log_proposal[row, i]
            if not (math.isfinite(value) and value > _NEGLIGIBLE_LOG_WEIGHT):
                value = -np.inf
            log_weight[i] = value
            peak = max(peak, value)
            if value + gumbel[row, i] > best:
                best, chosen[row] = value + gumbel[row, i], i
        if peak == -np.inf:
            continue
        first, second = 0.0, 0.0
        for i in range(n):
            weight = math.exp(log_weight[i] - peak)
            first += weight
            second += weight * weight
        ess[row] = first * first / second
    return chosen, ess
