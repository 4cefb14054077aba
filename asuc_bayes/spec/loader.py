"""Reading model files (TOML) into :class:`~asuc_bayes.spec.declaration.ModelDeclaration`.

Two formats are read. A file with a ``[pk]`` table is today's Niyigena format, read by
:func:`asuc_bayes.spec.config.load_model` and translated (:mod:`asuc_bayes.spec.legacy`). Any other
file is the generic format::

    [model]            name, title, population, source, structure, structural_parameters,
                       default_infusion_duration_day, notes
    [parameters.NAME]  value, unit, source, rse_percent, ci95, bootstrap, fixed, note
    [derived.NAME]     product_of = ["KE", "V"], note
    [covariates.NAME]  unit, kind (continuous|binary|categorical), description, time_varying,
                       dataset_columns (other dataset column names read for it, e.g. ["ADA"])
    [[effects]]        parameter, covariate, form, reference, unit, theta = {value, source, ...}
                       or levels = {"1" = {value, source}, ...} (form "categorical")
    [random_effects]   parameters (publication order), reported_as (variance|cv_percent),
                       values (diagonal) or omega (full matrix, variances/covariances), source
    [occasion_variability.NAME]  variance or cv_percent, source
    [residual]         form, reported_as, and one table per SD the form needs
                       (proportional, additive, log_sd) = {value, unit, source}
    [variants.NAME]    description, "dotted.key" = value (overrides, applied on request)

Every number carries a ``source``. Errors name the file, the key and the fix
(:class:`~asuc_bayes.spec.errors.ModelFileError`).

Examples
--------
>>> decl = load_declaration("fasanmade2009")
>>> decl.structure, decl.random_effects.names
('two_compartment', ('eta_CL', 'eta_V1'))
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np

from asuc_bayes.spec.config import ModelSpecError, model_directory, read_toml
from asuc_bayes.spec.covariates import COVARIATE_FORMS, covariate_form
from asuc_bayes.spec.declaration import (
    RESERVED_PARAMETER_NAMES,
    RESERVED_PARAMETER_PREFIX,
    Covariate,
    CovariateEffect,
    DerivedParameter,
    ModelDeclaration,
    OccasionVariability,
    Parameter,
    RandomEffect,
    RandomEffects,
    ResidualError,
    Value,
    cv_percent_to_variance,
)
from asuc_bayes.spec.errors import ModelFileError
from asuc_bayes.spec.residual import RESIDUAL_FORMS, residual_form
from asuc_bayes.spec.structures import STRUCTURES
from asuc_bayes.spec.units import UNITS, convertible

__all__ = ["available_declarations", "load_declaration", "parse_declaration", "resolve_model_file"]

_VALUE_KEYS = ("value", "unit", "source", "rse_percent", "ci95", "bootstrap", "fixed", "note")
_SCHEMA: dict[str, Any] = {
    "model": (
        "name",
        "title",
        "population",
        "source",
        "structure",
        "structural_parameters",
        "default_infusion_duration_day",
        "notes",
    ),
    "parameters": {"*": (*_VALUE_KEYS, "description")},
    "derived": {"*": ("product_of", "note")},
    "covariates": {
        "*": ("unit", "kind", "description", "time_varying", "reference", "dataset_columns")
    },
    "effects": ("parameter", "covariate", "form", "reference", "unit", "theta", "levels"),
    "random_effects": ("parameters", "reported_as", "values", "omega", "source", "rse_percent"),
    "occasion_variability": {"*": ("variance", "cv_percent", "source", "note")},
    "residual": ("form", "reported_as", "proportional", "additive", "log_sd"),
    "variants": None,
}
_KINDS = ("continuous", "binary", "categorical")


def resolve_model_file(name_or_path: str | Path) -> Path:
    """The file of a bundled model name, or the given path (which must exist)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ModelFileError(str(path), "", "the model file does not exist", "check the path")
        return path
    bundled = model_directory() / f"{name_or_path}.toml"
    if not bundled.is_file():
        raise ModelFileError(
            str(name_or_path),
            "",
            "unknown model",
            f"give a path to a .toml model file or one of {available_declarations()}",
        )
    return bundled


def available_declarations() -> list[str]:
    """Names of the bundled model files (the library)."""
    return sorted(p.stem for p in model_directory().glob("*.toml"))


def load_declaration(
    name_or_path: str | Path, variants: list[str] | tuple[str, ...] = ()
) -> ModelDeclaration:
    """Load a model file (bundled name or path) into a :class:`ModelDeclaration`.

    Parameters
    ----------
    name_or_path
        ``niyigena2025``, ``wojciechowski2017``, ... or a path to a TOML model file.
    variants
        Names of ``[variants.NAME]`` tables to apply, in order.

    Raises
    ------
    ModelFileError
        A broken file: the message names the file, the key and the fix.
    """
    path = resolve_model_file(name_or_path)
    try:
        raw = read_toml(path.read_bytes(), path)
    except ModelSpecError as exc:
        raise ModelFileError(str(path), "", str(exc), "fix the syntax") from None
    if "pk" in raw:
        from asuc_bayes.spec.legacy import load_legacy

        try:
            return load_legacy(str(path), tuple(variants), name=path.stem)
        except ModelFileError:
            raise
        except ModelSpecError as exc:
            raise ModelFileError(str(path), "", str(exc)) from exc
    return parse_declaration(raw, path=str(path), variants=tuple(variants))


def parse_declaration(
    raw: dict[str, Any], *, path: str = "<memory>", variants: tuple[str, ...] = ()
) -> ModelDeclaration:
    """Validate a parsed generic-format model file into a :class:`ModelDeclaration`."""
    return _Parser(copy.deepcopy(raw), path).declaration(variants)


class _Parser:
    def __init__(self, raw: dict[str, Any], path: str) -> None:
        self.raw = raw
        self.path = path

    def fail(self, key: str, problem: str, fix: str = "") -> ModelFileError:
        return ModelFileError(self.path, key, problem, fix)

    # -- structure -------------------------------------------------------------------------
    def declaration(self, variants: tuple[str, ...]) -> ModelDeclaration:
        descriptions = self.apply_variants(variants)
        self.reject_unknown()
        model = self.table("model")
        name = self.string(model, "model.name")
        structure = self.string(model, "model.structure")
        if structure not in STRUCTURES:
            raise self.fail(
                "model.structure",
                f"unknown structure '{structure}'",
                f"use one of {list(STRUCTURES)}",
            )
        structural = tuple(model.get("structural_parameters", ()))
        if structural != STRUCTURES[structure]:
            raise self.fail(
                "model.structural_parameters",
                f"{list(structural)} are not the parameters of '{structure}'",
                f"write structural_parameters = {list(STRUCTURES[structure])}",
            )
        parameters = tuple(
            Parameter(n, self.value(t, f"parameters.{n}"), str(t.get("description", "")))
            for n, t in self.table("parameters").items()
        )
        derived = self.derived()
        self.reject_reserved_names(parameters, derived)
        known = {p.name for p in parameters} | {d.name for d in derived}
        for n in structural:
            if n not in known:
                raise self.fail(
                    "model.structural_parameters",
                    f"structural parameter {n} is neither declared nor derived",
                    f"add [parameters.{n}] or [derived.{n}]",
                )
        for d in derived:
            for factor in d.product_of:
                if factor not in {p.name for p in parameters}:
                    raise self.fail(
                        f"derived.{d.name}.product_of",
                        f"{factor} is not a declared parameter",
                        f"add [parameters.{factor}]",
                    )
        covariates = self.covariates()
        effects = self.effects(parameters, covariates)
        random_effects = self.random_effects(parameters)
        duration = self.number(model, "model.default_infusion_duration_day", 1e-4, 1.0)
        return ModelDeclaration(
            name=name,
            title=str(model.get("title", name)),
            population=self.string(model, "model.population"),
            source=self.string(model, "model.source"),
            structure=structure,
            structural_parameters=structural,
            parameters=parameters,
            covariates=covariates,
            effects=effects,
            random_effects=random_effects,
            residual=self.residual(),
            default_infusion_duration_day=duration,
            derived=derived,
            occasion_variability=self.occasion_variability(parameters),
            path=self.path,
            variants=variants,
            available_variants=descriptions,
            notes=str(model.get("notes", "")),
        )

    def reject_reserved_names(self, parameters, derived) -> None:
        for kind, items in (("parameters", parameters), ("derived", derived)):
            for item in items:
                if item.name in RESERVED_PARAMETER_NAMES or item.name.startswith(
                    RESERVED_PARAMETER_PREFIX
                ):
                    raise self.fail(
                        f"{kind}.{item.name}",
                        f"the name '{item.name}' is reserved for what every forecast reports "
                        f"({', '.join(RESERVED_PARAMETER_NAMES)}, {RESERVED_PARAMETER_PREFIX}*)",
                        f"rename it, e.g. [{kind}.{item.name.upper()}] (names are case-sensitive)",
                    )

    def apply_variants(self, variants: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        declared = self.raw.pop("variants", {})
        if not isinstance(declared, dict):
            raise self.fail("variants", "must be a table of tables", "write [variants.NAME]")
        for vname in variants:
            if vname not in declared:
                raise self.fail(
                    f"variants.{vname}",
                    "unknown variant",
                    f"use one of {sorted(declared) or 'none (this file declares no variant)'}",
                )
            for dotted, value in declared[vname].items():
                if dotted != "description":
                    self.set_dotted(dotted, value, f"variants.{vname}.{dotted}")
        return tuple((k, str(v.get("description", ""))) for k, v in declared.items())

    def set_dotted(self, dotted: str, value: Any, where: str) -> None:
        keys = dotted.split(".")
        node: Any = self.raw
        for key in keys[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                raise self.fail(where, "does not name a key of the model file", "fix the path")
            node = node[key]
        if keys[-1] not in node:
            raise self.fail(where, "does not name a key of the model file", "fix the path")
        node[keys[-1]] = value

    def reject_unknown(self) -> None:
        for key, value in self.raw.items():
            if key not in _SCHEMA:
                raise self.fail(key, "unknown key", f"use only {', '.join(_SCHEMA)}")
            allowed = _SCHEMA[key]
            entries: list[tuple[str, Any]] = []
            if isinstance(allowed, dict):
                if not isinstance(value, dict):
                    raise self.fail(key, "must be a table", f"write [{key}.NAME] tables")
                allowed = allowed["*"]
                entries = [(f"{key}.{n}", t) for n, t in value.items()]
            elif key == "effects":
                if not isinstance(value, list):
                    raise self.fail(key, "must be an array of tables", "write [[effects]] tables")
                entries = [(f"effects[{i}]", t) for i, t in enumerate(value)]
            else:
                entries = [(key, value)]
            for where, table in entries:
                if not isinstance(table, dict):
                    raise self.fail(where, "must be a table", f"write [{where}] with keys")
                for sub in table:
                    if sub not in allowed:
                        raise self.fail(
                            f"{where}.{sub}", "unknown key", f"use only {', '.join(allowed)}"
                        )

    # -- typed readers ---------------------------------------------------------------------
    def table(self, key: str) -> dict[str, Any]:
        table = self.raw.get(key)
        if not isinstance(table, dict):
            raise self.fail(key, "missing table", f"add a [{key}] table")
        return table

    def string(self, table: dict[str, Any], key: str) -> str:
        value = table.get(key.rsplit(".", 1)[-1])
        if not isinstance(value, str) or not value:
            raise self.fail(key, "missing or empty", "give a non-empty string")
        return value

    def number(self, table: dict[str, Any], key: str, low: float, high: float) -> float:
        value = table.get(key.rsplit(".", 1)[-1])
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {value!r}", "write a number")
        if not (math.isfinite(value) and low <= value <= high):
            raise self.fail(key, f"{value} is outside [{low}, {high}]", "check the value")
        return float(value)

    def numbers(self, value: Any, key: str, n: int) -> tuple[float, ...]:
        if (
            not isinstance(value, list)
            or len(value) != n
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            raise self.fail(key, f"must be a list of {n} numbers, got {value!r}", "fix the list")
        return tuple(float(v) for v in value)

    def value(self, table: Any, key: str) -> Value:
        if not isinstance(table, dict):
            raise self.fail(key, "must be a table {value, unit, source}", "write a table")
        estimate = self.number(table, f"{key}.value", -1e6, 1e6)
        source = table.get("source")
        if not isinstance(source, str) or not source.strip():
            raise self.fail(
                f"{key}.source",
                "missing source",
                'give the publication and table, e.g. source = "Author 2009, Table 3"',
            )
        fixed = table.get("fixed", False)
        if not isinstance(fixed, bool):
            raise self.fail(f"{key}.fixed", "must be true or false", "write true or false")
        unit = str(table.get("unit", ""))
        return Value(
            estimate=estimate,
            unit=unit,
            source=source,
            fixed=fixed,
            rse_percent=(
                self.number(table, f"{key}.rse_percent", 0, 1e4) if "rse_percent" in table else None
            ),
            ci95=self.numbers(table["ci95"], f"{key}.ci95", 2) if "ci95" in table else None,
            bootstrap=(
                self.numbers(table["bootstrap"], f"{key}.bootstrap", 3)
                if "bootstrap" in table
                else None
            ),
            note=str(table.get("note", "")),
        )

    # -- sections --------------------------------------------------------------------------
    def derived(self) -> tuple[DerivedParameter, ...]:
        out = []
        for name, table in self.raw.get("derived", {}).items():
            factors = table.get("product_of")
            if not isinstance(factors, list) or not factors:
                raise self.fail(
                    f"derived.{name}.product_of",
                    "must be a list of parameter names",
                    'write product_of = ["KE", "V"]',
                )
            out.append(DerivedParameter(name, tuple(map(str, factors)), str(table.get("note", ""))))
        return tuple(out)

    def covariates(self) -> tuple[Covariate, ...]:
        out = []
        for name, table in self.raw.get("covariates", {}).items():
            unit = table.get("unit")
            if unit not in UNITS:
                raise self.fail(
                    f"covariates.{name}.unit", f"unknown unit {unit!r}", f"use one of {list(UNITS)}"
                )
            kind = table.get("kind", "continuous")
            if kind not in _KINDS:
                raise self.fail(
                    f"covariates.{name}.kind", f"unknown kind {kind!r}", f"use {_KINDS}"
                )
            reference = None
            if "reference" in table:
                reference = self.number(table, f"covariates.{name}.reference", -1e6, 1e6)
            columns = table.get("dataset_columns", [])
            if not isinstance(columns, list) or not all(
                isinstance(c, str) and c.strip() for c in columns
            ):
                raise self.fail(
                    f"covariates.{name}.dataset_columns",
                    f"{columns!r} is not a list of column names",
                    'write e.g. dataset_columns = ["ADA"]',
                )
            out.append(
                Covariate(
                    name,
                    unit,
                    kind,
                    str(table.get("description", "")),
                    bool(table.get("time_varying", False)),
                    reference,
                    tuple(c.strip().upper() for c in columns),
                )
            )
        return tuple(out)

    def effects(self, parameters, covariates) -> tuple[CovariateEffect, ...]:
        params = {p.name for p in parameters}
        by_name = {c.name: c for c in covariates}
        out = []
        for i, table in enumerate(self.raw.get("effects", [])):
            where = f"effects[{i}]"
            form_name = table.get("form")
            if form_name not in COVARIATE_FORMS:
                raise self.fail(
                    f"{where}.form",
                    f"unknown covariate form {form_name!r}",
                    f"use one of {list(COVARIATE_FORMS)}",
                )
            parameter = table.get("parameter")
            if parameter not in params:
                raise self.fail(
                    f"{where}.parameter",
                    f"{parameter!r} is not a declared parameter",
                    f"use one of {sorted(params)}",
                )
            name = table.get("covariate")
            if name not in by_name:
                raise self.fail(
                    f"{where}.covariate",
                    f"{name!r} is not declared",
                    f"add a [covariates.{name}] table (unit, kind)",
                )
            covariate = by_name[name]
            unit = table.get("unit", covariate.unit)
            if not convertible(covariate.unit, unit):
                raise self.fail(
                    f"{where}.unit",
                    f"'{unit}' cannot be converted from the covariate's unit '{covariate.unit}'",
                    f"give the reference in a unit of the same dimension as {covariate.unit}",
                )
            form = covariate_form(form_name)
            levels: tuple[tuple[float, Value], ...] = ()
            theta = None
            if form.needs_levels:
                raw_levels = table.get("levels")
                if not isinstance(raw_levels, dict) or not raw_levels:
                    raise self.fail(
                        f"{where}.levels", "missing", 'write levels = {"1" = {value, source}, ...}'
                    )
                levels = tuple(
                    (float(k), self.value(v, f"{where}.levels.{k}")) for k, v in raw_levels.items()
                )
            else:
                theta = self.value(table.get("theta"), f"{where}.theta")
            reference = table.get("reference")
            if reference is not None and (
                isinstance(reference, bool) or not isinstance(reference, int | float)
            ):
                raise self.fail(f"{where}.reference", "must be a number", "write a number")
            effect = CovariateEffect(
                parameter,
                name,
                form_name,
                theta,
                None if reference is None else float(reference),
                unit,
                levels,
            )
            problem = form.check(effect)
            if problem:
                fix = (
                    f"write reference = <value in {unit}> ({form.formula})"
                    if "reference" in problem
                    else f"see form '{form_name}': {form.formula}"
                )
                raise self.fail(where, problem, fix)
            out.append(effect)
        return tuple(out)

    def random_effects(self, parameters) -> RandomEffects:
        table = self.table("random_effects")
        names = table.get("parameters")
        params = {p.name for p in parameters}
        if not isinstance(names, list) or not all(n in params for n in names):
            raise self.fail(
                "random_effects.parameters",
                f"{names!r} must list declared parameters (publication order)",
                f"use names among {sorted(params)}",
            )
        reported = table.get("reported_as")
        if reported not in ("variance", "cv_percent"):
            raise self.fail(
                "random_effects.reported_as",
                f"{reported!r}",
                'write "variance" (log-scale omega^2) or "cv_percent" (converted by ln(1+CV^2))',
            )
        source = self.string(table, "random_effects.source")
        n = len(names)
        if "omega" in table:
            rows = table["omega"]
            if not isinstance(rows, list) or len(rows) != n:
                raise self.fail("random_effects.omega", f"must be a {n}x{n} matrix", "fix it")
            matrix = np.array([self.numbers(r, "random_effects.omega", n) for r in rows])
            if reported != "variance":
                raise self.fail(
                    "random_effects.omega",
                    "a block Omega must be given as variances",
                    'write reported_as = "variance"',
                )
            published = [None] * n
        else:
            published = list(self.numbers(table.get("values"), "random_effects.values", n))
            if reported == "cv_percent":
                variances = [cv_percent_to_variance(v) for v in published]
            else:
                variances = list(published)
                published = [None] * n
            matrix = np.diag(variances)
        if not np.allclose(matrix, matrix.T):
            raise self.fail("random_effects.omega", "is not symmetric", "make omega[i][j] = [j][i]")
        eigenvalues = np.linalg.eigvalsh(matrix) if n else np.array([1.0])
        if not np.all(eigenvalues > 0):
            raise self.fail(
                "random_effects",
                f"Omega is not positive definite (eigenvalues {np.round(eigenvalues, 6).tolist()})",
                "check the variances (> 0) and that each |covariance| < sqrt(var_i var_j)",
            )
        rse = table.get("rse_percent")
        if rse is not None:
            rse = self.numbers(rse, "random_effects.rse_percent", n)
        effects = tuple(
            RandomEffect(
                f"eta_{name}",
                name,
                Value(
                    float(matrix[i, i]),
                    "1",
                    source,
                    rse_percent=None if rse is None else rse[i],
                ),
                cv_percent=published[i],
            )
            for i, name in enumerate(names)
        )
        omega = tuple(tuple(float(v) for v in row) for row in matrix)
        return RandomEffects(effects, omega, reported_as=reported)

    def occasion_variability(self, parameters) -> tuple[OccasionVariability, ...]:
        out = []
        params = {p.name for p in parameters}
        for name, table in self.raw.get("occasion_variability", {}).items():
            where = f"occasion_variability.{name}"
            if name not in params:
                raise self.fail(
                    where, "is not a declared parameter", f"use one of {sorted(params)}"
                )
            source = self.string(table, f"{where}.source")
            if "cv_percent" in table:
                cv = self.number(table, f"{where}.cv_percent", 0.0, 1000.0)
                variance = Value(cv_percent_to_variance(cv), "1", source, note=f"from CV {cv} %")
                out.append(OccasionVariability(name, variance, cv))
            else:
                var = self.number(table, f"{where}.variance", 0.0, 100.0)
                out.append(OccasionVariability(name, Value(var, "1", source)))
        return tuple(out)

    def residual(self) -> ResidualError:
        table = self.table("residual")
        form_name = table.get("form")
        if form_name not in RESIDUAL_FORMS:
            raise self.fail(
                "residual.form",
                f"unknown residual form {form_name!r}",
                f"use one of {list(RESIDUAL_FORMS)}",
            )
        form = residual_form(form_name)
        sigma = []
        for name in form.parameters:
            if name not in table:
                raise self.fail(
                    f"residual.{name}",
                    f"missing (form '{form_name}' needs {', '.join(form.parameters)})",
                    f"add {name} = {{value = SD, unit, source}}",
                )
            value = self.value(table[name], f"residual.{name}")
            if value.estimate <= 0:
                raise self.fail(f"residual.{name}.value", "must be a positive SD", "give SD > 0")
            sigma.append((name, value))
        extra = [k for k in ("proportional", "additive", "log_sd") if k in table]
        unused = [k for k in extra if k not in form.parameters]
        if unused:
            raise self.fail(
                f"residual.{unused[0]}",
                f"not a parameter of form '{form_name}'",
                f"remove it or change the form (it takes {', '.join(form.parameters)})",
            )
        return ResidualError(form_name, tuple(sigma), str(table.get("reported_as", "")))
