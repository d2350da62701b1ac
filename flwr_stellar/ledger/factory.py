"""Open the ledger a run config names: the embedded one, or any Horizon (preset or URL)."""

from __future__ import annotations

from pathlib import Path

from flwr_stellar.app.config import LedgerConfig
from flwr_stellar.ledger.base import Ledger, LedgerError
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.horizon import PRESETS, HorizonLedger


def open_ledger(cfg: LedgerConfig, output_dir: Path) -> Ledger:
    if cfg.backend == "embedded":
        db = Path(cfg.db).expanduser() if cfg.db else output_dir / "ledger.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        return EmbeddedLedger(db, cfg.network_passphrase or DEFAULT_PASSPHRASE)
    if cfg.preset == "custom":
        if not cfg.horizon_url or not cfg.network_passphrase:
            raise LedgerError(
                "ledger.preset=custom needs ledger.horizon_url and ledger.network_passphrase"
            )
        return HorizonLedger(
            cfg.horizon_url, cfg.network_passphrase, allow_real_money=cfg.allow_pubnet
        )
    preset = PRESETS[cfg.preset]
    friendbot = preset.friendbot_url
    if cfg.preset == "local" and cfg.horizon_url:  # `ledger serve` elsewhere: its own faucet
        friendbot = cfg.horizon_url.rstrip("/") + "/friendbot"
    return HorizonLedger(
        cfg.horizon_url or preset.horizon_url,
        cfg.network_passphrase or preset.network_passphrase,
        friendbot_url=friendbot,
        allow_real_money=cfg.allow_pubnet,
    )


def describe(ledger: Ledger) -> dict[str, str]:
    """What metrics.json records about the run's ledger."""
    if isinstance(ledger, EmbeddedLedger):
        return {
            "backend": "embedded",
            "location": ledger.store.path,
            "network_passphrase": ledger.network_passphrase,
        }
    assert isinstance(ledger, HorizonLedger)
    return {
        "backend": "horizon",
        "location": str(ledger.server.horizon_url),
        "network_passphrase": ledger.network_passphrase,
    }
