"""``flwr-stellar ledger serve | show | account | tx | verify | balances | history``.

``ledger round`` (a manifest beside its transactions) joins this group from
:mod:`flwr_stellar.audit.cli`, through :func:`add_explorer_command`: the ledger layer reads the
ledger only and must not import the payments or audit layers.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flwr_stellar.ledger.base import LedgerError
from flwr_stellar.ledger.embedded.ledger import DEFAULT_PASSPHRASE, ChainError, EmbeddedLedger


def _open(args: argparse.Namespace) -> EmbeddedLedger:
    if not args.db.exists():
        raise LedgerError(
            f"ledger database {args.db} not found (create one with "
            f"`flwr-stellar ledger serve --db {args.db}`)"
        )
    return EmbeddedLedger(args.db, args.network_passphrase)


def to_json(obj: Any) -> str:
    """JSON for ``--json`` output: bytes as hex, anything else unknown as ``str``."""
    return json.dumps(obj, indent=2, default=lambda o: o.hex() if isinstance(o, bytes) else str(o))


def cmd_serve(args: argparse.Namespace) -> int:
    from flwr_stellar.ledger.server import serve

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.allow_remote:
        raise LedgerError(
            f"refusing to bind {args.host}: pass --allow-remote to serve beyond loopback"
        )
    print(
        f"flwr-stellar ledger: {args.db} on http://{args.host}:{args.port} "
        f"(network {args.network_passphrase!r})",
        flush=True,
    )
    if args.rpc_retention_window < 0:
        raise LedgerError(f"--rpc-retention-window must be >= 0, got {args.rpc_retention_window}")
    congestion = None
    if args.ops_per_ledger:
        from flwr_stellar.ledger.embedded import Congestion

        try:
            congestion = Congestion(args.ops_per_ledger, args.ledger_close_s, args.fee_per_op)
        except ValueError as err:
            raise LedgerError(str(err)) from None
    serve(
        str(args.db),
        host=args.host,
        port=args.port,
        network_passphrase=args.network_passphrase,
        congestion=congestion,
        rpc_retention_window=args.rpc_retention_window or None,
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    ledger = _open(args)
    print(
        to_json(
            {
                "network_passphrase": ledger.network_passphrase,
                "root_account": ledger.root.public_key,
                "latest_ledger": ledger.latest_ledger(),
            }
        )
    )
    return 0


def cmd_account(args: argparse.Namespace) -> int:
    print(to_json(asdict(_open(args).load_account(args.address))))
    return 0


def cmd_tx(args: argparse.Namespace) -> int:
    print(to_json(asdict(_open(args).transaction(args.hash))))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        n = _open(args).verify_chain()
    except ChainError as err:
        print(to_json({"valid": False, "error": str(err)}))
        return 1
    print(to_json({"valid": True, "ledgers": n}))
    return 0


def open_any(args: argparse.Namespace) -> Any:
    """The ledger an explorer command names: ``--ledger URL`` (any Horizon; a URL ending in
    ``/rpc`` is Stellar RPC), ``--rpc URL`` (any Stellar RPC) or ``--db FILE``."""
    from flwr_stellar.ledger.settings import open_existing

    if args.ledger or args.rpc:
        return open_existing(
            url=args.ledger, rpc_url=args.rpc, network_passphrase=args.network_passphrase
        )
    return open_existing(db=args.db)


def cmd_balances(args: argparse.Namespace) -> int:
    from flwr_stellar.ledger import explorer

    ledger = open_any(args)
    try:
        rows = explorer.balances(ledger, args.asset)
    finally:
        ledger.close()
    print(to_json(rows) if args.json else explorer.render_balances(rows, args.asset))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from flwr_stellar.ledger import explorer

    ledger = open_any(args)
    try:
        rows = explorer.history(ledger, args.address, args.limit)
    finally:
        ledger.close()
    title = f"transactions of {args.address}"
    print(to_json(rows) if args.json else explorer.render_history(rows, title))
    return 0


def _add_command(
    lsub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Any,
    help_: str,
) -> argparse.ArgumentParser:
    """A ``ledger NAME`` command with the options they all take (the file, its network)."""
    p = lsub.add_parser(name, help=help_, description=help_)
    p.add_argument("--db", type=Path, default=Path("ledger.db"), help="SQLite file")
    p.add_argument("--network-passphrase", default=DEFAULT_PASSPHRASE)
    p.set_defaults(func=func)
    return p


def add_explorer_command(
    lsub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Any,
    help_: str,
) -> argparse.ArgumentParser:
    """Add a read-only ``ledger NAME`` command with the explorer's options.

    Every explorer command takes the same ``--db`` / ``--ledger URL`` / ``--json``, so layers
    above the ledger (the audit's ``round`` view) add theirs here instead of repeating them.

    Parameters
    ----------
    lsub : argparse._SubParsersAction
        What :func:`add_ledger_parser` returned.
    name, func, help_ : str, callable, str
        The command, its handler (``args -> exit status``) and its one-line help.
    """
    p = _add_command(
        lsub,
        name,
        func,
        help_ + " (embedded file, any Horizon with --ledger URL, any Stellar RPC with --rpc URL)",
    )
    add_ledger_url_options(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(network_passphrase="")
    return p


def add_ledger_url_options(p: argparse.ArgumentParser) -> None:
    """``--ledger URL`` (Horizon) and ``--rpc URL`` (Stellar RPC), mutually exclusive: every
    command that reads a ledger by URL takes both, so none of them knows Horizon only.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The command; ``--db`` (when it has one) stays its own option.
    """
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--ledger", metavar="URL", help="Horizon URL instead of --db (a URL ending in /rpc: RPC)"
    )
    where.add_argument(
        "--rpc",
        metavar="URL",
        help="Stellar RPC URL instead of --db (e.g. ledger serve's http://127.0.0.1:8000/rpc); "
        "RPC keeps only recent history (~7 days on SDF's servers)",
    )


def add_ledger_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add ``flwr-stellar ledger ...``; returns its subcommands for :func:`add_explorer_command`."""
    ledger = sub.add_parser("ledger", help="the embedded Stellar ledger and its HTTP server")
    lsub = ledger.add_subparsers(dest="ledger_command", required=True)

    def cmd(name: str, func: Any, help_: str) -> argparse.ArgumentParser:
        return _add_command(lsub, name, func, help_)

    serve = cmd(
        "serve",
        cmd_serve,
        "serve the Horizon-compatible API and Stellar RPC at /rpc (creates the db if new)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--ops-per-ledger",
        type=int,
        default=0,
        help="emulate a busy network: at most N operations per --ledger-close-s (0 = off)",
    )
    serve.add_argument("--ledger-close-s", type=float, default=5.0)
    serve.add_argument(
        "--fee-per-op", type=int, default=100, help="emulated surge price per operation (stroops)"
    )
    serve.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address"
    )
    serve.add_argument(
        "--rpc-retention-window",
        type=int,
        default=0,
        help="/rpc: emulate a Stellar RPC keeping only the last N ledgers (0 = keep all)",
    )
    cmd("show", cmd_show, "network passphrase, root account and latest ledger header")
    cmd("account", cmd_account, "an account's balances, signers and data").add_argument("address")
    cmd("tx", cmd_tx, "a transaction by hash").add_argument("hash")
    cmd("verify", cmd_verify, "re-derive the whole hash chain; exit 1 if it does not verify")

    add_explorer_command(
        lsub, "balances", cmd_balances, "every holder of a coin and its balance"
    ).add_argument(
        "--asset", required=True, help="CODE:ISSUER, e.g. the asset of a run's manifests"
    )
    hist = add_explorer_command(lsub, "history", cmd_history, "an account's transactions, decoded")
    hist.add_argument("address")
    hist.add_argument("--limit", type=int, default=None, help="only the first N transactions")
    return lsub
