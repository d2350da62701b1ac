"""``flwr-stellar`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")


def _cmd_flwr_run(args: argparse.Namespace) -> int:
    from flwr_stellar.flwr_run import FlwrRunError, flwr_run

    try:
        run_id = flwr_run(
            app_dir=args.app_dir.resolve(),
            flwr_home=args.flwr_home,
            num_supernodes=args.num_supernodes,
            cpus_per_client=args.cpus_per_client,
            run_config=args.run_config,
            keep_superlink=args.keep_superlink,
        )
    except FlwrRunError as err:
        print(f"flwr-stellar: {err}", file=sys.stderr)
        return 1
    print(f"flwr-stellar: run {run_id} completed")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flwr-stellar",
        description="Accountable federated learning for Flower on a Stellar ledger.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "flwr-run",
        help="run the App with `flwr run` on a local simulation federation",
        description="Run `flwr run <app> local --stream` with a local simulation federation "
        "written to $FLWR_HOME/config.toml, report the run's real final status (non-zero exit "
        "unless it completed) and stop the local SuperLink afterwards.",
    )
    run.add_argument(
        "--app-dir", type=Path, default=Path.cwd(), help="Flower App folder (default: here)"
    )
    run.add_argument(
        "--flwr-home",
        type=Path,
        default=None,
        help="FLWR_HOME to use (default: <app-dir>/.flwr-home)",
    )
    run.add_argument("--num-supernodes", type=int, default=10)
    run.add_argument("--cpus-per-client", type=int, default=1)
    run.add_argument(
        "--run-config",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help='run-config overrides, e.g. num_rounds=3 strategy.name="fedprox"',
    )
    run.add_argument(
        "--keep-superlink",
        action="store_true",
        help="leave the local SuperLink running for further `flwr` commands",
    )
    run.set_defaults(func=_cmd_flwr_run)

    from flwr_stellar.audit.cli import add_audit_parser, add_round_parser
    from flwr_stellar.audit.node_check import add_node_parser
    from flwr_stellar.deploy.cli import add_deploy_parser
    from flwr_stellar.identity.cli import add_keys_parser
    from flwr_stellar.ledger.cli import add_ledger_parser
    from flwr_stellar.payments.cli import add_payouts_parser
    from flwr_stellar.report.cli import add_report_parser
    from flwr_stellar.wallet.cli import add_wallet_parser

    add_keys_parser(sub)
    add_round_parser(add_ledger_parser(sub))  # `ledger round` reads manifests: audit's to add
    add_audit_parser(sub)
    add_node_parser(sub)
    add_wallet_parser(sub)
    add_report_parser(sub)
    add_payouts_parser(sub)
    add_deploy_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from flwr_stellar.identity.cli import KEY_ERRORS
    from flwr_stellar.ledger.base import LedgerError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (*KEY_ERRORS, LedgerError) as err:  # expected failures: one clear line, no traceback
        print(f"flwr-stellar: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
