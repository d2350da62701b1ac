"""The built-in ledger backends, each one class registered by name.

``embedded``: a Stellar-rules ledger in a local SQLite file, nothing to set up. ``horizon``: any
Horizon server through stellar_sdk (the embedded ``ledger serve``, a private network, testnet,
or pubnet once ``allow_pubnet`` says so). ``rpc``: the same networks through Stellar RPC
(``stellar_sdk.SorobanServer``), which SDF recommends over Horizon. The rules and the opening
that only one backend needs live on its class, so
:class:`~flwr_stellar.ledger.settings.LedgerSettings` holds no ``if backend == ...`` of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flwr_stellar.ledger.base import Ledger
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.ledger.networks import PRESETS
from flwr_stellar.ledger.registry import LedgerBackend, Problem, register_backend
from flwr_stellar.ledger.rpc import PUBNET_RPC_MISSING, RpcLedger

if TYPE_CHECKING:
    from flwr_stellar.ledger.settings import LedgerSettings


@register_backend("embedded")
class EmbeddedBackend(LedgerBackend):
    """The embedded ledger: ``db`` (default ``<output_dir>/ledger.db``) under its own network
    passphrase (``network_passphrase``, default the embedded one)."""

    @classmethod
    def open(cls, settings: LedgerSettings, output_dir: Path) -> Ledger:
        db = Path(settings.db).expanduser() if settings.db else output_dir / "ledger.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        return EmbeddedLedger(db, settings.network_passphrase or DEFAULT_PASSPHRASE)


class NetworkBackend(LedgerBackend):
    """What the backends for a real network (Horizon, RPC) share: a ``preset``'s per-ledger
    operation limit, and the settings every network needs (pubnet moves real money, so it needs
    ``allow_pubnet``; ``custom`` needs ``network_passphrase``) around the one for its URL."""

    @classmethod
    def url_problem(cls, settings: LedgerSettings) -> Problem:
        """The check of this backend's URL setting."""
        raise NotImplementedError

    @classmethod
    def problems(cls, settings: LedgerSettings) -> list[Problem]:
        custom = settings.preset == "custom"
        return [
            (
                "allow_pubnet",
                settings.preset != "pubnet" or settings.allow_pubnet,
                "must be True to use pubnet (real money)",
            ),
            cls.url_problem(settings),
            (
                "network_passphrase",
                not custom or bool(settings.network_passphrase),
                "must be set when preset='custom'",
            ),
        ]

    @classmethod
    def network_ops_per_ledger(cls, settings: LedgerSettings) -> int:
        preset = PRESETS.get(settings.preset)
        return (preset.ops_per_ledger or 0) if preset is not None else 0


@register_backend("horizon")
class HorizonBackend(NetworkBackend):
    """Any Horizon: a ``preset`` network (``custom`` needs ``horizon_url`` and
    ``network_passphrase``); pubnet moves real money, so it needs ``allow_pubnet``."""

    @classmethod
    def url_problem(cls, settings: LedgerSettings) -> Problem:
        return (
            "horizon_url",
            settings.preset != "custom" or bool(settings.horizon_url),
            "must be set when preset='custom'",
        )

    @classmethod
    def open(cls, settings: LedgerSettings, output_dir: Path) -> Ledger:
        if settings.preset == "custom":
            return HorizonLedger(
                settings.horizon_url,
                settings.network_passphrase,
                allow_real_money=settings.allow_pubnet,
            )
        preset = PRESETS[settings.preset]
        friendbot = preset.friendbot_url
        if settings.preset == "local" and settings.horizon_url:  # `ledger serve` elsewhere
            friendbot = settings.horizon_url.rstrip("/") + "/friendbot"  # ... and its faucet
        return HorizonLedger(
            settings.horizon_url or preset.horizon_url,
            settings.network_passphrase or preset.network_passphrase,
            friendbot_url=friendbot,
            allow_real_money=settings.allow_pubnet,
        )


@register_backend("rpc")
class RpcBackend(NetworkBackend):
    """Any Stellar RPC: a ``preset`` network's (``local`` is ``ledger serve``'s ``/rpc``,
    testnet and futurenet SDF's), or ``rpc_url``. SDF runs no public pubnet RPC, so pubnet
    needs ``rpc_url`` (a provider's) and, as it moves real money, ``allow_pubnet``;
    ``custom`` needs ``rpc_url`` and ``network_passphrase``."""

    @classmethod
    def url_problem(cls, settings: LedgerSettings) -> Problem:
        preset = PRESETS.get(settings.preset)
        has_url = bool(settings.rpc_url) or (preset is not None and preset.rpc_url is not None)
        return (
            "rpc_url",
            has_url,
            "must be set when preset='custom'"
            if settings.preset == "custom"
            else f"must be set for preset={settings.preset!r}: {PUBNET_RPC_MISSING}",
        )

    @classmethod
    def open(cls, settings: LedgerSettings, output_dir: Path) -> Ledger:
        if settings.preset == "custom":
            return RpcLedger(
                settings.rpc_url,
                settings.network_passphrase,
                allow_real_money=settings.allow_pubnet,
            )
        preset = PRESETS[settings.preset]
        url = settings.rpc_url or preset.rpc_url
        assert url is not None  # problems() refused a preset without one
        # `ledger serve` elsewhere (local with rpc_url): its getNetwork names its own faucet
        friendbot = (
            None if settings.preset == "local" and settings.rpc_url else preset.friendbot_url
        )
        return RpcLedger(
            url,
            settings.network_passphrase or preset.network_passphrase,
            friendbot_url=friendbot,
            allow_real_money=settings.allow_pubnet,
        )
