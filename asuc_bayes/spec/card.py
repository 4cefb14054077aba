"""Model cards in Markdown, written from the model files themselves.

``docs/LIBRARY.md`` is :func:`library_card` of every bundled model (``asuc-bayes models
--format markdown`` prints the same text), so the documentation cannot drift from the numbers
the engine uses: a test regenerates it and compares. Every value appears with its unit, its
reported uncertainty and its source as the model file gives them.

Examples
--------
>>> from asuc_bayes.spec import load_declaration
>>> card = model_card(load_declaration("wojciechowski2017"))
>>> card.splitlines()[0]
'## wojciechowski2017'
>>> "| CL | 0.294 | L/day |" in card
True
"""

from __future__ import annotations

from collections.abc import Iterable

from asuc_bayes.spec.covariates import covariate_form
from asuc_bayes.spec.declaration import CovariateEffect, ModelDeclaration, Value

__all__ = ["library_card", "model_card"]

_HEADER = """# Library of infliximab population PK models

Generated from the model files in `models/` (`asuc-bayes models --format markdown`; a test
checks that this page matches them). Every number is the model file's, with the source the
file gives for it. The ASUC model (`niyigena2025`, the default) has its own detailed card in
`docs/MODEL.md`: its reading of the paper, its variants and its outcome model.

Conventions: time in days, amounts in mg, concentrations in mg/L, clearances in L/day,
volumes in L. Random-effect variances are on the log scale (ω²); a model published as CV %
is converted with ω² = ln(1 + CV²), and the CV is shown beside it. Covariate effects multiply
the typical value of their parameter; their forms are those of `asuc_bayes.spec.covariates`.
"""


def _number(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.4g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip() or "–"


def _uncertainty(value: Value) -> str:
    parts = []
    if value.fixed:
        parts.append("fixed")
    if value.rse_percent is not None:
        parts.append(f"RSE {_number(value.rse_percent)} %")
    if value.ci95 is not None:
        parts.append(f"95 % CI {_number(value.ci95[0])}–{_number(value.ci95[1])}")
    if value.bootstrap is not None:
        low, median, high = value.bootstrap
        parts.append(f"bootstrap {_number(median)} [{_number(low)}–{_number(high)}]")
    return ", ".join(parts) or "–"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(str(c)) for c in row) + " |" for row in rows]
    return lines


def _effect_formula(effect: CovariateEffect) -> str:
    """The registered form's formula with the covariate's name and reference written in."""
    formula = covariate_form(effect.form).formula
    if effect.reference is not None:
        formula = formula.replace("ref", _number(effect.reference))
    return formula.replace("X", effect.covariate)


def _effect_rows(declaration: ModelDeclaration) -> list[list[str]]:
    rows = []
    for effect in declaration.effects:
        if effect.levels:
            theta = "; ".join(
                f"{_number(level)}: {_number(v.estimate)}" for level, v in effect.levels
            )
            source = effect.levels[0][1].source
            uncertainty = "–"
        else:
            theta = _number(effect.theta.estimate) if effect.theta else "–"
            source = effect.theta.source if effect.theta else ""
            uncertainty = _uncertainty(effect.theta) if effect.theta else "–"
        rows.append(
            [
                effect.parameter,
                effect.covariate,
                effect.form,
                _effect_formula(effect),
                effect.unit or "–",
                theta,
                uncertainty,
                source,
            ]
        )
    return rows


def model_card(declaration: ModelDeclaration) -> str:
    """One model's card: identity, structure, parameters, covariates, random effects, residual
    error, outcome model and notes, every value with its source."""
    d = declaration
    lines = [
        f"## {d.name}",
        "",
        f"**{d.title}**" if d.title else "",
        "",
        f"- Population: {d.population or '–'}",
        f"- Source: {d.source or '–'}",
        f"- Structure: `{d.structure}` (parameters {', '.join(d.structural_parameters)})",
        f"- Default infusion duration (D1, used for `RATE = -2`): "
        f"{_number(d.default_infusion_duration_day * 24)} h",
        f"- Outcome model: {_outcome(d)}",
        "",
        "Typical values (reference patient):",
        "",
        *_table(
            ("parameter", "value", "unit", "uncertainty", "source"),
            (
                (
                    p.name,
                    _number(p.typical.estimate),
                    p.typical.unit or "–",
                    _uncertainty(p.typical),
                    p.typical.source,
                )
                for p in d.parameters
            ),
        ),
        "",
    ]
    if d.covariates:
        lines += [
            "Covariates:",
            "",
            *_table(
                ("covariate", "unit", "kind", "time-varying", "dataset columns", "description"),
                (
                    (
                        c.name,
                        c.unit,
                        c.kind,
                        "yes" if c.time_varying else "no",
                        ", ".join(c.columns),
                        c.description,
                    )
                    for c in d.covariates
                ),
            ),
            "",
        ]
    if d.effects:
        lines += [
            "Covariate effects (factor on the parameter's typical value):",
            "",
            *_table(
                ("parameter", "covariate", "form", "factor", "unit", "θ", "uncertainty", "source"),
                _effect_rows(d),
            ),
            "",
        ]
    lines += [
        f"Random effects (Ω reported as {d.random_effects.reported_as}):",
        "",
        *_table(
            ("random effect", "on", "ω²", "CV %", "uncertainty", "source"),
            (
                (
                    r.name,
                    r.parameter,
                    _number(r.variance.estimate),
                    _number(r.cv_percent),
                    _uncertainty(r.variance),
                    r.variance.source,
                )
                for r in d.random_effects.effects
            ),
        ),
        "",
        f"Residual error: `{d.residual.form}`"
        + (f" (reported as {d.residual.reported_as})" if d.residual.reported_as else ""),
        "",
        *_table(
            ("term", "value", "unit", "source"),
            ((name, _number(v.estimate), v.unit or "–", v.source) for name, v in d.residual.sigma),
        ),
        "",
    ]
    if d.notes:
        lines += [f"Notes: {' '.join(d.notes.split())}", ""]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def _outcome(declaration: ModelDeclaration) -> str:
    outcome = declaration.outcome
    if outcome is None:
        return (
            "none (the ASUC Weibull time-to-colectomy model can be attached to this model's "
            "ln(AUC_w2-4/CL); results are then flagged extrapolated)"
        )
    return (
        f"{outcome.form} on {outcome.covariate}, {_number(outcome.horizon_day)}-day risk, "
        f"high risk below {_number(outcome.high_risk_threshold)} ({outcome.source})"
    )


def library_card(declarations: Iterable[ModelDeclaration]) -> str:
    """The library page: a header, an index and one :func:`model_card` per model."""
    declarations = list(declarations)
    index = [f"- [`{d.name}`](#{d.name}): {d.title or d.structure}" for d in declarations]
    cards = [model_card(d) for d in declarations]
    return _HEADER + "\n" + "\n".join(index) + "\n\n" + "\n".join(cards)
