"""A NONMEM dataset's text as rows of named cells: delimiter, header or ``$INPUT``, IGNORE,
clock times and time units (everything before the records are given a meaning).

>>> table = read_table("ID,TIME,AMT\\n# a comment\\nP1,0,600\\n", TableLayout())
>>> [(row.row, row.cells) for row in table.rows]
[(3, {'ID': 'P1', 'TIME': '0', 'AMT': '600'})]
>>> layout = TableLayout(input="ID TIME=DROP AMT", ignore="@")
>>> [row.cells for row in read_table("ID,TIME,AMT\\n1,0,600\\n", layout).rows]
[{'ID': '1', 'AMT': '600'}]
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field

from asuc_bayes.data.errors import InputError, _error
from asuc_bayes.data.layout import (
    InputColumn,
    check_ignore,
    clock_seconds,
    datetime_seconds,
    is_ignored,
    parse_input,
)
from asuc_bayes.data.validation import parse_number

__all__ = ["COLUMN_ROLES", "MISSING_CELLS", "Row", "Table", "TableLayout", "read_table"]

#: Cells that mean "missing".
MISSING_CELLS = ("", ".")

#: The data items read, by column name (pharmpy-style roles), and what each means.
COLUMN_ROLES: dict[str, str] = {
    "ID": "patient identifier (kept as text)",
    "TIME": "time since the first dose (days, or hours with time_unit='hours'); with DATE a "
    "clock time HH:MM",
    "DATE": "calendar date YYYY-MM-DD (or date_format) of a clock TIME",
    "DATETIME": "ISO date-time YYYY-MM-DDTHH:MM of the record, instead of TIME",
    "EVID": "0 observation, 1 dose, 2 other event (covariate change), 3 reset, 4 reset + dose",
    "MDV": "1 on an observation: the row is not used",
    "AMT": "dose (mg)",
    "RATE": "infusion rate (mg per time unit); -2: the model's default duration",
    "DUR": "infusion duration (time unit)",
    "ADDL": "additional doses, every II",
    "II": "interdose interval (time unit) of ADDL or SS",
    "SS": "1 steady state (reset), 2 steady state added",
    "CMT": "compartment: doses into 1 (central), observations of 1 or 2",
    "DV": "concentration (mg/L); on DVID=2 rows 1 colectomy, 0 censored",
    "CENS": "0 measured, 1 below the LLOQ (DV = LLOQ), -1 above the ULOQ (DV = ULOQ)",
    "BLQ": "1 below the LLOQ (mapbayr), with LLOQ",
    "LLOQ": "lower limit of quantification (mg/L)",
    "DVID": "1 concentration, 2 colectomy record",
    "WT": "body weight (kg), a covariate",
    "CRP": "C-reactive protein (mg/L), a covariate",
    "ALB": "albumin (unit: the model file's, or --units ALB=g/L), a covariate kept per record",
    "ADA": "anti-drug antibodies, a covariate kept per record",
}
#: Covariate columns kept per record (:class:`~asuc_bayes.data.types.CovariateRecord`).
COVARIATE_COLUMNS = ("WT", "CRP", "ALB", "ADA")
_TIME_UNITS = ("days", "hours")


@dataclass(frozen=True)
class TableLayout:
    """How the text is laid out.

    Attributes
    ----------
    ignore
        ``"#"`` (rows whose first non-blank character is ``#``), ``"C"`` (also rows whose
        first character is C) or ``"@"`` (also rows whose first non-blank character is a
        letter or @), as NONMEM's ``IGNORE=``. ``#`` rows are always skipped.
    input
        A ``$INPUT``-style column list for files whose header differs or is absent; a header
        row in the file is then recognised and skipped.
    time_unit
        ``"days"`` or ``"hours"``: the unit of TIME, DUR and II (RATE per time unit).
    date_format
        :func:`datetime.strptime` format of a DATE column that is not ISO ``YYYY-MM-DD``.
    """

    ignore: str = "#"
    input: str | None = None
    time_unit: str = "days"
    date_format: str | None = None

    def checked(self) -> TableLayout:
        """This layout, or an :class:`InputError` naming the bad option."""
        check_ignore(self.ignore)
        if self.time_unit not in _TIME_UNITS:
            raise InputError(
                f"time_unit: {self.time_unit!r} is not accepted (fix: 'days' or 'hours')"
            )
        if self.input is not None:
            parse_input(self.input, tuple(COLUMN_ROLES))
        return self


@dataclass
class Row:
    """One data row: cells by upper-case column name, its line number, its patient."""

    cells: dict[str, str]
    row: int
    patient_id: str | None = None

    def has(self, column: str) -> bool:
        return self.cells.get(column, "") not in MISSING_CELLS


@dataclass
class Table:
    """Rows of named cells, the column names and the header's row number (0: none)."""

    columns: list[str]
    rows: list[Row]
    header_row: int
    delimiter: str | None
    notes: list[str] = field(default_factory=list)


def read_table(text: str, layout: TableLayout) -> Table:
    """The rows of a NONMEM dataset, times converted to days since each patient's first dose.

    Raises
    ------
    InputError
        Empty file, bad header or ``$INPUT`` list, ragged rows, unreadable clock times.
    """
    layout = layout.checked()
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), None)
    if first is None:
        raise InputError("the file is empty (fix: give a header row and one row per record)")
    counts = {d: first.count(d) for d in ",;\t"}
    delimiter = max(counts, key=counts.__getitem__) if any(counts.values()) else None
    records = list(_split(lines, delimiter))
    columns: list[InputColumn] | None = None
    header_row = 0
    if layout.input is not None:
        columns = list(parse_input(layout.input, tuple(COLUMN_ROLES)))
    rows: list[Row] = []
    skipped: list[int] = []
    for number, line, cells in records:
        if not any(cell.strip() for cell in cells) or line.lstrip().startswith("#"):
            continue
        if columns is None:
            columns = [InputColumn(name) for name in _header(cells, number)]
            header_row = number
            continue
        if is_ignored(line, layout.ignore):
            if not line.lstrip().startswith("#"):
                skipped.append(number)
            continue
        if not rows and not header_row and layout.input is not None and _is_header(cells, columns):
            header_row = number
            continue
        rows.append(_row(cells, number, columns, delimiter, layout.input is not None))
    assert columns is not None
    names = [c.name for c in columns if not c.dropped]
    if not rows:
        raise _error(
            None,
            header_row or None,
            None,
            "the file has no data rows",
            "add one row per dose and per sample",
        )
    table = Table(names, rows, header_row, delimiter)
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
        table.notes.append(
            f"ignore={layout.ignore!r} (IGNORE=) skipped {len(skipped)} row"
            f"{'s' if len(skipped) > 1 else ''}: {shown}"
        )
    _convert_times(table, layout)
    return table


def _split(lines: list[str], delimiter: str | None):
    """``(line number, line, cells)``; blank-separated when no delimiter was found."""
    if delimiter is None:
        for number, line in enumerate(lines, start=1):
            yield number, line, line.split()
        return
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _error(
                None,
                reader.line_num,
                None,
                f"unreadable CSV ({exc})",
                "save the file as plain CSV: one record per line, cells shorter than 100 kB",
            ) from None
        number = reader.line_num
        yield number, lines[number - 1], cells


def _header(cells: list[str], row_number: int) -> list[str]:
    header = [cell.strip().upper() for cell in cells]
    while header and not header[-1]:
        header.pop()
    for index, name in enumerate(header, start=1):
        if not name:
            raise _error(None, row_number, None, f"column {index} has no name", "name every column")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise _error(
            None,
            row_number,
            ", ".join(duplicated),
            "duplicate column name (column names are case-insensitive)",
            "keep one column of each name",
        )
    return header


def _is_header(cells: list[str], columns: Sequence[InputColumn]) -> bool:
    """A first row whose cells are mostly the ``$INPUT`` names (or their aliases)."""
    labels = {label for c in columns for label in c.labels} | {"DROP", "SKIP"}
    words = [c.strip().upper() for c in cells if c.strip()]
    return bool(words) and sum(w in labels for w in words) * 2 >= len(words)


def _row(
    cells: list[str],
    number: int,
    columns: Sequence[InputColumn],
    delimiter: str | None,
    from_input: bool,
) -> Row:
    stripped = [cell.strip() for cell in cells]
    if len(stripped) > len(columns) and not any(stripped[len(columns) :]):
        stripped = stripped[: len(columns)]
    if len(stripped) != len(columns):
        where = "the input list names" if from_input else "the header has"
        sep = "blank" if delimiter is None else repr(delimiter)
        raise _error(
            None,
            number,
            None,
            f"{len(stripped)} cells but {where} {len(columns)} columns",
            f"give every row the same number of {sep}-separated cells"
            + ("; list every column in input (DROP for those not read)" if from_input else ""),
        )
    named = {c.name: cell for c, cell in zip(columns, stripped, strict=True) if not c.dropped}
    return Row(named, number, named.get("ID") or None)


# --------------------------------------------------------------------------------------
# Times: clock times and hours to days since the first dose
# --------------------------------------------------------------------------------------


def _convert_times(table: Table, layout: TableLayout) -> None:
    clock = "DATE" in table.columns or "DATETIME" in table.columns
    if clock:
        _clock_to_days(table, layout.date_format)
    else:
        for row in table.rows:
            raw = row.cells.get("TIME", "")
            if ":" in raw:
                raise _error(
                    row.patient_id,
                    row.row,
                    "TIME",
                    f"clock time {raw!r} without a DATE column",
                    "add a DATE column (YYYY-MM-DD) for clock times, or give TIME as days "
                    "since the first dose",
                )
    if layout.time_unit == "hours":
        for row in table.rows:
            for column in ("DUR", "II") if clock else ("TIME", "DUR", "II"):
                _scale(row, column, 1.0 / 24.0)
            rate = parse_number(row.cells.get("RATE", ""))
            if rate is not None and rate > 0:  # mg/h -> mg/day; RATE=-2 keeps its meaning
                row.cells["RATE"] = repr(rate * 24.0)


def _scale(row: Row, column: str, factor: float) -> None:
    value = parse_number(row.cells.get(column, ""))
    if value is not None:
        row.cells[column] = repr(value * factor)


def _clock_to_days(table: Table, date_format: str | None) -> None:
    both = "DATE" in table.columns and "DATETIME" in table.columns
    if both:
        raise _error(
            None,
            table.header_row or None,
            "DATE, DATETIME",
            "both a DATE and a DATETIME column",
            "keep one: DATETIME (YYYY-MM-DDTHH:MM), or DATE with a clock TIME",
        )
    seconds: dict[int, int] = {}
    for row in table.rows:
        seconds[row.row] = _row_seconds(row, date_format)
    first_dose: dict[str | None, int] = {}
    for row in table.rows:
        if row.patient_id not in first_dose and _is_dose_row(row):
            first_dose[row.patient_id] = seconds[row.row]
    for row in table.rows:
        origin = first_dose.get(row.patient_id)
        if origin is None:
            raise _error(
                row.patient_id,
                row.row,
                "EVID",
                "clock times but the patient has no dose to count them from",
                "add the infliximab infusions (EVID=1, AMT in mg)",
            )
        row.cells["TIME"] = repr((seconds[row.row] - origin) / 86400.0)


def _is_dose_row(row: Row) -> bool:
    evid = parse_number(row.cells.get("EVID", ""))
    if evid is not None:
        return evid in (1.0, 4.0)
    amount = parse_number(row.cells.get("AMT", ""))
    return amount is not None and amount > 0


def _row_seconds(row: Row, date_format: str | None) -> int:
    field_name = "DATETIME" if "DATETIME" in row.cells else "TIME"
    try:
        if "DATETIME" in row.cells:
            return datetime_seconds(row.cells["DATETIME"])
        date, clock = row.cells.get("DATE", ""), row.cells.get("TIME", "")
        if date in MISSING_CELLS:
            raise ValueError("DATE: empty cell")
        if parse_number(clock) is not None:
            raise ValueError(
                f"mixed time formats: TIME {clock!r} is a number but the file has a DATE "
                "column (clock times HH:MM)"
            )
        return clock_seconds(date, clock, date_format)
    except ValueError as exc:
        if str(exc).startswith("DATE"):
            field_name = "DATE"
        elif field_name != "DATETIME":
            field_name = "TIME"
        raise _error(
            row.patient_id,
            row.row,
            field_name,
            str(exc),
            "dates YYYY-MM-DD (or pass date_format, e.g. '%d/%m/%Y') and clock times HH:MM; "
            "or one DATETIME column YYYY-MM-DDTHH:MM; or TIME in days since the first dose",
        ) from None
