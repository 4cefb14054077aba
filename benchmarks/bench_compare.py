"""Cost of the MAP-versus-posterior cohort study (issue: ≤ 5 minutes for 500 patients).

Times ``run_study`` for one scenario (default ``trough_week2``, 500 patients) with the warm,
compiled-once forecaster, beside the MAP-only cost of the same patients measured in the same
run (the published tool's work), and prints the ratio.

Usage: ``python benchmarks/bench_compare.py [--n 500] [--scenario NAME] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import time

from asuc_bayes import load_model
from asuc_bayes.inference.forecast import forecaster_for
from asuc_bayes.studies.comparison import SCENARIOS, run_study, simulate_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--scenario", default="trough_week2", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    spec = load_model()
    forecaster = forecaster_for(spec)
    patients, _ = simulate_scenario(spec, SCENARIOS[args.scenario], 5, args.seed + 1)
    for patient in patients:  # warm-up: load the compiled densities, first sampler run
        forecaster.forecast(patient, random_seed=0)

    start = time.perf_counter()
    study = run_study(spec, args.scenario, args.n, args.seed, forecaster=forecaster)
    study_seconds = time.perf_counter() - start

    patients, _ = simulate_scenario(spec, SCENARIOS[args.scenario], args.n, args.seed)
    start = time.perf_counter()
    for patient in patients:
        forecaster.map_estimate(patient)
    map_seconds = time.perf_counter() - start

    m = study.metrics
    print(f"scenario {args.scenario}, {args.n} patients (warm forecaster)")
    print(
        f"  full study (simulate, NUTS/grid posterior, MAP+Laplace, scoring): "
        f"{study_seconds:7.1f} s  ({study_seconds / args.n * 1000:.0f} ms/patient; "
        f"target <= 300 s)"
    )
    print(
        f"  MAP only, same patients:  {map_seconds:7.2f} s   study / MAP-only = "
        f"{study_seconds / map_seconds:.0f}x"
    )
    print(
        f"  exact-grid posteriors {m['exact_grid']}, unconverged {m['unconverged']}, "
        f"posterior 90% coverage ln ratio {m['posterior']['coverage_90_ln_auc_cl']:.3f} "
        f"(MAP+Laplace {m['map']['coverage_90_ln_auc_cl']:.3f})"
    )


if __name__ == "__main__":
    main()
