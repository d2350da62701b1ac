"""Self-contained HTML reports (plots inlined) for one run and for a sweep of runs."""

from flwr_stellar.report.run_report import write_run_report
from flwr_stellar.report.sweep_report import write_sweep_report

__all__ = ["write_run_report", "write_sweep_report"]
