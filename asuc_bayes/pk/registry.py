"""The registry of PK structures: names in model files -> structure classes.

A structure class declares a ``lookup_name`` (and optional ``aliases``) and is registered
with :func:`register_structure`; a model file names it and :func:`structure_from_name`
rebuilds it (the pattern of pymc-marketing's registered components).

Examples
--------
>>> import asuc_bayes.pk  # registers the built-in structures
>>> structure_from_name("two_compartment").parameter_names
('cl', 'v1', 'q', 'v2')
>>> "one_compartment" in STRUCTURES
True
"""

from __future__ import annotations

from typing import Any

from asuc_bayes.errors import AsucBayesError

__all__ = ["STRUCTURES", "UnknownStructureError", "register_structure", "structure_from_name"]

#: lookup name (and alias) -> structure class
STRUCTURES: dict[str, type] = {}


class UnknownStructureError(AsucBayesError, ValueError):
    """A model file names a PK structure that is not registered."""


def register_structure[StructureType: type](cls: StructureType) -> StructureType:
    """Class decorator: register a structure under its ``lookup_name`` and ``aliases``.

    Parameters
    ----------
    cls : type
        A class with a string ``lookup_name`` and a tuple ``aliases`` (may be empty).

    Returns
    -------
    type
        ``cls`` itself.

    Raises
    ------
    ValueError
        When a name is already taken by another class.

    Examples
    --------
    >>> @register_structure
    ... class Toy:
    ...     lookup_name = "toy_structure_for_the_doctest"
    ...     aliases = ()
    >>> structure_from_name("toy_structure_for_the_doctest").__class__.__name__
    'Toy'
    >>> del STRUCTURES["toy_structure_for_the_doctest"]
    """
    names = (cls.lookup_name, *getattr(cls, "aliases", ()))
    for name in names:
        taken = STRUCTURES.get(name)
        if taken is not None and taken is not cls:
            raise ValueError(f"PK structure name {name!r} is already taken by {taken.__name__}")
    for name in names:
        STRUCTURES[name] = cls
    return cls


def structure_from_name(name: str) -> Any:
    """A new instance of the structure registered under ``name`` (or one of its aliases).

    Parameters
    ----------
    name : str
        The ``pk.structure`` of a model file, e.g. ``"one_compartment"``.

    Returns
    -------
    PKStructure
        An instance of the registered class.

    Raises
    ------
    UnknownStructureError
        Naming the structures that exist.

    Examples
    --------
    >>> import asuc_bayes.pk
    >>> structure_from_name("one_compartment_zero_order_infusion").lookup_name
    'one_compartment'
    >>> structure_from_name("three_compartment")
    Traceback (most recent call last):
    ...
    asuc_bayes.pk.registry.UnknownStructureError: unknown PK structure 'three_compartment' \
(registered: one_compartment, one_compartment_zero_order_infusion, two_compartment)
    """
    cls = STRUCTURES.get(name) if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(sorted(STRUCTURES))
        raise UnknownStructureError(f"unknown PK structure {name!r} (registered: {known})")
    return cls()
