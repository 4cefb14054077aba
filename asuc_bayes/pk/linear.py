"""Analytic superposition for linear PK structures, written once over exponential modes.

A linear structure with constant parameters is described by its *modes*: rates λ_m > 0
and weights w_m such that a unit bolus into the central compartment gives the central
concentration Σ_m w_m e^(−λ_m t) (one compartment: λ = CL/V, w = 1/V; two compartments:
the macro-constants α, β and their coefficients). Everything else follows per mode:

* an infusion at rate R over T days, at τ = t − t_dose:
  R w/λ · (1 − e^(−λ·min(τ, T)⁺)) · e^(−λ·(τ − T)⁺);
* at steady state (NONMEM ``SS=1``, interval II ≥ T) the earlier doses of the train add,
  for τ ≥ 0, R w/λ · (1 − e^(−λT)) · e^(−λ(τ + II − T)) / (1 − e^(−λ II)) (the geometric
  series of the train);
* a dose with an end (reset) contributes nothing at or after it;
* AUCs integrate each term in closed form; every term is non-negative.

Each per-mode formula is written once, for one mode, in :mod:`asuc_bayes.pk.kernels`
(``mode_infusion_response``, ``mode_train_response``, ``window_phases``,
``mode_infusion_auc``, ``mode_train_auc``); here every mode is weighted by its gain R w/λ.

Every function takes the array namespace ``xp`` (``numpy`` or ``pytensor.tensor``); the
doses are NumPy data (:class:`~asuc_bayes.pk.doses.DoseArrays`), so the branches on
steady state and resets are decided once, outside the graph.

Shapes: modes ``(..., n_mode)``, times ``(n_time,)`` (or with leading axes that broadcast),
doses ``(n_dose,)``; results ``(..., n_time)`` for concentrations and ``(...)`` for AUCs.

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.pk.doses import DoseArrays
>>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
>>> rates, weights = np.array([0.49 / 13.2]), np.array([1 / 13.2])
>>> c = modal_concentration(np.array([1.0]), doses, rates, weights)
>>> round(float(c[0]), 2)
51.18
>>> # the AUC of one dose over all time is dose / CL
>>> bool(np.isclose(modal_auc(0.0, 1e6, doses, rates, weights), 700 / 0.49))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from asuc_bayes.pk.doses import DoseArrays
from asuc_bayes.pk.kernels import (
    infusion_phases,
    mode_infusion_auc,
    mode_infusion_response,
    mode_train_auc,
    mode_train_response,
    window_phases,
    window_until,
)

__all__ = ["modal_auc", "modal_concentration"]


def _tensor(x: Any, xp: Any) -> Any:
    if xp is np:
        return np.asarray(x, dtype=float)
    return xp.as_tensor_variable(x)


def _dose_fields(doses: DoseArrays) -> dict[str, np.ndarray]:
    """The dose fields, each ``(..., n_dose)``."""
    return {
        "start": doses.start_day,
        "duration": doses.duration_day,
        "rate": doses.rate_mg_day,
        "interval": doses.steady_state_interval_day,
        "end": doses.end_day,
    }


#: NumPy evaluates many draws in blocks of this many: the temporaries of a block stay in
#: cache and are reused instead of freshly mapped (4000 draws in one block cost ~3x more).
NUMPY_BLOCK_DRAWS = 512


def _in_numpy_blocks(function, time_day, doses: DoseArrays, rates, weights):
    """Apply ``function`` to blocks of draws (NumPy, one regimen, 1-D times)."""
    rates, weights = np.broadcast_arrays(np.asarray(rates, float), np.asarray(weights, float))
    lead, n_mode = rates.shape[:-1], rates.shape[-1]
    rates, weights = rates.reshape(-1, n_mode), weights.reshape(-1, n_mode)
    blocks = [
        function(
            time_day, doses, rates[i : i + NUMPY_BLOCK_DRAWS], weights[i : i + NUMPY_BLOCK_DRAWS]
        )
        for i in range(0, rates.shape[0], NUMPY_BLOCK_DRAWS)
    ]
    return np.concatenate(blocks, axis=0).reshape(*lead, -1)


def modal_concentration(time_day, doses: DoseArrays, rates, weights, xp: Any = np):
    """Central concentration (mg/L) of a linear structure by superposition over its modes.

    Parameters
    ----------
    time_day : array_like
        Sample times (day), shape ``(n_time,)`` or broadcastable ``(..., n_time)``.
    doses : DoseArrays
        The regimen (zero-order infusions into the central compartment).
    rates, weights : array
        Modes of the structure, ``(..., n_mode)``: a unit bolus into the central
        compartment gives Σ_m weights_m · e^(−rates_m · t) (1/L), with rates in 1/day.
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Returns
    -------
    array
        Shape ``(..., n_time)``. A dose contributes 0 before its start and (when it has an
        end) at or after its end; a steady-state dose contributes its train's trough
        already at its start.

    Examples
    --------
    >>> import numpy as np
    >>> from asuc_bayes.pk.doses import DoseArrays
    >>> doses = DoseArrays(start_day=[0.0, 14.0], amount_mg=[700.0, 0.0],
    ...                    duration_day=[1 / 12, 1 / 12])
    >>> c = modal_concentration(np.array([-1.0, 0.0, 14.0]), doses,
    ...                         np.array([0.49 / 13.2]), np.array([1 / 13.2]))
    >>> c[:2].tolist(), round(float(c[2]), 3)
    ([0.0, 0.0], 31.586)
    """
    time_day, rates, weights = (_tensor(a, xp) for a in (time_day, rates, weights))
    blocked = xp is np and time_day.ndim == 1 and doses.start_day.ndim == 1
    if blocked and np.prod(np.broadcast_shapes(rates.shape, weights.shape)[:-1]) > (
        NUMPY_BLOCK_DRAWS
    ):
        return _in_numpy_blocks(modal_concentration, time_day, doses, rates, weights)
    dose = _dose_fields(doses)
    # layout (..., n_mode, n_time, n_dose): the short mode axis outside keeps NumPy's inner
    # loops long (4000 draws x 2 modes x 6 times x 5 doses in ~2 ms)
    lam = rates[..., :, None, None]
    gain = (weights / rates)[..., :, None] * dose["rate"][..., None, :]  # (..., n_mode, n_dose)
    tau = time_day[..., None, :, None] - dose["start"][..., None, None, :]
    duration = dose["duration"][..., None, None, :]
    during, after = infusion_phases(tau, duration, xp)
    terms = mode_infusion_response(during, after, lam, xp)  # per unit gain
    if doses.has_steady_state:
        interval = dose["interval"][..., None, None, :]
        terms = terms + mode_train_response(tau, lam, duration, interval, xp)
    if doses.has_end:
        alive = time_day[..., None, :, None] < dose["end"][..., None, None, :]
        terms = xp.where(alive, terms, 0.0)
    return (terms @ gain[..., :, :, None])[..., 0].sum(axis=-2)


def _window_phases(start_day, end_day, dose: dict[str, Any], xp):
    """Window [a, b] (cut at each dose's end) in the dose's own times, layout
    (..., n_mode, n_dose): (a0, a1) inside the infusion, (b0, b1) after its end, (s0, s1)
    since its start (:func:`~asuc_bayes.pk.kernels.window_phases`)."""
    a, b = window_until(
        _tensor(start_day, xp)[..., None, None],
        _tensor(end_day, xp)[..., None, None],
        dose["end"][..., None, :],
        xp,
    )
    start = dose["start"][..., None, :]
    return window_phases(a - start, b - start, dose["duration"][..., None, :], xp)


def modal_auc(start_day, end_day, doses: DoseArrays, rates, weights, xp: Any = np):
    """AUC (mg·day/L) of :func:`modal_concentration` over [start_day, end_day], closed form.

    Each mode of each infusion is integrated piecewise (inside the infusion, after it, and
    the steady-state train since the dose's start), clipped to the dose's end; every term
    is non-negative, so there is no cancellation between cumulative AUCs.

    Parameters
    ----------
    start_day, end_day : float or array
        The window (day); arrays broadcast against the leading shape of the modes.
    doses : DoseArrays
        The regimen.
    rates, weights : array
        Modes of the structure, ``(..., n_mode)`` (see :func:`modal_concentration`).
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Returns
    -------
    array
        The leading shape ``(...)``.

    Examples
    --------
    >>> import numpy as np
    >>> from asuc_bayes.pk.doses import DoseArrays
    >>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
    >>> # by hand: D/CL · (1 − e^(−k(14 − T/2))) = 577.7 nearly (k = CL/V, T = 2 h)
    >>> auc = modal_auc(0.0, 14.0, doses, np.array([0.49 / 13.2]), np.array([1 / 13.2]))
    >>> round(float(auc), 1)
    577.7
    """
    rates, weights = _tensor(rates, xp), _tensor(weights, xp)
    dose = _dose_fields(doses)
    lam = rates[..., :, None]  # (..., n_mode, 1): layout (..., n_mode, n_dose)
    gain = (weights / rates)[..., :, None] * dose["rate"][..., None, :]
    a0, a1, b0, b1, s0, s1 = _window_phases(start_day, end_day, dose, xp)
    duration = dose["duration"][..., None, :]
    terms = mode_infusion_auc(a0, a1, b0, b1, duration, lam, xp)
    if doses.has_steady_state:
        interval = dose["interval"][..., None, :]
        terms = terms + mode_train_auc(s0, s1, lam, duration, interval, xp)
    return (gain * terms).sum(axis=-1).sum(axis=-1)
