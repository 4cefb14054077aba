"""Number formatting shared by the report's text tables: a dash where a value is missing."""

from __future__ import annotations


def significant_text(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits.

    >>> significant_text(0.123456)
    '0.123'
    """
    return f"{value:.{digits}g}"


def percent_text(value: float | None) -> str:
    """A fraction as a percentage with one decimal (the sign shown when negative), or ``-``.

    >>> percent_text(-0.0512), percent_text(0.2), percent_text(None)
    ('-5.1%', '20.0%', '-')
    """
    return "-" if value is None else f"{value:+.1%}" if value < 0 else f"{value:.1%}"


def number_text(value: float | None, fmt: str = "{:.3g}") -> str:
    """``value`` formatted with ``fmt``, or ``-`` when it is missing.

    >>> number_text(1.23456, "{:+.3f}"), number_text(None)
    ('+1.235', '-')
    """
    return "-" if value is None else fmt.format(value)


def diagnostic_text(value: float | None, spec: str) -> str:
    """An R-hat or ESS for the table; ``None`` (not finite: a parameter that never moved).

    >>> diagnostic_text(1.00234, ".3f"), diagnostic_text(None, ".0f")
    ('1.002', 'undefined (a parameter never moved)')
    """
    return "undefined (a parameter never moved)" if value is None else format(value, spec)
