"""Does the population model give back the simulator's truth on one very large cohort?

Coverage of the 90 % CrIs in the gates study is ~0.82 at 120 and 300 subjects, under 0.90.
A bias of the model against the simulator shrinks in absolute terms but not in standard errors
as cohorts grow, so it shows on one large cohort: this script simulates ``n`` subjects at the
model file's values (``simulate_cohort``, seed ``1000·n + K`` as the gates study), maximises
the marginal likelihood of the nine population parameters (the default fit's quadrature rule,
every random effect integrated out; no prior) with L-BFGS-B on PyTensor's gradient, and prints
each estimate beside the truth with its standard error (inverse Hessian by central differences
of the gradient, the forecasts' ``finite_difference_hessian``, carried to each parameter's own
scale by 20 000 draws of the Gaussian approximation) and z = (estimate − truth) / SE. Without
bias |z| > 3 has probability ~0.003 per parameter.

``--no-cancelled-infusions`` simulates with ``CohortDesign(infusions_stop_at_colectomy=False)``:
every planned infusion given, so the records follow the fitted model exactly (by default a
colectomy cancels the later infusions and x depends on the event time).

Each parameter's 90 % interval is the 5 and 95 % quantiles of those draws; with several cohorts
the last line counts how often it covers the truth (the coverage of the gates study's posterior
intervals, computed another way on the same cohorts).

``--rich`` uses :data:`RICH` (five samples per subject, almost no censoring, no cancellation).

Usage: ``python benchmarks/bench_population_mle.py 3000 [--cohort K ...]
[--no-cancelled-infusions | --rich] [--tolerance T --prune P]`` (~5 min at 3000 subjects, most of it
building the rule; ~1 min at 300; cohort seeds 1000·n + K, default K = 1;
``--tolerance``/``--prune`` rebuild the rule tighter than the fit's defaults, to see whether the
rule moves the estimates).
"""

import argparse
import os
import time

import numpy as np
import pytensor
import pytensor.tensor as pt
from scipy.optimize import minimize

import asuc_bayes.inference.population_marginal as M
from asuc_bayes.inference.forecast import finite_difference_hessian
from asuc_bayes.inference.population import CohortData
from asuc_bayes.spec.config import PARAMETER_NAMES, load_model
from asuc_bayes.studies.simulate import CohortDesign, simulate_cohort

#: Five samples per subject, assay limits that censor almost nothing, no cancelled infusion:
#: the records follow the fitted model exactly and carry much information on each subject.
RICH = CohortDesign(
    samples_per_patient_probabilities=(0, 0, 0, 0, 1.0),
    centres=((0.01, 1e4),),
    infusions_stop_at_colectomy=False,
)


def main(n: int, cohorts: list[int], tolerance: float, prune: float, design: CohortDesign) -> None:
    covered = np.array([one_cohort(n, k, tolerance, prune, design) for k in cohorts])
    if len(cohorts) > 1:
        per_parameter = ", ".join(
            f"{name} {c}" for name, c in zip(PARAMETER_NAMES, covered.sum(axis=0), strict=True)
        )
        print(
            f"n={n}: the 90 % Laplace intervals cover the truth in {covered.sum()} of "
            f"{covered.size} parameter-cohorts ({covered.mean():.2f}; by parameter, of "
            f"{len(cohorts)}: {per_parameter})",
            flush=True,
        )


def one_cohort(n: int, cohort_k: int, tolerance: float, prune: float, design: CohortDesign):
    """Print one cohort's estimates; return whether each 90 % Laplace interval covers the truth."""
    spec = load_model()
    truth = M.MarginalPoint.of_spec(spec)
    t = time.perf_counter()
    cohort = simulate_cohort(spec, n, random_seed=1000 * n + cohort_k, design=design)
    data = CohortData.from_patients(cohort.patients, spec.pk.default_infusion_duration_day)
    rule = M.quadrature_rule(spec, data, tolerance=tolerance, prune=prune)
    values = rule.model_data(data)
    model = M.build_marginal_model(spec, spec.priors("weak"), values)
    print(
        f"n={n}, cohort {1000 * n + cohort_k}, infusions stop at colectomy "
        f"{design.infusions_stop_at_colectomy}{', rich design' if design == RICH else ''}, "
        f"rule tolerance {tolerance} prune {prune}: "
        f"cohort and rule {time.perf_counter() - t:.0f} s, nodes {rule.n_nodes.sum()}"
    )
    value_vars = model.value_vars
    sizes = [int(np.prod(model.initial_point()[v.name].shape)) for v in value_vars]
    assert all(s == 1 for s in sizes), "every population parameter is a scalar"
    loglik, *natural = model.replace_rvs_by_values(
        [model["marginal_loglik"]] + [model[name] for name in PARAMETER_NAMES]
    )
    vector = pt.dvector("phi")
    replace = {v: vector[i] for i, v in enumerate(value_vars)}
    loglik, *natural = pytensor.graph.replace.graph_replace([loglik, *natural], replace)
    f = pytensor.function([vector], [-loglik, -pt.grad(loglik, vector)])
    g = pytensor.function([vector], natural)
    start = np.array([float(model.initial_point()[v.name]) for v in value_vars])
    t = time.perf_counter()
    result = minimize(
        f, start, jac=True, method="L-BFGS-B", options={"maxiter": 500, "ftol": 1e-13, "gtol": 1e-7}
    )
    print(
        f"L-BFGS-B: {result.nfev} evaluations, {time.perf_counter() - t:.0f} s, "
        f"converged {result.success} ({result.message}), |gradient| {np.abs(result.jac).max():.2g}"
    )
    hessian = finite_difference_hessian(f, result.x)  # of −ln L: f gives −ln L and its gradient
    covariance = np.linalg.inv(hessian)
    rng = np.random.default_rng(1)
    draws = rng.multivariate_normal(result.x, covariance, size=20_000)
    natural_draws = np.array([[float(v) for v in g(d)] for d in draws])
    estimate = [float(v) for v in g(result.x)]
    low, high = np.quantile(natural_draws, [0.05, 0.95], axis=0)
    print(f"{'parameter':<16}{'truth':>10}{'estimate':>11}{'SE':>9}{'z':>7}   90 % interval")
    covered = []
    for i, name in enumerate(PARAMETER_NAMES):
        true_value = float(getattr(truth, name))
        se = natural_draws[:, i].std()
        z = (estimate[i] - true_value) / se
        covered.append(bool(low[i] <= true_value <= high[i]))
        print(
            f"{name:<16}{true_value:>10.4g}{estimate[i]:>11.4g}{se:>9.3g}{z:>7.2f}   "
            f"[{low[i]:.4g}, {high[i]:.4g}]{'' if covered[-1] else ' missed'}"
        )
    print(f"load {os.getloadavg()[0]:.1f}", flush=True)
    return covered


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", type=int, nargs="?", default=3000, help="subjects")
    parser.add_argument(
        "--cohort", type=int, nargs="+", default=[1], help="K of each cohort seed 1000·n + K"
    )
    parser.add_argument("--tolerance", type=float, default=M.TOLERANCE)
    parser.add_argument("--prune", type=float, default=M.PRUNE)
    parser.add_argument("--no-cancelled-infusions", action="store_true")
    parser.add_argument("--rich", action="store_true", help=f"{RICH} (implies no cancellation)")
    args = parser.parse_args()
    if args.rich:
        design = RICH
    else:
        design = CohortDesign(infusions_stop_at_colectomy=not args.no_cancelled_infusions)
    main(args.n, args.cohort, args.tolerance, args.prune, design)
