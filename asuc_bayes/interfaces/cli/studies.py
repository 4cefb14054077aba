"""The study commands: ``sensitivity`` (per patient, default or library model), ``simulate``
(a virtual cohort), ``compare`` (the simulation study) and ``validate`` (library models on a
cohort)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asuc_bayes.data.dataset import InputError
from asuc_bayes.inference.engine import Engine, EngineError
from asuc_bayes.interfaces.cli.arguments import SCENARIO_NAMES, decision_request, spec_and_settings
from asuc_bayes.interfaces.cli.common import (
    EXIT_OK,
    INPUT_ERRORS,
    Progress,
    declaration_json,
    error,
    for_each_library_patient,
    identified_fit,
    input_error,
    library_patients,
    load_patients,
    read_dataset,
    spec_json,
)
from asuc_bayes.interfaces.output import dumps_json
from asuc_bayes.spec.config import DEFAULT_MODEL, ModelSpecError, is_library_declaration, load_model


def _write_sensitivity(
    results: list, args: argparse.Namespace, model: dict[str, Any], text: Callable[[], str]
) -> int:
    """The outputs of ``sensitivity``: ``--out`` files, then the JSON (``model`` and each
    patient) or the ``text`` table on stdout."""
    from asuc_bayes.studies.sensitivity import write_sensitivity

    if args.out:
        written = write_sensitivity(results, args.out)
        print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    if args.format == "json":
        print(dumps_json({"model": model, "patients": [r.to_json() for r in results]}))
    else:
        print(text())
    return EXIT_OK


def run_sensitivity(args: argparse.Namespace) -> int:
    """``sensitivity``: how the answer moves under alternative assumptions, per patient."""
    if is_library_declaration(args.model):
        return sensitivity_library(args)
    from asuc_bayes.data.dataset import parse_units
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.interfaces.report import format_sensitivity
    from asuc_bayes.studies.sensitivity import run_sensitivity as patient_sensitivity

    try:
        spec = load_model(args.model, variants=args.variant)
        patients = load_patients(args, spec)
        units = dict(parse_units(args.units))
        request = decision_request(args)
        fit = None
        if args.population_fit is not None:
            from asuc_bayes.inference.population import load_fit

            if not args.population_fit.is_file():
                raise ValueError(f"--population-fit {args.population_fit}: no such file")
            fit = load_fit(args.population_fit)
            fit_identity = identified_fit(
                args.population_fit, args.allow_unconverged, "--population-fit", fit
            )
            if args.population_draws == 0:
                raise ValueError("--population-fit needs --population-draws > 0")
    except INPUT_ERRORS as exc:
        return error(str(exc))
    results = [
        patient_sensitivity(
            spec,
            patient,
            request,
            random_seed=patient_seed(args.seed, patient.id),
            grid_points=args.grid_points,
            population_draws=args.population_draws,
            population_fit=fit,
            structural=args.structural,
            impute=args.impute,
            covariate_units=units,
        )
        for patient in patients
    ]
    model, header = spec_json(spec), ""
    if fit is not None:
        model["population_fit"] = fit_identity.to_json()
        header = fit_identity.header().replace("model: ", "also propagated: ", 1) + "\n"
    return _write_sensitivity(
        results, args, model, lambda: header + format_sensitivity(results, spec)
    )


def sensitivity_library(args: argparse.Namespace) -> int:
    """``sensitivity --model NAME`` for a library model
    (:mod:`asuc_bayes.studies.library_sensitivity`)."""
    from asuc_bayes.interfaces.report import format_library_sensitivity
    from asuc_bayes.studies.library_sensitivity import run_library_sensitivity

    if args.population_fit is not None:
        return error(
            "--population-fit: not available with a library model (a fit of the default "
            f"model); fix: leave it out, or use --model {DEFAULT_MODEL}"
        )
    try:
        declaration, patients, units = library_patients(args, args.model)
        results = for_each_library_patient(
            run_library_sensitivity,
            declaration,
            patients,
            units,
            args.seed,
            structural=args.structural,
            impute=args.impute,
            covariate_units=units,
        )
    except INPUT_ERRORS as exc:  # a missing covariate: where it comes from
        return input_error(exc)
    model = declaration_json(declaration)
    return _write_sensitivity(
        results, args, model, lambda: format_library_sensitivity(declaration, results)
    )


def _write_cohort(cohort, out: Path | None, message: str, message_on_stdout: bool) -> int:
    """A simulated cohort to ``out`` (and its truth beside it), or as CSV on stdout; the
    ``message`` (summary or note) on stderr, or on stdout with ``out`` and
    ``message_on_stdout``."""
    from asuc_bayes.studies.simulate import write_cohort

    if out:
        data_path, truth_path = write_cohort(cohort, out)
        print(message, file=sys.stdout if message_on_stdout else sys.stderr)
        print(f"asuc-bayes: cohort written to {data_path}, truth to {truth_path}", file=sys.stderr)
    else:
        import tempfile

        from asuc_bayes.data.dataset import write_nonmem_csv

        with tempfile.TemporaryDirectory() as folder:
            path = write_nonmem_csv(cohort.patients, Path(folder) / "cohort.csv")
            sys.stdout.write(path.read_text())
        print(message, file=sys.stderr)
    return EXIT_OK


def run_simulate(args: argparse.Namespace) -> int:
    """``simulate``: a Table-1-like virtual cohort with its truth."""
    if is_library_declaration(args.model):
        return simulate_library(args)
    from asuc_bayes.interfaces.report import format_cohort_summary
    from asuc_bayes.studies.simulate import TABLE1, cohort_summary, simulate_cohort

    try:
        spec = load_model(args.model, variants=args.variant)
    except (ModelSpecError, ValueError) as exc:
        return error(str(exc))
    cohort = simulate_cohort(
        spec, args.n, args.seed, population_uncertainty=args.population_uncertainty
    )
    summary = format_cohort_summary(cohort_summary(cohort.patients), TABLE1)
    return _write_cohort(cohort, args.out, summary, message_on_stdout=True)


def simulate_library(args: argparse.Namespace) -> int:
    """``simulate --model NAME`` for a library model
    (:mod:`asuc_bayes.studies.library_simulate`)."""
    from asuc_bayes.spec import load_declaration
    from asuc_bayes.studies.library_simulate import simulate_library_cohort

    if args.population_uncertainty:
        return error(
            "--population-uncertainty: not available with a library model (its parameters' "
            f"uncertainty is not declared for sampling); fix: leave it out, or --model "
            f"{DEFAULT_MODEL}"
        )
    try:
        declaration = load_declaration(args.model, variants=args.variant or ())
        cohort = simulate_library_cohort(declaration, args.n, args.seed, outcome=args.outcome)
    except (ModelSpecError, ValueError) as exc:
        return error(str(exc))
    note = (
        f"asuc-bayes: note: cohort from {declaration.name}; ALB (if any) written in g/L "
        "(read it with --units ALB=g/L under a g/dL model)"
    )
    if cohort.truth.get("extrapolated_outcome") is not None and bool(
        cohort.truth["extrapolated_outcome"].any()
    ):
        note += "; colectomy records from the ASUC outcome model, EXTRAPOLATED to this model"
    return _write_cohort(cohort, args.out, note, message_on_stdout=False)


def run_compare(args: argparse.Namespace) -> int:
    """``compare``: the simulation study, MAP + Laplace against the full posterior."""
    from asuc_bayes.interfaces.report import format_study
    from asuc_bayes.studies.comparison import run_study, write_study

    try:
        spec, settings = spec_and_settings(args)
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
    except (ModelSpecError, ValueError, EngineError) as exc:
        return error(str(exc))
    names = args.scenario or list(SCENARIO_NAMES)
    studies = []
    try:
        for name in names:
            with Progress(f"{name:<12}", args.n, args.quiet) as progress:
                studies.append(
                    run_study(
                        spec,
                        name,
                        args.n,
                        args.seed,
                        settings=settings,
                        engine=engine,
                        progress=progress,
                    )
                )
    except EngineError as exc:
        return error(str(exc))
    if args.out:
        written = write_study(studies, args.out)
        print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    if args.format == "json":
        print(dumps_json([s.to_json() for s in studies]))
    else:
        print(format_study(studies))
    return EXIT_OK


def run_validate(args: argparse.Namespace) -> int:
    """``validate``: :func:`asuc_bayes.studies.validation.validate_cohort` on the dataset's
    patients."""
    from asuc_bayes.inference.covariates import dataset_covariates
    from asuc_bayes.interfaces.report import format_validation
    from asuc_bayes.spec import load_declaration
    from asuc_bayes.studies.validation.study import validate_cohort

    try:
        patients, _, units = read_dataset(args, 1.0 / 12.0, collect_errors=False)
        declarations = [load_declaration(name) for name in args.models]
        covariates = {p.id: dataset_covariates(p, declarations, units) for p in patients}
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
        with Progress("validate", len(patients), args.quiet) as progress:
            result = validate_cohort(
                patients,
                args.models,
                covariates_of=covariates,
                random_seed=args.seed,
                engine=engine,
                progress=progress,
            )
    except (InputError, ModelSpecError, ValueError, OSError, EngineError) as exc:
        return error(str(exc))
    document = result.to_json()
    if args.format == "json":
        print(dumps_json(document))
    else:
        print(format_validation(document))
    if args.out:
        from asuc_bayes.interfaces.validation_report import write_validation_report

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "validation.json").write_text(dumps_json(document) + "\n")
        write_validation_report(result, args.out, random_seed=args.seed)
        print(
            f"asuc-bayes: validation written to {args.out}/validation.json and validation.html",
            file=sys.stderr,
        )
    return EXIT_OK
