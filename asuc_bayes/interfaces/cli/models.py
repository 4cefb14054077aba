"""``models``: the library of published infliximab models (table, JSON or model cards)."""

from __future__ import annotations

import argparse

from asuc_bayes.interfaces.cli.common import EXIT_OK, error
from asuc_bayes.interfaces.output import dumps_json
from asuc_bayes.spec.config import ModelSpecError


def run_models(args: argparse.Namespace) -> int:
    """``models``: list the library models."""
    from asuc_bayes.spec.library import format_models_table, list_models, models_json

    try:
        library = list_models()
    except ModelSpecError as exc:
        return error(str(exc))
    if args.format == "json":
        print(dumps_json(models_json(library)))
    elif args.format == "markdown":
        from asuc_bayes.spec import available_declarations, load_declaration
        from asuc_bayes.spec.card import library_card

        names = available_declarations()
        print(library_card(load_declaration(name) for name in names), end="")
    else:
        print(format_models_table(library), end="")
    return EXIT_OK
