"""``optimize``: the dose (and timing, next sample, maintenance trough) to a target under
uncertainty, for the default model or a library model (``--model NAME``)."""

from __future__ import annotations

import argparse
import sys

from asuc_bayes.data.dataset import InputError
from asuc_bayes.interfaces.cli.arguments import (
    decision_request,
    imputation,
    library_plan_inputs,
    plan_options,
    refused_dosing_option,
)
from asuc_bayes.interfaces.cli.common import (
    EXIT_OK,
    INPUT_ERRORS,
    MISSING_COVARIATE_HINT,
    declaration_json,
    default_inputs,
    error,
    exit_after_errors,
    library_patients,
    note_library_only_options,
    spec_json,
    write_library_report_files,
    write_reports,
)
from asuc_bayes.interfaces.cli.model_average import run_model_average
from asuc_bayes.interfaces.output import (
    DOSING_COLUMNS,
    dosing_row,
    dumps_json,
    library_dosing_columns,
    library_dosing_row,
    write_csv,
)
from asuc_bayes.spec.config import is_library_declaration


def run_optimize(args: argparse.Namespace) -> int:
    """``optimize``: each selected patient's posterior, then the dose plan of
    :func:`asuc_bayes.decisions.dosing.plan_dosing`."""
    if args.model_average:
        return run_model_average(args)
    if is_library_declaration(args.model):
        return optimize_library(args)
    if args.workers != 1 or args.scheduler:
        return error(
            "--workers/--scheduler: optimize runs patients on Dask only with --model-average; "
            "fix: leave them out (each patient's plan takes seconds here)"
        )
    note_library_only_options(args)
    from asuc_bayes.decisions.dosing import DosingError, check_request, plan_dosing
    from asuc_bayes.inference.forecast import forecast_patients, patient_seed
    from asuc_bayes.interfaces.report import format_dosing

    try:
        spec, settings, patients = default_inputs(args)
        request = decision_request(args)
        options = plan_options(args)
    except INPUT_ERRORS as exc:
        return error(str(exc))
    errors = []
    for patient in patients:  # before any sampling: a request this patient cannot take
        try:
            check_request(patient, spec, request)
        except DosingError as exc:
            errors.append({"id": patient.id, "error": str(exc)})
    rejected = {e["id"] for e in errors}
    patients = [p for p in patients if p.id not in rejected]
    results = forecast_patients(patients, spec, settings=settings, random_seed=args.seed)
    plans = []
    for result in results:
        try:
            plans.append(
                plan_dosing(
                    result,
                    request,
                    options,
                    random_seed=patient_seed(args.seed, result.patient.id),
                )
            )
        except DosingError as exc:
            errors.append({"id": result.patient.id, "error": str(exc)})
    if args.format == "json":
        payload = {
            "model": spec_json(spec),
            "patients": [plan.to_json() for plan in plans] + errors,
        }
        print(dumps_json(payload))
    elif args.format == "csv":
        forecasts = {r.patient.id: r.summary() for r in results}
        entries = [plan.to_json() for plan in plans] + errors
        rows = [dosing_row(forecasts.get(e["id"], {"id": e["id"]}), e) for e in entries]
        write_csv(rows, DOSING_COLUMNS, sys.stdout)
    else:
        print(format_dosing(plans, spec))
    if args.report and plans:
        dosing = {plan.forecast.patient.id: plan.to_json() for plan in plans}
        written = write_reports([plan.forecast for plan in plans], dosing, args)
        if written != EXIT_OK:
            return written
    return exit_after_errors(errors, [r.patient.id for r in results if r.status != "ok"], args)


def optimize_library(args: argparse.Namespace) -> int:
    """``optimize --model NAME`` for a library model: the dose to a target risk (the ASUC
    outcome model attached, flagged extrapolated, to a model without one) or to a target trough,
    from the model's posterior draws (:mod:`asuc_bayes.decisions.library_dosing`)."""
    from asuc_bayes.decisions.dosing import DosingError
    from asuc_bayes.decisions.library_dosing import library_posterior, plan_library_dosing
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.interfaces.report import format_library_dosing
    from asuc_bayes.spec import MissingCovariateError

    what = f"a library model (--model {args.model})"
    refused = refused_dosing_option(args, what, takes_csv=True, takes=("report",))
    if refused:
        return error(refused)
    try:
        declaration, patients, units = library_patients(args, args.model)
        options, request, plan = library_plan_inputs(args)
        impute = imputation(args.impute, declaration)
    except INPUT_ERRORS as exc:
        return error(str(exc))
    plans, errors, planned = [], [], []
    for patient in patients:
        try:
            covariates = baseline_covariates(patient, declaration, units)
            posterior = library_posterior(
                declaration,
                patient,
                covariates,
                impute=impute,
                random_seed=patient_seed(args.seed, patient.id),
                options=options,
            )
            plans.append(plan_library_dosing(posterior, request, plan))
            planned.append((patient, covariates))
        except MissingCovariateError as exc:
            errors.append({"id": patient.id, "error": f"{exc.problem} {MISSING_COVARIATE_HINT}"})
        except (InputError, DosingError) as exc:
            errors.append({"id": patient.id, "error": str(exc)})
    if args.format == "json":
        entries = [plan.to_json() for plan in plans] + errors
        print(dumps_json({"model": declaration_json(declaration), "patients": entries}))
    elif args.format == "csv":
        write_library_dosing_csv(plans, errors)
    else:
        print(format_library_dosing(declaration, plans))
    forecasts = [plan.posterior.forecast for plan in plans]
    if args.report and plans:
        written = write_library_report_files(
            args,
            declaration,
            [patient for patient, _ in planned],
            [covariates for _, covariates in planned],
            forecasts,
            dosing={plan.posterior.forecast.id: plan.to_json() for plan in plans},
        )
        if written != EXIT_OK:
            return written
    return exit_after_errors(errors, [f.id for f in forecasts if f.status != "ok"], args)


def write_library_dosing_csv(plans: list, errors: list[dict]) -> None:
    """``optimize --model NAME --format csv``: one row per patient, the forecast's columns and
    the plan's (:func:`asuc_bayes.interfaces.output.library_dosing_row`); a refused
    patient's row is an error row."""
    forecasts = {plan.posterior.forecast.id: plan.posterior.forecast.to_json() for plan in plans}
    entries = [plan.to_json() for plan in plans] + errors
    names = list(dict.fromkeys(n for f in forecasts.values() for n in f["parameters"]))
    rows = [library_dosing_row(forecasts.get(e["id"], {"id": e["id"]}), e) for e in entries]
    write_csv(rows, library_dosing_columns(names), sys.stdout)
