"""The command line's options checked once, before any work starts.

:func:`check_options` applies one rule per option (by its argparse ``dest``) to the parsed
arguments: numbers must be finite and within documented bounds (:data:`RULES`; the caps keep
a typo such as ``--draws 10000000`` from running for days or exhausting memory), output
files must be creatable (their folder exists, is a folder and is writable; the path is not a
folder) and output folders must not be files. A violation raises :class:`OptionError` whose
message names the option, the value and the fix; the CLI prints it and exits with code 2.

Examples
--------
>>> import argparse
>>> check_options("forecast", argparse.Namespace(draws=1000, seed=0))
>>> check_options("forecast", argparse.Namespace(seed=-1))
Traceback (most recent call last):
...
asuc_bayes.interfaces.options.OptionError: --seed -1: must be an integer from 0 to \
4294967295 (fix: give a non-negative seed)
>>> check_options("forecast", argparse.Namespace(covariates="last"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
asuc_bayes.interfaces.options.OptionError: --covariates last: must be one of nonmem, locf (fix: ...
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asuc_bayes.errors import AsucBayesError

__all__ = ["RULES", "Choice", "Number", "OptionError", "OutputDir", "OutputFile", "check_options"]


class OptionError(AsucBayesError, ValueError):
    """A command-line option with a value that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Number:
    """A finite number in [low, high] (bounds excluded when ``*_open``); ``integer``: whole;
    ``allow_inf``: +inf accepted (it means "none", e.g. no upper limit of quantification)."""

    low: float
    high: float
    integer: bool = False
    low_open: bool = False
    high_open: bool = False
    allow_inf: bool = False
    fix: str = ""

    def describe(self) -> str:
        if self.integer:
            return f"an integer from {int(self.low)} to {int(self.high)}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        upper = "inf" if self.allow_inf else f"{self.high:g}"
        return f"a number in {left}{self.low:g}, {upper}{right}"

    def check(self, option: str, value: Any) -> None:
        number = float(value)
        if self.allow_inf and number == math.inf:
            return
        ok = math.isfinite(number)
        ok = ok and (number > self.low if self.low_open else number >= self.low)
        ok = ok and (number < self.high if self.high_open else number <= self.high)
        if not ok:
            fix = f" (fix: {self.fix})" if self.fix else ""
            raise OptionError(f"{option} {_shown(value)}: must be {self.describe()}{fix}")


@dataclass(frozen=True)
class Choice:
    """One of a few words (``choices``), case as given."""

    choices: tuple[str, ...]
    fix: str = ""

    def check(self, option: str, value: Any) -> None:
        if value not in self.choices:
            fix = f" (fix: {self.fix})" if self.fix else ""
            raise OptionError(f"{option} {value}: must be one of {', '.join(self.choices)}{fix}")


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _probe_writable(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (None if they can): tried, not guessed
    (permission bits say nothing for root or on a read-only file system)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".asuc-bayes-write-test-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@dataclass(frozen=True)
class OutputFile:
    """A file to write: not a folder, in an existing, writable folder."""

    example: str = "results.nc"

    def check(self, option: str, value: Any) -> None:
        path = Path(value)
        if path.is_dir():
            raise OptionError(
                f"{option} {path}: is a folder (fix: name a file, e.g. {path / self.example})"
            )
        folder = path.parent
        if not folder.exists():
            raise OptionError(
                f"{option} {path}: folder {folder} does not exist (fix: create it first, "
                f"e.g. mkdir -p {folder}, or choose another folder)"
            )
        if not folder.is_dir():
            raise OptionError(f"{option} {path}: {folder} is not a folder (fix: another path)")
        problem = _probe_writable(folder)
        if problem:
            raise OptionError(
                f"{option} {path}: cannot write in {folder} ({problem}) (fix: choose a "
                "writable folder)"
            )


@dataclass(frozen=True)
class OutputDir:
    """A folder to write into (created if missing): not a file, under a writable folder."""

    def check(self, option: str, value: Any) -> None:
        path = Path(value)
        if path.exists() and not path.is_dir():
            raise OptionError(
                f"{option} {path}: is a file, not a folder (fix: name a folder, e.g. "
                f"{path.with_suffix('')}-out/)"
            )
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise OptionError(f"{option} {path}: {existing} is a file (fix: another path)")
        problem = _probe_writable(existing)
        if problem:
            raise OptionError(
                f"{option} {path}: cannot write in {existing} ({problem}) (fix: choose a "
                "writable folder)"
            )


#: Largest draws/tuning steps per chain and chains: beyond them a run would take hours
#: (IMH: ~0.05 s per patient at 4 x 1000 draws, linear in draws x chains).
MAX_DRAWS = 100_000
MAX_CHAINS = 64
MAX_SEED = 2**32 - 1
MAX_DAY = 365.0
MAX_DOSE_MG = 10_000.0

_COUNT = "lower it"
_DOSE = Number(0, MAX_DOSE_MG, low_open=True, fix="a dose in mg, > 0")
_DAYS = Number(0, MAX_DAY, fix="days since the first dose, from 0 to 365")
_FRACTION = Number(0, 1, low_open=True, high_open=True, fix="a fraction, e.g. 0.2 for 20 %")

#: Rule of each option by argparse ``dest``; :data:`COMMAND_RULES` overrides per command.
RULES: dict[str, Any] = {
    "draws": Number(1, MAX_DRAWS, integer=True, fix="draws per chain, e.g. 1000"),
    "tune": Number(0, MAX_DRAWS, integer=True, fix="tuning steps per chain, e.g. 1000"),
    "chains": Number(2, MAX_CHAINS, integer=True, fix="R-hat needs at least 2 chains"),
    "seed": Number(0, MAX_SEED, integer=True, fix="give a non-negative seed"),
    "target_accept": Number(0.5, 1, high_open=True, fix="e.g. 0.95 (NUTS)"),
    "workers": Number(1, 256, integer=True, fix="worker processes, e.g. 2"),
    "population_draws": Number(2, 5000, integer=True, fix="e.g. 200"),
    "grid_points": Number(41, 1001, integer=True, fix="quadrature points per axis, e.g. 201"),
    "n": Number(1, 100_000, integer=True, fix="a positive number of patients"),
    "port": Number(1, 65535, integer=True, fix="e.g. 8000"),
    "target_risk": _FRACTION,
    "probability": _FRACTION,
    "dose_time": _DAYS,
    "vial_mg": _DOSE,
    "max_mg_kg": Number(0, 100, low_open=True, fix="a dose cap in mg/kg, e.g. 20"),
    "timing_dose_mg": _DOSE,
    "timing_days": _DAYS,
    "sample_days": _DAYS,
    "n_simulations": Number(1, 100_000, integer=True, fix="e.g. 400"),
    "lloq": Number(0, 1000, fix="the assay's LLOQ in mg/L, e.g. 0.3"),
    "uloq": Number(0, 1000, low_open=True, allow_inf=True, fix="the assay's ULOQ in mg/L"),
    "trough_target": Number(0, 1000, low_open=True, fix="a trough in mg/L, e.g. 5"),
    "interval_days": Number(0, MAX_DAY, low_open=True, fix="days between infusions, e.g. 56"),
    "trough_dose_mg": _DOSE,
    "maintenance_doses": Number(1, 50, integer=True, fix="e.g. 1"),
    "replicates": Number(1, 100_000, integer=True, fix=_COUNT),
    "subjects": Number(2, 10_000, integer=True, fix="subjects per cohort, at least 2"),
    "rank_draws": Number(1, MAX_DRAWS, integer=True, fix="e.g. 99"),
    "bins": Number(1, 1000, integer=True, fix="e.g. 10"),
    "bootstrap": Number(10, 1_000_000, integer=True, fix="e.g. 2000"),
    "out": OutputFile(),
    "report": OutputFile("report.html"),
    "checkpoint": OutputDir(),
    "covariates": Choice(
        ("nonmem", "locf"),
        fix="nonmem: a record's covariate values hold over the interval that ends at it "
        "(NONMEM); locf: from the record onward (last value carried forward)",
    ),
}
COMMAND_RULES: dict[tuple[str, str], Any] = {
    ("sensitivity", "population_draws"): Number(0, 5000, integer=True, fix="0: none; e.g. 200"),
    ("evaluate", "replicates"): Number(10, 100_000, integer=True, fix="VPC replicates, >= 10"),
    ("simulate", "out"): OutputFile("cohort.csv"),
    ("fit", "out"): OutputFile("fit.nc"),
    **{
        (command, "out"): OutputDir()
        for command in ("sensitivity", "compare", "evaluate", "sbc", "validate")
    },
}


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_options(command: str, args: argparse.Namespace) -> None:
    """Check every option of ``args`` that has a rule (raises :class:`OptionError`)."""
    for dest, value in vars(args).items():
        rule = COMMAND_RULES.get((command, dest)) or RULES.get(dest)
        if rule is None or value is None:
            continue
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        for item in values:
            rule.check(_option(dest), item)
