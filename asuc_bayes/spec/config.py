"""Declarative model files: loading, variants and validation.

A model file (TOML, in ``models/``) holds every population parameter with its reported
uncertainty, the covariate forms, the residual-error model, the censoring rule and the
time-to-event model. :func:`load_model` turns it into an immutable :class:`ModelSpec`.

Examples
--------
>>> spec = load_model("niyigena2025")
>>> round(spec.tte.x_ref, 3)
6.563
>>> spec.pk.omega_cl > 0
True
>>> load_model("niyigena2025", variants=["reference_weight_63kg"]).pk.reference_weight_kg
63.0
"""

from __future__ import annotations

import copy
import hashlib
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from asuc_bayes.errors import AsucBayesError

__all__ = [
    "PARAMETER_NAMES",
    "PK_PARAMETER_NAMES",
    "POPULATION_PARAMETERS",
    "TTE_PARAMETER_NAMES",
    "ModelSpec",
    "ModelSpecError",
    "PKSpec",
    "Parameter",
    "PopulationPriors",
    "Prior",
    "TTESpec",
    "available_models",
    "load_model",
    "model_directory",
]

DEFAULT_MODEL = "niyigena2025"

CRP_FORMS = ("power", "log_power")
RESIDUAL_FORMS = ("proportional", "log_normal")
CENSORING_METHODS = ("M3",)
TTE_FORMS = ("lambda_t_gamma", "lambda_t_all_gamma")
PK_STRUCTURES = ("one_compartment_zero_order_infusion",)


class ModelSpecError(AsucBayesError, ValueError):
    """A model file is missing a key, has a wrong type or an implausible value."""


@dataclass(frozen=True)
class Parameter:
    """One population parameter with its reported uncertainty.

    ``bootstrap`` holds (2.5 %, median, 97.5 %) of the published non-parametric bootstrap.
    """

    name: str
    estimate: float
    unit: str = ""
    fixed: bool = False
    rse_percent: float | None = None
    bootstrap: tuple[float, float, float] | None = None
    shrinkage_percent: float | None = None


@dataclass(frozen=True)
class PKSpec:
    """One-compartment infusion model with allometric weight and CRP covariates."""

    structure: str
    default_infusion_duration_day: float
    reference_weight_kg: float
    reference_crp_mg_l: float
    crp_form: str
    theta_cl: Parameter
    theta_v: Parameter
    weight_exponent_cl: Parameter
    weight_exponent_v: Parameter
    crp_exponent_cl: Parameter
    iiv_cv_cl: Parameter
    iiv_cv_v: Parameter
    residual_form: str
    residual_sd: Parameter
    censoring_method: str

    @property
    def omega_cl(self) -> float:
        """SD of η_CL on the log scale: sqrt(ln(1 + CV²))."""
        return cv_to_omega(self.iiv_cv_cl.estimate / 100.0)

    @property
    def omega_v(self) -> float:
        """SD of η_V on the log scale: sqrt(ln(1 + CV²))."""
        return cv_to_omega(self.iiv_cv_v.estimate / 100.0)


@dataclass(frozen=True)
class TTESpec:
    """Weibull proportional-hazards time-to-colectomy model."""

    form: str
    auc_window_day: tuple[float, float]
    horizon_day: float
    high_risk_threshold: float
    risk_at_threshold: float | None
    x_ref: float
    log10_lambda: Parameter
    gamma: Parameter
    beta: Parameter

    @property
    def baseline_lambda(self) -> float:
        """λ = 10^θ."""
        return 10.0**self.log10_lambda.estimate


#: The population PK parameters: typical CL (L/day) and V (L), CRP exponent on CL, SDs of η_CL
#: and η_V (log scale), residual SD. The one list of these names (fit posteriors, population
#: draws, SBC, evaluation, reports).
PK_PARAMETER_NAMES = (
    "theta_cl",
    "theta_v",
    "crp_exponent_cl",
    "omega_cl",
    "omega_v",
    "residual_sd",
)
#: The population Weibull parameters: λ (day^-γ, at x_ref), γ and β.
TTE_PARAMETER_NAMES = ("tte_lambda", "tte_gamma", "tte_beta")
#: Names of the population parameters: the fit's posterior variables and the per-draw
#: variables of a population-mixture forecast.
PARAMETER_NAMES = PK_PARAMETER_NAMES + TTE_PARAMETER_NAMES
#: Population parameters of the hierarchical model, in the order of the model file's prior
#: tables. ``tte_log10_lambda`` is the prior's scale for λ (the posterior reports ``tte_lambda``).
POPULATION_PARAMETERS = (*PK_PARAMETER_NAMES, "tte_log10_lambda", *TTE_PARAMETER_NAMES[1:])
#: Prior families and the keys each needs (model file ``[population.priors.SET.PARAM]``).
PRIOR_FAMILIES = {
    "lognormal": ("median", "log_sd"),
    "normal": ("mean", "sd"),
    "halfnormal": ("sd",),
}
#: Parameters that must be positive: only a positive prior family is accepted for them.
_POSITIVE = frozenset({"theta_cl", "theta_v", "omega_cl", "omega_v", "residual_sd", "tte_gamma"})


@dataclass(frozen=True)
class Prior:
    """A prior of one population parameter: ``lognormal(median, log_sd)``,
    ``normal(mean, sd)`` or ``halfnormal(sd)``.

    Examples
    --------
    >>> prior = Prior("theta_cl", "lognormal", (("median", 0.49), ("log_sd", 0.165)))
    >>> round(prior.quantile(0.5), 2), prior.param("log_sd")
    (0.49, 0.165)
    >>> prior.rvs(np.random.default_rng(0), 3).shape
    (3,)
    """

    name: str
    distribution: str
    parameters: tuple[tuple[str, float], ...]
    note: str = ""

    def param(self, key: str) -> float:
        return dict(self.parameters)[key]

    def frozen(self):
        """The prior as a frozen :mod:`scipy.stats` distribution (the NumPy reference)."""
        import scipy.stats

        if self.distribution == "lognormal":
            return scipy.stats.lognorm(s=self.param("log_sd"), scale=self.param("median"))
        if self.distribution == "normal":
            return scipy.stats.norm(self.param("mean"), self.param("sd"))
        return scipy.stats.halfnorm(scale=self.param("sd"))

    def rvs(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` independent draws (prior predictive checks)."""
        return np.asarray(self.frozen().rvs(size=size, random_state=rng), dtype=float)

    def quantile(self, q: float) -> float:
        return float(self.frozen().ppf(q))

    def describe(self) -> str:
        """``lognormal(median=0.49, log_sd=0.165)``."""
        inner = ", ".join(f"{k}={v:g}" for k, v in self.parameters)
        return f"{self.distribution}({inner})"


@dataclass(frozen=True)
class PopulationPriors:
    """One named set of priors (``weak``, ``published``) for every population parameter."""

    name: str
    priors: tuple[Prior, ...]

    def __getitem__(self, parameter: str) -> Prior:
        for prior in self.priors:
            if prior.name == parameter:
                return prior
        raise KeyError(parameter)


@dataclass(frozen=True)
class ModelSpec:
    """A validated, immutable model: PK, TTE, provenance and the variants applied."""

    name: str
    title: str
    source: str
    pk: PKSpec
    tte: TTESpec
    path: str
    sha256: str
    variants: tuple[str, ...] = ()
    available_variants: dict[str, str] = field(default_factory=dict, compare=False)
    #: Prior sets of the population model (``[population.priors.NAME]``), by name.
    population_priors: tuple[PopulationPriors, ...] = field(default=(), repr=False)

    def priors(self, name: str) -> PopulationPriors:
        """The prior set ``name`` of the model file.

        Raises
        ------
        ModelSpecError
            If the model file declares no such set.
        """
        for prior_set in self.population_priors:
            if prior_set.name == name:
                return prior_set
        raise ModelSpecError(
            f"{self.path}: no prior set '{name}' (declared: "
            f"{[p.name for p in self.population_priors] or 'none'}); add "
            f"[population.priors.{name}.<parameter>] tables to the model file"
        )

    @property
    def label(self) -> str:
        """Name with the variants applied, e.g. ``name[log_crp]``."""
        return self.name + (f"[{','.join(self.variants)}]" if self.variants else "")


def cv_to_omega(cv: float) -> float:
    """Log-normal SD from a coefficient of variation: sqrt(ln(1 + CV²))."""
    return math.sqrt(math.log1p(cv * cv))


def model_directory() -> Path:
    """Folder of the bundled model files (repository ``models/`` or the wheel's copy)."""
    here = Path(__file__).resolve().parents[1]  # the package folder
    for candidate in (here / "_bundled_models", here.parent / "models"):
        if candidate.is_dir():
            return candidate
    raise ModelSpecError("the bundled model folder 'models/' was not found next to the package")


def available_models() -> list[str]:
    """Names of the bundled model files."""
    return sorted(p.stem for p in model_directory().glob("*.toml"))


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ModelSpecError(f"model file '{path}' does not exist")
        return path
    bundled = model_directory() / f"{name_or_path}.toml"
    if not bundled.is_file():
        raise ModelSpecError(
            f"unknown model '{name_or_path}': give a path to a .toml model file or one of "
            f"{available_models()}"
        )
    return bundled


def load_model(
    name_or_path: str | Path = DEFAULT_MODEL, variants: list[str] | tuple[str, ...] = ()
) -> ModelSpec:
    """Load and validate a model file, applying the named variants in order.

    Parameters
    ----------
    name_or_path
        A bundled model name (see :func:`available_models`) or a path to a TOML file.
    variants
        Names of ``[variants.NAME]`` tables of the file to apply.

    Raises
    ------
    ModelSpecError
        With the offending key and what to write instead.
    """
    path = _resolve(name_or_path)
    raw_bytes = path.read_bytes()
    raw = read_toml(raw_bytes, path)
    _reject_library_format(raw, path)
    return parse_model(
        raw, path=str(path), sha256=hashlib.sha256(raw_bytes).hexdigest(), variants=tuple(variants)
    )


def _detail(exc: Exception) -> str:
    """The parser's message, or a short one when formatting it recurses too deeply."""
    try:
        return str(exc)
    except RecursionError:
        return "nested too deeply (fix: a model file needs 3 levels of tables)"


def read_toml(raw_bytes: bytes, path: Path) -> dict[str, Any]:
    """The table of a model file's bytes; anything unreadable is a :class:`ModelSpecError`
    naming the file (bad UTF-8 or TOML, nesting too deep, a number too long to convert).

    >>> read_toml(b"a = 1", Path("m.toml"))
    {'a': 1}
    >>> read_toml(b"a = [", Path("m.toml"))
    Traceback (most recent call last):
    ...
    asuc_bayes.spec.config.ModelSpecError: model file 'm.toml' is not valid TOML: ...
    """
    try:
        return tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelSpecError(f"model file '{path}' is not valid TOML: {_detail(exc)}") from None
    except RecursionError:
        raise ModelSpecError(
            f"model file '{path}' is not valid TOML: nested too deeply (fix: a model file "
            "needs 3 levels of tables)"
        ) from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise ModelSpecError(
            f"model file '{path}' is not valid TOML: {exc} (fix: write plain numbers)"
        ) from None


def is_library_declaration(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` names a generic library model file (read by
    :func:`asuc_bayes.spec.load_declaration`), rather than a file of this module's format.

    >>> is_library_declaration("wojciechowski2017"), is_library_declaration("niyigena2025")
    (True, False)
    """
    try:
        path = _resolve(name_or_path)
        raw = read_toml(path.read_bytes(), path)
    except (ModelSpecError, OSError):
        return False  # not a library file; its own loader names the problem
    model = raw.get("model")
    return "pk" not in raw and isinstance(model, dict) and "structure" in model


def _reject_library_format(raw: dict[str, Any], path: Path) -> None:
    """A generic library model file (``structure`` in ``[model]``, no ``[pk]`` table) is read
    by :func:`asuc_bayes.spec.load_declaration`; the forecasting engine does not run it yet."""
    model = raw.get("model")
    if "pk" in raw or not isinstance(model, dict) or "structure" not in model:
        return
    raise ModelSpecError(
        f"model '{model.get('name', path.stem)}' ({path.name}: {model['structure']}) is a "
        "library model declaration: 'asuc-bayes models' lists it and forecast, optimize, "
        "compare-patient, sensitivity, simulate, fit and validate run it with --model NAME, "
        "but this "
        f"command does not run library models yet; use --model {DEFAULT_MODEL} (with --variant "
        "for its alternatives)"
    )


def parse_model(
    raw: dict[str, Any], *, path: str = "<memory>", sha256: str = "", variants: tuple[str, ...] = ()
) -> ModelSpec:
    """Validate a parsed model file (a dict as read from TOML) into a :class:`ModelSpec`."""
    raw = copy.deepcopy(raw)
    declared = raw.pop("variants", {})
    if not isinstance(declared, dict):
        raise ModelSpecError(f"{path}: [variants] must be a table of tables")
    descriptions = {}
    for vname, table in declared.items():
        if not isinstance(table, dict):
            raise ModelSpecError(f"{path}: variants.{vname} must be a table")
        descriptions[vname] = str(table.get("description", ""))
    for vname in variants:
        if vname not in declared:
            raise ModelSpecError(
                f"{path}: unknown variant '{vname}'; this model file declares "
                f"{sorted(declared) or 'none'}"
            )
        for dotted, value in declared[vname].items():
            if dotted == "description":
                continue
            _set_dotted(raw, dotted, value, where=f"{path}: variants.{vname}")
    _reject_unknown_keys(raw, MODEL_FILE_SCHEMA, "", path)
    reader = _Reader(raw, path)
    model_t = reader.table("model")
    pk_t = reader.table("pk")
    tte_t = reader.table("tte")

    params = reader.table("pk.parameters")
    iiv = reader.table("pk.iiv")
    residual = reader.table("pk.residual")
    pk = PKSpec(
        structure=reader.choice(pk_t, "pk", "structure", PK_STRUCTURES),
        default_infusion_duration_day=reader.number(
            pk_t, "pk", "default_infusion_duration_day", low=1e-4, high=1.0
        ),
        reference_weight_kg=reader.number(pk_t, "pk", "reference_weight_kg", low=1, high=300),
        reference_crp_mg_l=reader.number(pk_t, "pk", "reference_crp_mg_l", low=0.01, high=1000),
        crp_form=reader.choice(pk_t, "pk", "crp_form", CRP_FORMS),
        theta_cl=reader.parameter(params, "pk.parameters", "theta_cl", low=1e-4, high=100),
        theta_v=reader.parameter(params, "pk.parameters", "theta_v", low=1e-2, high=1000),
        weight_exponent_cl=reader.parameter(params, "pk.parameters", "weight_exponent_cl", -3, 3),
        weight_exponent_v=reader.parameter(params, "pk.parameters", "weight_exponent_v", -3, 3),
        crp_exponent_cl=reader.parameter(params, "pk.parameters", "crp_exponent_cl", -5, 5),
        iiv_cv_cl=reader.parameter(iiv, "pk.iiv", "cl", 0.1, 500, key="cv_percent"),
        iiv_cv_v=reader.parameter(iiv, "pk.iiv", "v", 0.1, 500, key="cv_percent"),
        residual_form=reader.choice(residual, "pk.residual", "form", RESIDUAL_FORMS),
        residual_sd=_residual_parameter(reader, residual),
        censoring_method=reader.choice(
            reader.table("pk.censoring"), "pk.censoring", "method", CENSORING_METHODS
        ),
    )
    tparams = reader.table("tte.parameters")
    window = tte_t.get("auc_window_day")
    if (
        not isinstance(window, list)
        or len(window) != 2
        or not all(
            isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w)
            for w in window
        )
        or not 0 <= window[0] < window[1]
    ):
        raise ModelSpecError(
            f"{path}: tte.auc_window_day must be [start, end] in days with 0 <= start < end, "
            f"got {window!r}"
        )
    form = reader.choice(tte_t, "tte", "form", TTE_FORMS)
    reader.choice(tte_t, "tte", "covariate", TTE_COVARIATES)
    log10_lambda = reader.parameter(tparams, "tte.parameters", "log10_lambda", -10, 2)
    gamma = reader.parameter(tparams, "tte.parameters", "gamma", 0.05, 20)
    beta = reader.parameter(tparams, "tte.parameters", "beta", -20, 20)
    horizon = reader.number(tte_t, "tte", "horizon_day", low=1, high=3650)
    threshold = reader.number(tte_t, "tte", "high_risk_threshold", low=-50, high=50)
    risk_at_threshold = None
    x_ref_raw = tte_t.get("x_ref")
    if x_ref_raw == "calibrate":
        risk_at_threshold = reader.number(
            tte_t, "tte", "risk_at_threshold", low=1e-6, high=1 - 1e-6
        )
        x_ref = calibrate_x_ref(
            form,
            10.0**log10_lambda.estimate,
            gamma.estimate,
            beta.estimate,
            horizon,
            threshold,
            risk_at_threshold,
        )
    elif (
        isinstance(x_ref_raw, int | float)
        and not isinstance(x_ref_raw, bool)
        and math.isfinite(x_ref_raw)
    ):
        x_ref = float(x_ref_raw)
    else:
        raise ModelSpecError(
            f'{path}: tte.x_ref must be a number or "calibrate" (with tte.risk_at_threshold), '
            f"got {x_ref_raw!r}"
        )
    tte = TTESpec(
        form=form,
        auc_window_day=(float(window[0]), float(window[1])),
        horizon_day=horizon,
        high_risk_threshold=threshold,
        risk_at_threshold=risk_at_threshold,
        x_ref=x_ref,
        log10_lambda=log10_lambda,
        gamma=gamma,
        beta=beta,
    )
    name = model_t.get("name")
    if not isinstance(name, str) or not name:
        raise ModelSpecError(f"{path}: model.name must be a non-empty string")
    population_priors = _population_priors(reader, raw.get("population", {}))
    return ModelSpec(
        name=name,
        title=str(model_t.get("title", name)),
        source=str(model_t.get("source", "")),
        pk=pk,
        tte=tte,
        path=path,
        sha256=sha256,
        variants=variants,
        available_variants=descriptions,
        population_priors=population_priors,
    )


def _population_priors(reader: _Reader, table: Any) -> tuple[PopulationPriors, ...]:
    """The ``[population.priors.SET.PARAM]`` tables: every parameter, a known family, its
    keys, positive families for positive parameters."""
    if not isinstance(table, dict):
        raise ModelSpecError(f"{reader.path}: [population] must be a table")
    sets = table.get("priors", {})
    if not isinstance(sets, dict):
        raise ModelSpecError(f"{reader.path}: [population.priors] must be a table of tables")
    result = []
    for set_name, params in sets.items():
        where = f"population.priors.{set_name}"
        if not isinstance(params, dict):
            raise ModelSpecError(f"{reader.path}: [{where}] must be a table")
        unknown = [p for p in params if p not in POPULATION_PARAMETERS]
        if unknown:
            raise ModelSpecError(
                f"{reader.path}: unknown parameter(s) {', '.join(unknown)} in [{where}] "
                f"(accepted: {', '.join(POPULATION_PARAMETERS)})"
            )
        missing = [p for p in POPULATION_PARAMETERS if p not in params]
        if missing:
            raise ModelSpecError(
                f"{reader.path}: [{where}] lacks a prior for {', '.join(missing)} (every "
                f"population parameter needs one: {', '.join(POPULATION_PARAMETERS)})"
            )
        priors = []
        for parameter in POPULATION_PARAMETERS:
            entry = params[parameter]
            label = f"{where}.{parameter}"
            if not isinstance(entry, dict):
                raise ModelSpecError(f"{reader.path}: [{label}] must be a table")
            family = reader.choice(entry, label, "distribution", tuple(PRIOR_FAMILIES))
            if parameter in _POSITIVE and family == "normal":
                raise ModelSpecError(
                    f"{reader.path}: {label}.distribution = 'normal' allows negative values of "
                    f"a positive parameter; use 'lognormal' or 'halfnormal'"
                )
            extra = [k for k in entry if k not in ("distribution", "note", *PRIOR_FAMILIES[family])]
            if extra:
                raise ModelSpecError(
                    f"{reader.path}: {label}: key(s) {', '.join(extra)} do not belong to a "
                    f"{family} prior (it takes {', '.join(PRIOR_FAMILIES[family])})"
                )
            values = []
            for key in PRIOR_FAMILIES[family]:
                low, high = (-1e3, 1e3) if key == "mean" else (1e-9, 1e3)
                values.append((key, reader.number(entry, label, key, low=low, high=high)))
            priors.append(Prior(parameter, family, tuple(values), str(entry.get("note", ""))))
        result.append(PopulationPriors(set_name, tuple(priors)))
    return tuple(result)


def calibrate_x_ref(
    form: str,
    baseline_lambda: float,
    gamma: float,
    beta: float,
    horizon_day: float,
    threshold: float,
    risk_at_threshold: float,
) -> float:
    """x_ref such that covariate ``threshold`` gives ``risk_at_threshold`` at ``horizon_day``.

    Solves H(horizon) = -ln(1 - risk) for x_ref; H is linear in exp(β (x - x_ref)).
    """
    from asuc_bayes.pk.kernels import weibull_baseline_cumulative_hazard

    if beta == 0:
        raise ModelSpecError(
            "tte.parameters.beta = 0: x_ref cannot be calibrated; give tte.x_ref explicitly"
        )
    base = weibull_baseline_cumulative_hazard(horizon_day, baseline_lambda, gamma, form)
    target = -math.log1p(-risk_at_threshold)
    return threshold - math.log(target / base) / beta


def _residual_parameter(reader: _Reader, table: dict[str, Any]) -> Parameter:
    parameter = reader.parameter({"residual": table}, "pk", "residual", 1e-3, 5, key="sd")
    return replace(parameter, name="residual_sd")


def _leaves(*names: str) -> dict[str, None]:
    return dict.fromkeys(names)


_PARAMETER_KEYS = _leaves(
    "unit", "estimate", "fixed", "rse_percent", "bootstrap", "shrinkage_percent"
)
_IIV_KEYS = _leaves("unit", "cv_percent", "rse_percent", "shrinkage_percent", "bootstrap")
#: Every key a model file may hold: None marks a value, a dict a sub-table.
MODEL_FILE_SCHEMA: dict[str, Any] = {
    "model": _leaves("name", "title", "source"),
    "pk": {
        **_leaves(
            "structure",
            "default_infusion_duration_day",
            "reference_weight_kg",
            "reference_crp_mg_l",
            "crp_form",
        ),
        "parameters": {
            name: _PARAMETER_KEYS
            for name in (
                "theta_cl",
                "theta_v",
                "weight_exponent_cl",
                "weight_exponent_v",
                "crp_exponent_cl",
            )
        },
        "iiv": {"cl": _IIV_KEYS, "v": _IIV_KEYS},
        "residual": _leaves("form", "sd", "rse_percent", "bootstrap", "unit"),
        "censoring": _leaves("method"),
    },
    "tte": {
        **_leaves(
            "form",
            "covariate",
            "auc_window_day",
            "horizon_day",
            "high_risk_threshold",
            "x_ref",
            "risk_at_threshold",
        ),
        "parameters": {name: _PARAMETER_KEYS for name in ("log10_lambda", "gamma", "beta")},
    },
    "population": {"priors": None},  # prior sets are checked by _population_priors
}
#: The covariate of the time-to-colectomy model (the only one the engine computes).
TTE_COVARIATES = ("ln_auc_w2_4_over_cl",)


def _reject_unknown_keys(raw: dict[str, Any], schema: dict[str, Any], where: str, path: str):
    """A misspelt key must not be silently ignored: name it and list what is accepted."""
    for key, value in raw.items():
        dotted = f"{where}.{key}" if where else key
        if key not in schema:
            raise ModelSpecError(
                f"{path}: unknown key '{dotted}' (accepted here: {', '.join(schema)})"
            )
        if isinstance(schema[key], dict) and isinstance(value, dict):
            _reject_unknown_keys(value, schema[key], dotted, path)


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    keys = dotted.split(".")
    node = raw
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            raise ModelSpecError(f"{where}: '{dotted}' does not name a key of the model file")
        node = node[key]
    if keys[-1] not in node:
        raise ModelSpecError(f"{where}: '{dotted}' does not name a key of the model file")
    node[keys[-1]] = value


class _Reader:
    """Typed access to the raw TOML with errors that name the key."""

    def __init__(self, raw: dict[str, Any], path: str):
        self.raw = raw
        self.path = path

    def table(self, dotted: str) -> dict[str, Any]:
        node: Any = self.raw
        for key in dotted.split("."):
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                raise ModelSpecError(f"{self.path}: missing table [{dotted}]")
            node = node[key]
        return node

    def number(self, table: dict[str, Any], where: str, key: str, low: float, high: float) -> float:
        value = table.get(key)
        if value is None:
            raise ModelSpecError(f"{self.path}: missing {where}.{key} (a number)")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelSpecError(f"{self.path}: {where}.{key} must be a number, got {value!r}")
        if not (math.isfinite(value) and low <= value <= high):
            raise ModelSpecError(
                f"{self.path}: {where}.{key} = {value} is outside the plausible range "
                f"[{low}, {high}]"
            )
        return float(value)

    def choice(self, table: dict[str, Any], where: str, key: str, options: tuple[str, ...]) -> str:
        value = table.get(key)
        if value not in options:
            raise ModelSpecError(
                f"{self.path}: {where}.{key} must be one of {list(options)}, got {value!r}"
            )
        return value

    def parameter(
        self,
        params: dict[str, Any],
        where: str,
        name: str,
        low: float,
        high: float,
        key: str = "estimate",
    ) -> Parameter:
        table = params.get(name)
        if not isinstance(table, dict):
            raise ModelSpecError(f"{self.path}: missing table [{where}.{name}]")
        label = f"{where}.{name}"
        estimate = self.number(table, label, key, low, high)
        fixed = table.get("fixed", False)
        if not isinstance(fixed, bool):
            raise ModelSpecError(f"{self.path}: {label}.fixed must be true or false")
        rse = table.get("rse_percent")
        if rse is not None:
            rse = self.number(table, label, "rse_percent", 0.0, 1000.0)
        shrinkage = table.get("shrinkage_percent")
        if shrinkage is not None:
            shrinkage = self.number(table, label, "shrinkage_percent", 0.0, 100.0)
        boot = table.get("bootstrap")
        if boot is not None:
            if (
                not isinstance(boot, list)
                or len(boot) != 3
                or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in boot)
                or not boot[0] <= boot[1] <= boot[2]
            ):
                raise ModelSpecError(
                    f"{self.path}: {label}.bootstrap must be [lower 2.5 %, median, upper 97.5 %] "
                    f"in increasing order, got {boot!r}"
                )
            boot = (float(boot[0]), float(boot[1]), float(boot[2]))
        return Parameter(
            name=name,
            estimate=estimate,
            unit=str(table.get("unit", "")),
            fixed=fixed,
            rse_percent=rse,
            bootstrap=boot,
            shrinkage_percent=shrinkage,
        )
