"""What the commands share: exit codes, error and exit messages, reading the selected
patients (default and library models), per-patient library runs, population-fit identity,
the progress bar and the HTML reports of ``forecast`` and ``optimize``.

Only light modules at the top (NumPy, PyYAML): the heavy ones are imported inside the
functions that need them (tests/test_startup.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asuc_bayes.data.dataset import InputError, example_path, read_patients
from asuc_bayes.interfaces.cli.arguments import library_sampler_options, spec_and_settings
from asuc_bayes.provenance import file_sha256
from asuc_bayes.spec.config import ModelSpecError
from asuc_bayes.spec.declaration import MissingCovariateError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from asuc_bayes.inference.fit_identity import FitIdentity
    from asuc_bayes.inference.forecast import SamplerSettings
    from asuc_bayes.spec import ModelDeclaration
    from asuc_bayes.spec.config import ModelSpec

#: Exit codes: success; an unconverged posterior (without ``--allow-unconverged``); bad input,
#: options or model file.
EXIT_OK, EXIT_UNCONVERGED, EXIT_INPUT = 0, 1, 2

#: The errors of bad input data, options or model files: exit code 2 with the message.
INPUT_ERRORS = (InputError, ModelSpecError, ValueError, OSError)

#: What a missing covariate's error adds: where the covariate comes from.
MISSING_COVARIATE_HINT = (
    "(a NONMEM dataset gives it as a column, e.g. ALB or ADA; or ask for an imputation with "
    "--impute, see --help)"
)


def error(message: str) -> int:
    """Print ``message`` as the CLI's error on stderr and return :data:`EXIT_INPUT`."""
    print(f"asuc-bayes: error: {message}", file=sys.stderr)
    return EXIT_INPUT


def input_error(exc: Exception) -> int:
    """:func:`error` for one of :data:`INPUT_ERRORS`; a covariate a library model needs and
    the patient lacks with where it comes from."""
    if isinstance(exc, MissingCovariateError):
        return error(f"{exc.problem} {MISSING_COVARIATE_HINT}")
    return error(str(exc))


def note_library_only_options(args: argparse.Namespace) -> None:
    """A note on stderr for each option given that only library models use (``--covariates``,
    ``--impute``): the ASUC model takes each patient's baseline WT and CRP."""
    given = {
        "--covariates": getattr(args, "covariates", None),
        "--impute": getattr(args, "impute", None),
    }
    for option, value in given.items():
        if value:
            shown = " ".join(value) if isinstance(value, list) else value
            print(
                f"asuc-bayes: note: {option} {shown} has no effect here: the ASUC model takes each "
                "patient's baseline WT and CRP (it applies to library models that declare other "
                "covariates, --model NAME)",
                file=sys.stderr,
            )


def write_library_csv(results: list) -> None:
    """Library-model forecasts (:class:`~asuc_bayes.inference.result.LibraryForecast`) as CSV
    on stdout, one row per patient (:func:`asuc_bayes.interfaces.output.library_forecast_row`)."""
    from asuc_bayes.interfaces.output import (
        library_forecast_columns,
        library_forecast_row,
        write_csv,
    )

    entries = [result.to_json() for result in results]
    names = list(dict.fromkeys(name for entry in entries for name in entry["parameters"]))
    rows = [library_forecast_row(entry) for entry in entries]
    write_csv(rows, library_forecast_columns(names), sys.stdout)


def exit_for_unconverged(unconverged: list[str], args: argparse.Namespace) -> int:
    """:data:`EXIT_UNCONVERGED` (with a warning) when a patient in ``unconverged`` and no
    ``--allow-unconverged``, else :data:`EXIT_OK`."""
    if unconverged and not args.allow_unconverged:
        print(
            f"asuc-bayes: unconverged posterior for {', '.join(unconverged)}: do not use these "
            "results as they are (rerun with more --tune/--draws, or pass --allow-unconverged)",
            file=sys.stderr,
        )
        return EXIT_UNCONVERGED
    return EXIT_OK


def unconverged_exit(results: list, args: argparse.Namespace) -> int:
    """:func:`exit_for_unconverged` of default-model forecast results."""
    return exit_for_unconverged([r.patient.id for r in results if r.status != "ok"], args)


def exit_after_errors(
    errors: list[dict[str, str]], unconverged: list[str], args: argparse.Namespace
) -> int:
    """Print each patient's error (``{"id", "error"}``); :data:`EXIT_INPUT` if any, else
    :func:`exit_for_unconverged`."""
    for entry in errors:
        print(f"asuc-bayes: error: {entry['error']}", file=sys.stderr)
    if errors:
        return EXIT_INPUT
    return exit_for_unconverged(unconverged, args)


def declaration_json(declaration: ModelDeclaration, *, source: bool = False) -> dict[str, Any]:
    """The ``model`` object of a library model's JSON output (``source``: with its source)."""
    model = {
        "name": declaration.name,
        "sha256": file_sha256(declaration.path),
        "variants": list(declaration.variants),
        "structure": declaration.structure,
    }
    if source:
        model["source"] = declaration.source
    return model


def spec_json(spec: ModelSpec) -> dict[str, Any]:
    """The ``model`` object of a default-path JSON output: name, hash and variants."""
    return {"name": spec.name, "sha256": spec.sha256, "variants": list(spec.variants)}


def read_dataset(
    args: argparse.Namespace,
    default_infusion_duration_day: float,
    collect_errors: bool,
    allow_unsupported: bool = False,
) -> tuple[list, list[InputError], dict[str, str]]:
    """The selected patients, the bad patients' errors and the declared covariate units
    (``allow_unsupported``: keep steady-state doses and resets, for the library path); notes
    about ignored records on stderr.

    Raises ``InputError``/``OSError`` for bad data and ``ValueError`` for unknown IDs.
    """
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


def load_patients(args: argparse.Namespace, spec: ModelSpec) -> list:
    """The selected patients of the data options for the default model ``spec``."""
    return read_dataset(args, spec.pk.default_infusion_duration_day, collect_errors=False)[0]


def default_inputs(args: argparse.Namespace) -> tuple[ModelSpec, SamplerSettings, list]:
    """The default-path model, sampler settings and selected patients of the options."""
    spec, settings = spec_and_settings(args)
    return spec, settings, load_patients(args, spec)


def library_patients(
    args: argparse.Namespace, model: str, allow_unsupported: bool = False
) -> tuple[ModelDeclaration, list, dict[str, str]]:
    """The library model ``model`` (with ``--variant``), the selected patients and the
    declared covariate units."""
    from asuc_bayes.spec import load_declaration

    declaration = load_declaration(model, variants=getattr(args, "variant", None) or ())
    patients, _, units = read_dataset(
        args,
        declaration.default_infusion_duration_day,
        collect_errors=False,
        allow_unsupported=allow_unsupported,
    )
    return declaration, patients, units


def for_each_library_patient(
    compute: Callable[..., Any],
    declaration: ModelDeclaration,
    patients: list,
    units: dict[str, str],
    seed: int,
    **options: Any,
) -> list:
    """``compute(declaration, patient, covariates, random_seed=..., **options)`` for each
    patient: its baseline covariates under the declared ``units`` and its own seed."""
    from asuc_bayes.inference.covariates import baseline_covariates
    from asuc_bayes.inference.forecast import patient_seed

    return [
        compute(
            declaration,
            patient,
            baseline_covariates(patient, declaration, units),
            random_seed=patient_seed(seed, patient.id),
            **options,
        )
        for patient in patients
    ]


def identified_fit(path: Path | str, allow: bool, option: str, tree=None) -> FitIdentity:
    """The identity of the population fit at ``path`` (``tree``: already loaded); raises
    :class:`~asuc_bayes.inference.fit_identity.UnconvergedFitError` (a ``ValueError``) for a fit
    that failed its gates unless ``allow`` (``option`` names it)."""
    from asuc_bayes.inference.fit_identity import identify_fit, require_converged

    fit = identify_fit(path, tree)
    require_converged(fit, allow=allow, option=option)
    return fit


class Progress:
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
        """End the bar's line."""
        if self.enabled:
            print(file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()  # end the bar's line whether the work finished or failed


def write_reports(forecasts: list, dosing: dict[str, dict], args: argparse.Namespace) -> int:
    """``--report FILE``: one HTML report per forecast with its ``dosing`` section;
    :data:`EXIT_OK`, or :data:`EXIT_INPUT` when the file cannot be written."""
    from asuc_bayes.interfaces.report import write_patient_reports

    try:
        written = write_patient_reports(
            forecasts, args.report, dosing=dosing, random_seed=args.seed
        )
    except OSError as exc:
        return error(f"--report {args.report}: {exc.strerror or exc}")
    where = written[0] if len(written) == 1 else f"{len(written)} files ({written[0]} ...)"
    print(f"asuc-bayes: report written to {where}", file=sys.stderr)
    return EXIT_OK


def write_library_report_files(
    args, declaration, patients, covariates, results, dosing: dict[str, dict] | None = None
) -> int:
    """``forecast``/``optimize --model NAME --report FILE``: one HTML report per patient
    (:mod:`asuc_bayes.interfaces.report.library_html`; ``dosing``: patient ID → its dose plan's
    JSON); :data:`EXIT_OK`, or :data:`EXIT_INPUT` when a file cannot be written."""
    from asuc_bayes.inference.forecast import patient_seed
    from asuc_bayes.interfaces.report.library_html import LibraryReportItem, write_library_reports

    sha256 = file_sha256(declaration.path)
    items = [
        LibraryReportItem(
            result, patient, declaration, dict(given), sha256, patient_seed(args.seed, patient.id)
        )
        for patient, given, result in zip(patients, covariates, results, strict=True)
    ]
    try:
        written = write_library_reports(
            items,
            args.report,
            random_seed=args.seed,
            options=library_sampler_options(args, adaptive=True),
            dosing=dosing,
        )
    except OSError as exc:
        return error(f"--report {args.report}: {exc.strerror or exc}")
    where = written[0] if len(written) == 1 else f"{len(written)} files ({written[0]} ...)"
    print(f"asuc-bayes: report written to {where}", file=sys.stderr)
    return EXIT_OK
