"""Residual-error forms: a registry of classes with log densities and M3 censored terms.

Each form gives, over an array namespace ``xp`` (numpy or pytensor.tensor):

- ``log_density(y, f, sigma, xp)``: the log density of an observation y given the prediction f;
- ``log_below(limit, f, sigma, xp)``: log P(y < limit) (M3, below the LLOQ);
- ``log_above(limit, f, sigma, xp)``: log P(y > limit) (M3, above the ULOQ).

``sigma`` maps the form's parameter names to values (SDs, not variances). Forms:

- ``proportional``: y ~ N(f, (σ_p f)²)  (NONMEM Y = F + F·EPS)
- ``additive``: y ~ N(f, σ_a²)
- ``combined``: y ~ N(f, (σ_p f)² + σ_a²)  (NONMEM-style variance sum, Y = F + F·EPS1 + EPS2)
- ``log_normal``: ln y ~ N(ln f, σ²); the density is that of y (it includes −ln y).

Examples
--------
>>> import numpy as np
>>> from scipy.stats import norm
>>> form = residual_form("combined")
>>> s = {"proportional": 0.3, "additive": 0.5}
>>> bool(np.isclose(form.log_density(10.0, 8.0, s, np),
...                 norm.logpdf(10.0, 8.0, np.hypot(0.3 * 8.0, 0.5))))
True
>>> bool(np.isclose(form.log_below(1.0, 8.0, s, np),
...                 norm.logcdf(1.0, 8.0, np.hypot(0.3 * 8.0, 0.5))))
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "PREDICTION_FLOOR_MG_L",
    "RESIDUAL_FORMS",
    "ResidualForm",
    "log_phi",
    "observation_log_likelihood",
    "register_residual_form",
    "residual_form",
]

#: Predictions are floored here (as in grid.py and model.py): an underflowed prediction would
#: make a proportional SD 0; no assay sees this concentration.
PREDICTION_FLOOR_MG_L = 1e-12
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)

#: form name -> form class
RESIDUAL_FORMS: dict[str, type[ResidualForm]] = {}


def register_residual_form(cls: type[ResidualForm]) -> type[ResidualForm]:
    """Class decorator: make ``cls`` available to model files under ``cls.name``."""
    if cls.name in RESIDUAL_FORMS:
        raise ValueError(f"residual form '{cls.name}' is registered twice")
    RESIDUAL_FORMS[cls.name] = cls
    return cls


def residual_form(name: str) -> ResidualForm:
    """An instance of the registered residual form ``name`` (KeyError lists the known ones)."""
    if name not in RESIDUAL_FORMS:
        raise KeyError(f"unknown residual form '{name}' (registered: {', '.join(RESIDUAL_FORMS)})")
    return RESIDUAL_FORMS[name]()


def log_phi(z: Any, xp: Any = np) -> Any:
    """ln Φ(z), the log standard-normal CDF, accurate in both tails.

    NumPy: :func:`scipy.special.log_ndtr` (as grid.py). Other namespaces (pytensor.tensor),
    from one scaled complementary error function E = erfcx(|z|/√2): for z < 0,
    ln Φ(z) = ln(E/2) − z²/2, which neither underflows nor loses digits far in the lower tail;
    for z ≥ 0, ln Φ(z) = log1p(−E e^(−z²/2)/2). (Two error functions, erfcx below z = −1 and
    erfc above, cost twice as much in a population fit's censored terms, measured.)

    Examples
    --------
    >>> from scipy.stats import norm
    >>> bool(np.isclose(log_phi(-40.0), norm.logcdf(-40.0)))
    True
    """
    if xp is np:
        from scipy.special import log_ndtr

        return log_ndtr(z)
    scaled = xp.erfcx(xp.where(z < 0.0, -z, z) / _SQRT2)  # |z| (abs has no slope at 0)
    half_square = z * z / 2.0
    lower = xp.log(scaled / 2.0) - half_square
    upper = xp.log1p(-scaled * xp.exp(-half_square) / 2.0)
    return xp.where(z < 0.0, lower, upper)


def _float64(sigma: Mapping[str, Any]) -> dict[str, Any]:
    """Python numbers as float64: pytensor would make them floatX constants (float32 digits)."""
    return {k: np.float64(v) if isinstance(v, int | float) else v for k, v in sigma.items()}


class ResidualForm:
    """A residual-error model: y given the prediction f."""

    name: ClassVar[str] = ""
    #: names of the SD parameters the form needs, in the model file's ``[residual]`` table
    parameters: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def z(self, y: Any, f: Any, sigma: Mapping[str, Any], xp: Any) -> Any:
        """The standardised residual of y (normal on the form's scale)."""
        raise NotImplementedError

    def log_scale(self, y: Any, f: Any, sigma: Mapping[str, Any], xp: Any) -> Any:
        """ln of the density's Jacobian-adjusted scale (log density = −z²/2 − this − ln√2π)."""
        raise NotImplementedError

    def log_density(self, y: Any, f: Any, sigma: Mapping[str, Any], xp: Any = np) -> Any:
        sigma = _float64(sigma)
        f = xp.maximum(f, PREDICTION_FLOOR_MG_L)
        z = self.z(y, f, sigma, xp)
        return -0.5 * z * z - self.log_scale(y, f, sigma, xp) - _HALF_LOG_2PI

    def log_censored(
        self, limit: Any, f: Any, sigma: Mapping[str, Any], sign: Any, xp: Any = np
    ) -> Any:
        """ln Φ(s·z) of the limit's standardised residual z: the M3 term of a censored record,
        log P(y < limit) for the sign s = +1 (below the LLOQ), log P(y > limit) for s = −1
        (above the ULOQ). ``sign`` broadcasts (one per record, e.g.).

        Examples
        --------
        >>> from scipy.stats import norm
        >>> form = residual_form("proportional")
        >>> got = form.log_censored(np.array([1.0, 9.0]), 8.0, {"proportional": 0.3},
        ...                         np.array([1.0, -1.0]))
        >>> bool(np.allclose(got, [norm.logcdf(1.0, 8.0, 2.4), norm.logsf(9.0, 8.0, 2.4)]))
        True
        """
        sigma = _float64(sigma)
        f = xp.maximum(f, PREDICTION_FLOOR_MG_L)
        return log_phi(sign * self.z(limit, f, sigma, xp), xp)

    def log_below(self, limit: Any, f: Any, sigma: Mapping[str, Any], xp: Any = np) -> Any:
        """log P(y < limit) (M3, a record below the LLOQ)."""
        return self.log_censored(limit, f, sigma, 1.0, xp)

    def log_above(self, limit: Any, f: Any, sigma: Mapping[str, Any], xp: Any = np) -> Any:
        """log P(y > limit) (M3, a record above the ULOQ)."""
        return self.log_censored(limit, f, sigma, -1.0, xp)


class _NormalScale(ResidualForm):
    def sd(self, f: Any, sigma: Mapping[str, Any], xp: Any) -> Any:
        raise NotImplementedError

    def z(self, y, f, sigma, xp):
        return (y - f) / self.sd(f, sigma, xp)

    def log_scale(self, y, f, sigma, xp):
        return xp.log(self.sd(f, sigma, xp))


@register_residual_form
class Proportional(_NormalScale):
    name = "proportional"
    parameters = ("proportional",)
    description = "y ~ N(f, (σ_p f)²)"

    def sd(self, f, sigma, xp):
        return sigma["proportional"] * f


@register_residual_form
class Additive(_NormalScale):
    name = "additive"
    parameters = ("additive",)
    description = "y ~ N(f, σ_a²)"

    def sd(self, f, sigma, xp):
        return sigma["additive"] + 0.0 * f


@register_residual_form
class Combined(_NormalScale):
    name = "combined"
    parameters = ("proportional", "additive")
    description = "y ~ N(f, (σ_p f)² + σ_a²)"

    def sd(self, f, sigma, xp):
        return xp.sqrt((sigma["proportional"] * f) ** 2 + sigma["additive"] ** 2)


@register_residual_form
class LogNormal(ResidualForm):
    name = "log_normal"
    parameters = ("log_sd",)
    description = "ln y ~ N(ln f, σ²)"

    def z(self, y, f, sigma, xp):
        return (xp.log(y) - xp.log(f)) / sigma["log_sd"]

    def log_scale(self, y, f, sigma, xp):
        return xp.log(sigma["log_sd"]) + xp.log(y)


def observation_log_likelihood(
    form: ResidualForm,
    values: Any,
    censoring: Any,
    prediction: Any,
    sigma: Mapping[str, Any],
    xp: Any = np,
) -> Any:
    """Per-record log-likelihood: the density of measured records, M3 terms of censored ones.

    ``censoring`` holds the codes of :mod:`asuc_bayes.data.dataset` (0 measured, 1 below the LLOQ
    with ``values`` = LLOQ, −1 above the ULOQ with ``values`` = ULOQ). Arguments broadcast.
    A measured record contributes the density of y (for ``log_normal`` too, −ln y included,
    as NONMEM's OFV and PyMC's LogNormal), a censored one ln Φ(±z)
    (:meth:`ResidualForm.log_censored`). In NumPy, ln Φ is evaluated for the censored records
    only (by column when ``censoring`` is one code per record of the last axis), and unknown
    codes raise ValueError.

    Examples
    --------
    >>> from scipy.stats import norm
    >>> ll = observation_log_likelihood(residual_form("proportional"), np.array([10.0, 0.5]),
    ...                                 np.array([0, 1]), 8.0, {"proportional": 0.44})
    >>> bool(np.allclose(ll, [norm.logpdf(10, 8, 3.52), norm.logcdf(0.5, 8, 3.52)]))
    True
    """
    from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ

    if xp is np:
        return _numpy_log_likelihood(form, values, censoring, prediction, sigma)
    measured = form.log_density(values, prediction, sigma, xp)
    below = form.log_below(values, prediction, sigma, xp)
    above = form.log_above(values, prediction, sigma, xp)
    # pytensor's == is identity, not elementwise: compare with eq/equal
    equal = xp.eq if hasattr(xp, "eq") else xp.equal
    return xp.where(
        equal(censoring, BELOW_LLOQ), below, xp.where(equal(censoring, ABOVE_ULOQ), above, measured)
    )


def _numpy_log_likelihood(
    form: ResidualForm, values: Any, censoring: Any, prediction: Any, sigma: Mapping[str, Any]
) -> np.ndarray:
    """:func:`observation_log_likelihood` in NumPy, ln Φ only where a record is censored."""
    from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, MEASURED

    values = np.asarray(values, dtype=float)
    censoring = np.asarray(censoring)
    prediction = np.asarray(prediction, dtype=float)
    below, above = censoring == BELOW_LLOQ, censoring == ABOVE_ULOQ
    censored = below | above
    if not np.all(censored | (censoring == MEASURED)):
        raise ValueError(
            f"censoring: unknown codes {np.unique(censoring).tolist()} "
            f"(use {MEASURED} measured, {BELOW_LLOQ} below the LLOQ, {ABOVE_ULOQ} above the ULOQ)"
        )
    # A censored record's value is a limit; a non-positive one has no log-normal density.
    safe = np.where(censored, np.maximum(values, PREDICTION_FLOOR_MG_L), values)
    log_measured = form.log_density(safe, prediction, sigma, np)
    shape = np.broadcast_shapes(np.shape(log_measured), censoring.shape)
    out = np.array(np.broadcast_to(log_measured, shape))
    if not censored.any():
        return out
    sign = np.where(below, 1.0, -1.0)
    if censoring.ndim == 1 and len(shape) >= 1 and censoring.shape[0] == shape[-1]:
        columns = np.flatnonzero(censored)
        index: Any = (..., columns)
        sign = sign[columns]
    else:
        index = np.broadcast_to(censored, shape)
        sign = np.broadcast_to(sign, shape)[index]

    def at(x: Any) -> Any:
        return np.broadcast_to(x, shape)[index]

    subset_sigma = {k: at(v) if np.ndim(v) else v for k, v in sigma.items()}
    out[index] = form.log_censored(at(safe), at(prediction), subset_sigma, sign, np)
    return out


def add_residual_error(prediction, sigma, residual_form: str, rng: np.random.Generator):
    """Measurements around ``prediction`` with the model's residual error (model card, §1).

    ``proportional``: y = f (1 + σ ε); ``log_normal``: y = f e^(σ ε), with ε ~ N(0, 1) of
    the broadcast shape of ``prediction`` and ``sigma``. A proportional draw can be ≤ 0: it
    is below any LLOQ, and callers censor it there.

    Examples
    --------
    >>> y = add_residual_error(np.full(20000, 10.0), 0.44, "proportional",
    ...                        np.random.default_rng(0))
    >>> round(float(y.mean()), 1), round(float(y.std() / 10.0), 2)
    (10.0, 0.44)
    """
    prediction = np.asarray(prediction, dtype=float)
    noise = rng.standard_normal(np.broadcast_shapes(prediction.shape, np.shape(sigma)))
    if residual_form == "proportional":
        return prediction * (1.0 + sigma * noise)
    if residual_form == "log_normal":
        return prediction * np.exp(sigma * noise)
    raise ValueError(f"unknown residual form {residual_form!r}")
