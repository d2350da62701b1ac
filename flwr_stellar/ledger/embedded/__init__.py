"""The embedded Stellar-rules ledger (SQLite state, one operation a module under ops/)."""

from flwr_stellar.ledger.embedded.ledger import (
    DEFAULT_PASSPHRASE,
    ChainError,
    Congestion,
    EmbeddedLedger,
)

__all__ = ["DEFAULT_PASSPHRASE", "ChainError", "Congestion", "EmbeddedLedger"]
