"""Start-up: what the command line imports, the lazy public names, and the helpers that
replaced heavy imports (checked against the libraries they stand in for)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

HEAVY = ("pymc", "pytensor", "dask", "arviz", "matplotlib", "shiny")


def _imported_after(code: str) -> list[str]:
    """Top-level packages of :data:`HEAVY` in ``sys.modules`` after running ``code`` in a
    fresh interpreter."""
    report = "import json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    script = f"{code}\n{report}"
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    return [name for name in HEAVY if name in loaded]


@pytest.mark.parametrize("module", ["asuc_bayes", "asuc_bayes.interfaces.cli"])
def test_importing_the_cli_loads_no_pymc_pytensor_or_dask(module):
    assert _imported_after(f"import {module}") == []


def test_help_and_argument_errors_load_nothing_heavy():
    code = (
        "from asuc_bayes.interfaces.cli import main\n"
        "assert main(['forecast', '--example', '--seed', '-1']) == 2\n"
        "for argv in (['optimize', '--bogus'], ['forecast', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    assert _imported_after(code) == []


def test_a_forecast_from_cached_densities_does_not_import_pymc(forecaster):
    """With both densities on disk (compiled by this session if need be), a new process
    forecasts a patient without importing PyMC, ArviZ or Dask."""
    forecaster._density("eta"), forecaster._density("sampler")  # compiled and cached
    code = (
        "import contextlib, io\n"
        "from asuc_bayes.interfaces.cli import main\n"
        "from asuc_bayes import example_path, read_patients\n"
        "first = read_patients(example_path()).patients[0].id\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['forecast', '--example', '--id', first, '--quiet', "
        "'--allow-unconverged']) == 0\n"
    )
    loaded = _imported_after(code)
    assert "pymc" not in loaded
    assert "arviz" not in loaded
    assert "dask" not in loaded


def test_lazy_public_names_are_the_module_objects():
    import importlib

    import asuc_bayes

    assert set(asuc_bayes.__all__) == {*asuc_bayes._PUBLIC, "__version__"}
    for name, module in asuc_bayes._PUBLIC.items():
        defining = importlib.import_module(f"asuc_bayes.{module}")
        assert getattr(asuc_bayes, name) is getattr(defining, name)
        assert name in dir(asuc_bayes)
    with pytest.raises(AttributeError, match="no_such_name"):
        asuc_bayes.no_such_name  # noqa: B018


def test_scenario_names_written_in_the_cli_match_the_study():
    from asuc_bayes.interfaces.cli import SCENARIO_NAMES
    from asuc_bayes.studies.comparison import SCENARIOS

    assert list(SCENARIO_NAMES) == sorted(SCENARIOS)


def test_average_ranks_equal_scipy_rankdata_with_ties_and_nan():
    import scipy.stats

    from asuc_bayes.inference.diagnostics import _average_ranks

    rng = np.random.default_rng(7)
    values = rng.integers(0, 12, size=(400, 3)).astype(float)  # many ties (as IMH repeats)
    values[:, 2] = rng.normal(size=400)  # no ties
    expected = scipy.stats.rankdata(values, method="average", axis=0)
    np.testing.assert_array_equal(_average_ranks(values), expected)
    values[5, 1] = np.nan
    with_nan = _average_ranks(values)
    assert np.isnan(with_nan[:, 1]).all()
    np.testing.assert_array_equal(with_nan[:, 0], expected[:, 0])


def test_lazy_module_imports_on_first_attribute_only():
    code = (
        "from asuc_bayes._lazy import lazy_module\n"
        "import sys\n"
        "m = lazy_module('dask')\n"
        "assert 'dask' not in sys.modules\n"
    )
    assert _imported_after(code) == []


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    from pathlib import Path

    from asuc_bayes.graphs.nutpie_density import cache_dir

    monkeypatch.delenv("ASUC_BAYES_CACHE_DIR", raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "asuc_bayes" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "nb"))
    assert cache_dir() == tmp_path / "nb" / "asuc_bayes"
    monkeypatch.setenv("ASUC_BAYES_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == Path(tmp_path / "own" / "numba")
