"""Which population fit a result was computed with, and whether that fit may be used.

Every command that takes a fit (``forecast --model FIT.nc``, ``sensitivity
--population-fit FIT.nc``, ``evaluate FIT.nc``) reads its :class:`FitIdentity`: the file, its
sha256 (of the bytes on disk, so two different fits never look alike), the structural model
file it was made with, and the fit's own stored convergence gates (R-hat, bulk ESS,
divergences, written by :func:`asuc_bayes.inference.population.fit_population`). An unconverged fit
is
refused (:class:`UnconvergedFitError`) unless the user allows it explicitly; the output then
names the fit, not the published model.

Examples
--------
>>> identity = FitIdentity("fit.nc", "ab" * 32, False, 1.31, 7.0, 3, "joint", "weak",
...                        "niyigena2025", "cd" * 32)
>>> identity.gates()
'R-hat max 1.31, bulk ESS min 7, 3 divergences: UNCONVERGED'
>>> require_converged(identity, allow=True, option="--model")
>>> try:
...     require_converged(identity, allow=False, option="--model")
... except UnconvergedFitError as exc:
...     print(str(exc)[:61])
--model fit.nc: the population fit failed its own convergence
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from asuc_bayes.errors import AsucBayesError
from asuc_bayes.inference.fit_tree import LIBRARY_FIT_KIND, POPULATION_FIT_KIND, read_fit

__all__ = ["FitIdentity", "UnconvergedFitError", "identify_fit", "require_converged"]


class UnconvergedFitError(AsucBayesError, ValueError):
    """A population fit failed its stored convergence gates and was not explicitly allowed."""


def _finite_or_none(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class FitIdentity:
    """A population fit's file, checksum, structural model and stored diagnostics.

    Attributes
    ----------
    path
        The fit file as given.
    sha256
        SHA-256 of the file's bytes.
    converged
        The fit's own verdict (zero divergences, R-hat and bulk ESS within the gates).
    rhat_max, ess_bulk_min
        Worst R-hat and bulk ESS over the fitted quantities (``None`` when undefined).
    divergences
        Number of divergent transitions.
    method, prior
        ``joint`` / ``two_stage`` and the prior set the fit used.
    model_name, model_sha256
        The structural model file the fit was made with.
    kind
        The fit's kind (:data:`~asuc_bayes.inference.fit_tree.POPULATION_FIT_KIND`, a fit of the
        ASUC model, or :data:`~asuc_bayes.inference.fit_tree.LIBRARY_FIT_KIND`, a library
        model's popPK fit).
    """

    path: str
    sha256: str
    converged: bool
    rhat_max: float | None
    ess_bulk_min: float | None
    divergences: int
    method: str
    prior: str
    model_name: str
    model_sha256: str
    kind: str = POPULATION_FIT_KIND

    @property
    def library(self) -> bool:
        """Whether this is a library model's popPK fit."""
        return self.kind == LIBRARY_FIT_KIND

    def gates(self) -> str:
        """The diagnostics in one phrase (table headers and error messages)."""
        rhat = "undefined" if self.rhat_max is None else f"{self.rhat_max:.3g}"
        ess = "undefined" if self.ess_bulk_min is None else f"{self.ess_bulk_min:.0f}"
        verdict = "converged" if self.converged else "UNCONVERGED"
        return f"R-hat max {rhat}, bulk ESS min {ess}, {self.divergences} divergences: {verdict}"

    def header(self) -> str:
        """The table header line naming the fit (instead of the published model's)."""
        return (
            f"model: population fit {Path(self.path).name} (sha256 {self.sha256[:12]}; "
            f"{self.method} fit, prior '{self.prior}', structure {self.model_name} sha256 "
            f"{self.model_sha256[:12]}); {self.gates()}"
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready description (``null`` for undefined diagnostics)."""
        return {
            "file": self.path,
            "sha256": self.sha256,
            "converged": self.converged,
            "diagnostics": {
                "rhat_max": self.rhat_max,
                "ess_bulk_min": self.ess_bulk_min,
                "divergences": self.divergences,
            },
            "method": self.method,
            "prior": self.prior,
            "structure_model": {"name": self.model_name, "sha256": self.model_sha256},
            "kind": self.kind,
        }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identify_fit(path, tree: xr.DataTree | None = None) -> FitIdentity:
    """The :class:`FitIdentity` of the fit file ``path`` (``tree``: its loaded DataTree).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not a fit written by ``asuc-bayes fit --out`` (of the ASUC model or of
        a library model).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such fit file (write one with asuc-bayes fit --out)")
    tree = read_fit(path) if tree is None else tree
    attrs = tree.attrs
    if "diagnostics_converged" not in attrs:
        raise ValueError(
            f"{path}: the fit records no convergence diagnostics (diagnostics_converged): "
            "refit it with asuc-bayes fit --out"
        )
    return FitIdentity(
        path=str(path),
        sha256=_sha256(path),
        converged=bool(attrs["diagnostics_converged"]),
        rhat_max=_finite_or_none(attrs.get("diagnostics_rhat_max")),
        ess_bulk_min=_finite_or_none(attrs.get("diagnostics_ess_bulk_min")),
        divergences=int(attrs.get("diagnostics_divergences", 0)),
        method=str(attrs.get("method", "")),
        prior=str(attrs.get("prior", "")),
        model_name=str(attrs.get("model_name", "")),
        model_sha256=str(attrs.get("model_sha256", "")),
        kind=str(attrs.get("kind", POPULATION_FIT_KIND)),
    )


def require_converged(identity: FitIdentity, *, allow: bool, option: str) -> None:
    """Raise :class:`UnconvergedFitError` for an unconverged fit unless ``allow``.

    ``option`` names the command-line option (or argument) that gave the fit.
    """
    if identity.converged or allow:
        return
    raise UnconvergedFitError(
        f"{option} {identity.path}: the population fit failed its own convergence gates "
        f"({identity.gates()}); results from it are not reliable (fix: refit with more "
        "--tune/--draws, or pass --allow-unconverged to use it anyway)"
    )
