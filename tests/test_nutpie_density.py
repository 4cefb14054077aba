"""The cached C callback against PyMC's own compiled log density of the same model."""

from __future__ import annotations

import numpy as np
import pytensor
import pytest

from asuc_bayes.graphs.model import PatientData
from asuc_bayes.graphs.nutpie_density import CachedDensity, eta_from_whitened, pack_data

from conftest import REFERENCE_PATIENTS


@pytest.fixture(scope="module")
def density(forecaster):
    return forecaster._density("sampler")


@pytest.mark.parametrize("name", ["blq_sample", "alq_sample", "accelerated", "no_sample"])
def test_callback_equals_pymc_log_density_and_eta(name, forecaster, density):
    assert isinstance(density, CachedDensity)
    patient = REFERENCE_PATIENTS[name]
    map_result = forecaster.map_estimate(patient)
    whitening = forecaster._whitening(patient, map_result["eta"])
    data = {**PatientData.from_patient(patient).as_data(), **whitening}
    forecaster._bind(PatientData.from_patient(patient).as_data(), whitening)
    model = forecaster.model
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    value = model.rvs_to_values[model["eta_whitened"]]
    (eta_graph,) = model.replace_rvs_by_values([model["eta"]])
    eta_of = pytensor.function([value], eta_graph)
    rng = np.random.default_rng(7)
    for z in rng.normal(0.0, 1.5, size=(5, 2)):
        value, gradient = density.log_density(z, data)
        point = {"eta_whitened": z}
        np.testing.assert_allclose(value, logp(point), rtol=1e-10)
        np.testing.assert_allclose(gradient, dlogp(point), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(
            eta_from_whitened(z, whitening["eta_shift"], whitening["eta_chol"]),
            eta_of(z),
            rtol=1e-12,
        )


def test_callback_follows_the_bound_patient(forecaster, density):
    """Different data in the buffer give the density of that patient, not the template's."""
    values = []
    for name in ("one_sample", "several_samples"):
        data = {
            **PatientData.from_patient(REFERENCE_PATIENTS[name]).as_data(),
            "eta_shift": np.zeros(2),
            "eta_chol": np.eye(2),
        }
        values.append(density.log_density(np.array([0.2, -0.1]), data)[0])
    assert values[0] != values[1]


def test_pack_data_rejects_mismatched_lengths():
    data = {
        **PatientData.from_patient(REFERENCE_PATIENTS["one_sample"]).as_data(),
        "eta_shift": np.zeros(2),
        "eta_chol": np.eye(3),
    }
    with pytest.raises(ValueError, match="eta_chol: expected 4 values, got 9"):
        pack_data(data)


def test_nutpie_run_on_the_callback_is_seeded(density):
    import nutpie

    data = {
        **PatientData.from_patient(REFERENCE_PATIENTS["one_sample"]).as_data(),
        "eta_shift": np.zeros(2),
        "eta_chol": np.eye(2),
    }
    runs = [
        nutpie.sample(
            density.compiled_model(data), draws=50, tune=50, chains=2, seed=3, progress_bar=False
        )
        for _ in range(2)
    ]
    first, second = (run.posterior["eta_whitened"].values for run in runs)
    np.testing.assert_array_equal(first, second)


def test_a_model_variant_gets_its_own_callback(spec, density):
    """The cache key follows the specification: a variant compiles (or loads) another
    callback, whose density differs where the variant changes the model."""
    from asuc_bayes.inference.forecast import Forecaster
    from asuc_bayes.spec.config import load_model

    variant = Forecaster(load_model(variants=["log_crp"]))._density("sampler")
    assert variant.cache_key != density.cache_key
    data = {
        **PatientData.from_patient(REFERENCE_PATIENTS["accelerated"]).as_data(),
        "eta_shift": np.zeros(2),
        "eta_chol": np.eye(2),
    }
    z = np.array([0.1, 0.2])
    assert variant.log_density(z, data)[0] != density.log_density(z, data)[0]


def test_a_new_process_loads_both_callbacks_from_the_disk_cache(density):
    """After this session compiled them, another process compiles nothing."""
    import subprocess
    import sys

    script = (
        "from asuc_bayes import Forecaster, load_model\n"
        "f = Forecaster(load_model())\n"
        "print(f._density('sampler').loaded_from_cache, f._density('eta').loaded_from_cache)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["True", "True"], out.stderr


@pytest.mark.parametrize("variants", [[], ["log_residual"]], ids=["proportional", "log_normal"])
def test_eta_density_equals_the_numpy_grid_density(variants, forecaster):
    """The patient model's η density (the PyMC graph of the MAP, and its cached callback)
    against grid.py's NumPy log posterior at random η, censored records included: the same
    residual density of y, so they differ only by the prior's normalising constant
    −Σ ln(ω √(2π)), computed here by hand."""
    import pytensor.tensor as pt

    from asuc_bayes.graphs.model import build_patient_model, eta_log_density
    from asuc_bayes.inference.grid import log_posterior
    from asuc_bayes.spec.config import load_model

    spec = load_model(variants=variants)
    omega = np.array([spec.pk.omega_cl, spec.pk.omega_v])
    constant = -np.sum(np.log(omega * np.sqrt(2.0 * np.pi)))
    rng = np.random.default_rng(11)
    for name in ("blq_sample", "alq_sample", "several_samples"):
        patient = REFERENCE_PATIENTS[name]
        data = PatientData.from_patient(patient)
        model = build_patient_model(spec, data)
        eta = pt.dvector("eta")
        graph = pytensor.function([eta], eta_log_density(model, spec, eta))
        callback = forecaster._density("eta") if not variants else None
        buffered = {**data.as_data(), "eta_shift": np.zeros(2), "eta_chol": np.eye(2)}
        for point in rng.normal(0.0, 0.8, size=(6, 2)):
            expected = float(log_posterior(spec, patient, *point)) + constant
            np.testing.assert_allclose(float(graph(point)), expected, rtol=1e-10)
            if callback is not None:
                value, _ = callback.log_density(point, buffered)
                np.testing.assert_allclose(value, expected, rtol=1e-10)
