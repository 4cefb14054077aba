"""Patients written as a NONMEM-style CSV that the reader reads back to equal patients.

>>> from asuc_bayes.data.types import Dose, Observation, Patient
>>> print(nonmem_csv_text([Patient("P1", 63, 45, (Dose(0, 600, 0.125),), (Observation(7, 12),))]))
ID,TIME,EVID,AMT,DUR,DV,CENS,MDV,DVID,WT,CRP
P1,0,1,600,0.125,.,.,1,.,63,45
P1,7,0,.,.,12,0,0,1,63,45
<BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from asuc_bayes.data.types import CovariateRecord, Patient

__all__ = ["nonmem_csv_text", "write_nonmem_csv"]

_BASE = ["ID", "TIME", "EVID", "AMT", "DUR", "DV", "CENS", "MDV", "DVID"]
#: Order of records at one time: covariate events, resets, doses, samples, colectomy.
_COVARIATE, _RESET, _DOSE, _SAMPLE, _EVENT = range(5)


def write_nonmem_csv(patients: Iterable[Patient], path: str | Path) -> Path:
    """Write patients as a NONMEM-style CSV that :func:`~asuc_bayes.data.dataset.read_patients`
    reads back unchanged.

    Columns ``ID,TIME,EVID,AMT,DUR,DV,CENS,MDV,DVID``, then ``SS,II`` when a dose is at
    steady state, then ``WT,CRP`` and the other covariates of
    :attr:`~asuc_bayes.data.types.Patient.covariate_records`: dose rows (EVID=1, MDV=1;
    ADDL series are written out, one row per dose), concentration rows (DVID=1, CENS),
    colectomy rows (DVID=2), resets (EVID=3), sorted by time within a patient (covariate
    events, resets, doses, samples, colectomy at one time). The covariate records go on the
    rows of their time in order, with ``EVID=2`` rows for records beyond the rows there (e.g.
    from rows with MDV=1); a patient without covariate records gets its baseline WT and CRP
    on every row. Records of one time that the source gave in another order of record types
    may be paired with other rows; their values and order are kept.
    """
    path = Path(path)
    path.write_text(nonmem_csv_text(patients), encoding="utf-8")
    return path


def nonmem_csv_text(patients: Iterable[Patient]) -> str:
    """The text :func:`write_nonmem_csv` writes."""
    patients = list(patients)
    steady = any(d.steady_state for p in patients for d in p.doses)
    extra = sorted(
        {
            name
            for p in patients
            for record in p.covariate_records
            for name, _ in record.values
            if name not in ("WT", "CRP")
        }
    )
    header = _BASE + (["SS", "II"] if steady else []) + ["WT", "CRP", *extra]
    lines = [",".join(header)]
    for patient in patients:
        for cells in _patient_rows(patient, steady):
            lines.append(",".join(cells.get(name, ".") for name in header))
    return "\n".join(lines) + "\n"


def _patient_rows(patient: Patient, steady: bool) -> list[dict[str, str]]:
    rows: list[tuple[float, int, dict[str, str]]] = []

    def add(time: float, kind: int, **cells: str) -> None:
        rows.append((time, kind, {"ID": patient.id, "TIME": _exact(time), **cells}))

    for dose in patient.doses:
        ss = (
            {"SS": str(dose.steady_state), "II": _exact(dose.steady_state_interval_day)}
            if steady
            else {}
        )
        amount, duration = _exact(dose.amount_mg), _exact(dose.duration_day)
        add(dose.time_day, _DOSE, EVID="1", AMT=amount, DUR=duration, MDV="1", **ss)
    for obs in patient.observations:
        value, censoring = _exact(obs.value_mg_l), str(obs.censoring)
        add(obs.time_day, _SAMPLE, EVID="0", DV=value, CENS=censoring, MDV="0", DVID="1")
    for event in patient.events:
        add(event.time_day, _EVENT, EVID="0", DV=str(event.event), CENS="0", MDV="0", DVID="2")
    for reset in patient.resets:
        add(reset.time_day, _RESET, EVID="3", MDV="1")
    if not patient.covariate_records:
        baseline = {"WT": _exact(patient.weight_kg), "CRP": _exact(patient.crp_mg_l)}
        return [{**cells, **baseline} for _, _, cells in sorted(rows, key=lambda r: r[:2])]
    return _with_covariate_records(patient, rows)


def _with_covariate_records(
    patient: Patient, rows: list[tuple[float, int, dict[str, str]]]
) -> list[dict[str, str]]:
    """Rows carrying the covariate records: at each time, the records go on the rows in
    order (covariate-only ``EVID=2`` rows added when there are more records than rows, and
    ``.`` on rows beyond the records), so the reader finds the same records again."""
    records: dict[float, list[CovariateRecord]] = {}
    for record in patient.covariate_records:
        records.setdefault(record.time_day, []).append(record)
    for time, at_time in records.items():
        missing = len(at_time) - sum(1 for t, _, _ in rows if t == time)
        rows.extend(
            (time, _COVARIATE, {"ID": patient.id, "TIME": _exact(time), "EVID": "2", "MDV": "1"})
            for _ in range(max(missing, 0))
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    written = []
    used: dict[float, int] = {}
    for time, _, cells in rows:
        index = used.get(time, 0)
        used[time] = index + 1
        at_time = records.get(time, [])
        if index < len(at_time):
            cells = {**cells, **{name: _exact(v) for name, v in at_time[index].values}}
        written.append(cells)
    return written


def _exact(value: float) -> str:
    """Shortest text that reads back as the same float (``300``, ``0.08333333333333333``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
