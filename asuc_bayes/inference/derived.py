"""Derived quantities per draw of η: individual parameters, AUC_w2-4, ln(AUC/CL), 90-day risk.

``cl`` is the declaration's ``CL`` (the elimination clearance, also for two compartments),
``v`` the central volume of the PK structure (``V`` or ``V1``). The AUC window and the risk come
from the declaration's outcome model (its own, or the ASUC one attached by
:func:`asuc_bayes.spec.with_outcome_from`, flagged extrapolated); without one, the AUC is over
days 14–28 and there is no risk. With time-varying covariates the individual parameters are
piecewise constant; the reported ones (and the CL of ln(AUC/CL)) are their time-weighted means
over the AUC window (:meth:`PatientProblem.window_mean`).

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.spec import load_declaration
>>> from asuc_bayes.pk import DoseArrays
>>> from asuc_bayes.inference.problem import PatientProblem
>>> decl = load_declaration("niyigena2025")
>>> doses = DoseArrays(start_day=[0.0, 14.0], amount_mg=[700.0, 700.0],
...                    duration_day=[1 / 12, 1 / 12])
>>> problem = PatientProblem.build(decl, doses, covariates={"WT": 70.0, "CRP": 30.0})
>>> d = derived_quantities(problem, np.zeros((1, 2)))
>>> round(float(d.cl[0]), 2), round(float(d.v[0]), 1), 0 < float(d.risk_90d[0]) < 1
(0.49, 13.2, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.pk.kernels import AUC_FLOOR_MG_DAY_L, weibull_risk
from asuc_bayes.spec.declaration import OutcomeModel

__all__ = ["DEFAULT_AUC_WINDOW_DAY", "Derived", "derived_quantities", "risk_90d"]

#: The exposure window of ln(AUC_w2-4/CL) when the model has no outcome model.
DEFAULT_AUC_WINDOW_DAY = (14.0, 28.0)


@dataclass(frozen=True)
class Derived:
    """Arrays of the leading shape of η: parameters by name, and the derived exposure/risk."""

    parameters: dict[str, np.ndarray]
    cl: np.ndarray
    v: np.ndarray
    auc_w2_4: np.ndarray
    ln_auc_cl: np.ndarray
    #: None without an outcome model
    risk_90d: np.ndarray | None

    def contract(self) -> dict[str, np.ndarray]:
        """The quantities of today's JSON contract (``risk_90d`` only with an outcome)."""
        out = {"cl": self.cl, "v": self.v, "auc_w2_4": self.auc_w2_4, "ln_auc_cl": self.ln_auc_cl}
        if self.risk_90d is not None:
            out["risk_90d"] = self.risk_90d
        return out


def risk_90d(outcome: OutcomeModel, ln_auc_cl: np.ndarray) -> np.ndarray:
    """The Weibull risk by the outcome's horizon at x = ln(AUC/CL) (:func:`weibull_risk`)."""
    return np.asarray(
        weibull_risk(
            outcome.horizon_day,
            ln_auc_cl,
            baseline_lambda=10.0**outcome.log10_lambda.estimate,
            gamma=outcome.gamma.estimate,
            beta=outcome.beta.estimate,
            x_ref=outcome.x_ref,
            form=outcome.form,
        ),
        dtype=float,
    )


def derived_quantities(problem: PatientProblem, eta: np.ndarray) -> Derived:
    """:class:`Derived` at η ``(..., n_eta)``."""
    eta = np.asarray(eta, dtype=float)
    parameters = {k: np.array(v, dtype=float) for k, v in problem.parameters(eta).items()}
    outcome = problem.declaration.outcome
    window = outcome.auc_window_day if outcome is not None else DEFAULT_AUC_WINDOW_DAY
    auc = np.asarray(problem.auc(eta, window), dtype=float)
    if problem.time_varying:  # piecewise (..., n_piece): their means over the AUC window
        parameters = problem.window_mean(parameters, window)
    cl = parameters["CL"]
    ln_auc_cl = np.log(np.maximum(auc, AUC_FLOOR_MG_DAY_L)) - np.log(cl)
    structure_params = problem.structure_parameters(parameters)
    v = np.broadcast_to(problem.structure.central_volume(structure_params), cl.shape)
    return Derived(
        parameters=parameters,
        cl=cl,
        v=np.array(v, dtype=float),
        auc_w2_4=auc,
        ln_auc_cl=ln_auc_cl,
        risk_90d=None if outcome is None else risk_90d(outcome, ln_auc_cl),
    )
