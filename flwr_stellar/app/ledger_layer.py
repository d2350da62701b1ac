"""Sets up the ledger layer of a run (ledger, treasury, outbox, anchoring worker) and reads
the run's rewards back from the ledger at the end."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from logging import INFO
from pathlib import Path
from typing import Any

from flwr.common.logger import log
from flwr.serverapp.strategy import Strategy

from flwr_stellar.app.config import AppConfig
from flwr_stellar.ledger.base import Ledger, NotFoundError
from flwr_stellar.ledger.factory import describe, open_ledger
from flwr_stellar.payments.amounts import parse_amount
from flwr_stellar.payments.anchoring import Anchorer
from flwr_stellar.payments.manifest import ManifestStore
from flwr_stellar.payments.outbox import Outbox
from flwr_stellar.payments.treasury import open_treasury, prepare
from strategies.ledger_strategy import LedgerStrategy


def config_hash(run_config: dict[str, Any]) -> str:
    text = json.dumps(run_config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class LedgerLayer:
    strategy: LedgerStrategy
    ledger: Ledger
    anchorer: Anchorer
    outbox: Outbox

    @classmethod
    def open(cls, cfg: AppConfig, inner: Strategy, out: Path) -> LedgerLayer:
        ledger = open_ledger(cfg.ledger, out)
        treasury = open_treasury(cfg.reward, out)
        outbox = Outbox(out / "outbox.db")
        anchorer = Anchorer(
            lambda: open_ledger(cfg.ledger, out), treasury, outbox, ManifestStore(out / "manifests")
        )
        leftovers = outbox.unfinished()
        if leftovers:  # a previous server process died with payments in flight
            log(INFO, "outbox: settling %d entries left by an earlier process", len(leftovers))
            anchorer.settle_all(ledger)
        per_round = parse_amount(cfg.reward.budget_per_round) or 0
        prepare(ledger, treasury, cfg.reward, per_round * cfg.num_rounds)
        screening = cfg.screening
        if screening.max_num_examples == 0 and cfg.dataset.max_train_examples > 0:
            screening = replace(screening, max_num_examples=cfg.dataset.max_train_examples)
        strategy = LedgerStrategy(
            inner,
            ledger=ledger,
            treasury=treasury,
            anchorer=anchorer,
            reward=cfg.reward,
            screening=screening,
            config_hash=config_hash(cfg.to_run_config()),
        )
        anchorer.start()
        log(INFO, "ledger: %s; reward asset %s", describe(ledger)["location"], treasury.asset_id)
        return cls(strategy, ledger, anchorer, outbox)

    def finish(self) -> dict[str, Any]:
        """Wait for the anchoring worker, then read every pseudonym's balance from the ledger."""
        self.anchorer.drain()
        s = self.strategy
        owed: dict[str, int] = {}
        for outcome in s.outcomes.values():
            for pseudonym, payout in outcome.payouts.items():
                owed[pseudonym] = owed.get(pseudonym, 0) + payout
        balances = {}
        for pseudonym in sorted(owed):
            try:
                balances[pseudonym] = self.ledger.load_account(pseudonym).balance(
                    s.treasury.asset_id
                )
            except NotFoundError:
                balances[pseudonym] = 0
        anchors = {
            str(r): {
                "manifest": a.manifest_hash,
                "transactions": list(a.tx_hashes),
                "paid_stroops": a.paid,
                "problems": list(a.failed),
            }
            for r, a in sorted(self.anchorer.anchored.items())
        }
        return {
            "ledger": describe(self.ledger),
            "asset": s.treasury.asset_id,
            "anchors": anchors,
            "rewards": {
                p: {"owed_stroops": owed[p], "balance_stroops": balances[p]} for p in sorted(owed)
            },
        }

    def close(self) -> None:
        """Idempotent; after a failed run it still lets the worker finish what it holds."""
        try:
            self.anchorer.drain()
        except Exception as err:  # already logged by the worker; the outbox keeps the rest
            log(INFO, "anchoring left work in the outbox (%s); the next start settles it", err)
        self.outbox.close()
        close = getattr(self.ledger, "close", None)
        if close is not None:
            close()
