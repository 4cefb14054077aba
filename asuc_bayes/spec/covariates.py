"""Covariate forms: a registry of classes, each with the name a model file uses.

A form turns a covariate value X (already in the effect's declared unit), the effect's θ and
reference value into a multiplicative factor on a parameter. Every form is written over an
array namespace ``xp`` (numpy or pytensor.tensor). New forms register themselves with
:func:`register_covariate_form`; a model file names them in ``form = "..."``.

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.spec.declaration import CovariateEffect, Value
>>> effect = CovariateEffect("CL", "ALB", "power", Value(-1.17, source="s"), 4.0, "g/dL")
>>> bool(np.isclose(covariate_form("power").factor(np.float64(3.0), effect, np), 0.75**-1.17))
True
>>> sorted(COVARIATE_FORMS)[:3]
['categorical', 'exponential', 'linear']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from asuc_bayes.spec.declaration import CovariateEffect

__all__ = [
    "COVARIATE_FORMS",
    "CovariateForm",
    "covariate_form",
    "register_covariate_form",
]

#: form name -> form class
COVARIATE_FORMS: dict[str, type[CovariateForm]] = {}


def register_covariate_form(cls: type[CovariateForm]) -> type[CovariateForm]:
    """Class decorator: make ``cls`` available to model files under ``cls.name``."""
    if cls.name in COVARIATE_FORMS:
        raise ValueError(f"covariate form '{cls.name}' is registered twice")
    COVARIATE_FORMS[cls.name] = cls
    return cls


def covariate_form(name: str) -> CovariateForm:
    """An instance of the registered form ``name``.

    Raises
    ------
    KeyError
        If no form has that name (the message lists the registered ones).
    """
    if name not in COVARIATE_FORMS:
        raise KeyError(
            f"unknown covariate form '{name}' (registered: {', '.join(COVARIATE_FORMS)})"
        )
    return COVARIATE_FORMS[name]()


class CovariateForm:
    """A covariate-parameter relationship: ``factor(X)`` multiplies the typical value."""

    name: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    #: whether the form needs ``reference`` (categorical indicator forms do not)
    needs_reference: ClassVar[bool] = True
    #: whether the form needs ``levels`` instead of a single θ
    needs_levels: ClassVar[bool] = False
    #: whether the covariate must be 0 or 1
    binary: ClassVar[bool] = False

    def factor(self, x: Any, effect: CovariateEffect, xp: Any) -> Any:
        raise NotImplementedError

    def check(self, effect: CovariateEffect) -> str | None:
        """A problem with the declared effect (reference or levels), or None."""
        if self.needs_reference and effect.reference is None:
            return f"form '{self.name}' needs a reference value ({self.formula})"
        return None

    def value_problem(self, x: float, effect: CovariateEffect) -> str | None:
        """A problem with a patient's value (NumPy only), or None."""
        if self.binary and x not in (0.0, 1.0):
            return f"must be 0 or 1 for form '{self.name}', got {x}"
        return None


@register_covariate_form
class Power(CovariateForm):
    name = "power"
    formula = "(X/ref)^θ"

    def factor(self, x, effect, xp):
        return (x / effect.reference) ** effect.theta.estimate

    def check(self, effect):
        problem = super().check(effect)
        if problem is None and effect.reference <= 0:
            return f"form 'power' needs a positive reference, got {effect.reference}"
        return problem

    def value_problem(self, x, effect):
        return None if x > 0 else f"must be positive for form 'power', got {x}"


@register_covariate_form
class Exponential(CovariateForm):
    name = "exponential"
    formula = "exp(θ·(X − ref))"

    def factor(self, x, effect, xp):
        return xp.exp(effect.theta.estimate * (x - effect.reference))


@register_covariate_form
class Linear(CovariateForm):
    name = "linear"
    formula = "1 + θ·(X − ref)"

    def factor(self, x, effect, xp):
        return 1.0 + effect.theta.estimate * (x - effect.reference)


@register_covariate_form
class ProportionalCategorical(CovariateForm):
    name = "proportional_categorical"
    formula = "1 + θ·X, X in {0, 1}"
    needs_reference = False
    binary = True

    def factor(self, x, effect, xp):
        return 1.0 + effect.theta.estimate * x


@register_covariate_form
class MultiplicativeCategorical(CovariateForm):
    name = "multiplicative_categorical"
    formula = "θ^X, X in {0, 1}"
    needs_reference = False
    binary = True

    def factor(self, x, effect, xp):
        return effect.theta.estimate**x


@register_covariate_form
class LogPower(CovariateForm):
    name = "log"
    formula = "(ln X / ln ref)^θ"

    def factor(self, x, effect, xp):
        import math

        return (xp.log(x) / math.log(effect.reference)) ** effect.theta.estimate

    def check(self, effect):
        problem = super().check(effect)
        if problem is None and not effect.reference > 1:
            return f"form 'log' needs a reference above 1 (ln ref > 0), got {effect.reference}"
        return problem

    def value_problem(self, x, effect):
        return None if x > 1 else f"must be above 1 for form 'log' (ln X > 0), got {x}"


@register_covariate_form
class Categorical(CovariateForm):
    """A typical value per level; the factor is value[X] / value[reference level]."""

    name = "categorical"
    formula = "value[X] / value[ref]"
    needs_levels = True

    def factor(self, x, effect, xp):
        reference = dict(effect.levels)[effect.reference]
        out = 0.0
        for level, value in effect.levels:
            # pytensor's == is identity, not elementwise: compare with eq/equal
            equal = xp.eq(x, level) if hasattr(xp, "eq") else xp.equal(x, level)
            out = out + xp.where(equal, value.estimate / reference.estimate, 0.0)
        return out

    def check(self, effect):
        problem = super().check(effect)
        if problem is not None:
            return problem
        if not effect.levels:
            return "form 'categorical' needs a [levels] table: level = {value, source}"
        if effect.reference not in dict(effect.levels):
            return (
                f"the reference level {effect.reference} is not among the levels "
                f"{[lv for lv, _ in effect.levels]}"
            )
        return None

    def value_problem(self, x, effect):
        levels = [lv for lv, _ in effect.levels]
        return None if x in levels else f"must be one of the levels {levels}, got {x}"
