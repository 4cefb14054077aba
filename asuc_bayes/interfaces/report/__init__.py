"""Readable text tables of forecasts, and the self-contained HTML patient report.

The module becomes a package; its code is in :mod:`~asuc_bayes.interfaces.report.study_text`
for now. Every name is re-exported here: ``from asuc_bayes.interfaces.report import X`` keeps
working.
"""

from __future__ import annotations

from asuc_bayes.interfaces.report.study_text import (
    DOSE_ROWS_MG_KG_DIGITS,
    FIT_ROWS,
    METHOD_LABELS,
    ROWS,
    format_batch,
    format_cohort_summary,
    format_comparison,
    format_dosing,
    format_evaluation,
    format_fit,
    format_library_dosing,
    format_library_table,
    format_overview,
    format_sbc,
    format_sensitivity,
    format_study,
    format_table,
    format_validation,
    interpretation,
    method_text,
    patient_report_html,
    report_paths,
    summary_rows,
    write_patient_reports,
)
from asuc_bayes.interfaces.report.study_text import (
    _diagnostic as _diagnostic,  # the name tests import
)

__all__ = [
    "DOSE_ROWS_MG_KG_DIGITS",
    "FIT_ROWS",
    "METHOD_LABELS",
    "ROWS",
    "format_batch",
    "format_cohort_summary",
    "format_comparison",
    "format_dosing",
    "format_evaluation",
    "format_fit",
    "format_library_dosing",
    "format_library_table",
    "format_overview",
    "format_sbc",
    "format_sensitivity",
    "format_study",
    "format_table",
    "format_validation",
    "interpretation",
    "method_text",
    "patient_report_html",
    "report_paths",
    "summary_rows",
    "write_patient_reports",
]
