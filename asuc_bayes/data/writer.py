"""Patients written as a NONMEM-style CSV that the reader reads back to equal patients.

>>> from asuc_bayes.data.types import Dose, Observation, Patient
>>> print(nonmem_csv_text([Patient("P1", 63, 45, (Dose(0, 600, 0.125),), (Observation(7, 12),))]))
ID,TIME,EVID,AMT,DUR,DV,CENS,MDV,DVID,WT,CRP
P1,0,1,600,0.125,.,.,1,.,63,45
P1,7,0,.,.,12,0,0,1,63,45
<BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from asuc_bayes.data.types import CovariateRecord, Patient

__all__ = ["nonmem_csv_text", "write_nonmem_csv"]

_BASE = ["ID", "TIME", "EVID", "AMT", "DUR", "DV", "CENS", "MDV", "DVID"]
#: Order of records at one time: covariate events, resets, doses, samples, colectomy.
_COVARIATE, _RESET, _DOSE, _SAMPLE, _EVENT = range(5)


def write_nonmem_csv(patients: Iterable[Patient], path: str | Path) -> Path:
    """Write patients as a NONMEM-style CSV that :func:`~asuc_bayes.dataset.read_patients`
    reads back unchanged.

    Columns ``ID,TIME,EVID,AMT,DUR,DV,CENS,MDV,DVID``, then ``SS,II`` when a dose is at
    steady state, then ``WT,CRP`` and the other covariates of
    :attr:`~asuc_bayes.data.types.Patient.covariate_records`: dose rows (EVID=1, MDV=1;
    ADDL series are written out, one row per dose), concentration rows (DVID=1, CENS),
    colectomy rows (DVID=2), resets (EVID=3) and covariate changes that fall on no other
    record (EVID=2), sorted by time within a patient. Covariates are written on every row as
    the last value at or before it (baseline WT/CRP for patients without covariate records).
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
        for _, _, cells in _patient_rows(patient, steady):
            covariates = _covariates_at(patient, cells["TIME_VALUE"], ["WT", "CRP", *extra])
            row = {**cells, **covariates}
            lines.append(",".join(row.get(name, ".") for name in header))
    return "\n".join(lines) + "\n"


def _patient_rows(patient: Patient, steady: bool) -> list[tuple[float, int, dict]]:
    rows: list[tuple[float, int, dict]] = []

    def add(time: float, kind: int, **cells: str) -> None:
        rows.append(
            (time, kind, {"ID": patient.id, "TIME": _exact(time), "TIME_VALUE": time, **cells})
        )

    for dose in patient.doses:
        ss = {"SS": str(dose.steady_state), "II": _exact(dose.steady_state_interval_day)}
        add(
            dose.time_day,
            _DOSE,
            EVID="1",
            AMT=_exact(dose.amount_mg),
            DUR=_exact(dose.duration_day),
            MDV="1",
            **(ss if steady else {}),
        )
    for obs in patient.observations:
        add(
            obs.time_day,
            _SAMPLE,
            EVID="0",
            DV=_exact(obs.value_mg_l),
            CENS=str(obs.censoring),
            MDV="0",
            DVID="1",
        )
    for event in patient.events:
        add(event.time_day, _EVENT, EVID="0", DV=str(event.event), CENS="0", MDV="0", DVID="2")
    for reset in patient.resets:
        add(reset.time_day, _RESET, EVID="3", MDV="1")
    times = {time for time, _, _ in rows}
    previous: CovariateRecord | None = None
    for record in patient.covariate_records:
        unchanged = previous is not None and dict(previous.values) == dict(record.values)
        if record.time_day not in times or unchanged:
            add(record.time_day, _COVARIATE, EVID="2", MDV="1")
        previous = record
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def _covariates_at(patient: Patient, time: float, names: Sequence[str]) -> dict[str, str]:
    if not patient.covariate_records:
        return {"WT": _exact(patient.weight_kg), "CRP": _exact(patient.crp_mg_l)}
    current = [r for r in patient.covariate_records if r.time_day <= time]
    if not current:
        return {}
    values = dict(current[-1].values)
    return {name: _exact(values[name]) for name in names if name in values}


def _exact(value: float) -> str:
    """Shortest text that reads back as the same float (``300``, ``0.08333333333333333``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
