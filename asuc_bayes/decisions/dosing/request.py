"""The dosing request: what to optimise, its validation, and the error of a request that
cannot be answered.

Examples
--------
>>> DosingRequest(target_risk=0.15).criterion
'mean'
>>> check_in_range(30.0, 0.0, 10.0, "turnaround", "day", "--turnaround-days")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
asuc_bayes.decisions.dosing.request.DosingError: turnaround must be between 0 and 10 day, ...
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from asuc_bayes.decisions.dosing_defaults import DEFAULT_MIN_MG_PER_KG
from asuc_bayes.errors import AsucBayesError

__all__ = [
    "CRITERIA",
    "Criterion",
    "DosingError",
    "DosingRequest",
    "check_in_range",
    "clinical_text",
]

Criterion = Literal["mean", "probability"]
CRITERIA = ("mean", "probability")


class DosingError(AsucBayesError, ValueError):
    """A dosing request that cannot be answered; the message names the option and the fix.

    ``clinical`` is the same message without command-line options, for clinicians (the HTML
    report, the app): given explicitly where an option is part of a sentence, else the
    message with its parenthesised options removed.

    Examples
    --------
    >>> DosingError("target risk must be below 1, got 1.5 (--target-risk)").clinical
    'target risk must be below 1, got 1.5'
    """

    def __init__(self, message: str, clinical: str | None = None):
        super().__init__(message)
        self.clinical = clinical if clinical is not None else clinical_text(message)


def clinical_text(message: str) -> str:
    """``message`` without parenthesised command-line options such as ``(--dose-time)``.

    Examples
    --------
    >>> clinical_text("cap too low (--max-mg-kg)")
    'cap too low'
    """
    return re.sub(r"\s*\((?:--[a-z][a-z-]*(?:[ ,/]+(?:or )?)?)+\)", "", message)


# -- the request --------------------------------------------------------------------------
@dataclass(frozen=True)
class DosingRequest:
    """What to optimise, validated once at construction.

    Parameters
    ----------
    target_risk
        Target 90-day colectomy risk, in (0, 1) (the paper's tool: 0.20, i.e.
        ln(AUC_w2-4/CL) ≥ 5.79).
    criterion
        ``"mean"``: posterior mean risk ≤ target. ``"probability"``: P(risk ≤ target) ≥
        ``probability``.
    probability
        Required posterior probability of meeting the target (criterion ``probability``, and
        the trough mode), in (0, 1).
    dose_time_day
        Day of the infusion being chosen (default 14, week 2); it replaces the regimen's dose
        at that day or is added. Must not precede the patient's last sample.
    vial_mg
        Vial size: doses are whole vials, rounded up.
    max_mg_per_kg
        Cap on the chosen dose (mg/kg); a target not met at the cap is reported infeasible.
    min_mg_per_kg
        Smallest dose considered (mg/kg; default 5, the label's induction dose), rounded up to
        whole vials: nothing below it is recommended, and when it already meets the target it
        is the recommendation (there is no "0 mg" answer). Must be positive and at most
        ``max_mg_per_kg``.
    duration_day
        Infusion duration of the chosen dose; ``None``: that of the regimen's dose at
        ``dose_time_day``, else the model file's default (2 h).

    Examples
    --------
    >>> DosingRequest(target_risk=0.15).criterion
    'mean'
    >>> DosingRequest(target_risk=1.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    asuc_bayes.decisions.dosing.request.DosingError: target risk must be strictly between 0 ...
    """

    target_risk: float = 0.20
    criterion: Criterion = "mean"
    probability: float = 0.8
    dose_time_day: float = 14.0
    vial_mg: float = 100.0
    max_mg_per_kg: float = 20.0
    duration_day: float | None = None
    min_mg_per_kg: float = DEFAULT_MIN_MG_PER_KG

    def __post_init__(self):
        _probability_in_unit_interval(
            self.target_risk, "target risk", "e.g. 0.20 for 20 %", option="--target-risk"
        )
        if self.criterion not in CRITERIA:
            raise DosingError(
                f"criterion must be 'mean' or 'probability', got {self.criterion!r} (--criterion)"
            )
        _probability_in_unit_interval(
            self.probability, "probability", "e.g. 0.8", option="--probability"
        )
        check_in_range(self.dose_time_day, 0.0, 365.0, "dose time", "day", "--dose-time")
        check_in_range(self.vial_mg, 1.0, 3000.0, "vial size", "mg", "--vial-mg")
        check_in_range(self.max_mg_per_kg, 0.01, 100.0, "dose cap", "mg/kg", "--max-mg-kg")
        _check_minimum_dose(self.min_mg_per_kg, self.max_mg_per_kg)
        if self.duration_day is not None:
            check_in_range(
                self.duration_day, 5 / 1440, 1.0, "infusion duration", "day", "--duration"
            )

    def dose_range_json(self) -> dict[str, Any]:
        """The decision day, vial size and dose range of the request, as the ``optimize``
        JSON entries of a patient report them (``dose_time_day``, ``vial_mg``, ``min_mg_kg``,
        ``max_mg_kg``)."""
        return {
            "dose_time_day": self.dose_time_day,
            "vial_mg": self.vial_mg,
            "min_mg_kg": self.min_mg_per_kg,
            "max_mg_kg": self.max_mg_per_kg,
        }


def _check_minimum_dose(min_mg_per_kg, max_mg_per_kg: float) -> None:
    if (
        isinstance(min_mg_per_kg, bool)
        or not isinstance(min_mg_per_kg, int | float)
        or not math.isfinite(min_mg_per_kg)
        or min_mg_per_kg <= 0
    ):
        raise DosingError(
            f"the minimum dose must be a positive number of mg/kg (e.g. 5), got "
            f"{min_mg_per_kg!r} (--min-mg-kg)"
        )
    if min_mg_per_kg > max_mg_per_kg:
        raise DosingError(
            f"the minimum dose ({min_mg_per_kg:g} mg/kg) exceeds the dose cap "
            f"({max_mg_per_kg:g} mg/kg): lower --min-mg-kg or raise --max-mg-kg"
        )


def _probability_in_unit_interval(value, name: str, example: str, option: str) -> None:
    if not isinstance(value, int | float) or not 0.0 < float(value) < 1.0:
        raise DosingError(
            f"{name} must be strictly between 0 and 1 ({example}), got {value!r} ({option})"
        )


def check_in_range(value, low: float, high: float, name: str, unit: str, option: str) -> None:
    """Check that ``value`` is a finite number from ``low`` to ``high`` (in ``unit``).

    Raises
    ------
    DosingError
        Naming the quantity, its range and the command-line ``option`` that sets it.
    """
    if not isinstance(value, int | float) or not (math.isfinite(value) and low <= value <= high):
        raise DosingError(
            f"{name} must be between {low:g} and {high:g} {unit}, got {value!r} ({option})"
        )
