"""Validated internal representation of patients (doses, concentrations, covariates).

Every input format (NONMEM-style CSV, a pandas DataFrame, TOML/YAML patient files, the
Python API) becomes :class:`Patient` objects. Plausibility limits are checked here, once, at
the boundary: :func:`read_patients` (and :func:`patients_from_records`,
:func:`validate_patient`) either return patients that the model can use as they are, or raise
:class:`InputError` with a message naming the patient, the row (or entry) and the field, and
the fix. The parts live in :mod:`asuc_bayes.data`; every name is importable from here.

>>> from asuc_bayes.data.dataset import example_path, read_patients
>>> patient_set = read_patients(example_path())
>>> [p.id for p in patient_set.patients][:3]
['P01', 'P02', 'P03']
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from asuc_bayes.data.errors import (
    InputError,
    Location,
    _error,
    _fmt,
    _from_source,
    _message,
    _naming_patient,
    _where,
)
from asuc_bayes.data.nonmem import NonmemOptions, read_records
from asuc_bayes.data.patient_files import patient_records, patients_from_records
from asuc_bayes.data.table import COLUMN_ROLES, TableLayout, read_table
from asuc_bayes.data.types import (
    ABOVE_ULOQ,
    BELOW_LLOQ,
    DEFAULT_INFUSION_DURATION_DAY,
    MEASURED,
    CovariateRecord,
    Dose,
    EventRecord,
    Observation,
    Patient,
    PatientSet,
    PlausibilityLimits,
    Reset,
    unsupported_by_engine,
)
from asuc_bayes.data.validation import check_default_duration, validate_patient
from asuc_bayes.data.writer import write_nonmem_csv

__all__ = [
    "ABOVE_ULOQ",
    "BELOW_LLOQ",
    "COLUMN_ROLES",
    "DEFAULT_INFUSION_DURATION_DAY",
    "KNOWN_UNITS",
    "MAX_UPLOAD_BYTES",
    "MEASURED",
    "CovariateRecord",
    "Dose",
    "EventRecord",
    "InputError",
    "Observation",
    "Patient",
    "PatientSet",
    "PlausibilityLimits",
    "Reset",
    "example_path",
    "parse_patients",
    "parse_units",
    "patients_from_records",
    "read_cohort",
    "read_nonmem_csv",
    "read_patient_file",
    "read_patients",
    "unsupported_by_engine",
    "validate_cohort",
    "validate_patient",
    "write_nonmem_csv",
]

# Kept importable from here (used before the split into asuc_bayes.data).
_ = (Location, _fmt, _message, _where, _error, _naming_patient)

#: Units of the covariate columns that the current model knows (no conversion is done here:
#: the model layer converts; a unit it does not know is an error).
#: Units a covariate column may be declared in (``--units``); library models convert them to
#: their own (asuc_bayes.spec.units). ALB in g/dL is the unit of the Fasanmade and Wojciechowski
#: models; ADA is an indicator.
KNOWN_UNITS: dict[str, tuple[str, ...]] = {
    "WT": ("kg",),
    "CRP": ("mg/L",),
    "ALB": ("g/L", "g/dL"),
    "ADA": ("1",),
}

# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------

_READERS_BY_SUFFIX = {".csv": "csv", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


def example_path() -> Path:
    """Path of the bundled example dataset ``asuc_bayes/examples/patients.csv``.

    Its patients cover one and several samples, a sample below the LLOQ, one above the
    ULOQ, no sample at all (prior-only forecast), an accelerated schedule, planned doses
    after the last sample, and RATE/DUR infusion durations.
    """
    return Path(str(importlib.resources.files("asuc_bayes") / "examples" / "patients.csv"))


def parse_units(units: Mapping[str, str] | Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """Covariate units as ``(("ALB", "g/L"),)`` from ``{"ALB": "g/L"}`` or ``["ALB=g/L"]``.

    Only units that the current model knows (:data:`KNOWN_UNITS`) are accepted.

    >>> parse_units(["alb=g/l", "WT=kg"])
    (('ALB', 'g/L'), ('WT', 'kg'))

    Raises
    ------
    InputError
        A malformed entry, an unknown column or a unit the model does not know.
    """
    if units is None:
        return ()
    pairs: list[tuple[str, str]] = []
    items = units.items() if isinstance(units, Mapping) else [_unit_pair(u) for u in units]
    for name, unit in items:
        column = str(name).strip().upper()
        known = KNOWN_UNITS.get(column)
        if known is None:
            raise InputError(
                f"units: no unit is known for column {column!r} (fix: give units of "
                f"{', '.join(f'{k}={v[0]}' for k, v in KNOWN_UNITS.items())})"
            )
        match = next((k for k in known if k.lower() == str(unit).strip().lower()), None)
        if match is None:
            raise InputError(
                f"units: {column}={unit!r} is not a unit the current model knows (fix: convert "
                f"{column} to {' or '.join(known)} and write {column}={known[0]})"
            )
        pairs.append((column, match))
    return tuple(pairs)


def _unit_pair(text: str) -> tuple[str, str]:
    name, sep, unit = str(text).partition("=")
    if not sep or not name.strip() or not unit.strip():
        raise InputError(f"units: {text!r} is not NAME=UNIT (fix: e.g. ALB=g/L)")
    return name, unit


def read_patients(
    path: Any,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
    collect_errors: bool = False,
    ignore: str = "#",
    input: str | None = None,  # NONMEM's $INPUT
    time_unit: str = "days",
    date_format: str | None = None,
    units: Mapping[str, str] | Sequence[str] | None = None,
    allow_unsupported: bool = False,
) -> PatientSet:
    """Read and validate patients from a NONMEM-style CSV, a DataFrame or a patient file.

    Parameters
    ----------
    path
        ``.csv`` (NONMEM-style dataset, see :func:`read_nonmem_csv`), ``.toml`` or
        ``.yaml``/``.yml`` (patient file, see :func:`read_patient_file`), or a pandas
        DataFrame with the columns of a NONMEM dataset.
    default_infusion_duration_day
        Duration of infusions whose record gives none, and of RATE=-2 (days; 2 h by
        default; the model spec's ``pk.default_infusion_duration_day``).
    limits
        Plausible ranges; the defaults of :class:`PlausibilityLimits` when ``None``.
    collect_errors
        Keep reading past a patient with bad records: that patient's first error goes to
        :attr:`PatientSet.errors` and the others are read (for batch runs, where one bad
        patient must not stop the rest). Errors of the file itself (unreadable, bad header,
        ragged rows, no patients at all) still raise.
    ignore, input, time_unit, date_format
        The dataset's layout (NONMEM CSV only): ``ignore`` ``"#"`` (comment rows, always
        skipped), ``"C"`` or ``"@"`` as NONMEM's ``IGNORE=``; ``input`` a ``$INPUT``-style
        column list (``"ID TIME AMT RATE WT CRP DV EVID CMT MDV"``, ``NAME=DROP`` or
        ``DROP`` for unused columns, ``NAME=ALIAS``); ``time_unit`` ``"days"`` or
        ``"hours"``; ``date_format`` the format of a DATE column that is not ISO.
    units
        Units of covariate columns (``{"ALB": "g/L"}`` or ``["ALB=g/L"]``), checked against
        :data:`KNOWN_UNITS` and kept in :attr:`PatientSet.units`.
    allow_unsupported
        Return patients that the forecasting engine cannot evaluate as read (see
        :func:`~asuc_bayes.data.types.unsupported_by_engine`); by default such a patient is
        an error naming the row. Steady-state doses (SS) and resets (EVID 3/4) are evaluated.

    Returns
    -------
    PatientSet
        The patients in order of first appearance, and notes on everything ignored.

    Raises
    ------
    InputError
        Missing file, unknown suffix, or bad data; the message starts with the file name
        and names the patient, the row (or entry) and the field, and the fix.
    """
    layout = TableLayout(ignore=ignore, input=input, time_unit=time_unit, date_format=date_format)
    unit_pairs = parse_units(units)
    if _is_dataframe(path):
        text, kind, source = _dataframe_text(path), "csv", "DataFrame"
    else:
        path = Path(path)
        kind = _READERS_BY_SUFFIX.get(path.suffix.lower())
        if kind is None:
            accepted = ", ".join(sorted(_READERS_BY_SUFFIX))
            raise InputError(
                f"{path}: unknown file type {path.suffix or '(no suffix)'!r} (accepted: {accepted})"
            )
        text, source = _read_text(path), str(path)
    result = _parse_text(
        text,
        kind,
        source,
        default_infusion_duration_day,
        limits,
        collect_errors=collect_errors,
        layout=layout,
        allow_unsupported=allow_unsupported,
    )
    return replace(result, units=unit_pairs)


def _is_dataframe(value: object) -> bool:
    return type(value).__module__.startswith("pandas") and hasattr(value, "to_csv")


def _dataframe_text(frame: Any) -> str:
    """A DataFrame as CSV text: missing values as ``.``, whole-number float IDs as integers."""
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    for column in frame.columns:
        values = frame[column]
        if column.upper() == "ID" and values.dtype.kind == "f":
            present = values.dropna()
            if (present == present.round()).all():
                frame[column] = values.astype("Int64")
    return frame.to_csv(index=False, na_rep=".", lineterminator="\n")


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    return _decode(path.read_bytes(), str(path))


def _decode(content: bytes, source: str) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start}) (fix: save the file "
            "as UTF-8 CSV/TOML/YAML)"
        ) from None


def _parse_text(
    text: str,
    kind: str,
    source: str,
    default_infusion_duration_day: float,
    limits: PlausibilityLimits | None,
    strict_covariates: bool = False,
    collect_errors: bool = False,
    layout: TableLayout | None = None,
    allow_unsupported: bool = False,
) -> PatientSet:
    """Patients from the text of a ``csv``/``toml``/``yaml`` source; errors start with
    ``source`` and keep their patient, location and field. ``strict_covariates`` makes a
    covariate varying within a patient an error (population fits) instead of a note;
    ``collect_errors`` keeps per-patient errors in :attr:`PatientSet.errors`."""
    limits = limits or PlausibilityLimits()
    layout = layout or TableLayout()
    try:
        if kind == "csv":
            check_default_duration(default_infusion_duration_day, limits)
            options = NonmemOptions(
                default_duration_day=default_infusion_duration_day,
                limits=limits,
                strict_covariates=strict_covariates,
                collect_errors=collect_errors,
                allow_unsupported=allow_unsupported,
                time_unit=layout.time_unit,
            )
            table = read_table(text, layout)
            patients, notes, errors = read_records(table, options)
            result = PatientSet(tuple(patients), tuple(notes), source, tuple(errors))
        else:
            if layout != TableLayout():
                raise InputError(
                    "ignore, input, time_unit and date_format apply to NONMEM CSV datasets "
                    "only (fix: a patient file gives days in 'day' keys; leave these options "
                    "out)"
                )
            result = patients_from_records(
                patient_records(text, kind),  # type: ignore[arg-type]  # checked there
                source=source,
                default_infusion_duration_day=default_infusion_duration_day,
                limits=limits,
                collect_errors=collect_errors,
            )
    except InputError as exc:
        raise _from_source(exc, source) from None
    return replace(
        result, source=source, errors=tuple(_from_source(e, source) for e in result.errors)
    )


#: Largest upload :func:`parse_patients` accepts by default (bytes).
MAX_UPLOAD_BYTES = 1_000_000


def parse_patients(
    content: str | bytes,
    filename: str,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
    max_bytes: int | None = MAX_UPLOAD_BYTES,
) -> PatientSet:
    """Read and validate patients from a file's content held in memory (an upload).

    The same readers as :func:`read_patients`, without touching the disk: the content is
    parsed as data only (CSV cells, TOML, or YAML with the safe loader, which builds no
    Python objects).

    Parameters
    ----------
    content
        The file's bytes (UTF-8, a BOM is allowed) or text.
    filename
        Its name: the suffix (``.csv``, ``.toml``, ``.yaml``/``.yml``) chooses the reader,
        and messages start with it.
    default_infusion_duration_day, limits
        As for :func:`read_patients`.
    max_bytes
        Reject larger content (``None``: no limit).

    Returns
    -------
    PatientSet

    Raises
    ------
    InputError
        Unknown suffix, too large, not UTF-8, or bad data (as :func:`read_patients`).

    Examples
    --------
    >>> text = "ID,TIME,EVID,AMT,DV,WT,CRP\\nP1,0,1,600,.,63,30\\nP1,7,0,.,12,63,30\\n"
    >>> parse_patients(text, "upload.csv").patients[0].obs_value_mg_l
    array([12.])
    """
    name = Path(filename).name or "upload"
    kind = _READERS_BY_SUFFIX.get(Path(name).suffix.lower())
    if kind is None:
        accepted = ", ".join(sorted(_READERS_BY_SUFFIX))
        raise InputError(
            f"{name}: unknown file type {Path(name).suffix or '(no suffix)'!r} "
            f"(accepted: {accepted})"
        )
    size = len(content.encode("utf-8") if isinstance(content, str) else content)
    if max_bytes is not None and size > max_bytes:
        raise InputError(
            f"{name}: the file is {size:,} bytes, more than the {max_bytes:,} accepted (fix: "
            "upload only the patients you need)"
        )
    text = _decode(content, name) if isinstance(content, bytes) else content
    return _parse_text(text.lstrip("\ufeff"), kind, name, default_infusion_duration_day, limits)


# --------------------------------------------------------------------------------------
# NONMEM-style CSV and patient files
# --------------------------------------------------------------------------------------


def read_nonmem_csv(
    path: str | Path,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
    strict_covariates: bool = False,
    ignore: str = "#",
    input: str | None = None,
    time_unit: str = "days",
    date_format: str | None = None,
    allow_unsupported: bool = False,
) -> PatientSet:
    """Read and validate a NONMEM-style CSV dataset.

    Column names are case-insensitive (or given by ``input``, as ``$INPUT``); the roles are
    in :data:`COLUMN_ROLES`. Required: ``ID`` (kept as text), ``TIME`` (days since the first
    infliximab dose; or hours with ``time_unit="hours"``; or a clock time with ``DATE``, or
    one ``DATETIME`` column), ``AMT`` (mg), ``DV`` (mg/L), ``WT`` (kg) and ``CRP`` (mg/L) at
    baseline (taken from the patient's first row that has them; every value is kept in
    :attr:`Patient.covariate_records`, as are ``ALB`` and ``ADA``). Records: ``EVID`` (0
    observation, 1 dose, 2 other event, 3 reset, 4 reset + dose; without the column, a row
    with AMT > 0 is a dose), ``MDV`` (1 on an observation row: row ignored), ``CMT`` (doses
    into 1, observations of 1 or 2), ``RATE`` (mg per time unit; -2: the default duration)
    or ``DUR``, ``ADDL`` with ``II`` (expanded into explicit doses), ``SS`` with ``II``
    (kept on the dose; refused by the current engine), ``CENS`` (0 measured, 1 below the
    LLOQ with DV = LLOQ, -1 above the ULOQ with DV = ULOQ) or mapbayr-style ``BLQ`` (0/1)
    with ``LLOQ``; ``DVID`` (1 concentration, 2 colectomy record: DV 1 colectomy, 0
    censored; kept in :attr:`Patient.events`, ignored by forecasting); unit columns such as
    ``DVUNIT``/``AMTUNIT``/``UNIT`` (must say mg/L or µg/mL, mg, day, kg). ``.`` or an empty
    cell means missing. Rows must be in time order within a patient. Other columns are
    ignored with a note.

    Row numbers in messages are line numbers as a spreadsheet shows them (header = 1).

    Parameters
    ----------
    path
        The CSV file (comma-, semicolon-, tab- or blank-separated).
    default_infusion_duration_day
        Duration of infusions without RATE/DUR, and of RATE=-2 (days).
    limits
        Plausible ranges; the defaults of :class:`PlausibilityLimits` when ``None``.
    strict_covariates
        A WT or CRP that differs from the patient's first value is an error (population
        fits) instead of a note (forecasting uses the first value).
    ignore, input, time_unit, date_format, allow_unsupported
        As for :func:`read_patients`.

    Returns
    -------
    PatientSet

    Raises
    ------
    InputError
        With the file name, the patient, the row and the field, and the fix.
    """
    path = Path(path)
    layout = TableLayout(ignore=ignore, input=input, time_unit=time_unit, date_format=date_format)
    return _parse_text(
        _read_text(path),
        "csv",
        str(path),
        default_infusion_duration_day,
        limits,
        strict_covariates,
        layout=layout,
        allow_unsupported=allow_unsupported,
    )


def read_patient_file(
    path: str | Path,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
) -> PatientSet:
    """Read and validate a TOML (``.toml``) or YAML (``.yaml``/``.yml``) patient file.

    The file holds a list ``patient`` of tables::

        [[patient]]
        id = "P01"
        weight_kg = 63
        crp_mg_l = 45
        doses = [{day = 0, mg = 600}, {day = 14, mg_per_kg = 10, duration_h = 2}]
        samples = [{day = 7, mg_l = 12.3}, {day = 10, below_lloq = 0.4}]
        colectomy = {day = 40, event = 1}     # optional, ignored by forecasting

    Dose keys: ``day`` and exactly one of ``mg``/``mg_per_kg`` (× ``weight_kg``); optional
    ``duration_h`` or ``duration_day``. Sample keys: ``day`` and exactly one of ``mg_l``
    (measured), ``below_lloq`` (the LLOQ of a sample below it) or ``above_uloq`` (the ULOQ).
    Unknown keys are errors. Entries are named by path in messages: ``doses[1]`` is the
    second dose (indices count from 0).

    Parameters
    ----------
    path
        The patient file.
    default_infusion_duration_day
        Duration of infusions without ``duration_h``/``duration_day`` (days).
    limits
        Plausible ranges; the defaults of :class:`PlausibilityLimits` when ``None``.

    Returns
    -------
    PatientSet

    Raises
    ------
    InputError
        With the file name, the patient, the entry and the field, and the fix.
    """
    path = Path(path)
    kind = "toml" if path.suffix.lower() == ".toml" else "yaml"
    return _parse_text(_read_text(path), kind, str(path), default_infusion_duration_day, limits)


# --------------------------------------------------------------------------------------
# Cohorts for population fits
# --------------------------------------------------------------------------------------


def read_cohort(
    path: Any,
    *,
    default_infusion_duration_day: float = DEFAULT_INFUSION_DURATION_DAY,
    limits: PlausibilityLimits | None = None,
) -> PatientSet:
    """Read a cohort for a population fit: :func:`read_patients` plus the cohort rules.

    On top of the forecasting checks, covariates (WT, CRP) must not vary within a patient
    (an error, not a note) and :func:`validate_cohort` must pass: exactly one colectomy
    record per patient, consistent with the doses and samples. ``path`` may be a pandas
    DataFrame with the columns of a NONMEM dataset.

    Raises
    ------
    InputError
        Naming the file, the patient, the row and the field, and the fix.
    """
    if _is_dataframe(path):
        source = "DataFrame"
        patient_set = _parse_text(
            _dataframe_text(path),
            "csv",
            source,
            default_infusion_duration_day,
            limits,
            strict_covariates=True,
        )
    else:
        path = source = Path(path)
        if path.suffix.lower() == ".csv":
            patient_set = read_nonmem_csv(
                path,
                default_infusion_duration_day=default_infusion_duration_day,
                limits=limits or PlausibilityLimits(),
                strict_covariates=True,
            )
        else:
            patient_set = read_patients(
                path, default_infusion_duration_day=default_infusion_duration_day, limits=limits
            )
    try:
        return validate_cohort(patient_set)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None


def validate_cohort(patient_set: PatientSet) -> PatientSet:
    """Check that validated patients form a cohort a population model can be fitted to.

    Rules: every patient has exactly one colectomy record (DVID=2: DV=1 colectomy at TIME,
    DV=0 colectomy-free until TIME); no infusion and no sample after it (infliximab stops at
    colectomy, and a sample or dose after the end of follow-up contradicts it). Patients
    without concentrations are allowed (they inform the model through the prior only) and
    listed in the notes.

    Returns
    -------
    PatientSet
        The same patients, notes about colectomy records (ignored by forecasting) replaced
        by one summary note.

    Raises
    ------
    InputError
        Naming the patient, the row and the field, and the fix.
    """
    if not patient_set.patients:
        raise InputError("the cohort has no patients (fix: give at least one patient)")
    no_samples = []
    for patient in patient_set.patients:
        pid = patient.id
        if not patient.events:
            raise _error(
                pid,
                patient.doses[0].row,
                "DVID",
                "no colectomy record (DVID=2): a population fit needs every patient's outcome",
                "add one row EVID=0, DVID=2 with DV=1 at the day of colectomy, or DV=0 at the "
                "last day the patient was known to be colectomy-free (90 for complete "
                "follow-up); or remove the patient",
            )
        (event,) = patient.events  # _validate_patient rejects two records
        what = "colectomy" if event.event == 1 else "end of follow-up"
        for dose in patient.doses:
            if dose.time_day > event.time_day:
                raise _error(
                    pid,
                    dose.row,
                    "TIME",
                    f"infusion at day {_fmt(dose.time_day)} after the {what} at day "
                    f"{_fmt(event.time_day)} ({_where(event.row)})",
                    "infliximab stops at colectomy: remove planned infusions that were not "
                    "given, or correct the colectomy record's TIME"
                    if event.event == 1
                    else "the colectomy-free record marks the end of follow-up: move it to the "
                    "last day the patient was seen, or remove infusions not given",
                )
        for observation in patient.observations:
            if observation.time_day > event.time_day:
                raise _error(
                    pid,
                    observation.row,
                    "TIME",
                    f"sample at day {_fmt(observation.time_day)} after the {what} at day "
                    f"{_fmt(event.time_day)} ({_where(event.row)})",
                    "remove samples taken after the colectomy (the model describes the "
                    "disease before it), or correct the colectomy record's TIME"
                    if event.event == 1
                    else "move the colectomy-free record (end of follow-up) to the last day "
                    "the patient was seen",
                )
        if not patient.observations:
            no_samples.append(pid)
    notes = [n for n in patient_set.notes if "ignored by forecasting" not in n]
    events = sum(p.events[0].event for p in patient_set.patients)
    notes.append(
        f"cohort: {len(patient_set.patients)} patients, {events} colectomies, "
        f"{sum(len(p.observations) for p in patient_set.patients)} concentrations"
    )
    if no_samples:
        notes.append(
            f"{len(no_samples)} patient(s) without concentrations (prior-only PK): "
            f"{', '.join(no_samples[:10])}{' ...' if len(no_samples) > 10 else ''}"
        )
    return PatientSet(patient_set.patients, tuple(notes), patient_set.source)
