"""The Stellar networks a run can name by preset, and their faucet.

One table for every client backend: a preset is a network (its passphrase, its faucet, whether
it moves real money, its validators' per-ledger limit) and the endpoints that serve it, a
Horizon URL and a Stellar RPC URL. SDF runs public RPC for testnet and futurenet but none for
pubnet, so pubnet has no RPC URL: the operator names a provider's (``ledger.rpc_url``).
``local`` is our own ``flwr-stellar ledger serve``, which answers both APIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stellar_sdk import Network

from flwr_stellar.ledger.base import LedgerError, SubmitResult
from flwr_stellar.ledger.embedded.ledger import DEFAULT_PASSPHRASE


@dataclass(frozen=True)
class NetworkPreset:
    """One network and its public endpoints.

    Parameters
    ----------
    horizon_url : str
        Its Horizon.
    network_passphrase : str
        The passphrase envelopes are signed for.
    friendbot_url : str, optional
        Faucet for development accounts (none on pubnet).
    real_money : bool
        Pubnet: clients refuse it unless told ``allow_real_money``.
    ops_per_ledger : int, optional
        The validators' per-ledger operation limit (pacing).
    rpc_url : str, optional
        Its Stellar RPC (JSON-RPC 2.0) endpoint; None where nobody runs a public one.
    """

    horizon_url: str
    network_passphrase: str
    friendbot_url: str | None = None
    real_money: bool = False
    ops_per_ledger: int | None = None
    rpc_url: str | None = None


PRESETS = {
    "local": NetworkPreset(
        "http://127.0.0.1:8000",
        DEFAULT_PASSPHRASE,  # the embedded ledger's own network
        "http://127.0.0.1:8000/friendbot",
        rpc_url="http://127.0.0.1:8000/rpc",
    ),
    "testnet": NetworkPreset(
        "https://horizon-testnet.stellar.org",
        Network.TESTNET_NETWORK_PASSPHRASE,
        "https://friendbot.stellar.org",
        ops_per_ledger=200,
        rpc_url="https://soroban-testnet.stellar.org",
    ),
    "futurenet": NetworkPreset(
        "https://horizon-futurenet.stellar.org",
        Network.FUTURENET_NETWORK_PASSPHRASE,
        "https://friendbot-futurenet.stellar.org",
        ops_per_ledger=200,  # not published: assumed like testnet
        rpc_url="https://rpc-futurenet.stellar.org",
    ),
    "pubnet": NetworkPreset(
        "https://horizon.stellar.org",
        Network.PUBLIC_NETWORK_PASSPHRASE,
        None,
        real_money=True,
        ops_per_ledger=1000,
        rpc_url=None,  # SDF runs no public pubnet RPC: ledger.rpc_url names a provider's
    ),
}


def network_preset(name: str) -> NetworkPreset:
    """The preset called ``name``; a LedgerError naming the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise LedgerError(f"unknown network preset {name!r}; one of {tuple(PRESETS)}") from None


def refuse_pubnet(network_passphrase: str, allow_real_money: bool) -> None:
    """Raise unless pubnet (real money) was allowed explicitly; every client backend calls it.

    Raises
    ------
    LedgerError
        ``network_passphrase`` is pubnet's and ``allow_real_money`` is False.
    """
    if network_passphrase == Network.PUBLIC_NETWORK_PASSPHRASE and not allow_real_money:
        raise LedgerError(
            "refusing to use Stellar pubnet (real money) without "
            "allow_real_money=True (ledger.allow_pubnet in config)"
        )


def friendbot_fund(friendbot_url: str, account_id: str, timeout_s: float = 60) -> SubmitResult:
    """Create and fund ``account_id`` through a friendbot (testnet, futurenet, ``ledger serve``).

    A refusal (the account exists already) is a result, not an exception; a transport failure
    raises ``OSError`` (requests' errors derive from it), which the backends turn into
    ``LedgerUnavailableError``.

    Parameters
    ----------
    friendbot_url : str
        The faucet's URL; it is asked ``GET <url>?addr=<account>``.
    account_id : str
        ``G...`` strkey.
    timeout_s : float
        Seconds to wait for the faucet (its transaction must close a ledger).
    """
    import requests

    resp = requests.get(friendbot_url, params={"addr": account_id}, timeout=timeout_s)
    body: dict[str, Any] = (
        resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    )
    if resp.status_code != 200:
        codes = (body.get("extras") or {}).get("result_codes") or {}
        return SubmitResult(
            hash="",
            successful=False,
            applied=False,
            ledger=None,
            fee_charged=0,
            tx_code=codes.get("transaction", "tx_failed"),
            op_codes=tuple(codes.get("operations", ())),
        )
    return SubmitResult(
        hash=body.get("hash", ""),
        successful=True,
        applied=True,
        ledger=body.get("ledger"),
        fee_charged=0,
        tx_code="tx_success",
    )
