"""Command-line interface: ``asuc-bayes COMMAND`` (see ``asuc-bayes --help``).

The CLI only parses arguments, calls the public API and formats its results.

Exit codes: 0 success; 1 at least one patient's posterior is unconverged (divergences,
R-hat > 1.01 or bulk ESS < 400) and ``--allow-unconverged`` was not given; 2 bad input,
bad options or a broken model file.

The package's modules: :mod:`~asuc_bayes.interfaces.cli.parser` (the argument parser, with
:mod:`~asuc_bayes.interfaces.cli.option_groups` and the ``--help`` examples of
:mod:`~asuc_bayes.interfaces.cli.examples`), :mod:`~asuc_bayes.interfaces.cli.arguments`
(options to API inputs), :mod:`~asuc_bayes.interfaces.cli.common` (exit codes, reading
patients, progress bar) and one module per command family: ``forecast`` (forecast,
compare-patient), ``dosing`` (optimize), ``model_average``, ``studies`` (sensitivity,
simulate, compare, validate), ``population`` (fit, evaluate, sbc), ``models`` and ``app``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

# Only light modules here (NumPy, PyYAML): each command imports what it needs in its handler,
# so that --help, argument errors and a forecast from cached densities start in a fraction of
# a second (tests/test_startup.py checks that PyMC, PyTensor and Dask are not imported).
from asuc_bayes.errors import AsucBayesError
from asuc_bayes.interfaces.cli.app import run_app
from asuc_bayes.interfaces.cli.arguments import SCENARIO_NAMES
from asuc_bayes.interfaces.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNCONVERGED,
    Progress,
    error,
)
from asuc_bayes.interfaces.cli.dosing import run_optimize
from asuc_bayes.interfaces.cli.forecast import run_compare_patient, run_forecast
from asuc_bayes.interfaces.cli.models import run_models
from asuc_bayes.interfaces.cli.parser import build_parser
from asuc_bayes.interfaces.cli.population import run_evaluate, run_fit, run_sbc
from asuc_bayes.interfaces.cli.studies import (
    run_compare,
    run_sensitivity,
    run_simulate,
    run_validate,
)
from asuc_bayes.interfaces.options import OptionError, check_options

__all__ = [
    "COMMANDS",
    "EXIT_INPUT",
    "EXIT_OK",
    "EXIT_UNCONVERGED",
    "SCENARIO_NAMES",
    "Progress",
    "build_parser",
    "main",
]

#: The handler of each command: parsed options in, exit code out.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "forecast": run_forecast,
    "compare-patient": run_compare_patient,
    "optimize": run_optimize,
    "sensitivity": run_sensitivity,
    "compare": run_compare,
    "app": run_app,
    "simulate": run_simulate,
    "fit": run_fit,
    "evaluate": run_evaluate,
    "sbc": run_sbc,
    "models": run_models,
    "validate": run_validate,
}


def main(argv: list[str] | None = None) -> int:
    """Run ``asuc-bayes`` with ``argv`` (default: the process's arguments); the exit code.

    A malformed option prints the usage and raises ``SystemExit(2)`` (argparse), as does
    ``--help`` (``SystemExit(0)``); every other outcome is the returned exit code.
    """
    args = build_parser().parse_args(argv)
    try:
        check_options(args.command, args)  # every option once, before any work
    except OptionError as exc:
        return error(str(exc))
    try:
        return COMMANDS[args.command](args)
    except AsucBayesError as exc:  # an expected error a handler did not word: still no traceback
        return error(str(exc))
