"""The DataTree of a population fit and its convergence gates, one builder for every kind.

Every population fit — the ASUC model's full (``joint``), ``two_stage`` and ``marginal`` fits
(:func:`asuc_bayes.inference.population.fit_population`) and a library model's popPK fit
(:func:`asuc_bayes.inference.library_population.fit_library_population`) — is saved as one
DataTree: groups ``posterior``, ``sample_stats``, ``observed_data`` and ``constant_data``; root
attributes with the provenance (:func:`asuc_bayes.provenance.provenance_attrs`: kind, model,
versions, sampler settings, seed), the fit's own attributes and its ``diagnostics_*`` (the
gates of :func:`convergence`, timings), which :func:`diagnostics_of` reads back.

Examples
--------
>>> import numpy as np
>>> import xarray as xr
>>> draws = np.random.default_rng(1).normal(size=(4, 500, 2))
>>> posterior = xr.Dataset({"a": (("chain", "draw", "subject"), draws)},
...                        coords={"subject": ["S1", "S2"]})
>>> checks = convergence(posterior, 0, ["a"])
>>> checks["converged"], checks["rhat_max_at"].startswith("a[S")
(True, True)
>>> tree = build_fit_tree("asuc_bayes population fit", model={"model_name": "m",
...     "model_sha256": "ab"}, random_seed=1, sampler={"draws": 500}, attrs={"method": "x"},
...     diagnostics=checks, posterior=posterior, sample_stats=xr.Dataset(),
...     observed_data=xr.Dataset(), constant_data=xr.Dataset())
>>> diagnostics_of(tree.attrs)["converged"], tree.attrs["draws"], sorted(tree.children)[0]
(1, 500, 'constant_data')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from asuc_bayes.inference.diagnostics import ESS_BULK_MIN, RHAT_MAX, rank_diagnostics
from asuc_bayes.provenance import netcdf_attrs, provenance_attrs

__all__ = [
    "DIAGNOSTICS_PREFIX",
    "LIBRARY_FIT_KIND",
    "POPULATION_FIT_KIND",
    "SAMPLE_STATS",
    "FitResult",
    "build_fit_tree",
    "convergence",
    "diagnostics_of",
    "entry_labels",
    "read_fit",
    "trace_result",
]

#: The root ``kind`` attribute of a fit of the ASUC model (joint, two-stage or marginal).
POPULATION_FIT_KIND = "asuc_bayes population fit"
#: The root ``kind`` attribute of a library model's popPK fit (``fit --model NAME``).
LIBRARY_FIT_KIND = "asuc_bayes library popPK fit"
#: What each kind of fit is, and the command that writes one.
FIT_KINDS = {
    POPULATION_FIT_KIND: ("a fit of the ASUC model", "asuc-bayes fit"),
    LIBRARY_FIT_KIND: ("a library model's popPK fit", "asuc-bayes fit --model NAME"),
}

#: The sampler statistics a fit keeps (those the sampler wrote).
SAMPLE_STATS = ("diverging", "step_size", "depth", "n_steps", "energy")
#: Prefix of the root attributes holding the gates and timings.
DIAGNOSTICS_PREFIX = "diagnostics_"


def read_fit(path, kinds: Iterable[str] = tuple(FIT_KINDS), purpose: str = "this") -> Any:
    """The DataTree of a fit file written by ``asuc-bayes fit --out``, of one of ``kinds``.

    A fit of another kind, or a file that is no fit, is a :class:`ValueError` naming the file,
    what it is, what ``purpose`` needs and how to write one.
    """
    import xarray as xr

    tree = xr.load_datatree(path, engine="h5netcdf")
    kind = tree.attrs.get("kind")
    kinds = tuple(kinds)
    needed = " or ".join(f"{FIT_KINDS[k][0]} ({FIT_KINDS[k][1]})" for k in kinds)
    if kind not in FIT_KINDS:
        raise ValueError(f"{path}: not an asuc_bayes fit; {purpose} needs {needed}")
    if kind not in kinds:
        model = tree.attrs.get("model_name", "?")
        raise ValueError(f"{path}: {FIT_KINDS[kind][0]} of model {model}; {purpose} needs {needed}")
    return tree


def trace_result(trace, started: float, compiled_at: float, finished: float):
    """The posterior and kept sampler statistics (:data:`SAMPLE_STATS`) of a sampler's trace
    (xarray Datasets), and its ``compile_seconds`` / ``sampling_seconds`` from the
    :func:`time.perf_counter` readings at the start, after compiling and at the end."""
    posterior = trace["posterior"].to_dataset()
    stats = trace["sample_stats"].to_dataset()
    keep = [n for n in SAMPLE_STATS if n in stats]
    timing = {"compile_seconds": compiled_at - started, "sampling_seconds": finished - compiled_at}
    return posterior, stats[keep], timing


def entry_labels(variable) -> list[str]:
    """``name[coord, coord]`` of each entry of a posterior variable (C order over its dims
    other than chain and draw), e.g. ``eta[L025, eta_Q]``; the bare name if it has none."""
    dims = [d for d in variable.dims if d not in ("chain", "draw")]
    if not dims:
        return [variable.name]
    coords = [variable[d].values.tolist() for d in dims]
    grid = np.array(np.meshgrid(*coords, indexing="ij"), dtype=object).reshape(len(dims), -1)
    return [
        f"{variable.name}[{', '.join(str(c) for c in grid[:, j])}]" for j in range(grid.shape[1])
    ]


def convergence(posterior, divergences: int, names: Iterable[str]) -> dict[str, Any]:
    """Max rank-normalised split R-hat and min bulk ESS over every entry of the variables
    ``names`` of ``posterior`` (those it has; dims chain, draw first), where they are, and the
    gates (:data:`~asuc_bayes.inference.diagnostics.RHAT_MAX`,
    :data:`~asuc_bayes.inference.diagnostics.ESS_BULK_MIN`, no divergence).

    The numbers are ArviZ's (:func:`~asuc_bayes.inference.diagnostics.rank_diagnostics`). A NaN
    diagnostic (a chain stuck at one value has no within-chain variance) is the worst value,
    not a missing one: it is reported as NaN, named, and fails the gates; on a tie the first
    entry is named.
    """
    columns, labels = [], []
    for name in names:
        if name not in posterior:
            continue
        variable = posterior[name].transpose("chain", "draw", ...)
        values = np.asarray(variable.values, dtype=float)
        columns.append(values.reshape(values.shape[0], values.shape[1], -1))
        labels += entry_labels(variable)
    draws = np.concatenate(columns, axis=-1)
    if draws.shape[1] < 4:  # too few draws for a split R-hat: undefined, so failing
        rhat = ess = np.full(draws.shape[-1], np.nan)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):  # stuck chain: NaN, reported
            rhat, ess = rank_diagnostics(draws)
    worst_rhat = int(np.argmax(np.where(np.isnan(rhat), np.inf, rhat)))
    worst_ess = int(np.argmin(np.where(np.isnan(ess), -np.inf, ess)))
    rhat_max, ess_min = float(rhat[worst_rhat]), float(ess[worst_ess])
    return {
        "rhat_max": rhat_max,
        "rhat_max_at": labels[worst_rhat],
        "ess_bulk_min": ess_min,
        "ess_bulk_min_at": labels[worst_ess],
        "divergences": int(divergences),
        "converged": bool(divergences == 0 and rhat_max <= RHAT_MAX and ess_min >= ESS_BULK_MIN),
    }


def build_fit_tree(
    kind: str,
    *,
    model: Mapping[str, Any],
    random_seed: int,
    sampler: Mapping[str, Any],
    attrs: Mapping[str, Any],
    diagnostics: Mapping[str, Any],
    posterior,
    sample_stats,
    observed_data,
    constant_data,
):
    """The DataTree of a fit.

    Parameters
    ----------
    kind
        The root ``kind`` attribute (e.g. ``"asuc_bayes population fit"``).
    model
        The model's provenance: keyword arguments of
        :func:`~asuc_bayes.provenance.provenance_attrs` (``model_name``, ``model_sha256``,
        ``model_label``, ``model_path``, ``model_variants``).
    random_seed, sampler
        The sampler's seed and settings (root attributes ``random_seed``, ``draws``...).
    attrs
        The fit's own root attributes (method, prior...), after the provenance.
    diagnostics
        Gates (:func:`convergence`), timings and other diagnostics, stored as
        ``diagnostics_<name>``.
    posterior, sample_stats, observed_data, constant_data
        The groups (xarray Datasets).
    """
    import xarray as xr

    root = {
        **provenance_attrs(kind, random_seed=random_seed, sampler=sampler, **model),
        **netcdf_attrs(attrs),
        **netcdf_attrs(diagnostics, prefix=DIAGNOSTICS_PREFIX),
    }
    return xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs=root),
            "posterior": posterior,
            "sample_stats": sample_stats,
            "observed_data": observed_data,
            "constant_data": constant_data,
        }
    )


def diagnostics_of(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``diagnostics_*`` root attributes of a fit, without the prefix."""
    n = len(DIAGNOSTICS_PREFIX)
    return {k[n:]: v for k, v in attrs.items() if k.startswith(DIAGNOSTICS_PREFIX)}


class FitResult:
    """What every fit result has: its DataTree (``tree``), the diagnostics and status read
    from it, and saving it."""

    tree: Any

    @property
    def diagnostics(self) -> dict[str, Any]:
        """The gates and timings (:func:`diagnostics_of`)."""
        return diagnostics_of(self.tree.attrs)

    @property
    def status(self) -> str:
        """``"ok"`` if the fit passed its gates, else ``"unconverged"``."""
        return "ok" if self.diagnostics.get("converged") else "unconverged"

    def save(self, path) -> None:
        """Write the fit (netCDF, h5netcdf)."""
        self.tree.to_netcdf(path, engine="h5netcdf")
