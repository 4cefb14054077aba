"""The PK structures as PyTensor graphs: equal to NumPy, with finite gradients w.r.t. the
log-parameters that match central finite differences (doses not yet started, padded zero
doses, steady state and resets included). Compiled in NUMBA mode, the backend of the
compiled densities (no C compilation: the shared compile directory's lock is slow)."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pk_reference import H

from asuc_bayes.pk import DoseArrays, OneCompartment, TwoCompartment

DOSES = DoseArrays(
    start_day=[0.0, 0.3, 14.0, 20.0, 21.0, 60.0],
    amount_mg=[700.0, 250.0, 500.0, 400.0, 0.0, 700.0],
    duration_day=[2 * H, 0.5, 3 * H, 2 * H, 2 * H, 2 * H],
    steady_state_interval_day=[14.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    end_day=[20.0, 20.0, 20.0, np.inf, np.inf, np.inf],
)
#: at a dose's start, at an infusion's end, at the reset, before the last dose
TIMES = np.array([0.0, 2 * H, 0.4, 7.0, 14.0, 19.0, 20.0, 25.0, 40.0])
WINDOW = (0.2, 30.0)
BOX = {"cl": (0.05, 3.0), "v": (1.0, 30.0), "v1": (1.0, 30.0), "q": (0.01, 10.0), "v2": (0.5, 50.0)}


def _log_params(structure, rng, n_random=20):
    """Random draws in the plausible box plus its corners (extremes of α − β and of Q)."""
    names = structure.parameter_names
    corners = np.array(np.meshgrid(*([0, 1] for _ in names), indexing="ij")).reshape(len(names), -1)
    columns = []
    for row, name in zip(corners, names, strict=True):
        low, high = np.log(BOX[name])
        columns.append(np.concatenate([rng.uniform(low, high, n_random), np.where(row, high, low)]))
    return dict(zip(names, columns, strict=True))


def _numpy_objective(structure, log_params, weights):
    params = {name: np.exp(value) for name, value in log_params.items()}
    conc = structure.concentration(TIMES, DOSES, params)
    return conc, structure.auc(*WINDOW, DOSES, params), conc @ weights


@pytest.mark.parametrize("structure", [OneCompartment(), TwoCompartment()], ids=repr)
def test_pytensor_graph_equals_numpy_and_its_gradient_matches_finite_differences(structure):
    rng = np.random.default_rng(2026)
    log_params = _log_params(structure, rng)
    weights = rng.uniform(0.5, 1.5, TIMES.size)
    inputs = [pt.vector(f"log_{name}") for name in structure.parameter_names]
    params = {name: pt.exp(x) for name, x in zip(structure.parameter_names, inputs, strict=True)}
    conc = structure.concentration(TIMES, DOSES, params, xp=pt)
    auc = structure.auc(*WINDOW, DOSES, params, xp=pt)
    # per-draw objective (draws are independent): log-concentrations as a likelihood takes
    # them (log1p: some samples are exactly 0) and the log-AUC as the TTE model does
    objective = pt.log1p(conc) @ weights + pt.log(auc)
    gradients = pt.grad(objective.sum(), inputs)
    function = pytensor.function(inputs, [conc, auc, objective, *gradients], mode="NUMBA")
    values = [log_params[name] for name in structure.parameter_names]
    conc_pt, auc_pt, _, *grads = function(*values)

    conc_np, auc_np, _ = _numpy_objective(structure, log_params, weights)
    np.testing.assert_allclose(conc_pt, conc_np, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(auc_pt, auc_np, rtol=1e-10)

    def numpy_objective(logs):
        conc, auc, _ = _numpy_objective(structure, logs, weights)
        return np.log1p(conc) @ weights + np.log(auc)

    step = 1e-6
    for name, grad in zip(structure.parameter_names, grads, strict=True):
        assert np.all(np.isfinite(grad)), name
        up = numpy_objective({**log_params, name: log_params[name] + step})
        down = numpy_objective({**log_params, name: log_params[name] - step})
        np.testing.assert_allclose(grad, (up - down) / (2 * step), rtol=1e-5, atol=1e-6)


def test_gradient_is_finite_for_a_dose_not_started_and_zero_doses():
    """Every sample before every dose (τ <= 0), and only padded zero doses after it."""
    doses = DoseArrays(start_day=[5.0, 6.0], amount_mg=[700.0, 0.0], duration_day=[2 * H, 2 * H])
    log_cl, log_v1 = pt.dscalar("log_cl"), pt.dscalar("log_v1")
    params = {"cl": pt.exp(log_cl), "v1": pt.exp(log_v1), "q": 0.07, "v2": 1.1}
    two = TwoCompartment()
    total = two.concentration([0.0, 4.0, 5.0], doses, params, xp=pt).sum()
    total = total + two.auc(0.0, 5.0, doses, params, xp=pt)
    outputs = [total, *pt.grad(total, [log_cl, log_v1])]
    function = pytensor.function([log_cl, log_v1], outputs, mode="NUMBA")
    value, *grads = function(np.log(0.3), np.log(3.3))
    assert value == 0.0
    assert [float(g) for g in grads] == [0.0, 0.0]
