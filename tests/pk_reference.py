"""Independent references for the PK structure tests: the ODEs written out by hand and
integrated with scipy's solve_ivp between events (dose starts, infusion ends, resets,
parameter changes, sample times), plus quadrature of a concentration function."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.integrate

H = 1.0 / 24.0  # one hour in days


def one_compartment_rhs(p: dict[str, float]) -> Callable:
    """dA/dt = R − CL/V · A."""

    def rhs(_t, a, r):
        return [r - p["cl"] / p["v"] * a[0]]

    return rhs


def two_compartment_rhs(p: dict[str, float]) -> Callable:
    """dA1/dt = R − CL/V1 · A1 − Q/V1 · A1 + Q/V2 · A2;  dA2/dt = Q/V1 · A1 − Q/V2 · A2."""

    def rhs(_t, a, r):
        flow = p["q"] / p["v1"] * a[0] - p["q"] / p["v2"] * a[1]
        return [r - p["cl"] / p["v1"] * a[0] - flow, flow]

    return rhs


#: structure name -> (number of compartments, right-hand side builder, central volume name)
ODES = {
    "one_compartment": (1, one_compartment_rhs, "v"),
    "two_compartment": (2, two_compartment_rhs, "v1"),
}


@dataclass
class OdeRegimen:
    """Doses as (start, amount, duration) and NONMEM-style resets (EVID 3: the whole state
    is zeroed and running infusions stop; a dose at the reset time itself is given after)."""

    doses: Sequence[tuple[float, float, float]]
    resets: Sequence[float] = ()
    change_day: Sequence[float] = ()
    pieces: Sequence[dict[str, float]] = field(default_factory=list)

    def piece(self, t: float) -> dict[str, float]:
        return self.pieces[int(np.searchsorted(self.change_day, t, side="right"))]

    def rate(self, t: float) -> float:
        last_reset = max((r for r in self.resets if r <= t), default=-np.inf)
        return sum(
            amount / duration
            for start, amount, duration in self.doses
            if start <= t < start + duration and start >= last_reset
        )


def solve(
    structure: str,
    regimen: OdeRegimen,
    times: Sequence[float],
    window: tuple[float, float] | None = None,
) -> tuple[np.ndarray, float]:
    """Central concentrations at ``times`` and the AUC over ``window`` (an extra state)."""
    n, rhs_builder, volume_name = ODES[structure]
    starts = [d[0] for d in regimen.doses]
    ends = [d[0] + d[2] for d in regimen.doses]
    events = np.unique(
        np.concatenate(
            [
                starts,
                ends,
                list(regimen.resets),
                list(regimen.change_day),
                list(times),
                list(window or ()),
            ]
        )
    )
    state = np.zeros(n)
    auc = 0.0
    recorded = {}
    for start, end in itertools.pairwise([*events, events[-1]]):
        if start in regimen.resets:
            state = np.zeros(n)
        p = regimen.piece(start)
        recorded[float(start)] = state[0] / p[volume_name]
        if end == start:
            break
        mid = 0.5 * (start + end)
        r, rhs = regimen.rate(mid), rhs_builder(p)
        in_window = window is not None and window[0] <= start and end <= window[1]

        def full(t, y, r=r, rhs=rhs, p=p, in_window=in_window):
            return [*rhs(t, y[:n], r), y[0] / p[volume_name] if in_window else 0.0]

        sol = scipy.integrate.solve_ivp(
            full, (start, end), [*state, 0.0], method="DOP853", rtol=1e-11, atol=1e-13
        )
        state, auc = sol.y[:n, -1], auc + sol.y[n, -1]
    return np.array([recorded[float(t)] for t in times]), auc


def quad_auc(conc: Callable[[float], float], start: float, end: float, breaks) -> float:
    """∫ conc over [start, end] with scipy.integrate.quad, split at the breakpoints."""
    points = np.unique([start, *(b for b in breaks if start < b < end), end])
    return sum(
        scipy.integrate.quad(conc, a, b, epsabs=0.0, epsrel=1e-12, limit=200)[0]
        for a, b in itertools.pairwise(points)
    )
