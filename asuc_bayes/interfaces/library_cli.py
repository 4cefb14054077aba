"""The command handlers of library models (``--model NAME`` of a ``models/*.toml``
declaration): ``compare-patient``, ``sensitivity``, ``simulate`` and ``fit``.

:mod:`asuc_bayes.interfaces.cli` dispatches here when
:func:`asuc_bayes.spec.config.is_library_declaration`
says the model is a library declaration; the helpers (dataset reading, errors, exit codes) are
the CLI's own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asuc_bayes.interfaces.cli import (
    DEFAULT_MODEL,
    EXIT_OK,
    EXIT_UNCONVERGED,
    InputError,
    ModelSpecError,
    _error,
    _exit_for_unconverged,
    _file_sha256,
    _read_dataset,
    dumps_json,
    read_patients,
)

__all__ = ["compare_patient", "fit", "sensitivity", "simulate"]


def compare_patient(args: argparse.Namespace) -> int:
    """``compare-patient --model NAME`` for a library model
    (:mod:`asuc_bayes.studies.library_compare`)."""
    from asuc_bayes.inference import SamplerOptions
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.spec import MissingCovariateError, load_declaration
    from asuc_bayes.studies.library_compare import (
        compare_library_patient,
        format_library_comparison,
    )

    try:
        declaration = load_declaration(args.model, variants=args.variant or ())
        patients, _, units = _read_dataset(
            args, declaration.default_infusion_duration_day, collect_errors=False
        )
        options = SamplerOptions(
            chains=args.chains,
            draws=args.draws or 1000,
            tune=args.tune,
            target_accept=args.target_accept,
            sampler="imh" if args.sampler == "imh" else "nuts",
        )
        comparisons = [
            compare_library_patient(
                declaration,
                patient,
                baseline_covariates(patient, declaration, units),
                random_seed=patient_seed(args.seed, patient.id),
                options=options,
            )
            for patient in patients
        ]
    except MissingCovariateError as exc:
        return _error(f"{exc} (a NONMEM dataset gives it as a column, e.g. ALB or ADA)")
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    if args.format == "json":
        payload = {
            "model": {
                "name": declaration.name,
                "sha256": _file_sha256(declaration.path),
                "variants": list(declaration.variants),
                "structure": declaration.structure,
            },
            "patients": [c.to_json() for c in comparisons],
        }
        print(dumps_json(payload))
    else:
        print(format_library_comparison(declaration, comparisons))
    unconverged = [c.forecast.id for c in comparisons if c.forecast.status != "ok"]
    return _exit_for_unconverged(unconverged, args)


def sensitivity(args: argparse.Namespace) -> int:
    """``sensitivity --model NAME`` for a library model
    (:mod:`asuc_bayes.studies.library_sensitivity`)."""
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.spec import MissingCovariateError, load_declaration
    from asuc_bayes.studies.library_sensitivity import (
        format_library_sensitivity,
        run_library_sensitivity,
    )
    from asuc_bayes.studies.sensitivity import write_sensitivity

    if args.population_fit is not None:
        return _error(
            "--population-fit: not available with a library model (a fit of the default "
            f"model); fix: leave it out, or use --model {DEFAULT_MODEL}"
        )
    try:
        declaration = load_declaration(args.model, variants=args.variant or ())
        patients, _, units = _read_dataset(
            args, declaration.default_infusion_duration_day, collect_errors=False
        )
        results = [
            run_library_sensitivity(
                declaration,
                patient,
                baseline_covariates(patient, declaration, units),
                random_seed=patient_seed(args.seed, patient.id),
                structural=args.structural,
                impute=args.impute,
                covariate_units=units,
            )
            for patient in patients
        ]
    except MissingCovariateError as exc:
        return _error(f"{exc} (a NONMEM dataset gives it as a column, e.g. ALB or ADA)")
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    if args.out:
        written = write_sensitivity(results, args.out)
        print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    if args.format == "json":
        payload = {
            "model": {
                "name": declaration.name,
                "sha256": _file_sha256(declaration.path),
                "variants": list(declaration.variants),
                "structure": declaration.structure,
            },
            "patients": [r.to_json() for r in results],
        }
        print(dumps_json(payload))
    else:
        print(format_library_sensitivity(declaration, results))
    return EXIT_OK


def simulate(args: argparse.Namespace) -> int:
    """``simulate --model NAME`` for a library model
    (:mod:`asuc_bayes.studies.library_simulate`)."""
    from asuc_bayes.spec import load_declaration
    from asuc_bayes.studies.library_simulate import simulate_library_cohort
    from asuc_bayes.studies.simulate import write_cohort

    if args.population_uncertainty:
        return _error(
            "--population-uncertainty: not available with a library model (its parameters' "
            f"uncertainty is not declared for sampling); fix: leave it out, or --model "
            f"{DEFAULT_MODEL}"
        )
    try:
        declaration = load_declaration(args.model, variants=args.variant or ())
        cohort = simulate_library_cohort(declaration, args.n, args.seed, outcome=args.outcome)
    except (ModelSpecError, ValueError) as exc:
        return _error(str(exc))
    note = (
        f"asuc-bayes: note: cohort from {declaration.name}; ALB (if any) written in g/L "
        "(read it with --units ALB=g/L under a g/dL model)"
    )
    if cohort.truth.get("extrapolated_outcome") is not None and bool(
        cohort.truth["extrapolated_outcome"].any()
    ):
        note += "; colectomy records from the ASUC outcome model, EXTRAPOLATED to this model"
    if args.out:
        data_path, truth_path = write_cohort(cohort, args.out)
        print(note, file=sys.stderr)
        print(f"asuc-bayes: cohort written to {data_path}, truth to {truth_path}", file=sys.stderr)
    else:
        import tempfile

        from asuc_bayes.data.dataset import write_nonmem_csv

        with tempfile.TemporaryDirectory() as folder:
            path = write_nonmem_csv(cohort.patients, Path(folder) / "cohort.csv")
            sys.stdout.write(path.read_text())
        print(note, file=sys.stderr)
    return EXIT_OK


def fit(args: argparse.Namespace) -> int:
    """``fit --model NAME`` for a PK-only library model
    (:mod:`asuc_bayes.inference.library_population`)."""
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.library_population import (
        LibraryCohortData,
        LibraryFitSettings,
        fit_library_population,
        format_library_fit,
    )
    from asuc_bayes.spec import MissingCovariateError, load_declaration

    for option, given in (
        ("--two-stage", args.two_stage),
        ("--prior", args.prior != "weak"),
        ("--sampler", args.sampler != "nutpie"),
    ):
        if given:
            return _error(
                f"{option}: not available with a library model (popPK with the priors of "
                "asuc_bayes.inference.library_population, sampled by nutpie); fix: leave it out"
            )
    try:
        declaration = load_declaration(args.model, variants=args.variant or ())
        dataset = read_patients(
            Path(args.data),
            default_infusion_duration_day=declaration.default_infusion_duration_day,
            units=args.units,
        )
        units = dict(dataset.units)
        patients = list(dataset.patients)
        covariates = [baseline_covariates(p, declaration, units) for p in patients]
        data = LibraryCohortData.from_patients(declaration, patients, covariates)
        settings = LibraryFitSettings(
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            **({"target_accept": args.target_accept} if args.target_accept else {}),
        )
    except MissingCovariateError as exc:
        return _error(f"{exc} (a NONMEM dataset gives it as a column, e.g. ALB or ADA)")
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    if any(p.events for p in patients):
        print(
            f"asuc-bayes: note: colectomy records are not fitted: {declaration.name} has no "
            "outcome model (popPK only)",
            file=sys.stderr,
        )
    result = fit_library_population(data, settings=settings, random_seed=args.seed)
    summary = result.summary()
    if args.format == "json":
        print(dumps_json(summary))
    else:
        print(format_library_fit(summary))
    if args.out:
        result.save(args.out)
        print(f"asuc-bayes: fit written to {args.out}", file=sys.stderr)
    if summary["status"] != "ok" and not args.allow_unconverged:
        print(
            "asuc-bayes: the population posterior failed the convergence gates: do not use it "
            "as it is (rerun with more --tune/--draws or a higher --target-accept, or pass "
            "--allow-unconverged)",
            file=sys.stderr,
        )
        return EXIT_UNCONVERGED
    return EXIT_OK
