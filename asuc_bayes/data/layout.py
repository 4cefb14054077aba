"""Layout of a NONMEM dataset: ``$INPUT`` column lists, ``IGNORE=``, comment rows, clock times.

>>> [(c.name, c.dropped) for c in parse_input("ID TIME CONC=DV WT=DROP SKIP", known=["DV"])]
[('ID', False), ('TIME', False), ('DV', False), ('WT', True), ('SKIP', True)]
>>> is_ignored("C,1,0,600", "C"), is_ignored("  ID,TIME", "@"), is_ignored("1,0", "@")
(True, True, False)
>>> clock_seconds("2024-03-02", "06:00", None) - clock_seconds("2024-03-01", "18:00", None)
43200
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asuc_bayes.data.errors import InputError

__all__ = [
    "IGNORE_CHOICES",
    "InputColumn",
    "clock_seconds",
    "datetime_seconds",
    "is_ignored",
    "parse_input",
]

#: Accepted ``ignore`` values: ``#`` (comment rows only, the default), ``C`` (also rows whose
#: first character is C) and ``@`` (also rows whose first non-blank character is a letter or @).
IGNORE_CHOICES = ("#", "C", "@")
#: NONMEM's labels for a column that is not read.
_DROP = frozenset({"DROP", "SKIP"})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class InputColumn:
    """One entry of a ``$INPUT`` list: the name the readers use, the alias in the file."""

    name: str
    dropped: bool = False
    alias: str | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The names a header row may give this column."""
        return (self.name,) if self.alias is None else (self.name, self.alias)


def parse_input(text: str, known: Sequence[str] = ()) -> tuple[InputColumn, ...]:
    """Columns of a ``$INPUT``-style list (``"ID TIME AMT DV WT=DROP CONC=DV"``).

    Entries are separated by blanks or commas; ``$INPUT`` in front is allowed. ``DROP`` or
    ``SKIP`` alone, or ``NAME=DROP``, mark a column that is not read. ``A=B`` gives a column
    two names: the one in ``known`` (the data items the reader uses, e.g. ``DV``) is used,
    the other kept as an alias; when both or neither are known, ``A`` is used.

    Raises
    ------
    InputError
        An empty list, a malformed entry or a name used twice.
    """
    body = text.strip()
    if body.upper().startswith("$INPUT"):
        body = body[len("$INPUT") :]
    tokens = [t for t in re.split(r"[\s,]+", body) if t]
    if not tokens:
        raise InputError("input: empty column list (fix: e.g. input='ID TIME AMT DV EVID WT CRP')")
    known_upper = {k.upper() for k in known}
    columns = [_input_column(token, known_upper) for token in tokens]
    used = [c.name for c in columns if not c.dropped]
    duplicated = sorted({n for n in used if used.count(n) > 1})
    if duplicated:
        raise InputError(
            f"input: column {', '.join(duplicated)} listed twice (fix: give every column its "
            "own name; write DROP for a column not read)"
        )
    return tuple(columns)


def _input_column(token: str, known: frozenset[str] | set[str]) -> InputColumn:
    parts = token.upper().split("=")
    if not parts[0] and len(parts) == 2 and parts[1] in _DROP:  # "=DROP"
        return InputColumn("DROP", dropped=True)
    if len(parts) > 2 or not all(_NAME.match(p) for p in parts):
        raise InputError(
            f"input: entry {token!r} is not NAME, NAME=DROP or NAME=ALIAS (fix: names start "
            "with a letter and hold letters, digits and _)"
        )
    if len(parts) == 1:
        return InputColumn(parts[0], dropped=parts[0] in _DROP)
    left, right = parts
    if right in _DROP:
        return InputColumn(left, dropped=True)
    if right in known and left not in known:
        return InputColumn(right, alias=left)
    return InputColumn(left, alias=right)


def is_ignored(line: str, ignore: str) -> bool:
    """Whether NONMEM's ``IGNORE=<ignore>`` skips ``line`` (``#`` rows are always skipped)."""
    stripped = line.lstrip()
    if stripped.startswith("#"):
        return True
    if ignore == "C":
        return line.startswith("C")
    if ignore == "@":
        return bool(stripped) and (stripped[0].isalpha() or stripped[0] == "@")
    return False


def check_ignore(ignore: str) -> str:
    """``ignore`` if accepted, else an :class:`InputError` listing the choices."""
    if ignore not in IGNORE_CHOICES:
        raise InputError(
            f"ignore: {ignore!r} is not accepted (fix: one of {', '.join(IGNORE_CHOICES)}: "
            "'#' comment rows, 'C' rows starting with C, '@' rows starting with a letter or @)"
        )
    return ignore


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\Z")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(?::\d{2})?\Z")


def clock_seconds(date: str, clock: str, date_format: str | None) -> int:
    """Seconds since 1970-01-01 of a ``DATE`` cell and a clock ``TIME`` cell (``HH:MM[:SS]``).

    Whole seconds, so that differences are exact.

    ``DATE`` is ISO ``YYYY-MM-DD`` unless ``date_format`` (a :func:`datetime.strptime`
    format such as ``"%d/%m/%Y"``) is given: other orders are ambiguous (is 03/04 the 3rd
    of April or the 4th of March?) and rejected.

    Raises
    ------
    ValueError
        With the reason, for the caller to name the row and field.
    """
    day = _date(date.strip(), date_format)
    match = _CLOCK.match(clock.strip())
    if match is None:
        raise ValueError(f"TIME {clock!r} is not a clock time HH:MM or HH:MM:SS")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"TIME {clock!r} is not a valid clock time")
    return day + hours * 3600 + minutes * 60 + seconds


def datetime_seconds(text: str) -> int:
    """Seconds since 1970-01-01 of an ISO date-time ``YYYY-MM-DDTHH:MM[:SS]`` (no time zone).

    Raises
    ------
    ValueError
        With the reason.
    """
    text = text.strip()
    if not _ISO_DATETIME.match(text):
        raise ValueError(
            f"{text!r} is not an ISO date-time YYYY-MM-DDTHH:MM[:SS] (local time, no zone)"
        )
    try:
        return _epoch_seconds(datetime.fromisoformat(text))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date-time ({exc})") from None


def _date(text: str, date_format: str | None) -> int:
    if date_format is None:
        if not _ISO_DATE.match(text):
            raise ValueError(
                f"DATE {text!r} is not an ISO date YYYY-MM-DD; other orders are ambiguous "
                "(day/month) and need date_format, e.g. '%d/%m/%Y'"
            )
        try:
            return _epoch_seconds(datetime.fromisoformat(text))
        except ValueError as exc:
            raise ValueError(f"DATE {text!r} is not a valid date ({exc})") from None
    try:
        return _epoch_seconds(datetime.strptime(text, date_format))
    except ValueError:
        raise ValueError(f"DATE {text!r} does not match the date format {date_format!r}") from None


def _epoch_seconds(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1)
    return delta.days * 86400 + delta.seconds
