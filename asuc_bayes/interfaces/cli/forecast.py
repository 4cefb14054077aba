"""``forecast`` and ``compare-patient``: each patient's posterior under the default model, a
library model (``--model NAME``), a population fit (``--model FIT.nc``) or, for many
patients, the batch path (``--workers``, ``--scheduler``, ``--checkpoint``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asuc_bayes.data.dataset import InputError
from asuc_bayes.inference.engine import Engine, EngineError
from asuc_bayes.interfaces.cli.arguments import (
    NOT_FOR_LIBRARY_MODELS,
    imputation,
    library_sampler_options,
    refused_option,
    spec_and_settings,
)
from asuc_bayes.interfaces.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    INPUT_ERRORS,
    Progress,
    declaration_json,
    default_inputs,
    error,
    exit_for_unconverged,
    file_sha256,
    for_each_library_patient,
    identified_fit,
    input_error,
    library_patients,
    load_patients,
    note_library_only_options,
    read_dataset,
    spec_json,
    unconverged_exit,
    write_library_csv,
    write_library_report_files,
    write_reports,
)
from asuc_bayes.interfaces.cli.model_average import run_model_average
from asuc_bayes.interfaces.output import FORECAST_COLUMNS, dumps_json, forecast_row, write_csv
from asuc_bayes.spec.config import DEFAULT_MODEL, ModelSpecError, is_library_declaration


def run_forecast(args: argparse.Namespace) -> int:
    """``forecast``: the posterior of each selected patient, on the path the options select."""
    if args.model_average:
        return run_model_average(args)
    if is_library_declaration(args.model):
        return forecast_library(args)
    note_library_only_options(args)
    if str(args.model).endswith(".nc"):
        return forecast_population(args)
    if args.workers != 1 or args.scheduler or args.checkpoint:
        return forecast_batch(args)
    try:
        spec, settings, patients = default_inputs(args)
    except INPUT_ERRORS as exc:
        return error(str(exc))
    from asuc_bayes.inference.forecast import results_json, save_results
    from asuc_bayes.interfaces.report import format_overview, format_table

    results = forecast_with_progress(patients, spec, settings, args)
    if args.format == "json":
        print(dumps_json(results_json(results, spec)))
    elif args.format == "csv":
        write_csv([forecast_row(r.summary()) for r in results], FORECAST_COLUMNS, sys.stdout)
    else:
        if len(results) > 1:
            print(format_overview(results, spec) + "\n")
        print(format_table(results, spec))
    if args.out:
        save_results(results, args.out)
        print(f"asuc-bayes: results written to {args.out}", file=sys.stderr)
    if args.report:
        dosing = {r.patient.id: default_recommendation(r) for r in results}
        written = write_reports(results, dosing, args)
        if written != EXIT_OK:
            return written
    return unconverged_exit(results, args)


def forecast_with_progress(patients: list, spec, settings, args: argparse.Namespace) -> list:
    """:func:`asuc_bayes.inference.forecast.forecast_patients` with a progress bar."""
    from asuc_bayes.inference.forecast import forecast_patients

    with Progress("forecast", len(patients), args.quiet) as progress:
        return forecast_patients(
            patients, spec, settings=settings, random_seed=args.seed, progress=progress
        )


def default_recommendation(result) -> dict:
    """The report's dose section: the default request (``asuc-bayes optimize`` for others)."""
    from asuc_bayes.decisions.dosing import DosingError, DosingRequest, recommend_dose

    try:
        return recommend_dose(result, DosingRequest()).to_json()
    except DosingError as exc:
        return {"error": exc.clinical}


def forecast_library(args: argparse.Namespace) -> int:
    """``forecast --model NAME`` for a library model (any structure and random effects): the
    posterior of each patient by :func:`asuc_bayes.inference.forecast_library_patient`, with the
    ASUC outcome model attached (flagged extrapolated) to a model that has none."""
    from asuc_bayes.inference import PatientProblem
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.library_batch import LibraryJob, forecast_library_batch
    from asuc_bayes.inference.schedule import covariate_schedule
    from asuc_bayes.interfaces.report import format_library_table

    what = f"a library model (--model {args.model})"
    taken = ("report", "workers", "scheduler")
    not_taken = {k: v for k, v in NOT_FOR_LIBRARY_MODELS.items() if k not in taken}
    refused = refused_option(args, not_taken, what, f", or use --model {DEFAULT_MODEL}")
    if refused:
        return error(refused)
    try:
        # SS and resets: evaluated by the library path
        declaration, patients, units = library_patients(args, args.model, allow_unsupported=True)
        options = library_sampler_options(args, adaptive=True)
        impute = imputation(args.impute, declaration)
        covariates = [baseline_covariates(patient, declaration, units) for patient in patients]
        jobs = [
            LibraryJob(
                patient,
                given,
                covariate_schedule(patient, declaration, units, args.covariates or "nonmem"),
            )
            for patient, given in zip(patients, covariates, strict=True)
        ]
        # every job is checked here (covariates bound, plausibility): errors before the work
        for job in jobs:
            PatientProblem.from_patient(
                declaration, job.patient, job.covariates, impute=impute, schedule=job.schedule
            )
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
        with Progress("forecast", len(jobs), args.quiet) as progress:
            results = forecast_library_batch(
                declaration,
                jobs,
                impute=impute,
                attach_outcome=declaration.outcome is None,
                random_seed=args.seed,
                options=options,
                engine=engine,
                progress=progress,
            )
    except EngineError as exc:
        return error(str(exc))
    except INPUT_ERRORS as exc:  # a missing covariate: where it comes from
        return input_error(exc)
    if args.report:
        written = write_library_report_files(args, declaration, patients, covariates, results)
        if written != EXIT_OK:
            return written
    if args.out:
        try:
            save_library_results(args, declaration, patients, results, options)
        except ValueError as exc:  # a model file whose names the tree cannot hold
            return error(f"--out {args.out}: {exc}")
    if args.format == "table":
        print(format_library_table(declaration, results))
        for result in results:
            for note in result.covariates.notes(result.model):
                print(f"asuc-bayes: note: patient {result.id!r}: {note}", file=sys.stderr)
    elif args.format == "csv":
        write_library_csv(results)
    else:
        payload = {
            "model": declaration_json(declaration, source=True),
            "patients": [result.to_json() for result in results],
        }
        print(dumps_json(payload))
    return exit_for_unconverged([r.id for r in results if r.status != "ok"], args)


def save_library_results(args, declaration, patients, results, options) -> None:
    """``--out`` of a library-model forecast: every patient's DataTree in one netCDF file
    (:mod:`asuc_bayes.inference.library_tree`)."""
    from asuc_bayes.inference.forecast import patient_seed, save_results
    from asuc_bayes.inference.library_tree import library_forecast_tree

    sha256 = file_sha256(declaration.path)
    trees = {
        result.id: library_forecast_tree(
            result,
            patient,
            declaration,
            model_sha256=sha256,
            random_seed=patient_seed(args.seed, patient.id),
            options=options,
        )
        for patient, result in zip(patients, results, strict=True)
    }
    save_results(trees, args.out)
    print(f"asuc-bayes: results written to {args.out}", file=sys.stderr)


def forecast_batch(args: argparse.Namespace) -> int:
    """``forecast`` on many patients through :func:`asuc_bayes.inference.batch.forecast_batch`."""
    if args.report:
        return error(
            "--report is not available with --workers/--scheduler/--checkpoint (fix: write "
            "reports for chosen patients without the batch options, or use --out)"
        )
    try:
        spec, settings = spec_and_settings(args)
        patients, errors, _ = read_dataset(
            args, spec.pk.default_infusion_duration_day, collect_errors=True
        )
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
    except (InputError, ModelSpecError, ValueError, OSError, EngineError) as exc:
        return error(str(exc))
    from asuc_bayes.inference.batch import CheckpointError, with_input_errors
    from asuc_bayes.inference.batch import forecast_batch as run_batch
    from asuc_bayes.inference.forecast import save_results
    from asuc_bayes.interfaces.report import format_batch

    try:
        with Progress("forecast", len(patients), args.quiet) as progress:
            batch = run_batch(
                patients,
                spec,
                settings=settings,
                random_seed=args.seed,
                engine=engine,
                checkpoint=args.checkpoint,
                keep_trees=args.out is not None,
                progress=progress,
            )
    except (CheckpointError, EngineError) as exc:
        return error(str(exc))
    batch = with_input_errors(batch, errors)
    if args.format == "json":
        document = {"model": spec_json(spec), "patients": [row.to_json() for row in batch.rows]}
        print(dumps_json(document))
    elif args.format == "csv":
        rows = [forecast_row(row.to_json()) for row in batch.rows]
        write_csv(rows, FORECAST_COLUMNS, sys.stdout)
    else:
        print(f"model: {spec.label}  (sha256 {spec.sha256[:12]})\n")
        print(format_batch(batch))
    if args.out:
        save_results(batch.trees, args.out)
        print(f"asuc-bayes: results written to {args.out}", file=sys.stderr)
    failed = [row for row in batch.rows if row.status == "error"]
    for row in failed:
        print(f"asuc-bayes: error: {row.error}", file=sys.stderr)
    if failed:
        return EXIT_INPUT
    return exit_for_unconverged([row.id for row in batch.rows if row.status == "unconverged"], args)


def forecast_population(args: argparse.Namespace) -> int:
    """``forecast --model FIT.nc``: integrate over the fitted population posterior (of the ASUC
    model, or of a library model: :mod:`asuc_bayes.interfaces.cli.library_fit`)."""
    from asuc_bayes.inference.forecast import results_json, save_results
    from asuc_bayes.inference.population_draws import PopulationDraws
    from asuc_bayes.inference.population_forecast import forecast_patients_with_population
    from asuc_bayes.interfaces.report import format_table

    try:
        if args.variant:
            raise ValueError("--variant cannot be combined with a population fit (--model *.nc)")
        fit = identified_fit(args.model, args.allow_unconverged, "--model")
        if not fit.library:
            # the ASUC fit's forecast runs in this process, NUTS per patient, no report yet
            refused = refused_option(
                args, NOT_FOR_LIBRARY_MODELS, "a population fit (--model FIT.nc)"
            )
            if refused:
                return error(refused)
        if fit.library:
            from asuc_bayes.inference.fit_tree import read_fit
            from asuc_bayes.interfaces.cli.library_fit import forecast_library_fit

            return forecast_library_fit(args, fit, read_fit(args.model))
        draws = PopulationDraws.from_fit(args.model, n=args.population_draws, random_seed=args.seed)
        patients = load_patients(args, draws.spec)
    except INPUT_ERRORS as exc:
        return error(str(exc))
    results = forecast_patients_with_population(
        patients,
        draws,
        random_seed=args.seed,
        chains=args.chains,
        draws_per_chain=args.draws or 1000,
    )
    for result in results:  # the saved trees name the fit too (model_* is its structure)
        result.tree.attrs |= {"population_fit_file": fit.path, "population_fit_sha256": fit.sha256}
        result.tree.attrs["population_fit_converged"] = int(fit.converged)
    if args.format == "json":
        payload = results_json(results, draws.spec)
        payload["model"] = {"name": f"fit:{Path(fit.path).name}", "sha256": fit.sha256}
        payload["model"] |= {"variants": [], "population_fit": fit.to_json()}
        print(dumps_json(payload))
    elif args.format == "csv":
        write_csv([forecast_row(r.summary()) for r in results], FORECAST_COLUMNS, sys.stdout)
        print(f"asuc-bayes: {fit.header()}", file=sys.stderr)
    else:
        print(fit.header() + "\n" + format_table(results, draws.spec).split("\n", 1)[1])
    if args.out:
        save_results(results, args.out)
        print(f"asuc-bayes: results written to {args.out}", file=sys.stderr)
    return unconverged_exit(results, args)


def run_compare_patient(args: argparse.Namespace) -> int:
    """``compare-patient``: MAP (the published tool) against the full posterior."""
    if is_library_declaration(args.model):
        return compare_patient_library(args)
    note_library_only_options(args)
    try:
        spec, settings, patients = default_inputs(args)
    except INPUT_ERRORS as exc:
        return error(str(exc))
    from asuc_bayes.interfaces.report import format_comparison
    from asuc_bayes.studies.comparison import compare_patient

    results = forecast_with_progress(patients, spec, settings, args)
    comparisons = [compare_patient(spec, r, random_seed=args.seed) for r in results]
    if args.format == "json":
        payload = {"model": {"name": spec.name, "sha256": spec.sha256}, "patients": comparisons}
        print(dumps_json(payload))
    else:
        print(format_comparison(comparisons, spec))
    return unconverged_exit(results, args)


def compare_patient_library(args: argparse.Namespace) -> int:
    """``compare-patient --model NAME`` for a library model
    (:mod:`asuc_bayes.studies.library_compare`)."""
    from asuc_bayes.interfaces.report import format_library_comparison
    from asuc_bayes.studies.library_compare import compare_library_patient

    refused = refused_option(
        args,
        {"sampler": NOT_FOR_LIBRARY_MODELS["sampler"]},
        f"a library model (--model {args.model})",
        f", or use --model {DEFAULT_MODEL}",
    )
    if refused:  # as forecast --model NAME: IMH with its own NUTS fallback, not a choice
        return error(refused)
    try:
        declaration, patients, units = library_patients(args, args.model)
        comparisons = for_each_library_patient(
            compare_library_patient,
            declaration,
            patients,
            units,
            args.seed,
            options=library_sampler_options(args),
            impute=imputation(args.impute, declaration),
        )
    except INPUT_ERRORS as exc:  # a missing covariate: where it comes from
        return input_error(exc)
    if args.format == "json":
        payload = {
            "model": declaration_json(declaration),
            "patients": [c.to_json() for c in comparisons],
        }
        print(dumps_json(payload))
    else:
        print(format_library_comparison(declaration, comparisons))
    unconverged = [c.forecast.id for c in comparisons if c.forecast.status != "ok"]
    return exit_for_unconverged(unconverged, args)
