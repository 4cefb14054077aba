"""Record types of the data layer: doses, samples, events, covariates, patients, limits.

Doses carry NONMEM's steady state (``SS``/``II``) and the end of their effect at a reset
(``EVID`` 3/4) faithfully; the forecasting engine of this version evaluates neither, so the
dose arrays that it reads (:attr:`Patient.dose_time_day`...) refuse a patient that uses them
(:func:`unsupported_by_engine`) instead of computing a wrong answer.

>>> dose = Dose(0.0, 600.0, 1 / 12)
>>> dose.steady_state, dose.steady_state_interval_day, dose.end_time_day
(0, 0.0, None)
>>> unsupported_by_engine(Patient("P1", 70.0, 30.0, (dose,))) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asuc_bayes.data.errors import InputError, _error, _fmt, _where

__all__ = [
    "ABOVE_ULOQ",
    "BELOW_LLOQ",
    "DEFAULT_INFUSION_DURATION_DAY",
    "MEASURED",
    "CovariateRecord",
    "Dose",
    "EventRecord",
    "Observation",
    "Patient",
    "PatientSet",
    "PlausibilityLimits",
    "Reset",
    "unsupported_by_engine",
]

MEASURED = 0
BELOW_LLOQ = 1
ABOVE_ULOQ = -1

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
    def obs_time_day(self) -> np.ndarray:
        return np.array([o.time_day for o in self.observations], dtype=float)

    @property
    def obs_value_mg_l(self) -> np.ndarray:
        return np.array([o.value_mg_l for o in self.observations], dtype=float)

    @property
    def obs_censoring(self) -> np.ndarray:
        return np.array([o.censoring for o in self.observations], dtype=np.int64)


def unsupported_by_engine(patient: Patient) -> InputError | None:
    """The error for a patient that the forecasting engine of this version cannot evaluate.

    Steady-state doses (``SS``) and doses cut by a reset (``EVID`` 3/4) are read and kept in
    :class:`Dose`, but the PK kernels of this version superpose plain infusions only: such a
    patient is refused, naming the row, rather than forecast wrongly. ``None`` when the
    patient is fine.
    """
    for dose in patient.doses:
        if dose.steady_state:
            return _error(
                patient.id,
                dose.row,
                "SS",
                f"SS={dose.steady_state} (steady state, II={_fmt(dose.steady_state_interval_day)}"
                " day) is read but not yet supported by the forecasting engine",
                "write the doses out explicitly (one row per infusion, or ADDL/II)",
            )
    cut = next((d for d in patient.doses if d.end_time_day is not None), None)
    if cut is None:
        return None
    reset = next((r for r in patient.resets if r.time_day == cut.end_time_day), None)
    return _error(
        patient.id,
        reset.row if reset is not None else cut.row,
        "EVID" if reset is not None else "TIME",
        f"the reset at day {_fmt(cut.end_time_day or 0.0)} wipes out the dose of day "
        f"{_fmt(cut.time_day)} ({_where(cut.row) or 'a dose'}); resets are read but not yet "
        "supported by the forecasting engine",
        "split the patient into one patient per occasion, or remove the reset if the earlier "
        "doses are washed out",
    )


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
