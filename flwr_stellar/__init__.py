"""flwr-stellar: accountable federated learning for Flower on a Stellar ledger.

Client side (any ClientApp)::

    from flwr_stellar import onboarding_reply, signing_mod
    app = ClientApp(mods=[signing_mod])
    app.query("onboard")(onboarding_reply)

Server side (any ServerApp)::

    from flwr_stellar import LedgerConfig, LedgerStrategy
    strategy = LedgerStrategy.wrap(FedAvg(), config=LedgerConfig(output_dir="outputs/ledger"))
    result = strategy.start(grid=grid, initial_arrays=arrays, num_rounds=3)

The strategy wrappers live in the ``strategies`` package; they are re-exported here, loaded on
first use, so that importing the client wrapper does not pull in the server side.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flwr_stellar.client.identity import DEV_PASSPHRASE, NodeSettings
from flwr_stellar.client.mod import signing_mod
from flwr_stellar.client.onboarding import onboarding_reply
from flwr_stellar.client.privacy import without_ledger_records
from flwr_stellar.ledger.base import Ledger, LedgerError, NotFoundError
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.ledger.settings import LedgerSettings
from flwr_stellar.payments.session import PayoutReport
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.privacy import PrivacySettings
from flwr_stellar.reasons import Reason

if TYPE_CHECKING:
    from strategies.intake import IntakeSettings
    from strategies.ledger_strategy import LedgerConfig, LedgerStrategy
    from strategies.scoring import Scorer
    from strategies.screening import Check, ReplyCheck, Screening, ScreeningStrategy, default_checks
    from strategies.verified import VerifiedStrategy

_STRATEGIES = {
    "LedgerConfig": "strategies.ledger_strategy",
    "LedgerStrategy": "strategies.ledger_strategy",
    "Check": "strategies.screening",
    "IntakeSettings": "strategies.intake",
    "ReplyCheck": "strategies.screening",
    "Scorer": "strategies.scoring",
    "Screening": "strategies.screening",
    "ScreeningStrategy": "strategies.screening",
    "default_checks": "strategies.screening",
    "VerifiedStrategy": "strategies.verified",
}

__all__ = [
    "DEV_PASSPHRASE",
    "Check",
    "EmbeddedLedger",
    "HorizonLedger",
    "IntakeSettings",
    "Ledger",
    "LedgerConfig",
    "LedgerError",
    "LedgerSettings",
    "LedgerStrategy",
    "NodeSettings",
    "NotFoundError",
    "PayoutReport",
    "PrivacySettings",
    "Reason",
    "ReplyCheck",
    "RewardSettings",
    "Scorer",
    "Screening",
    "ScreeningStrategy",
    "VerifiedStrategy",
    "default_checks",
    "onboarding_reply",
    "signing_mod",
    "without_ledger_records",
]


def __getattr__(name: str) -> Any:
    """Load a strategy wrapper on first use (PEP 562)."""
    module = _STRATEGIES.get(name)
    if module is None:
        raise AttributeError(f"module 'flwr_stellar' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
