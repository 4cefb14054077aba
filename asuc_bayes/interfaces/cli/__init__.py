"""Command-line interface: ``asuc-bayes COMMAND`` (see ``asuc-bayes --help``).

The CLI only parses arguments, calls the public API and formats its results.

Exit codes: 0 success; 1 at least one patient's posterior is unconverged (divergences,
R-hat > 1.01 or bulk ESS < 400) and ``--allow-unconverged`` was not given; 2 bad input,
bad options or a broken model file.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from asuc_bayes.data.dataset import InputError, example_path, read_patients
from asuc_bayes.decisions.dosing_defaults import DEFAULT_MIN_MG_PER_KG, DEFAULT_TURNAROUND_DAY
from asuc_bayes.errors import AsucBayesError
from asuc_bayes.inference.engine import Engine, EngineError
from asuc_bayes.interfaces.options import OptionError, check_options
from asuc_bayes.interfaces.output import (
    DOSING_COLUMNS,
    FORECAST_COLUMNS,
    dosing_row,
    dumps_json,
    forecast_row,
    write_csv,
)

# Only light modules here (NumPy, PyYAML): each command imports what it needs in its handler,
# so that --help, argument errors and a forecast from cached densities start in a fraction of
# a second (tests/test_startup.py checks that PyMC, PyTensor and Dask are not imported).
from asuc_bayes.spec.config import (
    DEFAULT_MODEL,
    ModelSpecError,
    is_library_declaration,
    load_model,
)

if TYPE_CHECKING:  # pragma: no cover
    from asuc_bayes.decisions.dosing import DosingRequest
    from asuc_bayes.inference.forecast import SamplerSettings
    from asuc_bayes.spec.config import ModelSpec

EXIT_OK, EXIT_UNCONVERGED, EXIT_INPUT = 0, 1, 2

FORECAST_EXAMPLES = """examples:
  asuc-bayes forecast --example                    bundled example patients, table
  asuc-bayes forecast patients.csv --format json   NONMEM-style CSV, JSON on stdout
  asuc-bayes forecast patient.toml --id P01 --out p01.nc --seed 7
  asuc-bayes forecast patients.csv --variant log_crp --variant reference_weight_63kg
  asuc-bayes forecast patients.csv --report report.html   one HTML report per patient
    (with the week-2 dose to a 20 % mean risk; 'asuc-bayes optimize' for other targets)
  asuc-bayes forecast patients.csv --model fit.nc   integrate over a population fit's posterior
  asuc-bayes forecast cohort.csv --model-average niyigena2025,wojciechowski2017
    per patient: posterior model probabilities, each model's risk and the averaged risk
  asuc-bayes forecast cohort.csv --workers 2 --checkpoint runs/c1 --format json
    batch: 2 worker processes, resumable; a bad patient is an error row, not the end

exit codes: 0 ok; 1 an unconverged posterior (unless --allow-unconverged); 2 bad input
(in a batch: after every other patient is done)
"""


FORMAT_HELP = (
    "table (readable), json (one JSON object, the contract in the README) or csv (one row per "
    "patient, columns in the README)"
)

COMPARE_PATIENT_EXAMPLES = """examples:
  asuc-bayes compare-patient --example
  asuc-bayes compare-patient patients.csv --id P03 --format json

Flags: different_class (MAP class differs from the posterior's P(high risk) >= 0.5 decision),
uncertain_class (0.2 <= P(high risk) <= 0.8 while MAP reports a class), surprising_observation
(leave-one-out predictive tail probability < 0.01: antibodies? a sampling error?).
exit codes: 0 ok; 1 an unconverged posterior (unless --allow-unconverged); 2 bad input
"""

APP_EXAMPLES = """examples:
  asuc-bayes app                          http://127.0.0.1:8000, the default model
  asuc-bayes app --port 8050 --variant log_crp
  asuc-bayes app --draws 2000 --seed 7      more draws per chain; the seed the app starts with

The model is compiled (first run on a machine, ~1 min) or loaded before the server starts.
The app has no log-in: keep --host on this machine (127.0.0.1) unless a proxy protects it.
exit codes: 0 stopped normally; 2 bad options, model file, or the port is taken
"""

MAIN_EXAMPLES = """examples:
  asuc-bayes forecast --example                 forecast the bundled example patients
  asuc-bayes forecast patients.csv --report r.html --out results.nc
  asuc-bayes optimize --example --id P01        week-2 dose to a 20 % risk
  asuc-bayes sensitivity --example --id P01     how the answer moves under other assumptions
  asuc-bayes compare-patient patients.csv       MAP (published tool) against the posterior
  asuc-bayes compare --n 200 --out study/       simulation study
  asuc-bayes sbc --replicates 50 --subjects 36 --workers 2 --out sbc/   calibration
  asuc-bayes app                                the web app on http://127.0.0.1:8000

Run 'asuc-bayes COMMAND --help' for each command's options.
exit codes: 0 success; 1 an unconverged posterior (forecast, optimize, compare-patient;
unless --allow-unconverged); 2 bad input data, options or model file
"""

OPTIMIZE_EXAMPLES = """examples:
  asuc-bayes optimize --example --id P01                        week-2 dose to a 20 % risk
  asuc-bayes optimize patients.csv --criterion probability --probability 0.9 --format json
  asuc-bayes optimize patient.toml --target-risk 0.15 --dose-time 14 --timing-days 7:14
  asuc-bayes optimize patient.toml --next-sample --sample-days 8,10,12,13
  asuc-bayes optimize patient.toml --dose-time 42 --trough-target 5 --interval-days 56
  asuc-bayes optimize cohort.csv --model wojciechowski2017    a library model (risk extrapolated)
  asuc-bayes optimize cohort.csv --model-average niyigena2025,wojciechowski2017

The dose at --dose-time (added if the regimen has none there) is chosen in whole vials from the
patient's existing posterior; the other doses stay as given. mean: smallest dose with posterior
mean 90-day risk <= target; probability: smallest dose with P(risk <= target) >= --probability.
exit codes: 0 ok; 1 an unconverged posterior (unless --allow-unconverged); 2 bad input or request
"""

SENSITIVITY_EXAMPLES = """examples:
  asuc-bayes sensitivity --example --id P01 --out sens/        tornado figure, table, JSON
  asuc-bayes sensitivity patient.toml --format json --criterion probability

Alternatives: every model-file variant; IIV and residual error x0.5 and x2; censored samples by
M3, discarded or imputed; prior and likelihood power-scaled by 0.5 and 2 (with ArviZ's psense);
threshold 5.5 and 6.1 (x_ref recalibrated); target risk 15 % and 25 %; population parameters
drawn from the published RSEs and bootstrap CIs (and from --population-fit). Each is computed
by exact quadrature (per population draw), so differences are not sampling noise.
exit codes: 0 ok; 2 bad input or options
"""

#: ``asuc_bayes.studies.comparison.SCENARIOS``'s names, sorted (written out so that parsing the
#: command
#: line does not import the simulation study; tests/test_startup.py checks they agree).
SCENARIO_NAMES = ("blq", "day7", "no_sample", "trough_week2", "two_samples")

COMPARE_EXAMPLES = """examples:
  asuc-bayes compare --n 500 --seed 1 --out study/        all scenarios, figures and tables
  asuc-bayes compare --n 200 --scenario trough_week2 --format json

scenarios: day7, trough_week2, blq, two_samples, no_sample
exit codes: 0 ok; 2 bad options
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asuc-bayes",
        description="Full-Bayesian infliximab forecasting and 90-day colectomy risk in ASUC.",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    forecast = sub.add_parser(
        "forecast",
        help="posterior of CL, V, AUC_w2-4, ln(AUC/CL) and 90-day colectomy risk per patient",
        epilog=FORECAST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(forecast)
    _add_covariates_option(forecast)
    forecast.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help=FORMAT_HELP
    )
    _add_sampling_options(forecast)
    _add_model_average_option(forecast)
    forecast.add_argument("--out", type=Path, help="write the results DataTree (netCDF)")
    forecast.add_argument(
        "--report",
        type=Path,
        metavar="FILE.html",
        help="write a self-contained HTML report (several patients: FILE-<ID>.html each)",
    )
    _add_quiet_option(forecast)
    forecast.add_argument(
        "--population-draws",
        type=int,
        default=200,
        metavar="S",
        help="with --model FIT.nc: population posterior draws integrated over (200)",
    )
    _add_unconverged_option(forecast)
    batch = forecast.add_argument_group(
        "batch",
        "many patients: a bad patient becomes an error row instead of stopping the run "
        "(exit code 2 at the end); any of these options selects the batch path",
    )
    _add_engine_options(batch)
    batch.add_argument(
        "--checkpoint",
        type=Path,
        metavar="DIR",
        help="record finished patients in DIR; a rerun with the same settings resumes there",
    )

    compare_patient = sub.add_parser(
        "compare-patient",
        help="MAP (the published tool) against the full posterior for each patient",
        epilog=COMPARE_PATIENT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(compare_patient)
    compare_patient.add_argument("--format", choices=("table", "json"), default="table")
    _add_sampling_options(compare_patient)
    _add_quiet_option(compare_patient)
    _add_unconverged_option(compare_patient)

    optimize = sub.add_parser(
        "optimize",
        help="dose (and timing) to a target 90-day colectomy risk under uncertainty",
        epilog=OPTIMIZE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(optimize)
    optimize.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help=FORMAT_HELP
    )
    _add_dosing_options(optimize)
    _add_sampling_options(optimize)
    _add_model_average_option(optimize)
    _add_unconverged_option(optimize)

    sensitivity = sub.add_parser(
        "sensitivity",
        help="how risk, P(high risk) and the recommended dose move under alternative assumptions",
        epilog=SENSITIVITY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(sensitivity)
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
    _add_structural_options(sensitivity)
    _add_decision_options(sensitivity)
    _add_fit_unconverged_option(sensitivity)

    compare = sub.add_parser(
        "compare",
        help="simulation study: MAP + Laplace against the full posterior under sampling scenarios",
        epilog=COMPARE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    _add_quiet_option(compare)
    _add_sampling_options(compare)
    _add_engine_options(compare)

    app = sub.add_parser(
        "app",
        help="the web app (Shiny): enter a patient, see the forecast, download the report",
        epilog=APP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    app.add_argument("--port", type=int, default=8000, help="port (8000)")
    _add_sampling_options(app)
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
    _add_population_commands(sub)
    _add_models_command(sub)
    _add_validate_command(sub)
    return parser


def _add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar on stderr (there is none either when stderr is not a terminal)",
    )


class _Progress:
    """A progress bar on stderr, only when stderr is a terminal and not ``--quiet``."""

    WIDTH = 28

    def __init__(self, label: str, total: int, quiet: bool) -> None:
        self.label, self.total = label, total
        self.enabled = not quiet and total > 1 and sys.stderr.isatty()
        self.start = time.monotonic()

    def __call__(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        total = total or self.total
        filled = round(self.WIDTH * done / max(total, 1))
        elapsed = time.monotonic() - self.start
        eta = f", ~{elapsed / done * (total - done):.0f} s left" if 0 < done < total else ""
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        print(
            f"\r{self.label} [{bar}] {done}/{total} ({elapsed:.0f} s{eta})  ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()  # end the bar's line whether the work finished or failed


def _add_engine_options(parser) -> None:
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


def _add_structural_options(parser: argparse.ArgumentParser) -> None:
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


def _add_data_options(parser: argparse.ArgumentParser) -> None:
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


def _add_covariates_option(parser: argparse.ArgumentParser) -> None:
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


def _add_sampling_options(parser: argparse.ArgumentParser, population: bool = False) -> None:
    """Draws, tuning, chains, seed, target acceptance, sampler and the model options; a
    ``population`` fit has no independence sampler (its posterior has hundreds of dimensions)."""
    parser.add_argument(
        "--draws",
        type=int,
        default=1000 if population else None,
        help=(
            "draws per chain (1000; at most 100000)"
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
            "NUTS warm-up steps per chain (500 with --method marginal, 1000 otherwise; "
            "at most 100000)"
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
            "NUTS target acceptance (0.9 with --method marginal, 0.995 otherwise; one run)"
            if population
            else "NUTS target acceptance (0.95; escalated to 0.99 on failure)"
        ),
    )
    if population:
        parser.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
    else:
        parser.add_argument(
            "--sampler",
            choices=("imh", "nutpie", "pymc"),
            default="imh",
            help="imh: independence Metropolis-Hastings from the Laplace approximation, NUTS "
            "if it fails a gate (default); nutpie: NUTS; pymc: PyMC's own NUTS",
        )
    _add_model_options(parser)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
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


#: Most candidate days a day list may hold (START:END:STEP with a tiny step would be endless).
MAX_DAY_LIST = 1000


def _day_list(text: str) -> list[float]:
    """``START:END[:STEP]`` (inclusive, step 1 by default) or ``D1,D2,...`` (days): finite
    numbers, at most :data:`MAX_DAY_LIST` days (each day's range:
    ``asuc_bayes.interfaces.options``)."""
    usage = f"expected days as START:END[:STEP] or D1,D2,... (finite numbers), got {text!r}"
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0):
                raise ValueError
            if not all(math.isfinite(p) for p in parts):
                raise ValueError
            start, end = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1.0
            count = int((end - start) / step + 1e-9) + 1
            if count > MAX_DAY_LIST:
                raise argparse.ArgumentTypeError(
                    f"{text!r} gives {count} days, more than {MAX_DAY_LIST} (fix: a larger STEP)"
                )
            days = [start + i * step for i in range(count)]
        else:
            days = [float(p) for p in text.split(",") if p.strip()]
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(usage) from None
    if not days or len(days) > MAX_DAY_LIST or not all(math.isfinite(d) for d in days):
        raise argparse.ArgumentTypeError(usage)
    return days


def _add_decision_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
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


def _decision_request(args: argparse.Namespace) -> DosingRequest:
    from asuc_bayes.decisions.dosing import DosingRequest

    return DosingRequest(
        target_risk=args.target_risk,
        criterion=args.criterion,
        probability=args.probability,
        dose_time_day=args.dose_time,
        vial_mg=args.vial_mg,
        max_mg_per_kg=args.max_mg_kg,
        min_mg_per_kg=args.min_mg_kg,
    )


def _add_dosing_options(parser: argparse.ArgumentParser) -> None:
    group = _add_decision_options(parser)
    group.add_argument(
        "--timing-days",
        type=_day_list,
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
        "--sample-days", type=_day_list, help="candidate sampling days (implies --next-sample)"
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


def _add_unconverged_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unconverged",
        action="store_true",
        help="exit 0 even when a posterior fails the convergence gates",
    )


def _add_fit_unconverged_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unconverged",
        action="store_true",
        help="use a population fit that failed its own convergence gates (refused otherwise)",
    )


def _spec_and_settings(args: argparse.Namespace) -> tuple[ModelSpec, SamplerSettings]:
    """The model and sampler settings of the sampling options (raises on bad values)."""
    from asuc_bayes.inference.forecast import SamplerSettings

    spec = load_model(args.model, variants=args.variant)
    settings = SamplerSettings(
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        target_accept=args.target_accept,
        sampler=args.sampler,
    )
    return spec, settings


def _load_patients(args: argparse.Namespace, spec: ModelSpec) -> list:
    """The selected patients of the data options; notes about ignored records on stderr.

    Raises ``InputError``/``OSError`` for bad data and ``ValueError`` for unknown IDs.
    """
    return _read_selected(args, spec, collect_errors=False)[0]


def _read_selected(
    args: argparse.Namespace, spec: ModelSpec, collect_errors: bool
) -> tuple[list, list[InputError]]:
    """The selected patients and, with ``collect_errors``, the errors of bad patients."""
    return _read_dataset(args, spec.pk.default_infusion_duration_day, collect_errors)[:2]


def _read_dataset(
    args: argparse.Namespace,
    default_infusion_duration_day: float,
    collect_errors: bool,
    allow_unsupported: bool = False,
) -> tuple[list, list[InputError], dict[str, str]]:
    """The selected patients, the bad patients' errors and the declared covariate units
    (``allow_unsupported``: keep steady-state doses and resets, for the library path)."""
    if args.example == bool(args.data):
        raise ValueError("give either a data file or --example")
    path = example_path() if args.example else Path(args.data)
    dataset = read_patients(
        path,
        default_infusion_duration_day=default_infusion_duration_day,
        collect_errors=collect_errors,
        ignore=getattr(args, "ignore", "#"),
        input=getattr(args, "input", None),
        time_unit=getattr(args, "time_unit", "days"),
        units=getattr(args, "units", None),
        allow_unsupported=allow_unsupported,
    )
    patients, errors = list(dataset.patients), list(dataset.errors)
    if args.ids:
        known = {p.id for p in patients} | {e.patient_id for e in errors}
        missing = [i for i in args.ids if i not in known]
        if missing:
            raise ValueError(f"--id {', '.join(missing)}: not in {path} (IDs: {sorted(known)})")
        patients = [p for p in patients if p.id in args.ids]
        errors = [e for e in errors if e.patient_id in args.ids]
    for note in dataset.notes:
        print(f"asuc-bayes: note: {note}", file=sys.stderr)
    return patients, errors, dict(dataset.units)


def _unconverged_exit(results, args: argparse.Namespace) -> int:
    return _exit_for_unconverged([r.patient.id for r in results if r.status != "ok"], args)


def _exit_for_unconverged(unconverged: list[str], args: argparse.Namespace) -> int:
    if unconverged and not args.allow_unconverged:
        print(
            f"asuc-bayes: unconverged posterior for {', '.join(unconverged)}: do not use these "
            "results as they are (rerun with more --tune/--draws, or pass --allow-unconverged)",
            file=sys.stderr,
        )
        return EXIT_UNCONVERGED
    return EXIT_OK


def _error(message: str) -> int:
    print(f"asuc-bayes: error: {message}", file=sys.stderr)
    return EXIT_INPUT


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # a malformed option: usage and SystemExit(2)
    try:
        check_options(args.command, args)  # every option once, before any work
    except OptionError as exc:
        return _error(str(exc))
    commands = {
        "forecast": _forecast,
        "compare-patient": _compare_patient,
        "optimize": _optimize,
        "sensitivity": _sensitivity,
        "compare": _compare,
        "app": _app,
        **POPULATION_COMMANDS,
        "models": _models,
        "validate": _validate,
    }
    try:
        return commands[args.command](args)
    except AsucBayesError as exc:  # an expected error a handler did not word: still no traceback
        return _error(str(exc))


def _forecast(args: argparse.Namespace) -> int:
    if args.model_average:
        return _model_average(args)
    if is_library_declaration(args.model):
        return _forecast_library(args)
    if args.covariates is not None:
        print(
            f"asuc-bayes: note: --covariates {args.covariates} has no effect here: the ASUC "
            "model takes each patient's baseline WT and CRP (time-varying covariates apply to "
            "library models that declare them, --model NAME)",
            file=sys.stderr,
        )
    if str(args.model).endswith(".nc"):
        return _forecast_population(args)
    if args.workers != 1 or args.scheduler or args.checkpoint:
        return _forecast_batch(args)
    try:
        spec, settings = _spec_and_settings(args)
        patients = _load_patients(args, spec)
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    from asuc_bayes.inference.forecast import results_json, save_results
    from asuc_bayes.interfaces.report import format_overview, format_table, write_patient_reports

    results = _forecast_with_progress(patients, spec, settings, args)
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
        try:
            dosing = {r.patient.id: _default_recommendation(r) for r in results}
            written = write_patient_reports(
                results, args.report, dosing=dosing, random_seed=args.seed
            )
        except OSError as exc:
            return _error(f"--report {args.report}: {exc.strerror or exc}")
        where = written[0] if len(written) == 1 else f"{len(written)} files ({written[0]} ...)"
        print(f"asuc-bayes: report written to {where}", file=sys.stderr)
    return _unconverged_exit(results, args)


#: Options of ``forecast`` that the library-model path does not take yet, and their defaults.
_NOT_FOR_LIBRARY_MODELS = {
    "report": None,
    "out": None,
    "workers": 1,
    "scheduler": None,
    "checkpoint": None,
    "sampler": "imh",
}


def _forecast_library(args: argparse.Namespace) -> int:
    """``forecast --model NAME`` for a library model (any structure and random effects): the
    posterior of each patient by :func:`asuc_bayes.inference.forecast_library_patient`, with the
    ASUC outcome model attached (flagged extrapolated) to a model that has none."""
    from asuc_bayes.inference import SamplerOptions, forecast_library_patient
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.inference.schedule import covariate_schedule
    from asuc_bayes.interfaces.report import format_library_table
    from asuc_bayes.spec import MissingCovariateError, load_declaration

    for option, default in _NOT_FOR_LIBRARY_MODELS.items():
        if getattr(args, option, default) != default:
            return _error(
                f"--{option}: not available yet with a library model (--model {args.model}); "
                f"fix: leave --{option} out, or use --model {DEFAULT_MODEL}"
            )
    if args.format == "csv":
        return _error("--format csv: not available yet with a library model; fix: --format json")
    try:
        declaration = load_declaration(args.model, variants=args.variant or ())
        patients, _, units = _read_dataset(
            args,
            declaration.default_infusion_duration_day,
            collect_errors=False,
            allow_unsupported=True,  # SS and resets: evaluated by the library path
        )
        options = SamplerOptions(
            chains=args.chains,
            draws=args.draws,
            tune=args.tune,
            target_accept=args.target_accept,
        )
        results = [
            forecast_library_patient(
                declaration,
                patient,
                baseline_covariates(patient, declaration, units),
                attach_outcome=declaration.outcome is None,
                random_seed=patient_seed(args.seed, patient.id),
                options=options,
                schedule=covariate_schedule(
                    patient, declaration, units, args.covariates or "nonmem"
                ),
            )
            for patient in patients
        ]
    except MissingCovariateError as exc:
        return _error(f"{exc} (a NONMEM dataset gives it as a column, e.g. ALB or ADA)")
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    if args.format == "table":
        print(format_library_table(declaration, results))
        for result in results:
            for note in result.covariates.notes(result.model):
                print(f"asuc-bayes: note: patient {result.id!r}: {note}", file=sys.stderr)
    else:
        payload = {
            "model": {
                "name": declaration.name,
                "sha256": _file_sha256(declaration.path),
                "variants": list(declaration.variants),
                "structure": declaration.structure,
                "source": declaration.source,
            },
            "patients": [result.to_json() for result in results],
        }
        print(dumps_json(payload))
    return _exit_for_unconverged([r.id for r in results if r.status != "ok"], args)


def _file_sha256(path: str) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""


def _forecast_batch(args: argparse.Namespace) -> int:
    """``forecast`` on many patients through :func:`asuc_bayes.inference.batch.forecast_batch`."""
    if args.report:
        return _error(
            "--report is not available with --workers/--scheduler/--checkpoint (fix: write "
            "reports for chosen patients without the batch options, or use --out)"
        )
    try:
        spec, settings = _spec_and_settings(args)
        patients, errors = _read_selected(args, spec, collect_errors=True)
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
    except (InputError, ModelSpecError, ValueError, OSError, EngineError) as exc:
        return _error(str(exc))
    from asuc_bayes.inference.batch import CheckpointError, forecast_batch, with_input_errors
    from asuc_bayes.inference.forecast import save_results
    from asuc_bayes.interfaces.report import format_batch

    try:
        with _Progress("forecast", len(patients), args.quiet) as progress:
            batch = forecast_batch(
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
        return _error(str(exc))
    batch = with_input_errors(batch, errors)
    if args.format == "json":
        document = {
            "model": {"name": spec.name, "sha256": spec.sha256, "variants": list(spec.variants)},
            "patients": [row.to_json() for row in batch.rows],
        }
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
    return _exit_for_unconverged(
        [row.id for row in batch.rows if row.status == "unconverged"], args
    )


def _default_recommendation(result) -> dict:
    """The report's dose section: the default request (``asuc-bayes optimize`` for others)."""
    from asuc_bayes.decisions.dosing import DosingError, DosingRequest, recommend_dose

    try:
        return recommend_dose(result, DosingRequest()).to_json()
    except DosingError as exc:
        return {"error": exc.clinical}


def _forecast_with_progress(patients, spec, settings, args) -> list:
    from asuc_bayes.inference.forecast import forecast_patients

    with _Progress("forecast", len(patients), args.quiet) as progress:
        return forecast_patients(
            patients, spec, settings=settings, random_seed=args.seed, progress=progress
        )


def _compare_patient(args: argparse.Namespace) -> int:
    if is_library_declaration(args.model):
        from asuc_bayes.interfaces.library_cli import compare_patient

        return compare_patient(args)
    try:
        spec, settings = _spec_and_settings(args)
        patients = _load_patients(args, spec)
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    from asuc_bayes.interfaces.report import format_comparison
    from asuc_bayes.studies.comparison import compare_patient

    results = _forecast_with_progress(patients, spec, settings, args)
    comparisons = [compare_patient(spec, r, random_seed=args.seed) for r in results]
    if args.format == "json":
        payload = {"model": {"name": spec.name, "sha256": spec.sha256}, "patients": comparisons}
        print(dumps_json(payload))
    else:
        print(format_comparison(comparisons, spec))
    return _unconverged_exit(results, args)


def _optimize(args: argparse.Namespace) -> int:
    if args.model_average:
        return _model_average(args)
    if is_library_declaration(args.model):
        return _optimize_library(args)
    from asuc_bayes.decisions.dosing import DosingError, PlanOptions, check_request, plan_dosing
    from asuc_bayes.inference.forecast import forecast_patients, patient_seed
    from asuc_bayes.interfaces.report import format_dosing, write_patient_reports

    try:
        spec, settings = _spec_and_settings(args)
        patients = _load_patients(args, spec)
        request = _decision_request(args)
        options = PlanOptions(
            timing_dose_mg=args.timing_dose_mg,
            timing_days=None if args.timing_days is None else tuple(args.timing_days),
            trough_target_mg_l=args.trough_target,
            trough_interval_day=args.interval_days,
            trough_dose_mg=args.trough_dose_mg,
            maintenance_doses=args.maintenance_doses,
            sample_days=None if args.sample_days is None else tuple(args.sample_days),
            next_sample=args.next_sample,
            n_simulations=args.n_simulations,
            lloq_mg_l=args.lloq,
            uloq_mg_l=args.uloq,
            turnaround_day=args.turnaround_days,
        )
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
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
            "model": {"name": spec.name, "sha256": spec.sha256, "variants": list(spec.variants)},
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
        try:
            written = write_patient_reports(
                [plan.forecast for plan in plans],
                args.report,
                dosing={plan.forecast.patient.id: plan.to_json() for plan in plans},
                random_seed=args.seed,
            )
        except OSError as exc:
            return _error(f"--report {args.report}: {exc.strerror or exc}")
        where = written[0] if len(written) == 1 else f"{len(written)} files ({written[0]} ...)"
        print(f"asuc-bayes: report written to {where}", file=sys.stderr)
    for error in errors:
        print(f"asuc-bayes: error: {error['error']}", file=sys.stderr)
    if errors:
        return EXIT_INPUT
    return _unconverged_exit(results, args)


#: Options of ``optimize`` that library models and model averaging do not take yet.
_NOT_FOR_LIBRARY_DOSING = {
    "report": None,
    "timing_days": None,
    "timing_dose_mg": None,
    "next_sample": False,
    "sample_days": None,
}


def _refused_option(args: argparse.Namespace, what: str) -> str | None:
    """The error for an option the library-model paths (``what``) do not take, or None."""
    refused = {**_NOT_FOR_LIBRARY_MODELS, **_NOT_FOR_LIBRARY_DOSING}
    for option, default in refused.items():
        if getattr(args, option, default) != default:
            flag = option.replace("_", "-")
            return f"--{flag}: not available yet with {what}; fix: leave --{flag} out"
    if args.format == "csv":
        return f"--format csv: not available yet with {what}; fix: --format json or table"
    return None


def _library_plan_inputs(args: argparse.Namespace):
    """(SamplerOptions, DosingRequest or None, PlanOptions or None) of a library-model run."""
    from asuc_bayes.decisions.dosing import PlanOptions
    from asuc_bayes.inference import SamplerOptions

    options = SamplerOptions(
        chains=args.chains,
        draws=args.draws or 1000,
        tune=args.tune,
        target_accept=args.target_accept,
    )
    if args.command != "optimize":
        return options, None, None
    plan = PlanOptions(
        trough_target_mg_l=args.trough_target,
        trough_interval_day=args.interval_days,
        trough_dose_mg=args.trough_dose_mg,
        maintenance_doses=args.maintenance_doses,
    )
    return options, _decision_request(args), plan


def _optimize_library(args: argparse.Namespace) -> int:
    """``optimize --model NAME`` for a library model: the dose to a target risk (the ASUC
    outcome model attached, flagged extrapolated, to a model without one) or to a target trough,
    from the model's posterior draws (:mod:`asuc_bayes.decisions.library_dosing`)."""
    from asuc_bayes.decisions.dosing import DosingError
    from asuc_bayes.decisions.library_dosing import library_posterior, plan_library_dosing
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.interfaces.report import format_library_dosing
    from asuc_bayes.spec import MissingCovariateError, load_declaration

    refused = _refused_option(args, f"a library model (--model {args.model})")
    if refused:
        return _error(refused)
    try:
        declaration = load_declaration(args.model, variants=args.variant or ())
        patients, _, units = _read_dataset(
            args, declaration.default_infusion_duration_day, collect_errors=False
        )
        options, request, plan_options = _library_plan_inputs(args)
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    plans, errors = [], []
    for patient in patients:
        try:
            posterior = library_posterior(
                declaration,
                patient,
                baseline_covariates(patient, declaration, units),
                random_seed=patient_seed(args.seed, patient.id),
                options=options,
            )
            plans.append(plan_library_dosing(posterior, request, plan_options))
        except MissingCovariateError as exc:
            errors.append({"id": patient.id, "error": f"{exc} (a dataset column, e.g. ALB)"})
        except (InputError, DosingError) as exc:
            errors.append({"id": patient.id, "error": str(exc)})
    if args.format == "json":
        model = {"name": declaration.name, "sha256": _file_sha256(declaration.path)}
        model |= {"variants": list(declaration.variants), "structure": declaration.structure}
        entries = [plan.to_json() for plan in plans] + errors
        print(dumps_json({"model": model, "patients": entries}))
    else:
        print(format_library_dosing(declaration, plans))
    for error in errors:
        print(f"asuc-bayes: error: {error['error']}", file=sys.stderr)
    if errors:
        return EXIT_INPUT
    forecasts = [plan.posterior.forecast for plan in plans]
    return _exit_for_unconverged([f.id for f in forecasts if f.status != "ok"], args)


def _model_list(text: str) -> tuple[str, ...]:
    """``--model-average A,B,C`` (argparse type: a bad list exits 2 naming the option)."""
    from asuc_bayes.decisions.model_average import ModelAverageError, parse_model_list

    try:
        return parse_model_list(text)
    except ModelAverageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--model-average: ")) from None


def _add_model_average_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-average",
        type=_model_list,
        metavar="A,B,C",
        help="average over these library models (at least two), weighted per patient by "
        "posterior model probabilities (marginal likelihood of the patient's concentrations, "
        "equal prior weights); AIC weights beside; replaces --model",
    )


def _model_average(args: argparse.Namespace) -> int:
    """``forecast``/``optimize --model-average A,B,C``: per patient the models' weights, risks
    and the averaged risk (and dose) of
    :func:`asuc_bayes.decisions.model_average.average_patient`."""
    from asuc_bayes.decisions.dosing import DosingError
    from asuc_bayes.decisions.model_average import (
        ModelAverageError,
        average_patient,
        format_model_average,
    )
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.spec import load_declaration

    if args.model != DEFAULT_MODEL or args.variant:
        return _error("--model-average replaces --model and --variant; fix: leave them out")
    refused = _refused_option(args, "--model-average")
    if refused:
        return _error(refused)
    try:
        first = load_declaration(args.model_average[0])
        patients, _, units = _read_dataset(
            args, first.default_infusion_duration_day, collect_errors=False
        )
        options, request, plan_options = _library_plan_inputs(args)
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    averages, errors = [], []
    for patient in patients:
        try:
            averages.append(
                average_patient(
                    args.model_average,
                    patient,
                    units,
                    random_seed=patient_seed(args.seed, patient.id),
                    options=options,
                    request=request,
                    plan_options=plan_options,
                )
            )
        except (ModelAverageError, InputError, DosingError) as exc:
            errors.append({"id": patient.id, "error": str(exc)})
    if args.format == "json":
        entries = [average.to_json() for average in averages] + errors
        print(dumps_json({"models": list(args.model_average), "patients": entries}))
    else:
        print(format_model_average(averages))
    for error in errors:
        print(f"asuc-bayes: error: {error['error']}", file=sys.stderr)
    if errors:
        return EXIT_INPUT
    return _exit_for_unconverged([a.patient_id for a in averages if a.status != "ok"], args)


def _sensitivity(args: argparse.Namespace) -> int:
    if is_library_declaration(args.model):
        from asuc_bayes.interfaces.library_cli import sensitivity

        return sensitivity(args)
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.interfaces.report import format_sensitivity
    from asuc_bayes.studies.sensitivity import run_sensitivity, write_sensitivity

    try:
        spec = load_model(args.model, variants=args.variant)
        patients = _load_patients(args, spec)
        from asuc_bayes.data.dataset import parse_units

        units = dict(parse_units(args.units))
        request = _decision_request(args)
        fit = None
        if args.population_fit is not None:
            from asuc_bayes.inference.fit_identity import identify_fit, require_converged
            from asuc_bayes.inference.population import load_fit

            if not args.population_fit.is_file():
                raise ValueError(f"--population-fit {args.population_fit}: no such file")
            fit = load_fit(args.population_fit)
            fit_identity = identify_fit(args.population_fit, fit)
            require_converged(fit_identity, allow=args.allow_unconverged, option="--population-fit")
            if args.population_draws == 0:
                raise ValueError("--population-fit needs --population-draws > 0")
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    results = [
        run_sensitivity(
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
    if args.out:
        written = write_sensitivity(results, args.out)
        print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    if args.format == "json":
        payload = {
            "model": {"name": spec.name, "sha256": spec.sha256, "variants": list(spec.variants)},
            "patients": [r.to_json() for r in results],
        }
        if fit is not None:
            payload["model"]["population_fit"] = fit_identity.to_json()
        print(dumps_json(payload))
    else:
        if fit is not None:
            print(fit_identity.header().replace("model: ", "also propagated: ", 1))
        print(format_sensitivity(results, spec))
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from asuc_bayes.interfaces.report import format_study
    from asuc_bayes.studies.comparison import run_study, write_study

    try:
        spec, settings = _spec_and_settings(args)
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
    except (ModelSpecError, ValueError, EngineError) as exc:
        return _error(str(exc))
    names = args.scenario or list(SCENARIO_NAMES)
    studies = []
    try:
        for name in names:
            with _Progress(f"{name:<12}", args.n, args.quiet) as progress:
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
        return _error(str(exc))
    if args.out:
        written = write_study(studies, args.out)
        print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    if args.format == "json":
        print(dumps_json([s.to_json() for s in studies]))
    else:
        print(format_study(studies))
    return EXIT_OK


def _app(args: argparse.Namespace) -> int:
    try:
        spec, settings = _spec_and_settings(args)
        with socket.create_server((args.host, args.port)):
            pass  # the port is free (uvicorn would exit without a clear message otherwise)
    except (ModelSpecError, ValueError) as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    from asuc_bayes.interfaces.app import run_app  # imports Shiny only for this command

    if not args.quiet and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"asuc-bayes: warning: listening on {args.host}: the app has no log-in; anyone who "
            "can reach this address can use it",
            file=sys.stderr,
        )
    try:
        run_app(
            args.host,
            args.port,
            spec=spec,
            settings=settings,
            seed=args.seed,
            quiet=args.quiet,
            debug=args.debug,
            workers=args.workers,
        )
    except KeyboardInterrupt:
        pass
    return EXIT_OK


# -- population commands (issue 3): simulate, fit, evaluate ------------------------------

SIMULATE_EXAMPLES = """examples:
  asuc-bayes simulate --n 72 --seed 1 --out cohort.csv    also writes cohort.truth.csv
  asuc-bayes simulate --n 200 --seed 2 --population-uncertainty --out big.csv

exit codes: 0 ok; 2 bad options
"""


def _add_population_commands(sub) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="a Table-1-like virtual cohort (NONMEM-style CSV with colectomy records + truth)",
        epilog=SIMULATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    _add_fit_command(sub)
    _add_evaluate_command(sub)
    _add_sbc_command(sub)


def _simulate(args: argparse.Namespace) -> int:
    from asuc_bayes.interfaces.report import format_cohort_summary
    from asuc_bayes.studies.simulate import TABLE1, cohort_summary, simulate_cohort, write_cohort

    if is_library_declaration(args.model):
        from asuc_bayes.interfaces.library_cli import simulate

        return simulate(args)
    try:
        spec = load_model(args.model, variants=args.variant)
    except (ModelSpecError, ValueError) as exc:
        return _error(str(exc))
    cohort = simulate_cohort(
        spec, args.n, args.seed, population_uncertainty=args.population_uncertainty
    )
    summary = format_cohort_summary(cohort_summary(cohort.patients), TABLE1)
    if args.out:
        data_path, truth_path = write_cohort(cohort, args.out)
        print(summary)
        print(f"asuc-bayes: cohort written to {data_path}, truth to {truth_path}", file=sys.stderr)
    else:
        import tempfile

        from asuc_bayes.data.dataset import write_nonmem_csv

        with tempfile.TemporaryDirectory() as folder:
            path = write_nonmem_csv(cohort.patients, Path(folder) / "cohort.csv")
            sys.stdout.write(path.read_text())
        print(summary, file=sys.stderr)
    return EXIT_OK


FIT_EXAMPLES = """examples:
  asuc-bayes fit cohort.csv                                 weak priors, table
  asuc-bayes fit cohort.csv --prior published --out fit.nc --seed 3
  asuc-bayes fit cohort.csv --two-stage --format json
  asuc-bayes fit cohort.csv --method full                   every eta sampled by NUTS

exit codes: 0 ok; 1 unconverged posterior (unless --allow-unconverged); 2 bad input
"""


def _add_fit_command(sub) -> None:
    fit = sub.add_parser(
        "fit",
        help="hierarchical popPK + Weibull time-to-colectomy fit of a cohort (NUTS)",
        epilog=FIT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "NUTS over the population parameters (1000 draws after 500 tuning steps, target "
        "acceptance 0.9), each "
        "eta drawn per posterior draw; full: the same joint model with every eta sampled by "
        "NUTS (1000 + 1000, 0.995); two-stage",
    )
    fit.add_argument("--format", choices=("table", "json"), default="table")
    fit.add_argument("--out", type=Path, help="write the fit DataTree (netCDF)")
    fit.add_argument(
        "--units",
        action="append",
        metavar="NAME=UNIT",
        help="library models: unit of a covariate column, e.g. ALB=g/L (repeatable)",
    )
    _add_sampling_options(fit, population=True)
    fit.set_defaults(target_accept=None, draws=None, tune=None)
    _add_unconverged_option(fit)


#: ``fit --method`` -> :func:`asuc_bayes.inference.population.fit_population`'s method.
FIT_METHODS = {"marginal": "marginal", "full": "joint", "two-stage": "two_stage"}


def _fit_method(args: argparse.Namespace) -> str:
    if args.two_stage and args.method not in (None, "two-stage"):
        raise ValueError(f"--two-stage contradicts --method {args.method} (give one of them)")
    return FIT_METHODS[args.method or ("two-stage" if args.two_stage else "full")]


def _fit(args: argparse.Namespace) -> int:
    if is_library_declaration(args.model):
        from asuc_bayes.interfaces.library_cli import fit

        return fit(args)
    from asuc_bayes.data.dataset import read_cohort
    from asuc_bayes.inference.population import default_settings, fit_population, published_values
    from asuc_bayes.interfaces.report import format_fit

    try:
        spec = load_model(args.model, variants=args.variant)
        spec.priors(args.prior)
        method = _fit_method(args)
        settings = default_settings(
            method,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            sampler=args.sampler,
            target_accept=args.target_accept,
        )
        cohort = read_cohort(
            args.data, default_infusion_duration_day=spec.pk.default_infusion_duration_day
        )
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
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
    summary = result.summary()
    if args.format == "json":
        print(dumps_json(summary))
    else:
        print(format_fit(summary, published_values(spec)))
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


EVALUATE_EXAMPLES = """examples:
  asuc-bayes evaluate fit.nc --out evaluation/
  asuc-bayes evaluate fit.nc --out evaluation/ --replicates 1000 --format json

  asuc-bayes evaluate fit.nc --out evaluation/ --ln-ratio-source joint

ROC and risk groups use ln(AUC/CL) from the PK model alone by default (as the paper did).
writes pcvpc.png, km_vpc.png, roc.png, metrics.json and CSV tables
exit codes: 0 ok; 2 bad input, or a fit that failed its convergence gates (unless
--allow-unconverged)
"""


def _add_evaluate_command(sub) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="pcVPC, KM-VPC by risk group, ROC/AUROC, Youden threshold of a population fit",
        epilog=EVALUATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    _add_fit_unconverged_option(evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from asuc_bayes.inference.fit_identity import identify_fit, require_converged
    from asuc_bayes.inference.population import load_fit
    from asuc_bayes.inference.population_draws import spec_of_fit
    from asuc_bayes.interfaces.report import format_evaluation
    from asuc_bayes.studies.evaluation import evaluate_fit, write_evaluation

    try:
        tree = load_fit(args.fit)
        fit = identify_fit(args.fit, tree)
        require_converged(fit, allow=args.allow_unconverged, option="evaluate")
        spec = spec_of_fit(tree)
    except (ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
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


def _forecast_population(args: argparse.Namespace) -> int:
    """``forecast --model FIT.nc``: integrate over the fitted population posterior."""
    from asuc_bayes.inference.fit_identity import identify_fit, require_converged
    from asuc_bayes.inference.forecast import results_json, save_results
    from asuc_bayes.inference.population_draws import PopulationDraws
    from asuc_bayes.inference.population_forecast import forecast_patients_with_population
    from asuc_bayes.interfaces.report import format_table

    try:
        if args.variant:
            raise ValueError("--variant cannot be combined with a population fit (--model *.nc)")
        fit = identify_fit(args.model)
        require_converged(fit, allow=args.allow_unconverged, option="--model")
        draws = PopulationDraws.from_fit(args.model, n=args.population_draws, random_seed=args.seed)
        patients = _load_patients(args, draws.spec)
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
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
    else:
        print(fit.header() + "\n" + format_table(results, draws.spec).split("\n", 1)[1])
    if args.out:
        save_results(results, args.out)
        print(f"asuc-bayes: results written to {args.out}", file=sys.stderr)
    return _unconverged_exit(results, args)


SBC_EXAMPLES = """examples:
  asuc-bayes sbc --replicates 50 --subjects 36 --workers 2 --out sbc/ --seed 1
  asuc-bayes sbc --replicates 200 --subjects 72 --scheduler tcp://host:8786 --out sbc/
  asuc-bayes sbc --replicates 20 --subjects 24 --prior weak --draws 300 --out sbc/

Each replicate draws the population parameters from the prior the fit uses, simulates a cohort
from them, fits it and records the rank of the true values among L thinned posterior draws.
writes sbc.nc (ranks), uniformity.csv, replicates.csv and rank_histograms.png
exit codes: 0 ran (failed or unconverged replicates are reported, not fatal); 2 bad options
"""


def _add_sbc_command(sub) -> None:
    sbc = sub.add_parser(
        "sbc",
        help="simulation-based calibration of the population fit (rank histograms)",
        epilog=SBC_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sbc.add_argument("--replicates", type=int, required=True, help="replicates (cohorts)")
    sbc.add_argument("--subjects", type=int, required=True, help="subjects per cohort")
    sbc.add_argument("--out", type=Path, required=True, help="folder for ranks, tables, figure")
    sbc.add_argument(
        "--prior",
        default="published",
        help="prior set of the model file, drawn from and fitted with: published|weak",
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
    _add_engine_options(sbc)
    _add_model_options(sbc)
    _add_quiet_option(sbc)


def _sbc(args: argparse.Namespace) -> int:
    from asuc_bayes.inference.engine import Engine, EngineError
    from asuc_bayes.inference.population import PopulationSettings
    from asuc_bayes.interfaces.report import format_sbc
    from asuc_bayes.interfaces.sbc_output import write_sbc
    from asuc_bayes.studies.sbc import PopulationReplicate, rank_uniformity, run_population_sbc

    try:
        spec = load_model(args.model, variants=args.variant)
        settings = PopulationSettings(
            draws=args.draws, tune=args.tune, chains=args.chains, target_accept=args.target_accept
        )
        PopulationReplicate(spec, args.subjects, prior=args.prior, settings=settings)
        if settings.chains * settings.draws < args.rank_draws:
            raise ValueError(
                f"--chains x --draws = {settings.chains * settings.draws} draws cannot be "
                f"thinned to --rank-draws {args.rank_draws}: raise --draws or lower --rank-draws"
            )
        if args.bins is not None:
            rank_uniformity([], args.rank_draws, args.bins)  # checks --bins against L
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
    except (ModelSpecError, ValueError, EngineError) as exc:
        return _error(str(exc).replace("n_bins", "--bins"))
    try:
        with _Progress("sbc", args.replicates, args.quiet) as progress:
            result = run_population_sbc(
                spec,
                args.replicates,
                args.subjects,
                prior=args.prior,
                settings=settings,
                n_rank_draws=args.rank_draws,
                random_seed=args.seed,
                engine=engine,
                progress=progress,
            )
    except EngineError as exc:
        return _error(str(exc))
    written = write_sbc(result, args.out, n_bins=args.bins)
    print(format_sbc(result.table(args.bins), result.counts, result.dataset.attrs))
    print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    return EXIT_OK


POPULATION_COMMANDS = {"simulate": _simulate, "fit": _fit, "evaluate": _evaluate, "sbc": _sbc}


def _add_models_command(sub) -> None:
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


def _models(args: argparse.Namespace) -> int:
    from asuc_bayes.spec.library import format_models_table, list_models, models_json

    try:
        library = list_models()
    except ModelSpecError as exc:
        return _error(str(exc))
    if args.format == "json":
        print(dumps_json(models_json(library)))
    elif args.format == "markdown":
        from asuc_bayes.spec import available_declarations, load_declaration
        from asuc_bayes.spec.card import library_card

        names = available_declarations()
        print(library_card(load_declaration(name) for name in names), end="")
    else:
        print(format_models_table(library), end="")
    return EXIT_OK


VALIDATE_EXAMPLES = """examples:
  asuc-bayes validate cohort.csv --model niyigena2025 --model wojciechowski2017 --units ALB=g/L
  asuc-bayes validate cohort.csv --model niyigena2025 --model fasanmade2009 --format json
  asuc-bayes validate cohort.csv --model niyigena2025 --model fasanmade2009 --workers 2 --out v/

Each model predicts every concentration a priori (covariates only) and by Bayesian forecasting
leave-future-out (each concentration from the ones before it: posterior predictive and MAP +
Laplace); NPDE; the colectomy outcome from PK-only posteriors (the ASUC outcome model, flagged
extrapolated, for a model without one); per-patient posterior model probabilities from each
model's marginal likelihood, with likelihood/AIC and stacking weights beside them. Covariate
columns (ALB, ADA...) are read in --units, else in the unit the model files declare (ALB g/dL
in every library model that uses it; models that disagree need --units). --out writes
validation.json and validation.html (a self-contained report with VPC, pcVPC, NPDE, observed vs
predicted, calibration and weight figures). Each patient's seed derives from --seed and its ID:
the cohort's order and --workers/--scheduler do not change the results.
exit codes: 0 ok; 2 bad input, options or model file
"""


def _add_validate_command(sub) -> None:
    validate = sub.add_parser(
        "validate",
        help="external validation of library models on a cohort, and model averaging",
        epilog=VALIDATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(validate)
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
    _add_engine_options(validate)
    _add_quiet_option(validate)


def _validate(args: argparse.Namespace) -> int:
    """``validate``: :func:`asuc_bayes.studies.validation.validate_cohort` on the dataset's
    patients."""
    from asuc_bayes.inference.covariates import dataset_covariates
    from asuc_bayes.inference.engine import Engine, EngineError
    from asuc_bayes.interfaces.report import format_validation
    from asuc_bayes.spec import load_declaration
    from asuc_bayes.studies.validation.study import validate_cohort

    try:
        patients, _, units = _read_dataset(args, 1.0 / 12.0, collect_errors=False)
        declarations = [load_declaration(name) for name in args.models]
        covariates = {p.id: dataset_covariates(p, declarations, units) for p in patients}
        engine = Engine(workers=args.workers, scheduler=args.scheduler)
        with _Progress("validate", len(patients), args.quiet) as progress:
            result = validate_cohort(
                patients,
                args.models,
                covariates_of=covariates,
                random_seed=args.seed,
                engine=engine,
                progress=progress,
            )
    except (InputError, ModelSpecError, ValueError, OSError, EngineError) as exc:
        return _error(str(exc))
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
