"""``flwr-stellar wallet balances|collect KEYSTORE``: a data provider sees and collects its
earnings across runs, from its keystore and the journal beside it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from stellar_sdk import Keypair, StrKey

from flwr_stellar.client.journal import Journal, journal_path
from flwr_stellar.identity import keystore
from flwr_stellar.identity.passphrase import DEFAULT_ENV, read_passphrase_file, resolve_passphrase
from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import Ledger, LedgerError
from flwr_stellar.wallet.collect import CollectError, collect
from flwr_stellar.wallet.holdings import Holding, Recovery, holdings, read_holding

FEE_ENV = "FLWR_STELLAR_FEE_PASSPHRASE"


def _journal(path: Path) -> Journal:
    return Journal(journal_path(path))  # a missing journal holds no runs (see --asset)


def _ledger(args: argparse.Namespace) -> Ledger:
    from flwr_stellar.ledger.settings import open_existing

    return open_existing(args.db, args.ledger, args.network_passphrase)


def balance_rows(found: list[Holding]) -> list[dict[str, Any]]:
    """One row per run: pseudonym, coin on its trustline and in claimable balances, state."""
    return [
        {
            "run_id": h.run_id,
            "pseudonym": h.pseudonym,
            "asset": h.asset.split(":", 1)[0],
            "on_account": h.on_trustline,
            "claimable": sum(b.amount for b in h.claimable),
            "total": h.total,
            "state": h.state,
            "receipts": f"{h.receipts_up_to}/{h.num_rounds}",
        }
        for h in found
    ]


def _recovery(args: argparse.Namespace, master: keystore.MasterSecret | None) -> Recovery | None:
    """For ``--run-id``s the journal lacks: the keystore derives them, ``--asset`` names the
    coin (the only time ``balances`` needs the passphrase)."""
    if not args.asset:
        return None
    from flwr_stellar.ledger.params import parse_asset

    code, issuer = parse_asset(args.asset)
    if master is None:
        passphrase = resolve_passphrase(
            env=args.passphrase_env, file=args.passphrase_file, prompt=True
        )
        master = keystore.load(args.keystore, passphrase)
    return Recovery(master, f"{code}:{issuer}", args.federation)


def cmd_balances(args: argparse.Namespace) -> int:
    journal = _journal(args.keystore)
    ledger = _ledger(args)
    try:
        found = holdings(journal, ledger, args.run_id or None, _recovery(args, None))
    finally:
        ledger.close()
    rows = balance_rows(found)
    totals: dict[str, int] = {}
    for h in found:
        totals[h.asset] = totals.get(h.asset, 0) + h.total
    if args.json:
        print(json.dumps({"runs": rows, "totals": totals}, indent=2))
        return 0
    table = Table(title=f"earnings of {args.keystore}", title_justify="left")
    for key in rows[0] if rows else ("run_id",):
        table.add_column(
            key, justify="right" if key in ("on_account", "claimable", "total") else "left"
        )
    for row in rows:
        table.add_row(
            *(
                format_amount(v) if k in ("on_account", "claimable", "total") else str(v)
                for k, v in row.items()
            )
        )
    console = Console(width=160)
    console.print(table)
    for asset, total in sorted(totals.items()):
        console.print(f"total {format_amount(total)} {asset}")
    return 0


def _fee_keypair(args: argparse.Namespace) -> Keypair:
    """Who pays the fee bumps: a keystore's master account, or a secret seed in a file."""
    if args.fee_source is not None:
        passphrase = resolve_passphrase(env=args.fee_passphrase_env, file=None, prompt=True)
        return keystore.load(args.fee_source, passphrase).keypair()
    if args.fee_secret_file is not None:
        seed = read_passphrase_file(args.fee_secret_file)  # same 0600 rule as passphrases
        if not StrKey.is_valid_ed25519_secret_seed(seed):
            raise CollectError(f"{args.fee_secret_file} does not hold a Stellar secret seed (S...)")
        return Keypair.from_secret(seed)
    raise CollectError(
        "name the account that pays the fees: --fee-secret-file FILE (e.g. the destination's "
        "own secret seed) or --fee-source KEYSTORE"
    )


def cmd_collect(args: argparse.Namespace) -> int:
    if not StrKey.is_valid_ed25519_public_key(args.to):
        raise CollectError(f"--to {args.to!r} is not a Stellar account id (G...)")
    journal = _journal(args.keystore)
    passphrase = resolve_passphrase(env=args.passphrase_env, file=args.passphrase_file, prompt=True)
    master = keystore.load(args.keystore, passphrase)
    fee = _fee_keypair(args)
    ledger = _ledger(args)
    try:
        found = holdings(journal, ledger, args.run_id or None, _recovery(args, master))
        todo = [h for h in found if h.state == "uncollected"]
        for h in todo:
            if h.receipts_up_to < h.num_rounds:
                print(
                    f"note: run {h.run_id} has receipts up to round {h.receipts_up_to} of "
                    f"{h.num_rounds}; if it is still running, what it pays after this arrives "
                    "as claimable balances: collect again when it ends"
                )
        if not todo:
            print(
                "nothing to collect: "
                + (", ".join(f"run {h.run_id} {h.state}" for h in found) or "no runs")
            )
            return 0
        steps = collect(
            journal,
            todo,
            ledger,
            args.to,
            fee,
            lambda h: h.signer(master),
            refresh=lambda h: read_holding(h, ledger, journal),
            dry_run=args.dry_run,
        )
    finally:
        ledger.close()
    if not args.dry_run:
        moved: dict[str, int] = {}
        for h in todo:
            moved[h.asset] = moved.get(h.asset, 0) + sum(
                s.amount for s in steps if s.run_id == h.run_id
            )
        for asset, amount in sorted(moved.items()):
            print(f"collected {format_amount(amount)} {asset} into {args.to}")
    return 0


def _main(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (CollectError, LedgerError, ValueError, keystore.KeystoreError) as err:
            print(f"flwr-stellar wallet: {err}", file=sys.stderr)
            return 1

    return run


def add_wallet_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    wallet = sub.add_parser(
        "wallet",
        help="a data provider's earnings across runs: list them, collect them",
        description="Every run in the node's journal (beside its keystore): what its pseudonym "
        "holds, and collecting all of it into one account with fee bumps.",
    )
    wsub = wallet.add_subparsers(dest="wallet_command", required=True)

    def verb(name: str, func: Any, help_: str) -> argparse.ArgumentParser:
        p = wsub.add_parser(name, help=help_, description=help_)
        p.add_argument("keystore", type=Path, help="the node's keystore (its journal is beside)")
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--db", type=Path, help="embedded ledger file")
        where.add_argument("--ledger", metavar="URL", help="Horizon URL of the ledger")
        p.add_argument("--network-passphrase", default="", help="for --ledger")
        p.add_argument(
            "--run-id", type=int, action="append", help="only this run (repeatable; default all)"
        )
        p.add_argument(
            "--asset",
            metavar="CODE:ISSUER",
            help="the coin of --run-id runs the journal lacks (found from the keystore alone)",
        )
        p.add_argument("--federation", default="default", help="with --asset: the node's label")
        p.add_argument(
            "--passphrase-file", type=Path, help="file holding the keystore's passphrase"
        )
        p.add_argument(
            "--passphrase-env",
            default=DEFAULT_ENV,
            help=f"environment variable with the passphrase (default {DEFAULT_ENV})",
        )
        p.set_defaults(func=_main(func))
        parser: argparse.ArgumentParser = p
        return parser

    balances = verb(
        "balances", cmd_balances, "each run's pseudonym, its coin, its state, the total"
    )
    balances.add_argument("--json", action="store_true", help="machine-readable output")
    c = verb(
        "collect",
        cmd_collect,
        "move every run's coin to --to with fee bumps, close the pseudonyms (exactly once)",
    )
    c.add_argument("--to", required=True, metavar="ADDRESS", help="account receiving the coin")
    c.add_argument(
        "--fee-secret-file", type=Path, help="file (0600) with the fee payer's S... seed"
    )
    c.add_argument("--fee-source", type=Path, help="keystore whose master account pays the fees")
    c.add_argument(
        "--fee-passphrase-env",
        default=FEE_ENV,
        help=f"environment variable with --fee-source's passphrase (default {FEE_ENV})",
    )
    c.add_argument("--dry-run", action="store_true", help="print the transactions, send nothing")
