"""The PyMC model of one patient under any declaration, from the same maths as NumPy.

The graph is :meth:`PatientProblem.log_likelihood` evaluated with ``xp = pytensor.tensor`` (a
``pm.Potential``) under the prior ``eta ~ MvNormal(0, Ω)`` with dim ``random_effect`` whose
coordinates are the model file's random-effect names (PyMC forbids a dim named like its
variable, ``eta``; ``random_effect`` is the dim of today's :mod:`asuc_bayes.graphs.model` too).
Its log density equals the NumPy :meth:`PatientProblem.log_posterior` (tested to 1e-10 for
every library model). It serves as the NUTS reference and the fallback of the independence
sampler.

Examples
--------
>>> from asuc_bayes.spec import load_declaration
>>> from asuc_bayes.pk import DoseArrays
>>> from asuc_bayes.inference.problem import PatientProblem
>>> decl = load_declaration("wojciechowski2017")
>>> problem = PatientProblem.build(
...     decl, DoseArrays(start_day=[0.0], amount_mg=[350.0], duration_day=[1 / 12]),
...     time_day=[7.0], value_mg_l=[10.0], covariates={"WT": 70.0, "ALB": 4.0, "ADA": 0})
>>> model = build_pymc_model(problem)
>>> model.coords["random_effect"]
('eta_CL', 'eta_V1', 'eta_Q', 'eta_V2')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from asuc_bayes.graphs.numerics import reproducible_numba
from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.inference.sampler import SamplerOptions, convergence

__all__ = ["build_pymc_model", "nuts_draws"]


def build_pymc_model(problem: PatientProblem) -> pm.Model:
    """``eta ~ MvNormal(0, Ω)`` (dim ``random_effect``), the records' log-likelihood a Potential."""
    reproducible_numba()
    omega = problem.omega
    with pm.Model(coords={"random_effect": list(problem.eta_names)}) as model:
        eta = pm.MvNormal("eta", mu=np.zeros(problem.n_eta), cov=omega, dims="random_effect")
        pm.Potential("log_likelihood", problem.log_likelihood(eta, pt))
    return model


def nuts_draws(
    problem: PatientProblem,
    *,
    start: np.ndarray | None = None,
    options: SamplerOptions | None = None,
    random_seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """NUTS (PyMC) draws of η ``(chains, draws, n_eta)`` and their diagnostics."""
    options = options or SamplerOptions()
    model = build_pymc_model(problem)
    initvals = None if start is None else {"eta": np.asarray(start, dtype=float)}
    trace = pm.sample(
        draws=options.draws,
        tune=options.tune,
        chains=options.chains,
        cores=1,
        random_seed=random_seed,
        target_accept=options.target_accept,
        initvals=initvals,
        progressbar=False,
        compute_convergence_checks=False,
        model=model,
        nuts_sampler="pymc",
        quiet=True,
    )
    eta = np.asarray(trace["posterior"]["eta"].values, dtype=float)
    divergences = int(np.asarray(trace["sample_stats"]["diverging"].values).sum())
    return eta, convergence(eta, divergences)
