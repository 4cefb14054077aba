"""MAP + Laplace against the full posterior for one patient under a library model.

The library counterpart of :func:`asuc_bayes.studies.comparison.compare_patient` (``compare-patient
--model NAME``): the patient's posterior (:func:`asuc_bayes.inference.forecast_problem`: IMH
at the MAP, NUTS fallback, gated) beside the Gaussian approximation at the posterior mode,
N(η_MAP, Σ_Laplace) (:func:`asuc_bayes.inference.find_map`), for CL, the central volume (V or
V1), AUC_w2-4, ln(AUC_w2-4/CL) and, through the ASUC outcome model (attached and flagged
``extrapolated_outcome`` for a model without one), the 90-day colectomy risk and
P(high risk).

The JSON keys are those of the default comparison where they apply (``risk_90d``,
``intervals``, ``p_high_risk``, ``map_class``, ``posterior_class``, ``flags``); added:
``intervals.v`` and ``intervals.auc_w2_4``, ``p_high_risk_laplace``, ``risk_90d.laplace_95``,
``outcome`` and ``map.eta``. ``predictive_check`` is ``null``: the leave-one-out check of the
default model uses exact two-dimensional quadrature, which a model with four random effects
does not have (the ``notes`` say so).

Examples
--------
>>> from asuc_bayes.data.dataset import Dose, Observation, Patient
>>> doses = tuple(Dose(t, 350.0, 1 / 12) for t in (0.0, 14.0))
>>> patient = Patient("p1", 70.0, 30.0, doses, (Observation(13.9, 6.0),))
>>> c = compare_library_patient("wojciechowski2017", patient, {"ALB": (4.0, "g/dL"), "ADA": 0},
...                             random_seed=1)
>>> sorted(c.to_json()["intervals"]), c.to_json()["outcome"]["extrapolated"]
(['auc_w2_4', 'cl', 'ln_auc_cl', 'v'], True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from asuc_bayes.data.dataset import Patient
from asuc_bayes.inference import (
    LibraryForecast,
    PatientProblem,
    SamplerOptions,
    derived_quantities,
    forecast_problem,
)
from asuc_bayes.inference.derived import Derived
from asuc_bayes.inference.result import finite_or_none
from asuc_bayes.inference.risk_class import risk_class
from asuc_bayes.spec import ModelDeclaration, load_declaration, with_outcome_from

__all__ = [
    "LAPLACE_DRAWS",
    "LibraryComparison",
    "compare_library_patient",
    "compare_problem",
    "laplace_quantities",
]

#: Draws of the Laplace approximation N(η_MAP, Σ_Laplace) summarised per patient.
LAPLACE_DRAWS = 4000
#: P(high risk) between these bounds is "uncertain" (as :mod:`asuc_bayes.studies.comparison`).
UNCERTAIN_P_HIGH = (0.2, 0.8)
#: The model whose Weibull outcome is attached to a model without one.
ASUC_OUTCOME_MODEL = "niyigena2025"
#: Quantities compared (key of :meth:`Derived.contract`).
QUANTITIES = ("cl", "v", "auc_w2_4", "ln_auc_cl")


def laplace_quantities(
    problem: PatientProblem,
    eta_map: np.ndarray,
    covariance: np.ndarray,
    n: int = LAPLACE_DRAWS,
    random_seed: int = 0,
) -> Derived:
    """Derived quantities at ``n`` draws of N(η_MAP, Σ) (η in the model file's order).

    Examples
    --------
    >>> from asuc_bayes.pk import DoseArrays
    >>> decl = load_declaration("wojciechowski2017")
    >>> doses = DoseArrays(start_day=[0.0], amount_mg=[350.0], duration_day=[1 / 12])
    >>> problem = PatientProblem.build(decl, doses,
    ...                                covariates={"WT": 70.0, "ALB": 4.0, "ADA": 0})
    >>> d = laplace_quantities(problem, np.zeros(4), decl.random_effects.matrix, n=20000)
    >>> round(float(np.median(d.cl)), 2)  # the typical CL, 0.294 L/day
    0.29
    """
    rng = np.random.default_rng(random_seed)
    eta = rng.multivariate_normal(eta_map, covariance, size=n, method="cholesky")
    return derived_quantities(problem, eta)


def _interval(values: np.ndarray) -> list[float | None]:
    low, high = np.quantile(np.asarray(values, dtype=float).ravel(), [0.025, 0.975])
    return [finite_or_none(low), finite_or_none(high)]


@dataclass(frozen=True)
class LibraryComparison:
    """MAP + Laplace against the posterior of one patient (see the module docstring)."""

    forecast: LibraryForecast
    laplace: Derived

    @property
    def threshold(self) -> float | None:
        return self.forecast.high_risk_threshold

    @property
    def p_high_risk_laplace(self) -> float | None:
        """P(ln(AUC/CL) < threshold) under the Laplace approximation."""
        if self.threshold is None:
            return None
        return float(np.mean(self.laplace.ln_auc_cl < self.threshold))

    def _intervals(self) -> dict[str, Any]:
        posterior = self.forecast.draws.contract()
        mode = self.forecast.points.contract()
        laplace = self.laplace.contract()
        return {
            key: {
                "map": finite_or_none(np.asarray(mode[key]).reshape(-1)[0]),
                "laplace_95": _interval(laplace[key]),
                "posterior_mean": finite_or_none(np.mean(posterior[key])),
                "posterior_95": _interval(posterior[key]),
            }
            for key in QUANTITIES
        }

    def _risk(self) -> dict[str, Any] | None:
        posterior = self.forecast.draws.risk_90d
        if posterior is None or self.laplace.risk_90d is None:
            return None
        plug_in = float(np.asarray(self.forecast.points.risk_90d).reshape(-1)[0])
        return {
            "map_plug_in": finite_or_none(plug_in),
            "posterior_mean": finite_or_none(np.mean(posterior)),
            "posterior_95": _interval(posterior),
            "laplace_mean": finite_or_none(np.mean(self.laplace.risk_90d)),
            "laplace_95": _interval(self.laplace.risk_90d),
            "p_risk_above_map": finite_or_none(np.mean(posterior > plug_in)),
        }

    def flags(self) -> list[str]:
        """``different_class``, ``uncertain_class``, ``extrapolated_outcome``,
        ``laplace_failed`` (Hessian not negative definite: the "Laplace" draws are Ω's)."""
        out = []
        p = self.forecast.p_high_risk
        if p is not None and self.threshold is not None:
            map_ln = float(np.asarray(self.forecast.points.ln_auc_cl).reshape(-1)[0])
            if ("high" if map_ln < self.threshold else "low") != risk_class(p):
                out.append("different_class")
            if UNCERTAIN_P_HIGH[0] <= p <= UNCERTAIN_P_HIGH[1]:
                out.append("uncertain_class")
        if self.forecast.extrapolated_outcome:
            out.append("extrapolated_outcome")
        if not self.forecast.map.laplace_ok:
            out.append("laplace_failed")
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-ready entry (only finite numbers; None where the model has no outcome)."""
        f = self.forecast
        p = f.p_high_risk
        map_ln = float(np.asarray(f.points.ln_auc_cl).reshape(-1)[0])
        return {
            "id": f.id,
            "model": f.model,
            "status": f.status,
            "method": f.diagnostics.get("method"),
            "risk_90d": self._risk(),
            "intervals": self._intervals(),
            "p_high_risk": p,
            "p_high_risk_laplace": self.p_high_risk_laplace,
            "map_class": None
            if self.threshold is None
            else ("high" if map_ln < self.threshold else "low"),
            "posterior_class": None if p is None else risk_class(p),
            "flags": self.flags(),
            "imputed": f.imputed_json(),
            "map": {"eta": [finite_or_none(x) for x in f.map.eta], "eta_names": list(f.eta_names)},
            "outcome": None
            if self.threshold is None
            else {
                "source_model": f.outcome_source,
                "extrapolated": bool(f.extrapolated_outcome),
                "high_risk_threshold": self.threshold,
            },
            "predictive_check": None,
            "notes": [
                "predictive_check: the leave-one-out check needs exact quadrature over the "
                "random effects, available for the default model only"
            ],
            "warnings": list(f.warnings),
        }


def compare_problem(
    problem: PatientProblem,
    patient_id: str,
    *,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
) -> LibraryComparison:
    """:class:`LibraryComparison` of a bound problem (its declaration carries the outcome)."""
    forecast = forecast_problem(problem, patient_id, random_seed=random_seed, options=options)
    laplace = laplace_quantities(
        problem, forecast.map.eta, forecast.map.covariance, random_seed=random_seed
    )
    return LibraryComparison(forecast=forecast, laplace=laplace)


def compare_library_patient(
    declaration: ModelDeclaration | str,
    patient: Patient,
    covariates: Mapping[str, Any] | None = None,
    *,
    impute: Mapping[str, Any] | str | None = None,
    random_seed: int = 0,
    options: SamplerOptions | None = None,
) -> LibraryComparison:
    """MAP + Laplace against the posterior of ``patient`` under a library model.

    Parameters
    ----------
    declaration
        A :class:`~asuc_bayes.spec.ModelDeclaration` or a library name; a model without an
        outcome model gets the ASUC one attached (flagged extrapolated).
    patient, covariates, impute
        As :func:`asuc_bayes.inference.forecast_library_patient`.
    random_seed
        Seed of the sampler and of the Laplace draws.
    options
        Chains and draws of the posterior.

    Raises
    ------
    asuc_bayes.spec.MissingCovariateError
        A covariate the model needs is missing and not imputed.
    """
    if isinstance(declaration, str):
        declaration = load_declaration(declaration)
    if declaration.outcome is None:
        declaration = with_outcome_from(declaration, load_declaration(ASUC_OUTCOME_MODEL))
    problem = PatientProblem.from_patient(declaration, patient, covariates, impute=impute)
    return compare_problem(problem, patient.id, random_seed=random_seed, options=options)
