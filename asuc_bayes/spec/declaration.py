"""The generic, immutable model declaration and the individual parameters it defines.

A :class:`ModelDeclaration` holds everything a published population PK model states: the
structure and its parameters (typical values with units, uncertainty and source), covariate
effects in registered forms (:mod:`asuc_bayes.spec.covariates`), random effects (Omega on the
log scale, optional inter-occasion variability), the residual error in a registered form
(:mod:`asuc_bayes.spec.residual`), the default infusion duration and an optional outcome model.

:func:`individual_parameters` evaluates a declaration for one patient, over an array namespace.

Examples
--------
>>> from asuc_bayes.spec import load_declaration
>>> decl = load_declaration("wojciechowski2017")
>>> p = individual_parameters(decl, {"WT": 70.0, "ALB": 4.0, "ADA": 0.0})
>>> round(float(p["CL"]), 3), round(float(p["V1"]), 2)
(0.294, 3.33)
>>> p = individual_parameters(decl, {"WT": 70.0, "ADA": 0.0}, impute={"ALB": 4.0})
>>> p.imputed
(Imputation(covariate='ALB', value=4.0, unit='g/dL', reason='requested value'),)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from asuc_bayes.errors import AsucBayesError
from asuc_bayes.spec.covariates import covariate_form
from asuc_bayes.spec.errors import ModelFileError
from asuc_bayes.spec.residual import residual_form
from asuc_bayes.spec.units import convert

__all__ = [
    "RESERVED_PARAMETER_NAMES",
    "RESERVED_PARAMETER_PREFIX",
    "Covariate",
    "CovariateEffect",
    "DerivedParameter",
    "Imputation",
    "IndividualParameters",
    "MissingCovariateError",
    "ModelDeclaration",
    "OccasionVariability",
    "OutcomeModel",
    "Parameter",
    "Quantity",
    "RandomEffect",
    "RandomEffects",
    "ResidualError",
    "Value",
    "cv_percent_to_variance",
    "individual_parameters",
    "with_outcome_from",
]


#: Names a model file's parameters may not take: the patient-level quantities every forecast
#: reports beside them (:meth:`asuc_bayes.inference.derived.Derived.contract`), which share
#: one namespace with the parameters in the JSON and the result DataTrees. Random effects are
#: stored as ``eta_<parameter>``, so that prefix is reserved too.
RESERVED_PARAMETER_NAMES = ("cl", "v", "auc_w2_4", "ln_auc_cl", "risk_90d")
RESERVED_PARAMETER_PREFIX = "eta_"


def cv_percent_to_variance(cv_percent: float) -> float:
    """Log-scale variance from a published CV %: ω² = ln(1 + CV²).

    >>> round(cv_percent_to_variance(37.7), 4)
    0.1329
    """
    cv = cv_percent / 100.0
    return math.log1p(cv * cv)


@dataclass(frozen=True)
class Value:
    """A published number with its unit, reported uncertainty and source (publication, table)."""

    estimate: float
    unit: str = ""
    source: str = ""
    fixed: bool = False
    rse_percent: float | None = None
    #: 95 % confidence interval (lower, upper)
    ci95: tuple[float, float] | None = None
    #: non-parametric bootstrap (2.5 %, median, 97.5 %)
    bootstrap: tuple[float, float, float] | None = None
    note: str = ""


@dataclass(frozen=True)
class Parameter:
    """A population parameter: its typical value for the reference patient."""

    name: str
    typical: Value
    description: str = ""


@dataclass(frozen=True)
class Covariate:
    """A patient characteristic the model needs: its unit, kind, whether it varies in time."""

    name: str
    unit: str
    kind: str = "continuous"
    description: str = ""
    time_varying: bool = False
    #: the reference patient's value (in ``unit``), when the effects' references do not say it
    reference: float | None = None
    #: other dataset column names read for this covariate (ATI is the ADA column), upper case
    dataset_columns: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Dataset columns read for this covariate, in order of preference: its own name, then
        :attr:`dataset_columns`.

        >>> Covariate("ATI", "1", "binary", dataset_columns=("ADA",)).columns
        ('ATI', 'ADA')
        """
        return (self.name.upper(), *self.dataset_columns)


@dataclass(frozen=True)
class CovariateEffect:
    """factor = form(X in ``unit``; θ, reference) multiplying ``parameter``'s typical value."""

    parameter: str
    covariate: str
    form: str
    theta: Value | None
    reference: float | None
    unit: str
    levels: tuple[tuple[float, Value], ...] = ()


@dataclass(frozen=True)
class DerivedParameter:
    """A parameter computed from individual parameters: the product of ``product_of``."""

    name: str
    product_of: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class RandomEffect:
    """η on a parameter: P_i = TV · exp(η). ``variance`` is on the log scale."""

    name: str
    parameter: str
    variance: Value
    #: the CV % as published, when the paper reports CV (variance = ln(1 + CV²))
    cv_percent: float | None = None


@dataclass(frozen=True)
class RandomEffects:
    """The random effects in the publication's order and their covariance Omega."""

    effects: tuple[RandomEffect, ...]
    omega: tuple[tuple[float, ...], ...]
    reported_as: str = "variance"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.effects)

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(e.parameter for e in self.effects)

    @property
    def matrix(self) -> np.ndarray:
        return np.array(self.omega, dtype=float).reshape(len(self.effects), len(self.effects))

    @property
    def sd(self) -> np.ndarray:
        """SDs of the η on the log scale."""
        return np.sqrt(np.diag(self.matrix))

    @property
    def diagonal(self) -> bool:
        m = self.matrix
        return bool(np.all(m == np.diag(np.diag(m))))


@dataclass(frozen=True)
class OccasionVariability:
    """Inter-occasion variability κ on a parameter (log-scale variance)."""

    parameter: str
    variance: Value
    cv_percent: float | None = None


@dataclass(frozen=True)
class ResidualError:
    """A registered residual form and its SDs (``sigma``: parameter name -> Value)."""

    form: str
    sigma: tuple[tuple[str, Value], ...]
    reported_as: str = ""

    def sd(self) -> dict[str, float]:
        """The SDs by name, for :mod:`asuc_bayes.spec.residual`."""
        return {name: value.estimate for name, value in self.sigma}

    def log_density(self, y: Any, f: Any, xp: Any = np) -> Any:
        return residual_form(self.form).log_density(y, f, self.sd(), xp)

    def log_below(self, limit: Any, f: Any, xp: Any = np) -> Any:
        return residual_form(self.form).log_below(limit, f, self.sd(), xp)

    def log_above(self, limit: Any, f: Any, xp: Any = np) -> Any:
        return residual_form(self.form).log_above(limit, f, self.sd(), xp)


@dataclass(frozen=True)
class OutcomeModel:
    """The Weibull time-to-colectomy model with x = ln(AUC_w2-4 / CL) (Niyigena 2025)."""

    form: str
    covariate: str
    auc_window_day: tuple[float, float]
    horizon_day: float
    high_risk_threshold: float
    x_ref: float
    log10_lambda: Value
    gamma: Value
    beta: Value
    source: str
    #: the model it was estimated with; another name when attached by with_outcome_from
    source_model: str
    extrapolated: bool = False


@dataclass(frozen=True)
class ModelDeclaration:
    """A published population PK model, fully declared (see the module docstring)."""

    name: str
    title: str
    population: str
    source: str
    structure: str
    structural_parameters: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    covariates: tuple[Covariate, ...]
    effects: tuple[CovariateEffect, ...]
    random_effects: RandomEffects
    residual: ResidualError
    default_infusion_duration_day: float
    derived: tuple[DerivedParameter, ...] = ()
    occasion_variability: tuple[OccasionVariability, ...] = ()
    outcome: OutcomeModel | None = None
    path: str = ""
    variants: tuple[str, ...] = ()
    available_variants: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    notes: str = ""

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(f"{self.name}: no parameter '{name}'")

    def covariate(self, name: str) -> Covariate:
        for c in self.covariates:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no covariate '{name}'")

    @property
    def label(self) -> str:
        return self.name + (f"[{','.join(self.variants)}]" if self.variants else "")


@dataclass(frozen=True)
class Quantity:
    """A patient's covariate value with its unit (converted to the model's declared unit)."""

    value: Any
    unit: str


@dataclass(frozen=True)
class Imputation:
    """A covariate the patient lacked and the value used instead."""

    covariate: str
    value: float
    unit: str
    reason: str


class MissingCovariateError(AsucBayesError, ValueError):
    """The patient lacks a covariate the model needs (and no imputation was requested).

    ``problem`` states what is missing in words any interface can show; the message adds the
    fix in the Python API's terms (``impute=``), which a command-line interface replaces with
    its own option.

    Examples
    --------
    >>> exc = MissingCovariateError("model 'm' needs ALB", fix="impute={'ALB': value}")
    >>> str(exc), exc.problem
    ("model 'm' needs ALB; impute={'ALB': value}", "model 'm' needs ALB")
    """

    def __init__(self, problem: str, *, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem


@dataclass(frozen=True)
class IndividualParameters(Mapping[str, Any]):
    """Parameter name -> individual value, plus the imputations made (never silent)."""

    values: tuple[tuple[str, Any], ...]
    imputed: tuple[Imputation, ...] = ()

    def __getitem__(self, key: str) -> Any:
        for name, value in self.values:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.values)

    def __len__(self) -> int:
        return len(self.values)


def _impute_value(
    declaration: ModelDeclaration, name: str, impute: Mapping[str, Any] | str | None
) -> Imputation | None:
    if isinstance(impute, Mapping) and name in impute:
        given = impute[name]
        if isinstance(given, Quantity):
            return Imputation(name, float(given.value), given.unit, "requested value")
        if given == "reference":
            return _reference_imputation(declaration, name)
        return Imputation(name, float(given), declaration.covariate(name).unit, "requested value")
    if impute == "reference":
        return _reference_imputation(declaration, name)
    return None


def _reference_imputation(declaration: ModelDeclaration, name: str) -> Imputation:
    """The reference patient's value: the covariate's declared reference, else the one reference
    all its effects share (0 for indicator forms without one)."""
    covariate = declaration.covariate(name)
    if covariate.reference is not None:
        return Imputation(name, covariate.reference, covariate.unit, "model's reference value")
    references = {
        (0.0 if e.reference is None else convert(float(e.reference), e.unit, covariate.unit))
        for e in declaration.effects
        if e.covariate == name
    }
    if len(references) != 1:
        raise MissingCovariateError(
            f"model '{declaration.name}': covariate {name} has no single reference value "
            f"({sorted(references)}), so it cannot be imputed with the reference; give a value",
            fix=f"impute it explicitly (impute={{'{name}': value}})",
        )
    return Imputation(name, references.pop(), covariate.unit, "model's reference value")


def _patient_value(
    declaration: ModelDeclaration,
    name: str,
    covariates: Mapping[str, Any],
    impute: Mapping[str, Any] | str | None,
    imputed: list[Imputation],
) -> tuple[Any, str]:
    """The patient's value of covariate ``name`` and its unit."""
    if name in covariates and covariates[name] is not None:
        given = covariates[name]
        if isinstance(given, Quantity):
            return given.value, given.unit
        if isinstance(given, tuple) and len(given) == 2 and isinstance(given[1], str):
            return given[0], given[1]
        return given, declaration.covariate(name).unit
    imputation = _impute_value(declaration, name, impute)
    if imputation is None:
        covariate = declaration.covariate(name)
        raise MissingCovariateError(
            f"model '{declaration.name}' needs covariate {name} ({covariate.description or name}, "
            f"in {covariate.unit}) but the patient has none; give it, or request an imputation",
            fix=f"impute={{'{name}': value}} or impute='reference'",
        )
    imputed.append(imputation)
    return imputation.value, imputation.unit


def _check_value(declaration: ModelDeclaration, effect: CovariateEffect, x: Any) -> None:
    values = np.atleast_1d(np.asarray(x, dtype=float))
    form = covariate_form(effect.form)
    for v in np.unique(values):
        problem = "must be finite" if not np.isfinite(v) else form.value_problem(float(v), effect)
        if problem:
            raise ValueError(
                f"model '{declaration.name}': covariate {effect.covariate} (in {effect.unit}) "
                f"{problem}"
            )


def individual_parameters(
    declaration: ModelDeclaration,
    covariates: Mapping[str, Any],
    eta: Any = None,
    xp: Any = np,
    *,
    impute: Mapping[str, Any] | str | None = None,
    kappa: Mapping[str, Any] | None = None,
) -> IndividualParameters:
    """Individual parameters: P = TV · Π covariate factors · exp(η) (· exp(κ)), then derived.

    Parameters
    ----------
    declaration
        The model.
    covariates
        Covariate name -> value in the covariate's declared unit, or a :class:`Quantity` /
        ``(value, unit)`` pair in any convertible unit. Arrays broadcast (time-varying values).
    eta
        Random effects with the last axis in ``declaration.random_effects`` order; leading axes
        (posterior draws) broadcast. None: the typical patient (η = 0).
    xp
        Array namespace: ``numpy`` or ``pytensor.tensor``.
    impute
        Values for missing covariates: a mapping name -> value (or ``"reference"``), or the
        string ``"reference"`` for all. Every imputation is listed in the result's ``imputed``.
    kappa
        Inter-occasion effects by parameter name (optional).

    Raises
    ------
    MissingCovariateError
        A needed covariate is missing and no imputation was requested for it.
    ValueError
        (NumPy) a covariate value outside its form's domain (e.g. a non-binary indicator).
    """
    imputed: list[Imputation] = []
    typical: dict[str, Any] = {p.name: p.typical.estimate for p in declaration.parameters}
    for effect in declaration.effects:
        value, unit = _patient_value(declaration, effect.covariate, covariates, impute, imputed)
        x = convert(value, unit, effect.unit)
        if xp is np:
            x = np.asarray(x, dtype=float)
            _check_value(declaration, effect, x)
        typical[effect.parameter] = typical[effect.parameter] * covariate_form(effect.form).factor(
            x, effect, xp
        )
    individual = dict(typical)
    if eta is not None:
        if xp is np:
            eta = np.asarray(eta, dtype=float)
        for i, random_effect in enumerate(declaration.random_effects.effects):
            individual[random_effect.parameter] = individual[random_effect.parameter] * xp.exp(
                eta[..., i]
            )
    for name, k in (kappa or {}).items():
        individual[name] = individual[name] * xp.exp(k)
    for derived in declaration.derived:
        product = 1.0
        for factor in derived.product_of:
            product = product * individual[factor]
        individual[derived.name] = product
    unique = {i.covariate: i for i in imputed}
    return IndividualParameters(tuple(individual.items()), tuple(unique.values()))


def with_outcome_from(
    declaration: ModelDeclaration, source_declaration: ModelDeclaration
) -> ModelDeclaration:
    """``declaration`` with the outcome model of ``source_declaration``, marked extrapolated.

    Raises
    ------
    ModelFileError
        If ``source_declaration`` has no outcome model.
    """
    if source_declaration.outcome is None:
        raise ModelFileError(
            source_declaration.path or source_declaration.name,
            "outcome",
            f"model '{source_declaration.name}' has no outcome model to attach",
            "attach the outcome of a model that declares one (niyigena2025)",
        )
    outcome = replace(
        source_declaration.outcome,
        extrapolated=declaration.name != source_declaration.outcome.source_model,
        source_model=source_declaration.outcome.source_model,
    )
    return replace(declaration, outcome=outcome)
