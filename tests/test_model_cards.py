"""The library's model cards (docs/LIBRARY.md) are written from the model files: the page in
the repository matches them, and each card shows every number the engine uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from asuc_bayes.interfaces.cli import main
from asuc_bayes.spec import available_declarations, load_declaration
from asuc_bayes.spec.card import library_card, model_card

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_library_page_matches_the_model_files(capsys):
    expected = library_card(load_declaration(n) for n in available_declarations())
    assert main(["models", "--format", "markdown"]) == 0
    assert capsys.readouterr().out == expected
    assert (DOCS / "LIBRARY.md").read_text(encoding="utf-8") == expected, (
        "docs/LIBRARY.md is out of date: regenerate it with "
        "`.venv/bin/asuc-bayes models --format markdown > docs/LIBRARY.md`"
    )


@pytest.mark.parametrize("name", available_declarations())
def test_each_card_shows_every_value_and_source(name):
    declaration = load_declaration(name)
    card = model_card(declaration)
    for parameter in declaration.parameters:
        row = next(line for line in card.splitlines() if line.startswith(f"| {parameter.name} |"))
        assert f"{parameter.typical.estimate:.4g}" in row
        assert parameter.typical.source.replace("|", "\\|") in row
    for effect in declaration.effects:
        assert any(
            line.startswith(f"| {effect.parameter} | {effect.covariate} | {effect.form} |")
            for line in card.splitlines()
        )
    for random_effect in declaration.random_effects.effects:
        assert f"| {random_effect.name} | {random_effect.parameter} | " in card
    assert declaration.residual.form in card


def test_wojciechowski_card_carries_the_published_numbers():
    card = model_card(load_declaration("wojciechowski2017"))
    # the values: CL 0.294 L/day, (ALB/4 g/dL)^-1.17, Var(eta_Q) 1.21
    assert "| CL | 0.294 | L/day |" in card
    assert "| CL | ALB | power | (ALB/4)^θ | g/dL | -1.17 |" in card
    assert "| eta_Q | Q | 1.21 |" in card
