"""Simulation-based calibration (SBC; Talts et al. 2018, arXiv:1804.06788) of the population fit.

If θ̃ is drawn from the prior, data y from the model at θ̃, and θ_1..θ_L are independent draws
of the posterior p(θ | y), then the rank of θ̃ among θ_1..θ_L (the number of draws below it)
is uniform on {0, ..., L} for every parameter — whatever the data and whatever the prior. A
fit that is too narrow gives a U-shaped rank histogram, one that is too wide a hump, a biased
one a slope; a simulator and a likelihood that disagree show the same way.

For replicate r (its seed derived from the run's seed and r, never from the order in which
replicates finish): draw θ̃ from the *same* prior the fit uses (:func:`draw_population_prior`,
the model file's ``[population.priors.<name>]``), simulate a cohort of ``n_subjects`` at θ̃
(:func:`asuc_bayes.studies.simulate.simulate_cohort` with ``population_values``), fit it
(:func:`asuc_bayes.inference.population.fit_population`), thin the posterior to L equally spaced
draws
and record the rank of θ̃ for each of the nine population parameters, with the fit's
diagnostics. A failing replicate is a row with its error; the run goes on.

The machinery (seeding, ranks, failure rows, the uniformity test, the figure) takes any
*replicate* callable ``replicate(seed) -> ReplicateDraws`` (:func:`run_sbc`), so it can be
checked on a model whose posterior is known exactly; :class:`PopulationReplicate` is the
population model's. Replicates are mapped over an :class:`~asuc_bayes.inference.engine.Engine` (this
process, a local cluster, or a Dask cluster).

Thinning: the L ranked draws are equally spaced over all chains; they are roughly independent
when the bulk ESS is at least L (recorded per replicate and parameter as ``ess_bulk``; the
table counts the replicates below L). Autocorrelated draws make the ranks of a correct fit
non-uniform too (spikes at the ends), so read the histograms with that count.

Uniformity test (:func:`rank_uniformity`): ranks binned into B contiguous groups of ranks
(equal widths up to one rank), Pearson's chi-square against the expected counts n·width/(L+1),
B − 1 degrees of freedom. With few replicates it detects only gross miscalibration: with 50
replicates and 10 bins a rank histogram can be visibly uneven and pass.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ranks = rng.integers(0, 100, size=400)  # uniform on {0..99}: L = 99
>>> result = rank_uniformity(ranks, n_rank_draws=99, n_bins=10)
>>> result.dof, bool(result.p_value > 0.001)
(9, True)
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.stats
import xarray as xr

from asuc_bayes._version import __version__
from asuc_bayes.inference.engine import Engine
from asuc_bayes.inference.population import DEFAULT_METHOD, METHODS, PopulationSettings
from asuc_bayes.spec.config import PARAMETER_NAMES, ModelSpec
from asuc_bayes.studies.simulate import CohortDesign, simulate_cohort

__all__ = [
    "DEFAULT_RANK_DRAWS",
    "SBC_SETTINGS",
    "PopulationReplicate",
    "RankUniformity",
    "ReplicateDraws",
    "ReplicateRow",
    "SBCResult",
    "default_bins",
    "draw_population_prior",
    "load_sbc",
    "posterior_ranks",
    "rank_uniformity",
    "replicate_seed",
    "run_population_sbc",
    "run_sbc",
    "thin_draws",
]

Status = Literal["ok", "unconverged", "error"]

#: Draws the rank of θ̃ is taken among (ranks 0..99: 100 equally likely values).
DEFAULT_RANK_DRAWS = 99
#: Rank of a replicate that failed (no posterior).
MISSING_RANK = -1
#: Probability of the band drawn around each bin's expected count.
BAND_PROBABILITY = 0.99
#: Default sampler settings of an SBC fit: 2 chains x 500 draws after 500 tuning steps at
#: target_accept 0.95 (as ``asuc-bayes sbc`` and the measured SBC run; a single fit's
#: default is 0.99).
SBC_SETTINGS = PopulationSettings(draws=500, tune=500, chains=2, target_accept=0.95)
#: Replicates whose fit is ``ok`` or ``unconverged`` (a posterior exists) enter the tests.
FITTED: tuple[Status, ...] = ("ok", "unconverged")
#: R-hat up to which a replicate's chains count as mixed (:meth:`SBCResult.mixed`).
MIXED_RHAT_MAX = 1.05

#: Labels of the population parameters in figures and tables.
PARAMETER_LABELS = {
    "theta_cl": "θ_CL (typical CL)",
    "theta_v": "θ_V (typical V)",
    "crp_exponent_cl": "CRP exponent on CL",
    "omega_cl": "ω_CL (IIV of CL)",
    "omega_v": "ω_V (IIV of V)",
    "residual_sd": "σ (proportional error)",
    "tte_lambda": "Weibull λ",
    "tte_gamma": "Weibull γ",
    "tte_beta": "β (ln AUC/CL)",
}


def replicate_seed(random_seed: int, replicate: int) -> int:
    """Seed of replicate ``replicate`` of a run seeded ``random_seed`` (independent of the
    engine and of the order of completion)."""
    sequence = np.random.SeedSequence([int(random_seed), int(replicate)])
    return int(sequence.generate_state(1)[0])


def draw_population_prior(
    spec: ModelSpec, prior: str, n: int, random_seed: int
) -> dict[str, np.ndarray]:
    """``n`` independent draws of the population parameters from the model file's prior set
    ``prior`` — the prior :func:`asuc_bayes.inference.population.fit_population` uses.

    Returns ``{name: array (n,)}`` for
    :data:`~asuc_bayes.inference.population_draws.PARAMETER_NAMES`:
    ω on the log scale, ``tte_lambda`` = 10^(``tte_log10_lambda`` prior draw) (the fit puts
    its prior on log10 λ).

    Raises
    ------
    ModelSpecError
        If the model file has no prior set ``prior``.
    """
    priors = spec.priors(prior)
    rng = np.random.default_rng(random_seed)
    draws = {}
    for name in PARAMETER_NAMES:
        if name == "tte_lambda":
            draws[name] = 10.0 ** priors["tte_log10_lambda"].rvs(rng, n)
        else:
            draws[name] = priors[name].rvs(rng, n)
    return draws


# -- ranks and uniformity ----------------------------------------------------------------


def thin_draws(draws: np.ndarray, n_rank_draws: int) -> np.ndarray:
    """``n_rank_draws`` draws equally spaced over the pooled chains of ``draws`` (chain, draw).

    Raises
    ------
    ValueError
        If there are fewer draws than ``n_rank_draws``.
    """
    pooled = np.asarray(draws, dtype=float).reshape(-1)
    if pooled.size < n_rank_draws:
        raise ValueError(
            f"{pooled.size} posterior draws cannot be thinned to {n_rank_draws}: sample more "
            "draws (chains x draws) or rank among fewer"
        )
    positions = np.round(np.linspace(0, pooled.size - 1, n_rank_draws)).astype(np.int64)
    return pooled[positions]


def _rank(true_value: float, thinned: np.ndarray, rng: np.random.Generator) -> int:
    """Number of draws below ``true_value``; ties (a stuck chain) broken uniformly."""
    below = int(np.sum(thinned < true_value))
    ties = int(np.sum(thinned == true_value))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


def posterior_ranks(
    truth: Mapping[str, float],
    posterior: Mapping[str, np.ndarray],
    n_rank_draws: int,
    rng: np.random.Generator,
) -> dict[str, dict[str, float]]:
    """Rank of each true value among ``n_rank_draws`` thinned posterior draws.

    Parameters
    ----------
    truth
        ``{parameter: θ̃}``.
    posterior
        ``{parameter: draws}``, each of shape (chain, draw) (or (draw,) for one chain).
    n_rank_draws
        L: ranks take the values 0..L.
    rng
        Breaks ties (only a chain stuck exactly at θ̃ could make one).

    Returns
    -------
    dict
        ``{parameter: {"rank", "ess_bulk", "rhat", "mean", "sd"}}`` (rank-normalised split
        R-hat, bulk ESS and moments of all draws; NaN R-hat for draws that never move).
    """
    import arviz as az

    out = {}
    for name, true_value in truth.items():
        draws = np.asarray(posterior[name], dtype=float)
        if draws.ndim == 1:
            draws = draws[None, :]
        if draws.ndim != 2:
            raise ValueError(f"posterior draws of {name} must be (chain, draw), got {draws.shape}")
        thinned = thin_draws(draws, n_rank_draws)
        with np.errstate(divide="ignore", invalid="ignore"):  # a stuck chain: NaN, not a warning
            ess, rhat = float(az.ess(draws, method="bulk")), float(az.rhat(draws))
        out[name] = {
            "rank": _rank(float(true_value), thinned, rng),
            "ess_bulk": ess,
            "rhat": rhat,
            "mean": float(draws.mean()),
            "sd": float(draws.std(ddof=1)),
        }
    return out


def default_bins(n_ranks: int, n_rank_draws: int) -> int:
    """Bins of the rank histogram: about five expected ranks per bin, 2 to 20 bins, never
    more bins than rank values (L + 1)."""
    return int(min(max(2, n_ranks // 5), 20, n_rank_draws + 1))


def _bin_edges(n_rank_draws: int, n_bins: int) -> np.ndarray:
    """First rank of each bin and one past the last: contiguous, widths differ by at most 1."""
    if not isinstance(n_bins, int | np.integer) or not 2 <= n_bins <= n_rank_draws + 1:
        raise ValueError(
            f"n_bins must be a whole number from 2 to L + 1 = {n_rank_draws + 1}, got {n_bins!r}"
        )
    return np.round(np.linspace(0, n_rank_draws + 1, n_bins + 1)).astype(np.int64)


@dataclass(frozen=True)
class RankUniformity:
    """Pearson's chi-square test of binned ranks against the uniform distribution on 0..L,
    with the central :data:`BAND_PROBABILITY` binomial band of each bin's count."""

    n: int
    n_bins: int
    counts: np.ndarray
    expected: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    edges: np.ndarray
    chi2: float
    dof: int
    p_value: float


def rank_uniformity(
    ranks, n_rank_draws: int, n_bins: int | None = None, band: float = BAND_PROBABILITY
) -> RankUniformity:
    """Chi-square test that ``ranks`` (integers 0..L, ``L = n_rank_draws``) are uniform.

    Parameters
    ----------
    ranks
        The ranks of one parameter over replicates.
    n_rank_draws
        L.
    n_bins
        Contiguous bins of ranks (default :func:`default_bins`).
    band
        Probability of the binomial band around each bin's expected count.

    Raises
    ------
    ValueError
        If a rank is outside 0..L or ``n_bins`` is not between 2 and L + 1.
    """
    ranks = np.asarray(ranks)
    if ranks.size and (ranks.min() < 0 or ranks.max() > n_rank_draws):
        raise ValueError(f"ranks must lie in 0..{n_rank_draws}")
    n = int(ranks.size)
    n_bins = default_bins(n, n_rank_draws) if n_bins is None else n_bins
    edges = _bin_edges(n_rank_draws, n_bins)
    counts = np.histogram(ranks, bins=edges)[0]
    probability = np.diff(edges) / (n_rank_draws + 1)
    expected = n * probability
    tail = (1.0 - band) / 2.0
    band_low = scipy.stats.binom.ppf(tail, n, probability)
    band_high = scipy.stats.binom.ppf(1.0 - tail, n, probability)
    if n == 0:
        chi2, p_value = math.nan, math.nan
    else:
        chi2, p_value = (float(v) for v in scipy.stats.chisquare(counts, expected))
    return RankUniformity(
        n=n,
        n_bins=n_bins,
        counts=counts,
        expected=expected,
        band_low=band_low,
        band_high=band_high,
        edges=edges,
        chi2=chi2,
        dof=n_bins - 1,
        p_value=p_value,
    )


# -- replicates --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicateDraws:
    """What one replicate produces: the true parameter values, the posterior draws of the
    same parameters ((chain, draw) arrays) and the fit's diagnostics (``divergences``,
    ``rhat_max``, ``ess_bulk_min``, ``converged``, and anything else numeric)."""

    truth: dict[str, float]
    posterior: dict[str, np.ndarray]
    diagnostics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplicateRow:
    """One replicate's outcome: ranks and posterior summaries by parameter, diagnostics,
    status (``ok``, ``unconverged`` or ``error`` with its message) and seconds taken."""

    replicate: int
    seed: int
    status: Status
    error: str = ""
    truth: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, dict[str, float]] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _replicate_task(
    index: int,
    *,
    replicate: Callable[[int], ReplicateDraws],
    random_seed: int,
    n_rank_draws: int,
) -> ReplicateRow:
    """One replicate in whatever process runs it (module level: pickled by name)."""
    seed = replicate_seed(random_seed, index)
    start = time.perf_counter()
    try:
        draws = replicate(seed)
        ranks = posterior_ranks(
            draws.truth,
            draws.posterior,
            n_rank_draws,
            np.random.default_rng([int(random_seed), int(index), 1]),
        )
    except Exception as exc:  # any failure is this replicate's row, not the run's
        return ReplicateRow(
            index,
            seed,
            "error",
            error=f"{type(exc).__name__}: {exc}",
            seconds=time.perf_counter() - start,
        )
    diagnostics = {k: float(v) for k, v in draws.diagnostics.items()}
    converged = bool(diagnostics.get("converged", 1.0))
    return ReplicateRow(
        index,
        seed,
        "ok" if converged else "unconverged",
        truth={k: float(v) for k, v in draws.truth.items()},
        ranks=ranks,
        diagnostics=diagnostics,
        seconds=time.perf_counter() - start,
    )


def _prepare(replicate) -> None:
    """Compile what the replicate needs in this worker (if it says how)."""
    prepare = getattr(replicate, "prepare", None)
    if prepare is not None:
        prepare()


@dataclass(frozen=True)
class PopulationReplicate:
    """A replicate of SBC for the hierarchical population model (picklable: shipped to
    workers once).

    Parameters
    ----------
    spec
        The model (structure and prior sets).
    n_subjects
        Subjects per simulated cohort.
    prior
        The prior set θ̃ is drawn from and the fit uses (``published`` or ``weak``).
    settings
        Sampler settings of each fit (:class:`~asuc_bayes.inference.population.PopulationSettings`).
    design
        The simulated cohorts' design (:class:`~asuc_bayes.studies.simulate.CohortDesign`).
    method
        The fit's method (:func:`~asuc_bayes.inference.population.fit_population`):
        ``"marginal"`` (the default) or ``"joint"`` (the full model).
    """

    spec: ModelSpec
    n_subjects: int
    prior: str = "published"
    settings: PopulationSettings = SBC_SETTINGS
    design: CohortDesign | None = None
    method: str = DEFAULT_METHOD

    def __post_init__(self):
        if isinstance(self.n_subjects, bool) or not isinstance(self.n_subjects, int):
            raise ValueError(f"n_subjects must be a whole number, got {self.n_subjects!r}")
        if self.n_subjects < 2:
            raise ValueError(f"n_subjects must be at least 2, got {self.n_subjects}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.spec.priors(self.prior)  # ModelSpecError naming the declared sets

    @property
    def parameters(self) -> tuple[str, ...]:
        """The parameters ranked (the fit's names)."""
        return PARAMETER_NAMES

    def __call__(self, seed: int) -> ReplicateDraws:
        """Draw θ̃, simulate a cohort at θ̃, fit it: truth, posterior draws, diagnostics."""
        from asuc_bayes.inference.population import fit_population

        prior_seed, cohort_seed, fit_seed = (
            int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(3)
        )
        truth = {
            name: float(values[0])
            for name, values in draw_population_prior(self.spec, self.prior, 1, prior_seed).items()
        }
        cohort = simulate_cohort(
            self.spec,
            self.n_subjects,
            cohort_seed,
            population_values=truth,
            design=self.design,
        )
        fit = fit_population(
            cohort.patients,
            self.spec,
            prior=self.prior,
            method=self.method,
            settings=self.settings,
            random_seed=fit_seed,
        )
        posterior = fit.tree["posterior"]
        checks = fit.diagnostics
        observations = [o for p in cohort.patients for o in p.observations]
        diagnostics = {
            "divergences": float(checks["divergences"]),
            "rhat_max": float(checks["rhat_max"]),
            "ess_bulk_min": float(checks["ess_bulk_min"]),
            "converged": float(bool(checks["converged"])),
            "compile_seconds": float(checks["compile_seconds"]),
            "sampling_seconds": float(checks["sampling_seconds"]),
            "n_events": float(sum(p.events[0].event for p in cohort.patients)),
            "n_concentrations": float(len(observations)),
            "censored_fraction": float(np.mean([o.censoring != 0 for o in observations])),
        }
        return ReplicateDraws(
            truth=truth,
            posterior={name: posterior[name].values for name in PARAMETER_NAMES},
            diagnostics=diagnostics,
        )

    def prepare(self) -> None:
        """Compile the population model for this cohort size in this process."""
        from asuc_bayes.inference.population import prepare_population_model

        if self.settings.sampler == "nutpie":
            prepare_population_model(
                self.spec, self.n_subjects, prior=self.prior, method=self.method
            )

    def provenance(self) -> dict[str, Any]:
        """Attributes describing the replicates (for the result's provenance)."""
        spec, settings = self.spec, self.settings
        return {
            "model_name": spec.name,
            "model_path": spec.path,
            "model_sha256": spec.sha256,
            "model_variants": ",".join(spec.variants),
            "prior": self.prior,
            "priors": "; ".join(
                f"{p.name} ~ {p.describe()}" for p in spec.priors(self.prior).priors
            ),
            "n_subjects": self.n_subjects,
            "method": self.method,
            **{key: value for key, value in asdict(settings).items() if value is not None},
        }


# -- running and the result ----------------------------------------------------------------


def run_sbc(
    replicate: Callable[[int], ReplicateDraws],
    n_replicates: int,
    *,
    random_seed: int = 0,
    n_rank_draws: int = DEFAULT_RANK_DRAWS,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> SBCResult:
    """Run ``n_replicates`` replicates of SBC and collect their ranks.

    Parameters
    ----------
    replicate
        ``replicate(seed) -> ReplicateDraws``: draws θ̃ from the prior, simulates data, and
        returns θ̃ with the posterior draws. On a cluster it must be picklable (a module-level
        function or an instance of a module-level class); an optional ``prepare()`` method is
        called once in every worker first.
    n_replicates
        Number of replicates.
    random_seed
        Seed of the run; replicate r gets :func:`replicate_seed` (random_seed, r).
    n_rank_draws
        L: each rank is taken among L thinned posterior draws (values 0..L).
    engine
        Where to run (default: this process).
    progress
        ``progress(done, total)`` after each replicate.
    attrs
        Provenance attributes to add to the result.
    """
    for name, value, low in (
        ("n_replicates", n_replicates, 1),
        ("n_rank_draws", n_rank_draws, 1),
        ("random_seed", random_seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    engine = engine or Engine()
    rows: dict[int, ReplicateRow] = {}
    start = time.perf_counter()
    with engine:
        if engine.distributed:
            engine.run_on_workers(_prepare, replicate)
        for index, row in engine.map(
            _replicate_task,
            range(n_replicates),
            replicate=replicate,
            random_seed=int(random_seed),
            n_rank_draws=int(n_rank_draws),
        ):
            rows[index] = row
            if progress is not None:
                progress(len(rows), n_replicates)
    seconds = time.perf_counter() - start
    run_attrs = {
        "random_seed": int(random_seed),
        "n_rank_draws": int(n_rank_draws),
        "engine": engine.description,
        "wall_seconds": seconds,
        **dict(attrs or {}),
    }
    parameters = getattr(replicate, "parameters", None)
    return SBCResult(
        _dataset([rows[i] for i in range(n_replicates)], n_rank_draws, run_attrs, parameters)
    )


def run_population_sbc(
    spec: ModelSpec,
    n_replicates: int,
    n_subjects: int,
    *,
    prior: str = "published",
    settings: PopulationSettings = SBC_SETTINGS,
    n_rank_draws: int = DEFAULT_RANK_DRAWS,
    random_seed: int = 0,
    engine: Engine | None = None,
    design: CohortDesign | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = DEFAULT_METHOD,
) -> SBCResult:
    """SBC of the hierarchical population model (see the module docstring).

    Parameters
    ----------
    spec
        The model file (structure and priors).
    n_replicates, n_subjects
        Replicates, and subjects per simulated cohort.
    prior
        Prior set of the model file θ̃ is drawn from and the fit uses.
    settings
        :class:`~asuc_bayes.inference.population.PopulationSettings` of each fit (default 2 chains x
        500 draws after 500 tuning steps); on a cluster each fit uses one core.
    n_rank_draws, random_seed, engine, progress
        As in :func:`run_sbc`.
    design
        :class:`~asuc_bayes.studies.simulate.CohortDesign` of the simulated cohorts.
    method
        The fit's method (:func:`~asuc_bayes.inference.population.fit_population`).

    Raises
    ------
    ValueError
        If a count is not a positive whole number, or chains x draws < ``n_rank_draws``.
    ModelSpecError
        If the model file has no prior set ``prior``.
    """
    engine = engine or Engine()
    if engine.distributed:
        settings = replace(settings, cores=1)  # one core per worker process
    if settings.chains * settings.draws < n_rank_draws:
        raise ValueError(
            f"chains x draws = {settings.chains * settings.draws} posterior draws cannot give "
            f"{n_rank_draws} rank draws: raise --draws/--chains or lower --rank-draws"
        )
    replicate = PopulationReplicate(
        spec, n_subjects, prior=prior, settings=settings, design=design, method=method
    )
    attrs = replicate.provenance()
    attrs["cohort_design"] = repr(design) if design is not None else "CohortDesign() defaults"
    return run_sbc(
        replicate,
        n_replicates,
        random_seed=random_seed,
        n_rank_draws=n_rank_draws,
        engine=engine,
        progress=progress,
        attrs=attrs,
    )


def _dataset(
    rows: Sequence[ReplicateRow],
    n_rank_draws: int,
    attrs: Mapping,
    parameters: Sequence[str] | None = None,
) -> xr.Dataset:
    """Rows as a Dataset with dims (replicate, parameter)."""
    parameters = list(parameters or ())
    for row in rows:
        for name in row.truth:
            if name not in parameters:
                parameters.append(name)
    diagnostic_names: list[str] = []
    for row in rows:
        for name in row.diagnostics:
            if name not in diagnostic_names:
                diagnostic_names.append(name)
    shape = (len(rows), len(parameters))
    rank = np.full(shape, MISSING_RANK, dtype=np.int64)
    per_parameter = {k: np.full(shape, np.nan) for k in ("truth", "ess_bulk", "rhat", "mean", "sd")}
    for i, row in enumerate(rows):
        for j, name in enumerate(parameters):
            if name in row.ranks:
                rank[i, j] = int(row.ranks[name]["rank"])
                for key in ("ess_bulk", "rhat", "mean", "sd"):
                    per_parameter[key][i, j] = row.ranks[name][key]
            if name in row.truth:
                per_parameter["truth"][i, j] = row.truth[name]
    dims = ("replicate", "parameter")
    data = {
        "rank": (dims, rank, {"missing": MISSING_RANK, "range": f"0..{n_rank_draws}"}),
        "truth": (dims, per_parameter["truth"], {"long_name": "θ̃ drawn from the prior"}),
        "posterior_mean": (dims, per_parameter["mean"]),
        "posterior_sd": (dims, per_parameter["sd"]),
        "ess_bulk": (dims, per_parameter["ess_bulk"]),
        "rhat": (dims, per_parameter["rhat"]),
        "status": (("replicate",), np.array([r.status for r in rows], dtype=object)),
        "error": (("replicate",), np.array([r.error for r in rows], dtype=object)),
        "seed": (("replicate",), np.array([r.seed for r in rows], dtype=np.int64)),
        "seconds": (("replicate",), np.array([r.seconds for r in rows], dtype=float)),
    }
    for name in diagnostic_names:
        data[name] = (
            ("replicate",),
            np.array([r.diagnostics.get(name, np.nan) for r in rows], dtype=float),
        )
    import arviz as az

    base_attrs = {
        "kind": "asuc_bayes simulation-based calibration",
        "reference": "Talts et al. 2018, arXiv:1804.06788",
        "n_replicates": len(rows),
        "thinning": "n_rank_draws equally spaced over the pooled chains",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "asuc_bayes_version": __version__,
        "arviz_version": az.__version__,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
    }
    return xr.Dataset(
        data,
        coords={"replicate": np.arange(len(rows)), "parameter": np.array(parameters, dtype=object)},
        attrs={**base_attrs, **{k: _attr(v) for k, v in attrs.items()}},
    )


def _attr(value):
    """A netCDF-storable attribute (bools as 0/1, other objects as text)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str | np.integer | np.floating):
        return value
    return repr(value)


@dataclass
class SBCResult:
    """Ranks of an SBC run (``dataset``: dims ``replicate`` and ``parameter``; variables
    ``rank`` (−1 for failed replicates), ``truth``, ``posterior_mean``, ``posterior_sd``,
    ``ess_bulk``, per replicate ``status``, ``error``, ``seed``, ``seconds`` and the fit's
    diagnostics; provenance in the attrs)."""

    dataset: xr.Dataset

    @property
    def n_rank_draws(self) -> int:
        return int(self.dataset.attrs["n_rank_draws"])

    @property
    def parameters(self) -> list[str]:
        return [str(p) for p in self.dataset["parameter"].values]

    @property
    def counts(self) -> dict[str, int]:
        """Replicates by status."""
        status = self.dataset["status"].values
        return {s: int(np.sum(status == s)) for s in ("ok", "unconverged", "error")}

    def ranks(self, parameter: str, include: Iterable[str] = FITTED) -> np.ndarray:
        """Ranks of ``parameter`` over the replicates whose status is in ``include``."""
        keep = np.isin(self.dataset["status"].values, list(include))
        return self.dataset["rank"].sel(parameter=parameter).values[keep]

    def uniformity(
        self, parameter: str, n_bins: int | None = None, include: Iterable[str] = FITTED
    ) -> RankUniformity:
        """The chi-square test of one parameter's ranks (:func:`rank_uniformity`)."""
        return rank_uniformity(self.ranks(parameter, include), self.n_rank_draws, n_bins)

    def mixed(self, rhat_max: float = MIXED_RHAT_MAX) -> np.ndarray:
        """Replicates (boolean mask) fitted with R-hat <= ``rhat_max`` for every ranked
        parameter: chains that at least agree (no chain stuck or lost)."""
        rhat = self.dataset["rhat"].values
        with np.errstate(invalid="ignore"):
            agree = np.all(rhat <= rhat_max, axis=1)  # NaN (a stuck chain) fails
        return agree & np.isin(self.dataset["status"].values, list(FITTED))

    def table(self, n_bins: int | None = None, rhat_max: float = MIXED_RHAT_MAX) -> pd.DataFrame:
        """One row per parameter: replicates used, bins, chi-square and p over all fitted
        replicates; p over the replicates whose chains mixed (:meth:`mixed`) and over those
        that passed every gate of the fit (``converged``) — selections that can themselves
        bias ranks when failures depend on θ̃; mean rank / L (0.5 when calibrated), the
        number of fitted replicates whose bulk ESS is below L and whose R-hat exceeds
        ``rhat_max`` for this parameter."""
        rows = []
        ds = self.dataset
        fitted = np.isin(ds["status"].values, list(FITTED))
        mixed = self.mixed(rhat_max)
        converged = ds["status"].values == "ok"
        for name in self.parameters:
            all_ranks = ds["rank"].sel(parameter=name).values
            test = rank_uniformity(all_ranks[fitted], self.n_rank_draws, n_bins)
            on_mixed = rank_uniformity(all_ranks[mixed], self.n_rank_draws, test.n_bins)
            on_converged = rank_uniformity(all_ranks[converged], self.n_rank_draws, test.n_bins)
            ess = ds["ess_bulk"].sel(parameter=name).values[fitted]
            rhat = ds["rhat"].sel(parameter=name).values[fitted]
            rows.append(
                {
                    "parameter": name,
                    "n_replicates": test.n,
                    "n_bins": test.n_bins,
                    "chi2": test.chi2,
                    "p_value": test.p_value,
                    "n_mixed": on_mixed.n,
                    "p_value_mixed": on_mixed.p_value,
                    "n_converged": on_converged.n,
                    "p_value_converged": on_converged.p_value,
                    "mean_rank_fraction": float(all_ranks[fitted].mean() / self.n_rank_draws)
                    if test.n
                    else math.nan,
                    "ess_below_rank_draws": int(np.sum(ess < self.n_rank_draws)),
                    "rhat_above_mixed": int(np.sum(~(rhat <= rhat_max))),
                }
            )
        return pd.DataFrame(rows).set_index("parameter")

    def replicates(self) -> pd.DataFrame:
        """One row per replicate: status, error, seed, seconds, diagnostics and ranks."""
        ds = self.dataset
        per_replicate = [n for n in ds.data_vars if ds[n].dims == ("replicate",)]
        frame = ds[per_replicate].to_dataframe()
        ranks = ds["rank"].to_pandas()
        ranks.columns = [f"rank_{c}" for c in ranks.columns]
        return frame.join(ranks)

    def save(self, path) -> None:
        """Write the ranks (netCDF, h5netcdf); :func:`load_sbc` reads them back."""
        self.dataset.to_netcdf(path, engine="h5netcdf")


def load_sbc(path) -> SBCResult:
    """Read ranks written by :meth:`SBCResult.save` (``asuc-bayes sbc --out``)."""
    dataset = xr.load_dataset(path, engine="h5netcdf")
    if dataset.attrs.get("kind") != "asuc_bayes simulation-based calibration":
        raise ValueError(f"{path}: not an asuc_bayes SBC result (write one with asuc-bayes sbc)")
    return SBCResult(dataset)
