"""Where do a population fit's divergent transitions sit? (diagnosis, not a benchmark)

Fits one simulated cohort with the defaults of
:func:`asuc_bayes.inference.population.fit_population`
(same centring weights, compiled model and sampler settings), with nutpie storing each
divergent transition's start and end in the sampler's unconstrained coordinates. Prints

- for every population parameter, the mean of the divergent draws and their mean quantile
  among the non-divergent draws (a funnel shows as divergences at one end of an ω or σ);
- the subjects whose coordinates move most (in posterior SDs) between the start and the end
  of the divergent trajectories, with their data (number of samples, censoring, centring);
- with ``--plot FILE``, the (η_CL, η_V) draws of those subjects with the divergences marked.

Usage: ``python benchmarks/diagnose_divergences.py [--cohort 104] [--n 72] [--seed 4]
[--target-accept 0.95] [--plot eta.png]``. The seed defaults to ``cohort - 100``, as in
``bench_population.py``.
"""

from __future__ import annotations

import argparse
import collections
import re

import numpy as np

from asuc_bayes import load_model
from asuc_bayes.inference.population import CohortData, PopulationSettings, _compiled_model
from asuc_bayes.spec.config import PK_PARAMETER_NAMES
from asuc_bayes.studies.simulate import simulate_cohort

POPULATION = PK_PARAMETER_NAMES
WEIBULL = ("tte_log10_lambda", "tte_gamma", "tte_beta")


def main() -> None:
    import nutpie

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=int, default=104)
    parser.add_argument("--n", type=int, default=72)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--target-accept", type=float, default=None)
    parser.add_argument("--top", type=int, default=6, help="subjects to list")
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    defaults = PopulationSettings()
    seed = args.cohort - 100 if args.seed is None else args.seed
    spec = load_model()
    cohort = simulate_cohort(spec, args.n, random_seed=args.cohort)
    data = CohortData.from_patients(cohort.patients, spec.pk.default_infusion_duration_day)
    data = data.with_centring(spec)
    compiled = _compiled_model(spec, spec.priors("weak"), data, "joint", {})
    trace = nutpie.sample(
        compiled,
        draws=defaults.draws,
        tune=defaults.tune,
        chains=defaults.chains,
        seed=seed,
        target_accept=args.target_accept or defaults.target_accept,
        progress_bar=False,
        save_warmup=False,
        store_unconstrained=True,
        store_divergences=True,
    )
    posterior, stats = trace["posterior"], trace["sample_stats"]
    diverging = stats["diverging"].values.astype(bool)
    print(
        f"cohort {args.cohort}, seed {seed}: {diverging.sum()} divergences per chain "
        f"{diverging.sum(axis=1).tolist()}"
    )
    if not diverging.any():
        return

    print("\nparameter: mean of all draws, of divergent draws, their mean quantile")
    for name in (*POPULATION, *WEIBULL):
        values = posterior[name].values
        if name not in ("crp_exponent_cl", "tte_log10_lambda", "tte_beta"):
            values, name = np.log(values), f"log {name}"
        quantile = np.mean(values[~diverging][:, None] < values[diverging][None, :])
        print(f"  {name:<22} {values.mean():8.3f} {values[diverging].mean():8.3f} {quantile:6.2f}")

    labels = [str(x) for x in stats["unconstrained_parameter"].values]
    draws = stats["unconstrained_draw"].values.reshape(-1, len(labels))
    scale = draws.std(axis=0)
    start = stats["divergence_start"].values.reshape(-1, len(labels))[diverging.ravel()]
    end = stats["divergence_end"].values.reshape(-1, len(labels))[diverging.ravel()]
    moves = collections.Counter()
    for step in np.abs(end - start) / scale:
        for index in np.argsort(-step)[:2]:
            found = re.fullmatch(r"z_(?:cl|v)_(\d+)", labels[index])
            if found:
                moves[int(found.group(1))] += 1
    nobs = np.bincount(data.obs_subject, minlength=data.n_subjects)
    print("\nsubjects among the two largest moves of a divergent trajectory (count):")
    for subject, count in moves.most_common(args.top):
        mine = data.obs_subject == subject
        print(
            f"  {data.ids[subject]} ({count}): {nobs[subject]} samples at "
            f"{np.round(data.obs_time_day[mine], 1).tolist()} d, censoring "
            f"{data.obs_censoring[mine].astype(int).tolist()}, event {int(data.event[subject])}, "
            f"centring ({data.centring_cl[subject]:.2f}, {data.centring_v[subject]:.2f})"
        )
    if args.plot:
        plot(args.plot, posterior, diverging, [s for s, _ in moves.most_common(4)], data)


def plot(path, posterior, diverging, subjects, data) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(subjects), figsize=(4 * len(subjects), 4), squeeze=False)
    for ax, subject in zip(axes[0], subjects, strict=False):
        eta_cl = posterior["eta_cl"].values[..., subject]
        eta_v = posterior["eta_v"].values[..., subject]
        ax.plot(eta_cl.ravel(), eta_v.ravel(), ".", ms=1, alpha=0.4)
        ax.plot(eta_cl[diverging], eta_v[diverging], "kx", label="divergent")
        ax.set(title=data.ids[subject], xlabel="η_CL", ylabel="η_V")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
