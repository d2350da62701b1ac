"""``flwr-stellar ledger serve | show | account | tx | verify``."""

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


def _json(obj: Any) -> str:
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
    serve(str(args.db), host=args.host, port=args.port, network_passphrase=args.network_passphrase)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    ledger = _open(args)
    print(
        _json(
            {
                "network_passphrase": ledger.network_passphrase,
                "root_account": ledger.root.public_key,
                "latest_ledger": ledger.latest_ledger(),
            }
        )
    )
    return 0


def cmd_account(args: argparse.Namespace) -> int:
    print(_json(asdict(_open(args).load_account(args.address))))
    return 0


def cmd_tx(args: argparse.Namespace) -> int:
    print(_json(asdict(_open(args).transaction(args.hash))))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        n = _open(args).verify_chain()
    except ChainError as err:
        print(_json({"valid": False, "error": str(err)}))
        return 1
    print(_json({"valid": True, "ledgers": n}))
    return 0


def add_ledger_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ledger = sub.add_parser("ledger", help="the embedded Stellar ledger and its HTTP server")
    lsub = ledger.add_subparsers(dest="ledger_command", required=True)

    def cmd(name: str, func: Any, help_: str) -> argparse.ArgumentParser:
        p = lsub.add_parser(name, help=help_, description=help_)
        p.add_argument("--db", type=Path, default=Path("ledger.db"), help="SQLite file")
        p.add_argument("--network-passphrase", default=DEFAULT_PASSPHRASE)
        p.set_defaults(func=func)
        assert isinstance(p, argparse.ArgumentParser)
        return p

    serve = cmd("serve", cmd_serve, "serve the Horizon-compatible API (creates the db if new)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address"
    )
    cmd("show", cmd_show, "network passphrase, root account and latest ledger header")
    cmd("account", cmd_account, "an account's balances, signers and data").add_argument("address")
    cmd("tx", cmd_tx, "a transaction by hash").add_argument("hash")
    cmd("verify", cmd_verify, "re-derive the whole hash chain; exit 1 if it does not verify")
