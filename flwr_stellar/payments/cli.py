"""``flwr-stellar payouts status|settle RUN_DIR``: the outbox of a finished or crashed run.

``status`` reads the journal only. ``settle`` drives every unfinished entry to done or failed,
exactly as a restarted server would (settle by hash first, never pay twice), without training
again: it needs the run's treasury (its dev ``treasury.json`` or ``--treasury-keystore`` with the
passphrase in ``FLWR_STELLAR_TREASURY_PASSPHRASE``) and the ledger.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from flwr_stellar.ledger.base import LedgerError
from flwr_stellar.ledger.pacing import LedgerPacer
from flwr_stellar.payments.anchoring import Anchorer, unjournaled
from flwr_stellar.payments.manifest import MANIFEST_DIR, ManifestStore
from flwr_stellar.payments.outbox import Outbox
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.payments.treasury import open_treasury


def _outbox(run_dir: Path) -> Outbox:
    path = run_dir / "outbox.db"
    if not path.is_file():
        raise LedgerError(f"{path} not found: not a run folder with payments")
    return Outbox(path)


def outbox_status(outbox: Outbox, store: ManifestStore | None = None) -> dict[str, Any]:
    """Per round: its transactions' states, and whether everything is settled. A stored
    manifest the outbox never journaled (a crash in between) counts as pending."""
    rounds: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for digest in unjournaled(store, outbox) if store is not None else []:
        assert store is not None
        rounds[store.get(digest).server_round].append(
            {
                "manifest": digest,
                "part": 0,
                "state": "pending",
                "payments": None,
                "tx_hash": None,
                "codes": "stored, not yet journaled",
            }
        )
    for e in outbox.entries():
        rounds[e.server_round].append(
            {
                "manifest": e.manifest_hash,
                "part": e.part,
                "state": e.state,
                "payments": len(e.payments),
                "tx_hash": e.tx_hash,
                "codes": e.codes,
            }
        )
    pending = sorted(
        r for r, parts in rounds.items() if any(p["state"] in ("pending", "signed") for p in parts)
    )
    return {"rounds": {str(r): parts for r, parts in sorted(rounds.items())}, "pending": pending}


def _print_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(status, indent=2))
        return
    for r, parts in status["rounds"].items():
        states = ", ".join(f"part {p['part']}: {p['state']}" for p in parts)
        print(f"round {r}: {states}")
    print(
        "all settled"
        if not status["pending"]
        else f"{len(status['pending'])} round(s) pending: {status['pending']}"
    )


def cmd_status(args: argparse.Namespace) -> int:
    outbox = _outbox(args.run_dir)
    try:
        status = outbox_status(outbox, ManifestStore(args.run_dir / MANIFEST_DIR))
    finally:
        outbox.close()
    _print_status(status, args.json)
    return 0 if not status["pending"] else 1


def cmd_settle(args: argparse.Namespace) -> int:
    from flwr_stellar.ledger.settings import open_existing

    run_dir: Path = args.run_dir
    outbox = _outbox(run_dir)
    store = ManifestStore(run_dir / MANIFEST_DIR)
    try:
        # the unfinished journal entries, and stored manifests never journaled (settle_all
        # journals those first, unless the ledger shows them anchored already)
        todo = [e.manifest_hash for e in outbox.unfinished()] + unjournaled(store, outbox)
        if not todo:
            _print_status(outbox_status(outbox, store), args.json)
            return 0
        asset_code = store.get(todo[0]).asset.split(":")[0]
        reward = RewardSettings(
            asset_code=asset_code, treasury_keystore=str(args.treasury_keystore or "")
        )
        if args.treasury_keystore is None and not (run_dir / "treasury.json").is_file():
            raise LedgerError(
                f"no treasury: {run_dir / 'treasury.json'} missing; pass --treasury-keystore"
            )
        treasury = open_treasury(reward, run_dir)
        db = args.db or (run_dir / "ledger.db" if args.ledger is None else None)
        ledger = open_existing(db, args.ledger, args.network_passphrase)
        try:
            pacer = LedgerPacer(args.ops_per_ledger) if args.ops_per_ledger else None
            anchorer = Anchorer(lambda: ledger, treasury, outbox, store, pacer=pacer)
            anchorer.settle_all(ledger, timeout=args.timeout)
        finally:
            ledger.close()
        status = outbox_status(outbox, store)
    finally:
        outbox.close()
    _print_status(status, args.json)
    return 0 if not status["pending"] else 1


def add_payouts_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("payouts", help="show or settle the payment outbox of a run")
    psub = p.add_subparsers(dest="payouts_command", required=True)
    status = psub.add_parser("status", help="each round's payment transactions and states")
    status.add_argument("run_dir", type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    settle = psub.add_parser(
        "settle",
        help="finish a run's unsettled payments (exactly once), without training again",
    )
    settle.add_argument("run_dir", type=Path)
    where = settle.add_mutually_exclusive_group()
    where.add_argument("--db", type=Path, help="embedded ledger (default RUN_DIR/ledger.db)")
    where.add_argument("--ledger", metavar="URL", help="Horizon URL of the ledger")
    settle.add_argument("--network-passphrase", default="")
    settle.add_argument(
        "--treasury-keystore",
        type=Path,
        help="the run's treasury keystore (default: the dev RUN_DIR/treasury.json)",
    )
    settle.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for an unavailable ledger"
    )
    settle.add_argument(
        "--ops-per-ledger",
        type=int,
        default=0,
        help="pace payments to this many operations per ledger close (testnet 200, pubnet 1000)",
    )
    settle.add_argument("--json", action="store_true")
    settle.set_defaults(func=cmd_settle)
