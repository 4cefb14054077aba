"""Record types of the data layer: doses, samples, events, covariates, patients, limits.

Doses carry NONMEM's steady state (``SS``/``II``) and the end of their effect at a reset
(``EVID`` 3/4) faithfully; the dose arrays that the forecasting engine reads
(:attr:`Patient.dose_time_day`, ..., :attr:`Patient.dose_end_day`,
:attr:`Patient.dose_ss_interval_day`) carry both to the kernels
(:func:`asuc_bayes.pk.kernels.concentration`), which evaluate them exactly. A steady state the
engine cannot evaluate (an infusion longer than its interval) is refused, naming the row
(:func:`unsupported_by_engine`), instead of computing a wrong answer.

>>> dose = Dose(0.0, 600.0, 1 / 12)
>>> dose.steady_state, dose.steady_state_interval_day, dose.end_time_day
(0, 0.0, None)
>>> unsupported_by_engine(Patient("P1", 70.0, 30.0, (dose,))) is None
True
>>> at_steady_state = Patient("P2", 70.0, 30.0, (Dose(0.0, 600.0, 1 / 12, None, 1, 56.0),))
>>> at_steady_state.dose_ss_interval_day.tolist(), at_steady_state.dose_end_day.tolist()
([56.0], [1000000000000.0])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asuc_bayes.data.errors import InputError, _error, _fmt

__all__ = [
    "ABOVE_ULOQ",
    "BELOW_LLOQ",
    "DEFAULT_INFUSION_DURATION_DAY",
    "MEASURED",
    "NO_END_DAY",
    "CovariateRecord",
    "Dose",
    "EventRecord",
    "Observation",
    "Patient",
    "PatientSet",
    "PlausibilityLimits",
    "Reset",
    "dose_kernel_options",
    "unsupported_by_engine",
]

MEASURED = 0
BELOW_LLOQ = 1
ABOVE_ULOQ = -1

#: The end of the effect of a dose that no reset ends: a finite sentinel far beyond any time
#: the model is asked about (finite, so that no ``inf`` reaches a gradient or a JSON file).
NO_END_DAY = 1e12

#: Default infusion duration when a record gives none: 2 h, in days.
DEFAULT_INFUSION_DURATION_DAY = 1.0 / 12.0


@dataclass(frozen=True)
class Dose:
    """One infliximab infusion: start time (days since first dose), amount (mg), duration (days).

    ``row`` is where the record came from (a CSV line number, or an entry path such as
    ``"doses[1]"`` in a patient file); it is provenance only and takes no part in equality.

    ``steady_state`` is NONMEM's ``SS``: 0 none; 1 the patient is at steady state of this
    dose repeated every ``steady_state_interval_day`` (``II``) and everything before is reset;
    2 the same steady state added to what is already there. ``end_time_day`` is when the
    dose's effect was wiped out by a reset (``EVID`` 3/4, or a later ``SS=1`` dose); ``None``
    when never. The defaults describe a plain infusion.
    """

    time_day: float
    amount_mg: float
    duration_day: float
    row: int | str | None = field(default=None, compare=False)
    steady_state: int = 0
    steady_state_interval_day: float = 0.0
    end_time_day: float | None = None


@dataclass(frozen=True)
class Observation:
    """One serum concentration record.

    ``censoring`` is :data:`MEASURED` (``value_mg_l`` is the concentration),
    :data:`BELOW_LLOQ` (``value_mg_l`` is the LLOQ) or :data:`ABOVE_ULOQ` (the ULOQ).
    ``row`` is provenance only (see :class:`Dose`).
    """

    time_day: float
    value_mg_l: float
    censoring: int = MEASURED
    row: int | str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class EventRecord:
    """A colectomy record (DVID 2): ``event`` 1 colectomy at ``time_day``, 0 censored there."""

    time_day: float
    event: int
    row: int | str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class CovariateRecord:
    """The covariate values of one record of the source, at ``time_day``.

    ``values`` are the ``(column, value)`` pairs the record gives (missing cells left out),
    sorted by column, in the source's units, e.g. ``(("ALB", 28.0), ("CRP", 45.0),
    ("WT", 63.0))``. A NONMEM dataset gives one record per row that has a covariate value
    (doses, samples, rows with MDV=1, other-type events ``EVID=2``, resets), in file order:
    enough for either convention of a time-varying covariate model (the value carried
    forward from a record, or NONMEM's, which applies a record's value over the interval
    that ends at it).
    """

    time_day: float
    values: tuple[tuple[str, float], ...]
    row: int | str | None = field(default=None, compare=False)

    def get(self, name: str) -> float | None:
        """The value of covariate ``name``, or ``None``."""
        return dict(self.values).get(name)


@dataclass(frozen=True)
class Reset:
    """A reset event (NONMEM ``EVID`` 3, or 4 with the dose that follows it): every amount in
    the body is set to 0 at ``time_day``; doses before it carry ``end_time_day``."""

    time_day: float
    row: int | str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Patient:
    """One patient: baseline covariates, the regimen (given and planned doses), samples.

    ``covariate_records`` keeps the covariates of every record of the source (see
    :class:`CovariateRecord`); the current model uses the baseline ``weight_kg`` and
    ``crp_mg_l``. ``resets`` are the reset events kept from the source.
    """

    id: str
    weight_kg: float
    crp_mg_l: float
    doses: tuple[Dose, ...]
    observations: tuple[Observation, ...] = ()
    events: tuple[EventRecord, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)
    covariate_records: tuple[CovariateRecord, ...] = field(default=(), compare=False)
    resets: tuple[Reset, ...] = ()

    def _explicit_doses(self) -> tuple[Dose, ...]:
        error = unsupported_by_engine(self)
        if error is not None:
            raise error
        return self.doses

    @property
    def dose_time_day(self) -> np.ndarray:
        return np.array([d.time_day for d in self._explicit_doses()], dtype=float)

    @property
    def dose_amount_mg(self) -> np.ndarray:
        return np.array([d.amount_mg for d in self._explicit_doses()], dtype=float)

    @property
    def dose_duration_day(self) -> np.ndarray:
        return np.array([d.duration_day for d in self._explicit_doses()], dtype=float)

    @property
    def dose_end_day(self) -> np.ndarray:
        """When each dose's effect ends (a reset), :data:`NO_END_DAY` if
        never."""
        return dose_kernel_options(self._explicit_doses())["dose_end_day"]

    @property
    def dose_ss_interval_day(self) -> np.ndarray:
        """Interval II of each steady-state dose (SS=1 or 2), 0 for a plain infusion."""
        return dose_kernel_options(self._explicit_doses())["dose_ss_interval_day"]

    @property
    def has_steady_state_or_reset(self) -> bool:
        """Whether a dose is at steady state or cut by a reset."""
        return any(d.steady_state or d.end_time_day is not None for d in self.doses)

    @property
    def obs_time_day(self) -> np.ndarray:
        return np.array([o.time_day for o in self.observations], dtype=float)

    @property
    def obs_value_mg_l(self) -> np.ndarray:
        return np.array([o.value_mg_l for o in self.observations], dtype=float)

    @property
    def obs_censoring(self) -> np.ndarray:
        return np.array([o.censoring for o in self.observations], dtype=np.int64)


def dose_kernel_options(doses) -> dict[str, np.ndarray]:
    """The optional per-dose arrays of the PK kernels for ``doses``: ``dose_end_day`` (the end
    of each dose's effect at a reset, :data:`NO_END_DAY` if none) and
    ``dose_ss_interval_day`` (II of a steady-state dose, 0 for a plain infusion), to pass as
    keywords to :func:`asuc_bayes.pk.kernels.concentration` and
    :func:`~asuc_bayes.pk.kernels.auc_interval`.

    Examples
    --------
    >>> options = dose_kernel_options([Dose(0.0, 600.0, 1 / 12, end_time_day=20.0),
    ...                                Dose(20.0, 600.0, 1 / 12, None, 1, 56.0)])
    >>> options["dose_end_day"].tolist(), options["dose_ss_interval_day"].tolist()
    ([20.0, 1000000000000.0], [0.0, 56.0])
    """
    return {
        "dose_end_day": np.array(
            [NO_END_DAY if d.end_time_day is None else d.end_time_day for d in doses],
            dtype=float,
        ),
        "dose_ss_interval_day": np.array(
            [d.steady_state_interval_day if d.steady_state else 0.0 for d in doses],
            dtype=float,
        ),
    }


def unsupported_by_engine(patient: Patient) -> InputError | None:
    """The error for a patient that the forecasting engine of this version cannot evaluate.

    Steady-state doses (``SS=1``/``2`` with ``II``) and doses cut by a reset (``EVID`` 3/4)
    are evaluated exactly (:mod:`asuc_bayes.pk.kernels`); a steady state needs its infusion to
    end before the next one of its train starts (duration ≤ II), otherwise the patient is
    refused, naming the row. ``None`` when the patient is fine.

    Examples
    --------
    >>> long = Dose(0.0, 600.0, 0.5, 7, steady_state=1, steady_state_interval_day=0.25)
    >>> print(unsupported_by_engine(Patient("P1", 70.0, 30.0, (long,))))  # doctest: +ELLIPSIS
    patient 'P1', row 7, field II: SS=1 with II=0.25 day shorter than the infusion (0.5 day)...
    """
    for dose in patient.doses:
        interval = dose.steady_state_interval_day
        if dose.steady_state and not interval >= dose.duration_day > 0:
            return _error(
                patient.id,
                dose.row,
                "II",
                f"SS={dose.steady_state} with II={_fmt(interval)} day shorter than the infusion "
                f"({_fmt(dose.duration_day)} day): the steady state of overlapping infusions is "
                "not supported by the forecasting engine",
                "give II ≥ the infusion duration, or write the doses out explicitly",
            )
    return None


@dataclass(frozen=True)
class PlausibilityLimits:
    """Plausible ranges of the input fields; anything outside is rejected as an input error.

    Fixed rules that are not parameters: a CRP must be > 0 (the model takes CRP^0.56 and its
    logarithm), a measured concentration must be > 0 (code an undetectable level as below the
    LLOQ instead), a censoring limit (LLOQ/ULOQ) must be > 0, times must be ≥ 0 and samples
    must be taken after the first dose.

    Attributes
    ----------
    weight_kg_min, weight_kg_max
        Body weight (kg).
    crp_mg_l_min, crp_mg_l_max
        Baseline C-reactive protein (mg/L).
    dose_mg_min, dose_mg_max
        Amount of one infusion (mg).
    infusion_duration_day_min, infusion_duration_day_max
        Duration of one infusion (days): 5 minutes to 1 day by default.
    time_day_max
        Latest dose, sample or event time (days since the first dose).
    concentration_mg_l_max
        Largest concentration, or censoring limit, accepted (mg/L).
    validated_horizon_day
        Doses and samples after this day are accepted with a note: the model was developed on
        induction data (ASUC: about the first 90 days).
    mg_per_kg_suspect_mg
        A dose below this many mg is accepted with a note that it looks like mg/kg.
    """

    weight_kg_min: float = 20.0
    weight_kg_max: float = 250.0
    crp_mg_l_min: float = 0.1
    crp_mg_l_max: float = 1000.0
    dose_mg_min: float = 1.0
    dose_mg_max: float = 3000.0
    infusion_duration_day_min: float = 5.0 / 1440.0
    infusion_duration_day_max: float = 1.0
    time_day_max: float = 365.0
    concentration_mg_l_max: float = 2000.0
    validated_horizon_day: float = 90.0
    mg_per_kg_suspect_mg: float = 30.0


@dataclass(frozen=True)
class PatientSet:
    """Validated patients read from one source, with everything that was ignored.

    Attributes
    ----------
    patients
        The patients, in order of first appearance in the source.
    notes
        Human-readable notes on everything read but not used (rows with MDV=1, colectomy
        records, extra columns, varying covariates...) and on likely mistakes (times that look
        like hours, doses that look like mg/kg...); report them to the user.
    source
        Where the patients came from (a file path, or a description).
    errors
        With ``collect_errors=True``: one :class:`InputError` per patient whose records were
        bad (that patient is left out of ``patients``; batch runs report it in its row).
    units
        Units declared for covariate columns (``(("ALB", "g/L"),)``), checked against the
        units the model knows; the model layer converts.
    """

    patients: tuple[Patient, ...]
    notes: tuple[str, ...] = ()
    source: str = ""
    errors: tuple[InputError, ...] = ()
    units: tuple[tuple[str, str], ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        """The patient IDs, in order."""
        return tuple(p.id for p in self.patients)

    def by_id(self, patient_id: str) -> Patient:
        """The patient with ID ``patient_id``.

        Raises
        ------
        KeyError
            If no patient has that ID.
        """
        for patient in self.patients:
            if patient.id == patient_id:
                return patient
        raise KeyError(f"no patient {patient_id!r} in {self.source} (IDs: {list(self.ids)})")
