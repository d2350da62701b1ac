"""One run's payment machinery, opened before round 1 and closed after the last.

It opens the ledger, unlocks the treasury, settles whatever an earlier process left in the outbox,
makes sure the distributor holds the run's budget, and starts the anchoring worker; at the end it
waits for every round to be anchored and reads each pseudonym's balance back from the ledger, so
the run reports what the ledger says, not what the server meant to pay.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from logging import INFO
from pathlib import Path
from typing import Any

from flwr.common.logger import log
from rich.console import Console
from rich.table import Table

from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import Ledger, LedgerUnavailableError, NotFoundError
from flwr_stellar.ledger.decode import claimable_for
from flwr_stellar.ledger.settings import LedgerSettings
from flwr_stellar.payments.anchoring import SETTLE_TIMEOUT_S, Anchorer
from flwr_stellar.payments.manifest import MANIFEST_DIR, ManifestStore, RoundManifest
from flwr_stellar.payments.outbox import Outbox
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.payments.treasury import Treasury, open_treasury, prepare


@dataclass
class PayoutReport:
    """What the ledger holds after the run, beside what the manifests owe.

    Parameters
    ----------
    ledger : dict
        Backend location and network passphrase.
    asset : str
        ``CODE:ISSUER`` of the coin.
    anchors : dict
        Per round: manifest hash, transaction hashes, stroops paid, problems.
    rewards : dict
        Per pseudonym: ``owed_stroops`` (manifests) and ``balance_stroops`` (ledger).
    """

    ledger: dict[str, str]
    asset: str
    anchors: dict[str, dict[str, Any]] = field(default_factory=dict)
    rewards: dict[str, dict[str, int | None]] = field(default_factory=dict)
    pending_rounds: list[int] = field(default_factory=list)
    unavailable: str = ""  # why balances could not be read back, if they could not

    @property
    def settled(self) -> bool:
        """Every round anchored without a problem, every pseudonym holding what it is owed."""
        return (
            not self.pending_rounds
            and not self.unavailable
            and all(not a["problems"] for a in self.anchors.values())
            and all(r["owed_stroops"] == r["balance_stroops"] for r in self.rewards.values())
        )

    def render(self) -> str:
        """Each round's anchor and each pseudonym's coins: owed by the manifests vs. held."""
        anchors = Table(title="rounds on the ledger", title_justify="left")
        for header in ("round", "manifest (MemoHash)", "transactions", "paid", "problems"):
            anchors.add_column(header)
        for server_round, a in self.anchors.items():
            anchors.add_row(
                server_round,
                a["manifest"][:16] + "…",
                " ".join(h[:10] + "…" for h in a["transactions"]),
                format_amount(a["paid_stroops"]),
                "; ".join(a["problems"]) or "-",
            )
        code = self.asset.split(":")[0]
        rewards = Table(
            title=f"{code} per pseudonym (read back from the ledger)", title_justify="left"
        )
        for header in ("pseudonym", "owed (manifests)", "balance (ledger)", "match"):
            rewards.add_column(header)
        owed_total = held_total = 0
        for pseudonym, r in self.rewards.items():
            owed, held = r["owed_stroops"] or 0, r["balance_stroops"]
            owed_total += owed
            held_total += held or 0
            rewards.add_row(
                pseudonym[:10] + "…" + pseudonym[-4:],
                format_amount(owed),
                "unknown" if held is None else format_amount(held),
                "?" if held is None else "yes" if owed == held else "NO",
            )
        rewards.add_row("total", format_amount(owed_total), format_amount(held_total), "")
        buf = io.StringIO()
        console = Console(file=buf, width=110, force_terminal=False, color_system=None)
        console.print(anchors)
        console.print(rewards)
        console.print(f"ledger: {self.ledger.get('location', '?')}")
        if self.unavailable:
            console.print(f"ledger unavailable at the end of the run: {self.unavailable}")
        if self.pending_rounds:
            console.print(
                f"{len(self.pending_rounds)} round(s) pending in the outbox "
                f"({', '.join(map(str, self.pending_rounds))}): settle them with "
                "`flwr-stellar payouts settle <output_dir>` once the ledger is back"
            )
        return "\n" + buf.getvalue()

    def as_dict(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger,
            "asset": self.asset,
            "anchors": self.anchors,
            "rewards": self.rewards,
            "pending_rounds": self.pending_rounds,
            "settled": self.settled,
        }


class PaymentSession:
    """Ledger, treasury, outbox and anchoring worker of one run.

    Parameters
    ----------
    ledger_settings : LedgerSettings
        Which ledger.
    reward : RewardSettings
        Coin, budget, onboarding, treasury keystore.
    output_dir : Path
        Holds ``manifests/``, ``outbox.db`` and, by default, ``ledger.db`` and a dev treasury.
    num_rounds : int
        The distributor is topped up to ``num_rounds`` x the round budget before round 1.
    """

    def __init__(
        self,
        ledger_settings: LedgerSettings,
        reward: RewardSettings,
        output_dir: Path,
        num_rounds: int,
        settle_timeout: float = SETTLE_TIMEOUT_S,
    ) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        self.settle_timeout = settle_timeout
        self.output_dir = output_dir
        self.backend = ledger_settings.backend
        self.ledger: Ledger = ledger_settings.open(output_dir)
        try:
            self.treasury: Treasury = open_treasury(reward, output_dir)
            self.outbox = Outbox(output_dir / "outbox.db")
        except BaseException:
            self.ledger.close()
            raise
        self.anchorer = Anchorer(
            lambda: ledger_settings.open(output_dir),
            self.treasury,
            self.outbox,
            ManifestStore(output_dir / MANIFEST_DIR),
            pacer=ledger_settings.pacer(),
            fee=ledger_settings.fee_bid(),
            claimable=reward.payout == "claimable",
            reclaim_after_s=reward.reclaim_after_s,
        )
        self._owed: dict[str, int] = {}
        self._closed = False
        try:
            self.anchorer.journal_stored(self.ledger)
            leftovers = self.outbox.unfinished()
            if leftovers:  # a previous server process died with payments in flight
                log(INFO, "outbox: settling %d entries left by an earlier process", len(leftovers))
                self.anchorer.settle_all(self.ledger, timeout=settle_timeout)
            prepare(self.ledger, self.treasury, reward, reward.budget_stroops * num_rounds)
            self.anchorer.start()
        except BaseException:
            self.close()
            raise
        log(
            INFO,
            "flwr-stellar: ledger %s; reward asset %s; outputs in %s",
            self.ledger.location,
            self.treasury.asset_id,
            output_dir,
        )

    def submit_round(self, manifest: RoundManifest) -> str:
        """Store and journal the round now (durable); the worker submits it in the background."""
        for pseudonym, amount in manifest.payments():
            self._owed[pseudonym] = self._owed.get(pseudonym, 0) + amount
        return self.anchorer.submit_round(manifest)

    def finish(self) -> PayoutReport:
        """Wait for the worker, then read every paid pseudonym's balance from the ledger."""
        self.anchorer.drain(self.settle_timeout)
        asset = self.treasury.asset_id
        report = PayoutReport(
            ledger={
                "backend": self.backend,
                "location": self.ledger.location,
                "network_passphrase": self.ledger.network_passphrase,
            },
            asset=asset,
        )
        report.pending_rounds = sorted({e.server_round for e in self.outbox.unfinished()})
        for pseudonym in sorted(self._owed):
            balance: int | None
            try:
                waiting = sum(  # what this run's distributor left it, that it can take now
                    b.amount
                    for b in claimable_for(self.ledger, pseudonym, asset, now=int(time.time()))
                    if b.sponsor == self.treasury.distributor.public_key
                )
                balance = waiting + self.ledger.load_account(pseudonym).balance(asset)
            except NotFoundError:
                balance = waiting
            except LedgerUnavailableError as err:
                balance, report.unavailable = None, str(err)
            report.rewards[pseudonym] = {
                "owed_stroops": self._owed[pseudonym],
                "balance_stroops": balance,
            }
        for server_round, a in sorted(self.anchorer.anchored.items()):
            report.anchors[str(server_round)] = {
                "manifest": a.manifest_hash,
                "transactions": list(a.tx_hashes),
                "paid_stroops": a.paid,
                "problems": list(a.failed)
                + ([f"{a.pending} transaction(s) pending"] if a.pending else []),
            }
        return report

    def close(self) -> None:
        """Idempotent; after a failed run it still lets the worker finish what it holds."""
        if self._closed:
            return
        self._closed = True
        try:
            self.anchorer.drain()
        except Exception as err:  # already logged by the worker; the outbox keeps the rest
            log(INFO, "anchoring left work in the outbox (%s); the next start settles it", err)
        self.outbox.close()
        self.ledger.close()
