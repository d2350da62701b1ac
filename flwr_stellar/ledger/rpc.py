"""RpcLedger: the Ledger protocol over Stellar RPC (JSON-RPC 2.0), through stellar_sdk's
``SorobanServer``.

SDF calls Horizon deprecated in favour of Stellar RPC, so a run must be able to pay and be
audited through RPC alone. RPC is not Horizon: it keeps only a window of recent history
(about 7 days on SDF's servers), it has no per-account indexes, and it answers submissions
asynchronously. This client maps it onto the same protocol, so the anchoring worker's
outbox, pacing and outage handling work unchanged:

* ``submit`` = ``sendTransaction``, then ``getTransaction`` until the transaction is in a
  ledger. ``PENDING``/``DUPLICATE`` -> poll; ``ERROR`` -> the codes Horizon reports for the
  same envelope, read from ``errorResultXdr``; a ``tx_bad_seq`` for a transaction that is
  already in a ledger returns that transaction's outcome (Horizon's safe resubmission);
  ``TRY_AGAIN_LATER`` or never reaching a ledger -> LedgerCongestedError. Connection errors,
  timeouts, HTTP 5xx, JSON-RPC server errors and unreadable answers -> LedgerUnavailableError.
* ``load_account`` = ``getLedgerEntries`` (the account and its trustlines).
* ``transaction`` = ``getTransaction``.
* History (``account_transactions``, ``account_payments``, ``claimable_balances``) = a scan of
  ``getTransactions`` over the retention window, decoding each envelope and result with
  stellar_sdk. Its cost is the whole window's traffic, not the account's: one request per
  200 transactions of the network. Nothing older than the window is seen
  (:meth:`RpcLedger.history_window` says which ledgers are).
* ``holders`` cannot be answered (RPC has no index of trustlines by asset): LedgerError.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stellar_sdk import Asset, Keypair, SorobanServer, StrKey
from stellar_sdk import SignerKey as SdkSignerKey
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.client.response import Response
from stellar_sdk.exceptions import (
    BadResponseError,
    SorobanRpcErrorResponse,
    UnknownRequestError,
)
from stellar_sdk.exceptions import ConnectionError as SdkConnectionError
from stellar_sdk.soroban_rpc import (
    GetTransactionResponse,
    GetTransactionStatus,
    SendTransactionStatus,
)
from stellar_sdk.soroban_rpc import Transaction as RpcTransaction

from flwr_stellar.ledger.base import (
    NATIVE,
    AccountInfo,
    Balance,
    ClaimableBalanceRecord,
    LedgerCongestedError,
    LedgerError,
    LedgerUnavailableError,
    NotFoundError,
    Page,
    PaymentRecord,
    SubmitResult,
    TxRecord,
)
from flwr_stellar.ledger.embedded.ops.xdr_util import account_id as xdr_account
from flwr_stellar.ledger.embedded.ops.xdr_util import asset_string, muxed_id, transaction_of
from flwr_stellar.ledger.networks import friendbot_fund, network_preset, refuse_pubnet
from flwr_stellar.ledger.params import parse_asset, parse_uint
from flwr_stellar.ledger.result_codes import ResultCodes, decode_result

SCAN_PAGE = 200  # getTransactions' largest page (Stellar RPC's limit)
HTTP_RETRIES = 3  # stellar_sdk's retries of a refused connection, 429, 503, 504 (with backoff)
MAX_KEYS = 200  # getLedgerEntries keys per request (Stellar RPC's limit)
POLL_TIMEOUT_S = 60.0  # a sent transaction not in a ledger by then: congestion
POLL_START_S, POLL_CAP_S = 0.1, 1.0  # getTransaction polling: first pause, longest pause
PUBNET_RPC_MISSING = (
    "SDF runs no public Stellar RPC for pubnet: set ledger.rpc_url to a provider's endpoint"
)


def toid(ledger: int, application_order: int, op_index: int = 0) -> int:
    """Horizon's total order id (ledger, transaction, operation): the paging token of
    transactions and the id of operations, and the cursor Stellar RPC pages by."""
    return (ledger << 32) | (application_order << 12) | op_index


@dataclass(frozen=True)
class HistoryWindow:
    """The ledgers whose transactions an RPC server still holds (``oldestLedger`` to
    ``latestLedger``, both inclusive).

    Parameters
    ----------
    oldest, latest : int
        Ledger sequence numbers.
    """

    oldest: int
    latest: int

    def holds(self, ledger: int) -> bool:
        return self.oldest <= ledger <= self.latest

    def __str__(self) -> str:
        return f"ledgers {self.oldest}..{self.latest}"


@dataclass(frozen=True)
class _Decoded:
    """One transaction from RPC, read once: the record and what the history views need."""

    record: TxRecord
    participants: frozenset[str]
    payments: tuple[PaymentRecord, ...] = ()
    claimables: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (id, sponsor, claimants)
    trusts: tuple[tuple[str, str], ...] = ()  # (account, asset) of each ChangeTrust


# Assets whose trustlines load_account asks for, by network passphrase: every asset named by an
# envelope this process submitted, and those found in an account's own ChangeTrust history.
# Process-wide because backends open a fresh ledger per task (the anchoring worker's factory).
_KNOWN_ASSETS: dict[str, set[str]] = collections.defaultdict(set)
# (network, account) -> (first ledger not yet scanned for its ChangeTrusts, the assets found)
_TRUST_SCANS: dict[tuple[str, str], tuple[int, set[str]]] = {}
_CACHE_LOCK = threading.Lock()

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _transport(method: _Method) -> _Method:
    """Every transport failure becomes LedgerUnavailableError ("outcome unknown"), so the
    outbox settles by hash; JSON-RPC request errors (bad parameters, a method the server
    lacks) are LedgerError: asking again will not help."""

    @functools.wraps(method)
    def wrapped(self: RpcLedger, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except LedgerError:
            raise
        except SorobanRpcErrorResponse as err:
            detail = f"{self.location}: JSON-RPC error {err.code}: {err.message or ''}".strip()
            if err.code == -32601:
                raise LedgerError(f"{detail} (this RPC server lacks the method)") from None
            if err.code == -32603 or -32099 <= err.code <= -32000:
                raise LedgerUnavailableError(detail) from None
            raise LedgerError(detail) from None
        except (SdkConnectionError, BadResponseError, UnknownRequestError) as err:
            text = getattr(err, "message", None) or str(err)
            raise LedgerUnavailableError(f"{self.location}: {text}") from None
        except (KeyError, TypeError, ValueError, AssertionError) as err:  # an unreadable answer
            raise LedgerUnavailableError(f"{self.location}: malformed answer ({err!r})") from None
        except OSError as err:  # requests' own errors (friendbot) derive from it
            raise LedgerUnavailableError(f"{self.location}: {err}") from None

    return wrapped  # type: ignore[return-value]


class _StatusClient(RequestsClient):
    """stellar_sdk's HTTP client, but an HTTP error status is an error: SorobanServer reads
    any JSON body as a JSON-RPC answer, so a proxy's 502 page or a Horizon 404 would
    otherwise come back as a confusing validation error."""

    def post(
        self,
        url: str,
        data: dict[str, str] | None = None,
        json_data: dict[str, Any] | None = None,
    ) -> Response:
        resp = super().post(url, data=data, json_data=json_data)
        if resp.status_code >= 500:
            raise LedgerUnavailableError(f"{url}: HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise LedgerError(
                f"{url}: HTTP {resp.status_code}: not a Stellar RPC endpoint? (an RPC URL "
                "answers JSON-RPC POSTs, e.g. https://soroban-testnet.stellar.org or "
                "`ledger serve`'s http://127.0.0.1:8000/rpc)",
                status=resp.status_code,
            )
        return resp


class RpcLedger:
    """The :class:`~flwr_stellar.ledger.base.Ledger` protocol over Stellar RPC, for any
    network: ``ledger serve``'s ``/rpc``, testnet, futurenet, a provider's pubnet RPC.

    Parameters
    ----------
    rpc_url : str
        The JSON-RPC endpoint (``POST``).
    network_passphrase : str, optional
        The network envelopes are signed for; None asks the server (``getNetwork``) the first
        time it is needed (reading only: a backend that signs always names it).
    friendbot_url : str, optional
        Faucet for :meth:`fund`; None asks the server's ``getNetwork`` for its own.
    allow_real_money : bool
        Must be True for pubnet (default: False).
    timeout : int
        Seconds per HTTP request (default: 30).
    poll_timeout_s : float
        How long :meth:`submit` waits for a sent transaction to reach a ledger before it
        reports congestion (default: 60).
    assets : iterable of str
        ``CODE:ISSUER`` assets whose trustlines :meth:`load_account` reads besides those
        this process has seen (default: none).
    """

    def __init__(
        self,
        rpc_url: str,
        network_passphrase: str | None = None,
        *,
        friendbot_url: str | None = None,
        allow_real_money: bool = False,
        timeout: int = 30,
        poll_timeout_s: float = POLL_TIMEOUT_S,
        assets: Iterable[str] = (),
    ) -> None:
        if not rpc_url.startswith(("http://", "https://")):
            raise LedgerError(f"an RPC URL must be http(s), got {rpc_url!r}")
        if network_passphrase is not None:
            refuse_pubnet(network_passphrase, allow_real_money)
        # A retried POST is harmless: the same signed envelope can be applied at most once.
        client = _StatusClient(
            num_retries=HTTP_RETRIES, request_timeout=timeout, post_timeout=float(timeout)
        )
        self.server = SorobanServer(rpc_url, client=client)
        self._passphrase = network_passphrase
        self._named = network_passphrase is not None  # reads check it (see _check_reads)
        self._state_at = 0  # the newest ledger account state was read at (getLedgerEntries)
        self._allow_real_money = allow_real_money
        self._network_checked = False
        self.friendbot_url = friendbot_url
        self.poll_timeout_s = poll_timeout_s
        self._extra_assets = {f"{c}:{i}" for c, i in map(parse_asset, assets)}

    @classmethod
    def preset(cls, name: str, rpc_url: str = "", **kw: Any) -> RpcLedger:
        """The RPC of a network preset (``local``, ``testnet``, ``futurenet``, ``pubnet``);
        ``rpc_url`` overrides the preset's, and is required for pubnet."""
        p = network_preset(name)
        url = rpc_url or p.rpc_url
        if not url:
            raise LedgerError(PUBNET_RPC_MISSING)
        return cls(url, p.network_passphrase, friendbot_url=p.friendbot_url, **kw)

    # ------------------------------------------------------------------ identity
    @property
    def network_passphrase(self) -> str:
        if self._passphrase is None:
            self._passphrase = self._server_passphrase()
        return self._passphrase

    @property
    def location(self) -> str:
        return str(self.server.server_url)

    def close(self) -> None:
        self.server.close()

    @_transport
    def _server_passphrase(self) -> str:
        return str(self.server.get_network().passphrase)

    def _check_network(self) -> None:
        """Before anything is signed or funded: the server must serve our network, and pubnet
        only when allowed (also when the passphrase came from the server itself)."""
        if self._network_checked:
            return
        theirs = self._server_passphrase()
        if self._passphrase is None:
            self._passphrase = theirs
        if theirs != self._passphrase:
            raise LedgerError(
                f"{self.location} serves the network {theirs!r}, not {self._passphrase!r}"
            )
        refuse_pubnet(theirs, self._allow_real_money)
        self._network_checked = True

    def _check_reads(self) -> None:
        """Reads check the network too, once, when one was named: another network's server
        answers NOT_FOUND for our hashes and some other sequence for our distributor, which
        the anchoring worker would take for "never applied" and rebuild (paying twice once
        pointed back). A reader that named none (an audit) reads the server's own."""
        if self._named and not self._network_checked:
            self._check_network()

    @_transport
    def history_window(self) -> HistoryWindow:
        """The ledgers this server holds transactions for (``getHealth``): history views see
        these and nothing older."""
        self._check_reads()
        health = self.server.get_health()
        return HistoryWindow(int(health.oldest_ledger), int(health.latest_ledger))

    @_transport
    def history_begins(self) -> int | None:
        """The close time of the window's oldest ledger; None when the window reaches back to
        the network's first ledgers. Asked of ``getLedgers`` at the window's latest ledger,
        whose answer names the oldest: its oldest ledger is pruned at every close, so asking
        for it by number races the network."""
        window = self.history_window()
        if window.oldest <= 2:  # ledger 1 is genesis, which holds no transactions
            return None
        page = self.server.get_ledgers(start_ledger=window.latest, limit=1)
        if int(page.oldest_ledger) <= 2:
            return None
        return int(page.oldest_ledger_close_time)

    # ------------------------------------------------------------------ accounts
    @_transport
    def load_account(self, account_id: str) -> AccountInfo:
        """The account and its trustlines, from ``getLedgerEntries``.

        RPC reads entries by key, so the trustlines read are those of the assets this
        process knows (every asset an envelope it submitted named, and ``assets``). When the
        account has subentries those do not explain, its own ChangeTrust operations in the
        window are scanned once (then only newer ledgers) to find the rest. Trustlines made
        before the window of assets never named here are not seen; data entries
        (``AccountInfo.data``) are never listed (RPC cannot enumerate them).

        Raises
        ------
        NotFoundError
            The account does not exist.
        """
        _account_key(account_id)  # validates the strkey first (a LedgerError, not an outage)
        self._check_reads()
        entry, lines = self._account_entries(account_id, self._assets_for(account_id))
        explained = len(entry.signers) + len(lines)
        if explained < int(entry.num_sub_entries.uint32):
            more = self._trusted_by(account_id) - {_line_asset(line) for line in lines}
            if more:
                entry, lines = self._account_entries(
                    account_id, {_line_asset(x) for x in lines} | more
                )
        return _account_info(account_id, entry, lines)

    def _assets_for(self, account_id: str) -> set[str]:
        with _CACHE_LOCK:
            found = _TRUST_SCANS.get((self.network_passphrase, account_id), (0, set()))[1]
            return set(_KNOWN_ASSETS[self.network_passphrase]) | self._extra_assets | found

    def _account_entries(
        self, account_id: str, assets: set[str]
    ) -> tuple[stellar_xdr.AccountEntry, list[stellar_xdr.TrustLineEntry]]:
        keys = [_account_key(account_id)] + [_trustline_key(account_id, a) for a in sorted(assets)]
        account: stellar_xdr.AccountEntry | None = None
        lines: list[stellar_xdr.TrustLineEntry] = []
        for start in range(0, len(keys), MAX_KEYS):
            resp = self.server.get_ledger_entries(keys[start : start + MAX_KEYS])
            self._state_at = max(self._state_at, int(resp.latest_ledger))
            for found in resp.entries or ():
                data = _from_xdr(stellar_xdr.LedgerEntryData, found.xdr)
                if data.account is not None:
                    if xdr_account(data.account.account_id) != account_id:
                        raise ValueError("getLedgerEntries answered another account")
                    account = data.account
                elif data.trust_line is not None:
                    if xdr_account(data.trust_line.account_id) != account_id:
                        raise ValueError("getLedgerEntries answered another account's trustline")
                    if data.trust_line.asset.liquidity_pool_id is None:
                        lines.append(data.trust_line)
        if account is None:
            raise NotFoundError(f"account {account_id} not found")
        return account, lines

    def _trusted_by(self, account_id: str) -> set[str]:
        """Assets ``account_id`` itself added trustlines for in the window (cached: later
        calls scan only ledgers closed since)."""
        key = (self.network_passphrase, account_id)
        with _CACHE_LOCK:
            since, found = _TRUST_SCANS.get(key, (0, set()))
        window = self.history_window()
        after = toid(max(since, window.oldest), 0) - 1 if since else None
        for d in self._scan(after):
            found |= {asset for who, asset in d.trusts if who == account_id}
        with _CACHE_LOCK:
            _TRUST_SCANS[key] = (window.latest + 1, set(found))
        return found

    # ------------------------------------------------------------------ submit
    @_transport
    def submit(self, envelope_xdr: str) -> SubmitResult:
        """``sendTransaction``, then ``getTransaction`` until it is in a ledger.

        A failed transaction is a result (``applied`` tells charged failures from
        rejections), with the codes HorizonLedger reports for the same envelope.

        Raises
        ------
        LedgerCongestedError
            ``TRY_AGAIN_LATER``, or sent but in no ledger within ``poll_timeout_s``: the same
            envelope may be resubmitted (or settled by hash).
        LedgerUnavailableError
            The server could not be reached or answered nonsense: outcome unknown.
        LedgerError
            A malformed envelope, or one for another network.
        """
        tx_hash, assets = self._read_envelope(envelope_xdr)
        self._check_network()
        with _CACHE_LOCK:
            _KNOWN_ASSETS[self.network_passphrase] |= assets
        sent = self.server.send_transaction(envelope_xdr)
        if sent.hash and sent.hash.lower() != tx_hash:
            raise ValueError(f"sendTransaction named hash {sent.hash}, the envelope is {tx_hash}")
        if sent.status == SendTransactionStatus.TRY_AGAIN_LATER:
            raise LedgerCongestedError(
                f"{self.location}: TRY_AGAIN_LATER: the network did not take the transaction "
                "now (full ledgers or fees too low); nothing was applied"
            )
        if sent.status == SendTransactionStatus.ERROR:
            codes = decode_result(sent.error_result_xdr or "")
            stale = "tx_bad_seq" in (codes.tx_code, codes.inner_tx_code)
            if stale:  # already in a ledger? then that outcome, as Horizon resubmission answers
                found = self._bad_seq_lookup(envelope_xdr, tx_hash)
                if found is not None:
                    return self._applied(found, envelope_xdr, tx_hash)
            return SubmitResult(
                hash=tx_hash,
                successful=False,
                applied=False,
                ledger=None,
                fee_charged=codes.fee_charged,
                tx_code=codes.tx_code,
                op_codes=codes.op_codes,
                envelope_xdr=envelope_xdr,
                result_xdr=sent.error_result_xdr or "",
                inner_tx_code=codes.inner_tx_code,
            )
        # PENDING or DUPLICATE (already in the queue, or already applied): wait for a ledger
        return self._applied(self._wait(tx_hash), envelope_xdr, tx_hash)

    def _bad_seq_lookup(self, envelope_xdr: str, tx_hash: str) -> GetTransactionResponse | None:
        """After ``tx_bad_seq``: the envelope's own outcome if it applied, None if it did not.

        stellar-core checks sequences against its newest state, which RPC's transaction index
        may not have ingested yet: NOT_FOUND right after ``tx_bad_seq`` is no proof (and
        "not applied" makes the worker rebuild with the next sequence: a second payment). So
        the source account is read first: a sequence still free there means the index and
        the state both lag core (outcome unknown); a used one, a NOT_FOUND that counts only
        from an index that has reached the ledger the state was read at."""
        tx = transaction_of(stellar_xdr.TransactionEnvelope.from_xdr(envelope_xdr))
        assert tx is not None  # _read_envelope checked it
        source, sequence = muxed_id(tx.source_account), int(tx.seq_num.sequence_number.int64)
        try:
            account, _ = self._account_entries(source, set())
        except NotFoundError:
            return None  # no such account: nothing of it ever applied
        current = int(account.seq_num.sequence_number.int64)
        if current == sequence - 1:
            raise LedgerUnavailableError(
                f"{self.location}: tx_bad_seq for {tx_hash}, yet the account's sequence is "
                "still the one before it: the network is ahead of this RPC; outcome unknown"
            )
        if current < sequence:
            return None  # too far ahead of the account: not applied
        found = self._lookup(tx_hash)
        return None if found.status == GetTransactionStatus.NOT_FOUND else found

    def _lookup(self, tx_hash: str) -> GetTransactionResponse:
        """``getTransaction``, whose NOT_FOUND is taken only from an index that has reached
        every ledger this client read account state at (``getLedgerEntries``' latestLedger):
        a node behind a load balancer, or an index behind the state, says NOT_FOUND for a
        transaction that already used its sequence. Waits up to ``poll_timeout_s`` for it
        to catch up, then the outcome is unknown (LedgerUnavailableError)."""
        deadline = time.monotonic() + self.poll_timeout_s
        pause = POLL_START_S
        while True:
            found = self.server.get_transaction(tx_hash)
            if found.status != GetTransactionStatus.NOT_FOUND:
                return found
            if int(found.latest_ledger) >= self._state_at:
                return found
            if time.monotonic() + pause > deadline:
                raise LedgerUnavailableError(
                    f"{self.location}: its transaction index ends at ledger "
                    f"{found.latest_ledger}, before the account state read at ledger "
                    f"{self._state_at}: whether {tx_hash} applied is unknown"
                )
            time.sleep(pause)
            pause = min(2 * pause, POLL_CAP_S)

    def _read_envelope(self, envelope_xdr: str) -> tuple[str, set[str]]:
        """The envelope's hash (hex) and the assets it names; LedgerError if malformed."""
        if not isinstance(envelope_xdr, str) or not envelope_xdr:
            raise LedgerError("a submission is a base64 TransactionEnvelope")
        try:
            envelope = stellar_xdr.TransactionEnvelope.from_xdr(envelope_xdr)
        except Exception:  # the XDR library raises assorted errors on garbage
            raise LedgerError(
                "malformed transaction envelope (not TransactionEnvelope XDR)"
            ) from None
        tx = transaction_of(envelope)
        if tx is None:
            raise LedgerError("only v1 and fee bump transaction envelopes are supported (no v0)")
        return _envelope_hash(envelope, self.network_passphrase), set(_assets_named(tx))

    def _wait(self, tx_hash: str) -> GetTransactionResponse:
        deadline = time.monotonic() + self.poll_timeout_s
        pause = POLL_START_S
        while True:
            found = self.server.get_transaction(tx_hash)
            if found.status != GetTransactionStatus.NOT_FOUND:
                return found
            if time.monotonic() + pause > deadline:
                raise LedgerCongestedError(
                    f"{self.location}: transaction {tx_hash} sent but in no ledger after "
                    f"{self.poll_timeout_s:g} s; settle it by hash or resubmit the same envelope"
                )
            time.sleep(pause)
            pause = min(2 * pause, POLL_CAP_S)

    def _applied(
        self, found: GetTransactionResponse, envelope_xdr: str, tx_hash: str
    ) -> SubmitResult:
        d = _decode(self._answer_for(found, tx_hash))
        r = d.record
        return SubmitResult(
            hash=r.hash,
            successful=r.successful,
            applied=True,
            ledger=r.ledger,
            fee_charged=r.fee_charged,
            tx_code=r.tx_code,
            op_codes=() if r.successful else r.op_codes,  # as Horizon: codes only on failure
            envelope_xdr=envelope_xdr,
            result_xdr=str(found.result_xdr or ""),
            inner_tx_code=r.inner_tx_code,
        )

    def _answer_for(self, found: GetTransactionResponse, tx_hash: str) -> RpcTransaction:
        """getTransaction's answer, if it is the transaction asked for: its envelope must hash
        (on our network) to ``tx_hash``. Another transaction's envelope and result under our
        hash (a lie, a mixed-up cache) would make the worker mark an unpaid round paid: a
        malformed answer (ValueError), outcome unknown."""
        t = _as_transaction(found)
        envelope = _from_xdr(stellar_xdr.TransactionEnvelope, t.envelope_xdr)
        if transaction_of(envelope) is None:
            raise ValueError("a transaction envelope that is neither v1 nor a fee bump")
        own = _envelope_hash(envelope, self.network_passphrase)
        if t.transaction_hash.lower() != tx_hash or own != tx_hash:
            raise ValueError(
                f"getTransaction for {tx_hash} answered transaction {t.transaction_hash} whose "
                f"envelope hashes to {own}"
            )
        return t

    # ------------------------------------------------------------------ lookups
    @_transport
    def transaction(self, tx_hash: str) -> TxRecord:
        """A transaction by hash (``getTransaction``); NotFoundError when it is not in the
        window, which says so: an older one may exist (ask Horizon or an archive)."""
        if (
            not isinstance(tx_hash, str)
            or len(tx_hash) != 64
            or any(c not in "0123456789abcdefABCDEF" for c in tx_hash)
        ):
            raise LedgerError(f"invalid transaction hash {tx_hash!r}")
        self._check_reads()
        found = self._lookup(tx_hash.lower())
        if found.status == GetTransactionStatus.NOT_FOUND:
            raise NotFoundError(
                f"transaction {tx_hash} not found in {self.location}'s window (ledgers "
                f"{found.oldest_ledger}..{found.latest_ledger}); an older one needs Horizon or "
                "a history archive"
            )
        return _decode(self._answer_for(found, tx_hash.lower())).record

    # ------------------------------------------------------------------ history scans
    def _scan(self, after: int | None = None) -> Iterator[_Decoded]:
        """Every transaction in the window after the TOID ``after`` (all of them when None),
        oldest first, decoded. Costs one ``getTransactions`` request per ``SCAN_PAGE``
        transactions of the whole network."""
        window = self.history_window()
        start = window.oldest if after is None else max(window.oldest, after >> 32)
        if start > window.latest:
            return
        cursor: str | None = None
        seen: int | None = None  # the TOID of the last transaction read
        restarts = 3
        while True:
            try:
                if cursor is None:
                    page = self.server.get_transactions(start_ledger=start, limit=SCAN_PAGE)
                else:
                    page = self.server.get_transactions(cursor=cursor, limit=SCAN_PAGE)
            except SorobanRpcErrorResponse:
                # The window's oldest ledger is pruned at every close: one named a moment ago
                # (or the cursor's) may be gone. Start again at the new oldest; anything else
                # is the error it says.
                asked = start if cursor is None else int(cursor) >> 32
                window = self.history_window()
                if restarts == 0 or asked >= window.oldest:
                    raise
                restarts -= 1
                start, cursor = window.oldest, None
                if seen is not None:  # read again from the start: skip what was read
                    after, seen = (seen if after is None else max(after, seen)), None
                continue
            for t in page.transactions:
                position = toid(int(t.ledger), int(t.application_order))
                if seen is not None and position <= seen:  # pages must move forward
                    raise ValueError(
                        f"getTransactions repeated or reordered transactions (ledger {t.ledger}, "
                        f"order {t.application_order} after TOID {seen})"
                    )
                seen = position
                if after is None or position > after:
                    yield _decode(t)
            txs = page.transactions
            if not txs or not page.cursor or page.cursor == cursor:
                return
            if len(txs) < SCAN_PAGE and txs[-1].ledger >= page.latest_ledger:
                return  # at the tip: nothing more to ask for
            cursor = page.cursor

    @_transport
    def account_transactions(
        self, account_id: str, *, cursor: str | None = None, limit: int = 10, order: str = "asc"
    ) -> Page[TxRecord]:
        """One page of the transactions ``account_id`` took part in, within the window: as
        source, fee payer or operation source, and in a successful one also as a payment's
        or account creation's other side or a claimable balance's claimant.

        Scans the window (``getTransactions``) on every call: ascending pages stop at the
        page's last record, descending ones read the whole window up to ``cursor``.
        """
        after, before = _bounds(cursor, order)
        _check_limit(limit)
        _account_key(account_id)

        def mine(d: _Decoded) -> Iterator[TxRecord]:
            if account_id in d.participants:
                yield d.record

        records = self._page(mine, after, before, limit, order, lambda r: int(r.paging_token))
        return Page(records, records[-1].paging_token if records else cursor)

    @_transport
    def account_payments(
        self, account_id: str, *, cursor: str | None = None, limit: int = 10, order: str = "asc"
    ) -> Page[PaymentRecord]:
        """One page of payments and account creations to or from ``account_id`` in successful
        transactions of the window (as HorizonLedger lists them); the same scan as
        :meth:`account_transactions`."""
        after, before = _bounds(cursor, order)
        _check_limit(limit)
        _account_key(account_id)

        def mine(d: _Decoded) -> Iterator[PaymentRecord]:
            yield from (p for p in d.payments if account_id in (p.source, p.destination))

        # a cursor inside a transaction: read that transaction again, skip what was seen
        start = None if after is None else (after & ~0xFFF) - 1
        records = self._page(mine, start, before, limit, order, lambda p: int(p.id), after)
        return Page(records, records[-1].id if records else cursor)

    def _page(
        self,
        pick: Callable[[_Decoded], Iterator[Any]],
        after: int | None,
        before: int | None,
        limit: int,
        order: str,
        key: Callable[[Any], int],
        seen: int | None = None,
    ) -> tuple[Any, ...]:
        if order == "asc":
            out: list[Any] = []
            for d in self._scan(after):
                out += [x for x in pick(d) if seen is None or key(x) > seen]
                if len(out) >= limit:
                    break
            return tuple(out[:limit])
        newest: collections.deque[Any] = collections.deque(maxlen=limit)
        for d in self._scan():
            if before is not None and int(d.record.paging_token) >= before:
                break
            newest.extend(x for x in pick(d) if before is None or key(x) < before)
        return tuple(reversed(newest))

    @_transport
    def holders(
        self, asset: str, *, cursor: str | None = None, limit: int = 10
    ) -> Page[AccountInfo]:
        """Not answerable over RPC: it has no index of trustlines by asset (Horizon's
        ``/accounts?asset=``), and the ledger's state cannot be enumerated through it.

        Raises
        ------
        LedgerError
            Always (after validating ``asset``), saying what to use instead.
        """
        parse_asset(asset)
        raise LedgerError(
            f"Stellar RPC cannot list the holders of {asset}: it has no index of trustlines "
            "by asset. Use a Horizon URL (--ledger URL) or the embedded file (--db)."
        )

    @_transport
    def claimable_balances(
        self,
        *,
        claimant: str | None = None,
        sponsor: str | None = None,
        cursor: str | None = None,
        limit: int = 10,
    ) -> Page[ClaimableBalanceRecord]:
        """Claimable balances naming ``claimant`` and/or sponsored by ``sponsor``, by id.

        Found by scanning the window for the CreateClaimableBalance operations of successful
        transactions (their ids from the results, their sponsor the creating account or the
        one sponsoring its reserves), then reading which still exist with
        ``getLedgerEntries``. Balances created before the window are not found. Costs a scan
        of the window plus one request per 200 candidates.
        """
        if claimant is None and sponsor is None:
            raise LedgerError("claimable balances are listed by claimant or sponsor")
        for value in (claimant, sponsor):
            if value is not None:
                _account_key(value)
        if cursor:
            cursor = cursor.lower()
            if len(cursor) != 72 or any(c not in "0123456789abcdef" for c in cursor):
                raise LedgerError(f"invalid claimable balance cursor {cursor[:80]!r}")
        _check_limit(limit)
        candidates: dict[str, str] = {}  # id -> sponsor
        for d in self._scan():
            for balance_id, made_by, claimants in d.claimables:
                if (claimant is None or claimant in claimants) and sponsor in (None, made_by):
                    candidates[balance_id] = made_by
        wanted = sorted(b for b in candidates if not cursor or b > cursor)
        out: list[ClaimableBalanceRecord] = []
        for start in range(0, len(wanted), MAX_KEYS):
            chunk = wanted[start : start + MAX_KEYS]
            resp = self.server.get_ledger_entries([_balance_key(b) for b in chunk])
            for found in resp.entries or ():
                data = _from_xdr(stellar_xdr.LedgerEntryData, found.xdr)
                if data.claimable_balance is None:
                    raise ValueError("getLedgerEntries answered a claimable balance key otherwise")
                b = _balance_record(data.claimable_balance, found.last_modified_ledger, candidates)
                out.append(b)
            out.sort(key=lambda b: b.id)
            if len(out) >= limit:
                break
        records = tuple(out[:limit])
        return Page(records, records[-1].id if records else cursor)

    def created_in_window(self, account_id: str) -> int | None:
        """The ledger of the window in which ``account_id`` was created (a successful
        CreateAccount naming it), or None: then it was created before the window, and its
        history may hold transactions the window no longer shows. Scans the window."""
        _account_key(account_id)
        return self._created_in_window(account_id)

    @_transport
    def _created_in_window(self, account_id: str) -> int | None:
        for d in self._scan():
            for p in d.payments:
                if p.type == "create_account" and p.destination == account_id:
                    return p.ledger
        return None

    # ------------------------------------------------------------------ faucet
    @_transport
    def fund(self, account_id: str) -> SubmitResult:
        """Create and fund ``account_id`` through the network's friendbot (``friendbot_url``,
        or the one ``getNetwork`` names); LedgerError where there is none (pubnet)."""
        _account_key(account_id)
        self._check_network()
        url = self.friendbot_url or self.server.get_network().friendbot_url
        if not url:
            raise LedgerError("this network has no friendbot: fund the account yourself")
        return friendbot_fund(url, account_id)


# ---------------------------------------------------------------------- keys and entries
def _account_key(account_id: str) -> stellar_xdr.LedgerKey:
    if not isinstance(account_id, str) or not StrKey.is_valid_ed25519_public_key(account_id):
        raise LedgerError(f"invalid account id {str(account_id)[:80]!r}")
    return stellar_xdr.LedgerKey(
        stellar_xdr.LedgerEntryType.ACCOUNT,
        account=stellar_xdr.LedgerKeyAccount(Keypair.from_public_key(account_id).xdr_account_id()),
    )


def _trustline_key(account_id: str, asset: str) -> stellar_xdr.LedgerKey:
    code, issuer = parse_asset(asset)
    return stellar_xdr.LedgerKey(
        stellar_xdr.LedgerEntryType.TRUSTLINE,
        trust_line=stellar_xdr.LedgerKeyTrustLine(
            Keypair.from_public_key(account_id).xdr_account_id(),
            Asset(code, issuer).to_trust_line_asset_xdr_object(),
        ),
    )


def _balance_key(balance_id: str) -> stellar_xdr.LedgerKey:
    return stellar_xdr.LedgerKey(
        stellar_xdr.LedgerEntryType.CLAIMABLE_BALANCE,
        claimable_balance=stellar_xdr.LedgerKeyClaimableBalance(
            stellar_xdr.ClaimableBalanceID.from_xdr_bytes(bytes.fromhex(balance_id))
        ),
    )


def _from_xdr(cls: Any, text: str) -> Any:
    """Decode XDR the server sent; garbage is a ValueError (a malformed answer)."""
    try:
        return cls.from_xdr(text)
    except Exception as err:  # the XDR library raises assorted errors on garbage
        raise ValueError(f"unreadable {cls.__name__} XDR ({type(err).__name__})") from None


def _line_asset(line: stellar_xdr.TrustLineEntry) -> str:
    a = line.asset
    if a.alpha_num4 is not None:
        return asset_string(stellar_xdr.Asset(a.type, alpha_num4=a.alpha_num4))
    return asset_string(stellar_xdr.Asset(a.type, alpha_num12=a.alpha_num12))


def _account_info(
    account_id: str, a: stellar_xdr.AccountEntry, lines: list[stellar_xdr.TrustLineEntry]
) -> AccountInfo:
    master, low, med, high = a.thresholds.thresholds
    v2 = a.ext.v1.ext.v2 if a.ext.v1 is not None else None
    balances = sorted(
        (
            Balance(_line_asset(x), int(x.balance.int64), int(x.limit.int64), int(x.flags.uint32))
            for x in lines
        ),
        key=lambda b: b.asset,
    )
    return AccountInfo(
        account_id=account_id,
        sequence=int(a.seq_num.sequence_number.int64),
        balances=(*balances, Balance(NATIVE, int(a.balance.int64))),
        thresholds=(low, med, high),
        master_weight=master,
        signers=tuple(
            sorted(
                (SdkSignerKey.from_xdr_object(s.key).encoded_signer_key, int(s.weight.uint32))
                for s in a.signers
            )
        ),
        flags=int(a.flags.uint32),
        num_subentries=int(a.num_sub_entries.uint32),
        home_domain=a.home_domain.string32.decode("utf-8", errors="replace"),
        num_sponsoring=int(v2.num_sponsoring.uint32) if v2 is not None else 0,
        num_sponsored=int(v2.num_sponsored.uint32) if v2 is not None else 0,
    )


def _predicate(p: stellar_xdr.ClaimPredicate) -> Any:
    """A stored claim predicate as the Ledger protocol's plain JSON value (stellar-core made
    relative times absolute when the balance was created)."""
    kinds = stellar_xdr.ClaimPredicateType
    if p.type == kinds.CLAIM_PREDICATE_UNCONDITIONAL:
        return {"unconditional": True}
    if p.type == kinds.CLAIM_PREDICATE_BEFORE_ABSOLUTE_TIME and p.abs_before is not None:
        return {"abs_before": int(p.abs_before.int64)}
    if p.type == kinds.CLAIM_PREDICATE_NOT and p.not_predicate is not None:
        return {"not": _predicate(p.not_predicate)}
    if p.type == kinds.CLAIM_PREDICATE_AND and p.and_predicates is not None:
        return {"and": [_predicate(q) for q in p.and_predicates]}
    if p.type == kinds.CLAIM_PREDICATE_OR and p.or_predicates is not None:
        return {"or": [_predicate(q) for q in p.or_predicates]}
    raise ValueError(f"a stored claim predicate of type {p.type.name}")


def _balance_record(
    e: stellar_xdr.ClaimableBalanceEntry, last_modified: int, sponsors: dict[str, str]
) -> ClaimableBalanceRecord:
    balance_id = e.balance_id.to_xdr_bytes().hex()
    if balance_id not in sponsors:
        raise ValueError(f"getLedgerEntries answered claimable balance {balance_id}, not asked")
    return ClaimableBalanceRecord(
        id=balance_id,
        asset=asset_string(e.asset),
        amount=int(e.amount.int64),
        sponsor=sponsors[balance_id],
        claimants=tuple(
            (xdr_account(c.v0.destination), _predicate(c.v0.predicate))
            for c in e.claimants
            if c.v0 is not None
        ),
        last_modified_ledger=int(last_modified),
        paging_token=balance_id,
    )


# ---------------------------------------------------------------------- transactions
def _envelope_hash(envelope: stellar_xdr.TransactionEnvelope, passphrase: str) -> str:
    """The hash (hex) the network knows the envelope by (a fee bump's outer one): SHA-256 of
    network id, envelope type and the transaction's XDR, without building SDK objects."""
    network_id = hashlib.sha256(passphrase.encode()).digest()
    if envelope.fee_bump is not None:
        kind, body = (
            stellar_xdr.EnvelopeType.ENVELOPE_TYPE_TX_FEE_BUMP,
            envelope.fee_bump.tx.to_xdr_bytes(),
        )
    else:
        assert envelope.v1 is not None  # transaction_of checked it
        kind, body = stellar_xdr.EnvelopeType.ENVELOPE_TYPE_TX, envelope.v1.tx.to_xdr_bytes()
    return hashlib.sha256(network_id + struct.pack(">i", kind.value) + body).hexdigest()


def _assets_named(tx: stellar_xdr.Transaction) -> Iterator[str]:
    """Credit assets a transaction's operations name (what a trustline may hold)."""
    source = muxed_id(tx.source_account)
    for op in tx.operations:
        b = op.body
        candidates: list[stellar_xdr.Asset] = []
        if b.payment_op is not None:
            candidates.append(b.payment_op.asset)
        if b.create_claimable_balance_op is not None:
            candidates.append(b.create_claimable_balance_op.asset)
        if b.clawback_op is not None:
            candidates.append(b.clawback_op.asset)
        if b.set_trust_line_flags_op is not None:
            candidates.append(b.set_trust_line_flags_op.asset)
        if b.path_payment_strict_receive_op is not None:
            candidates.append(b.path_payment_strict_receive_op.dest_asset)
        if b.path_payment_strict_send_op is not None:
            candidates.append(b.path_payment_strict_send_op.dest_asset)
        if b.change_trust_op is not None:
            line = _change_trust_asset(b.change_trust_op.line)
            if line is not None:
                yield line
        for asset in candidates:
            if asset.type != stellar_xdr.AssetType.ASSET_TYPE_NATIVE:
                yield asset_string(asset)
        if b.allow_trust_op is not None:  # the asset code, issued by the operation's source
            issuer = muxed_id(op.source_account) if op.source_account else source
            code = b.allow_trust_op.asset
            raw = (
                code.asset_code4.asset_code4
                if code.asset_code4 is not None
                else code.asset_code12.asset_code12
                if code.asset_code12 is not None
                else b""
            )
            name = raw.rstrip(b"\x00").decode("ascii", errors="replace")
            if name:
                yield f"{name}:{issuer}"


def _change_trust_asset(line: stellar_xdr.ChangeTrustAsset) -> str | None:
    if line.alpha_num4 is not None:
        return asset_string(stellar_xdr.Asset(line.type, alpha_num4=line.alpha_num4))
    if line.alpha_num12 is not None:
        return asset_string(stellar_xdr.Asset(line.type, alpha_num12=line.alpha_num12))
    return None  # a liquidity pool share


def _memo(memo: stellar_xdr.Memo) -> tuple[str, str | None]:
    """Horizon's memo_type and memo (hash and return memos base64, text as text)."""
    kinds = stellar_xdr.MemoType
    if memo.type == kinds.MEMO_TEXT and memo.text is not None:
        return "text", memo.text.decode("utf-8", errors="replace")
    if memo.type == kinds.MEMO_ID and memo.id is not None:
        return "id", str(memo.id.uint64)
    if memo.type == kinds.MEMO_HASH and memo.hash is not None:
        return "hash", base64.b64encode(memo.hash.hash).decode()
    if memo.type == kinds.MEMO_RETURN and memo.ret_hash is not None:
        return "return", base64.b64encode(memo.ret_hash.hash).decode()
    return "none", None


def _as_transaction(found: GetTransactionResponse) -> RpcTransaction:
    """getTransaction's answer in getTransactions' shape (one decoder for both)."""
    if found.ledger is None or found.envelope_xdr is None or found.result_xdr is None:
        raise ValueError(f"getTransaction {found.status.value} without ledger, envelope or result")
    return RpcTransaction.model_validate(
        {
            "status": found.status.value,
            "txHash": found.transaction_hash,
            "applicationOrder": found.application_order or 0,
            "feeBump": bool(found.fee_bump),
            "envelopeXdr": found.envelope_xdr,
            "resultXdr": found.result_xdr,
            "resultMetaXdr": found.result_meta_xdr or "",
            "ledger": found.ledger,
            "createdAt": found.create_at or 0,
        }
    )


@dataclass
class _Sponsorships:
    """Who pays the reserves of what an operation creates: an open
    BeginSponsoringFutureReserves for its source, else the source itself."""

    open: dict[str, str] = field(default_factory=dict)  # sponsored -> sponsor

    def step(self, body: stellar_xdr.OperationBody, op_source: str) -> None:
        begin = body.begin_sponsoring_future_reserves_op
        if begin is not None:
            self.open[xdr_account(begin.sponsored_id)] = op_source
        elif body.type == stellar_xdr.OperationType.END_SPONSORING_FUTURE_RESERVES:
            self.open.pop(op_source, None)

    def of(self, account: str) -> str:
        return self.open.get(account, account)


def _decode(t: RpcTransaction) -> _Decoded:
    """One transaction as RPC returns it: its TxRecord, who took part (the embedded ledger's
    rule, so ``ledger serve`` answers the same through Horizon and RPC), its payments,
    claimable balances and ChangeTrusts (the last three only when it succeeded)."""
    if t.status not in ("SUCCESS", "FAILED"):
        raise ValueError(f"a transaction with status {t.status!r}")
    envelope = _from_xdr(stellar_xdr.TransactionEnvelope, t.envelope_xdr)
    tx = transaction_of(envelope)
    if tx is None:
        raise ValueError("a transaction envelope that is neither v1 nor a fee bump")
    codes: ResultCodes = decode_result(t.result_xdr)
    if codes.successful != (t.status == "SUCCESS"):
        raise ValueError(f"status {t.status} but result {codes.tx_code}")
    source = muxed_id(tx.source_account)
    fee_payer = muxed_id(envelope.fee_bump.tx.fee_source) if envelope.fee_bump else source
    memo_type, memo = _memo(tx.memo)
    ok = codes.successful
    record = TxRecord(
        hash=t.transaction_hash.lower(),
        ledger=int(t.ledger),
        source=source,
        fee_charged=codes.fee_charged,
        successful=ok,
        memo_type=memo_type,
        memo=memo,
        operation_count=len(tx.operations),
        envelope_xdr=t.envelope_xdr,
        created_at=int(t.created_at),
        tx_code=codes.tx_code,
        op_codes=codes.op_codes,
        paging_token=str(toid(int(t.ledger), int(t.application_order))),
        fee_account=fee_payer if fee_payer != source else "",
        inner_hash=codes.inner_hash,
        inner_tx_code=codes.inner_tx_code,
    )
    participants = {source, fee_payer}
    payments: list[PaymentRecord] = []
    claimables: list[tuple[str, str, tuple[str, ...]]] = []
    trusts: list[tuple[str, str]] = []
    sponsorships = _Sponsorships()
    made = iter(codes.balance_ids)
    for index, op in enumerate(tx.operations, start=1):
        op_source = muxed_id(op.source_account) if op.source_account is not None else source
        participants.add(op_source)
        if not ok:
            continue
        body = op.body
        sponsorships.step(body, op_source)
        op_id = str(toid(record.ledger, int(t.application_order), index))
        moved: tuple[str, str, str, int] | None = None  # kind, destination, asset, stroops
        if body.payment_op is not None:
            p = body.payment_op
            moved = ("payment", muxed_id(p.destination), asset_string(p.asset), int(p.amount.int64))
        elif body.create_account_op is not None:
            c = body.create_account_op
            moved = (
                "create_account",
                xdr_account(c.destination),
                NATIVE,
                int(c.starting_balance.int64),
            )
        elif body.destination is not None:  # AccountMerge
            participants.add(muxed_id(body.destination))
        elif body.clawback_op is not None:
            participants.add(muxed_id(body.clawback_op.from_))
        elif body.create_claimable_balance_op is not None:
            named = tuple(
                xdr_account(c.v0.destination)
                for c in body.create_claimable_balance_op.claimants
                if c.v0 is not None
            )
            participants.update(named)
            balance_id = next(made, None)
            if balance_id is None:
                raise ValueError("a CreateClaimableBalance success without its balance id")
            claimables.append((balance_id, sponsorships.of(op_source), named))
        elif body.change_trust_op is not None:
            line = _change_trust_asset(body.change_trust_op.line)
            if line is not None:
                trusts.append((op_source, line))
        if moved is not None:
            kind, to, asset, amount = moved
            payments.append(
                PaymentRecord(op_id, record.hash, record.ledger, kind, op_source, to, asset, amount)
            )
            participants.add(to)
    return _Decoded(
        record, frozenset(participants), tuple(payments), tuple(claimables), tuple(trusts)
    )


def _bounds(cursor: str | None, order: str) -> tuple[int | None, int | None]:
    """(after, before) TOIDs of a page: ascending pages start after the cursor, descending
    ones end before it."""
    if order not in ("asc", "desc"):
        raise LedgerError(f"order must be asc or desc, got {order!r}")
    if cursor in (None, ""):
        return None, None
    value = parse_uint(str(cursor), "cursor", 2**63)
    return (value, None) if order == "asc" else (None, value)


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= SCAN_PAGE:
        raise LedgerError(f"limit must be in [1, {SCAN_PAGE}], got {limit!r}")
