"""PK structures: registered classes with named parameters and the analytic solution.

Each structure is linear with zero-order infusions into the central compartment and
observes the central concentration. It supplies its *modes* (rates and weights of the
central response to a unit bolus, see :mod:`asuc_bayes.pk.linear`) for the analytic
superposition with constant parameters, and its rate matrix for the exact propagation with
piecewise-constant parameters (:mod:`asuc_bayes.pk.propagation`).

Parameters are passed as a mapping name -> array (one value per posterior draw, or any
leading shape that broadcasts); the methods take the array namespace ``xp`` (``numpy`` or
``pytensor.tensor``).

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.pk.doses import DoseArrays
>>> two = TwoCompartment()
>>> doses = DoseArrays(start_day=[0.0], amount_mg=[350.0], duration_day=[1 / 12])
>>> params = {"cl": np.array([0.294]), "v1": np.array([3.33]),
...           "q": np.array([0.0719]), "v2": np.array([1.14])}
>>> c = two.concentration(np.array([14.0]), doses, params)
>>> c.shape
(1, 1)
>>> # all of the dose is cleared from the central compartment: AUC(0, inf) = D / CL
>>> bool(np.isclose(two.auc(0.0, 1e5, doses, params)[0], 350 / 0.294))
True
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from asuc_bayes.errors import AsucBayesError
from asuc_bayes.pk import propagation
from asuc_bayes.pk.closed_form import (
    SegmentPropagator,
    one_compartment_propagator,
    one_compartment_trough,
    two_compartment_macro,
    two_compartment_propagator,
    two_compartment_trough,
)
from asuc_bayes.pk.doses import DoseArrays
from asuc_bayes.pk.linear import modal_auc, modal_concentration
from asuc_bayes.pk.registry import register_structure

__all__ = ["OneCompartment", "PKParameterError", "PKStructure", "TwoCompartment"]


class PKParameterError(AsucBayesError, ValueError):
    """Parameters that do not match the structure's names."""


class PKStructure:
    """Base class of a linear PK structure (zero-order infusions into the central one).

    Subclasses set :attr:`lookup_name`, :attr:`aliases`, :attr:`parameter_names`,
    :attr:`parameter_units` and implement :meth:`modes`, :meth:`rate_matrix` and
    :meth:`central_volume`.

    Examples
    --------
    >>> OneCompartment().parameter_units["cl"]
    'L/day'
    """

    lookup_name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    parameter_names: ClassVar[tuple[str, ...]]
    parameter_units: ClassVar[Mapping[str, str]]
    n_compartments: ClassVar[int]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def _parameters(self, params: Mapping[str, Any], xp: Any) -> tuple[Any, ...]:
        """The parameters in the order of :attr:`parameter_names`, as arrays of ``xp``."""
        missing = [name for name in self.parameter_names if name not in params]
        unknown = sorted(set(params) - set(self.parameter_names))
        if missing or unknown:
            raise PKParameterError(
                f"{self.lookup_name} takes parameters {', '.join(self.parameter_names)}; "
                f"missing {missing}, unknown {unknown}"
            )
        if xp is np:
            return tuple(np.asarray(params[name], dtype=float) for name in self.parameter_names)
        return tuple(xp.as_tensor_variable(params[name]) for name in self.parameter_names)

    def modes(self, params: Mapping[str, Any], xp: Any = np) -> tuple[Any, Any]:
        """(rates, weights), each ``(..., n_mode)``: a unit bolus into the central
        compartment gives the concentration Σ weights · e^(−rates · t)."""
        raise NotImplementedError

    def rate_matrix(self, params: Mapping[str, Any]) -> np.ndarray:
        """K (1/day), ``(..., n, n)``, with d(amounts)/dt = K · amounts + inputs (NumPy)."""
        raise NotImplementedError

    def central_volume(self, params: Mapping[str, Any], xp: Any = np) -> Any:
        """Volume (L) of the central compartment: concentration = amount / volume."""
        raise NotImplementedError

    def segment_propagator(self, params, delta_day, xp: Any = np) -> SegmentPropagator:
        """Closed-form propagator over Δ days (:mod:`asuc_bayes.pk.closed_form`)."""
        raise NotImplementedError

    def steady_state_trough(self, params, rate_mg_day, duration_day, interval_day, xp=np):
        """Amounts (mg), ``(..., n)``, at the start of a steady-state dose (closed form)."""
        raise NotImplementedError

    def concentration(self, time_day, doses: DoseArrays, params, xp: Any = np):
        """Central concentration (mg/L) at ``time_day`` with constant parameters.

        Parameters
        ----------
        time_day : array_like
            Sample times (day), ``(n_time,)``.
        doses : DoseArrays
            The regimen.
        params : mapping
            :attr:`parameter_names` -> arrays of a common (broadcastable) leading shape.
        xp : module
            ``numpy`` or ``pytensor.tensor``.

        Returns
        -------
        array
            ``(..., n_time)``.

        Examples
        --------
        >>> import numpy as np
        >>> from asuc_bayes.pk.doses import DoseArrays
        >>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
        >>> c = OneCompartment().concentration([1.0], doses, {"cl": 0.49, "v": 13.2})
        >>> round(float(c[0]), 2)
        51.18
        """
        rates, weights = self.modes(params, xp)
        return modal_concentration(time_day, doses, rates, weights, xp)

    def auc(self, start_day, end_day, doses: DoseArrays, params, xp: Any = np):
        """AUC (mg·day/L) of the central concentration over [start_day, end_day].

        Parameters
        ----------
        start_day, end_day : float or array
            The window (day).
        doses : DoseArrays
            The regimen.
        params : mapping
            :attr:`parameter_names` -> arrays of a common (broadcastable) leading shape.
        xp : module
            ``numpy`` or ``pytensor.tensor``.

        Returns
        -------
        array
            The leading shape of the parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from asuc_bayes.pk.doses import DoseArrays
        >>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
        >>> auc = OneCompartment().auc(0.0, 1e6, doses, {"cl": 0.49, "v": 13.2})
        >>> bool(np.isclose(auc, 700 / 0.49))
        True
        """
        rates, weights = self.modes(params, xp)
        return modal_auc(start_day, end_day, doses, rates, weights, xp)

    def piecewise_concentration(
        self, time_day, doses: DoseArrays, params, change_day=(), *, method="expm", xp=np
    ):
        """Concentration (mg/L) with parameters constant between ``change_day`` (NumPy).

        Parameters
        ----------
        time_day : array_like
            Sample times (day), ``(n_time,)``.
        doses : DoseArrays
            The regimen.
        params : mapping
            Name -> array ``(..., n_piece)``, with ``n_piece = len(change_day) + 1``: piece
            j holds on [change_day[j−1], change_day[j]).
        change_day : array_like
            Increasing times (day) at which the parameters change.
        method : {"expm", "closed_form"}
            Source of the segment propagators (see
            :func:`asuc_bayes.pk.propagation.propagate`).
        xp : module
            ``numpy``, or ``pytensor.tensor`` with ``method="closed_form"``.

        Returns
        -------
        array
            ``(..., n_time)``; see :func:`asuc_bayes.pk.propagation.propagate`.

        Examples
        --------
        >>> import numpy as np
        >>> from asuc_bayes.pk.doses import DoseArrays
        >>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
        >>> one = OneCompartment()
        >>> same = {"cl": [0.49, 0.49], "v": [13.2, 13.2]}
        >>> c = one.piecewise_concentration([1.0, 20.0], doses, same, change_day=[10.0])
        >>> bool(np.allclose(c, one.concentration([1.0, 20.0], doses, {"cl": 0.49, "v": 13.2})))
        True
        """
        return propagation.propagate(
            self, doses, params, change_day, time_day, method=method, xp=xp
        ).concentration

    def piecewise_auc(
        self, start_day, end_day, doses: DoseArrays, params, change_day=(), *, method="expm", xp=np
    ):
        """AUC (mg·day/L) over [start_day, end_day] with piecewise-constant parameters.

        Parameters are as in :meth:`piecewise_concentration`.

        Returns
        -------
        array
            The leading shape of the parameters (without the piece axis).

        Examples
        --------
        >>> import numpy as np
        >>> from asuc_bayes.pk.doses import DoseArrays
        >>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
        >>> # clearance doubles on day 1: less exposure than with the baseline clearance
        >>> auc = OneCompartment().piecewise_auc(0.0, 28.0, doses,
        ...     {"cl": [0.49, 0.98], "v": [13.2, 13.2]}, change_day=[1.0])
        >>> bool(auc < OneCompartment().auc(0.0, 28.0, doses, {"cl": 0.49, "v": 13.2}))
        True
        """
        window = (start_day, end_day)
        return propagation.propagate(
            self, doses, params, change_day, (), window, method=method, xp=xp
        ).auc


@register_structure
class OneCompartment(PKStructure):
    """One compartment, first-order elimination: parameters CL (L/day) and V (L).

    Examples
    --------
    >>> import numpy as np
    >>> rates, weights = OneCompartment().modes({"cl": np.array([0.49]), "v": np.array([13.2])})
    >>> bool(np.isclose(rates[0, 0], 0.49 / 13.2)), bool(np.isclose(weights[0, 0], 1 / 13.2))
    (True, True)
    """

    lookup_name = "one_compartment"
    aliases = ("one_compartment_zero_order_infusion",)
    parameter_names = ("cl", "v")
    parameter_units = MappingProxyType({"cl": "L/day", "v": "L"})
    n_compartments = 1

    def modes(self, params, xp: Any = np):
        """k = CL/V with weight 1/V.

        Examples
        --------
        >>> OneCompartment().modes({"cl": 0.5, "v": 10.0})
        (array([0.05]), array([0.1]))
        """
        cl, v = self._parameters(params, xp)
        return (cl / v)[..., None], (1.0 / v)[..., None]

    def rate_matrix(self, params):
        """[[−CL/V]].

        Examples
        --------
        >>> OneCompartment().rate_matrix({"cl": 0.5, "v": 10.0})
        array([[-0.05]])
        """
        cl, v = self._parameters(params, np)
        return (-cl / v)[..., None, None]

    def central_volume(self, params, xp: Any = np):
        """V.

        Examples
        --------
        >>> float(OneCompartment().central_volume({"cl": 0.5, "v": 10.0}))
        10.0
        """
        return self._parameters(params, xp)[1]

    def segment_propagator(self, params, delta_day, xp: Any = np):
        """e^(−kΔ), φ(k), ψ(k) (:func:`~asuc_bayes.pk.closed_form.one_compartment_propagator`).

        Examples
        --------
        >>> p = OneCompartment().segment_propagator({"cl": 0.5, "v": 10.0}, 0.0)
        >>> float(p.decay[0, 0]), float(p.input_auc)
        (1.0, 0.0)
        """
        return one_compartment_propagator(*self._parameters(params, xp), delta_day, xp)

    def steady_state_trough(self, params, rate_mg_day, duration_day, interval_day, xp=np):
        """Trough amount of an infinite train (``(..., 1)``).

        Examples
        --------
        >>> import numpy as np
        >>> a = OneCompartment().steady_state_trough({"cl": 1.0, "v": 10.0}, 1e6, 1e-6, 10.0)
        >>> bool(np.isclose(a[0], np.exp(-1) / (1 - np.exp(-1)), rtol=1e-6))
        True
        """
        cl, v = self._parameters(params, xp)
        return one_compartment_trough(cl, v, rate_mg_day, duration_day, interval_day, xp)


@register_structure
class TwoCompartment(PKStructure):
    """Two compartments (central V1, peripheral V2, distribution clearance Q), elimination
    CL from the central one; observations are central concentrations (amount / V1).

    Examples
    --------
    >>> two = TwoCompartment()
    >>> two.parameter_names, dict(two.parameter_units)
    (('cl', 'v1', 'q', 'v2'), {'cl': 'L/day', 'v1': 'L', 'q': 'L/day', 'v2': 'L'})
    """

    lookup_name = "two_compartment"
    parameter_names = ("cl", "v1", "q", "v2")
    parameter_units = MappingProxyType({"cl": "L/day", "v1": "L", "q": "L/day", "v2": "L"})
    n_compartments = 2

    def modes(self, params, xp: Any = np):
        """Macro-constants (α, β) with weights (f_α/V1, f_β/V1).

        Examples
        --------
        >>> import numpy as np
        >>> rates, weights = TwoCompartment().modes(
        ...     {"cl": 0.294, "v1": 3.33, "q": 0.0719, "v2": 1.14})
        >>> # α β = k10 k21 and α + β = k10 + k12 + k21
        >>> bool(np.isclose(rates.prod(), 0.294 / 3.33 * 0.0719 / 1.14))
        True
        >>> bool(np.isclose(weights.sum() * 3.33, 1.0))
        True
        """
        cl, v1, q, v2 = self._parameters(params, xp)
        alpha, beta, f_alpha, f_beta, *_ = two_compartment_macro(cl, v1, q, v2, xp)
        rates = xp.stack([alpha, beta], axis=-1)
        weights = xp.stack([f_alpha / v1, f_beta / v1], axis=-1)
        return rates, weights

    def rate_matrix(self, params):
        """[[−(CL + Q)/V1, Q/V2], [Q/V1, −Q/V2]] on the amounts (central, peripheral).

        Examples
        --------
        >>> TwoCompartment().rate_matrix({"cl": 1.0, "v1": 2.0, "q": 3.0, "v2": 6.0})
        array([[-2. ,  0.5],
               [ 1.5, -0.5]])
        """
        cl, v1, q, v2 = np.broadcast_arrays(*self._parameters(params, np))
        return np.stack(
            [np.stack([-(cl + q) / v1, q / v2], axis=-1), np.stack([q / v1, -q / v2], axis=-1)],
            axis=-2,
        )

    def central_volume(self, params, xp: Any = np):
        """V1.

        Examples
        --------
        >>> float(TwoCompartment().central_volume({"cl": 1.0, "v1": 2.0, "q": 3.0, "v2": 6.0}))
        2.0
        """
        return self._parameters(params, xp)[1]

    def segment_propagator(self, params, delta_day, xp: Any = np):
        """Spectral closed form (:func:`~asuc_bayes.pk.closed_form.two_compartment_propagator`).

        Examples
        --------
        >>> import numpy as np
        >>> p = TwoCompartment().segment_propagator(
        ...     {"cl": 0.294, "v1": 3.33, "q": 0.0719, "v2": 1.14}, 1e4)
        >>> # ∫₀^∞ of the central amount after a unit bolus is 1/k10 = V1/CL
        >>> bool(np.isclose(p.input_column[0], 3.33 / 0.294))
        True
        """
        return two_compartment_propagator(*self._parameters(params, xp), delta_day, xp)

    def steady_state_trough(self, params, rate_mg_day, duration_day, interval_day, xp=np):
        """Trough amounts (central, peripheral) of an infinite train, ``(..., 2)``.

        Examples
        --------
        >>> x = TwoCompartment().steady_state_trough(
        ...     {"cl": 0.294, "v1": 3.33, "q": 0.0719, "v2": 1.14}, 4200.0, 1 / 12, 56.0)
        >>> x.shape
        (2,)
        """
        cl, v1, q, v2 = self._parameters(params, xp)
        return two_compartment_trough(cl, v1, q, v2, rate_mg_day, duration_day, interval_day, xp)
