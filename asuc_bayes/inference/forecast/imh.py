"""The default sampler of the default engine: independence Metropolis–Hastings at the
Laplace approximation, with a defensive mixture proposal (a multivariate t mixed with the
prior, :class:`PriorProposal`), on the density NUTS samples.

The constants below are read when a run is built (:func:`independence_run`), so a test may
patch them on this module.

Examples
--------
>>> import numpy as np
>>> proposal = PriorProposal(np.array([0.3, 0.2]), np.zeros(2), np.eye(2))
>>> z = proposal.sample(5, np.random.default_rng(0))
>>> z.shape, bool(np.all(np.isfinite(proposal.log_density(z))))
((5, 2), True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from asuc_bayes.data.dataset import Patient
from asuc_bayes.graphs.model import (
    RANDOM_EFFECTS,
    log_relative_to_sampler,
    sampler_to_log_relative,
)
from asuc_bayes.graphs.nutpie_density import eta_from_whitened
from asuc_bayes.inference.forecast.settings import SamplerSettings
from asuc_bayes.inference.grid import log_posterior
from asuc_bayes.inference.independence import IndependenceChains, MixtureProposal, StudentTProposal
from asuc_bayes.spec.config import ModelSpec

__all__ = [
    "IMH_BURN",
    "IMH_DF",
    "IMH_PRIOR_WEIGHT",
    "IMH_SCALE",
    "IMH_THIN",
    "PriorProposal",
    "independence_run",
]

#: The independence sampler (``sampler="imh"``, the default): burn-in per chain, thinning, and
#: the multivariate-t proposal's degrees of freedom and scale in the whitened coordinates, where
#: the posterior is ~N(0, I), mixed with the prior (weight IMH_PRIOR_WEIGHT). Measured on 120
#: simulated patients (seed 991) against the exact grid, worst error over the mean and 2.5/50/
#: 97.5 % quantiles of CL, V, AUC, ln(AUC/CL) and risk, in posterior SDs (4 x 1000 draws):
#: IMH median 0.10, 90th centile 0.18, max 0.34; NUTS (nutpie) 0.14, 0.24, 0.52 on the same
#: patients; 110/120 by IMH, 3 handed to NUTS by a gate, 7 bimodal (exact grid); 2.9 x faster
#: per patient than NUTS in the same run. Without the prior component, single-sample patients
#: showed 0.97 SD errors in V's upper tail (a proposal lighter-tailed than the posterior).
IMH_BURN = 50
#: Every IMH_THIN-th state is kept: proposals are cheap (all evaluated in one vectorised call)
#: and thinning by 4 (+~40 ms a patient) roughly doubles the draws' ESS.
IMH_THIN = 4
IMH_DF = 4.0
IMH_SCALE = 1.5
#: Weight of the prior in the defensive mixture proposal: every importance weight is then at
#: most max(likelihood) / IMH_PRIOR_WEIGHT (see :class:`PriorProposal`).
IMH_PRIOR_WEIGHT = 0.2


class PriorProposal:
    """The prior of η, N(0, diag(ω²)), as a distribution of the whitened sampler coordinates
    z (η → (ln k/k_typ, ln V/V_typ) → softplus coordinates c → z = L⁻¹(c − m)).

    Its density in z is N(η(z); 0, Ω) · |dη/dz|, the same change of variables as the sampled
    density's, so target/proposal = the patient's likelihood: bounded.
    """

    def __init__(self, omega: np.ndarray, shift: np.ndarray, chol: np.ndarray):
        self.omega = np.asarray(omega, dtype=float)
        self.shift = np.asarray(shift, dtype=float)
        self.chol = np.asarray(chol, dtype=float)
        self._log_det = float(np.log(np.abs(np.linalg.det(self.chol))))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        eta = rng.standard_normal((n, 2)) * self.omega
        log_relative = np.column_stack([eta[:, 0] - eta[:, 1], eta[:, 1]])
        coordinates = log_relative_to_sampler(log_relative)
        return np.linalg.solve(self.chol, (coordinates - self.shift).T).T

    def log_density(self, z: np.ndarray) -> np.ndarray:
        log_relative, log_jacobian = sampler_to_log_relative(self.shift + z @ self.chol.T)
        eta = np.column_stack([log_relative[:, 0] + log_relative[:, 1], log_relative[:, 1]])
        normal = (
            -0.5 * np.sum((eta / self.omega) ** 2, axis=1)
            - np.sum(np.log(self.omega))
            - np.log(2.0 * np.pi)
        )
        return normal + log_jacobian.sum(axis=1) + self._log_det


def independence_run(
    spec: ModelSpec,
    patient: Patient,
    omega: np.ndarray,
    whitening: dict[str, np.ndarray],
    settings: SamplerSettings,
    random_seed: int,
) -> tuple[IndependenceChains, Callable[[np.ndarray], np.ndarray]]:
    """Independence Metropolis–Hastings (:mod:`asuc_bayes.inference.independence`) on the
    density NUTS
    samples — the posterior in the whitened softplus coordinates z, here evaluated for all
    proposals at once with the NumPy log posterior of :mod:`asuc_bayes.inference.grid` (the same
    density as the PyMC graph, tested) and the coordinates' Jacobian.

    ``omega`` are the prior SDs of η and ``whitening`` the mode and Laplace Cholesky factor
    in the sampler's coordinates. Returns the continuable chains
    (:class:`~asuc_bayes.inference.independence.IndependenceChains`)
    and the map of their draws z to η."""
    shift, chol = whitening["eta_shift"], whitening["eta_chol"]

    def log_target(z):
        log_relative, log_jacobian = sampler_to_log_relative(shift + z @ chol.T)
        eta_cl = log_relative[:, 0] + log_relative[:, 1]
        return log_posterior(spec, patient, eta_cl, log_relative[:, 1]) + (log_jacobian.sum(axis=1))

    proposal = MixtureProposal(
        [
            StudentTProposal(len(RANDOM_EFFECTS), IMH_DF, IMH_SCALE),
            PriorProposal(omega, shift, chol),
        ],
        [1.0 - IMH_PRIOR_WEIGHT, IMH_PRIOR_WEIGHT],
    )
    run = IndependenceChains(
        log_target,
        proposal,
        chains=settings.chains,
        burn=IMH_BURN,
        thin=IMH_THIN,
        random_seed=random_seed,
    )
    return run, lambda z: eta_from_whitened(z, shift, chol)
