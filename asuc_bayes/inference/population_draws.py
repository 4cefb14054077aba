"""Draws of the population parameters: from a fitted population posterior or from the
published uncertainty (Table 2: RSEs or bootstrap intervals).

A :class:`PopulationDraws` holds S draws of every population parameter as arrays and turns
draw ``s`` into a complete :class:`~asuc_bayes.spec.config.ModelSpec`
(:meth:`PopulationDraws.spec_at`)
that every other part of the engine (grid posterior, forecasts, simulator, dosing) can use
unchanged. x_ref stays the model file's fixed centring constant, so ``tte_lambda`` is always
the hazard scale at x = x_ref (comparable with the published 0.00112).

Examples
--------
>>> from asuc_bayes.spec.config import load_model
>>> draws = PopulationDraws.from_published(load_model(), n=500, random_seed=1)
>>> draws.n, draws.source
(500, 'published:rse')
>>> spec = draws.spec_at(0)
>>> spec.pk.theta_cl.estimate == float(draws.theta_cl[0])
True
>>> round(float(np.median(draws.theta_cl)), 2)
0.49
>>> PopulationDraws.point(load_model()).spec_at(0) == load_model()
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from asuc_bayes.spec.config import (
    PARAMETER_NAMES,
    ModelSpec,
    ModelSpecError,
    cv_to_omega,
    load_model,
)

__all__ = ["PARAMETER_NAMES", "PopulationDraws", "omega_to_cv"]


def omega_to_cv(omega):
    """Coefficient of variation of a log-normal with log-scale SD ``omega``: sqrt(e^ω² − 1)."""
    with np.errstate(over="ignore"):  # ω > 26 (a runaway chain): the CV is +inf, not a warning
        return np.sqrt(np.expm1(np.square(omega)))


@dataclass(frozen=True, eq=False)
class PopulationDraws:
    """S joint draws of the population parameters, and the model they belong to.

    Attributes
    ----------
    spec
        The model specification whose structure (covariate forms, x_ref, units) the draws
        fill in.
    theta_cl, theta_v, crp_exponent_cl, omega_cl, omega_v, residual_sd, tte_lambda, tte_gamma,
    tte_beta
        Arrays of shape (S,): typical CL (L/day) and V (L), CRP exponent, SDs of η (log scale),
        proportional residual SD (fraction), Weibull λ (day^-γ, at x_ref), γ and β.
    source
        Where the draws come from: ``"fit:<file>"``, ``"published:rse"``, ``"published:bootstrap"``
        or ``"point"``.
    """

    spec: ModelSpec
    theta_cl: np.ndarray
    theta_v: np.ndarray
    crp_exponent_cl: np.ndarray
    omega_cl: np.ndarray
    omega_v: np.ndarray
    residual_sd: np.ndarray
    tte_lambda: np.ndarray
    tte_gamma: np.ndarray
    tte_beta: np.ndarray
    source: str = ""

    def __post_init__(self):
        sizes = set()
        for name in PARAMETER_NAMES:
            values = np.atleast_1d(np.asarray(getattr(self, name), dtype=float)).copy()
            values.flags.writeable = False
            object.__setattr__(self, name, values)
            sizes.add(values.shape)
            if not np.all(np.isfinite(values)):
                raise ValueError(f"population draws of {name} are not all finite")
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(f"every parameter needs the same number of draws, got {sizes}")
        for name in ("theta_cl", "theta_v", "omega_cl", "omega_v", "residual_sd", "tte_lambda"):
            if np.any(getattr(self, name) <= 0):
                raise ValueError(f"population draws of {name} must be positive")
        if np.any(self.tte_gamma <= 0):
            raise ValueError("population draws of tte_gamma must be positive")

    @property
    def n(self) -> int:
        """Number of draws S."""
        return int(self.theta_cl.size)

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{name: array (S,)}`` of :data:`PARAMETER_NAMES`."""
        return {name: getattr(self, name) for name in PARAMETER_NAMES}

    def spec_at(self, s: int) -> ModelSpec:
        """The model specification with draw ``s``'s population values (x_ref unchanged)."""
        spec = self.spec
        pk, tte = spec.pk, spec.tte

        def value(parameter, new):
            if math.isclose(float(new), parameter.estimate, rel_tol=1e-12, abs_tol=1e-15):
                return parameter  # round trips (CV -> omega -> CV) keep the file's value
            return replace(parameter, estimate=float(new))

        pk = replace(
            pk,
            theta_cl=value(pk.theta_cl, self.theta_cl[s]),
            theta_v=value(pk.theta_v, self.theta_v[s]),
            crp_exponent_cl=value(pk.crp_exponent_cl, self.crp_exponent_cl[s]),
            iiv_cv_cl=value(pk.iiv_cv_cl, 100.0 * omega_to_cv(self.omega_cl[s])),
            iiv_cv_v=value(pk.iiv_cv_v, 100.0 * omega_to_cv(self.omega_v[s])),
            residual_sd=value(pk.residual_sd, self.residual_sd[s]),
        )
        tte = replace(
            tte,
            log10_lambda=value(tte.log10_lambda, math.log10(self.tte_lambda[s])),
            gamma=value(tte.gamma, self.tte_gamma[s]),
            beta=value(tte.beta, self.tte_beta[s]),
        )
        return replace(spec, pk=pk, tte=tte)

    def subset(self, index) -> PopulationDraws:
        """The draws at ``index`` (an integer array or slice)."""
        return replace(self, **{name: getattr(self, name)[index] for name in PARAMETER_NAMES})

    def median(self) -> dict[str, float]:
        """Posterior/prior median of each parameter."""
        return {name: float(np.median(getattr(self, name))) for name in PARAMETER_NAMES}

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def point(cls, spec: ModelSpec, n: int = 1) -> PopulationDraws:
        """``n`` identical draws at the model file's point estimates."""
        values = point_values(spec)
        return cls(spec, **{k: np.full(n, v) for k, v in values.items()}, source="point")

    @classmethod
    def given(cls, spec: ModelSpec, values: Mapping[str, float]) -> PopulationDraws:
        """One draw with the given value of every parameter of :data:`PARAMETER_NAMES`.

        Raises
        ------
        ValueError
            If a parameter is missing or unknown, or a value is not finite or out of range.
        """
        missing = [name for name in PARAMETER_NAMES if name not in values]
        unknown = sorted(set(values) - set(PARAMETER_NAMES))
        if missing or unknown:
            raise ValueError(
                "population values need exactly the parameters "
                f"{', '.join(PARAMETER_NAMES)}; missing: {', '.join(missing) or 'none'}, "
                f"unknown: {', '.join(unknown) or 'none'}"
            )
        return cls(
            spec, **{name: [float(values[name])] for name in PARAMETER_NAMES}, source="given"
        )

    @classmethod
    def from_published(
        cls,
        spec: ModelSpec,
        n: int,
        random_seed: int,
        method: Literal["rse", "bootstrap"] = "rse",
    ) -> PopulationDraws:
        """``n`` independent draws from the published uncertainty of each parameter.

        ``method="rse"``: log-normal around the estimate with log-SD = RSE for positive
        parameters (θ_CL, θ_V, ω's, residual SD, γ; the RSEs of ω and the residual SD are on
        the SD scale, as NONMEM reports them), normal with SD = RSE·|estimate| for the CRP
        exponent and β, and normal on θ = log10 λ with SD = RSE·|θ|.
        ``method="bootstrap"``: the same families centred on the estimate, spreads from the
        bootstrap 95 % interval (log-SD = ln(upper/lower)/3.92, or SD = (upper − lower)/3.92);
        log10 λ, which has no interval on its own scale, keeps its RSE. Parameters are drawn
        independently (the paper reports no correlations).

        Raises
        ------
        ModelSpecError
            If a parameter the method needs has no RSE / bootstrap interval in the model file.
        """
        if method not in ("rse", "bootstrap"):
            raise ValueError(f"method must be 'rse' or 'bootstrap', got {method!r}")
        rng = np.random.default_rng(random_seed)
        pk, tte = spec.pk, spec.tte

        def spread(parameter, scale: Literal["log", "linear"], transform=None) -> float:
            transform = transform or (lambda x: x)
            if method == "bootstrap" and parameter.bootstrap is not None:
                low, _, high = (transform(b) for b in parameter.bootstrap)
                if scale == "log":
                    return math.log(high / low) / (2 * 1.959964)
                return (high - low) / (2 * 1.959964)
            if parameter.rse_percent is None:
                raise ModelSpecError(
                    f"{spec.path}: parameter '{parameter.name}' has no rse_percent; "
                    "it cannot be drawn from its published uncertainty"
                )
            relative = parameter.rse_percent / 100.0
            return relative if scale == "log" else relative * abs(parameter.estimate)

        def cv_omega(percent):
            return cv_to_omega(percent / 100.0)

        def lognormal(median, log_sd):
            return median * np.exp(log_sd * rng.standard_normal(n))

        def normal(mean, sd):
            return mean + sd * rng.standard_normal(n)

        values = point_values(spec)
        draws = {
            "theta_cl": lognormal(values["theta_cl"], spread(pk.theta_cl, "log")),
            "theta_v": lognormal(values["theta_v"], spread(pk.theta_v, "log")),
            "crp_exponent_cl": normal(
                values["crp_exponent_cl"], spread(pk.crp_exponent_cl, "linear")
            ),
            "omega_cl": lognormal(values["omega_cl"], spread(pk.iiv_cv_cl, "log", cv_omega)),
            "omega_v": lognormal(values["omega_v"], spread(pk.iiv_cv_v, "log", cv_omega)),
            "residual_sd": lognormal(values["residual_sd"], spread(pk.residual_sd, "log")),
            "tte_lambda": 10.0
            ** normal(tte.log10_lambda.estimate, spread(tte.log10_lambda, "linear")),
            "tte_gamma": lognormal(values["tte_gamma"], spread(tte.gamma, "log")),
            "tte_beta": normal(values["tte_beta"], spread(tte.beta, "linear")),
        }
        return cls(spec, **draws, source=f"published:{method}")

    @classmethod
    def from_fit(
        cls,
        fit: str | Path | xr.DataTree,
        n: int | None = None,
        random_seed: int = 0,
        *,
        spec: ModelSpec | None = None,
    ) -> PopulationDraws:
        """``n`` draws of the population posterior of a fit (``asuc-bayes fit --out``).

        Parameters
        ----------
        fit
            The fit's netCDF file or its DataTree (a ``posterior`` group with the variables of
            :data:`PARAMETER_NAMES`, dims ``chain``, ``draw``).
        n
            Number of draws, taken at random without replacement from all chains (all when
            ``None`` or larger than the posterior).
        spec
            The model the fit used; by default loaded from the fit's provenance (model file
            and variants) and checked against its recorded sha256.

        Raises
        ------
        ModelSpecError
            If the fit's model file cannot be found or differs from the one that was fitted.
        """
        source = "tree"
        if not isinstance(fit, xr.DataTree):
            source = str(fit)
            path = Path(fit)
            if not path.is_file():
                raise FileNotFoundError(f"{fit}: no such fit file (write one with asuc-bayes fit)")
            fit = xr.load_datatree(path, engine="h5netcdf")
        if "posterior" not in fit.children:
            raise ValueError(f"{source}: not a population fit (no posterior group)")
        posterior = fit["posterior"]
        missing = [name for name in PARAMETER_NAMES if name not in posterior]
        if missing:
            raise ValueError(
                f"{source}: not a population fit: the posterior lacks {', '.join(missing)}"
            )
        if spec is None:
            spec = spec_of_fit(fit)
        stacked = {
            name: np.asarray(posterior[name].values, dtype=float).reshape(-1)
            for name in PARAMETER_NAMES
        }
        total = stacked["theta_cl"].size
        rng = np.random.default_rng(random_seed)
        index = np.arange(total) if n is None or n >= total else rng.choice(total, n, replace=False)
        return cls(
            spec, **{k: v[index] for k, v in stacked.items()}, source=f"fit:{Path(source).name}"
        )


def point_values(spec: ModelSpec) -> dict[str, float]:
    """The model file's point estimates in the parametrisation of :class:`PopulationDraws`."""
    pk, tte = spec.pk, spec.tte
    return {
        "theta_cl": pk.theta_cl.estimate,
        "theta_v": pk.theta_v.estimate,
        "crp_exponent_cl": pk.crp_exponent_cl.estimate,
        "omega_cl": pk.omega_cl,
        "omega_v": pk.omega_v,
        "residual_sd": pk.residual_sd.estimate,
        "tte_lambda": tte.baseline_lambda,
        "tte_gamma": tte.gamma.estimate,
        "tte_beta": tte.beta.estimate,
    }


def spec_of_fit(fit: xr.DataTree) -> ModelSpec:
    """The model specification a fit was made with, from its provenance attributes."""
    attrs = fit.attrs
    path = attrs.get("model_path")
    variants = [v for v in str(attrs.get("model_variants", "")).split(",") if v]
    if not path:
        raise ModelSpecError("the fit records no model file (attribute model_path)")
    try:
        spec = load_model(path, variants=variants)
    except ModelSpecError:
        spec = load_model(str(attrs.get("model_name_or_path", path)), variants=variants)
    if attrs.get("model_sha256") and spec.sha256 != attrs["model_sha256"]:
        raise ModelSpecError(
            f"the fit was made with model file {path} sha256 {str(attrs['model_sha256'])[:12]}, "
            f"but that file now has sha256 {spec.sha256[:12]}: pass the original model file"
        )
    return spec
