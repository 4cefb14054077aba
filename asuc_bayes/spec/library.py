"""The bundled model library: one summary per model file, as typed results and JSON.

>>> result = list_models()
>>> "niyigena2025" in [m.name for m in result.models]
True
>>> sorted(models_json(result)["models"][0])
['covariates', 'name', 'outcome_model', 'population', 'random_effects', 'source', 'structure']
"""

from __future__ import annotations

from dataclasses import dataclass

from asuc_bayes.spec.declaration import ModelDeclaration
from asuc_bayes.spec.loader import available_declarations, load_declaration

__all__ = ["ModelLibrary", "ModelSummary", "format_models_table", "list_models", "models_json"]


@dataclass(frozen=True)
class ModelSummary:
    """One model of the library, as listed by ``asuc-bayes models``."""

    name: str
    population: str
    structure: str
    #: (name, unit) of each covariate
    covariates: tuple[tuple[str, str], ...]
    random_effects: tuple[str, ...]
    outcome_model: bool
    source: str

    @classmethod
    def of(cls, declaration: ModelDeclaration) -> ModelSummary:
        return cls(
            name=declaration.name,
            population=declaration.population,
            structure=declaration.structure,
            covariates=tuple((c.name, c.unit) for c in declaration.covariates),
            random_effects=declaration.random_effects.names,
            outcome_model=declaration.outcome is not None,
            source=declaration.source,
        )


@dataclass(frozen=True)
class ModelLibrary:
    models: tuple[ModelSummary, ...]


def list_models() -> ModelLibrary:
    """Summaries of every bundled model file (a broken file raises ModelFileError)."""
    return ModelLibrary(
        tuple(ModelSummary.of(load_declaration(n)) for n in available_declarations())
    )


def models_json(library: ModelLibrary) -> dict:
    """The JSON-ready form: ``{"models": [{name, population, structure, covariates: [{name,
    unit}], random_effects, outcome_model, source}]}``."""
    return {
        "models": [
            {
                "name": m.name,
                "population": m.population,
                "structure": m.structure,
                "covariates": [{"name": n, "unit": u} for n, u in m.covariates],
                "random_effects": list(m.random_effects),
                "outcome_model": m.outcome_model,
                "source": m.source,
            }
            for m in library.models
        ]
    }


def format_models_table(library: ModelLibrary) -> str:
    """A readable table: one block per model."""
    lines = []
    for m in library.models:
        covariates = ", ".join(f"{n} ({u})" for n, u in m.covariates) or "none"
        lines += [
            f"{m.name}  [{m.structure}]{'  + outcome model' if m.outcome_model else ''}",
            f"  population:     {m.population}",
            f"  covariates:     {covariates}",
            f"  random effects: {', '.join(m.random_effects)}",
            f"  source:         {m.source}",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
