"""PK structures as registered classes: pure, xp-generic maths (no I/O, no PyMC).

* :mod:`asuc_bayes.pk.kernels` — the ASUC one-compartment kernels and covariate model, and
  the per-mode maths of linear PK that every path uses (written once);
* :mod:`asuc_bayes.pk.weibull` — the Weibull time-to-colectomy kernels;
* :mod:`asuc_bayes.pk.doses` — :class:`DoseArrays`, the regimen as arrays (with NONMEM
  steady state and resets);
* :mod:`asuc_bayes.pk.registry` — :data:`STRUCTURES`, :func:`register_structure`,
  :func:`structure_from_name`;
* :mod:`asuc_bayes.pk.structures` — :class:`OneCompartment`, :class:`TwoCompartment`;
* :mod:`asuc_bayes.pk.linear` — analytic superposition over exponential modes;
* :mod:`asuc_bayes.pk.closed_form` — closed-form segment propagators (xp-generic);
* :mod:`asuc_bayes.pk.propagation` — exact propagation with piecewise-constant parameters
  (``scipy.linalg.expm`` or the closed forms).

Examples
--------
>>> import numpy as np
>>> structure = structure_from_name("one_compartment_zero_order_infusion")
>>> doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[1 / 12])
>>> c = structure.concentration([1.0], doses, {"cl": np.array([0.49]), "v": np.array([13.2])})
>>> round(float(c[0, 0]), 2)
51.18
"""

from asuc_bayes.pk.doses import DOSE_FIELDS, DoseArrays, DoseArraysError
from asuc_bayes.pk.propagation import Propagation, PropagationError, propagate
from asuc_bayes.pk.registry import (
    STRUCTURES,
    UnknownStructureError,
    register_structure,
    structure_from_name,
)
from asuc_bayes.pk.structures import OneCompartment, PKParameterError, PKStructure, TwoCompartment

__all__ = [
    "DOSE_FIELDS",
    "STRUCTURES",
    "DoseArrays",
    "DoseArraysError",
    "OneCompartment",
    "PKParameterError",
    "PKStructure",
    "Propagation",
    "PropagationError",
    "TwoCompartment",
    "UnknownStructureError",
    "propagate",
    "register_structure",
    "structure_from_name",
]
