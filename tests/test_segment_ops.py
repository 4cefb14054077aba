"""The segment log-sum-exp Op against scipy, its gradient against finite differences, and its
numba-backend implementation against the Python one."""

from __future__ import annotations

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from scipy.special import logsumexp, softmax

from asuc_bayes.graphs.segment_ops import segment_logsumexp, segment_logsumexp_kernel


def random_segments(seed: int, empty: bool = True):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 40, size=25)
    counts[3] = 0 if empty else counts[3]  # an empty segment
    terms = rng.normal(0.0, 30.0, counts.sum())
    start = np.concatenate([[0], np.cumsum(counts)])
    return terms, start


def test_kernel_against_scipy():
    terms, start = random_segments(1)
    terms[start[5] : start[6]] = -np.inf  # a segment with no mass
    terms[start[7]] = -1e30  # a padding-like node
    lse, share = segment_logsumexp_kernel(terms, start)
    for i in range(len(start) - 1):
        part = terms[start[i] : start[i + 1]]
        if len(part) == 0 or np.all(np.isneginf(part)):
            assert lse[i] == -np.inf
            assert np.all(share[start[i] : start[i + 1]] == 0.0)
            continue
        assert lse[i] == pytest.approx(logsumexp(part), rel=1e-14, abs=1e-12)
        np.testing.assert_allclose(share[start[i] : start[i + 1]], softmax(part), atol=1e-15)


@pytest.mark.parametrize("mode", [Mode(linker="vm"), "NUMBA"])
def test_graph_value_and_gradient(mode):
    """Python (``perform``) and numba backends: the value equals scipy's and the gradient of
    a weighted sum of the segments equals central finite differences."""
    terms, start = random_segments(2, empty=False)
    terms = terms / 10.0
    weights = np.random.default_rng(3).normal(size=len(start) - 1)
    x = pt.dvector("x")
    lse, _ = segment_logsumexp(x, start)
    objective = (lse * weights).sum()
    f = pytensor.function([x], [lse, pytensor.grad(objective, x)], mode=mode)
    value, gradient = f(terms)
    expected = [logsumexp(terms[a:b]) for a, b in itertools.pairwise(start)]
    np.testing.assert_allclose(value, expected, rtol=1e-13)
    g = pytensor.function([x], objective, mode=mode)
    step = 1e-6
    numeric = np.array(
        [
            (g(terms + step * e) - g(terms - step * e)) / (2 * step)
            for e in np.eye(len(terms))[:: max(1, len(terms) // 60)]
        ]
    )
    np.testing.assert_allclose(gradient[:: max(1, len(terms) // 60)], numeric, atol=1e-7)


def test_bad_starts_are_refused():
    with pytest.raises(ValueError, match="segment starts"):
        segment_logsumexp_kernel(np.zeros(5), np.array([0, 3, 4]))
    with pytest.raises(ValueError, match="segment starts"):
        segment_logsumexp_kernel(np.zeros(5), np.array([0, 3, 2, 5]))
    with pytest.raises(TypeError, match="integer"):
        segment_logsumexp(pt.dvector(), pt.dvector())
