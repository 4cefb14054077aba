"""Generic model declarations and the library of published infliximab models.

- :func:`load_declaration` — a model file (``models/*.toml``) as a :class:`ModelDeclaration`;
- :func:`individual_parameters` — a patient's parameters under a declaration (xp-generic);
- :func:`with_outcome_from` — attach the ASUC outcome model to another model (extrapolated);
- :mod:`~asuc_bayes.spec.covariates`, :mod:`~asuc_bayes.spec.residual` — registered forms;
- :func:`list_models` — the library, as listed by ``asuc-bayes models``.
"""

from asuc_bayes.spec.declaration import (
    Imputation,
    IndividualParameters,
    MissingCovariateError,
    ModelDeclaration,
    Quantity,
    individual_parameters,
    with_outcome_from,
)
from asuc_bayes.spec.errors import ModelFileError
from asuc_bayes.spec.library import format_models_table, list_models, models_json
from asuc_bayes.spec.loader import available_declarations, load_declaration

__all__ = [
    "Imputation",
    "IndividualParameters",
    "MissingCovariateError",
    "ModelDeclaration",
    "ModelFileError",
    "Quantity",
    "available_declarations",
    "format_models_table",
    "individual_parameters",
    "list_models",
    "load_declaration",
    "models_json",
    "with_outcome_from",
]
