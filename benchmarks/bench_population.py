"""Population fits: speed (nutpie vs plain PyMC NUTS in the same run), diagnostics over several
simulated cohorts, joint vs two-stage, and coverage of the population parameters.

Target of the issue: a 72-patient joint fit (4 chains x 1000 draws) in <= 2 minutes on the
2-core machine, beside the same model sampled by plain PyMC NUTS.

Usage: ``python benchmarks/bench_population.py [--cohorts 8] [--n 72] [--skip-pymc] [--out
results.json]``; the gates study of the default fit: ``python benchmarks/bench_population.py
--gates --sizes 72 120 300 --cohorts 10 [--full-cohorts 1] [--method marginal]
[--no-cancelled-infusions] [--tune 300] [--draws 500] [--out gates.json]``:
fits ``--cohorts`` simulated cohorts of each size with the default method (or ``--method``;
``--tune`` and ``--draws``: its warm-up and kept draws per chain; each line also counts the
leapfrog steps of the kept draws, a cost the machine's load does not change) and counts
those passing every gate (R-hat <= 1.01, bulk ESS >= 400 over the population parameters and
every eta, no divergence), with times;
in the same run fits ``--full-cohorts`` of them with plain PyMC NUTS on the full model
(``method="joint"``, ``sampler="pymc"``) and with nutpie on the full model. Cohorts are
simulated with ``simulate_cohort`` (seeds 1, 2, ...) from the model file's point estimates and
fitted with the weak priors; the coverage of the 50/90/95 % central intervals of the nine
population parameters is counted over all cohorts (the true value is known), with its binomial
standard error.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from asuc_bayes import load_model
from asuc_bayes.inference.population import (
    DEFAULT_METHOD,
    PopulationSettings,
    default_settings,
    fit_population,
)
from asuc_bayes.inference.population_draws import PARAMETER_NAMES, point_values
from asuc_bayes.spec.config import TTE_PARAMETER_NAMES
from asuc_bayes.studies.simulate import CohortDesign, simulate_cohort

LEVELS = (0.5, 0.9, 0.95)


def timed_fit(cohort, spec, **options):
    start = time.perf_counter()
    fit = fit_population(cohort.patients, spec, **options)
    return fit, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=8)
    parser.add_argument("--n", type=int, default=72)
    parser.add_argument("--skip-pymc", action="store_true")
    parser.add_argument("--skip-speed", action="store_true", help="only the cohort study")
    parser.add_argument("--out", default=None)
    parser.add_argument("--gates", action="store_true", help="the default fit's gates study")
    parser.add_argument("--sizes", type=int, nargs="+", default=[72, 120])
    parser.add_argument("--full-cohorts", type=int, default=1)
    parser.add_argument(
        "--first-cohort", type=int, default=1, help="resume a gates study at this cohort"
    )
    parser.add_argument(
        "--method",
        choices=["marginal", "joint", "two_stage"],
        default=None,
        help="the gates study's method (default: the fit's default)",
    )
    parser.add_argument(
        "--no-cancelled-infusions",
        action="store_true",
        help="gates study: cohorts whose colectomies cancel no infusion "
        "(CohortDesign(infusions_stop_at_colectomy=False): the data follow the fitted model)",
    )
    parser.add_argument(
        "--tune",
        type=int,
        default=None,
        help="gates study: warm-up draws per chain (default: the method's default)",
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=None,
        help="gates study: kept draws per chain (default: the method's default)",
    )
    parser.add_argument(
        "--target-accept",
        type=float,
        default=None,
        help="gates study: NUTS target acceptance (default: the method's default)",
    )
    parser.add_argument(
        "--sampler",
        choices=("nutpie", "pymc", "imh"),
        default=None,
        help="gates study: the sampler (default: the method's default)",
    )
    args = parser.parse_args()
    spec = load_model()
    truth = point_values(spec)
    if args.gates:
        report = gates_study(spec, args, truth)
        if args.out:
            with open(args.out, "w") as handle:
                json.dump(report, handle, indent=2, default=float)
        return
    report: dict = {"n": args.n, "fits": []}

    if not args.skip_speed:
        speed(spec, args, report, truth)
    cohort_study(spec, args, report, truth)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=2, default=float)


def speed(spec, args, report, truth) -> None:
    cohort = simulate_cohort(spec, args.n, random_seed=1)
    fit, first = timed_fit(cohort, spec, random_seed=1)
    d = fit.diagnostics
    print(
        f"first joint fit (compiles): {first:.0f} s total = {d['compile_seconds']:.0f} s compile "
        f"+ {d['sampling_seconds']:.0f} s sampling + rest; {d['divergences']} divergences, "
        f"R-hat {d['rhat_max']:.3f}, ESS {d['ess_bulk_min']:.0f}",
        flush=True,
    )
    report["first_fit_seconds"] = first
    _, warm = timed_fit(cohort, spec, random_seed=2)
    print(f"same cohort, compiled model reused: {warm:.0f} s", flush=True)
    report["warm_fit_seconds"] = warm

    two, two_seconds = timed_fit(cohort, spec, random_seed=1, method="two_stage")
    print(f"two-stage fit (compiles two models): {two_seconds:.0f} s", flush=True)
    comparison = {}
    for name in TTE_PARAMETER_NAMES:
        joint = fit.tree["posterior"][name].values
        staged = two.tree["posterior"][name].values
        comparison[name] = {
            "truth": truth[name],
            "joint": [float(np.mean(joint)), *np.quantile(joint, [0.025, 0.975]).tolist()],
            "two_stage": [float(np.mean(staged)), *np.quantile(staged, [0.025, 0.975]).tolist()],
        }
        print(
            f"  {name:<11} joint {comparison[name]['joint']}  "
            f"two-stage {comparison[name]['two_stage']}"
        )
    report["joint_vs_two_stage"] = comparison
    report["two_stage_seconds"] = two_seconds
    report["two_stage_diagnostics"] = two.diagnostics

    if not args.skip_pymc:
        _, pymc_seconds = timed_fit(
            cohort, spec, random_seed=1, settings=PopulationSettings(sampler="pymc", cores=2)
        )
        print(
            f"plain PyMC NUTS (pm.sample, numba backend, same model and settings): "
            f"{pymc_seconds:.0f} s = x{pymc_seconds / first:.2f} of the nutpie fit with compile, "
            f"x{pymc_seconds / warm:.2f} of the warm nutpie fit",
            flush=True,
        )
        report["pymc_seconds"] = pymc_seconds


def cohort_study(spec, args, report, truth) -> None:
    hits = {level: {name: [] for name in PARAMETER_NAMES} for level in LEVELS}
    for seed in range(1, args.cohorts + 1):
        cohort = simulate_cohort(spec, args.n, random_seed=100 + seed)
        fit, seconds = timed_fit(cohort, spec, random_seed=seed)
        d = fit.diagnostics
        posterior = fit.tree["posterior"]
        for level in LEVELS:
            for name in PARAMETER_NAMES:
                low, high = np.quantile(posterior[name].values, [(1 - level) / 2, (1 + level) / 2])
                hits[level][name].append(bool(low <= truth[name] <= high))
        entry = {"seed": 100 + seed, "seconds": seconds, **d}
        report["fits"].append(entry)
        print(
            f"cohort {100 + seed}: {seconds:.0f} s, {d['divergences']} divergences, R-hat max "
            f"{d['rhat_max']:.3f} ({d['rhat_max_at']}), ESS min {d['ess_bulk_min']:.0f} "
            f"({d['ess_bulk_min_at']}), events {int(fit.tree['observed_data']['colectomy'].sum())}",
            flush=True,
        )
    coverage = {}
    for level in LEVELS:
        all_hits = [h for name in PARAMETER_NAMES for h in hits[level][name]]
        rate = float(np.mean(all_hits))
        se = float(np.sqrt(level * (1 - level) / len(all_hits)))
        coverage[str(level)] = {"rate": rate, "binomial_se": se, "n": len(all_hits)}
        print(
            f"coverage of {level:.0%} CrIs over {len(all_hits)} parameter-cohorts: {rate:.3f} "
            f"(SE {se:.3f})"
        )
    per_parameter = {name: float(np.mean(hits[0.9][name])) for name in PARAMETER_NAMES}
    print("90 % coverage per parameter:", per_parameter)
    report["coverage"] = coverage
    report["coverage_90_per_parameter"] = per_parameter
    divergences = [f["divergences"] for f in report["fits"]]
    print(
        f"divergences per fit: {divergences}; fits passing every gate: "
        f"{sum(bool(f['converged']) for f in report['fits'])}/{len(report['fits'])}"
    )


def _load() -> float:
    with open("/proc/loadavg") as handle:
        return float(handle.read().split()[0])


def _cost(entry: dict) -> str:
    """The sampler's work: NUTS's leapfrog steps, or the independence sampler's evaluations
    with its k̂, efficiency, smallest chain acceptance, the moves of its proposal to a pilot's
    weighted moments and whether its chains were doubled."""
    if entry.get("sampler_used") != "imh":
        refused = entry.get("imh_refused")
        return f"{entry['leapfrog_steps']} leapfrog steps" + (
            f" (imh refused: {refused})" if refused else ""
        )
    return (
        f"imh {entry['imh_evaluations']} evaluations, k-hat {entry['imh_khat']:.2f}, "
        f"efficiency {entry['imh_importance_efficiency']:.2f}, "
        f"acceptance min {entry['imh_acceptance_min']:.2f}, "
        f"adapted {entry.get('imh_adaptations', 0)}x, "
        f"{'doubled' if entry.get('imh_extended') else 'not doubled'}"
    )


def _leapfrog_steps(fit) -> int:
    """Leapfrog steps of the kept draws over all chains (-1 when the sampler did not record
    them)."""
    stats = fit.tree.children.get("sample_stats")
    if stats is None or "n_steps" not in stats:
        return -1
    return int(stats["n_steps"].sum())


def _entry(fit, seconds, seed, truth) -> dict:
    d = fit.diagnostics
    posterior = fit.tree["posterior"]
    covered = {}
    missed = []
    for name in PARAMETER_NAMES:
        low, high = np.quantile(posterior[name].values, [0.05, 0.95])
        covered[name] = bool(low <= truth[name] <= high)
        if not covered[name]:
            side = "below" if truth[name] < low else "above"
            missed.append(f"{name} truth {truth[name]:.3g} {side} [{low:.3g}, {high:.3g}]")
    return {
        "missed_90": "; ".join(missed) or "none",
        "seed": seed,
        "seconds": seconds,
        "load": _load(),
        "draws": int(posterior.sizes["chain"] * posterior.sizes["draw"]),
        "leapfrog_steps": _leapfrog_steps(fit),
        "means": {name: float(posterior[name].mean()) for name in PARAMETER_NAMES},
        "covered_90": covered,
        **{k: v for k, v in d.items() if isinstance(v, (int, float, str))},
    }


def gates_study(spec, args, truth) -> dict:
    """Default fits of ``--cohorts`` cohorts per size: passes, times; full-model fits."""
    report: dict = {"sizes": {}}
    for n in args.sizes:
        fits = []
        for seed in range(args.first_cohort, args.cohorts + 1):
            design = CohortDesign(infusions_stop_at_colectomy=not args.no_cancelled_infusions)
            cohort = simulate_cohort(spec, n, random_seed=1000 * n + seed, design=design)
            method = {"method": args.method} if args.method else {}
            chosen_settings = {
                "tune": args.tune,
                "draws": args.draws,
                "target_accept": args.target_accept,
                "sampler": args.sampler,
            }
            if any(value is not None for value in chosen_settings.values()):
                chosen = args.method or DEFAULT_METHOD
                method["settings"] = default_settings(chosen, **chosen_settings)
            fit, seconds = timed_fit(cohort, spec, random_seed=seed, **method)
            entry = _entry(fit, seconds, 1000 * n + seed, truth)
            fits.append(entry)
            times = ", ".join(
                f"{label} {entry[key]:.0f}"
                for label, key in (
                    ("rule", "rule_seconds"),
                    ("compile", "compile_seconds"),
                    ("sampling", "sampling_seconds"),
                    ("eta", "random_effects_seconds"),
                )
                if key in entry
            )
            print(
                f"n={n} cohort {seed}: {seconds:.0f} s ({times}), {entry['draws']} draws, "
                f"{_cost(entry)}, "
                f"R-hat {entry['rhat_max']:.4f} ({entry['rhat_max_at']}), ESS "
                f"{entry['ess_bulk_min']:.0f} ({entry['ess_bulk_min_at']}), "
                f"{entry['divergences']} div, importance ESS min "
                f"{entry.get('importance_ess_min', float('nan')):.1f} "
                f"(below 10: {entry.get('importance_ess_low_share', float('nan')):.2%}), "
                f"converged {bool(entry['converged'])}, load {entry['load']:.1f}, "
                f"90 % CrIs cover {sum(entry['covered_90'].values())} of "
                f"{len(entry['covered_90'])} (missed: {entry['missed_90']})",  # kept per cohort
                flush=True,
            )
        full = []
        for seed in range(1, args.full_cohorts + 1):
            cohort = simulate_cohort(spec, n, random_seed=1000 * n + seed)
            for label, sampler in (("pymc", "pymc"), ("nutpie", "nutpie")):
                if label == "pymc" and args.skip_pymc:
                    continue
                settings = default_settings("joint", sampler=sampler, cores=2)
                fit, seconds = timed_fit(
                    cohort, spec, random_seed=seed, method="joint", settings=settings
                )
                entry = {"sampler": label, **_entry(fit, seconds, 1000 * n + seed, truth)}
                full.append(entry)
                print(
                    f"n={n} cohort {seed} FULL model, {label} NUTS: {seconds:.0f} s, R-hat "
                    f"{entry['rhat_max']:.4f}, ESS {entry['ess_bulk_min']:.0f}, "
                    f"{entry['divergences']} div, converged {bool(entry['converged'])}, "
                    f"load {entry['load']:.1f}",
                    flush=True,
                )
        passes = sum(bool(f["converged"]) for f in fits)
        hits = [h for f in fits for h in f["covered_90"].values()]
        coverage = float(np.mean(hits)) if hits else float("nan")
        report["sizes"][str(n)] = {
            "fits": fits,
            "full": full,
            "passes": passes,
            "coverage_90": coverage,
        }
        print(
            f"n={n}: {passes}/{len(fits)} default fits pass every gate; parameter recovery: "
            f"90 % CrIs cover the truth in {coverage:.2f} of {len(hits)} parameter-cohorts "
            f"(binomial SE {np.sqrt(0.09 / max(1, len(hits))):.2f})",
            flush=True,
        )
    return report


if __name__ == "__main__":
    main()
