"""``flwr-stellar report RUN_DIR [-o report.html]`` and ``report --sweep MULTIRUN_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from flwr_stellar.payments.manifest import MANIFEST_DIR
from flwr_stellar.report.run_report import write_run_report
from flwr_stellar.report.sweep_report import write_sweep_report


def cmd_report(args: argparse.Namespace) -> int:
    if args.sweep:
        path = write_sweep_report(args.run_dir, args.output)
    else:
        if (
            not (args.run_dir / MANIFEST_DIR).is_dir()
            and not (args.run_dir / "metrics.json").is_file()
        ):
            print(f"flwr-stellar: {args.run_dir} holds no run (no manifests/, no metrics.json)")
            return 2
        path = write_run_report(args.run_dir, args.output, run_audit=not args.no_audit)
    print(f"report: {path}")
    return 0


def add_report_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="a self-contained HTML page for a run (or, with --sweep, for a folder of runs)",
        description="Plots (accuracy/loss, coins per pseudonym, accepted/rejected by reason, "
        "scores), the rounds with their manifest and transaction hashes, the run config and the "
        "audit verdict, in one HTML file with the images inlined; PNGs written beside it.",
    )
    p.add_argument("run_dir", type=Path, help="run folder, or a multirun folder with --sweep")
    p.add_argument("-o", "--output", type=Path, help="page to write (default: in the folder)")
    p.add_argument("--sweep", action="store_true", help="compare every run under the folder")
    p.add_argument("--no-audit", action="store_true", help="do not run the audit")
    p.set_defaults(func=cmd_report)
