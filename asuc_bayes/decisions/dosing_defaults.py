"""Documented defaults of the dosing decisions, in a module without imports, so that the CLI
can show them in ``--help`` without importing the dosing machinery (start-up time).

>>> DEFAULT_MIN_MG_PER_KG, DEFAULT_TURNAROUND_DAY
(5.0, 1.0)
"""

__all__ = ["DEFAULT_MIN_MG_PER_KG", "DEFAULT_TURNAROUND_DAY"]

#: Default smallest dose (mg/kg): the label's 5 mg/kg induction and maintenance dose.
DEFAULT_MIN_MG_PER_KG = 5.0
#: Default assay turnaround (days): a sample's result is known this long after it is drawn.
DEFAULT_TURNAROUND_DAY = 1.0
