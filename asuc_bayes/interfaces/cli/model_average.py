"""``forecast``/``optimize --model-average A,B,C``: Bayesian model averaging over library
models, per patient (:mod:`asuc_bayes.decisions.model_average`)."""

from __future__ import annotations

import argparse
import sys

from asuc_bayes.inference.engine import Engine, EngineError
from asuc_bayes.interfaces.cli.arguments import library_plan_inputs, refused_dosing_option
from asuc_bayes.interfaces.cli.common import (
    EXIT_OK,
    INPUT_ERRORS,
    Progress,
    error,
    exit_after_errors,
    library_patients,
)
from asuc_bayes.interfaces.output import (
    dumps_json,
    model_average_columns,
    model_average_row,
    write_csv,
)
from asuc_bayes.spec import load_declaration
from asuc_bayes.spec.config import DEFAULT_MODEL


def run_model_average(args: argparse.Namespace) -> int:
    """``forecast``/``optimize --model-average A,B,C``: per patient the models' weights, risks
    and the averaged risk (and dose) of
    :func:`asuc_bayes.decisions.model_average.average_patient`."""
    from asuc_bayes.decisions.model_average import format_model_average
    from asuc_bayes.decisions.model_average_batch import PatientFailure, average_patients

    if args.model != DEFAULT_MODEL or args.variant:
        return error("--model-average replaces --model and --variant; fix: leave them out")
    # forecast --out / --report write every patient's model average, optimize --report too;
    # both run the patients on a Dask cluster with --workers / --scheduler
    takes = ("out", "report") if args.command == "forecast" else ("report",)
    takes += ("workers", "scheduler")
    refused = refused_dosing_option(args, "--model-average", takes_csv=True, takes=takes)
    if refused:
        return error(refused)
    try:
        # the patients are read with the first model's default infusion duration
        _, patients, units = library_patients(args, args.model_average[0])
        options, request, plan_options = library_plan_inputs(args)
        # the CSV's per-model columns, by each model file's name
        names = [load_declaration(name).name for name in args.model_average]
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
        with Progress(args.command, len(patients), args.quiet) as progress:
            results = average_patients(
                args.model_average,
                patients,
                units,
                random_seed=args.seed,
                options=options,
                request=request,
                plan_options=plan_options,
                engine=engine,
                progress=progress,
            )
    except EngineError as exc:
        return error(str(exc))
    except INPUT_ERRORS as exc:
        return error(str(exc))
    averages = [r for r in results if not isinstance(r, PatientFailure)]
    errors = [r.to_json() for r in results if isinstance(r, PatientFailure)]
    if getattr(args, "out", None):
        save_model_averages(args, averages, patients, options)
    if getattr(args, "report", None) and averages:
        written = write_average_reports(args, averages, patients)
        if written != EXIT_OK:
            return written
    entries = [average.to_json() for average in averages] + errors
    if args.format == "json":
        print(dumps_json({"models": list(args.model_average), "patients": entries}))
    elif args.format == "csv":
        columns = model_average_columns(names, dosing=args.command == "optimize")
        write_csv([model_average_row(entry) for entry in entries], columns, sys.stdout)
    else:
        print(format_model_average(averages))
    return exit_after_errors(errors, [a.patient_id for a in averages if a.status != "ok"], args)


def save_model_averages(args: argparse.Namespace, averages, patients, options) -> None:
    """``forecast --model-average --out``: every patient's model average in one netCDF file
    (:mod:`asuc_bayes.decisions.model_average_tree`; a patient no model applies to has none)."""
    from asuc_bayes.decisions.model_average_tree import model_average_tree
    from asuc_bayes.inference.forecast import save_results

    by_id = {patient.id: patient for patient in patients}
    trees = {
        average.patient_id: model_average_tree(average, by_id[average.patient_id], options=options)
        for average in averages
    }
    save_results(trees, args.out)
    print(f"asuc-bayes: results written to {args.out}", file=sys.stderr)


def write_average_reports(args: argparse.Namespace, averages, patients) -> int:
    """``forecast``/``optimize --model-average --report FILE``: one HTML report per patient
    (:mod:`asuc_bayes.interfaces.report.model_average_html`); :data:`EXIT_OK`, or
    :data:`EXIT_INPUT` when a file cannot be written."""
    from asuc_bayes.interfaces.report.model_average_html import write_model_average_reports

    by_id = {patient.id: patient for patient in patients}
    try:
        written = write_model_average_reports(averages, by_id, args.report, random_seed=args.seed)
    except OSError as exc:
        return error(f"--report {args.report}: {exc.strerror or exc}")
    where = written[0] if len(written) == 1 else f"{len(written)} files ({written[0]} ...)"
    print(f"asuc-bayes: report written to {where}", file=sys.stderr)
    return EXIT_OK
