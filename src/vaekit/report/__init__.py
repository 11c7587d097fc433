"""A model's report: one self-contained HTML page with its numbers and the figures that apply.

Examples
--------
>>> from vaekit.report import write_report
>>> write_report(model, adata, "report.html")  # doctest: +SKIP
"""

from vaekit.report.build import build_report, check_report_path, write_report
from vaekit.report.document import Panel, Report, Section

__all__ = ["Panel", "Report", "Section", "build_report", "check_report_path", "write_report"]
