"""The marginal fit against a long full-model NUTS run on one small simulated cohort.

Usage: ``python benchmarks/bench_population_agreement.py [--n 24] [--seed 5] [--out x.json]``.
Fits the cohort with ``method="marginal"`` (4 chains x 1000 draws) and with the full model
(``method="joint"``, nutpie, 4 chains x 2000 draws after 2000 tuning steps, target
acceptance 0.995) and prints, per population parameter, both posterior means and their
difference in units of the combined Monte Carlo standard error (az.mcse), with both fits'
gates. Agreement: |difference| within a few combined MCSE (the two are the same posterior).
"""

from __future__ import annotations

import argparse
import json
import time

import arviz as az
import numpy as np

from asuc_bayes import load_model
from asuc_bayes.inference.population import PopulationSettings, default_settings, fit_population
from asuc_bayes.inference.population_draws import PARAMETER_NAMES
from asuc_bayes.studies.simulate import simulate_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    spec = load_model()
    cohort = simulate_cohort(spec, args.n, random_seed=args.seed)
    fits = {}
    for label, method, settings in (
        ("marginal", "marginal", default_settings("marginal", draws=1000)),
        ("full", "joint", PopulationSettings(draws=2000, tune=2000, target_accept=0.995)),
    ):
        start = time.perf_counter()
        fit = fit_population(cohort.patients, spec, method=method, settings=settings, random_seed=1)
        fits[label] = (fit, time.perf_counter() - start)
        d = fit.diagnostics
        print(
            f"{label}: {fits[label][1]:.0f} s, R-hat {d['rhat_max']:.4f} ({d['rhat_max_at']}), "
            f"ESS {d['ess_bulk_min']:.0f} ({d['ess_bulk_min_at']}), {d['divergences']} div",
            flush=True,
        )
    report = {"n": args.n, "seed": args.seed, "parameters": {}}
    for name in (*PARAMETER_NAMES, "eta_cl", "eta_v"):
        a = fits["marginal"][0].tree["posterior"][name]
        b = fits["full"][0].tree["posterior"][name]
        mean_a, mean_b = a.mean(("chain", "draw")).values, b.mean(("chain", "draw")).values
        se = np.sqrt(
            az.mcse(a.to_dataset(name="x"))["x"].values ** 2
            + az.mcse(b.to_dataset(name="x"))["x"].values ** 2
        )
        z = (mean_a - mean_b) / se
        report["parameters"][name] = {
            "marginal": np.atleast_1d(mean_a).tolist(),
            "full": np.atleast_1d(mean_b).tolist(),
            "z_max_abs": float(np.max(np.abs(z))),
        }
        print(
            f"  {name:<16} marginal {np.mean(mean_a):.4g} full {np.mean(mean_b):.4g} "
            f"max |diff| / MCSE {np.max(np.abs(z)):.2f}",
            flush=True,
        )
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
