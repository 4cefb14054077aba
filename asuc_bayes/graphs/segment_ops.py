"""Log-sum-exp over contiguous segments of a vector, as one PyTensor Op (one pass, no padding).

The marginal population model integrates each subject's random effects by a rule whose
nodes are laid end to end, subject after subject: ln p_i = ln Σ_{k ∈ segment i} e^{t_k}.
Written with PyTensor's own operations this needs a padded (subject, node) table (212 354
entries for the 131 820 nodes of a 120-subject cohort), its row maxima, the exponentials of
the table and, for the gradient, a scatter back to the nodes. :class:`SegmentLogSumExp` does
it in one numba pass over the nodes and returns, with the segments' log-sum-exps, each
node's share of its segment (softmax within the segment), which is the gradient:
∂ ln p_i / ∂ t_k = e^{t_k − ln p_i}. The padded tables were not what made the gradient
slow under the numba backend that nutpie uses (README, "Speed" of the population model);
the Op is kept for the simpler graph and the memory. The NumPy evaluation of the same
likelihood (``subject_log_marginal``) calls the same kernel.

Examples
--------
>>> import numpy as np
>>> import pytensor.tensor as pt
>>> terms = pt.dvector("terms")
>>> lse, share = segment_logsumexp(terms, np.array([0, 2, 5]))
>>> value = np.log([1.0, 3.0, 1.0, 1.0, 2.0])
>>> np.round(lse.eval({terms: value}), 12).tolist() == np.round(np.log([4.0, 4.0]), 12).tolist()
True
>>> share.eval({terms: value}).tolist()
[0.25, 0.75, 0.25, 0.25, 0.5]
"""

from __future__ import annotations

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

__all__ = ["SegmentLogSumExp", "segment_logsumexp", "segment_logsumexp_kernel"]


@numba.njit(cache=True, nogil=True)
def segment_logsumexp_kernel(terms: np.ndarray, start: np.ndarray):
    """(ln Σ_{k in segment} e^{t_k} per segment, e^{t_k − that} per element) of ``terms``
    cut at ``start`` (segment i is ``terms[start[i]:start[i + 1]]``; ``start[0]`` 0 and
    ``start[-1]`` the length). A segment whose terms are all −inf gets −inf and shares 0."""
    if len(start) < 1 or start[0] != 0 or start[-1] != len(terms):
        raise ValueError("segment starts must rise from 0 to the number of terms")
    n_segments = len(start) - 1
    lse = np.empty(n_segments)
    share = np.zeros(len(terms))
    for i in range(n_segments):
        first, last = start[i], start[i + 1]
        if last < first:
            raise ValueError("segment starts must rise from 0 to the number of terms")
        peak = -np.inf
        for k in range(first, last):
            if terms[k] > peak:
                peak = terms[k]
        if peak == -np.inf:
            lse[i] = -np.inf
            continue
        total = 0.0
        for k in range(first, last):
            e = np.exp(terms[k] - peak)
            share[k] = e
            total += e
        lse[i] = peak + np.log(total)
        for k in range(first, last):
            share[k] /= total
    return lse, share


class SegmentLogSumExp(Op):
    """(terms (n,), start (segments + 1,) int) → (log-sum-exp per segment, share per term).

    The gradient with respect to ``terms`` is the upstream gradient of each segment spread
    over its terms by their shares; ``start`` is data (no gradient), and a gradient through
    the shares is not implemented (a log density never needs it)."""

    __props__ = ()

    def make_node(self, terms, start):
        terms = pt.as_tensor_variable(terms).astype("float64")
        start = pt.as_tensor_variable(start)
        if terms.ndim != 1 or start.ndim != 1 or not start.dtype.startswith(("int", "uint")):
            raise TypeError("segment_logsumexp needs a float vector and an integer vector")
        return Apply(self, [terms, start], [pt.dvector(), pt.dvector()])

    def perform(self, node, inputs, output_storage):
        terms, start = inputs
        lse, share = segment_logsumexp_kernel(terms, start.astype(np.int64))
        output_storage[0][0] = lse
        output_storage[1][0] = share

    def infer_shape(self, node, shapes):
        return [(shapes[1][0] - 1,), shapes[0]]

    def connection_pattern(self, node):
        return [[True, True], [False, False]]

    def pullback(self, inputs, outputs, output_grads):
        _, start = inputs
        _, share = outputs
        if not isinstance(output_grads[1].type, DisconnectedType):
            raise NotImplementedError("segment_logsumexp: no gradient through the shares")
        upstream = output_grads[0]
        counts = start[1:] - start[:-1]
        return [pt.repeat(upstream, counts) * share, disconnected_type()]


_segment_logsumexp = SegmentLogSumExp()


def segment_logsumexp(terms, start):
    """Log-sum-exp of each segment ``terms[start[i]:start[i + 1]]`` and each term's share of
    its segment (module docstring)."""
    return _segment_logsumexp(terms, start)


@register_funcify_default_op_cache_key(SegmentLogSumExp)
def _numba_segment_logsumexp(op, node=None, **kwargs):
    """The numba backend's implementation (nutpie's compiled models): the same kernel."""
    kernel = segment_logsumexp_kernel

    @numba.njit
    def segment_lse(terms, start):
        return kernel(terms, start.astype(np.int64))

    return segment_lse, 1
