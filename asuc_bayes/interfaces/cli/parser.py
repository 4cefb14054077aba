"""The argument parser of ``asuc-bayes``: one sub-parser per command (the options several
commands share are in :mod:`asuc_bayes.interfaces.cli.option_groups`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asuc_bayes.interfaces.cli.arguments import FIT_METHODS, SCENARIO_NAMES
from asuc_bayes.interfaces.cli.examples import (
    APP_EXAMPLES,
    COMPARE_EXAMPLES,
    COMPARE_PATIENT_EXAMPLES,
    EVALUATE_EXAMPLES,
    FIT_EXAMPLES,
    FORECAST_EXAMPLES,
    MAIN_EXAMPLES,
    OPTIMIZE_EXAMPLES,
    SBC_EXAMPLES,
    SENSITIVITY_EXAMPLES,
    SIMULATE_EXAMPLES,
    VALIDATE_EXAMPLES,
)
from asuc_bayes.interfaces.cli.option_groups import (
    add_covariates_option,
    add_data_options,
    add_decision_options,
    add_dosing_options,
    add_engine_options,
    add_fit_unconverged_option,
    add_impute_option,
    add_model_average_option,
    add_model_options,
    add_quiet_option,
    add_sampling_options,
    add_structural_options,
    add_unconverged_option,
)
from asuc_bayes.spec.config import DEFAULT_MODEL

FORMAT_HELP = (
    "table (readable), json (one JSON object, the contract in the README) or csv (one row per "
    "patient, columns in the README)"
)


def add_command(
    sub: argparse._SubParsersAction, name: str, help_text: str, epilog: str
) -> argparse.ArgumentParser:
    """The sub-parser of command ``name`` (``help_text`` in the command list, ``epilog`` its
    examples, kept as written)."""
    return sub.add_parser(
        name, help=help_text, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (``asuc-bayes --help``)."""
    parser = argparse.ArgumentParser(
        prog="asuc-bayes",
        description="Full-Bayesian infliximab forecasting and 90-day colectomy risk in ASUC.",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    forecast = add_command(
        sub,
        "forecast",
        "posterior of CL, V, AUC_w2-4, ln(AUC/CL) and 90-day colectomy risk per patient",
        FORECAST_EXAMPLES,
    )
    add_data_options(forecast)
    add_covariates_option(forecast)
    add_impute_option(forecast)
    forecast.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help=FORMAT_HELP
    )
    add_sampling_options(forecast)
    add_model_average_option(forecast)
    forecast.add_argument("--out", type=Path, help="write the results DataTree (netCDF)")
    forecast.add_argument(
        "--report",
        type=Path,
        metavar="FILE.html",
        help="write a self-contained HTML report (several patients: FILE-<ID>.html each)",
    )
    add_quiet_option(forecast)
    forecast.add_argument(
        "--population-draws",
        type=int,
        default=200,
        metavar="S",
        help="with --model FIT.nc: population posterior draws integrated over (200)",
    )
    add_unconverged_option(forecast)
    batch = forecast.add_argument_group(
        "batch",
        "many patients: a bad patient becomes an error row instead of stopping the run "
        "(exit code 2 at the end); any of these options selects the batch path",
    )
    add_engine_options(batch)
    batch.add_argument(
        "--checkpoint",
        type=Path,
        metavar="DIR",
        help="record finished patients in DIR; a rerun with the same settings resumes there",
    )

    compare_patient = add_command(
        sub,
        "compare-patient",
        "MAP (the published tool) against the full posterior for each patient",
        COMPARE_PATIENT_EXAMPLES,
    )
    add_data_options(compare_patient)
    add_impute_option(compare_patient)
    compare_patient.add_argument("--format", choices=("table", "json"), default="table")
    add_sampling_options(compare_patient)
    add_quiet_option(compare_patient)
    add_unconverged_option(compare_patient)

    optimize = add_command(
        sub,
        "optimize",
        "dose (and timing) to a target 90-day colectomy risk under uncertainty",
        OPTIMIZE_EXAMPLES,
    )
    add_data_options(optimize)
    add_impute_option(optimize)
    optimize.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help=FORMAT_HELP
    )
    add_dosing_options(optimize)
    add_sampling_options(optimize)
    add_model_average_option(optimize)
    add_unconverged_option(optimize)
    add_quiet_option(optimize)
    add_engine_options(
        optimize.add_argument_group("batch", "with --model-average: many patients on Dask")
    )

    sensitivity = add_command(
        sub,
        "sensitivity",
        "how risk, P(high risk) and the recommended dose move under alternative assumptions",
        SENSITIVITY_EXAMPLES,
    )
    add_data_options(sensitivity)
    sensitivity.add_argument("--format", choices=("table", "json"), default="table")
    sensitivity.add_argument("--out", type=Path, help="directory for figures (PNG) and tables")
    sensitivity.add_argument(
        "--grid-points", type=int, default=201, help="quadrature points per axis (201)"
    )
    sensitivity.add_argument("--seed", type=int, default=0, help="random seed (0)")
    sensitivity.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name or .toml file ({DEFAULT_MODEL})"
    )
    sensitivity.add_argument(
        "--variant", action="append", default=[], metavar="NAME", help="variant (repeatable)"
    )
    sensitivity.add_argument(
        "--population-draws",
        type=int,
        default=200,
        metavar="S",
        help="population draws per population-uncertainty alternative (200; 0: none)",
    )
    sensitivity.add_argument(
        "--population-fit",
        type=Path,
        metavar="FIT.nc",
        help="also propagate a fitted population posterior (asuc-bayes fit --out)",
    )
    add_structural_options(sensitivity)
    add_decision_options(sensitivity)
    add_fit_unconverged_option(sensitivity)

    compare = add_command(
        sub,
        "compare",
        "simulation study: MAP + Laplace against the full posterior under sampling scenarios",
        COMPARE_EXAMPLES,
    )
    compare.add_argument("--n", type=int, default=500, help="virtual patients per scenario")
    compare.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIO_NAMES,
        help="scenario to run (repeatable; all when none is given)",
    )
    compare.add_argument("--format", choices=("table", "json"), default="table")
    compare.add_argument("--out", type=Path, help="directory for figures (PNG) and tables (CSV)")
    add_quiet_option(compare)
    add_sampling_options(compare)
    add_engine_options(compare)

    app = add_command(
        sub,
        "app",
        "the web app (Shiny): enter a patient, see the forecast, download the report",
        APP_EXAMPLES,
    )
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    app.add_argument("--port", type=int, default=8000, help="port (8000)")
    add_sampling_options(app)
    app.add_argument("--quiet", action="store_true", help="no start-up messages on stderr")
    app.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes computing forecasts (default: one per core)",
    )
    app.add_argument(
        "--debug",
        action="store_true",
        help="print tracebacks of unexpected errors (they may show patient values)",
    )
    add_population_commands(sub)
    add_models_command(sub)
    add_validate_command(sub)
    return parser


def add_population_commands(sub: argparse._SubParsersAction) -> None:
    """``simulate``, ``fit``, ``evaluate`` and ``sbc``: the population commands."""
    simulate = add_command(
        sub,
        "simulate",
        "a Table-1-like virtual cohort (NONMEM-style CSV with colectomy records + truth)",
        SIMULATE_EXAMPLES,
    )
    simulate.add_argument("--n", type=int, default=72, help="patients (72)")
    simulate.add_argument("--seed", type=int, default=0, help="random seed (0)")
    simulate.add_argument(
        "--out",
        type=Path,
        help="CSV to write (and NAME.truth.csv); the CSV goes to stdout without it",
    )
    simulate.add_argument(
        "--population-uncertainty",
        action="store_true",
        help="draw the population parameters from their published uncertainty (RSE)",
    )
    simulate.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name or .toml file ({DEFAULT_MODEL})"
    )
    simulate.add_argument("--variant", action="append", default=[], metavar="NAME")
    simulate.add_argument(
        "--no-outcome",
        dest="outcome",
        action="store_false",
        help="library models: no colectomy records (default: the model's outcome model, or the "
        "ASUC one attached and flagged extrapolated)",
    )
    add_fit_command(sub)
    add_evaluate_command(sub)
    add_sbc_command(sub)


def add_fit_command(sub: argparse._SubParsersAction) -> None:
    """``fit``: a population fit of a cohort."""
    fit = add_command(
        sub,
        "fit",
        "hierarchical popPK + Weibull time-to-colectomy fit of a cohort (NUTS)",
        FIT_EXAMPLES,
    )
    fit.add_argument("data", help="NONMEM-style .csv (or .toml/.yaml) with one DVID=2 record each")
    fit.add_argument("--prior", default="weak", help="prior set of the model file: weak|published")
    fit.add_argument(
        "--two-stage",
        action="store_true",
        help="PK posterior first, then the Weibull model on it (= --method two-stage)",
    )
    fit.add_argument(
        "--method",
        choices=tuple(FIT_METHODS),
        default=None,
        help="marginal (default): each subject's random effects integrated out by quadrature, "
        "the population parameters by independence Metropolis-Hastings from the Laplace "
        "approximation (1000 draws per chain; NUTS, 300 tuning steps, target acceptance 0.8, "
        "low-rank mass matrix, when it is refused), each eta drawn per posterior draw; full: "
        "the joint model with every eta sampled by NUTS (1000 after 1000, 0.995); two-stage. "
        "A PK-only library model (--model NAME) is fitted as popPK, every eta sampled (2000 "
        "draws after 1000, 0.99)",
    )
    fit.add_argument("--format", choices=("table", "json"), default="table")
    fit.add_argument("--out", type=Path, help="write the fit DataTree (netCDF)")
    fit.add_argument(
        "--units",
        action="append",
        metavar="NAME=UNIT",
        help="library models: unit of a covariate column, e.g. ALB=g/L (repeatable)",
    )
    add_sampling_options(fit, population=True)
    fit.set_defaults(target_accept=None, draws=None, tune=None)
    add_unconverged_option(fit)


def add_evaluate_command(sub: argparse._SubParsersAction) -> None:
    """``evaluate``: predictive checks and ROC of a population fit."""
    evaluate = add_command(
        sub,
        "evaluate",
        "pcVPC, KM-VPC by risk group, ROC/AUROC, Youden threshold of a population fit",
        EVALUATE_EXAMPLES,
    )
    evaluate.add_argument("fit", type=Path, help="a fit written by asuc-bayes fit --out")
    evaluate.add_argument("--out", type=Path, required=True, help="folder for figures and tables")
    evaluate.add_argument("--replicates", type=int, default=200, help="VPC replicates (200)")
    evaluate.add_argument("--bootstrap", type=int, default=2000, help="bootstrap samples (2000)")
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (0)")
    evaluate.add_argument("--format", choices=("table", "json"), default="table")
    evaluate.add_argument(
        "--ln-ratio-source",
        choices=("pk_only", "joint"),
        default="pk_only",
        help="ln(AUC/CL) for ROC and risk groups: PK model alone, as the paper (pk_only), "
        "or the joint fit's posterior, informed by each outcome (joint)",
    )
    add_fit_unconverged_option(evaluate)


def add_sbc_command(sub: argparse._SubParsersAction) -> None:
    """``sbc``: simulation-based calibration of the population fit."""
    sbc = add_command(
        sub,
        "sbc",
        "simulation-based calibration of the population fit (rank histograms)",
        SBC_EXAMPLES,
    )
    sbc.add_argument("--replicates", type=int, required=True, help="replicates (cohorts)")
    sbc.add_argument("--subjects", type=int, required=True, help="subjects per cohort")
    sbc.add_argument("--out", type=Path, required=True, help="folder for ranks, tables, figure")
    sbc.add_argument(
        "--prior",
        default="published",
        help="prior set of the model file, drawn from and fitted with: published|weak",
    )
    sbc.add_argument(
        "--method",
        choices=tuple(FIT_METHODS),
        default="marginal",
        help="the fits' method, as in fit --method (marginal)",
    )
    sbc.add_argument("--draws", type=int, default=500, help="draws per chain (500)")
    sbc.add_argument("--tune", type=int, default=500, help="tuning steps per chain (500)")
    sbc.add_argument("--chains", type=int, default=2, help="chains (2)")
    sbc.add_argument("--target-accept", type=float, default=0.95, help="NUTS target (0.95)")
    sbc.add_argument(
        "--rank-draws", type=int, default=99, help="L: thinned draws each rank is taken among (99)"
    )
    sbc.add_argument("--bins", type=int, help="histogram bins (default: ~5 replicates per bin)")
    sbc.add_argument("--seed", type=int, default=0, help="random seed (0)")
    add_engine_options(sbc)
    add_model_options(sbc)
    add_quiet_option(sbc)


def add_models_command(sub: argparse._SubParsersAction) -> None:
    """``models``: the library of published models."""
    models = sub.add_parser(
        "models",
        help="the library of published infliximab models (population, covariates, source)",
    )
    models.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="markdown: the model cards of docs/LIBRARY.md (every value with its source)",
    )


def add_validate_command(sub: argparse._SubParsersAction) -> None:
    """``validate``: external validation of library models on a cohort."""
    validate = add_command(
        sub,
        "validate",
        "external validation of library models on a cohort, and model averaging",
        VALIDATE_EXAMPLES,
    )
    add_data_options(validate)
    validate.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        required=True,
        help="a library model (repeatable; 'asuc-bayes models' lists them)",
    )
    validate.add_argument("--seed", type=int, default=0, help="random seed (0)")
    validate.add_argument("--format", choices=("table", "json"), default="table")
    validate.add_argument(
        "--out", type=Path, help="folder for validation.json and the HTML report validation.html"
    )
    add_engine_options(validate)
    add_quiet_option(validate)
