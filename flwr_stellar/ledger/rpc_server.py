"""Stellar RPC (JSON-RPC 2.0) at ``POST /rpc`` over the embedded ledger.

SDF deprecates Horizon in favour of Stellar RPC, so ``ledger serve`` speaks both on one port:
``stellar_sdk.SorobanServer`` and the JS SDK's ``rpc.Server`` work against it unchanged. The
methods and their fields follow stellar-rpc (``getHealth``, ``getNetwork``, ``getLatestLedger``,
``getLedgers``, ``getLedgerEntries``, ``sendTransaction``, ``getTransaction``,
``getTransactions``, ``getFeeStats``), with its limits (200 keys, page limit 200, default 50;
a batch holds at most 100 requests and one full page of work, 200 ledgers, transactions or
keys in all: the rest are answered with an error, not run) and its error codes: -32700 parse
error, -32600 invalid request (and, as stellar-rpc, a page outside the retention window or
over the limit), -32601 method not found, -32602 invalid params, -32603 internal error.
Every JSON-RPC answer is HTTP 200 (as stellar-rpc's bridge); only a wrong content type (415)
or HTTP method (405) is answered otherwise, never 413/429/5xx.

What the embedded ledger cannot produce faithfully is said where it is built (and in
docs/rpc.md): ``resultMetaXdr`` carries no ledger-entry changes (the store keeps the current
state of entries, not their history), header hashes are the embedded chain's own, and there
are no Soroban contracts (no ``simulateTransaction``, ``getEvents``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from stellar_sdk import Asset, ClaimPredicate, Keypair, StrKey
from stellar_sdk import xdr as x

from flwr_stellar.ledger.base import (
    NATIVE,
    LedgerCongestedError,
    LedgerError,
    NotFoundError,
    SubmitResult,
    TxRecord,
)
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.embedded.entries import Account, ClaimableBalance, DataEntry, TrustLine
from flwr_stellar.ledger.embedded.ledger import toid
from flwr_stellar.ledger.embedded.ops.xdr_util import account_id
from flwr_stellar.ledger.result_xdr import (
    ResultCodeError,
    build_result_xdr,
    rejected_result_xdr,
    stored_result_xdr,
)

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 22  # what the embedded ledger reports on Horizon's root too
MAX_PAGE = 200  # stellar-rpc's max-transactions-limit / max-ledgers-limit
DEFAULT_PAGE = 50  # its default-transactions-limit / default-ledgers-limit
MAX_KEYS = 200  # its getLedgerEntries maximum
MAX_BATCH = 100  # requests in one JSON-RPC batch
# What one batch may make the server build, in page items (ledgers, transactions, keys): one
# full page. Each request alone is within stellar-rpc's limits, but 100 getLedgers of 200 in
# one 30 KB POST kept this single-threaded server busy for a minute and a half building a
# 120 MB answer. The SDKs send no batches; a batch's requests past the budget are answered
# with an error and not run.
BATCH_BUDGET = MAX_PAGE
CLASSIC_FEE_WINDOW = 10  # ledgers in stellar-rpc's classic fee statistics
SOROBAN_FEE_WINDOW = 50  # and in its Soroban ones
MAX_TX_SET_SIZE = 1000  # as the Horizon ledger records say

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)
_ZERO = x.Hash(bytes(32))
_SHOWN = 40  # characters of a refused value quoted back


class RpcError(Exception):
    """A JSON-RPC error object: the request is answered with it, nothing is changed."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)[:200]
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


# --------------------------------------------------------------------------- parameters
def _uint(params: dict[str, Any], name: str, bound: int = 2**32) -> int | None:
    """An optional integer parameter in [0, bound) (stellar-rpc decodes into uint32)."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < bound:
        raise RpcError(
            INVALID_PARAMS, f"{name} must be an integer in [0, {bound}), got {_shown(value)}"
        )
    return int(value)


def _text(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise RpcError(INVALID_PARAMS, f"missing parameter {name!r}")
        return None
    if not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, f"{name} must be a string, got {_shown(value)}")
    return value


def _check_format(params: dict[str, Any]) -> None:
    fmt = _text(params, "xdrFormat")
    if fmt in (None, "", "base64"):
        return
    if fmt == "json":
        raise RpcError(INVALID_PARAMS, "xdrFormat 'json' is not supported here: use base64")
    raise RpcError(INVALID_PARAMS, f"expected xdrFormat base64 or json, got {_shown(fmt)}")


@dataclass(frozen=True)
class _Page:
    start: int | None  # startLedger
    cursor: str | None
    limit: int


def _page(params: dict[str, Any]) -> _Page:
    """startLedger xor pagination.cursor, and pagination.limit, checked as stellar-rpc does."""
    start = _uint(params, "startLedger")
    pagination = params.get("pagination")
    cursor, limit = None, 0
    if pagination is not None:
        if not isinstance(pagination, dict):
            raise RpcError(INVALID_PARAMS, "pagination must be an object {cursor?, limit?}")
        cursor = _text(pagination, "cursor") or None
        limit = _uint(pagination, "limit", 2**32) or 0
    if cursor is not None and start:
        raise RpcError(INVALID_REQUEST, "startLedger and cursor cannot both be set")
    if limit > MAX_PAGE:
        raise RpcError(INVALID_REQUEST, f"limit must not exceed {MAX_PAGE}")
    return _Page(start or None, cursor, limit or DEFAULT_PAGE)


# --------------------------------------------------------------------------- XDR encoders
def _account_xdr(account: str) -> x.AccountID:
    return Keypair.from_public_key(account).xdr_account_id()


def _sponsor_ext(sponsor: str | None) -> x.LedgerEntryExt:
    """LedgerEntry.ext: who pays the entry's reserve, when not its owner."""
    if sponsor is None:
        return x.LedgerEntryExt(0)
    return x.LedgerEntryExt(
        1,
        v1=x.LedgerEntryExtensionV1(
            sponsoring_id=x.SponsorshipDescriptor(_account_xdr(sponsor)),
            ext=x.LedgerEntryExtensionV1Ext(0),
        ),
    )


def _asset_xdr(asset: str) -> x.Asset:
    if asset == NATIVE:
        return Asset.native().to_xdr_object()
    code, issuer = asset.split(":", 1)
    return Asset(code, issuer).to_xdr_object()


def _predicate_xdr(p: Any) -> x.ClaimPredicate:
    """A stored (absolute-time) predicate as XDR, as stellar-core keeps it in the entry."""

    def build(q: Any) -> ClaimPredicate:
        if "abs_before" in q:
            return ClaimPredicate.predicate_before_absolute_time(int(q["abs_before"]))
        if "not" in q:
            return ClaimPredicate.predicate_not(build(q["not"]))
        if "and" in q:
            return ClaimPredicate.predicate_and(build(q["and"][0]), build(q["and"][1]))
        if "or" in q:
            return ClaimPredicate.predicate_or(build(q["or"][0]), build(q["or"][1]))
        return ClaimPredicate.predicate_unconditional()

    return build(p).to_xdr_object()


def entry_xdr(entry: Any) -> tuple[x.LedgerEntryData, x.LedgerEntryExt]:
    """A stored entry as Stellar's ``LedgerEntryData`` and ``LedgerEntry.ext`` (its sponsor).

    Accounts carry the v1/v2 extensions (liabilities 0, sponsorship counters) only when a
    counter is non-zero; the embedded ledger keeps no per-signer sponsors nor the v3
    extension's seqLedger/seqTime.
    """
    if isinstance(entry, Account):
        signers = sorted(entry.signers, key=lambda s: StrKey.decode_ed25519_public_key(s[0]))
        ext = x.AccountEntryExt(0)
        if entry.num_sponsored or entry.num_sponsoring:
            ext = x.AccountEntryExt(
                1,
                v1=x.AccountEntryExtensionV1(
                    liabilities=x.Liabilities(x.Int64(0), x.Int64(0)),
                    ext=x.AccountEntryExtensionV1Ext(
                        2,
                        v2=x.AccountEntryExtensionV2(
                            num_sponsored=x.Uint32(entry.num_sponsored),
                            num_sponsoring=x.Uint32(entry.num_sponsoring),
                            signer_sponsoring_i_ds=[x.SponsorshipDescriptor(None) for _ in signers],
                            ext=x.AccountEntryExtensionV2Ext(0),
                        ),
                    ),
                ),
            )
        account = x.AccountEntry(
            account_id=_account_xdr(entry.account_id),
            balance=x.Int64(entry.balance),
            seq_num=x.SequenceNumber(x.Int64(entry.seq_num)),
            num_sub_entries=x.Uint32(entry.num_subentries),
            inflation_dest=None,
            flags=x.Uint32(entry.flags),
            home_domain=x.String32(entry.home_domain.encode()),
            thresholds=x.Thresholds(bytes([entry.master_weight, entry.low, entry.med, entry.high])),
            signers=[
                x.Signer(
                    key=x.SignerKey(
                        x.SignerKeyType.SIGNER_KEY_TYPE_ED25519,
                        ed25519=x.Uint256(StrKey.decode_ed25519_public_key(key)),
                    ),
                    weight=x.Uint32(weight),
                )
                for key, weight in signers
            ],
            ext=ext,
        )
        return x.LedgerEntryData(x.LedgerEntryType.ACCOUNT, account=account), _sponsor_ext(
            entry.sponsor
        )
    if isinstance(entry, TrustLine):
        code, issuer = entry.asset.split(":", 1)
        line = x.TrustLineEntry(
            account_id=_account_xdr(entry.account_id),
            asset=Asset(code, issuer).to_trust_line_asset_xdr_object(),
            balance=x.Int64(entry.balance),
            limit=x.Int64(entry.limit),
            flags=x.Uint32(entry.flags),
            ext=x.TrustLineEntryExt(0),
        )
        return x.LedgerEntryData(x.LedgerEntryType.TRUSTLINE, trust_line=line), _sponsor_ext(
            entry.sponsor
        )
    if isinstance(entry, DataEntry):
        data = x.DataEntry(
            account_id=_account_xdr(entry.account_id),
            data_name=x.String64(entry.name.encode()),
            data_value=x.DataValue(entry.value),
            ext=x.DataEntryExt(0),
        )
        return x.LedgerEntryData(x.LedgerEntryType.DATA, data=data), _sponsor_ext(entry.sponsor)
    assert isinstance(entry, ClaimableBalance)
    balance = x.ClaimableBalanceEntry(
        balance_id=x.ClaimableBalanceID.from_xdr_bytes(bytes.fromhex(entry.balance_id)),
        claimants=[
            x.Claimant(
                x.ClaimantType.CLAIMANT_TYPE_V0,
                v0=x.ClaimantV0(destination=_account_xdr(who), predicate=_predicate_xdr(p)),
            )
            for who, p in entry.claimants
        ],
        asset=_asset_xdr(entry.asset),
        amount=x.Int64(entry.amount),
        ext=x.ClaimableBalanceEntryExt(0),
    )
    return (
        x.LedgerEntryData(x.LedgerEntryType.CLAIMABLE_BALANCE, claimable_balance=balance),
        _sponsor_ext(entry.sponsor),
    )


def _store_key(key: x.LedgerKey) -> tuple[str, ...] | None:
    """The embedded store's key for a LedgerKey; None for kinds it never holds (offers,
    liquidity pools, contract data/code, config settings, pool-share trustlines)."""
    t = key.type
    if t == x.LedgerEntryType.ACCOUNT and key.account is not None:
        return ("acct", account_id(key.account.account_id))
    if t == x.LedgerEntryType.TRUSTLINE and key.trust_line is not None:
        asset = key.trust_line.asset
        if asset.alpha_num4 is not None:
            raw, issuer = asset.alpha_num4.asset_code.asset_code4, asset.alpha_num4.issuer
            sizes = (1, 4)
        elif asset.alpha_num12 is not None:
            raw, issuer = asset.alpha_num12.asset_code.asset_code12, asset.alpha_num12.issuer
            sizes = (5, 12)
        else:
            return None
        code = raw.rstrip(b"\x00")
        if not (sizes[0] <= len(code) <= sizes[1] and code.isascii() and code.isalnum()):
            return None  # not a valid asset: no trustline can hold it
        owner = account_id(key.trust_line.account_id)
        return ("tl", owner, f"{code.decode()}:{account_id(issuer)}")
    if t == x.LedgerEntryType.DATA and key.data is not None:
        try:
            name = key.data.data_name.string64.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return ("data", account_id(key.data.account_id), name)
    if t == x.LedgerEntryType.CLAIMABLE_BALANCE and key.claimable_balance is not None:
        return ("cb", key.claimable_balance.balance_id.to_xdr_bytes().hex())
    return None


_EMPTY_CHANGES = x.LedgerEntryChanges([])
# The embedded store keeps the current state of entries, not each transaction's before/after
# states, so the TransactionMeta served is a v3 one with no changes (no Soroban meta).
EMPTY_META = x.TransactionMeta(
    3,
    v3=x.TransactionMetaV3(
        ext=x.ExtensionPoint(0),
        tx_changes_before=_EMPTY_CHANGES,
        operations=[],
        tx_changes_after=_EMPTY_CHANGES,
        soroban_meta=None,
    ),
)
EMPTY_META_XDR = str(EMPTY_META.to_xdr())


def _hash(hex_text: str) -> x.Hash:
    return x.Hash(bytes.fromhex(hex_text))


# --------------------------------------------------------------------------- the methods
class RpcMethods:
    """The JSON-RPC methods over one embedded ledger; each takes the ``params`` object and
    returns the ``result`` object, or raises :class:`RpcError`.

    Parameters
    ----------
    ledger : EmbeddedLedger
        The ledger served.
    retention_window : int, optional
        Emulate a Stellar RPC that keeps only this many ledgers (stellar-rpc's
        ``history-retention-window``): older ledgers and their transactions are outside
        ``oldestLedger``. None keeps everything (default: None).
    """

    def __init__(self, ledger: EmbeddedLedger, retention_window: int | None = None) -> None:
        if retention_window is not None and retention_window < 1:
            raise ValueError(f"retention_window must be >= 1, got {retention_window}")
        self.ledger = ledger
        self.retention_window = retention_window
        self._meta_cache: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self.table: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
            "getHealth": self.get_health,
            "getNetwork": self.get_network,
            "getLatestLedger": self.get_latest_ledger,
            "getLedgers": self.get_ledgers,
            "getLedgerEntries": self.get_ledger_entries,
            "sendTransaction": self.send_transaction,
            "getTransaction": self.get_transaction,
            "getTransactions": self.get_transactions,
            "getFeeStats": self.get_fee_stats,
        }

    # ---------------------------------------------------------------- helpers
    def _range(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(oldest, latest) headers this server answers for."""
        latest = self.ledger.latest_ledger()
        first = 1
        if self.retention_window is not None:
            first = max(1, latest["seq"] - self.retention_window + 1)
        return self.ledger.header(first), latest

    def _result_xdr(self, t: TxRecord) -> str:
        return stored_result_xdr(t, self.ledger.moved_amount)

    def _ledger_txs(self, seq: int) -> list[TxRecord]:
        out: list[TxRecord] = []
        cursor = None
        while True:
            page = self.ledger.transactions(ledger=seq, cursor=cursor, limit=200)
            out.extend(page.records)
            if len(page.records) < 200:
                return out
            cursor = page.next_cursor

    def _ledger_xdr(self, header: dict[str, Any]) -> tuple[str, str]:
        """(LedgerHeader, LedgerCloseMeta) of a closed ledger, base64; cached (immutable)."""
        seq = header["seq"]
        if seq in self._meta_cache:
            self._meta_cache.move_to_end(seq)
            return self._meta_cache[seq]
        txs = self._ledger_txs(seq)
        pairs = [
            x.TransactionResultPair(
                _hash(t.hash), x.TransactionResult.from_xdr(self._result_xdr(t))
            )
            for t in txs
        ]
        result_set_hash = hashlib.sha256(x.TransactionResultSet(pairs).to_xdr_bytes()).digest()
        ledger_header = x.LedgerHeader(
            ledger_version=x.Uint32(PROTOCOL_VERSION),
            previous_ledger_hash=_hash(header["prev_hash"]),
            scp_value=x.StellarValue(
                tx_set_hash=_hash(header["tx_set_hash"]),
                close_time=x.TimePoint(x.Uint64(header["close_time"])),
                upgrades=[],
                ext=x.StellarValueExt(x.StellarValueType.STELLAR_VALUE_BASIC),
            ),
            tx_set_result_hash=x.Hash(result_set_hash),
            bucket_list_hash=_ZERO,  # no bucket list: entries live in SQLite
            ledger_seq=x.Uint32(seq),
            total_coins=x.Int64(header["total_coins"]),
            fee_pool=x.Int64(header["fee_pool"]),
            inflation_seq=x.Uint32(0),
            id_pool=x.Uint64(0),
            base_fee=x.Uint32(header["base_fee"]),
            base_reserve=x.Uint32(header["base_reserve"]),
            max_tx_set_size=x.Uint32(MAX_TX_SET_SIZE),
            skip_list=[_ZERO] * 4,
            ext=x.LedgerHeaderExt(0),
        )
        envelopes = [x.TransactionEnvelope.from_xdr(t.envelope_xdr) for t in txs]
        classic = (
            [
                x.TxSetComponent(
                    x.TxSetComponentType.TXSET_COMP_TXS_MAYBE_DISCOUNTED_FEE,
                    txs_maybe_discounted_fee=x.TxSetComponentTxsMaybeDiscountedFee(
                        base_fee=x.Int64(header["base_fee"]), txs=envelopes
                    ),
                )
            ]
            if envelopes
            else []
        )
        meta = x.LedgerCloseMeta(
            1,
            v1=x.LedgerCloseMetaV1(
                ext=x.LedgerCloseMetaExt(0),
                ledger_header=x.LedgerHeaderHistoryEntry(
                    hash=_hash(header["hash"]),
                    header=ledger_header,
                    ext=x.LedgerHeaderHistoryEntryExt(0),
                ),
                tx_set=x.GeneralizedTransactionSet(
                    1,
                    v1_tx_set=x.TransactionSetV1(
                        previous_ledger_hash=_hash(header["prev_hash"]),
                        phases=[
                            x.TransactionPhase(0, v0_components=classic),
                            x.TransactionPhase(0, v0_components=[]),  # Soroban: none
                        ],
                    ),
                ),
                tx_processing=[
                    x.TransactionResultMeta(
                        result=pair, fee_processing=_EMPTY_CHANGES, tx_apply_processing=EMPTY_META
                    )
                    for pair in pairs
                ],
                upgrades_processing=[],
                scp_info=[],
                total_byte_size_of_live_soroban_state=x.Uint64(0),
                evicted_keys=[],
                unused=[],
            ),
        )
        encoded = (str(ledger_header.to_xdr()), str(meta.to_xdr()))
        self._meta_cache[seq] = encoded
        if len(self._meta_cache) > 64:
            self._meta_cache.popitem(last=False)
        return encoded

    def _last_modified(self, store_key: tuple[str, ...], entry: Any) -> int:
        """The ledger that last wrote the entry, as the store records it; for an entry written
        by an older version of the store (0), the last ledger of a transaction its account
        took part in, an upper bound."""
        stamped = self.ledger.store.last_modified(store_key)
        if stamped:
            return stamped
        if isinstance(entry, ClaimableBalance):
            return entry.created_ledger or 1  # created once, never modified (claimed: gone)
        row = self.ledger.store.db.execute(
            "SELECT MAX(ledger) FROM tx_accounts WHERE account = ?", (store_key[1],)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 1

    @staticmethod
    def _tx_info(t: TxRecord, result_xdr: str) -> dict[str, Any]:
        return {
            "status": "SUCCESS" if t.successful else "FAILED",
            "txHash": t.hash,
            "applicationOrder": (int(t.paging_token) >> 12) & 0xFFFFF,
            "feeBump": bool(t.inner_hash),
            "envelopeXdr": t.envelope_xdr,
            "resultXdr": result_xdr,
            "resultMetaXdr": EMPTY_META_XDR,
            "ledger": t.ledger,
            "events": {},
        }

    # ---------------------------------------------------------------- methods
    def get_health(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        oldest, latest = self._range()
        return {
            "status": "healthy",
            "latestLedger": latest["seq"],
            "oldestLedger": oldest["seq"],
            "ledgerRetentionWindow": self.retention_window or latest["seq"] - oldest["seq"] + 1,
        }

    def get_network(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        return {
            "friendbotUrl": f"{base_url}/friendbot",
            "passphrase": self.ledger.network_passphrase,
            "protocolVersion": PROTOCOL_VERSION,
        }

    def get_latest_ledger(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        latest = self.ledger.latest_ledger()
        header_xdr, meta_xdr = self._ledger_xdr(latest)
        return {
            "id": latest["hash"],
            "protocolVersion": PROTOCOL_VERSION,
            "sequence": latest["seq"],
            "closeTime": str(latest["close_time"]),
            "headerXdr": header_xdr,
            "metadataXdr": meta_xdr,
        }

    def get_ledgers(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        _check_format(params)
        page = _page(params)
        oldest, latest = self._range()
        first, last = oldest["seq"], latest["seq"]
        if page.cursor is not None:
            if not (page.cursor.isascii() and page.cursor.isdigit() and len(page.cursor) <= 10):
                raise RpcError(INVALID_PARAMS, f"invalid cursor {_shown(page.cursor)}")
            start = int(page.cursor) + 1
            if not first <= start <= last:
                raise RpcError(
                    INVALID_PARAMS,
                    f"cursor ({page.cursor}) must be between the oldest ledger: {first} and "
                    f"the latest ledger: {last} for this rpc instance",
                )
        else:
            start = page.start or 0
            if not first <= start <= last:
                raise RpcError(
                    INVALID_REQUEST,
                    f"start ledger ({start}) must be between the oldest ledger: {first} and "
                    f"the latest ledger: {last} for this rpc instance",
                )
        ledgers = []
        for seq in range(start, min(last, start + page.limit - 1) + 1):
            header = self.ledger.header(seq)
            header_xdr, meta_xdr = self._ledger_xdr(header)
            entry = x.LedgerHeaderHistoryEntry(
                hash=_hash(header["hash"]),
                header=x.LedgerHeader.from_xdr(header_xdr),
                ext=x.LedgerHeaderHistoryEntryExt(0),
            )
            ledgers.append(
                {
                    "hash": header["hash"],
                    "sequence": seq,
                    "ledgerCloseTime": str(header["close_time"]),
                    "headerXdr": str(entry.to_xdr()),
                    "metadataXdr": meta_xdr,
                }
            )
        cursor = str(ledgers[-1]["sequence"]) if ledgers else page.cursor or str(start - 1)
        return {
            "ledgers": ledgers,
            "latestLedger": last,
            "latestLedgerCloseTime": latest["close_time"],
            "oldestLedger": first,
            "oldestLedgerCloseTime": oldest["close_time"],
            "cursor": cursor,
        }

    def get_ledger_entries(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        _check_format(params)
        keys = params.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise RpcError(INVALID_PARAMS, "keys must be a list of base64 LedgerKey XDR strings")
        if len(keys) > MAX_KEYS:
            raise RpcError(
                INVALID_PARAMS, f"key count ({len(keys)}) exceeds maximum supported ({MAX_KEYS})"
            )
        wanted: list[tuple[str, tuple[str, ...] | None]] = []
        for i, text in enumerate(keys):
            try:
                raw = base64.b64decode(text, validate=True)
                key = x.LedgerKey.from_xdr_bytes(raw)
                if key.to_xdr_bytes() != raw:  # trailing bytes
                    raise ValueError("trailing bytes")
            except Exception:  # the XDR unpacker raises assorted types on garbage
                raise RpcError(
                    INVALID_PARAMS, f"cannot unmarshal key value {_shown(text)} at index {i}"
                ) from None
            if key.type == x.LedgerEntryType.TTL:
                raise RpcError(INVALID_PARAMS, "ledger ttl entries cannot be queried directly")
            wanted.append((text, _store_key(key)))
        latest = self.ledger.latest_ledger()["seq"]
        entries, seen = [], set()
        for text, store_key in wanted:
            if store_key is None or store_key in seen:
                continue
            seen.add(store_key)
            entry = self.ledger.store.get(store_key)
            if entry is None:
                continue  # absent, as stellar-rpc answers for an entry that does not exist
            data, ext = entry_xdr(entry)
            entries.append(
                {
                    "key": text,
                    "xdr": str(data.to_xdr()),
                    "lastModifiedLedgerSeq": self._last_modified(store_key, entry),
                    "extXdr": str(ext.to_xdr()),
                }
            )
        return {"entries": entries, "latestLedger": latest}

    def send_transaction(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        _check_format(params)
        envelope = _text(params, "transaction", required=True)
        assert envelope is not None
        try:
            tx_hash = self.ledger.envelope_hash(envelope)
        except LedgerError as err:
            raise RpcError(INVALID_PARAMS, "invalid_xdr", err.message) from None
        latest = self.ledger.latest_ledger()  # as stellar-rpc: the ledger before submission
        answer: dict[str, Any] = {
            "hash": tx_hash,
            "latestLedger": latest["seq"],
            "latestLedgerCloseTime": str(latest["close_time"]),
        }
        if self._stored(tx_hash) is not None:
            return {"status": "DUPLICATE"} | answer
        try:
            result = self.ledger.submit(envelope)
        except LedgerCongestedError:
            return {"status": "TRY_AGAIN_LATER"} | answer
        except LedgerError as err:
            raise RpcError(INVALID_PARAMS, "invalid_xdr", err.message) from None
        if result.applied:
            return {"status": "PENDING"} | answer
        return {"status": "ERROR", "errorResultXdr": self._rejected_xdr(result)} | answer

    def _stored(self, tx_hash: str) -> TxRecord | None:
        """The transaction filed under exactly this hash (a fee bump's own, not its inner)."""
        try:
            t = self.ledger.transaction(tx_hash)
        except NotFoundError:
            return None
        return t if t.hash == tx_hash.lower() else None

    def _rejected_xdr(self, result: SubmitResult) -> str:
        try:
            inner = self.ledger.inner_hash(result.envelope_xdr) if result.inner_tx_code else ""
            return rejected_result_xdr(result, inner)
        except (ResultCodeError, LedgerError):
            return build_result_xdr(result.envelope_xdr, 0, "tx_internal_error", ())

    def get_transaction(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        _check_format(params)
        tx_hash = _text(params, "hash", required=True)
        assert tx_hash is not None
        if len(tx_hash) != 64:
            raise RpcError(INVALID_PARAMS, f"unexpected hash length ({len(tx_hash)})")
        try:
            bytes.fromhex(tx_hash)
        except ValueError:
            raise RpcError(INVALID_PARAMS, "incorrect hash: not hexadecimal") from None
        oldest, latest = self._range()
        answer: dict[str, Any] = {
            "latestLedger": latest["seq"],
            "latestLedgerCloseTime": str(latest["close_time"]),
            "oldestLedger": oldest["seq"],
            "oldestLedgerCloseTime": str(oldest["close_time"]),
            "txHash": tx_hash,
        }
        t = self._stored(tx_hash)
        if t is None or t.ledger < oldest["seq"]:
            return answer | {"status": "NOT_FOUND"}
        info = self._tx_info(t, self._result_xdr(t))
        return answer | info | {"txHash": tx_hash, "createdAt": str(t.created_at)}

    def get_transactions(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        _check_format(params)
        page = _page(params)
        oldest, latest = self._range()
        first, last = oldest["seq"], latest["seq"]
        if page.cursor is not None:
            if not (page.cursor.isascii() and page.cursor.isdigit() and len(page.cursor) <= 19):
                raise RpcError(INVALID_PARAMS, f"invalid cursor {_shown(page.cursor)}")
            position = int(page.cursor)
            if position >= 2**63:
                raise RpcError(INVALID_PARAMS, f"invalid cursor {_shown(page.cursor)}")
            after = toid(position >> 32, (position >> 12) & 0xFFFFF)  # the cursor's transaction
            if position >> 32 < first:
                raise RpcError(
                    INVALID_PARAMS,
                    f"database does not contain metadata for ledger: {position >> 32}",
                )
        else:
            start = page.start or 0
            if not first <= start <= last:
                raise RpcError(
                    INVALID_REQUEST,
                    f"start ledger must be between the oldest ledger: {first} and the latest "
                    f"ledger: {last} for this rpc instance",
                )
            position = after = toid(start, 0)
        records = self.ledger.transactions(cursor=str(after), limit=page.limit).records
        transactions = [
            self._tx_info(t, self._result_xdr(t)) | {"createdAt": t.created_at} for t in records
        ]
        if len(records) == page.limit:
            last_tx = records[-1]
            cursor = int(last_tx.paging_token) | 1
        else:  # everything up to the latest ledger was read, as stellar-rpc's cursor says
            cursor = max(position, toid(last, latest["tx_count"], 1))
        return {
            "transactions": transactions,
            "latestLedger": last,
            "latestLedgerCloseTimestamp": latest["close_time"],
            "oldestLedger": first,
            "oldestLedgerCloseTimestamp": oldest["close_time"],
            "cursor": str(cursor),
        }

    def get_fee_stats(self, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        """stellar-rpc's statistics: fee charged per operation of each transaction in the last
        10 ledgers (classic; nearest-rank percentiles), none for Soroban (no contracts here)."""
        oldest, latest = self._range()
        since = max(oldest["seq"], latest["seq"] - CLASSIC_FEE_WINDOW + 1)
        rows = self.ledger.store.db.execute(
            "SELECT fee_charged, op_count FROM txs WHERE ledger >= ?", (since,)
        ).fetchall()
        fees = sorted(fee // ops for fee, ops in rows if ops)
        soroban_ledgers = min(SOROBAN_FEE_WINDOW, latest["seq"] - oldest["seq"] + 1)
        return {
            "sorobanInclusionFee": _distribution([], soroban_ledgers),
            "inclusionFee": _distribution(fees, latest["seq"] - since + 1),
            "latestLedger": latest["seq"],
        }


def _distribution(fees: list[int], ledger_count: int) -> dict[str, Any]:
    """stellar-rpc's FeeDistribution (numbers as strings, ledgerCount a number); all zero with
    no transactions, as stellar-rpc reports an empty window."""
    names = ("p10", "p20", "p30", "p40", "p50", "p60", "p70", "p80", "p90", "p95", "p99")
    if not fees:
        zero = dict.fromkeys(("max", "min", "mode", *names), "0")
        return zero | {"transactionCount": "0", "ledgerCount": ledger_count}
    counts: dict[int, int] = {}
    for fee in fees:
        counts[fee] = counts.get(fee, 0) + 1
    mode = max(sorted(counts), key=lambda f: counts[f])  # the lowest of the most frequent
    out = {"max": str(fees[-1]), "min": str(fees[0]), "mode": str(mode)}
    for name in names:
        p = int(name[1:])
        out[name] = str(fees[(p * len(fees) + 99) // 100 - 1])
    return out | {"transactionCount": str(len(fees)), "ledgerCount": ledger_count}


# --------------------------------------------------------------------------- JSON-RPC framing
def _error(rid: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": err}


_MISSING = object()


def _valid_id(rid: Any) -> bool:
    return rid is None or (isinstance(rid, str | int | float) and not isinstance(rid, bool))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number with a fraction or exponent; 1e999 (inf) could not be written back."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:_SHOWN]} is out of range")
    return value


def _cost(request: Any) -> int:
    """What a request may make the server build, in page items: its page limit (getLedgers,
    getTransactions), its keys (getLedgerEntries), else 1. Read leniently: a malformed request
    is refused by its method for little work."""
    params = request.get("params") if isinstance(request, dict) else None
    if not isinstance(params, dict):
        return 1
    method = request.get("method")
    if method == "getLedgerEntries":
        keys = params.get("keys")
        return max(1, len(keys)) if isinstance(keys, list) else 1
    if method in ("getLedgers", "getTransactions"):
        pagination = params.get("pagination")
        limit = pagination.get("limit") if isinstance(pagination, dict) else None
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit <= MAX_PAGE:
            return limit
        return DEFAULT_PAGE
    return 1


def rpc_endpoint(
    ledger: EmbeddedLedger, *, max_body: int, retention_window: int | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint for ``POST /rpc``: one JSON-RPC request or a batch.

    Parameters
    ----------
    ledger : EmbeddedLedger
        The ledger served.
    max_body : int
        Largest request body accepted, in bytes (as the Horizon routes).
    retention_window : int, optional
        See :class:`RpcMethods`.
    """
    methods = RpcMethods(ledger, retention_window)
    over_budget = (
        f"over the batch's budget of {BATCH_BUDGET} page items (ledgers, transactions, keys): "
        "not run; send it in a request of its own"
    )

    def one(request: Any, base_url: str) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return _error(None, INVALID_REQUEST, "a request must be a JSON object")
        rid = request.get("id", _MISSING)
        notification = rid is _MISSING
        if not notification and not _valid_id(rid):
            return _error(None, INVALID_REQUEST, "id must be a string, a number or null")
        shown_id = None if notification else rid
        if request.get("jsonrpc") != "2.0":
            return _error(shown_id, INVALID_REQUEST, 'jsonrpc must be exactly "2.0"')
        name = request.get("method")
        if not isinstance(name, str):
            return _error(shown_id, INVALID_REQUEST, "method must be a string")
        handler = methods.table.get(name)
        if handler is None:
            return _error(shown_id, METHOD_NOT_FOUND, f"method not found: {_shown(name)}")
        params = request.get("params")
        try:
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise RpcError(
                    INVALID_PARAMS, "params must be an object (by name); arrays are not supported"
                )
            result = handler(params, base_url)
        except RpcError as err:
            return None if notification else _error(shown_id, err.code, err.message, err.data)
        except LedgerError as err:
            return None if notification else _error(shown_id, INVALID_PARAMS, err.message)
        except Exception:  # a bug, not the client's doing: answered, never a 500
            log.exception("rpc method %s failed", name)
            return None if notification else _error(shown_id, INTERNAL_ERROR, "internal error")
        return None if notification else {"jsonrpc": "2.0", "id": rid, "result": result}

    async def endpoint(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return JSONResponse(
                _error(None, INVALID_REQUEST, "content-type must be application/json"),
                status_code=415,
            )
        too_big = _error(None, INVALID_REQUEST, f"request body larger than {max_body} bytes")
        try:
            declared = int(request.headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        if declared > max_body:
            return JSONResponse(too_big)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return JSONResponse(too_big)
        try:
            payload = json.loads(bytes(body), parse_constant=_reject_constant, parse_float=_finite)
        except (ValueError, RecursionError) as err:
            return JSONResponse(_error(None, PARSE_ERROR, f"parse error: {type(err).__name__}"))
        base_url = str(request.base_url).rstrip("/")
        if isinstance(payload, list):
            if not payload:
                return JSONResponse(_error(None, INVALID_REQUEST, "empty batch"))
            if len(payload) > MAX_BATCH:
                return JSONResponse(
                    _error(None, INVALID_REQUEST, f"a batch holds at most {MAX_BATCH} requests")
                )
            answers: list[dict[str, Any]] = []
            spent = 0
            for request in payload:
                spent += _cost(request)
                if spent > BATCH_BUDGET:
                    rid = request.get("id", _MISSING) if isinstance(request, dict) else None
                    if rid is not _MISSING:  # a notification past the budget: dropped
                        shown = rid if _valid_id(rid) else None
                        answers.append(_error(shown, INVALID_REQUEST, over_budget))
                    continue
                answer = one(request, base_url)
                if answer is not None:
                    answers.append(answer)
            return JSONResponse(answers) if answers else Response(status_code=204)
        answer = one(payload, base_url)
        return JSONResponse(answer) if answer is not None else Response(status_code=204)

    return endpoint


__all__ = ["EMPTY_META_XDR", "RpcError", "RpcMethods", "entry_xdr", "rpc_endpoint"]
