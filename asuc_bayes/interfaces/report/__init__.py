"""Readable text tables of forecasts, and the self-contained HTML patient report.

The modules, by responsibility:

- :mod:`~asuc_bayes.interfaces.report.tables`: forecast tables, the overview and batch lines,
  the rows, sentences and method text of a forecast;
- :mod:`~asuc_bayes.interfaces.report.patient_html`: the HTML patient report and its paths;
- :mod:`~asuc_bayes.interfaces.report.dosing_text`: dose recommendations and plans as text;
- :mod:`~asuc_bayes.interfaces.report.study_text`: comparisons, studies, sensitivity, cohort,
  population fit, evaluation, SBC and external validation as text;
- :mod:`~asuc_bayes.interfaces.report.number_format`: the number formatting they share.

Every name is re-exported here: ``from asuc_bayes.interfaces.report import X`` keeps working.
"""

from __future__ import annotations

from asuc_bayes.interfaces.report.dosing_text import format_dosing, format_library_dosing
from asuc_bayes.interfaces.report.number_format import (
    diagnostic_text,
    number_text,
    percent_text,
    significant_text,
)
from asuc_bayes.interfaces.report.patient_html import (
    DOSE_ROWS_MG_KG_DIGITS,
    patient_report_html,
    report_paths,
    write_patient_reports,
)
from asuc_bayes.interfaces.report.study_text import (
    FIT_ROWS,
    format_cohort_summary,
    format_comparison,
    format_evaluation,
    format_fit,
    format_library_comparison,
    format_library_sensitivity,
    format_sbc,
    format_sensitivity,
    format_study,
    format_validation,
)
from asuc_bayes.interfaces.report.tables import (
    METHOD_LABELS,
    ROWS,
    format_batch,
    format_library_table,
    format_overview,
    format_table,
    interpretation,
    method_text,
    summary_rows,
)

#: The name this helper had before the split (still imported by tests).
_diagnostic = diagnostic_text

__all__ = [
    "DOSE_ROWS_MG_KG_DIGITS",
    "FIT_ROWS",
    "METHOD_LABELS",
    "ROWS",
    "diagnostic_text",
    "format_batch",
    "format_cohort_summary",
    "format_comparison",
    "format_dosing",
    "format_evaluation",
    "format_fit",
    "format_library_comparison",
    "format_library_dosing",
    "format_library_sensitivity",
    "format_library_table",
    "format_overview",
    "format_sbc",
    "format_sensitivity",
    "format_study",
    "format_table",
    "format_validation",
    "interpretation",
    "method_text",
    "number_text",
    "patient_report_html",
    "percent_text",
    "report_paths",
    "significant_text",
    "summary_rows",
    "write_patient_reports",
]
