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

from asuc_bayes.comparison import SCENARIOS, compare_patient, run_study, write_study
from asuc_bayes.config import DEFAULT_MODEL, ModelSpec, ModelSpecError, load_model
from asuc_bayes.dataset import InputError, example_path, read_patients
from asuc_bayes.forecast import (
    SamplerSettings,
    forecast_patients,
    results_json,
    save_results,
)
from asuc_bayes.report import format_comparison, format_study, format_table

EXIT_OK, EXIT_UNCONVERGED, EXIT_INPUT = 0, 1, 2

FORECAST_EXAMPLES = """examples:
  asuc-bayes forecast --example                    bundled example patients, table
  asuc-bayes forecast patients.csv --format json   NONMEM-style CSV, JSON on stdout
  asuc-bayes forecast patient.toml --id P01 --out p01.nc --seed 7
  asuc-bayes forecast patients.csv --variant log_crp --variant reference_weight_63kg
  asuc-bayes forecast patients.csv --model fit.nc   integrate over a population fit's posterior

exit codes: 0 ok; 1 an unconverged posterior (unless --allow-unconverged); 2 bad input
"""


COMPARE_PATIENT_EXAMPLES = """examples:
  asuc-bayes compare-patient --example
  asuc-bayes compare-patient patients.csv --id P03 --format json

Flags: different_class (MAP class differs from the posterior's P(high risk) >= 0.5 decision),
uncertain_class (0.2 <= P(high risk) <= 0.8 while MAP reports a class), surprising_observation
(leave-one-out predictive tail probability < 0.01: antibodies? a sampling error?).
exit codes: 0 ok; 1 an unconverged posterior (unless --allow-unconverged); 2 bad input
"""

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
    )
    sub = parser.add_subparsers(dest="command", required=True)
    forecast = sub.add_parser(
        "forecast",
        help="posterior of CL, V, AUC_w2-4, ln(AUC/CL) and 90-day colectomy risk per patient",
        epilog=FORECAST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(forecast)
    forecast.add_argument("--format", choices=("table", "json"), default="table")
    _add_sampling_options(forecast)
    forecast.add_argument("--out", type=Path, help="write the results DataTree (netCDF)")
    forecast.add_argument(
        "--population-draws",
        type=int,
        default=200,
        metavar="S",
        help="with --model FIT.nc: population posterior draws integrated over (200)",
    )
    _add_unconverged_option(forecast)

    compare_patient = sub.add_parser(
        "compare-patient",
        help="MAP (the published tool) against the full posterior for each patient",
        epilog=COMPARE_PATIENT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(compare_patient)
    compare_patient.add_argument("--format", choices=("table", "json"), default="table")
    _add_sampling_options(compare_patient)
    _add_unconverged_option(compare_patient)

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
        choices=sorted(SCENARIOS),
        help="scenario to run (repeatable; all when none is given)",
    )
    compare.add_argument("--format", choices=("table", "json"), default="table")
    compare.add_argument("--out", type=Path, help="directory for figures (PNG) and tables (CSV)")
    compare.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _add_sampling_options(compare)
    _add_population_commands(sub)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="?", help="NONMEM-style .csv or patient .toml/.yaml")
    parser.add_argument("--example", action="store_true", help="use the bundled examples")
    parser.add_argument(
        "--id", action="append", dest="ids", metavar="ID", help="only this patient (repeatable)"
    )


def _add_sampling_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain (1000)")
    parser.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (1000)")
    parser.add_argument("--chains", type=int, default=4, help="chains (4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--target-accept",
        type=float,
        default=0.95,
        help="NUTS target acceptance (0.95; escalated to 0.99 on failure)",
    )
    parser.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
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


def _add_unconverged_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unconverged",
        action="store_true",
        help="exit 0 even when a posterior fails the convergence gates",
    )


def _spec_and_settings(args: argparse.Namespace) -> tuple[ModelSpec, SamplerSettings]:
    """The model and sampler settings of the sampling options (raises on bad values)."""
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
    if args.example == bool(args.data):
        raise ValueError("give either a data file or --example")
    path = example_path() if args.example else Path(args.data)
    dataset = read_patients(
        path, default_infusion_duration_day=spec.pk.default_infusion_duration_day
    )
    patients = list(dataset.patients)
    if args.ids:
        known = {p.id for p in patients}
        missing = [i for i in args.ids if i not in known]
        if missing:
            raise ValueError(f"--id {', '.join(missing)}: not in {path} (IDs: {sorted(known)})")
        patients = [p for p in patients if p.id in args.ids]
    for note in dataset.notes:
        print(f"asuc-bayes: note: {note}", file=sys.stderr)
    return patients


def _unconverged_exit(results, args: argparse.Namespace) -> int:
    unconverged = [r.patient.id for r in results if r.status != "ok"]
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
    args = _parser().parse_args(argv)
    commands = {
        "forecast": _forecast,
        "compare-patient": _compare_patient,
        "compare": _compare,
        **POPULATION_COMMANDS,
    }
    return commands[args.command](args)


def _forecast(args: argparse.Namespace) -> int:
    if str(args.model).endswith(".nc"):
        return _forecast_population(args)
    try:
        spec, settings = _spec_and_settings(args)
        patients = _load_patients(args, spec)
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    results = forecast_patients(patients, spec, settings=settings, random_seed=args.seed)
    if args.format == "json":
        print(json.dumps(results_json(results, spec), indent=2))
    else:
        print(format_table(results, spec))
    if args.out:
        save_results(results, args.out)
        print(f"asuc-bayes: results written to {args.out}", file=sys.stderr)
    return _unconverged_exit(results, args)


def _compare_patient(args: argparse.Namespace) -> int:
    try:
        spec, settings = _spec_and_settings(args)
        patients = _load_patients(args, spec)
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    results = forecast_patients(patients, spec, settings=settings, random_seed=args.seed)
    comparisons = [compare_patient(spec, r, random_seed=args.seed) for r in results]
    if args.format == "json":
        payload = {"model": {"name": spec.name, "sha256": spec.sha256}, "patients": comparisons}
        print(json.dumps(payload, indent=2))
    else:
        print(format_comparison(comparisons, spec))
    return _unconverged_exit(results, args)


def _compare(args: argparse.Namespace) -> int:
    try:
        spec, settings = _spec_and_settings(args)
        if args.n < 1:
            raise ValueError(f"--n must be a positive number of patients, got {args.n}")
    except (ModelSpecError, ValueError) as exc:
        return _error(str(exc))
    names = args.scenario or sorted(SCENARIOS)
    show_progress = not args.quiet and sys.stderr.isatty()
    studies = []
    for name in names:

        def progress(done: int, total: int, name: str = name) -> None:
            if show_progress:
                print(f"\r{name}: {done}/{total} patients", end="", file=sys.stderr)

        studies.append(
            run_study(spec, name, args.n, args.seed, settings=settings, progress=progress)
        )
        if show_progress:
            print(file=sys.stderr)
    if args.out:
        written = write_study(studies, args.out)
        print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps([s.to_json() for s in studies], indent=2))
    else:
        print(format_study(studies))
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
    _add_fit_command(sub)
    _add_evaluate_command(sub)


def _simulate(args: argparse.Namespace) -> int:
    from asuc_bayes.report import format_cohort_summary
    from asuc_bayes.simulate import TABLE1, cohort_summary, simulate_cohort, write_cohort

    try:
        spec = load_model(args.model, variants=args.variant)
        if args.n < 1:
            raise ValueError(f"--n must be a positive number of patients, got {args.n}")
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

        from asuc_bayes.dataset import write_nonmem_csv

        with tempfile.TemporaryDirectory() as folder:
            path = write_nonmem_csv(cohort.patients, Path(folder) / "cohort.csv")
            sys.stdout.write(path.read_text())
        print(summary, file=sys.stderr)
    return EXIT_OK


FIT_EXAMPLES = """examples:
  asuc-bayes fit cohort.csv                                 weak priors, table
  asuc-bayes fit cohort.csv --prior published --out fit.nc --seed 3
  asuc-bayes fit cohort.csv --two-stage --format json

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
        help="PK posterior first, then the Weibull model on it (default: joint fit)",
    )
    fit.add_argument("--format", choices=("table", "json"), default="table")
    fit.add_argument("--out", type=Path, help="write the fit DataTree (netCDF)")
    _add_sampling_options(fit)
    fit.set_defaults(target_accept=None)
    _add_unconverged_option(fit)


def _fit(args: argparse.Namespace) -> int:
    from asuc_bayes.dataset import read_cohort
    from asuc_bayes.population import PopulationSettings, fit_population, published_values
    from asuc_bayes.report import format_fit

    try:
        spec = load_model(args.model, variants=args.variant)
        spec.priors(args.prior)
        settings = PopulationSettings(
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            sampler=args.sampler,
            **({"target_accept": args.target_accept} if args.target_accept else {}),
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
        method="two_stage" if args.two_stage else "joint",
        settings=settings,
        random_seed=args.seed,
    )
    summary = result.summary()
    if args.format == "json":
        print(json.dumps(summary, indent=2))
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

writes pcvpc.png, km_vpc.png, roc.png, metrics.json and CSV tables
exit codes: 0 ok; 2 bad input
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


def _evaluate(args: argparse.Namespace) -> int:
    from asuc_bayes.evaluation import evaluate_fit, write_evaluation
    from asuc_bayes.population import load_fit
    from asuc_bayes.population_draws import spec_of_fit
    from asuc_bayes.report import format_evaluation

    try:
        if args.replicates < 10 or args.bootstrap < 10:
            raise ValueError("--replicates and --bootstrap must be at least 10")
        tree = load_fit(args.fit)
        spec = spec_of_fit(tree)
    except (ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    result = evaluate_fit(
        tree, spec, replicates=args.replicates, bootstrap=args.bootstrap, random_seed=args.seed
    )
    written = write_evaluation(result, args.out)
    if args.format == "json":
        print(json.dumps(result["metrics"], indent=2))
    else:
        print(format_evaluation(result["metrics"]))
    print(f"asuc-bayes: {len(written)} files written to {args.out}", file=sys.stderr)
    return EXIT_OK


def _forecast_population(args: argparse.Namespace) -> int:
    """``forecast --model FIT.nc``: integrate over the fitted population posterior."""
    from asuc_bayes.population_draws import PopulationDraws
    from asuc_bayes.population_forecast import forecast_patients_with_population

    try:
        if args.variant:
            raise ValueError("--variant cannot be combined with a population fit (--model *.nc)")
        if args.population_draws < 2:
            raise ValueError(f"--population-draws must be at least 2, got {args.population_draws}")
        draws = PopulationDraws.from_fit(args.model, n=args.population_draws, random_seed=args.seed)
        patients = _load_patients(args, draws.spec)
    except (InputError, ModelSpecError, ValueError, OSError) as exc:
        return _error(str(exc))
    results = forecast_patients_with_population(
        patients, draws, random_seed=args.seed, chains=args.chains, draws_per_chain=args.draws
    )
    if args.format == "json":
        payload = results_json(results, draws.spec)
        payload["model"]["population_fit"] = str(args.model)
        print(json.dumps(payload, indent=2))
    else:
        print(format_table(results, draws.spec))
    if args.out:
        save_results(results, args.out)
        print(f"asuc-bayes: results written to {args.out}", file=sys.stderr)
    return _unconverged_exit(results, args)


POPULATION_COMMANDS = {"simulate": _simulate, "fit": _fit, "evaluate": _evaluate}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
