"""Modules imported on first attribute access, to keep start-up fast.

PyMC, PyTensor, ArviZ and xarray take seconds to import; the command line's default paths
(help, argument errors, a forecast whose compiled densities are cached) need none of them.
A module that uses one only inside functions binds it with :func:`lazy_module` instead of
``import``; the real module is imported the first time an attribute is looked up, and is not
in :data:`sys.modules` before that.

Examples
--------
>>> import sys
>>> fractions = lazy_module("fractions")
>>> fractions
<lazy module 'fractions'>
>>> fractions.Fraction(1, 3) + fractions.Fraction(1, 6)
Fraction(1, 2)
>>> "fractions" in sys.modules
True
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_exports", "lazy_module"]


class _LazyModule:
    """Stands for a module until an attribute is needed, then imports it."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on first attribute access."""
    return _LazyModule(name)


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Any, Any]:
    """``(__getattr__, __dir__)`` for a package whose public names are imported on first use.

    ``exports`` maps each public name to the submodule (relative to ``package``) defining it,
    so that importing one submodule of the package does not import all the others.

    >>> getattr_, dir_ = lazy_exports("fractions", {"gcd": "math"})  # doctest: +SKIP
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
