"""Why ``wojciechowski2017`` popPK fits fail their gates, and why integrating η_Q out by
Gauss–Hermite quadrature was not adopted (README, "fit --model NAME").

On the simulated 40-subject cohort of the popPK measurements (5 samples each, seed 1), at the
published values with ω_Q scaled by 0.5, 1 and 2 and the other random effects at 0 and at
eight prior draws (seed 2), each subject's conditional posterior of z = η_Q/ω_Q is evaluated
on a dense grid (1025 points over [−8, 8]); printed:

- the subjects whose conditional has a second local mode above 1 % of its peak at some point;
- the largest |Gauss–Hermite − dense grid| log marginal per subject, with 16 and 32 nodes, at
  ω_Q × 1 and × 2 (other effects at 0);
- how many subjects a 0.01 screen (16 nodes, ω_Q × 0.5, 1, 2, other effects at 0) would
  integrate.

Usage: ``python benchmarks/diagnose_eta_q.py`` (~10 s).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from asuc_bayes.inference.covariates import baseline_covariates
from asuc_bayes.inference.library_population import LibraryCohortData
from asuc_bayes.spec import load_declaration
from asuc_bayes.studies.library_simulate import simulate_library_cohort
from asuc_bayes.studies.simulate import CohortDesign

RICH = CohortDesign(samples_per_patient_probabilities=(0, 0, 0, 0, 1.0), centres=((0.1, 1e3),))
GRID = np.linspace(-8.0, 8.0, 1025)
SCALES = (0.5, 1.0, 2.0)
Q = 2  # the index of η_Q in the model file's order (CL, V1, Q, V2)


def conditional(problem, omega, z_other, points):
    """ln p(y | η) + ln N(z) of one subject at z = η_Q/ω_Q = ``points``, per row of other
    effects (``z_other``: (row, 3), in units of their ω): (row, point)."""
    eta = np.zeros((len(z_other), points.size, 4))
    others = [k for k in range(4) if k != Q]
    eta[:, :, others] = (z_other * omega[others])[:, None, :]
    eta[:, :, Q] = omega[Q] * points
    loglik = problem.log_likelihood(eta.reshape(-1, 4)).reshape(len(z_other), -1)
    return loglik - 0.5 * points**2


def gauss_hermite_error(problem, omega, n_nodes: int) -> float:
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    z_other = np.zeros((1, 3))
    dense = conditional(problem, omega, z_other, GRID)[0]
    log_grid = logsumexp(dense) + np.log(GRID[1] - GRID[0]) - 0.5 * np.log(2 * np.pi)
    at_nodes = conditional(problem, omega, z_other, nodes)[0] + 0.5 * nodes**2
    log_gh = logsumexp(at_nodes + np.log(weights / weights.sum()))
    return float(abs(log_gh - log_grid))


def second_mode(row: np.ndarray) -> bool:
    p = np.exp(row - row.max())
    inner = (p[1:-1] > p[:-2]) & (p[1:-1] >= p[2:]) & (p[1:-1] > 0.01)
    return int(inner.sum()) > 1


def main() -> None:
    declaration = load_declaration("wojciechowski2017")
    cohort = simulate_library_cohort(declaration, 40, random_seed=1, outcome=False, design=RICH)
    covariates = [baseline_covariates(p, declaration) for p in cohort.patients]
    data = LibraryCohortData.from_patients(declaration, cohort.patients, covariates)
    rng = np.random.default_rng(2)
    z_other = np.vstack([np.zeros(3), rng.normal(size=(8, 3))])
    published = declaration.random_effects.sd
    multimodal, screened = [], 0
    errors = {(n, s): [] for n in (16, 32) for s in (1.0, 2.0)}
    for i, problem in enumerate(data.problems):
        modes = False
        for scale in SCALES:
            omega = published.copy()
            omega[Q] *= scale
            rows = conditional(problem, omega, z_other, GRID)
            modes = modes or any(second_mode(row) for row in rows)
        if modes:
            multimodal.append(data.ids[i])
        worst = 0.0
        for scale in SCALES:
            omega = published.copy()
            omega[Q] *= scale
            worst = max(worst, gauss_hermite_error(problem, omega, 16))
            for (n, s), values in errors.items():
                if s == scale:
                    values.append(gauss_hermite_error(problem, omega, n))
        screened += worst <= 0.01
    print(f"second mode above 1 % at some point: {len(multimodal)} of {data.n_subjects} subjects")
    for (nodes, scale), values in errors.items():
        largest = max(values)
        print(f"Gauss-Hermite {nodes} nodes, omega_Q x {scale:g}: largest error {largest:.3f}")
    where = "16 nodes, omega_Q x 0.5/1/2, other effects at 0"
    print(f"a 0.01 screen ({where}) passes {screened} subjects")


if __name__ == "__main__":
    main()
