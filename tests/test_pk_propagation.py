"""Exact propagation with piecewise-constant parameters: against the analytic superposition
when nothing changes, and against solve_ivp with the parameters switching at the change times
(with resets and a steady-state start)."""

from __future__ import annotations

import numpy as np
import pytest
from pk_reference import H, OdeRegimen, solve

from asuc_bayes.pk import (
    DoseArrays,
    OneCompartment,
    PropagationError,
    TwoCompartment,
    propagate,
    structure_from_name,
)

WOJCIECHOWSKI = {"cl": 0.294, "v1": 3.33, "q": 0.0719, "v2": 1.14}
ASUC = {"cl": 0.49, "v": 13.2}

#: SS at the start, overlapping infusions, a reset (ends at 20), a zero dose, a late dose
REGIMEN = {
    "start_day": [0.0, 0.3, 14.0, 20.0, 21.0, 60.0],
    "amount_mg": [700.0, 250.0, 500.0, 400.0, 0.0, 700.0],
    "duration_day": [2 * H, 0.5, 3 * H, 2 * H, 2 * H, 2 * H],
    "steady_state_interval_day": [14.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    "end_day": [20.0, 20.0, 20.0, np.inf, np.inf, np.inf],
}
TIMES = [0.0, 2 * H, 0.3, 0.8, 5.0, 14.0, 14.0 + 3 * H, 19.99, 20.0, 20.0 + H, 30.0, 45.0]


def _random_params(structure, n_draw, rng):
    box = {"cl": (0.05, 3.0), "v": (1.0, 30.0), "v1": (1.0, 30.0), "q": (0.01, 10.0)}
    box["v2"] = (0.5, 50.0)
    return {
        name: np.exp(rng.uniform(*np.log(box[name]), n_draw)) for name in structure.parameter_names
    }


@pytest.mark.parametrize("structure", [OneCompartment(), TwoCompartment()], ids=repr)
def test_unchanged_parameters_give_the_analytic_superposition(structure):
    rng = np.random.default_rng(11)
    doses = DoseArrays(**REGIMEN)
    constant = _random_params(structure, 64, rng)
    change_day = [5.0, 14.0, 30.0]  # one of them exactly at a dose's start
    pieces = {name: np.repeat(value[:, None], 4, axis=1) for name, value in constant.items()}
    result = propagate(structure, doses, pieces, change_day, TIMES, auc_window=(0.2, 40.0))
    analytic = structure.concentration(TIMES, doses, constant)
    np.testing.assert_allclose(result.concentration, analytic, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(result.auc, structure.auc(0.2, 40.0, doses, constant), rtol=1e-10)
    # no change times at all, and parameters without a piece axis
    again = structure.piecewise_concentration(TIMES, doses, constant)
    np.testing.assert_allclose(again, analytic, rtol=1e-10, atol=1e-13)


PIECES = {
    "one_compartment": [ASUC, {"cl": 0.98, "v": 13.2}, {"cl": 0.6, "v": 20.0}],
    "two_compartment": [
        WOJCIECHOWSKI,
        {**WOJCIECHOWSKI, "cl": 0.6},
        {"cl": 0.4, "v1": 5.0, "q": 0.3, "v2": 2.0},
    ],
}


def _stack(pieces):
    return {name: np.array([p[name] for p in pieces]) for name in pieces[0]}


@pytest.mark.parametrize("name", sorted(PIECES))
def test_switching_parameters_match_the_ode(name):
    """Parameters change at day 3 and at day 20 (the reset; also a sample time)."""
    structure = structure_from_name(name)
    regimen = [(0.0, 700.0, 2 * H), (0.3, 250.0, 0.5), (14.0, 500.0, 3 * H), (20.0, 400.0, H)]
    ends = [20.0, 20.0, 20.0, np.inf]
    start, amount, duration = (list(x) for x in zip(*regimen, strict=True))
    doses = DoseArrays(start_day=start, amount_mg=amount, duration_day=duration, end_day=ends)
    change_day = [3.0, 20.0]
    ode_regimen = OdeRegimen(regimen, resets=[20.0], change_day=change_day, pieces=PIECES[name])
    times = [0.0, 1.0, 3.0, 3.5, 14.0 + 2 * H, 19.0, 20.0, 20.0 + H, 25.0, 40.0]
    ode, ode_auc = solve(name, ode_regimen, times, window=(1.0, 30.0))
    result = propagate(structure, doses, _stack(PIECES[name]), change_day, times, (1.0, 30.0))
    np.testing.assert_allclose(result.concentration, ode, rtol=1e-9, atol=1e-12)
    assert float(result.auc) == pytest.approx(ode_auc, rel=1e-9)
    # the change matters: the constant-parameter answer differs
    constant = structure.concentration(times, doses, PIECES[name][0])
    assert not np.allclose(constant, ode, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(PIECES))
def test_steady_state_start_with_later_changes_matches_the_ode(name):
    """SS dose at day 100 (II 21 days, history under the first piece), changes at 103, 120."""
    structure = structure_from_name(name)
    interval, amount, duration = 21.0, 700.0, 2 * H
    history = [(100.0 - n * interval, amount, duration) for n in range(30, -1, -1)]
    times = [100.0, 100.0 + H, 101.0, 103.0, 110.0, 120.0, 125.0]
    change_day = [103.0, 120.0]
    ode_regimen = OdeRegimen(history, change_day=change_day, pieces=PIECES[name])
    ode, ode_auc = solve(name, ode_regimen, times, window=(100.0, 121.0))
    doses = DoseArrays(
        start_day=[100.0],
        amount_mg=[amount],
        duration_day=[duration],
        steady_state_interval_day=[interval],
    )
    params = _stack(PIECES[name])
    result = propagate(structure, doses, params, change_day, times, (100.0, 121.0))
    np.testing.assert_allclose(result.concentration, ode, rtol=1e-9, atol=1e-12)
    assert float(result.auc) == pytest.approx(ode_auc, rel=1e-9)


def test_piecewise_methods_broadcast_over_draws():
    rng = np.random.default_rng(3)
    two = TwoCompartment()
    doses = DoseArrays(**REGIMEN)
    params = {
        name: np.stack([v, 1.5 * v], axis=-1) for name, v in _random_params(two, 50, rng).items()
    }
    conc = two.piecewise_concentration(TIMES, doses, params, change_day=[10.0])
    auc = two.piecewise_auc(0.0, 30.0, doses, params, change_day=[10.0])
    assert conc.shape == (50, len(TIMES)) and auc.shape == (50,)
    single = {name: value[7] for name, value in params.items()}
    np.testing.assert_allclose(
        conc[7], two.piecewise_concentration(TIMES, doses, single, [10.0]), rtol=1e-12
    )


def test_propagation_rejects_bad_inputs():
    doses = DoseArrays(start_day=[0.0], amount_mg=[700.0], duration_day=[2 * H])
    one = OneCompartment()
    with pytest.raises(PropagationError, match="strictly increasing"):
        propagate(one, doses, {"cl": [0.5, 0.5, 0.5], "v": [13.0] * 3}, [5.0, 5.0], [1.0])
    with pytest.raises(PropagationError, match=r"'cl' of one_compartment needs a last axis of 2"):
        propagate(one, doses, {"cl": [0.5, 0.5, 0.5], "v": [13.0, 13.0]}, [5.0], [1.0])
    with pytest.raises(PropagationError, match="auc_window"):
        propagate(one, doses, ASUC, (), [1.0], auc_window=(3.0, 1.0))
    batched = DoseArrays(start_day=[[0.0]], amount_mg=[[700.0]], duration_day=[[2 * H]])
    with pytest.raises(PropagationError, match=r"one regimen"):
        propagate(one, batched, ASUC, (), [1.0])
