"""Simulation-based calibration: the rank and uniformity machinery against models whose
posterior is known exactly (independently of PyMC), the prior draws against the model file
read independently, a tiny real SBC on one process and on a local cluster, and the CLI."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from asuc_bayes.inference.engine import Engine
from asuc_bayes.inference.population import PopulationSettings
from asuc_bayes.inference.population_draws import PARAMETER_NAMES
from asuc_bayes.interfaces.cli import EXIT_INPUT, EXIT_OK, main
from asuc_bayes.interfaces.sbc_output import write_sbc
from asuc_bayes.spec.config import ModelSpecError
from asuc_bayes.studies.sbc import (
    MISSING_RANK,
    PopulationReplicate,
    ReplicateDraws,
    SBCResult,
    draw_population_prior,
    load_sbc,
    posterior_ranks,
    rank_uniformity,
    replicate_seed,
    run_population_sbc,
    run_sbc,
    thin_draws,
)

# -- an exact case: conjugate normal and gamma models ------------------------------------


@dataclass(frozen=True)
class Conjugate:
    """Two independent conjugate models with exact posterior draws:

    mu ~ N(m0, s0²), y_i ~ N(mu, 1), i = 1..n         -> mu | y ~ N(m_n, s_n²)
    tau ~ Gamma(a, rate b), z_i ~ N(0, 1/tau)          -> tau | z ~ Gamma(a + n/2, b + Σz²/2)

    ``shift`` moves mu's draws by that many posterior SDs (a biased posterior), ``scale``
    shrinks them around the posterior mean (overconfident), ``fail_every`` raises for some
    replicates, ``unconverged_every`` marks some as unconverged and ``stuck_every`` sticks
    mu's second chain at one value.
    """

    m0: float = 1.0
    s0: float = 2.0
    a: float = 3.0
    b: float = 2.0
    n: int = 5
    chains: int = 2
    draws: int = 100
    shift: float = 0.0
    scale: float = 1.0
    fail_every: int = 0
    unconverged_every: int = 0
    stuck_every: int = 0

    parameters = ("mu", "tau")

    def __call__(self, seed: int) -> ReplicateDraws:
        if self.fail_every and seed % self.fail_every == 0:
            raise FloatingPointError("log density not finite")
        rng = np.random.default_rng(seed)
        mu = rng.normal(self.m0, self.s0)
        tau = rng.gamma(self.a, 1.0 / self.b)
        y = rng.normal(mu, 1.0, self.n)
        z = rng.normal(0.0, 1.0 / math.sqrt(tau), self.n)
        precision = 1.0 / self.s0**2 + self.n
        mean, sd = (self.m0 / self.s0**2 + y.sum()) / precision, 1.0 / math.sqrt(precision)
        shape = (self.chains, self.draws)
        mu_draws = mean + sd * (self.shift + self.scale * rng.standard_normal(shape))
        tau_draws = rng.gamma(self.a + self.n / 2, 1.0 / (self.b + 0.5 * np.sum(z**2)), shape)
        if self.stuck_every and seed % self.stuck_every == 0:
            mu_draws[1] = mu_draws[1, 0]
        converged = not (self.unconverged_every and seed % self.unconverged_every == 0)
        return ReplicateDraws(
            truth={"mu": mu, "tau": tau},
            posterior={"mu": mu_draws, "tau": tau_draws},
            diagnostics={"divergences": 0, "rhat_max": 1.0, "converged": converged},
        )


def test_thinning_and_ranks_by_hand():
    draws = np.arange(200.0).reshape(2, 100)  # chain 0: 0..99, chain 1: 100..199
    thinned = thin_draws(draws, 5)
    np.testing.assert_array_equal(thinned, [0, 50, 100, 149, 199])  # round(199 k / 4)
    rng = np.random.default_rng(0)
    ranks = posterior_ranks({"a": 120.5, "b": -1.0}, {"a": draws, "b": draws}, 5, rng)
    assert ranks["a"]["rank"] == 3 and ranks["b"]["rank"] == 0
    assert ranks["a"]["mean"] == pytest.approx(99.5)
    ties = [
        posterior_ranks({"a": 1.0}, {"a": np.ones((2, 10))}, 9, rng)["a"]["rank"]
        for _ in range(400)
    ]
    assert set(ties) == set(range(10))  # a stuck chain at the truth: ties broken uniformly
    with pytest.raises(ValueError, match="cannot be thinned to 300"):
        thin_draws(draws, 300)


def test_uniformity_test_bins_and_band():
    every_rank_once = np.arange(100)
    test = rank_uniformity(every_rank_once, n_rank_draws=99, n_bins=7)
    assert test.counts.sum() == 100 and test.chi2 == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(test.counts, np.diff(test.edges))  # widths 14 or 15
    assert set(np.diff(test.edges)) == {14, 15} and test.p_value == pytest.approx(1.0)
    # chi-square by hand on an uneven histogram
    ranks = np.r_[np.zeros(30, int), np.full(10, 99)]
    test = rank_uniformity(ranks, 99, n_bins=4)
    expected = 40 / 4
    chi2 = ((30 - expected) ** 2 + 2 * expected**2 + (10 - expected) ** 2) / expected
    assert test.chi2 == pytest.approx(chi2)
    assert test.p_value == pytest.approx(scipy.stats.chi2.sf(chi2, 3))
    # the 99 % band: about 1 % (at most, counts are discrete) of uniform bin counts fall outside
    rng = np.random.default_rng(1)
    outside = []
    for _ in range(400):
        t = rank_uniformity(rng.integers(0, 100, 60), 99, n_bins=10)
        outside.append(np.mean((t.counts < t.band_low) | (t.counts > t.band_high)))
    assert 0.002 < np.mean(outside) <= 0.012
    with pytest.raises(ValueError, match="n_bins must be a whole number from 2 to L"):
        rank_uniformity(ranks, 99, n_bins=101)
    with pytest.raises(ValueError, match=r"ranks must lie in 0\.\.99"):
        rank_uniformity([100], 99)


def test_exact_posterior_gives_uniform_ranks():
    """Exact posterior draws: the ranks of both parameters are uniform, and over 20 runs
    the p-values of the uniformity test are themselves uniform (the test has its size)."""
    result = run_sbc(Conjugate(), 600, random_seed=1, n_rank_draws=49)
    table = result.table(n_bins=10)
    assert (table["p_value"] > 0.01).all(), table
    assert table["mean_rank_fraction"].to_numpy() == pytest.approx([0.5, 0.5], abs=0.04)
    p_values = [
        result.uniformity(name, n_bins=5).p_value
        for seed in range(20)
        for result in [run_sbc(Conjugate(draws=30), 60, random_seed=100 + seed, n_rank_draws=29)]
        for name in ("mu", "tau")
    ]
    assert scipy.stats.kstest(p_values, "uniform").pvalue > 0.001


@pytest.mark.parametrize(
    ("replicate", "shape"),
    [(Conjugate(shift=0.5), "biased"), (Conjugate(scale=0.6), "overconfident")],
)
def test_miscalibrated_posterior_is_flagged(replicate, shape):
    result = run_sbc(replicate, 300, random_seed=2, n_rank_draws=49)
    table = result.table(n_bins=10)
    assert table.loc["mu", "p_value"] < 1e-4, table
    assert table.loc["tau", "p_value"] > 0.01  # the calibrated parameter is not flagged
    test = result.uniformity("mu", n_bins=10)
    if shape == "biased":  # draws above the truth: the truth ranks low
        assert table.loc["mu", "mean_rank_fraction"] < 0.4
    else:  # too narrow: the truth falls outside the draws at both ends (U shape)
        assert test.counts[0] > test.band_high[0] and test.counts[-1] > test.band_high[-1]


def test_failures_and_unconverged_replicates_are_rows(tmp_path):
    replicate = Conjugate(fail_every=5, unconverged_every=3, stuck_every=4)
    result = run_sbc(replicate, 40, random_seed=3, n_rank_draws=19)
    ds = result.dataset
    seeds = [replicate_seed(3, r) for r in range(40)]
    np.testing.assert_array_equal(ds["seed"], seeds)  # from (random_seed, replicate)
    failed = [s % 5 == 0 for s in seeds]
    unconverged = [s % 3 == 0 and s % 5 != 0 for s in seeds]
    assert result.counts == {
        "ok": 40 - sum(failed) - sum(unconverged),
        "unconverged": sum(unconverged),
        "error": sum(failed),
    }
    assert sum(failed) > 0 and sum(unconverged) > 0
    errors = ds["status"].values == "error"
    np.testing.assert_array_equal(errors, failed)
    assert (ds["rank"].values[errors] == MISSING_RANK).all()
    assert all(e == "FloatingPointError: log density not finite" for e in ds["error"][errors])
    fitted = ds["rank"].values[~errors]
    assert fitted.min() >= 0 and fitted.max() <= 19
    table = result.table(n_bins=4)
    assert (table["n_replicates"] == 40 - sum(failed)).all()
    assert (table["n_converged"] == result.counts["ok"]).all()
    stuck = np.array([s % 4 == 0 and s % 5 != 0 for s in seeds])
    assert stuck.any()
    np.testing.assert_array_equal(result.mixed(), ~stuck & ~errors)
    assert (ds["rhat"].sel(parameter="mu").values[stuck] > 1.5).all()  # one chain stuck
    assert (ds["rhat"].sel(parameter="tau").values[~errors] < 1.05).all()
    assert table.loc["mu", "rhat_above_mixed"] == stuck.sum()
    assert (table["n_mixed"] == (~stuck & ~errors).sum()).all()
    # the first replicates do not depend on how many follow
    shorter = run_sbc(replicate, 7, random_seed=3, n_rank_draws=19)
    xr.testing.assert_equal(
        shorter.dataset[["rank", "truth", "status"]],
        ds[["rank", "truth", "status"]].isel(replicate=slice(7)),
    )
    # save / load round trip, and the files of write_sbc
    path = tmp_path / "ranks.nc"
    result.save(path)
    again = load_sbc(path)
    xr.testing.assert_identical(again.dataset, result.dataset)
    assert again.table(n_bins=4).equals(table)
    written = write_sbc(result, tmp_path / "out", n_bins=4)
    assert [p.name for p in written] == [
        "sbc.nc",
        "uniformity.csv",
        "replicates.csv",
        "rank_histograms.png",
    ]
    assert written[3].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="not an asuc_bayes SBC result"):
        xr.Dataset({"x": ("a", [1])}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
        load_sbc(tmp_path / "other.nc")
    with pytest.raises(ValueError, match="n_replicates must be a whole number >= 1"):
        run_sbc(replicate, 0)


# -- the prior draws ---------------------------------------------------------------------


@pytest.mark.parametrize("prior", ["published", "weak"])
def test_prior_draws_match_the_model_file(spec, prior):
    """θ̃ against the model file's numbers read here with tomllib and scipy: KS test and
    moments (log10 λ for λ, whose prior is on log10 λ)."""
    table = tomllib.loads(Path(spec.path).read_text())["population"]["priors"][prior]
    draws = draw_population_prior(spec, prior, 20000, random_seed=5)
    assert set(draws) == set(PARAMETER_NAMES)
    for name in PARAMETER_NAMES:
        entry = table["tte_log10_lambda" if name == "tte_lambda" else name]
        values = np.log10(draws[name]) if name == "tte_lambda" else draws[name]
        if entry["distribution"] == "lognormal":
            reference = scipy.stats.lognorm(s=entry["log_sd"], scale=entry["median"])
        elif entry["distribution"] == "normal":
            reference = scipy.stats.norm(entry["mean"], entry["sd"])
        else:
            reference = scipy.stats.halfnorm(scale=entry["sd"])
        assert scipy.stats.kstest(values, reference.cdf).pvalue > 1e-3, name
        se = reference.std() / math.sqrt(values.size)
        assert abs(values.mean() - reference.mean()) < 5 * se, name
        assert np.median(values) == pytest.approx(reference.median(), rel=0.05, abs=0.02), name
    again = draw_population_prior(spec, prior, 20000, random_seed=5)
    assert all(np.array_equal(draws[k], again[k]) for k in draws)


def test_bad_replicate_options(spec):
    with pytest.raises(ModelSpecError, match="no prior set 'flat'"):
        PopulationReplicate(spec, 10, prior="flat")
    with pytest.raises(ValueError, match="n_subjects must be at least 2"):
        PopulationReplicate(spec, 1)
    with pytest.raises(ValueError, match="cannot give 99 rank draws"):
        run_population_sbc(spec, 2, 10, settings=PopulationSettings(draws=40, chains=2))


# -- a tiny real SBC ---------------------------------------------------------------------

TINY = PopulationSettings(draws=100, tune=100, chains=2)
TINY_SUBJECTS = 10
#: The engine check below is about where replicates run, not how they are fitted: the full
#: model is the cheapest fit (the marginal fit's calibration has its own SBC test, in
#: tests/test_population_marginal.py).
TINY_METHOD = "joint"

#: Dask's scheduler start-up leaves a socket for the garbage collector (see test_batch.py).
DASK_SOCKET_WARNINGS = (
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
)


@pytest.fixture(scope="module")
def tiny_in_process(spec) -> SBCResult:
    return run_population_sbc(
        spec, 3, TINY_SUBJECTS, settings=TINY, random_seed=4, method=TINY_METHOD
    )


def _comparable(result: SBCResult) -> xr.Dataset:
    timing = ("seconds", "compile_seconds", "sampling_seconds")
    return result.dataset.drop_vars(timing)


@pytest.mark.slow  # three model compilations (this process and two workers)
@DASK_SOCKET_WARNINGS[0]
@DASK_SOCKET_WARNINGS[1]
def test_tiny_real_sbc_local_cluster_equals_this_process(spec, tiny_in_process):
    ds = tiny_in_process.dataset
    assert list(ds["parameter"].values) == list(PARAMETER_NAMES)
    assert ds.sizes == {"replicate": 3, "parameter": 9}
    fitted = ds["status"].values != "error"
    assert fitted.all(), ds["error"].values
    ranks = ds["rank"].values
    assert ranks.min() >= 0 and ranks.max() <= 99
    for name in ("divergences", "rhat_max", "ess_bulk_min", "n_events"):
        assert np.isfinite(ds[name]).all()
    # the truths are draws of the published prior, not the point estimates
    assert len(np.unique(ds["truth"].sel(parameter="theta_cl"))) == 3
    assert ds.attrs["prior"] == "published" and ds.attrs["n_subjects"] == TINY_SUBJECTS
    with Engine(workers=2) as engine:
        distributed = run_population_sbc(
            spec, 3, TINY_SUBJECTS, settings=TINY, random_seed=4, engine=engine, method=TINY_METHOD
        )
    assert distributed.dataset.attrs["engine"] == "local cluster of 2 worker processes"
    xr.testing.assert_equal(_comparable(distributed), _comparable(tiny_in_process))


def test_cli_smoke_run(capsys, tmp_path):
    out_dir = tmp_path / "sbc"
    code = main(
        [
            "sbc",
            "--replicates",
            "2",
            "--subjects",
            str(TINY_SUBJECTS),
            "--draws",
            "60",
            "--tune",
            "60",
            "--rank-draws",
            "19",
            "--out",
            str(out_dir),
            "--seed",
            "3",
            "--quiet",
        ]
    )
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert "chi-square test of uniform ranks" in out
    for name in PARAMETER_NAMES:
        assert name in out
    assert "2 replicates of 10 subjects, prior 'published'" in out
    result = load_sbc(out_dir / "sbc.nc")
    assert result.dataset.sizes["replicate"] == 2 and result.n_rank_draws == 19
    for name in ("uniformity.csv", "replicates.csv", "rank_histograms.png"):
        assert (out_dir / name).is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replicates", "0"], "--replicates 0: must be an integer from 1"),
        (["--subjects", "1"], "--subjects 1: must be an integer from 2"),
        (["--prior", "flat"], "no prior set 'flat'"),
        (["--draws", "40"], "cannot be thinned to --rank-draws 99"),
        (["--chains", "1"], "--chains 1: must be an integer from 2"),
        (["--bins", "1"], "--bins must be a whole number from 2 to L"),
        (["--workers", "0"], "--workers 0: must be an integer from 1"),
        (["--seed", "-1"], "--seed -1: must be an integer from 0"),
    ],
)
def test_cli_bad_arguments(capsys, tmp_path, argv, message):
    base = {"--replicates": "2", "--subjects": "10", "--out": str(tmp_path / "x")}
    for key, value in zip(argv[::2], argv[1::2], strict=True):
        base[key] = value
    code = main(["sbc", *[item for pair in base.items() for item in pair]])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT
    assert message in err
    assert not (tmp_path / "x").exists()


def test_cli_workers_and_scheduler_exclude_each_other(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(
            [
                *("sbc", "--replicates", "2", "--subjects", "10", "--out", str(tmp_path)),
                *("--workers", "2", "--scheduler", "tcp://127.0.0.1:1"),
            ]
        )
    assert stop.value.code == EXIT_INPUT
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["joint", "marginal", "two_stage"])
def test_replicate_prepares_and_records_its_own_method(spec, method, monkeypatch):
    """prepare() compiles the model of the replicate's method (it compiled the full model for
    every method), and the provenance names that method."""
    import asuc_bayes.inference.population as population

    prepared = []
    monkeypatch.setattr(
        population,
        "prepare_population_model",
        lambda spec, n, *, prior, method="joint": prepared.append(method),
    )
    replicate = PopulationReplicate(spec, 10, method=method)
    replicate.prepare()
    assert prepared == [method]
    assert replicate.provenance()["method"] == method
