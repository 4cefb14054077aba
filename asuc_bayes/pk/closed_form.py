"""Closed-form propagators of the linear structures over one segment, xp-generic.

Over a segment of length Δ with constant parameters, the amounts x evolve as
x(Δ) = E x(0) + Φ b (b a constant input) and ∫₀^Δ x = Φ x(0) + Ψ b, with E = e^(KΔ),
Φ = ∫₀^Δ e^(Ks) ds and Ψ = ∫₀^Δ Φ(s) ds. Inputs enter the central compartment only and
only the central amount is observed, so a segment needs E, the input column Φ[:, 0], the
central row Φ[0, :] and Ψ[0, 0] (:class:`SegmentPropagator`). They are written per mode
with the scalar functions φ(λ) = (1 − e^(−λΔ))/λ and ψ(λ) = (Δ − φ(λ))/λ (a series for
λΔ < 1e-3, where the difference would cancel). The same numbers come from
``scipy.linalg.expm`` of the augmented matrix (:func:`asuc_bayes.pk.propagation.propagators`).

Examples
--------
>>> import numpy as np
>>> round(float(phi(np.float64(0.5), 2.0)), 6), round(float((1 - np.exp(-1.0)) / 0.5), 6)
(1.264241, 1.264241)
>>> bool(np.isclose(psi(np.float64(1e-9), 2.0), 2.0**2 / 2))
True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from asuc_bayes.pk.kernels import steady_state_factor

__all__ = [
    "SegmentPropagator",
    "one_compartment_propagator",
    "one_compartment_trough",
    "phi",
    "phi_divided_difference",
    "psi",
    "two_compartment_macro",
    "two_compartment_propagator",
    "two_compartment_trough",
]

#: below this λΔ, ψ uses its series Δ² (1/2 − x/6 + x²/24 − x³/120)
_PSI_SERIES_BELOW = 1e-3


class SegmentPropagator(NamedTuple):
    """What one segment contributes (leading shape of the parameters, ``...``).

    Attributes
    ----------
    decay : array
        E = e^(KΔ), ``(..., n, n)``.
    input_column : array
        Φ[:, 0], amounts after Δ from a unit input rate into the central compartment,
        ``(..., n)``.
    auc_row : array
        Φ[0, :], ∫₀^Δ of the central amount per unit initial amount in each compartment,
        ``(..., n)``.
    input_auc : array
        Ψ[0, 0], ∫₀^Δ of the central amount from a unit input rate, ``(...)``.
    """

    decay: Any
    input_column: Any
    auc_row: Any
    input_auc: Any


def phi(rate, delta_day, xp: Any = np):
    """φ(λ) = (1 − e^(−λΔ)) / λ = ∫₀^Δ e^(−λs) ds, without cancellation.

    Examples
    --------
    >>> import numpy as np
    >>> bool(np.isclose(phi(np.float64(1e-12), 3.0), 3.0))
    True
    """
    return -xp.expm1(-rate * delta_day) / rate


def psi(rate, delta_day, xp: Any = np):
    """ψ(λ) = (Δ − φ(λ)) / λ = ∫₀^Δ φ(s) ds, with a series where λΔ is small.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.float64(0.7)
    >>> bool(np.isclose(psi(x, 2.0), (2.0 - (1 - np.exp(-1.4)) / 0.7) / 0.7))
    True
    """
    x = rate * delta_day
    small = x < _PSI_SERIES_BELOW
    safe = xp.where(small, 1.0, x)
    exact = (safe + xp.expm1(-safe)) / safe**2
    series = 0.5 - x / 6.0 + x**2 / 24.0 - x**3 / 120.0
    return delta_day**2 * xp.where(small, series, exact)


#: below this αΔ, the divided difference of φ uses its series (error ~ (αΔ)^5 / 2500)
_DIVIDED_SERIES_BELOW = 1e-2


def phi_divided_difference(alpha, beta, delta_day, xp: Any = np):
    """(φ(β) − φ(α)) / (α − β) = ∫₀^Δ (e^(−βs) − e^(−αs)) / (α − β) ds, for α > β > 0.

    For αΔ < 1e-2 the difference would cancel (relative error ~ε/((α − β)Δ)); there it is
    the series Σ_n (−1)^n Δ^n / n! · h_(n−2)(α, β) with h the complete homogeneous
    symmetric polynomials (h₀ = 1, h₁ = α + β, ...), up to n = 6.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.float64(0.3), np.float64(0.1)
    >>> exact = ((1 - np.exp(-b * 2.0)) / b - (1 - np.exp(-a * 2.0)) / a) / (a - b)
    >>> bool(np.isclose(phi_divided_difference(a, b, 2.0), exact))
    True
    >>> bool(np.isclose(phi_divided_difference(a, b, 1e-8), 1e-16 / 2))
    True
    """
    x = alpha * delta_day
    small = x < _DIVIDED_SERIES_BELOW
    h1 = alpha + beta
    h2 = alpha**2 + alpha * beta + beta**2
    h3 = h1 * (alpha**2 + beta**2)
    h4 = alpha**4 + alpha**3 * beta + (alpha * beta) ** 2 + alpha * beta**3 + beta**4
    t = delta_day
    series = t**2 * (0.5 - t * h1 / 6.0 + t**2 * h2 / 24.0 - t**3 * h3 / 120.0 + t**4 * h4 / 720.0)
    exact = (phi(beta, delta_day, xp) - phi(alpha, delta_day, xp)) / (alpha - beta)
    return xp.where(small, series, exact)


def _train_trough(rate, duration_day, interval_day, xp):
    """e^(−λ(II − T)) φ_T(λ) / (1 − e^(−λ II)) = F/λ: the trough of an infinite train per
    unit rate, for one mode (F the :func:`~asuc_bayes.pk.kernels.steady_state_factor`)."""
    return steady_state_factor(rate, duration_day, interval_day, xp) / rate


def one_compartment_propagator(cl, v, delta_day, xp: Any = np) -> SegmentPropagator:
    """E = e^(−kΔ), Φ = φ(k), Ψ = ψ(k) with k = CL/V.

    Examples
    --------
    >>> import numpy as np
    >>> p = one_compartment_propagator(np.float64(0.5), np.float64(10.0), 2.0)
    >>> bool(np.isclose(p.decay[0, 0], np.exp(-0.1)))
    True
    """
    k = cl / v
    one = xp.ones_like(k)
    decay = xp.exp(-k * delta_day)
    return SegmentPropagator(
        decay[..., None, None] * one[..., None, None],
        phi(k, delta_day, xp)[..., None],
        phi(k, delta_day, xp)[..., None],
        psi(k, delta_day, xp),
    )


def one_compartment_trough(cl, v, rate, duration_day, interval_day, xp: Any = np):
    """Amount at the start of a steady-state dose (trough of the train), ``(..., 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> # a bolus-like short infusion every 10 days with k = 0.1: A = D e^(−1) / (1 − e^(−1))
    >>> a = one_compartment_trough(np.float64(1.0), np.float64(10.0), 1e6, 1e-6, 10.0)
    >>> bool(np.isclose(a[0], np.exp(-1) / (1 - np.exp(-1)), rtol=1e-6))
    True
    """
    k = cl / v
    return (rate * _train_trough(k, duration_day, interval_day, xp))[..., None]


def two_compartment_macro(cl, v1, q, v2, xp: Any = np):
    """(α, β, f_α, f_β, d = α − β, k12, k21), stable for α ≈ β and tiny Q.

    With k10 = CL/V1, k12 = Q/V1, k21 = Q/V2: d is the root of a sum of non-negative
    terms, (k10 − k21)² + k12 (k12 + 2 (k10 + k21)); β = k10 k21 / α; α − k21 and k21 − β
    (non-negative, sum d, product k12 k21) are formed without cancellation, and
    f_α = (α − k21)/d, f_β = (k21 − β)/d lie in [0, 1] and sum to 1. A unit bolus into the
    central compartment gives the central amount f_α e^(−αt) + f_β e^(−βt).

    Examples
    --------
    >>> import numpy as np
    >>> alpha, beta, f_alpha, f_beta, d, k12, k21 = two_compartment_macro(
    ...     np.float64(0.294), np.float64(3.33), np.float64(0.0719), np.float64(1.14))
    >>> bool(np.isclose(alpha * beta, 0.294 / 3.33 * 0.0719 / 1.14))
    True
    >>> bool(np.isclose(f_alpha + f_beta, 1.0)), bool(np.isclose(alpha - beta, d))
    (True, True)
    """
    k10, k12, k21 = cl / v1, q / v1, q / v2
    d = xp.sqrt((k10 - k21) ** 2 + k12 * (k12 + 2.0 * (k10 + k21)))
    alpha = 0.5 * (k10 + k12 + k21 + d)
    beta = k10 * k21 / alpha
    e = k10 + k12 - k21
    larger = 0.5 * (d + xp.abs(e))
    smaller = k12 * k21 / larger
    alpha_part = xp.where(e >= 0.0, larger, smaller)  # α − k21
    beta_part = xp.where(e >= 0.0, smaller, larger)  # k21 − β
    return alpha, beta, alpha_part / d, beta_part / d, d, k12, k21


def two_compartment_propagator(cl, v1, q, v2, delta_day, xp: Any = np) -> SegmentPropagator:
    """The spectral form E = Σ_m P_m e^(−λ_m Δ) written without cancelling differences.

    E₀₀ = f_α u + f_β w, E₁₁ = f_β u + f_α w, E₀₁ = k21 w φ(d), E₁₀ = k12 w φ(d)
    (u = e^(−αΔ), w = e^(−βΔ)); Φ₀₀ = f_α φ(α) + f_β φ(β); Φ₀₁ = k21 (φ(β) − φ(α))/d,
    Φ₁₀ = k12 (φ(β) − φ(α))/d; Ψ₀₀ = f_α ψ(α) + f_β ψ(β).

    Examples
    --------
    >>> import numpy as np
    >>> p = two_compartment_propagator(*np.array([0.294, 3.33, 0.0719, 1.14]), 0.0)
    >>> bool(np.allclose(p.decay, np.eye(2))), bool(np.allclose(p.input_column, 0.0))
    (True, True)
    """
    alpha, beta, f_alpha, f_beta, d, k12, k21 = two_compartment_macro(cl, v1, q, v2, xp)
    u, w = xp.exp(-alpha * delta_day), xp.exp(-beta * delta_day)
    phi_alpha, phi_beta = phi(alpha, delta_day, xp), phi(beta, delta_day, xp)
    w_phi_d = w * phi(d, delta_day, xp)
    spread = phi_divided_difference(alpha, beta, delta_day, xp)
    decay = xp.stack(
        [
            xp.stack([f_alpha * u + f_beta * w, k21 * w_phi_d], axis=-1),
            xp.stack([k12 * w_phi_d, f_beta * u + f_alpha * w], axis=-1),
        ],
        axis=-2,
    )
    phi_00 = f_alpha * phi_alpha + f_beta * phi_beta
    return SegmentPropagator(
        decay,
        xp.stack([phi_00, k12 * spread], axis=-1),
        xp.stack([phi_00, k21 * spread], axis=-1),
        f_alpha * psi(alpha, delta_day, xp) + f_beta * psi(beta, delta_day, xp),
    )


def two_compartment_trough(cl, v1, q, v2, rate, duration_day, interval_day, xp: Any = np):
    """Amounts (central, peripheral) at the start of a steady-state dose, ``(..., 2)``:
    Σ_m P_m[:, 0] R c_m with c_m the trough factor of mode m.

    Examples
    --------
    >>> import numpy as np
    >>> x = two_compartment_trough(*np.array([0.294, 3.33, 0.0719, 1.14]), 4200.0, 1 / 12, 56.0)
    >>> x.shape, bool(np.all(x > 0))
    ((2,), True)
    """
    alpha, beta, f_alpha, f_beta, d, k12, _ = two_compartment_macro(cl, v1, q, v2, xp)
    c_alpha = _train_trough(alpha, duration_day, interval_day, xp)
    c_beta = _train_trough(beta, duration_day, interval_day, xp)
    central = rate * (f_alpha * c_alpha + f_beta * c_beta)
    peripheral = rate * k12 * (c_beta - c_alpha) / d
    return xp.stack([central, peripheral], axis=-1)
