"""Command-line interface: ``asuc-bayes forecast DATA``.

The CLI only parses arguments, calls the public API and formats its results.

Exit codes: 0 success; 1 at least one patient's posterior is unconverged (divergences,
R-hat > 1.01 or bulk ESS < 400) and ``--allow-unconverged`` was not given; 2 bad input,
bad options or a broken model file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asuc_bayes.config import DEFAULT_MODEL, ModelSpecError, load_model
from asuc_bayes.dataset import InputError, example_path, read_patients
from asuc_bayes.forecast import (
    SamplerSettings,
    forecast_patients,
    results_json,
    save_results,
)
from asuc_bayes.report import format_table

EXIT_OK, EXIT_UNCONVERGED, EXIT_INPUT = 0, 1, 2

FORECAST_EXAMPLES = """examples:
  asuc-bayes forecast --example                    bundled example patients, table
  asuc-bayes forecast patients.csv --format json   NONMEM-style CSV, JSON on stdout
  asuc-bayes forecast patient.toml --id P01 --out p01.nc --seed 7
  asuc-bayes forecast patients.csv --variant log_crp --variant reference_weight_63kg

exit codes: 0 ok; 1 an unconverged posterior (unless --allow-unconverged); 2 bad input
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asuc-bayes",
        description="Full-Bayesian infliximab forecasting and 90-day colectomy risk in ASUC.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    forecast = sub.add_parser(
        "forecast",
        help="posterior of CL, V, AUC_w2-4, ln(AUC/CL) and 90-day colectomy risk per patient",
        epilog=FORECAST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    forecast.add_argument("data", nargs="?", help="NONMEM-style .csv or patient .toml/.yaml")
    forecast.add_argument("--example", action="store_true", help="use the bundled examples")
    forecast.add_argument(
        "--id", action="append", dest="ids", metavar="ID", help="only this patient (repeatable)"
    )
    forecast.add_argument("--format", choices=("table", "json"), default="table")
    forecast.add_argument("--draws", type=int, default=1000, help="draws per chain (1000)")
    forecast.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (1000)")
    forecast.add_argument("--chains", type=int, default=4, help="chains (4)")
    forecast.add_argument("--seed", type=int, default=0, help="random seed (0)")
    forecast.add_argument(
        "--target-accept",
        type=float,
        default=0.95,
        help="NUTS target acceptance (0.95; escalated to 0.99 on failure)",
    )
    forecast.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
    forecast.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name or .toml file ({DEFAULT_MODEL})"
    )
    forecast.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help="model-file variant to apply (repeatable)",
    )
    forecast.add_argument("--out", type=Path, help="write the results DataTree (netCDF)")
    forecast.add_argument(
        "--allow-unconverged",
        action="store_true",
        help="exit 0 even when a posterior fails the convergence gates",
    )
    return parser


def _error(message: str) -> int:
    print(f"asuc-bayes: error: {message}", file=sys.stderr)
    return EXIT_INPUT


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "forecast":
        return _forecast(args)
    return _error(f"unknown command {args.command!r}")  # pragma: no cover


def _forecast(args: argparse.Namespace) -> int:
    if args.example == bool(args.data):
        return _error("give either a data file or --example")
    try:
        spec = load_model(args.model, variants=args.variant)
        settings = SamplerSettings(
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            target_accept=args.target_accept,
            sampler=args.sampler,
        )
        path = example_path() if args.example else Path(args.data)
        dataset = read_patients(
            path, default_infusion_duration_day=spec.pk.default_infusion_duration_day
        )
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    patients = list(dataset.patients)
    if args.ids:
        known = {p.id for p in patients}
        missing = [i for i in args.ids if i not in known]
        if missing:
            return _error(f"--id {', '.join(missing)}: not in {path} (IDs: {sorted(known)})")
        patients = [p for p in patients if p.id in args.ids]
    for note in dataset.notes:
        print(f"asuc-bayes: note: {note}", file=sys.stderr)
    results = forecast_patients(patients, spec, settings=settings, random_seed=args.seed)
    if args.format == "json":
        print(json.dumps(results_json(results, spec), indent=2))
    else:
        print(format_table(results, spec))
    if args.out:
        save_results(results, args.out)
        print(f"asuc-bayes: results written to {args.out}", file=sys.stderr)
    unconverged = [r.patient.id for r in results if r.status != "ok"]
    if unconverged and not args.allow_unconverged:
        print(
            f"asuc-bayes: unconverged posterior for {', '.join(unconverged)}: do not use these "
            "results as they are (rerun with more --tune/--draws, or pass --allow-unconverged)",
            file=sys.stderr,
        )
        return EXIT_UNCONVERGED
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
