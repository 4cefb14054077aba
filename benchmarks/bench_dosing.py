"""Speed of dosing decisions on an existing posterior (issue: optimisation <= 0.5 s per
patient; the pre-posterior sampling analysis <= 30 s for 8 candidate days).

For every bundled example patient whose day-14 decision follows its last sample: the warm
forecast (the posterior the decisions reuse) and the MAP are timed as baselines in the same
run, then the recommendation (curve + MAP recommendation), the full plan without sampling
analysis (risk mode: recommendation, timing search, regimen table; plus the trough-mode plan),
and the pre-posterior analysis for 8 candidate days (400 simulated samples per day, 4000
posterior draws).

Usage: ``python benchmarks/bench_dosing.py [--criterion mean|probability] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from asuc_bayes import example_path, load_model, read_patients
from asuc_bayes.decisions.dosing import (
    DosingError,
    DosingRequest,
    PlanOptions,
    check_request,
    plan_dosing,
    recommend_dose,
    sampling_value,
)
from asuc_bayes.inference.forecast import forecaster_for

#: The full plan: the risk mode (recommendation, timing search, regimen table), then the
#: trough mode (a plan of its own).
OPTIONS = PlanOptions()
TROUGH_OPTIONS = PlanOptions(trough_target_mg_l=3.0)


def _best_of(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criterion", choices=("mean", "probability"), default="probability")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    spec = load_model()
    forecaster = forecaster_for(spec)
    request = DosingRequest(criterion=args.criterion)
    patients = []
    for patient in read_patients(example_path()).patients:
        try:
            check_request(patient, spec, request)
            patients.append(patient)
        except DosingError:
            continue
    forecaster.forecast(patients[0], random_seed=0)  # warm-up: load densities, first run
    rows = []
    for patient in patients:
        forecast = forecaster.forecast(patient, random_seed=1)
        t_forecast = _best_of(lambda p=patient: forecaster.forecast(p, random_seed=1), 2)
        t_map = _best_of(lambda p=patient: forecaster.map_estimate(p), args.repeats)
        t_recommend = _best_of(lambda f=forecast: recommend_dose(f, request), args.repeats)
        t_plan = _best_of(
            lambda f=forecast: (
                plan_dosing(f, request, OPTIONS),
                plan_dosing(f, request, TROUGH_OPTIONS),
            ),
            args.repeats,
        )
        # 8 candidate days after the last sample (the cost does not depend on which days).
        last = patient.obs_time_day.max() if patient.observations else 0.0
        days = last + np.linspace(0.5, 8.0, 8)
        t_sampling = _best_of(lambda f=forecast, d=days: sampling_value(f, d, request=request), 1)
        rows.append((patient.id, t_forecast, t_map, t_recommend, t_plan, t_sampling))
    print(f"dosing on an existing posterior ({args.criterion} criterion, 4 x 1000 draws)")
    print(
        f"{'patient':<8}{'forecast s':>11}{'MAP ms':>8}{'recommend ms':>14}{'plan ms':>9}"
        f"{'8-day sampling s':>18}{'recommend/forecast':>20}"
    )
    for pid, t_f, t_m, t_r, t_p, t_s in rows:
        print(
            f"{pid:<8}{t_f:>11.3f}{t_m * 1e3:>8.1f}{t_r * 1e3:>14.1f}{t_p * 1e3:>9.1f}"
            f"{t_s:>18.2f}{t_r / t_f:>20.3f}"
        )
    worst_plan = max(r[4] for r in rows)
    worst_sampling = max(r[5] for r in rows)
    median_ratio = statistics.median(r[3] / r[1] for r in rows)
    print(
        f"worst full plan {worst_plan:.3f} s (target <= 0.5 s); worst 8-day pre-posterior "
        f"analysis {worst_sampling:.2f} s (target <= 30 s); recommendation / warm forecast "
        f"= {median_ratio:.3f} (median)"
    )


if __name__ == "__main__":
    main()
