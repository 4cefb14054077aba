"""The population commands: ``fit`` (default or library model), ``evaluate`` (predictive
checks and ROC of a fit) and ``sbc`` (simulation-based calibration of the fit)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asuc_bayes.data.dataset import read_patients
from asuc_bayes.inference.engine import Engine, EngineError
from asuc_bayes.interfaces.cli.arguments import FIT_METHODS, fit_method, library_fit_settings
from asuc_bayes.interfaces.cli.common import (
    EXIT_OK,
    EXIT_UNCONVERGED,
    INPUT_ERRORS,
    Progress,
    error,
    identified_fit,
    input_error,
)
from asuc_bayes.interfaces.output import dumps_json
from asuc_bayes.spec.config import ModelSpecError, is_library_declaration, load_model


def _finish_fit(result, args: argparse.Namespace, text: Callable[[dict[str, Any]], str]) -> int:
    """The outputs of ``fit``: its summary (JSON, or ``text`` of it), ``--out``, and the exit
    code of the convergence gates."""
    summary = result.summary()
    if args.format == "json":
        print(dumps_json(summary))
    else:
        print(text(summary))
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


def run_fit(args: argparse.Namespace) -> int:
    """``fit``: the hierarchical popPK + time-to-colectomy fit of a cohort."""
    if is_library_declaration(args.model):
        return fit_library(args)
    from asuc_bayes.data.dataset import read_cohort
    from asuc_bayes.inference.population import default_settings, fit_population, published_values
    from asuc_bayes.interfaces.report import format_fit

    try:
        spec = load_model(args.model, variants=args.variant)
        spec.priors(args.prior)
        method = fit_method(args)
        settings = default_settings(
            method,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            sampler=args.sampler,
            target_accept=args.target_accept,
            adaptation=args.adaptation,
        )
        cohort = read_cohort(
            args.data, default_infusion_duration_day=spec.pk.default_infusion_duration_day
        )
    except INPUT_ERRORS as exc:
        return error(str(exc))
    for note in cohort.notes:
        print(f"asuc-bayes: note: {note}", file=sys.stderr)
    result = fit_population(
        cohort.patients,
        spec,
        prior=args.prior,
        method=method,
        settings=settings,
        random_seed=args.seed,
    )
    return _finish_fit(result, args, lambda summary: format_fit(summary, published_values(spec)))


def fit_library(args: argparse.Namespace) -> int:
    """``fit --model NAME`` for a PK-only library model
    (:mod:`asuc_bayes.inference.library_population`)."""
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.library_population import (
        LibraryCohortData,
        fit_library_population,
        format_library_fit,
    )
    from asuc_bayes.spec import load_declaration

    for option, given in (
        ("--two-stage", args.two_stage),
        ("--method", args.method is not None),
        ("--prior", args.prior != "weak"),
        ("--sampler", args.sampler not in (None, "nutpie")),
    ):
        if given:
            return error(
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
        settings = library_fit_settings(args)
    except INPUT_ERRORS as exc:  # a missing covariate: where it comes from
        return input_error(exc)
    if any(p.events for p in patients):
        print(
            f"asuc-bayes: note: colectomy records are not fitted: {declaration.name} has no "
            "outcome model (popPK only)",
            file=sys.stderr,
        )
    result = fit_library_population(data, settings=settings, random_seed=args.seed)
    return _finish_fit(result, args, format_library_fit)


def run_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: pcVPC, KM-VPC, ROC/AUROC and Youden threshold of a population fit."""
    from asuc_bayes.inference.population import load_fit
    from asuc_bayes.inference.population_draws import spec_of_fit
    from asuc_bayes.interfaces.report import format_evaluation
    from asuc_bayes.studies.evaluation import evaluate_fit, write_evaluation

    try:
        tree = load_fit(args.fit)
        fit = identified_fit(args.fit, args.allow_unconverged, "evaluate", tree)
        spec = spec_of_fit(tree)
    except (ModelSpecError, ValueError, OSError) as exc:
        return error(str(exc))
    result = evaluate_fit(
        tree,
        spec,
        replicates=args.replicates,
        bootstrap=args.bootstrap,
        random_seed=args.seed,
        ln_ratio_source=args.ln_ratio_source,
    )
    result["metrics"]["population_fit"] = fit.to_json()
    written = write_evaluation(result, args.out)
    if args.format == "json":
        print(dumps_json(result["metrics"]))
    else:
        print(fit.header() + "\n" + format_evaluation(result["metrics"]))
    print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    return EXIT_OK


def run_sbc(args: argparse.Namespace) -> int:
    """``sbc``: simulation-based calibration of the population fit (rank histograms)."""
    from asuc_bayes.inference.population import PopulationSettings
    from asuc_bayes.interfaces.report import format_sbc
    from asuc_bayes.interfaces.sbc_output import write_sbc
    from asuc_bayes.studies.sbc import PopulationReplicate, rank_uniformity, run_population_sbc

    try:
        spec = load_model(args.model, variants=args.variant)
        settings = PopulationSettings(
            draws=args.draws, tune=args.tune, chains=args.chains, target_accept=args.target_accept
        )
        method = FIT_METHODS[args.method]
        PopulationReplicate(spec, args.subjects, prior=args.prior, settings=settings, method=method)
        if settings.chains * settings.draws < args.rank_draws:
            raise ValueError(
                f"--chains x --draws = {settings.chains * settings.draws} draws cannot be "
                f"thinned to --rank-draws {args.rank_draws}: raise --draws or lower --rank-draws"
            )
        if args.bins is not None:
            rank_uniformity([], args.rank_draws, args.bins)  # checks --bins against L
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
    except (ModelSpecError, ValueError, EngineError) as exc:
        return error(str(exc).replace("n_bins", "--bins"))
    try:
        with Progress("sbc", args.replicates, args.quiet) as progress:
            result = run_population_sbc(
                spec,
                args.replicates,
                args.subjects,
                prior=args.prior,
                settings=settings,
                method=method,
                n_rank_draws=args.rank_draws,
                random_seed=args.seed,
                engine=engine,
                progress=progress,
            )
    except EngineError as exc:
        return error(str(exc))
    written = write_sbc(result, args.out, n_bins=args.bins)
    print(format_sbc(result.table(args.bins), result.counts, result.dataset.attrs))
    print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    return EXIT_OK
