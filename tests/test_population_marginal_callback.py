"""The marginal model's cached C callbacks against PyMC's own compiled log density and
nutpie's own compiled model of the same marginal model."""

from __future__ import annotations

import numpy as np
import pytensor
import pytest

from asuc_bayes.inference.population import CohortData
from asuc_bayes.inference.population_marginal import (
    _graph_data,
    build_marginal_model,
    quadrature_rule,
)
from asuc_bayes.inference.population_marginal_callback import (
    MarginalCallbackModel,
    pack_marginal_data,
)
from asuc_bayes.inference.population_marginal_fit import _compiled
from asuc_bayes.spec.config import load_model
from asuc_bayes.studies.simulate import simulate_cohort


@pytest.fixture(scope="module")
def spec():
    return load_model()


@pytest.fixture(scope="module")
def priors(spec):
    return spec.priors("weak")


def cohort_values(spec, n: int, seed: int) -> dict:
    data = CohortData.from_patients(simulate_cohort(spec, n, random_seed=seed).patients)
    return quadrature_rule(spec, data).model_data(data)


@pytest.fixture(scope="module")
def values(spec):
    return cohort_values(spec, 6, 11)


@pytest.fixture(scope="module")
def compiled(spec, priors, values) -> MarginalCallbackModel:
    return _compiled(spec, priors, values)


@pytest.mark.parametrize(("n", "seed"), [(6, 11), (9, 12)], ids=["template", "another"])
def test_callbacks_equal_pymc_log_density_and_expansion(spec, priors, compiled, n, seed):
    """Log density (with its gradient, and alone), gradient and stored variables at random
    unconstrained points against
    PyMC's own compiled functions (its default backend) of a model built on the same data;
    the second cohort, of another size, only reaches the callbacks through the buffer."""
    values = cohort_values(spec, n, seed)
    model = build_marginal_model(spec, priors, values)
    callback = compiled.with_data(**_graph_data(values))
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    names = [v.name for v in model.value_vars]
    meta = compiled.callbacks.metadata
    assert meta.names[: len(names)] == names and meta.n_dim == len(names)
    stored = meta.names[len(names) :]
    outputs = model.replace_rvs_by_values([model[name] for name in stored])
    expand_graph = pytensor.function(model.value_vars, outputs, on_unused_input="ignore")
    rng = np.random.default_rng(seed)
    for x in callback.initial_point(seed) + rng.normal(0.0, 0.3, (4, meta.n_dim)):
        point = dict(zip(names, x, strict=True))
        value, gradient = callback.log_density(x)
        np.testing.assert_allclose(value, logp(point), rtol=1e-10)
        np.testing.assert_allclose(callback.log_density_value(x), logp(point), rtol=1e-10)
        np.testing.assert_allclose(gradient, dlogp(point), rtol=1e-7, atol=1e-9)
        expanded = callback.expanded(x)
        np.testing.assert_array_equal(expanded[: meta.n_dim], x)
        np.testing.assert_allclose(expanded[meta.n_dim :], expand_graph(*x), rtol=1e-12)


def test_the_start_is_pymc_initial_point_with_the_seeded_jitter(spec, priors, values, compiled):
    from asuc_bayes.inference.population.model import INIT_JITTER, INIT_LOG10_HAZARD_AT_REF

    model = build_marginal_model(spec, priors, values)
    with model:
        model.set_initval(model["tte_log10_hazard_at_ref"], INIT_LOG10_HAZARD_AT_REF)
    start = model.initial_point()
    expected = np.array([float(start[v.name]) for v in model.value_vars])
    jitter = compiled.initial_point(5) - expected
    assert np.all(np.abs(jitter) <= INIT_JITTER) and np.any(jitter != 0)
    np.testing.assert_array_equal(compiled.initial_point(5), compiled.initial_point(5))


@pytest.mark.slow  # a second compilation of the model, by nutpie (~15-25 s)
def test_nutpie_samples_the_callbacks_as_its_own_compiled_model(spec, priors, values, compiled):
    """The same seed gives the same draws, sampler statistics and names as
    ``nutpie.compile_pymc_model`` of the same model with the same start."""
    import nutpie

    from asuc_bayes.inference.population.model import INIT_LOG10_HAZARD_AT_REF, compile_jittered

    reference = compile_jittered(
        build_marginal_model(spec, priors, values),
        {"tte_log10_hazard_at_ref": INIT_LOG10_HAZARD_AT_REF},
    ).with_data(**_graph_data(values))
    options = {"draws": 40, "tune": 40, "chains": 2, "cores": 1, "seed": 3, "progress_bar": False}
    expected, got = nutpie.sample(reference, **options), nutpie.sample(compiled, **options)
    assert set(got.posterior.data_vars) == set(expected.posterior.data_vars)
    for name in expected.posterior.data_vars:
        np.testing.assert_array_equal(got.posterior[name].values, expected.posterior[name].values)
    for name in ("n_steps", "diverging", "logp"):
        np.testing.assert_array_equal(
            got.sample_stats[name].values, expected.sample_stats[name].values
        )


def test_a_new_process_loads_the_marginal_callbacks_from_the_disk_cache(compiled):
    """After this session compiled them, another process compiles nothing."""
    import subprocess
    import sys

    script = (
        "from asuc_bayes.inference.population_marginal_fit import prepare_marginal_model\n"
        "from asuc_bayes.spec.config import load_model\n"
        "spec = load_model()\n"
        "prepare_marginal_model(spec, spec.priors('weak'))\n"
        "from asuc_bayes.inference.population_marginal_fit import _COMPILED\n"
        "print(*(c.loaded_from_cache for c in _COMPILED.values()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["True"], out.stderr


def test_pack_rejects_data_outside_the_layout(values):
    data = _graph_data(values)
    with pytest.raises(ValueError, match="node_axis: expected 2-D int64"):
        pack_marginal_data({**data, "node_axis": data["node_axis"].astype(float)}, 9, 17)
    with pytest.raises(ValueError, match="expected containers"):
        pack_marginal_data({k: v for k, v in data.items() if k != "node_stats"}, 9, 17)


def test_unreadable_metadata_is_a_cache_miss(tmp_path, compiled):
    """A missing, truncated or foreign metadata file makes the callbacks be built again
    instead of loading callbacks with the wrong names or sizes."""
    import dataclasses
    import json

    from asuc_bayes.inference.population_marginal_callback import _read_metadata

    path = tmp_path / "marginal-key.json"
    assert _read_metadata(path) is None
    path.write_text('{"n_dim": 9')
    assert _read_metadata(path) is None
    path.write_text(json.dumps({"n_dim": 9}))
    assert _read_metadata(path) is None
    path.write_text(json.dumps(dataclasses.asdict(compiled.callbacks.metadata)))
    assert _read_metadata(path) == compiled.callbacks.metadata
