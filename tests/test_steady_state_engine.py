"""Steady state (SS=1/2 with II) and resets (EVID 3/4) in the default engine.

The kernels are checked against an independent event-driven solution of the
one-compartment ODE (``solve_ivp``, NONMEM's record semantics: a reset sets the amount to 0
and stops running infusions; an SS dose sets (SS=1) or adds (SS=2) the amount left at its
start by a long explicit history of the same infusion), and their AUCs against ``quad`` of
that solution. Then the whole path: a file read with SS against the same patient with the
history written out, a reset against the patient without the wiped-out doses, gradients,
and the command line.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.integrate

from asuc_bayes.data.dataset import Dose, read_patients
from asuc_bayes.inference.forecast import SamplerSettings
from asuc_bayes.pk import kernels
from asuc_bayes.pk.kernels import NO_END_DAY

H = 1.0 / 24.0
PARAMETERS = [(0.49, 13.2), (1.7, 6.0), (0.15, 30.0)]
#: Infusions of an explicit history that stands for a steady state (its remainder is
#: e^(−k·II·HISTORY) of the train).
HISTORY = 200


@dataclass(frozen=True)
class Record:
    """A NONMEM-like record for the reference: a dose (``amount`` > 0, with SS/II), or a
    reset (``reset``; with an amount, EVID=4: the reset, then the dose)."""

    time: float
    amount: float = 0.0
    duration: float = 2 * H
    ss: int = 0
    ii: float = 0.0
    reset: bool = False


def _piecewise(start, end, amount, infusions, k, v):
    """Solve dA/dt = Σ rates(t) − k A on [start, end] (rates constant between the pieces)."""
    cuts = sorted({start, end, *(t for s, e, _ in infusions for t in (s, e) if start < t < end)})
    pieces = []
    for a, b in itertools.pairwise(cuts):
        rate = sum(r for s, e, r in infusions if s <= 0.5 * (a + b) < e)
        sol = scipy.integrate.solve_ivp(
            lambda _t, y, r=rate: r - k * y,
            (a, b),
            [amount],
            method="DOP853",
            rtol=1e-12,
            atol=1e-14,
            dense_output=True,
        )
        amount = float(sol.y[0, -1])
        pieces.append((a, b, sol.sol))
    return amount, pieces


def _history_amount(record: Record, k, v, n_doses: int = HISTORY) -> float:
    """Amount at the start of an SS dose left by ``n_doses`` earlier identical infusions."""
    rate = record.amount / record.duration
    starts = [-n * record.ii for n in range(n_doses, 0, -1)]
    infusions = [(s, s + record.duration, rate) for s in starts]
    amount, _ = _piecewise(starts[0], 0.0, 0.0, infusions, k, v)
    return amount


def _fixed_point_amount(record: Record, k, v) -> float:
    """Amount at the start of an SS dose: the fixed point A = Φ(A) of the ODE's flow Φ over
    one period (an infusion at −II, then nothing until 0); Φ is affine, so two solves give
    it. Exact however slowly the train converges (the long history needs k·II·n ≫ 1)."""
    rate = record.amount / record.duration
    infusion = [(-record.ii, -record.ii + record.duration, rate)]
    from_zero, _ = _piecewise(-record.ii, 0.0, 0.0, infusion, k, v)
    from_one, _ = _piecewise(-record.ii, 0.0, 1.0, infusion, k, v)
    return from_zero / (1.0 - (from_one - from_zero))


def ode_reference(records, cl, v, end_day):
    """A function of time giving the concentration (mg/L) on [0, end_day], piecewise."""
    k = cl / v
    records = sorted(records, key=lambda r: r.time)  # stable: file order at one time
    running: list[tuple[float, float, float]] = []
    pieces = []
    amount, now = 0.0, records[0].time
    for record in [*records, Record(end_day)]:
        amount, done = _piecewise(now, record.time, amount, running, k, v)
        pieces += done
        now = record.time
        if record.reset or record.ss == 1:
            amount, running = 0.0, []
        if record.amount > 0:
            if record.ss:
                amount += _fixed_point_amount(record, k, v)
            running.append(
                (record.time, record.time + record.duration, record.amount / record.duration)
            )

    def concentration(t):
        for a, b, sol in reversed(pieces):  # the last piece that holds t: after events at t
            if a <= t <= b:
                return float(sol(t)[0]) / v
        return 0.0

    return concentration, pieces, v


@pytest.mark.parametrize(
    ("cl", "v", "ii"), [(0.49, 13.2, 14.0), (0.49, 13.2, 56.0), (1.7, 6.0, 7.0)]
)
def test_the_fixed_point_reference_equals_a_long_explicit_history(cl, v, ii):
    record = Record(0.0, 600.0, duration=3 * H, ss=1, ii=ii)
    k = cl / v
    assert k * ii * HISTORY > 60  # the history's remainder is below e^-60 of the train
    history = _history_amount(record, k, v)
    assert history > 1e-3
    np.testing.assert_allclose(_fixed_point_amount(record, k, v), history, rtol=1e-10)


def kernel_arrays(records):
    """The kernel's dose arrays for ``records``, ends as the data layer encodes them."""
    doses = []
    for record in sorted(records, key=lambda r: r.time):
        if record.reset or record.ss == 1:
            doses = [d if d[3] < NO_END_DAY else (*d[:3], record.time, d[4]) for d in doses]
        if record.amount > 0:
            ii = record.ii if record.ss else 0.0
            doses.append((record.time, record.amount, record.duration, NO_END_DAY, ii))
    time, amount, duration, end, ii = (np.array(c, dtype=float) for c in zip(*doses, strict=True))
    return (time, amount, duration), {"dose_end_day": end, "dose_ss_interval_day": ii}


CASES = {
    "ss1_resets_earlier_doses": [
        Record(0.0, 700.0),
        Record(10.0, 600.0, ss=1, ii=56.0),
        Record(30.0, 500.0, duration=0.5),
    ],
    "ss2_adds_to_earlier_doses": [
        Record(0.0, 700.0),
        Record(10.0, 600.0, duration=3 * H, ss=2, ii=14.0),
        Record(24.0, 400.0),
    ],
    "ss1_first_dose_weekly": [Record(0.0, 400.0, duration=1.0, ss=1, ii=7.0)],
    "ss_interval_equals_duration": [Record(0.0, 50.0, duration=0.5, ss=1, ii=0.5)],
    "evid3_reset": [
        Record(0.0, 700.0),
        Record(14.0, 700.0),
        Record(20.0, reset=True),
        Record(30.0, 500.0),
    ],
    "evid4_reset_and_dose": [
        Record(0.0, 700.0),
        Record(14.0, 700.0),
        Record(20.0, 800.0, reset=True),
    ],
    "reset_during_infusion_and_ss_after": [
        Record(0.0, 700.0, duration=0.5),
        Record(0.3, reset=True),
        Record(5.0, 300.0, ss=2, ii=28.0),
        Record(40.0, reset=True),
    ],
}


def _sample_times(records, end_day):
    events = sorted({r.time for r in records} | {r.time + r.duration for r in records})
    near = [t + d for t in events for d in (-1e-3, 1e-3, 0.5, 3.0) if 0 <= t + d <= end_day]
    return np.unique(np.array([*near, *np.linspace(0.0, end_day, 23)]))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("cl", "v"), PARAMETERS)
def test_concentration_matches_the_event_driven_ode(case, cl, v):
    records = CASES[case]
    end_day = 60.0
    reference, _, _ = ode_reference(records, cl, v, end_day)
    times = _sample_times(records, end_day)
    positional, options = kernel_arrays(records)
    got = kernels.concentration(times, *positional, cl, v, **options)
    expected = np.array([reference(t) for t in times])
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-9 * expected.max())
    assert expected.max() > 1.0  # the cases are not trivially zero


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("cl", "v"), PARAMETERS)
def test_auc_matches_quadrature_of_the_ode(case, cl, v):
    records = CASES[case]
    end_day = 60.0
    _, pieces, volume = ode_reference(records, cl, v, end_day)
    positional, options = kernel_arrays(records)
    for start, end in [(14.0, 28.0), (0.0, 60.0), (9.0, 21.0), (0.1, 0.4), (35.0, 45.0)]:
        expected = sum(
            scipy.integrate.quad(
                lambda t, sol=sol: float(sol(t)[0]) / volume,
                max(a, start),
                min(b, end),
                epsabs=1e-12,
                epsrel=1e-11,
                limit=200,
            )[0]
            for a, b, sol in pieces
            if max(a, start) < min(b, end)
        )
        got = kernels.auc_interval(start, end, *positional, cl, v, **options)
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-9)


def test_steady_state_trough_by_hand():
    """SS=1 of a short infusion every II: the trough at the start is D/V · r/(1 − r) with
    r = e^(−k II) (bolus limit), computed by hand, not by the kernel's formula."""
    cl, v, dose, ii, duration = 0.5, 10.0, 700.0, 28.0, 1e-7
    k = cl / v
    r = np.exp(-k * ii)
    got = kernels.concentration(
        np.array([0.0, ii - 1e-9]),
        np.array([0.0]),
        np.array([dose]),
        np.array([duration]),
        cl,
        v,
        dose_ss_interval_day=np.array([ii]),
    )
    np.testing.assert_allclose(got, [dose / v * r / (1 - r)] * 2, rtol=1e-6)


def test_plain_regimens_are_bit_identical_with_the_default_arrays():
    time, amount, duration = np.array([0.0, 14.0, 42.0]), np.full(3, 700.0), np.full(3, 2 * H)
    cl, v = np.array([0.3, 0.49, 1.2]), np.array([9.0, 13.2, 20.0])
    options = {"dose_end_day": np.full(3, NO_END_DAY), "dose_ss_interval_day": np.zeros(3)}
    t = np.linspace(0.0, 90.0, 181)
    plain = kernels.concentration(t, time, amount, duration, cl[:, None], v[:, None])
    same = kernels.concentration(t, time, amount, duration, cl[:, None], v[:, None], **options)
    assert np.array_equal(plain, same)
    assert np.array_equal(
        kernels.auc_interval(14.0, 28.0, time, amount, duration, cl, v),
        kernels.auc_interval(14.0, 28.0, time, amount, duration, cl, v, **options),
    )


def _pytensor_functions():
    cl, v = pt.dscalar("cl"), pt.dscalar("v")
    names = ("time", "amount", "duration", "end", "ii")
    doses = {name: pt.dvector(name) for name in names}
    t = pt.dvector("t")
    options = {"dose_end_day": doses["end"], "dose_ss_interval_day": doses["ii"]}
    positional = (doses["time"], doses["amount"], doses["duration"])
    conc = kernels.concentration(t, *positional, cl, v, xp=pt, **options)
    auc = kernels.auc_interval(14.0, 28.0, *positional, cl, v, xp=pt, **options)
    total = pt.log(conc + 1e-3).sum() + pt.log(auc)
    inputs = [t, *doses.values(), cl, v]
    return (
        pytensor.function(inputs, [conc, auc]),
        pytensor.function(inputs, pt.grad(total, [cl, v])),
    )


def test_pytensor_equals_numpy_and_gradients_are_finite_with_padding_and_sentinels():
    values, gradient = _pytensor_functions()
    records = CASES["reset_during_infusion_and_ss_after"] + [Record(50.0, 600.0)]
    (time, amount, duration), options = kernel_arrays(records)
    # padding: amount 0, default duration, no end, no steady state
    pad = 2
    time = np.concatenate([time, np.zeros(pad)])
    amount = np.concatenate([amount, np.zeros(pad)])
    duration = np.concatenate([duration, np.full(pad, 2 * H)])
    end = np.concatenate([options["dose_end_day"], np.full(pad, NO_END_DAY)])
    ii = np.concatenate([options["dose_ss_interval_day"], np.zeros(pad)])
    t = np.array([0.0, 0.2, 0.3, 4.0, 5.0, 5.05, 20.0, 39.9, 40.0, 45.0, 50.0, 60.0])
    for cl, v in [*PARAMETERS, (1e-4, 50.0), (40.0, 2.0)]:
        conc, auc = values(t, time, amount, duration, end, ii, cl, v)
        np.testing.assert_allclose(
            conc,
            kernels.concentration(
                t, time, amount, duration, cl, v, dose_end_day=end, dose_ss_interval_day=ii
            ),
            rtol=1e-12,
            atol=1e-300,
        )
        np.testing.assert_allclose(
            auc,
            kernels.auc_interval(
                14.0, 28.0, time, amount, duration, cl, v, dose_end_day=end, dose_ss_interval_day=ii
            ),
            rtol=1e-12,
        )
        grads = gradient(t, time, amount, duration, end, ii, cl, v)
        assert np.all(np.isfinite(grads)), (cl, v, grads)
    # the gradient is right: central differences of the NumPy kernels
    cl, v, step = 0.49, 13.2, 1e-6

    def total(cl, v):
        options = {"dose_end_day": end, "dose_ss_interval_day": ii}
        c = kernels.concentration(t, time, amount, duration, cl, v, **options)
        a = kernels.auc_interval(14.0, 28.0, time, amount, duration, cl, v, **options)
        return np.log(c + 1e-3).sum() + np.log(a)

    numeric = [
        (total(cl + step, v) - total(cl - step, v)) / (2 * step),
        (total(cl, v + step) - total(cl, v - step)) / (2 * step),
    ]
    np.testing.assert_allclose(
        gradient(t, time, amount, duration, end, ii, cl, v), numeric, rtol=1e-5
    )


# --------------------------------------------------------------------------------------
# The whole path: reader, forecast (MAP, sampler), dosing, command line
# --------------------------------------------------------------------------------------
SS_CSV = """ID,TIME,EVID,AMT,SS,II,DV,WT,CRP
P1,0,1,700,1,28,.,63,45
P1,7,0,.,.,.,30,63,45
P1,14,1,700,.,.,.,63,45
P1,21,0,.,.,.,25,63,45
"""
#: Infusions written out for the SS=1 dose's train (e^(−k·28·200) of the train is left out:
#: below 1e-40 for the posterior's k).
EXPLICIT_HISTORY = tuple(Dose(-28.0 * n, 700.0, 1 / 12) for n in range(200, 0, -1))

RESET_CSV = """ID,TIME,EVID,AMT,DV,WT,CRP
P1,0,1,700,.,63,45
P1,14,1,700,.,63,45
P1,21,4,700,.,63,45
P1,24,0,.,40,63,45
P1,28,0,.,30,63,45
P1,35,1,700,.,63,45
P1,42,0,.,15,63,45
"""
#: The same patient from the reset on, its clock restarted there.
RESTARTED_CSV = """ID,TIME,EVID,AMT,DV,WT,CRP
P1,0,1,700,.,63,45
P1,3,0,.,40,63,45
P1,7,0,.,30,63,45
P1,14,1,700,.,63,45
P1,21,0,.,15,63,45
"""


def _read(tmp_path, text, name="p.csv"):
    path = tmp_path / name
    path.write_text(text)
    (patient,) = read_patients(path).patients
    return patient


def _plain(patient):
    doses = tuple(replace(d, steady_state=0, steady_state_interval_day=0.0) for d in patient.doses)
    return replace(patient, doses=doses)


def _posterior(result, name):
    return result.summary()["posterior"][name]


@pytest.mark.parametrize("sampler", ["auto", "nutpie"])
def test_ss_file_forecasts_as_the_explicit_history(tmp_path, spec, forecaster, sampler):
    patient = _read(tmp_path, SS_CSV)
    assert patient.doses[0].steady_state == 1
    explicit = replace(_plain(patient), doses=EXPLICIT_HISTORY + _plain(patient).doses)
    settings = SamplerSettings(draws=500, tune=300)
    if sampler == "nutpie":
        settings = replace(settings, sampler="nutpie", method="nuts")
    at_ss, written = (
        forecaster.forecast(p, random_seed=3, settings=settings) for p in (patient, explicit)
    )
    ignored = forecaster.forecast(_plain(patient), random_seed=3, settings=settings)
    for name in ("cl", "v", "auc_w2_4", "risk_90d"):
        np.testing.assert_allclose(
            at_ss.summary()["map"][name], written.summary()["map"][name], rtol=1e-6
        )
        mean, other = _posterior(at_ss, name), _posterior(written, name)
        assert abs(mean["mean"] - other["mean"]) <= mean["mcse"]["mean"], name
    np.testing.assert_allclose(
        at_ss.tree["point_estimates"]["eta"].values,
        written.tree["point_estimates"]["eta"].values,
        atol=1e-6,
    )
    # the steady state matters here: ignoring it moves the risk by many MCSEs
    risk, plain = _posterior(at_ss, "risk_90d"), _posterior(ignored, "risk_90d")
    assert abs(risk["mean"] - plain["mean"]) > 5 * risk["mcse"]["mean"]


def test_reset_forecasts_as_the_patient_restarted_at_the_reset(tmp_path, spec, forecaster):
    """EVID=4 at day 21: the samples after it inform η as they do for the patient whose
    earlier doses are deleted and whose clock restarts at day 21."""
    patient = _read(tmp_path, RESET_CSV)
    assert [d.end_time_day for d in patient.doses] == [21.0, 21.0, None, None]
    restarted = _read(tmp_path, RESTARTED_CSV, "restarted.csv")
    not_reset = _read(tmp_path, RESET_CSV.replace("P1,21,4,", "P1,21,1,"), "not_reset.csv")
    settings = SamplerSettings(draws=500, tune=300)
    results = [
        forecaster.forecast(p, random_seed=3, settings=settings)
        for p in (patient, restarted, not_reset)
    ]
    eta = [r.tree["point_estimates"]["eta"].values[0] for r in results]
    np.testing.assert_allclose(eta[0], eta[1], atol=1e-6)
    assert np.abs(eta[0] - eta[2]).max() > 1e-2  # the reset matters
    for name in ("cl", "v"):
        mean, other = _posterior(results[0], name), _posterior(results[1], name)
        assert abs(mean["mean"] - other["mean"]) <= mean["mcse"]["mean"], name
    # the AUC over days 14-28 counts the doses of days 0 and 14 up to day 21 only, then the
    # one of day 21: by quadrature of the event-driven ODE
    records = [Record(0.0, 700.0), Record(14.0, 700.0), Record(21.0, 700.0, reset=True)]
    cl, v = results[0].summary()["map"]["cl"], results[0].summary()["map"]["v"]
    reference, _, _ = ode_reference(records, cl, v, 30.0)
    expected = scipy.integrate.quad(
        reference,
        14.0,
        28.0,
        points=[14 + 1 / 12, 21.0, 21 + 1 / 12],
        epsabs=1e-10,
        epsrel=1e-10,
        limit=200,
    )[0]
    np.testing.assert_allclose(results[0].summary()["map"]["auc_w2_4"], expected, rtol=1e-7)


def test_dosing_on_a_steady_state_patient(tmp_path, spec, forecaster):
    from asuc_bayes.decisions.dosing import DosingError, DosingRequest, recommend_dose

    patient = _read(tmp_path, SS_CSV)
    explicit = replace(_plain(patient), doses=EXPLICIT_HISTORY + _plain(patient).doses)
    settings = SamplerSettings(draws=500, tune=300)
    request = DosingRequest(dose_time_day=28.0, target_risk=0.1)
    doses = [
        recommend_dose(forecaster.forecast(p, random_seed=3, settings=settings), request)
        for p in (patient, explicit)
    ]
    assert doses[0].dose_mg == doses[1].dose_mg
    # a dose before a (planned) reset would be wiped out: refused, naming the reset
    later_reset = _read(tmp_path, SS_CSV + "P1,35,3,.,.,.,.,63,45\n", "reset.csv")
    forecast = forecaster.forecast(later_reset, random_seed=3, settings=settings)
    with pytest.raises(DosingError, match="comes before the reset at day 35"):
        recommend_dose(forecast, request)


def test_cli_forecasts_a_file_with_steady_state_and_resets(tmp_path, capsys):
    from asuc_bayes.interfaces.cli import EXIT_OK, main

    text = SS_CSV.replace("ID,TIME,EVID,AMT,SS,II,DV,WT,CRP", "ID,TIME,EVID,AMT,SS,II,DV,WT,CRP")
    text += "P1,30,3,.,.,.,.,63,45\nP1,35,1,700,2,14,.,63,45\nP1,40,0,.,.,.,30,63,45\n"
    path = tmp_path / "data.csv"
    path.write_text(text)
    assert main(["forecast", str(path), "--format", "json", "--tune", "300"]) == EXIT_OK
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert "Traceback" not in err and document


def test_population_data_cut_pairs_at_resets_and_refuse_steady_state(tmp_path):
    from asuc_bayes.data.dataset import EventRecord
    from asuc_bayes.data.errors import InputError
    from asuc_bayes.inference.population import CohortData

    reset = replace(_read(tmp_path, RESET_CSV), events=(EventRecord(60.0, 0),))
    plain = replace(_read(tmp_path, RESTARTED_CSV, "restarted.csv"), id="P2")
    plain = replace(plain, events=(EventRecord(60.0, 1),))
    data = CohortData.from_patients([reset, plain])
    assert [p.doses for p in data.patients()] == [reset.doses, plain.doses]
    values = data.model_data((14.0, 28.0))
    cl, v = np.array([0.4, 0.7]), np.array([11.0, 15.0])
    pair_obs, pair_subject = values["pair_index"].T
    during, after, rate = values["pair_phase"].T
    per_pair = kernels.infusion_concentration(
        during, after, rate, cl[pair_subject], cl[pair_subject] / v[pair_subject]
    )
    sparse = np.zeros(len(data.obs_time_day))
    np.add.at(sparse, pair_obs, per_pair)
    auc_phase = values["auc_phase"]
    subject = values["auc_subject"]
    per_dose = kernels.infusion_auc(*auc_phase.T, cl[subject], cl[subject] / v[subject])
    sparse_auc = np.zeros(2)
    np.add.at(sparse_auc, subject, per_dose)
    for i, patient in enumerate((reset, plain)):
        (time, amount, duration), options = (
            (patient.dose_time_day, patient.dose_amount_mg, patient.dose_duration_day),
            {"dose_end_day": patient.dose_end_day},
        )
        expected = kernels.concentration(
            patient.obs_time_day, time, amount, duration, cl[i], v[i], **options
        )
        np.testing.assert_allclose(sparse[data.obs_subject == i], expected, rtol=1e-13)
        expected_auc = kernels.auc_interval(
            14.0, 28.0, time, amount, duration, cl[i], v[i], **options
        )
        np.testing.assert_allclose(sparse_auc[i], expected_auc, rtol=1e-13)
    steady = replace(_read(tmp_path, SS_CSV, "ss.csv"), events=(EventRecord(60.0, 0),))
    with pytest.raises(
        InputError, match=r"row 2, field SS: SS=1 .* not supported by the population fit"
    ):
        CohortData.from_patients([steady, plain])


def test_compiled_density_equals_the_numpy_posterior_with_special_doses(tmp_path, forecaster, spec):
    """The compiled η density (PyTensor graph, special doses bound apart) against the NumPy
    log posterior of the exact grid, for patients with SS only, SS=2 plus plain doses, and
    resets; differences between points (the density is defined up to a constant)."""
    from asuc_bayes.graphs.model import PatientData
    from asuc_bayes.graphs.nutpie_density import pack_data
    from asuc_bayes.inference.forecast import IDENTITY_WHITENING
    from asuc_bayes.inference.grid import log_posterior

    only_ss = _read(
        tmp_path,
        "ID,TIME,EVID,AMT,SS,II,DV,WT,CRP\nP1,0,1,600,1,14,.,70,20\nP1,13.9,0,.,.,.,12,70,20\n",
        "only_ss.csv",
    )
    ss2 = _read(tmp_path, SS_CSV.replace("P1,14,1,700,.,.,", "P1,14,1,700,2,56,"), "ss2.csv")
    patients = [only_ss, ss2, _read(tmp_path, RESET_CSV, "reset.csv")]
    assert PatientData.from_patient(only_ss).dose_time_day.size == 0  # no plain dose at all
    density = forecaster._density("eta")
    points = np.array([[0.0, 0.0], [0.5, -0.3], [-0.4, 0.2], [1.2, 0.6]])
    for patient in patients:
        buffer = pack_data({**PatientData.from_patient(patient).as_data(), **IDENTITY_WHITENING})
        compiled = np.array([density.evaluate(x, buffer)[0] for x in points])
        reference = log_posterior(spec, patient, points[:, 0], points[:, 1])
        np.testing.assert_allclose(compiled - compiled[0], reference - reference[0], atol=1e-9)
    result = forecaster.forecast(
        only_ss,
        random_seed=1,
        settings=SamplerSettings(draws=300, tune=300, sampler="nutpie", method="nuts"),
    )
    posterior = result.summary()["posterior"]
    assert all(np.isfinite(posterior[name]["mean"]) for name in ("cl", "v", "risk_90d"))
    assert int(result.tree["sample_stats"]["diverging"].sum()) == 0
