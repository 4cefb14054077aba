"""Exact propagation of a linear PK structure whose parameters change between records.

With parameters constant on pieces [change_day[j−1], change_day[j]) (e.g. a covariate
such as albumin or anti-drug antibodies measured between records), the amounts x in the
compartments solve dx/dt = K_j x + b(t), with b the infusion rates into the central
compartment, constant between events. Between consecutive events (sample times, dose
starts and infusion ends, resets, parameter changes, the AUC window's ends) the state is
propagated exactly with one matrix exponential of the augmented matrix
[[K, I, 0], [0, 0, I], [0, 0, 0]]·Δ, whose first block row is
[e^(KΔ), ∫₀^Δ e^(Ks) ds, ∫₀^Δ ∫₀^s e^(Ku) du ds]: the decay, the response to a constant
input, and the integral of the state over the segment (for the AUC).

The state is tracked per dose, so each dose's end (a reset, ``end_day``) zeroes its own
contribution and stops its infusion, exactly as in the analytic superposition
(:mod:`asuc_bayes.pk.linear`). A steady-state dose (``steady_state_interval_day`` > 0) starts
from the trough of its infinite train, x_ss = (I − e^(K·II))⁻¹ e^(K(II − T)) Φ(T) R, under
the parameters in force at its start. Amounts are continuous across a parameter change;
the concentration (amount / V1) follows the central volume of the piece in force, the new
one at the change time itself.

Two sources of the segment propagators: ``scipy.linalg.expm`` of the augmented matrix
(NumPy, batched over the leading axes) or the structures' closed forms
(:mod:`asuc_bayes.pk.closed_form`, xp-generic, so the propagation also builds a PyTensor
graph). The event grid is data, so the loop over segments unrolls into the graph.

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.pk.doses import DoseArrays
>>> from asuc_bayes.pk.structures import OneCompartment
>>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
>>> result = propagate(OneCompartment(), doses, {"cl": [0.49], "v": [13.2]},
...                    time_day=[1.0], auc_window=(0.0, 1e6))
>>> round(float(result.concentration[0]), 2), bool(np.isclose(result.auc, 700 / 0.49))
(51.18, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from asuc_bayes.errors import AsucBayesError
from asuc_bayes.pk.closed_form import SegmentPropagator
from asuc_bayes.pk.doses import DoseArrays

__all__ = ["Propagation", "PropagationError", "propagate", "propagators"]


class PropagationError(AsucBayesError, ValueError):
    """Inputs the propagation cannot use; the message names the argument."""


@dataclass(frozen=True, eq=False)
class Propagation:
    """Result of :func:`propagate`.

    Attributes
    ----------
    concentration : array or None
        Central concentration (mg/L) at the sample times, ``(..., n_time)``; None without
        sample times.
    auc : numpy.ndarray or None
        AUC (mg·day/L) over the window, leading shape ``(...)``; None without a window.
    """

    concentration: Any
    auc: Any


_BLAS_CONTROLLER = None


def _single_threaded_blas():
    """Context limiting BLAS to one thread: these matrices are tiny (at most 6 x 6), and
    OpenBLAS threads spinning for them on a busy 2-core machine made ``expm`` ~50x slower
    (1 s instead of 19 ms for 1000 matrices, measured with other jobs running)."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        import threadpoolctl

        _BLAS_CONTROLLER = threadpoolctl.ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


def propagators(rate_matrix: np.ndarray, delta_day) -> tuple[np.ndarray, ...]:
    """(E, Φ, Ψ) over Δ: e^(KΔ), ∫₀^Δ e^(Ks) ds and ∫₀^Δ ∫₀^s e^(Ku) du ds.

    Parameters
    ----------
    rate_matrix : numpy.ndarray
        K, ``(..., n, n)``.
    delta_day : float or numpy.ndarray
        Δ >= 0, broadcastable to the leading shape of K.

    Returns
    -------
    tuple of numpy.ndarray
        Three ``(..., n, n)`` arrays.

    Examples
    --------
    >>> import numpy as np
    >>> e, phi, psi = propagators(np.array([[-0.5]]), 2.0)
    >>> bool(np.isclose(e[0, 0], np.exp(-1.0))), bool(np.isclose(phi[0, 0], (1 - np.exp(-1)) / 0.5))
    (True, True)
    >>> bool(np.isclose(psi[0, 0], (2.0 - (1 - np.exp(-1)) / 0.5) / 0.5))
    True
    """
    k = np.asarray(rate_matrix, dtype=float)
    delta = np.asarray(delta_day, dtype=float)[..., None, None]
    n = k.shape[-1]
    shape = np.broadcast_shapes(k.shape, (*delta.shape[:-2], n, n))
    augmented = np.zeros((*shape[:-2], 3 * n, 3 * n))
    identity = np.eye(n) * delta
    augmented[..., :n, :n] = k * delta
    augmented[..., :n, n : 2 * n] = identity
    augmented[..., n : 2 * n, 2 * n :] = identity
    with _single_threaded_blas():
        import scipy.linalg  # only the NumPy expm path needs it (start-up)

        exponential = scipy.linalg.expm(augmented)
    return (
        exponential[..., :n, :n],
        exponential[..., :n, n : 2 * n],
        exponential[..., :n, 2 * n :],
    )


def _change_times(change_day) -> np.ndarray:
    change = np.asarray(change_day, dtype=float).ravel()
    if not np.all(np.isfinite(change)) or np.any(np.diff(change) <= 0):
        raise PropagationError(
            f"change_day must be finite and strictly increasing, got {change.tolist()}"
        )
    return change


def _piecewise_parameters(structure, params: Mapping[str, Any], n_piece: int, xp) -> dict:
    """Each parameter as an array whose last axis is the piece (length ``n_piece``)."""
    pieces = {}
    for name, value in params.items():
        array = np.asarray(value, dtype=float) if xp is np else xp.as_tensor_variable(value)
        size = array.type.shape[-1] if xp is not np and array.ndim else None
        if xp is np and array.ndim:
            size = array.shape[-1]
        if array.ndim == 0 or (n_piece == 1 and size != 1):
            array = array[..., None]
        elif size is not None and size != n_piece:
            raise PropagationError(
                f"parameter {name!r} of {structure.lookup_name} needs a last axis of "
                f"{n_piece} piece(s) (len(change_day) + 1), got shape {array.shape}"
            )
        pieces[name] = array
    return pieces


def _piece(pieces: Mapping[str, Any], index: int) -> dict:
    return {name: value[..., index] for name, value in pieces.items()}


class _ExpmPropagators:
    """Segment propagators and steady-state troughs from ``scipy.linalg.expm`` (NumPy)."""

    def __init__(self, structure, pieces, grid, piece):
        self.k = structure.rate_matrix(pieces)  # (..., n_piece, n, n)
        if grid.size > 1:
            self.e, self.phi, self.psi = propagators(self.k[..., piece[:-1], :, :], np.diff(grid))

    def segment(self, i: int) -> SegmentPropagator:
        e, phi, psi = self.e[..., i, :, :], self.phi[..., i, :, :], self.psi[..., i, :, :]
        return SegmentPropagator(e, phi[..., :, 0], phi[..., 0, :], psi[..., 0, 0])

    def trough(self, piece: int, rate: float, duration: float, interval: float):
        """x_ss = (I − e^(K II))⁻¹ e^(K (II − T)) Φ(T)[:, 0] R, ``(..., n)``."""
        k = self.k[..., piece, :, :]
        e_interval = propagators(k, interval)[0]
        e_rest = propagators(k, interval - duration)[0]
        after_infusion = propagators(k, duration)[1][..., :, 0] * rate
        u = np.einsum("...ij,...j->...i", e_rest, after_infusion)
        identity = np.eye(k.shape[-1])
        return np.linalg.solve(identity - e_interval, u[..., None])[..., 0]


#: up to this many draws, NumPy evaluates all the segments' closed forms in one call
_BATCH_SEGMENTS_UP_TO_DRAWS = 512


def _draws(pieces: Mapping[str, np.ndarray]) -> int:
    """The number of parameter sets (the leading size) of NumPy piecewise parameters."""
    return max((int(np.size(value[..., 0])) for value in pieces.values()), default=1)


class _ClosedFormPropagators:
    """Segment propagators and troughs from the structure's closed forms (any ``xp``).

    With NumPy and few draws all the segments are evaluated in one vectorised call (the
    segment is one more leading axis: the MAP search's small batches pay the Python overhead
    once); with many draws (their temporaries would leave the cache) and with PyTensor, one
    segment at a time."""

    def __init__(self, structure, pieces, grid, piece, xp):
        self.structure, self.pieces, self.grid, self.piece, self.xp = (
            structure,
            pieces,
            grid,
            piece,
            xp,
        )
        self.batched = None
        if xp is np and grid.size > 1 and _draws(pieces) <= _BATCH_SEGMENTS_UP_TO_DRAWS:
            by_segment = {name: value[..., piece[:-1]] for name, value in pieces.items()}
            self.batched = structure.segment_propagator(by_segment, np.diff(grid), np)

    def segment(self, i: int) -> SegmentPropagator:
        if self.batched is not None:
            decay, input_column, auc_row, input_auc = self.batched
            return SegmentPropagator(
                decay[..., i, :, :], input_column[..., i, :], auc_row[..., i, :], input_auc[..., i]
            )
        params = _piece(self.pieces, int(self.piece[i]))
        delta = float(self.grid[i + 1] - self.grid[i])
        return self.structure.segment_propagator(params, delta, self.xp)

    def trough(self, piece: int, rate: float, duration: float, interval: float):
        params = _piece(self.pieces, piece)
        return self.structure.steady_state_trough(params, rate, duration, interval, self.xp)


def _check_inputs(doses: DoseArrays, time_day, auc_window) -> tuple[np.ndarray, tuple | None]:
    if doses.start_day.ndim != 1:
        raise PropagationError("propagate takes one regimen: dose fields of shape (n_dose,)")
    times = np.asarray(time_day, dtype=float).ravel()
    if not np.all(np.isfinite(times)):
        raise PropagationError("time_day must be finite")
    if auc_window is None:
        return times, None
    a, b = (float(x) for x in auc_window)
    if not (np.isfinite(a) and np.isfinite(b) and a <= b):
        raise PropagationError(f"auc_window must be finite (start, end), start <= end: {(a, b)}")
    return times, (a, b)


#: how :func:`propagate` builds the segment propagators
PROPAGATION_METHODS = ("expm", "closed_form")


def propagate(
    structure,
    doses: DoseArrays,
    params: Mapping[str, Any],
    change_day=(),
    time_day=(),
    auc_window: tuple[float, float] | None = None,
    *,
    method: str = "expm",
    xp: Any = np,
    change_side: str = "right",
) -> Propagation:
    """Concentrations and AUC with piecewise-constant parameters, by exact propagation.

        Parameters
        ----------
        structure : PKStructure
            Supplies ``central_volume`` and ``rate_matrix`` (``"expm"``) or
            ``segment_propagator`` and ``steady_state_trough`` (``"closed_form"``).
        doses : DoseArrays
            One regimen, fields of shape ``(n_dose,)``.
        params : mapping
            Name -> array ``(..., n_piece)`` with ``n_piece = len(change_day) + 1`` (piece j
            holds on [change_day[j−1], change_day[j])); without change times the piece axis may
            be left out.
        change_day : array_like
            Strictly increasing times (day) at which the parameters change.
        time_day : array_like
            Sample times (day), ``(n_time,)``.
        auc_window : (float, float), optional
            [start, end] (day) of the AUC.
        method : {"expm", "closed_form"}
            ``"expm"``: ``scipy.linalg.expm`` of the augmented matrix (NumPy only);
            ``"closed_form"``: the structure's analytic propagators (NumPy or PyTensor).
        xp : module
            ``numpy`` or, with ``method="closed_form"``, ``pytensor.tensor``.
        change_side : {"right", "left"}
            Which piece holds *at* a change time itself, for the concentration of a sample
            there and the trough of a steady-state dose starting there: ``"right"`` (default)
            the new one (pieces [c_(j−1), c_j), last value carried forward); ``"left"`` the
            old one (pieces (c_(j−1), c_j], NONMEM's convention: a record's covariates
            hold over the interval that ends at it). Between events both are the same.

        Returns
        -------
        Propagation

        Examples
        --------
        >>> import numpy as np
    >>> from asuc_bayes.pk.doses import DoseArrays
        >>> from asuc_bayes.pk.structures import TwoCompartment
        >>> doses = DoseArrays(start_day=[0.0, 14.0], amount_mg=[350.0, 350.0],
        ...                    duration_day=[1 / 12, 1 / 12])
        >>> two = TwoCompartment()
        >>> params = {"cl": [0.294, 0.294], "v1": [3.33, 3.33], "q": [0.0719, 0.0719],
        ...           "v2": [1.14, 1.14]}
        >>> result = propagate(two, doses, params, [7.0], [3.0, 20.0], (0.0, 28.0))
        >>> constant = {name: value[0] for name, value in params.items()}
        >>> bool(np.allclose(result.concentration, two.concentration([3.0, 20.0], doses, constant)))
        True
        >>> bool(np.isclose(result.auc, two.auc(0.0, 28.0, doses, constant)))
        True
        >>> closed = propagate(two, doses, params, [7.0], [3.0, 20.0], method="closed_form")
        >>> bool(np.allclose(closed.concentration, result.concentration, rtol=1e-12))
        True
    """
    if method not in PROPAGATION_METHODS:
        raise PropagationError(f"method must be one of {PROPAGATION_METHODS}, got {method!r}")
    if method == "expm" and xp is not np:
        raise PropagationError('method="expm" is NumPy only; use method="closed_form"')
    if change_side not in ("right", "left"):
        raise PropagationError(f'change_side must be "right" or "left", got {change_side!r}')
    times, window = _check_inputs(doses, time_day, auc_window)
    change = _change_times(change_day)
    pieces = _piecewise_parameters(structure, params, change.size + 1, xp)
    volume = structure.central_volume(pieces, xp)  # (..., n_piece)
    zero = sum(0.0 * value[..., 0] for value in pieces.values())  # the leading shape

    start, duration, end = doses.start_day, doses.duration_day, doses.end_day
    rate, interval = doses.rate_mg_day, doses.steady_state_interval_day
    events = [times, start, start + duration, end[np.isfinite(end)], change]
    grid = np.unique(np.concatenate([*events, np.asarray(window or (), dtype=float)]))
    piece = np.searchsorted(change, grid, side="right")  # of the segment starting there
    at = np.searchsorted(change, grid, side=change_side)  # at the event time itself
    if method == "expm":
        source = _ExpmPropagators(structure, pieces, grid, piece)
    else:
        source = _ClosedFormPropagators(structure, pieces, grid, piece, xp)

    state = np.zeros((doses.n_dose, structure.n_compartments))  # (..., n_dose, n) once used
    at_time: dict[float, Any] = {}
    auc = zero
    for i, g in enumerate(grid):
        alive = (start <= g) & (g < end)
        if not alive.all():
            state = xp.where(alive[:, None], state, 0.0)
        for d in np.flatnonzero(alive & (start == g) & (interval > 0)):
            trough = source.trough(int(at[i]), rate[d], duration[d], interval[d])
            state = state + np.eye(doses.n_dose)[d][:, None] * trough[..., None, :]
        if g in times:
            at_time[float(g)] = zero + state[..., :, 0].sum(axis=-1) / volume[..., at[i]]
        if i == grid.size - 1:
            break
        segment = source.segment(i)
        input_rate = np.where(alive & (g < start + duration), rate, 0.0)  # (n_dose,)
        if window is not None and window[0] <= g and grid[i + 1] <= window[1]:
            from_state = (state * segment.auc_row[..., None, :]).sum(axis=-1).sum(axis=-1)
            from_input = segment.input_auc * input_rate.sum()
            auc = auc + (from_state + from_input) / volume[..., piece[i]]
        decayed = (state[..., None, :] * segment.decay[..., None, :, :]).sum(axis=-1)
        state = decayed + segment.input_column[..., None, :] * input_rate[:, None]
    concentration = None
    if times.size:
        concentration = xp.stack([at_time[float(t)] for t in times], axis=-1)
    return Propagation(concentration, auc if window is not None else None)
