"""The censored records' M3 terms of a scale-family residual, summed per node, as one Op.

In the marginal population model every censored record of a subject is evaluated at every
node of the subject's rule (62 602 (record, node) pairs in a 120-subject cohort). With a
residual error whose standardised residual is z = c/σ, c free of σ (proportional and
log-normal errors), the term of pair p is ln Φ(c_p/σ), c_p = s·z(limit, f_node; σ = 1) (s = +1
below the LLOQ, −1 above the ULOQ), and its only parameter is σ. Written with PyTensor's own
operations it is an error function, a log, their gradients and a scatter of the pairs onto
the nodes, about half of the cost of a log density + gradient (README, "Speed" of the
population model). :func:`censored_terms_kernel` does it in one numba pass: per node, the sum
of ln Φ(c_p/σ) over its pairs and of their derivatives ∂/∂σ = −(c_p/σ²) φ(c_p/σ)/Φ(c_p/σ), the
inverse Mills ratio coming from the same error function as ln Φ.

Examples
--------
>>> import numpy as np
>>> import pytensor.tensor as pt
>>> from scipy.special import log_ndtr
>>> sd = pt.dscalar("sd")
>>> scaled, node = np.array([-0.5, 2.0, 0.3]), np.array([0, 0, 2])
>>> terms, _ = censored_terms(sd, scaled, node, 3)
>>> got = terms.eval({sd: 0.4})
>>> expected = [log_ndtr(-1.25) + log_ndtr(5.0), 0.0, log_ndtr(0.75)]
>>> bool(np.allclose(got, expected, rtol=1e-14))
True
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

__all__ = [
    "CensoredTerms",
    "censored_terms",
    "censored_terms_kernel",
    "censored_terms_per_scale",
    "erfc_small",
    "erfcx_large",
    "log_phi_and_mills",
]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)

# W. J. Cody's rational Chebyshev approximations of erf/erfc (Math. Comp. 1969; netlib
# specfun CALERF, its arrays A, B, C, D, P, Q in its order), relative error near 1e-16 on each
# interval: erf on [0, 0.46875], erfcx directly (no exponential) on [0.46875, 4] and, in 1/x²,
# beyond 4.
_A = (
    3.16112374387056560,
    1.13864154151050156e2,
    3.77485237685302021e2,
    3.20937758913846947e3,
    1.85777706184603153e-1,
)
_B = (2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3, 2.84423683343917062e3)
_C = (
    5.64188496988670089e-1,
    8.88314979438837594,
    6.61191906371416295e1,
    2.98635138197400131e2,
    8.81952221241769090e2,
    1.71204761263407058e3,
    2.05107837782607147e3,
    1.23033935479799725e3,
    2.15311535474403846e-8,
)
_D = (
    1.57449261107098347e1,
    1.17693950891312499e2,
    5.37181101862009858e2,
    1.62138957456669019e3,
    3.29079923573345963e3,
    4.36261909014324716e3,
    3.43936767414372164e3,
    1.23033935480374942e3,
)
_P = (
    3.05326634961232344e-1,
    3.60344899949804439e-1,
    1.25781726111229246e-1,
    1.60837851487422766e-2,
    6.58749161529837803e-4,
    1.63153871373020978e-2,
)
_Q = (
    2.56852019228982242,
    1.87295284992346725,
    5.27905102951428412e-1,
    6.05183413124413191e-2,
    2.33520497626869185e-3,
)


@numba.njit(cache=True, nogil=True)
def erfc_small(x: float) -> float:
    """erfc(x) for |x| ≤ 0.46875 (Cody's first interval: 1 − erf)."""
    square = x * x
    numerator, denominator = _A[4] * square, square
    for i in range(3):
        numerator = (numerator + _A[i]) * square
        denominator = (denominator + _B[i]) * square
    return 1.0 - x * (numerator + _A[3]) / (denominator + _B[3])


@numba.njit(cache=True, nogil=True)
def erfcx_large(x: float) -> float:
    """erfcx(x) = e^{x²} erfc(x) for x > 0.46875, without an exponential (Cody's second and
    third intervals)."""
    if x <= 4.0:
        numerator, denominator = _C[8] * x, x
        for i in range(7):
            numerator = (numerator + _C[i]) * x
            denominator = (denominator + _D[i]) * x
        return (numerator + _C[7]) / (denominator + _D[7])
    inverse = 1.0 / (x * x)
    numerator, denominator = _P[5] * inverse, inverse
    for i in range(4):
        numerator = (numerator + _P[i]) * inverse
        denominator = (denominator + _Q[i]) * inverse
    tail = inverse * (numerator + _P[4]) / (denominator + _Q[4])
    return (_INV_SQRT_PI - tail) / x


@numba.njit(cache=True, nogil=True)
def log_phi_and_mills(w: float) -> tuple[float, float]:
    """(ln Φ(w), φ(w)/Φ(w)), accurate in both tails, from one rational erfcx and at most one
    exponential and one logarithm. Below w = 0, with x = −w/√2 and E = erfcx(x):
    ln Φ = ln(E/2) − x² (no underflow however far the tail) and φ/Φ = √(2/π)/E. Above it,
    from the upper tail q = 1 − Φ = e^{−x²} erfcx(x)/2, x = w/√2: ln Φ = ln(1 − q), accurate
    to 2e-16 absolute (not relative: a log-likelihood term needs no more), and
    φ/Φ = φ(w)/(1 − q)."""
    x = w / _SQRT2
    if w < 0.0:
        x = -x
        if x <= 0.46875:
            scaled = math.exp(x * x) * erfc_small(x)
        else:
            scaled = erfcx_large(x)
        return math.log(0.5 * scaled) - x * x, _SQRT_2_OVER_PI / scaled
    gauss = math.exp(-x * x)
    if x <= 0.46875:
        upper = 0.5 * erfc_small(x)
    else:
        upper = 0.5 * gauss * erfcx_large(x)
    return math.log(1.0 - upper), _INV_SQRT_2PI * gauss / (1.0 - upper)


@numba.njit(cache=True, nogil=True)
def censored_terms_kernel(scale: float, scaled: np.ndarray, node: np.ndarray, n_nodes: int):
    """(Σ_p ln Φ(c_p/σ), Σ_p ∂ ln Φ(c_p/σ)/∂σ) per node over the pairs p of each node
    (``scaled`` c_p, ``node`` its node in [0, ``n_nodes``), σ = ``scale`` > 0)."""
    if not scale > 0.0:
        raise ValueError("the residual scale must be positive")
    if len(scaled) != len(node):
        raise ValueError("every censored pair needs its node")
    terms = np.zeros(n_nodes)
    slopes = np.zeros(n_nodes)
    inverse = 1.0 / scale
    for p in range(len(scaled)):
        k = node[p]
        if k < 0 or k >= n_nodes:
            raise ValueError("a censored pair's node is out of range")
        w = scaled[p] * inverse
        log_cdf, mills = log_phi_and_mills(w)
        terms[k] += log_cdf
        slopes[k] -= mills * w * inverse
    return terms, slopes


@numba.njit(cache=True, nogil=True)
def censored_terms_per_scale(
    scales: np.ndarray, scaled: np.ndarray, node: np.ndarray, n_nodes: int
):
    """Σ_p ln Φ(c_p/σ_d) per node (columns) for each scale σ_d of ``scales`` (rows): the sums
    of :func:`censored_terms_kernel` at many σ (the random-effect draws evaluate every node at
    every population draw).

    Examples
    --------
    >>> scaled, node = np.array([-0.5, 2.0, 0.3]), np.array([0, 0, 2])
    >>> terms = censored_terms_per_scale(np.array([0.4, 0.8]), scaled, node, 3)
    >>> bool(np.allclose(terms[1], censored_terms_kernel(0.8, scaled, node, 3)[0]))
    True
    """
    out = np.empty((len(scales), n_nodes))
    for row in range(len(scales)):
        out[row] = censored_terms_kernel(scales[row], scaled, node, n_nodes)[0]
    return out


class CensoredTerms(Op):
    """(σ scalar, c (pairs,), node (pairs,) int, number of nodes int scalar) → (Σ ln Φ(c/σ)
    per node, its derivative with respect to σ per node).

    The gradient with respect to σ is the upstream gradient of the sums weighted by their
    derivatives; c, the nodes and their number are data (no gradient), and a gradient through
    the derivatives is not implemented (a log density never needs it)."""

    __props__ = ()

    def make_node(self, scale, scaled, node, n_nodes):
        scale = pt.as_tensor_variable(scale).astype("float64")
        scaled = pt.as_tensor_variable(scaled).astype("float64")
        node = pt.as_tensor_variable(node)
        n_nodes = pt.as_tensor_variable(n_nodes).astype("int64")
        integer = node.dtype.startswith(("int", "uint"))
        if scale.ndim != 0 or scaled.ndim != 1 or node.ndim != 1 or n_nodes.ndim != 0:
            raise TypeError("censored_terms needs a scalar, two vectors and a scalar")
        if not integer:
            raise TypeError("censored_terms needs integer node indices")
        return Apply(self, [scale, scaled, node, n_nodes], [pt.dvector(), pt.dvector()])

    def perform(self, node, inputs, output_storage):
        scale, scaled, nodes, n_nodes = inputs
        terms, slopes = censored_terms_kernel(
            float(scale), scaled, nodes.astype(np.int64), int(n_nodes)
        )
        output_storage[0][0] = terms
        output_storage[1][0] = slopes

    def infer_shape(self, node, shapes):
        n_nodes = node.inputs[3]
        return [(n_nodes,), (n_nodes,)]

    def connection_pattern(self, node):
        return [[True, True], [False, False], [False, False], [False, False]]

    def pullback(self, inputs, outputs, output_grads):
        _, slopes = outputs
        if not isinstance(output_grads[1].type, DisconnectedType):
            raise NotImplementedError("censored_terms: no gradient through the derivatives")
        return [
            (output_grads[0] * slopes).sum(),
            disconnected_type(),
            disconnected_type(),
            disconnected_type(),
        ]


_censored_terms = CensoredTerms()


def censored_terms(scale, scaled, node, n_nodes):
    """Per node, Σ ln Φ(c_p/σ) over its censored pairs and its derivative with respect to σ
    (module docstring)."""
    return _censored_terms(scale, scaled, node, n_nodes)


@register_funcify_default_op_cache_key(CensoredTerms)
def _numba_censored_terms(op, node=None, **kwargs):
    """The numba backend's implementation (nutpie's compiled models): the same kernel."""
    kernel = censored_terms_kernel

    @numba.njit
    def censored(scale, scaled, nodes, n_nodes):
        return kernel(scale.item(), scaled, nodes.astype(np.int64), n_nodes.item())

    return censored, 1
