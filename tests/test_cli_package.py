"""The command line as a package: its modules, their size, each command's help, and the
library-model fit without ``--draws`` (it passed ``draws=None`` on and raised a TypeError)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from asuc_bayes.interfaces import cli
from asuc_bayes.interfaces.cli import COMMANDS, EXIT_OK, build_parser, main
from asuc_bayes.interfaces.cli.arguments import library_fit_settings

PACKAGE = Path(cli.__file__).parent
MODULES = (
    "__init__",
    "__main__",
    "app",
    "arguments",
    "common",
    "dosing",
    "examples",
    "forecast",
    "library_fit",
    "model_average",
    "models",
    "option_groups",
    "parser",
    "population",
    "studies",
)
#: Most lines a module of the package may have.
MAX_LINES = 400


def test_the_package_has_its_modules_each_small():
    found = {path.stem for path in PACKAGE.glob("*.py")}
    assert found == set(MODULES)
    for name in MODULES:
        lines = len((PACKAGE / f"{name}.py").read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES, f"{name}.py has {lines} lines"
    assert not (PACKAGE.parent / "library_cli.py").exists()
    assert not (PACKAGE.parent / "cli.py").exists()


def test_the_modules_import_and_the_entry_point_is_main():
    for name in MODULES:
        if name not in ("__init__", "__main__"):
            importlib.import_module(f"asuc_bayes.interfaces.cli.{name}")
    pyproject = (PACKAGE.parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert 'asuc-bayes = "asuc_bayes.interfaces.cli:main"' in pyproject


def test_every_command_has_a_handler():
    subparsers = next(
        action for action in build_parser()._actions if action.dest == "command"
    )  # argparse keeps the sub-parsers on the action only
    assert set(subparsers.choices) == set(COMMANDS)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_of_each_command(capsys, command):
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("usage: asuc-bayes")
    if command is not None:
        assert command in out.splitlines()[0]


def _fit_args(*extra: str):
    return build_parser().parse_args(["fit", "cohort.csv", "--model", "wojciechowski2017", *extra])


def test_fit_help_states_the_library_fit_defaults():
    """The help texts of fit spell the library popPK fit's and the marginal fit's defaults
    out; they must be the defaults of LibraryFitSettings and default_settings("marginal"),
    not a stale copy."""
    import argparse

    from asuc_bayes.inference.library_population import LibraryFitSettings
    from asuc_bayes.inference.population import default_settings

    defaults = LibraryFitSettings()
    parser = build_parser()
    fit = next(
        action.choices["fit"]
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    helps = {a.dest: a.help for a in fit._actions}
    stated = f"{defaults.draws} draws after {defaults.tune}, {defaults.target_accept:g}"
    assert stated in helps["method"]
    marginal = default_settings("marginal")
    stated = (
        f"independence Metropolis-Hastings from the Laplace approximation ({marginal.draws} "
        f"draws per chain; NUTS, {marginal.tune} tuning steps, target acceptance "
        f"{marginal.target_accept:g}, low-rank mass matrix, when it is refused)"
    )
    assert marginal.sampler == "imh" and marginal.adaptation == "low_rank"
    assert stated in " ".join(helps["method"].split())
    assert f"{defaults.draws} for a library popPK fit" in helps["draws"]
    assert f"{defaults.target_accept:g} for a library popPK fit" in helps["target_accept"]


def test_library_fit_settings_without_draws_are_the_defaults():
    """``fit --model NAME`` leaves --draws, --tune and --target-accept None when not given:
    the library fit's own defaults apply (this raised a TypeError)."""
    from asuc_bayes.inference.library_population import LibraryFitSettings

    assert library_fit_settings(_fit_args()) == LibraryFitSettings()
    given = library_fit_settings(_fit_args("--draws", "300", "--tune", "200", "--chains", "2"))
    assert (given.draws, given.tune, given.chains) == (300, 200, 2)
    assert given.target_accept == LibraryFitSettings().target_accept
    with pytest.raises(ValueError, match="--tune"):
        library_fit_settings(_fit_args("--tune", "0"))


def test_library_fit_without_draws_reaches_the_fit(monkeypatch, tmp_path, capsys):
    """The command itself: without --draws the fit gets the default settings (the fit is
    replaced by a stand-in that records them, so nothing is sampled)."""
    from asuc_bayes.inference import library_population
    from asuc_bayes.studies.library_simulate import simulate_library_cohort
    from asuc_bayes.studies.simulate import write_cohort

    received = {}

    class Stop(Exception):
        pass

    def fit_library_population(data, *, settings, random_seed):
        received["settings"] = settings
        raise Stop

    monkeypatch.setattr(library_population, "fit_library_population", fit_library_population)
    cohort = simulate_library_cohort("wojciechowski2017", 3, random_seed=2, outcome=False)
    data, _ = write_cohort(cohort, tmp_path / "c.csv")
    with pytest.raises(Stop):
        main(["fit", str(data), "--model", "wojciechowski2017"])
    assert received["settings"] == library_population.LibraryFitSettings()
