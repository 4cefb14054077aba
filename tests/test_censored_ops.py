"""The censored-terms Op: ln Φ and the inverse Mills ratio against scipy over both tails, the
per-node sums against a direct sum, the gradient against finite differences, and its
numba-backend implementation against the Python one."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from scipy.special import erfc, erfcx, log_ndtr, ndtr
from scipy.stats import norm

from asuc_bayes.graphs.censored_ops import (
    censored_terms,
    censored_terms_kernel,
    erfc_small,
    erfcx_large,
    log_phi_and_mills,
)


def test_cody_error_functions_against_scipy():
    """Cody's rational erfc on [−0.46875, 0.46875] and erfcx beyond, to a few ulps."""
    small = np.linspace(-0.46875, 0.46875, 2001)
    got = np.array([erfc_small(float(v)) for v in small])
    np.testing.assert_allclose(got, erfc(small), rtol=1e-15)
    large = np.concatenate([np.linspace(0.46875, 8.0, 4001), np.geomspace(8.0, 1e8, 500)])
    got = np.array([erfcx_large(float(v)) for v in large])
    np.testing.assert_allclose(got, erfcx(large), rtol=1e-15)


def test_log_phi_and_mills_against_scipy_in_both_tails():
    """Across the branches (w = −1, x = 26 i.e. w ≈ −36.8) and far into both tails."""
    w = np.concatenate([np.linspace(-80.0, 40.0, 4801), [-1.0, -26.0 * np.sqrt(2.0), 0.0]])
    got = np.array([log_phi_and_mills(float(v)) for v in w])
    np.testing.assert_allclose(got[:, 0], log_ndtr(w), rtol=1e-13, atol=3e-16)
    lower = np.sqrt(2.0 / np.pi) / erfcx(-w / np.sqrt(2.0))  # φ/Φ without cancellation
    mills = np.where(w < 0.0, lower, norm.pdf(w) / ndtr(np.maximum(w, 0.0)))
    np.testing.assert_allclose(got[:, 1], mills, rtol=5e-13)


def random_pairs(seed: int, n_nodes: int = 40):
    rng = np.random.default_rng(seed)
    scaled = np.concatenate([rng.normal(0.0, 3.0, 300), [-30.0, 25.0]])
    node = rng.integers(0, n_nodes - 1, len(scaled))  # the last node gets no pair
    return scaled, node, n_nodes


def test_kernel_sums_per_node_and_their_derivatives():
    scaled, node, n_nodes = random_pairs(1)
    sd = 0.44
    terms, slopes = censored_terms_kernel(sd, scaled, node, n_nodes)
    expected = np.bincount(node, log_ndtr(scaled / sd), n_nodes)
    np.testing.assert_allclose(terms, expected, rtol=1e-13)
    assert terms[-1] == 0.0 and slopes[-1] == 0.0
    step = 1e-6
    up, _ = censored_terms_kernel(sd + step, scaled, node, n_nodes)
    down, _ = censored_terms_kernel(sd - step, scaled, node, n_nodes)
    np.testing.assert_allclose(slopes, (up - down) / (2 * step), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", [Mode(linker="vm"), "NUMBA"])
def test_graph_value_and_gradient(mode):
    """Python (``perform``) and numba backends: the values equal scipy's and the gradient of
    a weighted sum of the nodes equals a central finite difference."""
    scaled, node, n_nodes = random_pairs(2)
    weights = np.random.default_rng(3).normal(size=n_nodes)
    sd = pt.dscalar("sd")
    terms, _ = censored_terms(sd, scaled, node, n_nodes)
    objective = (terms * weights).sum()
    f = pytensor.function([sd], [terms, pytensor.grad(objective, sd)], mode=mode)
    value, gradient = f(0.3)
    np.testing.assert_allclose(value, np.bincount(node, log_ndtr(scaled / 0.3), n_nodes))
    g = pytensor.function([sd], objective, mode=mode)
    step = 1e-6
    numeric = (g(0.3 + step) - g(0.3 - step)) / (2 * step)
    assert float(gradient) == pytest.approx(numeric, rel=1e-7)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="positive"):
        censored_terms_kernel(0.0, np.zeros(2), np.zeros(2, dtype=np.int64), 3)
    with pytest.raises(ValueError, match="out of range"):
        censored_terms_kernel(1.0, np.zeros(2), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="its node"):
        censored_terms_kernel(1.0, np.zeros(2), np.zeros(3, dtype=np.int64), 3)
    with pytest.raises(TypeError, match="integer"):
        censored_terms(pt.dscalar(), pt.dvector(), pt.dvector(), 3)
