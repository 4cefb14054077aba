"""``forecast --model FIT.nc`` with a library model's popPK fit (``fit --model NAME --out``).

Each patient's posterior integrates over the fit's population posterior
(:func:`asuc_bayes.inference.library_population_forecast.forecast_with_library_fit`). The
library model file must be the one the fit was made with (its sha256 is checked); the output
names the fit (file, sha256, gates) beside the model.
"""

from __future__ import annotations

import argparse
import sys

from asuc_bayes.inference.fit_identity import FitIdentity
from asuc_bayes.interfaces.cli.arguments import (
    NOT_FOR_LIBRARY_MODELS,
    imputation,
    refused_option,
)
from asuc_bayes.interfaces.cli.common import (
    INPUT_ERRORS,
    declaration_json,
    error,
    exit_for_unconverged,
    file_sha256,
    input_error,
    read_dataset,
    write_library_csv,
)
from asuc_bayes.interfaces.output import dumps_json

__all__ = ["fitted_declaration", "forecast_library_fit"]


def fitted_declaration(fit: FitIdentity, variants: str):
    """The library model a fit was made with (its variants), refusing a changed model file."""
    from asuc_bayes.spec import load_declaration

    declaration = load_declaration(
        fit.model_name, variants=tuple(v for v in variants.split(",") if v)
    )
    sha256 = file_sha256(declaration.path)
    if fit.model_sha256 and sha256 != fit.model_sha256:
        raise ValueError(
            f"--model {fit.path}: the fit was made with {fit.model_name} sha256 "
            f"{fit.model_sha256[:12]}, but the library's file now has sha256 {sha256[:12]} "
            f"(fix: refit with asuc-bayes fit --model {fit.model_name})"
        )
    return declaration


def forecast_library_fit(args: argparse.Namespace, fit: FitIdentity, tree) -> int:
    """The forecast of each selected patient over the library fit ``fit`` (its ``tree``)."""
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.inference.library_population_forecast import (
        PopulationSample,
        forecast_with_library_fit,
    )
    from asuc_bayes.inference.schedule import covariate_schedule
    from asuc_bayes.interfaces.report import format_library_table

    what = f"a library model's popPK fit (--model {args.model})"
    refused = refused_option(args, {**NOT_FOR_LIBRARY_MODELS, "out": None}, what)
    if refused:
        return error(refused)
    if args.population_draws < 1:
        return error("--population-draws: must be at least 1 with a population fit")
    try:
        declaration = fitted_declaration(fit, str(tree.attrs.get("model_variants", "")))
        patients, _, units = read_dataset(
            args,
            declaration.default_infusion_duration_day,
            collect_errors=False,
            allow_unsupported=True,
        )
        impute = imputation(args.impute, declaration)
        sample = PopulationSample.from_fit(
            tree, declaration, n=args.population_draws, random_seed=args.seed
        )
        results = [
            forecast_with_library_fit(
                patient,
                sample,
                baseline_covariates(patient, declaration, units),
                impute=impute,
                attach_outcome=declaration.outcome is None,
                schedule=covariate_schedule(
                    patient, declaration, units, args.covariates or "nonmem"
                ),
                random_seed=patient_seed(args.seed, patient.id),
                chains=args.chains,
                draws_per_chain=args.draws or 1000,
            )
            for patient in patients
        ]
    except INPUT_ERRORS as exc:
        return input_error(exc)
    if args.format == "csv":
        write_library_csv(results)
        print(f"asuc-bayes: {fit.header()}", file=sys.stderr)
    elif args.format == "json":
        model = declaration_json(declaration, source=True) | {"population_fit": fit.to_json()}
        print(dumps_json({"model": model, "patients": [r.to_json() for r in results]}))
    else:
        print(fit.header())
        print(
            f"  integrated over {sample.n} draws of the fit's population posterior "
            "(each patient's Kish ESS of their weights: diagnostics.population_ess in JSON)"
        )
        print(format_library_table(declaration, results))
    return exit_for_unconverged([r.id for r in results if r.status != "ok"], args)
