"""PK structures against independent references: the ODEs integrated by solve_ivp, quadrature,
long explicit dose histories, the existing one-compartment kernels, and hand calculations."""

from __future__ import annotations

import numpy as np
import pytest
from pk_reference import H, OdeRegimen, quad_auc, solve

from asuc_bayes.pk import (
    STRUCTURES,
    DoseArrays,
    DoseArraysError,
    OneCompartment,
    PKParameterError,
    TwoCompartment,
    UnknownStructureError,
    kernels,
    register_structure,
    structure_from_name,
)

#: Wojciechowski 2017 (70 kg), fast distribution, tiny Q, k10 = k21 (α close to β), large Q
TWO_CPT = {
    "wojciechowski": {"cl": 0.294, "v1": 3.33, "q": 0.0719, "v2": 1.14},
    "fast": {"cl": 3.0, "v1": 1.0, "q": 10.0, "v2": 0.5},
    "tiny_q": {"cl": 0.05, "v1": 30.0, "q": 0.01, "v2": 50.0},
    "k10_equals_k21": {"cl": 0.05, "v1": 30.0, "q": 0.01, "v2": 6.0},
    "large_v2": {"cl": 1.0, "v1": 5.0, "q": 10.0, "v2": 50.0},
}
ONE_CPT = {
    "asuc": {"cl": 0.49, "v": 13.2},
    "fast": {"cl": 1.7, "v": 6.0},
    "slow": {"cl": 0.15, "v": 30.0},
}
CASES = [("one_compartment", name, p) for name, p in ONE_CPT.items()] + [
    ("two_compartment", name, p) for name, p in TWO_CPT.items()
]
CASE_IDS = [f"{s}-{n}" for s, n, _ in CASES]

#: overlapping infusions, a padded zero dose and a dose after the last sample
DOSES = [
    (0.0, 700.0, 2 * H),
    (0.3, 250.0, 0.5),
    (14.0, 500.0, 3 * H),
    (20.0, 0.0, 2 * H),
    (60.0, 700.0, 2 * H),
]
#: at a dose's start (0, 0.3, 14), at infusion ends (2 h, 0.8), during, after
TIMES = [0.0, 2 * H, 0.3, 0.5, 0.8, 7.0, 14.0, 14.0 + H, 14.0 + 3 * H, 28.0, 42.0]


def _dose_arrays(doses, **optional) -> DoseArrays:
    start, amount, duration = (list(x) for x in zip(*doses, strict=True))
    return DoseArrays(start_day=start, amount_mg=amount, duration_day=duration, **optional)


def _breaks(doses) -> list[float]:
    return [d[0] for d in doses] + [d[0] + d[2] for d in doses]


# ----------------------------------------------------------------- registry and inputs


def test_registry_names_and_aliases():
    assert isinstance(structure_from_name("one_compartment"), OneCompartment)
    assert isinstance(structure_from_name("one_compartment_zero_order_infusion"), OneCompartment)
    assert isinstance(structure_from_name("two_compartment"), TwoCompartment)
    assert STRUCTURES["two_compartment"] is TwoCompartment
    with pytest.raises(UnknownStructureError, match=r"'three'.*one_compartment, .*two_compartment"):
        structure_from_name("three")
    assert issubclass(UnknownStructureError, ValueError)


def test_register_structure_refuses_a_taken_name():
    class Impostor:
        lookup_name = "two_compartment"

    with pytest.raises(ValueError, match="already taken by TwoCompartment"):
        register_structure(Impostor)
    assert STRUCTURES["two_compartment"] is TwoCompartment


def test_parameter_names_and_units():
    assert OneCompartment.parameter_names == ("cl", "v")
    assert TwoCompartment.parameter_names == ("cl", "v1", "q", "v2")
    assert dict(TwoCompartment.parameter_units) == {
        "cl": "L/day",
        "v1": "L",
        "q": "L/day",
        "v2": "L",
    }
    doses = _dose_arrays(DOSES)
    with pytest.raises(PKParameterError, match=r"missing \['q'\], unknown \['k'\]"):
        TwoCompartment().concentration([1.0], doses, {"cl": 1, "v1": 1, "v2": 1, "k": 1})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amount_mg": [-1.0, 1.0]}, "amount_mg must be finite and >= 0"),
        ({"duration_day": [0.1, 0.0]}, r"duration_day must be .* \(dose index \(1,\)\)"),
        ({"start_day": [0.0, np.nan]}, "start_day must be finite"),
        ({"steady_state_interval_day": [0.05, 0.0]}, "must not last longer than its interval"),
        ({"steady_state_interval_day": [-1.0, 0.0]}, "steady_state_interval_day must be"),
        ({"end_day": [np.nan, 1.0]}, "end_day must be a time or"),
        ({"amount_mg": [1.0, 2.0, 3.0]}, "must share one shape"),
        ({"amount_mg": ["a", 1.0]}, "amount_mg must be numbers"),
    ],
)
def test_dose_arrays_reject_bad_fields(kwargs, match):
    fields = {"start_day": [0.0, 14.0], "amount_mg": [700.0, 700.0], "duration_day": [0.1, 0.1]}
    with pytest.raises(DoseArraysError, match=match):
        DoseArrays(**{**fields, **kwargs})


def test_dose_arrays_from_records_and_read_only():
    doses = DoseArrays.from_records(
        [
            {"start_day": 0.0, "amount_mg": 700.0, "duration_day": 2 * H},
            {"start_day": 56.0, "amount_mg": 350.0, "duration_day": 2 * H, "end_day": 70.0},
        ]
    )
    np.testing.assert_array_equal(doses.end_day, [np.inf, 70.0])
    np.testing.assert_array_equal(doses.steady_state_interval_day, [0.0, 0.0])
    with pytest.raises(ValueError, match="read-only"):
        doses.amount_mg[0] = 1.0
    with pytest.raises(DoseArraysError, match=r"unknown field\(s\) \['ss'\]"):
        DoseArrays.from_records([{"start_day": 0, "amount_mg": 1, "duration_day": 1, "ss": 1}])
    with pytest.raises(DoseArraysError, match="at least one dose"):
        DoseArrays.from_records([])


# ------------------------------------------------------------------ against the ODEs


@pytest.mark.parametrize(("structure", "name", "params"), CASES, ids=CASE_IDS)
def test_concentration_and_auc_match_the_ode(structure, name, params):
    model = structure_from_name(structure)
    doses = _dose_arrays(DOSES)
    window = (0.1, 30.0)
    ode, ode_auc = solve(structure, OdeRegimen(DOSES, pieces=[params]), TIMES, window)
    ours = model.concentration(TIMES, doses, params)
    np.testing.assert_allclose(ours, ode, rtol=1e-9, atol=1e-12)
    assert ours[0] == 0.0  # a sample exactly at the first dose's start
    assert model.auc(*window, doses, params) == pytest.approx(ode_auc, rel=1e-9)


@pytest.mark.parametrize(("structure", "name", "params"), CASES, ids=CASE_IDS)
def test_reset_matches_the_ode_with_the_state_zeroed(structure, name, params):
    """EVID 3 at day 14.05 (during the third infusion) and EVID 4 (reset + dose) at day 30."""
    regimen = [*DOSES[:4], (30.0, 400.0, 2 * H), (35.0, 300.0, 1.0)]
    resets = [14.05, 30.0]
    end = [14.05, 14.05, 14.05, 30.0, np.inf, np.inf]
    model = structure_from_name(structure)
    doses = _dose_arrays(regimen, end_day=end)
    times = [*TIMES, 14.05, 14.06, 30.0, 30.0 + 2 * H, 35.5, 40.0]
    window = (10.0, 36.0)
    ode, ode_auc = solve(structure, OdeRegimen(regimen, resets, pieces=[params]), times, window)
    np.testing.assert_allclose(
        model.concentration(times, doses, params), ode, atol=1e-12, rtol=1e-9
    )
    assert model.auc(*window, doses, params) == pytest.approx(ode_auc, rel=1e-9)


@pytest.mark.parametrize(("structure", "name", "params"), CASES, ids=CASE_IDS)
def test_steady_state_matches_a_long_history_and_the_ode(structure, name, params):
    """SS=1, II=56 days: the dose at day 100 is the last of an infinite train."""
    model = structure_from_name(structure)
    interval, duration, amount = 56.0, 2 * H, 700.0
    rates, _ = model.modes(params)
    n_history = int(np.ceil(40.0 / (rates.min() * interval))) + 1  # e^(−40) is negligible
    history = [(100.0 - n * interval, amount, duration) for n in range(n_history, -1, -1)]
    steady = _dose_arrays([(100.0, amount, duration)], steady_state_interval_day=[interval])
    times = [100.0, 100.0 + H, 100.0 + duration, 101.0, 120.0, 155.9]
    explicit = model.concentration(times, _dose_arrays(history), params)
    ours = model.concentration(times, steady, params)
    np.testing.assert_allclose(ours, explicit, rtol=1e-10)
    assert ours[0] > 0.0  # the trough of the train at the dose's own start
    window = (100.5, 130.0)
    assert model.auc(*window, steady, params) == pytest.approx(
        model.auc(*window, _dose_arrays(history), params), rel=1e-10
    )
    if n_history <= 40:  # the ODE over the same train (a few seconds at most)
        ode, ode_auc = solve(structure, OdeRegimen(history, pieces=[params]), times, window)
        np.testing.assert_allclose(ours, ode, rtol=1e-8, atol=1e-12)
        assert model.auc(*window, steady, params) == pytest.approx(ode_auc, rel=1e-8)


def test_steady_state_trough_by_hand_one_compartment():
    """C_ss(τ) after the infusion = R/CL (1 − e^(−kT)) e^(−k(τ − T)) / (1 − e^(−k II))."""
    cl, v, amount, duration, interval = 0.49, 13.2, 700.0, 2 * H, 56.0
    k, rate = cl / v, amount / duration
    doses = _dose_arrays([(0.0, amount, duration)], steady_state_interval_day=[interval])
    tau = np.array([duration, 10.0, interval])
    expected = (rate / cl * (1 - np.exp(-k * duration)) * np.exp(-k * (tau - duration))) / (
        1 - np.exp(-k * interval)
    )
    ours = OneCompartment().concentration(tau, doses, {"cl": cl, "v": v})
    np.testing.assert_allclose(ours, expected, rtol=1e-13)


# ---------------------------------------------------------------- against quadrature


@pytest.mark.parametrize(("structure", "name", "params"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize(
    "window", [(0.0, 60.0), (0.01, 0.35), (14.0 + H, 14.0 + 2 * H), (15.0, 90.0), (-5.0, 0.2)]
)
def test_auc_matches_quadrature_with_steady_state_and_ends(structure, name, params, window):
    regimen = [(0.0, 700.0, 2 * H), (0.3, 250.0, 0.5), (14.0, 500.0, 3 * H), (20.0, 0.0, H)]
    doses = _dose_arrays(
        regimen,
        steady_state_interval_day=[28.0, 0.0, 0.0, 0.0],
        end_day=[50.0, 0.55, np.inf, np.inf],
    )
    model = structure_from_name(structure)

    def conc(t: float) -> float:
        return float(model.concentration([t], doses, params)[0])

    reference = quad_auc(conc, *window, [*_breaks(regimen), 50.0, 0.55])
    assert model.auc(*window, doses, params) == pytest.approx(reference, rel=1e-9, abs=1e-12)


# ---------------------------------------------------- against the one-compartment kernels


def test_one_compartment_equals_the_existing_kernels_on_random_regimens():
    rng = np.random.default_rng(20261203)
    one = OneCompartment()
    for _ in range(20):
        n_dose = int(rng.integers(1, 8))
        start = np.sort(rng.uniform(0.0, 60.0, n_dose))
        amount = rng.uniform(0.0, 1000.0, n_dose) * (rng.random(n_dose) > 0.2)
        duration = rng.uniform(0.5 * H, 1.0, n_dose)
        cl, v = rng.uniform(0.05, 3.0, 50), rng.uniform(1.0, 30.0, 50)
        times = np.concatenate([rng.uniform(-1.0, 90.0, 6), start[:1], (start + duration)[:1]])
        doses = DoseArrays(start_day=start, amount_mg=amount, duration_day=duration)
        ours = one.concentration(times, doses, {"cl": cl, "v": v})
        theirs = kernels.concentration(times, start, amount, duration, cl, v)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-300)
        a, b = np.sort(rng.uniform(-1.0, 90.0, 2))
        np.testing.assert_allclose(
            one.auc(a, b, doses, {"cl": cl, "v": v}),
            kernels.auc_interval(a, b, start, amount, duration, cl, v),
            rtol=1e-12,
            atol=1e-300,
        )


# ---------------------------------------------------------------- stability and shapes


def test_two_compartment_tends_to_one_compartment_as_q_vanishes():
    doses = _dose_arrays(DOSES)
    one = OneCompartment().concentration(TIMES, doses, {"cl": 0.5, "v": 10.0})
    two = TwoCompartment().concentration(
        TIMES, doses, {"cl": 0.5, "v1": 10.0, "q": 1e-12, "v2": 5.0}
    )
    np.testing.assert_allclose(two, one, rtol=1e-9, atol=1e-12)


def test_two_compartment_modes_match_the_eigenvalues_over_the_plausible_box():
    """α, β are the eigenvalues of −K and the weights are (e^(Kt))₁₁ / V1's coefficients:
    checked against numpy's eigendecomposition over the corners of the plausible box."""
    grid = np.array(
        np.meshgrid([0.05, 3.0], [1.0, 30.0], [0.01, 10.0], [0.5, 50.0], indexing="ij")
    ).reshape(4, -1)
    params = dict(zip(TwoCompartment.parameter_names, grid, strict=True))
    two = TwoCompartment()
    rates, weights = two.modes(params)
    eigenvalues, vectors = np.linalg.eig(two.rate_matrix(params))
    order = np.argsort(eigenvalues, axis=-1)  # most negative first: α then β
    np.testing.assert_allclose(rates, -np.take_along_axis(eigenvalues, order, -1), rtol=1e-12)
    # central response to a unit bolus: Σ_m V[0, m] (V⁻¹)[m, 0] e^(λ_m t)
    residues = vectors[..., 0, :] * np.linalg.inv(vectors)[..., :, 0]
    expected = np.take_along_axis(residues, order, -1) / params["v1"][:, None]
    np.testing.assert_allclose(weights, expected, rtol=1e-9)


def test_vectorised_over_draws_in_one_call():
    rng = np.random.default_rng(7)
    n_draw = 4000
    params = {
        "cl": rng.uniform(0.05, 3.0, n_draw),
        "v1": rng.uniform(1.0, 30.0, n_draw),
        "q": rng.uniform(0.01, 10.0, n_draw),
        "v2": rng.uniform(0.5, 50.0, n_draw),
    }
    start = np.array([0.0, 2.0, 6.0, 14.0, 28.0, 42.0, 56.0])
    doses = DoseArrays(start_day=start, amount_mg=np.full(7, 700.0), duration_day=np.full(7, 2 * H))
    times = np.array([1.0, 5.9, 13.9, 41.9, 70.0])
    two = TwoCompartment()
    out = two.concentration(times, doses, params)
    auc = two.auc(14.0, 28.0, doses, params)
    assert out.shape == (n_draw, 5) and auc.shape == (n_draw,)
    for draw in (0, 1234, n_draw - 1):
        single = {name: value[draw] for name, value in params.items()}
        np.testing.assert_allclose(out[draw], two.concentration(times, doses, single), rtol=1e-13)
        assert auc[draw] == pytest.approx(float(two.auc(14.0, 28.0, doses, single)), rel=1e-13)


def test_regimens_with_a_leading_patient_axis_broadcast_against_the_parameters():
    """Doses (n_patient, n_dose) with parameters (n_patient,): one call equals per-patient."""
    start = np.array([[0.0, 14.0, 42.0], [0.0, 4.0, 9.5]])
    amount = np.array([[700.0, 700.0, 0.0], [500.0, 800.0, 300.0]])
    duration = np.full((2, 3), 2 * H)
    interval = np.array([[0.0, 0.0, 0.0], [28.0, 0.0, 0.0]])
    doses = DoseArrays(
        start_day=start, amount_mg=amount, duration_day=duration, steady_state_interval_day=interval
    )
    params = {"cl": np.array([0.3, 0.49]), "v1": np.array([3.0, 4.0]), "q": 0.07, "v2": 1.1}
    times = np.array([1.0, 10.0, 50.0])
    two = TwoCompartment()
    together = two.concentration(times, doses, params)
    auc = two.auc(5.0, 30.0, doses, params)
    for i in range(2):
        single = DoseArrays(
            start_day=start[i],
            amount_mg=amount[i],
            duration_day=duration[i],
            steady_state_interval_day=interval[i],
        )
        p = {
            name: np.asarray(value)[..., i] if np.ndim(value) else value
            for name, value in params.items()
        }
        np.testing.assert_allclose(together[i], two.concentration(times, single, p), rtol=1e-13)
        assert auc[i] == pytest.approx(float(two.auc(5.0, 30.0, single, p)), rel=1e-13)
