"""Floating-point settings shared by every compiled density: the same numbers in every process.

PyTensor's numba backend compiles with LLVM fast-math flags by default (approximate functions,
contraction into fused multiply-adds, reassociation). The machine code then depends on how a
function was compiled: a density compiled in this process and the same density loaded from the
disk cache gave log-density gradients that differed in the last bit (measured on the patient
model), so the first forecast or population fit on a machine drew other samples than every later
run with the same seed. Without fast-math the two are bitwise equal (tested in
``tests/test_numerics.py``), and the patient density was no slower (measured: 24 µs against
63 µs per log density + gradient, one noisy run each).

Examples
--------
>>> import pytensor
>>> reproducible_numba()
>>> pytensor.config.numba__fastmath
False
"""

from __future__ import annotations

__all__ = ["reproducible_numba"]


def reproducible_numba() -> None:
    """Compile PyTensor's numba functions without fast-math (see the module docstring)."""
    import pytensor

    pytensor.config.numba__fastmath = False
