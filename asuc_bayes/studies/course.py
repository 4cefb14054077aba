"""One virtual patient's course, the same under every model: covariates, regimen, follow-up,
the colectomy time consistent with the doses given before it, and the sampling design.

:func:`~asuc_bayes.studies.simulate.simulate_cohort` (the ASUC model) and
:func:`~asuc_bayes.studies.library_simulate.simulate_library_cohort` (any library model) both
draw their patients' courses here, in the same order from the same random stream, so a
cohort's design does not depend on which model generates its concentrations.

Examples
--------
>>> import numpy as np
>>> from asuc_bayes.studies.simulate import CohortDesign
>>> rng = np.random.default_rng(1)
>>> design = CohortDesign()
>>> weight_kg, crp_mg_l = draw_weight_crp(design, rng)
>>> planned = planned_doses(design, weight_kg, 2.0 / 24.0, rng)
>>> planned[0].time_day
0.0
>>> event_day, settled = settle_event_time(planned, lambda given: 20.0 + len(given))
>>> settled, event_day <= 20.0 + len(planned)
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from asuc_bayes.data.dataset import Dose

if TYPE_CHECKING:
    from asuc_bayes.studies.simulate import CohortDesign

__all__ = [
    "FollowUp",
    "ObservedCourse",
    "doses_before",
    "draw_follow_up",
    "draw_samples",
    "draw_weight_crp",
    "observed_course",
    "planned_doses",
    "sample_times",
    "settle_event_time",
    "taken_before",
]

#: Earliest recorded day of a censoring record, and the shortest sampling window (day). An
#: event before it keeps its own day (3 significant digits): recording it here instead would put
#: the likelihood h(t) e^{-H(t)} at a day the patient did not reach, which for the rare
#: virtual patient with an extreme exposure (ln(AUC/CL) of -3 to -40, about 1 in 250) is
#: e^{-H} with H up to e^16 at the true parameters.
MINIMUM_OBSERVED_DAY = 0.05


class FollowUp(NamedTuple):
    """A patient's latent event target E ~ Exp(1), loss to follow-up and end of follow-up."""

    cumulative_hazard_target: float
    lost: bool
    end_day: float


class ObservedCourse(NamedTuple):
    """What the data record: the event flag, its (or censoring) day, and the doses given."""

    event: bool
    observed_day: float
    recorded: tuple[Dose, ...]


def draw_weight_crp(design: CohortDesign, rng: np.random.Generator) -> tuple[float, float]:
    """Weight (kg) and CRP (mg/L): log-normal, rounded to 0.1 and clipped to the design's ranges."""
    weight = np.round(rng.lognormal(np.log(design.weight_kg_median), design.weight_log_sd), 1)
    crp = np.round(rng.lognormal(np.log(design.crp_mg_l_median), design.crp_log_sd), 1)
    return float(np.clip(weight, *design.weight_kg_range)), float(
        np.clip(crp, *design.crp_mg_l_range)
    )


def _vials(mg_per_kg: float, weight_kg: float, vial_mg: float) -> float:
    return max(vial_mg, float(np.round(mg_per_kg * weight_kg / vial_mg)) * vial_mg)


def planned_doses(
    design: CohortDesign, weight_kg: float, duration_day: float, rng: np.random.Generator
) -> list[Dose]:
    """One patient's planned infusions: a regimen, its dose in vials, jittered later days."""
    regimen = design.regimens[rng.choice(len(design.regimens), p=design.regimen_probabilities)]
    schedule = np.array(regimen.days)
    jitter = np.round(rng.uniform(-1, 1, schedule.size) * design.schedule_jitter_day, 1)
    jitter[0] = 0.0
    days = np.unique(np.maximum.accumulate(schedule + jitter))
    first = _vials(regimen.mg_per_kg, weight_kg, design.vial_mg)
    later = regimen.mg_per_kg if regimen.later_mg_per_kg is None else regimen.later_mg_per_kg
    amount = _vials(later, weight_kg, design.vial_mg)
    if rng.uniform() < design.high_first_dose_probability:
        first = _vials(design.high_first_dose_mg_kg, weight_kg, design.vial_mg)
    return [Dose(float(t), first if k == 0 else amount, duration_day) for k, t in enumerate(days)]


def draw_follow_up(design: CohortDesign, rng: np.random.Generator) -> FollowUp:
    """E ~ Exp(1) (the event happens when H(T) = E), then loss to follow-up and its day."""
    target = -np.log(rng.uniform())
    lost = bool(rng.uniform() < design.loss_probability)
    end = float(np.round(rng.uniform(*design.loss_window_day), 1)) if lost else design.follow_up_day
    return FollowUp(float(target), lost, end)


def doses_before(planned: Sequence[Dose], day: float) -> list[Dose]:
    """The planned doses given before ``day`` (the first, at day 0, always)."""
    return [d for d in planned if d.time_day < day or d.time_day == 0.0]


def settle_event_time(
    planned: Sequence[Dose],
    event_day_given: Callable[[list[Dose]], float],
    *,
    stops_infusions: bool = True,
) -> tuple[float, bool]:
    """The event day T = event_day_given(doses before T), as a fixed point from the plan.

    Infliximab stops at colectomy, so the covariate of the event time depends on the event
    time itself; iterating from the planned regimen can only remove infusions (β < 0), so
    it settles within as many steps as there are infusions. Returns the day and whether
    it settled. With ``stops_infusions=False`` (``CohortDesign.infusions_stop_at_colectomy``)
    the covariate is the planned regimen's: T = event_day_given(planned).
    """
    if not stops_infusions:
        return float(event_day_given(list(planned))), True
    given = list(planned)
    event_day = np.inf
    for _ in range(len(planned) + 1):
        event_day = float(event_day_given(given))
        new_given = doses_before(planned, event_day)
        if len(new_given) == len(given):
            return event_day, True
        given = new_given
    return event_day, False


def observed_course(
    planned: Sequence[Dose], event_day: float, end_day: float, *, stops_infusions: bool = True
) -> ObservedCourse:
    """The record: an event by ``end_day`` at its day (0.01 d; to 3 significant digits before
    :data:`MINIMUM_OBSERVED_DAY`), else censoring at ``end_day`` (at least that minimum), and
    the infusions given before that day (every planned one with ``stops_infusions=False``).

    >>> observed_course([Dose(0.0, 400.0, 0.08)], 31.234, 90.0)[:2]
    (True, 31.23)
    >>> observed_course([Dose(0.0, 400.0, 0.08)], 4.0123e-08, 90.0)[:2]
    (True, 4.01e-08)
    """
    event = event_day <= end_day
    if not event:
        observed = max(end_day, MINIMUM_OBSERVED_DAY)
    elif event_day >= MINIMUM_OBSERVED_DAY:
        observed = float(np.round(event_day, 2))
    else:
        observed = float(f"{event_day:.3g}")
    given = doses_before(planned, observed) if stops_infusions else planned
    return ObservedCourse(bool(event), observed, tuple(given))


def sample_times(
    design: CohortDesign, end_day: float, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` distinct sample days in (0, end_day), skewed late (Beta(a, b) on the window):
    TDM samples in the paper were taken a median 26 days after the most recent infusion."""
    times: list[float] = []
    a, b = design.sample_time_beta
    for _ in range(200):
        if len(times) == n:
            break
        t = round(0.25 + (end_day - 0.3) * float(rng.beta(a, b)), 2)
        if 0.0 < t < end_day and all(abs(t - other) > 0.2 for other in times):
            times.append(t)
    return np.sort(np.array(times))


def draw_samples(
    design: CohortDesign,
    planned: Sequence[Dose],
    observed_day: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Sample days (1-5, by the design's probabilities) and the index of the patient's centre."""
    n_samples = 1 + int(
        rng.choice(
            len(design.samples_per_patient_probabilities),
            p=design.samples_per_patient_probabilities,
        )
    )
    window_end = min(
        max(observed_day, MINIMUM_OBSERVED_DAY),
        design.sampling_window_day,
        planned[-1].time_day + design.sampling_after_last_dose_day,
    )
    # The window never ends before MINIMUM_OBSERVED_DAY, so that the random stream is the same
    # whatever day an early event has: the caller drops the samples on or after such an event
    # (taken_before) once their residual errors are drawn.
    times = sample_times(design, window_end, n_samples, rng)
    return times, int(rng.integers(len(design.centres)))


def taken_before(times: np.ndarray, observed_day: float) -> np.ndarray:
    """Which sample days fall before the record's day: all of them, except after an event
    earlier than :data:`MINIMUM_OBSERVED_DAY` (the shortest sampling window).

    >>> taken_before(np.array([0.02, 0.04]), 0.03).tolist()
    [True, False]
    """
    return np.asarray(times) < observed_day
