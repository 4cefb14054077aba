"""The options several commands share (argparse groups): data, sampling, model, engine,
dose decision, and the small flags (``--quiet``, ``--allow-unconverged``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asuc_bayes.decisions.dosing_defaults import DEFAULT_MIN_MG_PER_KG, DEFAULT_TURNAROUND_DAY
from asuc_bayes.interfaces.cli.arguments import day_list, model_list
from asuc_bayes.spec.config import DEFAULT_MODEL


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The patients: a data file or ``--example``, ``--id``, and the NONMEM layout options."""
    parser.add_argument("data", nargs="?", help="NONMEM-style .csv or patient .toml/.yaml")
    parser.add_argument("--example", action="store_true", help="use the bundled examples")
    parser.add_argument(
        "--id", action="append", dest="ids", metavar="ID", help="only this patient (repeatable)"
    )
    layout = parser.add_argument_group("NONMEM dataset layout (CSV)")
    layout.add_argument(
        "--ignore",
        choices=("#", "C", "@"),
        default="#",
        help="skip rows as NONMEM's IGNORE=: '#' comment rows (default), 'C' rows starting "
        "with C, '@' rows starting with a letter or @",
    )
    layout.add_argument(
        "--input",
        metavar="COLUMNS",
        help="$INPUT-style column list for a file whose header differs or is absent, e.g. "
        '"ID TIME AMT RATE WT CRP DV EVID CMT MDV" (NAME=DROP or DROP for unused columns)',
    )
    layout.add_argument(
        "--time-unit",
        choices=("days", "hours"),
        default="days",
        help="unit of TIME, DUR and II (RATE per unit) (days)",
    )
    layout.add_argument(
        "--units",
        action="append",
        metavar="NAME=UNIT",
        help="unit of a covariate column, e.g. ALB=g/L (repeatable; units the model knows only)",
    )


def add_covariates_option(parser: argparse.ArgumentParser) -> None:
    """``--covariates {nonmem,locf}``: how per-record covariate values hold over time (library
    models whose model file declares a covariate ``time_varying``); checked by
    :data:`asuc_bayes.interfaces.options.RULES`."""
    parser.add_argument(
        "--covariates",
        default=None,
        metavar="{nonmem,locf}",
        help="time-varying covariates of a library model: nonmem, a record's values hold over "
        "the interval that ends at it (default, as NONMEM); locf, from the record onward",
    )


def add_impute_option(parser: argparse.ArgumentParser) -> None:
    """``--impute reference|NAME=VALUE`` (repeatable): explicit imputation of the covariates a
    library model needs and a patient lacks (see :func:`.arguments.imputation`)."""
    parser.add_argument(
        "--impute",
        action="append",
        default=None,
        metavar="reference|NAME=VALUE",
        help="library models: impute a covariate the model needs and the patient lacks, "
        "reported in the output: 'reference' (each at the model's reference value), or NAME=VALUE "
        "in the model's unit, or NAME=reference (repeatable); default: an error naming it",
    )


def add_sampling_options(parser: argparse.ArgumentParser, population: bool = False) -> None:
    """Draws, tuning, chains, seed, target acceptance, sampler and the model options; a
    ``population`` fit has an independence sampler only with ``--method marginal`` (the other
    methods sample hundreds of dimensions)."""
    parser.add_argument(
        "--draws",
        type=int,
        default=1000 if population else None,
        help=(
            "draws per chain (1000; 2000 for a library popPK fit; at most 100000)"
            if population
            else "draws per chain (default: adaptive, 1000 extended up to 8000 until the tail "
            "quantiles' MCSE is <= 0.05 SD; at most 100000)"
        ),
    )
    parser.add_argument(
        "--tune",
        type=int,
        default=1000,
        help=(
            "NUTS warm-up steps per chain (300 with --method marginal, whose default imh "
            "sampler burns in 100 proposals of its own and uses --tune only for a fit it "
            "hands to NUTS; 1000 otherwise; at most 100000)"
            if population
            else "NUTS warm-up steps per chain (1000; at most 100000)"
        )
        + (
            ""
            if population
            else "; the default imh sampler uses its own 50-step burn-in and --tune only for "
            "a patient it hands to NUTS (diagnostics.tune reports the tuning done by the "
            "sampler that produced the draws)"
        ),
    )
    parser.add_argument("--chains", type=int, default=4, help="chains (4; 2 to 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--target-accept",
        type=float,
        default=0.95,
        help=(
            "NUTS target acceptance (0.8 with --method marginal, 0.99 for a library popPK "
            "fit, 0.995 otherwise; one run)"
            if population
            else "NUTS target acceptance (0.95; escalated to 0.99 on failure)"
        ),
    )
    if population:
        parser.add_argument(
            "--sampler",
            choices=("imh", "nutpie", "pymc"),
            default=None,
            help="imh (--method marginal only): independence Metropolis-Hastings from the "
            "Laplace approximation of the population parameters, NUTS (nutpie) if its "
            "importance weights' Pareto k-hat exceeds 0.7 or it fails a gate; nutpie: NUTS; "
            "pymc: PyMC's own NUTS (default: imh with --method marginal, nutpie otherwise)",
        )
        parser.add_argument(
            "--adaptation",
            choices=("diag", "low_rank"),
            default=None,
            help="nutpie's mass matrix: diag, or low_rank (diagonal plus the posterior's "
            "leading correlations; the default of --method marginal, diag otherwise)",
        )
    else:
        parser.add_argument(
            "--sampler",
            choices=("imh", "nutpie", "pymc"),
            default="imh",
            help="imh: independence Metropolis-Hastings from the Laplace approximation, NUTS "
            "if it fails a gate (default); nutpie: NUTS; pymc: PyMC's own NUTS",
        )
    add_model_options(parser)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` (name or file) and ``--variant`` (repeatable)."""
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name or .toml file ({DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help="model-file variant to apply (repeatable)",
    )


def add_model_average_option(parser: argparse.ArgumentParser) -> None:
    """``--model-average A,B,C``: average over library models instead of ``--model``."""
    parser.add_argument(
        "--model-average",
        type=model_list,
        metavar="A,B,C",
        help="average over these library models (at least two), weighted per patient by "
        "posterior model probabilities (marginal likelihood of the patient's concentrations, "
        "equal prior weights); AIC weights beside; replaces --model",
    )


def add_engine_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--workers N | --scheduler ADDRESS: where the per-patient (per-replicate) work runs."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes of a local Dask cluster (1: this process, the default). "
        "Starting the cluster costs ~20-30 s: on 2 cores 100 patients took 31-43 s on 2 workers "
        "against 14-16 s in one process, 1000 patients 39 s against 51 s; workers pay off from "
        "several hundred patients (or for long per-patient work, e.g. compare, sbc)",
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster (tcp://host:8786)"
    )


def add_structural_options(parser: argparse.ArgumentParser) -> None:
    """Options of the structural rows of ``sensitivity`` (the other library models)."""
    group = parser.add_argument_group("structural alternatives (the other library models)")
    group.add_argument(
        "--impute",
        choices=("reference",),
        help="impute covariates a library model needs and the patient lacks at the model's "
        "reference values (reported in the row); default: a row naming the missing covariates",
    )
    group.add_argument(
        "--no-structural",
        dest="structural",
        action="store_false",
        help="leave out the structural rows",
    )


def add_decision_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The dose decision (target, criterion, dose day, vials, limits); returns its group."""
    group = parser.add_argument_group("dose decision")
    group.add_argument("--target-risk", type=float, default=0.20, help="target risk (0.20)")
    group.add_argument("--criterion", choices=("mean", "probability"), default="mean")
    group.add_argument(
        "--probability", type=float, default=0.8, help="P(risk <= target) required (0.8)"
    )
    group.add_argument("--dose-time", type=float, default=14.0, help="day of the dose (14)")
    group.add_argument("--vial-mg", type=float, default=100.0, help="vial size, mg (100)")
    group.add_argument("--max-mg-kg", type=float, default=20.0, help="dose cap, mg/kg (20)")
    group.add_argument(
        "--min-mg-kg",
        type=float,
        default=DEFAULT_MIN_MG_PER_KG,
        help=f"smallest dose, mg/kg ({DEFAULT_MIN_MG_PER_KG:g}, the label's dose)",
    )
    return group


def add_dosing_options(parser: argparse.ArgumentParser) -> None:
    """The dose decision and what ``optimize`` plans beyond it (timing, next sample, trough,
    report)."""
    group = add_decision_options(parser)
    group.add_argument(
        "--timing-days",
        type=day_list,
        help="candidate days for that infusion (default 7:14, not before the last sample)",
    )
    group.add_argument(
        "--timing-dose-mg", type=float, help="dose for the timing search (the recommended)"
    )
    group.add_argument(
        "--next-sample",
        action="store_true",
        help="pre-posterior analysis: value of one more sample on candidate days",
    )
    group.add_argument(
        "--sample-days", type=day_list, help="candidate sampling days (implies --next-sample)"
    )
    group.add_argument(
        "--n-simulations", type=int, default=400, help="simulated samples per day (400)"
    )
    group.add_argument("--lloq", type=float, default=0.3, help="assay LLOQ, mg/L (0.3)")
    group.add_argument("--uloq", type=float, default=float("inf"), help="assay ULOQ, mg/L")
    group.add_argument(
        "--turnaround-days",
        type=float,
        default=DEFAULT_TURNAROUND_DAY,
        help=f"assay turnaround, days ({DEFAULT_TURNAROUND_DAY:g}): a sample must be drawn "
        "this long before the dose it informs",
    )
    group.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="also write a self-contained HTML report per patient (FILE-<ID>.html for several)",
    )
    group.add_argument("--trough-target", type=float, help="trough target (mg/L): maintenance")
    group.add_argument(
        "--interval-days", type=float, default=56.0, help="maintenance interval (56)"
    )
    group.add_argument("--trough-dose-mg", type=float, help="dose for the interval search")
    group.add_argument(
        "--maintenance-doses", type=int, default=1, help="infusions before the trough (1)"
    )


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bar."""
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar on stderr (there is none either when stderr is not a terminal)",
    )


def add_unconverged_option(parser: argparse.ArgumentParser) -> None:
    """``--allow-unconverged``: exit 0 with an unconverged posterior."""
    parser.add_argument(
        "--allow-unconverged",
        action="store_true",
        help="exit 0 even when a posterior fails the convergence gates",
    )


def add_fit_unconverged_option(parser: argparse.ArgumentParser) -> None:
    """``--allow-unconverged``: use a population fit that failed its gates."""
    parser.add_argument(
        "--allow-unconverged",
        action="store_true",
        help="use a population fit that failed its own convergence gates (refused otherwise)",
    )
