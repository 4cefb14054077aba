"""PK structures a declaration may name, with their structural parameters.

The names follow the pk layer (``asuc_bayes.pk``), which registers the kernels; this table only
says which individual parameters each structure consumes, so that a model file can be checked
without importing any kernel.

>>> STRUCTURES["two_compartment"]
('CL', 'V1', 'Q', 'V2')
"""

from __future__ import annotations

__all__ = ["STRUCTURES"]

#: structure name -> the individual parameters it needs (clearances L/day, volumes L)
STRUCTURES: dict[str, tuple[str, ...]] = {
    "one_compartment": ("CL", "V"),
    "two_compartment": ("CL", "V1", "Q", "V2"),
}
