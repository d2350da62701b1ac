"""HorizonLedger: the Ledger protocol over stellar_sdk.Server, for any Horizon URL.

The embedded server (``flwr-stellar ledger serve``), a private network, Stellar testnet,
futurenet or pubnet: the same client code. Pubnet moves real money, so it needs an explicit
confirmation. Submissions skip the SDK's SEP-29 memo-required check (it costs one request per
destination; payouts name accounts this product created).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from stellar_sdk import Asset, Server
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.exceptions import (
    BadRequestError,
    BadResponseError,
    UnknownRequestError,
)
from stellar_sdk.exceptions import ConnectionError as SdkConnectionError
from stellar_sdk.exceptions import NotFoundError as SdkNotFound

from flwr_stellar.ledger.base import (
    AccountInfo,
    ClaimableBalanceRecord,
    LedgerError,
    LedgerUnavailableError,
    NotFoundError,
    Page,
    PaymentRecord,
    SubmitResult,
    TxRecord,
)
from flwr_stellar.ledger.horizon_json import (
    account_from_json,
    claimable_balance_from_json,
    payment_from_json,
    tx_from_json,
)
from flwr_stellar.ledger.networks import PRESETS as PRESETS  # re-export
from flwr_stellar.ledger.networks import NetworkPreset as NetworkPreset  # re-export
from flwr_stellar.ledger.networks import friendbot_fund, network_preset, refuse_pubnet
from flwr_stellar.ledger.params import parse_asset

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _transport(method: _Method) -> _Method:
    """Every transport failure becomes LedgerUnavailableError, the Ledger protocol's one
    "outcome unknown" error (stellar_sdk's ConnectionError is not an OSError)."""

    @functools.wraps(method)
    def wrapped(self: HorizonLedger, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (SdkConnectionError, BadResponseError, UnknownRequestError) as err:
            raise LedgerUnavailableError(f"{self.location}: {_detail(err)}") from None
        except (KeyError, TypeError, ValueError) as err:  # an answer we cannot read
            raise LedgerUnavailableError(f"{self.location}: malformed answer ({err!r})") from None
        except OSError as err:  # requests' own errors (friendbot) derive from it
            raise LedgerUnavailableError(f"{self.location}: {err}") from None

    return wrapped  # type: ignore[return-value]


class HorizonLedger:
    """The :class:`~flwr_stellar.ledger.base.Ledger` protocol over stellar_sdk's ``Server``, for
    any Horizon: ``ledger serve``, a private network, testnet, pubnet.

    Parameters
    ----------
    horizon_url : str
        Base URL of the Horizon API.
    network_passphrase : str
        The network envelopes are signed for.
    friendbot_url : str, optional
        Faucet for :meth:`fund` on development networks.
    allow_real_money : bool
        Must be True for pubnet.
    timeout : int
        Seconds per HTTP request.
    """

    def __init__(
        self,
        horizon_url: str,
        network_passphrase: str,
        *,
        friendbot_url: str | None = None,
        allow_real_money: bool = False,
        timeout: int = 30,
    ) -> None:
        refuse_pubnet(network_passphrase, allow_real_money)
        # A retried POST is harmless on Stellar: the same signed envelope (same sequence
        # number) can be applied at most once.
        client = RequestsClient(request_timeout=timeout, post_timeout=float(timeout))
        self.server = Server(horizon_url, client=client)
        self._passphrase = network_passphrase
        self.friendbot_url = friendbot_url

    @classmethod
    def preset(cls, name: str, **kw: Any) -> HorizonLedger:
        p = network_preset(name)
        return cls(p.horizon_url, p.network_passphrase, friendbot_url=p.friendbot_url, **kw)

    @property
    def network_passphrase(self) -> str:
        return self._passphrase

    @property
    def location(self) -> str:
        return str(self.server.horizon_url)

    def close(self) -> None:
        self.server.close()

    @_transport
    def history_begins(self) -> int | None:
        """From the root's ``history_elder_ledger``: None when this Horizon holds history from
        the network's first ledgers (SDF's do), else that ledger's close time."""
        elder = int(self._call(self.server.root()).get("history_elder_ledger") or 0)
        if elder <= 2:  # ledger 1 is genesis, which holds no transactions
            return None
        closed = self._call(self.server.ledgers().ledger(elder))["closed_at"]
        return int(datetime.fromisoformat(str(closed).replace("Z", "+00:00")).timestamp())

    def _call(self, builder: Any) -> dict[str, Any]:
        try:
            return builder.call()  # type: ignore[no-any-return]
        except SdkNotFound as err:
            raise NotFoundError(_detail(err)) from None
        except BadRequestError as err:
            raise LedgerError(_detail(err), status=err.status) from None

    @_transport
    def load_account(self, account_id: str) -> AccountInfo:
        return account_from_json(self._call(self.server.accounts().account_id(account_id)))

    @_transport
    def submit(self, envelope_xdr: str) -> SubmitResult:
        try:
            resp = self.server.submit_transaction(envelope_xdr, skip_memo_required_check=True)
        except BadRequestError as err:
            extras = err.extras or {}
            codes = extras.get("result_codes") or {}
            if not codes:
                raise LedgerError(_detail(err), status=err.status) from None
            tx_code = codes.get("transaction", "tx_failed")
            inner = str(codes.get("inner_transaction", ""))
            failed_in_ledger = tx_code == "tx_failed" or (
                tx_code == "tx_fee_bump_inner_failed" and inner == "tx_failed"
            )
            return SubmitResult(
                hash=str(extras.get("hash", "")),
                successful=False,
                applied=bool(
                    extras.get("applied", failed_in_ledger)
                    and "op_bad_auth" not in codes.get("operations", ())
                ),
                inner_tx_code=inner,
                ledger=None,
                fee_charged=int(extras.get("fee_charged", 0) or 0),
                tx_code=tx_code,
                op_codes=tuple(codes.get("operations", ())),
                envelope_xdr=envelope_xdr,
                result_xdr=str(extras.get("result_xdr", "")),
            )
        return SubmitResult(
            hash=resp["hash"],
            successful=bool(resp.get("successful", True)),
            applied=True,
            ledger=int(resp["ledger"]),
            fee_charged=int(resp.get("fee_charged", 0)),
            tx_code="tx_fee_bump_inner_success" if "inner_transaction" in resp else "tx_success",
            inner_tx_code="tx_success" if "inner_transaction" in resp else "",
            op_codes=(),
            envelope_xdr=envelope_xdr,
            result_xdr=resp.get("result_xdr", ""),
        )

    @_transport
    def transaction(self, tx_hash: str) -> TxRecord:
        return tx_from_json(self._call(self.server.transactions().transaction(tx_hash)))

    def _paged(
        self, builder: Any, cursor: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        if cursor:
            builder = builder.cursor(cursor)
        records = self._call(builder.limit(limit).order(desc=order == "desc"))["_embedded"][
            "records"
        ]
        return records, (records[-1]["paging_token"] if records else cursor)

    @_transport
    def account_transactions(
        self, account_id: str, *, cursor: str | None = None, limit: int = 10, order: str = "asc"
    ) -> Page[TxRecord]:
        records, nxt = self._paged(
            self.server.transactions().for_account(account_id), cursor, limit, order
        )
        return Page(tuple(tx_from_json(r) for r in records), nxt)

    @_transport
    def account_payments(
        self, account_id: str, *, cursor: str | None = None, limit: int = 10, order: str = "asc"
    ) -> Page[PaymentRecord]:
        records, nxt = self._paged(
            self.server.payments().for_account(account_id), cursor, limit, order
        )
        kinds = ("payment", "create_account")
        return Page(tuple(payment_from_json(r) for r in records if r["type"] in kinds), nxt)

    @_transport
    def holders(
        self, asset: str, *, cursor: str | None = None, limit: int = 10
    ) -> Page[AccountInfo]:
        """Accounts trusting exactly ``asset``; a malformed one is a LedgerError (bad input),
        not a ValueError that ``_transport`` would report as an unreadable answer."""
        code, issuer = parse_asset(asset)
        builder = self.server.accounts().for_asset(Asset(code, issuer))
        records, _ = self._paged(builder, cursor, limit, "asc")
        accounts = tuple(account_from_json(r) for r in records)
        return Page(accounts, accounts[-1].account_id if accounts else cursor)

    @_transport
    def claimable_balances(
        self,
        *,
        claimant: str | None = None,
        sponsor: str | None = None,
        cursor: str | None = None,
        limit: int = 10,
    ) -> Page[ClaimableBalanceRecord]:
        if claimant is None and sponsor is None:
            raise LedgerError("claimable balances are listed by claimant or sponsor")
        builder = self.server.claimable_balances()
        if claimant is not None:
            builder = builder.for_claimant(claimant)
        if sponsor is not None:
            builder = builder.for_sponsor(sponsor)
        records, nxt = self._paged(builder, cursor, limit, "asc")
        return Page(tuple(claimable_balance_from_json(r) for r in records), nxt)

    @_transport
    def fund(self, account_id: str) -> SubmitResult:
        if not self.friendbot_url:
            raise LedgerError("this network has no friendbot: fund the account yourself")
        return friendbot_fund(self.friendbot_url, account_id)


def _detail(err: Any) -> str:
    body = getattr(err, "message", None) or getattr(err, "detail", None) or str(err)
    return str(body)
