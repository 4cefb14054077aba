"""Shared fixtures: one compiled Forecaster per test session (compilation is the slow part)."""

from __future__ import annotations

import pytest

from asuc_bayes.data.dataset import ABOVE_ULOQ, BELOW_LLOQ, Dose, Observation, Patient
from asuc_bayes.inference.forecast import forecaster_for
from asuc_bayes.spec.config import load_model

INFUSION_DAY = 1.0 / 12.0


@pytest.fixture(scope="session")
def spec():
    return load_model()


@pytest.fixture(scope="session")
def forecaster(spec):
    return forecaster_for(spec)  # the instance the CLI uses too: compiled once per session


def _doses(times, mg):
    return tuple(Dose(float(t), float(mg), INFUSION_DAY) for t in times)


#: Six patients covering the validation cases of the forecasting issue.
REFERENCE_PATIENTS = {
    "one_sample": Patient(
        "one_sample", 63.0, 30.0, _doses([0, 14, 42], 600), (Observation(7.0, 25.0),)
    ),
    "several_samples": Patient(
        "several_samples",
        75.0,
        82.0,
        _doses([0, 14, 42], 800),
        (
            Observation(2.0, 62.0),
            Observation(13.9, 6.1),
            Observation(20.0, 21.0),
            Observation(41.8, 2.2),
        ),
    ),
    "blq_sample": Patient(
        "blq_sample",
        58.0,
        150.0,
        _doses([0, 14], 600),
        (Observation(5.0, 20.0), Observation(13.8, 0.5, BELOW_LLOQ)),
    ),
    "alq_sample": Patient(
        "alq_sample",
        80.0,
        12.0,
        _doses([0, 14, 42], 800),
        (Observation(1.0, 45.0, ABOVE_ULOQ), Observation(9.0, 18.0)),
    ),
    "no_sample": Patient("no_sample", 70.0, 30.0, _doses([0, 14, 42], 700)),
    "accelerated": Patient(
        "accelerated",
        52.0,
        95.0,
        _doses([0, 4, 14], 500),
        (Observation(2.0, 25.0), Observation(13.9, 3.5)),
    ),
}


#: Posteriors with two separated modes (a single NUTS run cannot weigh them): the engine
#: must detect them and use the exact quadrature posterior.
MULTIMODAL_PATIENTS = {
    "one_low_sample": Patient(
        "one_low_sample", 70.0, 30.0, _doses([0], 700), (Observation(7.0, 3.0),)
    ),
    "blq_after_measured": Patient(
        "blq_after_measured",
        58.0,
        150.0,
        _doses([0, 14], 600),
        (Observation(5.0, 9.0), Observation(13.8, 0.5, BELOW_LLOQ)),
    ),
    "accelerated_two_samples": Patient(
        "accelerated_two_samples",
        52.0,
        95.0,
        _doses([0, 4, 14], 500),
        (Observation(3.9, 8.0), Observation(13.9, 3.5)),
    ),
}


def truth_fit_tree(spec, cohort, noise_sd=0.05, draws=200, seed=0, checks=None):
    """A population-fit DataTree whose posterior is concentrated at a simulated cohort's
    truth (evaluation and population-forecast tests need a fit without sampling one);
    ``checks`` replaces the stored convergence diagnostics (e.g. a failed fit)."""
    import numpy as np
    import xarray as xr

    from asuc_bayes.inference.population import CohortData, PopulationSettings, _fit_tree
    from asuc_bayes.inference.population_draws import point_values

    rng = np.random.default_rng(seed)
    data = CohortData.from_patients(cohort.patients)
    truth = cohort.truth.loc[list(data.ids)]
    shape = (2, draws)
    coords = {"chain": [0, 1], "draw": np.arange(draws), "subject": list(data.ids)}
    values = {
        name: (("chain", "draw"), value * np.exp(rng.normal(0, 0.01, shape)))
        for name, value in point_values(spec).items()
    }
    values["tte_beta"] = (("chain", "draw"), spec.tte.beta.estimate + rng.normal(0, 0.01, shape))
    subject_dims = ("chain", "draw", "subject")
    for name in ("eta_cl", "eta_v", "ln_auc_cl", "cl", "v"):
        base = truth[name].to_numpy()
        values[name] = (subject_dims, base + rng.normal(0, noise_sd, (*shape, base.size)))
    posterior = xr.Dataset(values, coords=coords)
    stats = xr.Dataset(
        {"diverging": (("chain", "draw"), np.zeros(shape, dtype=bool))}, coords=coords
    )
    checks = checks or {
        "rhat_max": 1.0,
        "ess_bulk_min": 1000.0,
        "divergences": 0,
        "converged": True,
    }
    timing = {"compile_seconds": 0.0, "sampling_seconds": 0.0}
    return _fit_tree(
        spec, "weak", "joint", PopulationSettings(), 0, data, posterior, stats, checks, timing
    )
