"""The numba kernels of the random-effect draws against NumPy/SciPy computations of the same
quantities, and the inverse-CDF choice against its probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from asuc_bayes.inference.population_effects_kernels import (
    cell_log_density,
    normalised_cells,
    resample,
)


def test_normalised_cells_match_logsumexp_and_searchsorted():
    """Log shares equal the rows minus SciPy's log-sum-exp; each chosen cell is the first
    whose cumulative share exceeds the uniform (NumPy's searchsorted on the normalised CDF);
    −inf terms are never chosen."""
    rng = np.random.default_rng(1)
    terms = rng.normal(0, 3, (40, 300)) - 700.0  # far below 0: the maximum is subtracted
    terms[:, ::7] = -np.inf
    uniform = rng.random((40, 64))
    log_share, cells = normalised_cells(terms, uniform)
    np.testing.assert_allclose(log_share, terms - logsumexp(terms, axis=1, keepdims=True))
    cdf = np.cumsum(np.exp(log_share), axis=1)
    for row in range(40):
        want = np.searchsorted(cdf[row] / cdf[row, -1], uniform[row], side="right")
        np.testing.assert_array_equal(cells[row], np.minimum(want, 299))
    assert not np.any(cells % 7 == 0)


def test_normalised_cells_choose_cells_with_their_probabilities():
    """200 000 choices from one row: the counts fit the shares (chi-square p > 0.001)."""
    rng = np.random.default_rng(2)
    terms = np.log(rng.gamma(2.0, size=(1, 12)))
    _, cells = normalised_cells(terms, rng.random((1, 200_000)))
    counts = np.bincount(cells[0], minlength=12)
    expected = np.exp(terms[0] - logsumexp(terms[0])) * 200_000
    assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_normalised_cells_refuse_a_row_without_a_finite_term():
    with pytest.raises(ValueError, match="no finite value"):
        normalised_cells(np.full((2, 3), -np.inf), np.zeros((2, 1)))


def test_cell_log_density_is_the_share_over_the_area():
    """A 4 × 3 grid with two pruned nodes: a point's density is its nearest kept node's share
    over the cell area; −inf in a pruned cell and outside the grid (NumPy: rint and a lookup)."""
    origin, step, shape = np.array([-1.0, 2.0]), np.array([0.5, 0.25]), np.array([4, 3])
    kept = np.array([k for k in range(12) if k not in (4, 9)])
    position = np.full(12, -1)
    position[kept] = np.arange(len(kept))
    rng = np.random.default_rng(3)
    log_share = np.log(rng.dirichlet(np.ones(len(kept)), size=5))
    log_cl = rng.uniform(-1.5, 1.2, (5, 50))
    log_v = rng.uniform(1.8, 2.8, (5, 50))
    got = cell_log_density(log_share, log_cl, log_v, origin, step, shape, position)
    j_cl = np.rint((log_cl - origin[0]) / step[0]).astype(int)
    j_v = np.rint((log_v - origin[1]) / step[1]).astype(int)
    inside = (j_cl >= 0) & (j_cl < 4) & (j_v >= 0) & (j_v < 3)
    node = np.where(inside, position[np.where(inside, j_cl * 3 + j_v, 0)], -1)
    share = np.take_along_axis(log_share, np.maximum(node, 0), axis=1)
    want = np.where(node >= 0, share - math.log(0.125), -np.inf)
    np.testing.assert_array_equal(got, want)
    assert np.isinf(got).any() and np.isfinite(got).any()


def test_resample_matches_gumbel_argmax_and_kish_ess():
    """The chosen index is argmax(log w + Gumbel) and the ESS (Σw)²/Σw²; non-finite and
    negligible weights count as zero; a row of zero weights has ESS 0."""
    rng = np.random.default_rng(4)
    target = rng.normal(0, 2, (30, 64))
    proposal = rng.normal(0, 2, (30, 64))
    target[0, :5] = np.nan
    target[1, :5] = -1e300
    target[2] = -np.inf
    gumbel = rng.gumbel(size=(30, 64))
    chosen, ess = resample(target, proposal, gumbel)
    log_weight = target - proposal
    log_weight = np.where(np.isfinite(log_weight) & (log_weight > -1e100), log_weight, -np.inf)
    np.testing.assert_array_equal(chosen[3:], np.argmax(log_weight + gumbel, axis=1)[3:])
    weight = np.exp(log_weight[3:] - log_weight[3:].max(axis=1, keepdims=True))
    np.testing.assert_allclose(ess[3:], weight.sum(1) ** 2 / (weight**2).sum(1), rtol=1e-12)
    assert chosen[0] >= 5 and chosen[1] >= 5
    assert ess[2] == 0.0


def test_resample_keeps_a_proposal_with_its_weight():
    """100 000 rows of the same four weights: each proposal is kept in its weight's share."""
    rng = np.random.default_rng(5)
    weight = np.array([0.1, 0.2, 0.3, 0.4])
    rows = 100_000
    target = np.tile(np.log(weight), (rows, 1))
    chosen, ess = resample(target, np.zeros((rows, 4)), rng.gumbel(size=(rows, 4)))
    counts = np.bincount(chosen, minlength=4)
    assert stats.chisquare(counts, weight * rows).pvalue > 1e-3
    np.testing.assert_allclose(ess, 1.0 / (weight**2).sum())
