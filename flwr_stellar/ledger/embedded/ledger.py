"""EmbeddedLedger: applies real signed Stellar envelopes by Stellar's rules, on SQLite.

Zero set-up (a file or ``:memory:``), its own network passphrase so its envelopes can never be
replayed on a real network, and the checks stellar-core makes, in the same two classes:

- rejected, nothing applied, nothing charged: malformed XDR, tx_no_source_account,
  tx_missing_operation, tx_too_early / tx_too_late, tx_insufficient_fee, tx_bad_seq,
  tx_bad_auth / tx_bad_auth_extra (signatures against signer weights and thresholds),
  op_bad_auth / op_no_source_account / op_not_supported (as tx_failed), tx_insufficient_balance;
- applied: the fee (min(bid, base fee x ops)) goes to the fee pool and the sequence number is
  consumed, then all operations apply or, if any fails, none does (tx_failed + op codes).

Fee bump envelopes (CAP-15) too: the fee account's own checks (tx_no_source_account,
tx_insufficient_fee for a bid below base fee x (ops + 1) or a fee rate below the inner one,
tx_bad_auth, tx_bad_auth_extra, tx_insufficient_balance), then the inner transaction's without
its fee (tx_fee_bump_inner_failed + the inner code, nothing charged); applied, the fee account
pays min(bid, base fee x (ops + 1)) and the inner source's sequence number is consumed
(tx_fee_bump_inner_success / tx_fee_bump_inner_failed). A fee bump is found by its own hash and
by its inner transaction's.

Every accepted transaction closes one ledger whose header hash chains to the previous one and
commits to the transaction set; ``verify_chain`` re-derives all of it from the stored
envelopes. One SQLite transaction per ledger: a crash never leaves half a ledger behind.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import json
import struct
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Keypair, StrKey, TransactionBuilder
from stellar_sdk.xdr import (
    DecoratedSignature,
    EnvelopeType,
    MemoType,
    OperationType,
    PreconditionType,
    Transaction,
    TransactionEnvelope,
)

from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import (
    NATIVE,
    STROOPS_PER_UNIT,
    AccountInfo,
    Balance,
    ClaimableBalanceRecord,
    LedgerCongestedError,
    LedgerError,
    NotFoundError,
    Page,
    PaymentRecord,
    SubmitResult,
    TxRecord,
)
from flwr_stellar.ledger.embedded.entries import (
    BASE_FEE,
    BASE_RESERVE,
    Account,
    ClaimableBalance,
    DataEntry,
    TrustLine,
)
from flwr_stellar.ledger.embedded.ops import OPERATIONS, ApplyContext, set_options
from flwr_stellar.ledger.embedded.ops.xdr_util import muxed_id
from flwr_stellar.ledger.embedded.state import Overlay
from flwr_stellar.ledger.embedded.store import Store
from flwr_stellar.ledger.params import parse_asset, parse_uint

DEFAULT_PASSPHRASE = "flwr-stellar embedded ; 2026"


@dataclass(frozen=True)
class Congestion:
    """Emulate a busy public network (for tests and rehearsals of testnet/pubnet pacing).

    Parameters
    ----------
    ops_per_ledger : int
        Operations the network includes per ledger (testnet 200, pubnet 1,000); a submission
        that would exceed them within ``ledger_close_s`` is refused with
        :class:`LedgerCongestedError` (Horizon: 504, not included), nothing applied.
    ledger_close_s : float
        Seconds between ledger closes (Stellar: ~5).
    fee_per_op : int
        The going fee per operation (surge pricing); lower bids get ``tx_insufficient_fee``.
    """

    ops_per_ledger: int
    ledger_close_s: float = 5.0
    fee_per_op: int = BASE_FEE

    def __post_init__(self) -> None:
        if self.ops_per_ledger < 1 or self.ledger_close_s <= 0 or self.fee_per_op < BASE_FEE:
            raise ValueError(
                f"Congestion needs ops_per_ledger >= 1, ledger_close_s > 0 and fee_per_op >= "
                f"{BASE_FEE}, got {self}"
            )


TOTAL_COINS = 100_000_000_000 * STROOPS_PER_UNIT  # like pubnet's genesis supply
FRIENDBOT_STARTING_BALANCE = 10_000 * STROOPS_PER_UNIT
MAX_ENVELOPE_BYTES = 256 * 1024
ZERO_HASH = "0" * 64
_TX_TYPE = struct.pack(">i", EnvelopeType.ENVELOPE_TYPE_TX.value)
_FEE_BUMP_TYPE = struct.pack(">i", EnvelopeType.ENVELOPE_TYPE_TX_FEE_BUMP.value)
_FEE_BUMP_B64 = base64.b64encode(_FEE_BUMP_TYPE).decode()[:5]  # "AAAAB": the first 30 bits


class ChainError(Exception):
    """The stored ledger history does not verify; the message names the first bad ledger."""


class _Rejected(Exception):
    def __init__(self, tx_code: str, op_codes: tuple[str, ...] = (), inner_code: str = "") -> None:
        super().__init__(tx_code)
        self.tx_code, self.op_codes, self.inner_code = tx_code, op_codes, inner_code


@dataclass(frozen=True)
class Decoded:
    """A received envelope, decoded once: a v1 transaction or a fee bump wrapping one."""

    envelope: str  # base64, as received
    raw: bytes
    env: TransactionEnvelope
    tx: Transaction  # the transaction (a fee bump's inner one)
    signatures: list[DecoratedSignature]  # the transaction's own signatures
    hash: bytes  # what the ledger files it under (a fee bump's own hash)
    inner_hash: bytes  # the transaction's hash: what its signatures sign

    @property
    def op_count(self) -> int:
        return len(self.tx.operations)


def _signatures_len(signatures: list[DecoratedSignature]) -> int:
    """Bytes of an XDR signature array: count, then hint + length + padded signature each."""
    return 4 + sum(8 + _pad4(len(s.signature.signature)) for s in signatures)


def _signed_by(
    candidates: set[str], signatures: list[DecoratedSignature], tx_hash: bytes
) -> dict[str, int]:
    """The candidate keys whose valid signature over ``tx_hash`` is among ``signatures``,
    each with the index of the (first) signature it made."""
    signed_by: dict[str, int] = {}
    for index, dsig in enumerate(signatures):
        hint, sig = dsig.hint.signature_hint, dsig.signature.signature
        for key in candidates:
            if key in signed_by:
                continue
            raw_key = StrKey.decode_ed25519_public_key(key)
            if raw_key[-4:] != hint:
                continue
            try:
                VerifyKey(raw_key).verify(tx_hash, sig)
            except (BadSignatureError, ValueError):
                continue
            signed_by[key] = index
            break
    return signed_by


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def header_hash(header: dict[str, Any]) -> str:
    body = {k: v for k, v in header.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def toid(ledger: int, tx_index: int, op_index: int = 0) -> int:
    """Horizon's total order id: the paging token of transactions and operations."""
    return (ledger << 32) | (tx_index << 12) | op_index


class EmbeddedLedger:
    """A one-machine Stellar-rules ledger in SQLite: the zero-set-up default backend.

    It applies real signed envelopes as stellar-core would (signatures and thresholds, sequence
    numbers, fees, reserves, sponsorship) and chains ledger headers by hash. The methods are
    those of the :class:`~flwr_stellar.ledger.base.Ledger` protocol.

    Parameters
    ----------
    path : str or Path
        SQLite file (created if new); ``":memory:"`` for a throw-away ledger.
    network_passphrase : str
        Its own network's passphrase, so its envelopes can never replay on a real network.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        network_passphrase: str = DEFAULT_PASSPHRASE,
        *,
        congestion: Congestion | None = None,
    ) -> None:
        self.congestion = congestion
        self._recent_ops: collections.deque[tuple[float, int]] = collections.deque()
        self.congestion_refusals = 0
        self.store = Store(path)
        stored = self.store.meta("network_passphrase")
        if stored is not None and stored != network_passphrase:
            raise LedgerError(
                f"{path} holds a ledger of network {stored!r}, not {network_passphrase!r}"
            )
        self._passphrase = network_passphrase
        self.network_id = hashlib.sha256(network_passphrase.encode()).digest()
        # Like stellar-core: the root account's seed is the network id.
        self.root = Keypair.from_raw_ed25519_seed(self.network_id)
        self._lock = threading.Lock()
        if stored is None:
            self._genesis()

    @property
    def network_passphrase(self) -> str:
        return self._passphrase

    @property
    def location(self) -> str:
        return str(self.store.path)

    def close(self) -> None:
        self.store.close()

    def history_begins(self) -> int | None:
        """None: the embedded ledger keeps every transaction since genesis."""
        return None

    # ------------------------------------------------------------------ genesis
    def _genesis(self) -> None:
        with self._lock:
            self.store.begin()
            try:
                if self.store.meta("network_passphrase") is None:
                    self.store.set_meta("network_passphrase", self._passphrase)
                    root = Account(account_id=self.root.public_key, balance=TOTAL_COINS, seq_num=0)
                    self.store.write_entries([(("acct", root.account_id), root)], 1)
                    header = {
                        "seq": 1,
                        "close_time": int(time.time()),
                        "prev_hash": ZERO_HASH,
                        "tx_set_hash": hashlib.sha256(b"").hexdigest(),
                        "total_coins": TOTAL_COINS,
                        "fee_pool": 0,
                        "base_fee": BASE_FEE,
                        "base_reserve": BASE_RESERVE,
                        "tx_count": 0,
                        "op_count": 0,
                    }
                    header["hash"] = header_hash(header)
                    self.store.write_header(header)
                self.store.commit()
            except BaseException:
                self.store.rollback()
                raise

    # ------------------------------------------------------------------ submit
    def submit(self, envelope_xdr: str) -> SubmitResult:
        """Apply one transaction in a ledger of its own (or reject it, closing nothing)."""
        return self.submit_many([envelope_xdr])[0]

    def submit_many(self, envelopes: list[str]) -> list[SubmitResult]:
        """Apply a transaction set: valid transactions, in order, in ONE new ledger.

        Like a Stellar ledger close: rejected transactions are left out, the others are
        applied (succeeding or failing-and-charged) one after the other, each seeing the
        effects of those before it. Malformed envelopes raise before anything is applied.
        """
        decoded = []
        for index, envelope in enumerate(envelopes):
            try:
                decoded.append(self._decode(envelope))
            except LedgerError as err:
                raise LedgerError(f"envelope {index}: {err.message}") from None
        with self._lock:
            if self.congestion is not None:
                self._admit(decoded)
            self.store.begin()
            try:
                results = self._close_ledger(decoded)
            except BaseException:
                self.store.rollback()
                raise
            if self.congestion is not None:
                applied = sum(
                    d.op_count for d, r in zip(decoded, results, strict=True) if r.applied
                )
                self._recent_ops.append((time.monotonic(), applied))
        return results

    def _admit(self, envelopes: list[Decoded]) -> None:
        """Congestion emulation: refuse (apply nothing) what would put more operations into
        the last ``ledger_close_s`` seconds than ``ops_per_ledger``."""
        assert self.congestion is not None
        now = time.monotonic()
        while self._recent_ops and self._recent_ops[0][0] <= now - self.congestion.ledger_close_s:
            self._recent_ops.popleft()
        wanted = sum(d.op_count for d in envelopes)
        used = sum(ops for _, ops in self._recent_ops)
        if used + wanted > self.congestion.ops_per_ledger:
            self.congestion_refusals += 1
            raise LedgerCongestedError(
                f"ledger full: {used} of {self.congestion.ops_per_ledger} operations used in "
                f"the last {self.congestion.ledger_close_s:g} s; transaction not included, "
                "try again later"
            )

    def _close_ledger(self, decoded: list[Decoded]) -> list[SubmitResult]:
        last = self.store.last_header()
        assert last is not None
        ledger_seq, close_time = last["seq"] + 1, max(last["close_time"], int(time.time()))
        view = Overlay(self.store)
        results: list[SubmitResult] = []
        rows: list[Any] = []
        tx_hashes: list[bytes] = []
        fees, ops = 0, 0
        for d in decoded:
            try:
                result, row = self._apply(view, d, ledger_seq, close_time, len(rows) + 1)
            except _Rejected as rej:
                stale = "tx_bad_seq" in (rej.tx_code, rej.inner_code)
                original = self._already_applied(d.hash) if stale else None
                if original is not None:  # Horizon's safe resubmission: the first outcome again
                    results.append(replace(original, envelope_xdr=d.envelope))
                    continue
                results.append(
                    SubmitResult(
                        hash=d.hash.hex(),
                        successful=False,
                        applied=False,
                        ledger=None,
                        fee_charged=0,
                        tx_code=rej.tx_code,
                        op_codes=rej.op_codes,
                        envelope_xdr=d.envelope,
                        inner_tx_code=rej.inner_code,
                    )
                )
                continue
            results.append(replace(result, envelope_xdr=d.envelope))
            rows.append(row)
            fees, ops = fees + result.fee_charged, ops + row[0]["op_count"]
            tx_hashes.append(d.hash)
        if not rows:
            self.store.rollback()  # nothing valid: no ledger closes
            return results
        self.store.write_entries(view.items(), ledger_seq)
        header = {
            "seq": ledger_seq,
            "close_time": close_time,
            "prev_hash": last["hash"],
            "tx_set_hash": hashlib.sha256(b"".join(tx_hashes)).hexdigest(),
            "total_coins": last["total_coins"],
            "fee_pool": last["fee_pool"] + fees,
            "base_fee": BASE_FEE,
            "base_reserve": BASE_RESERVE,
            "tx_count": len(rows),
            "op_count": ops,
        }
        header["hash"] = header_hash(header)
        self.store.write_header(header)
        for tx_row, participants, payments in rows:
            self.store.write_tx(tx_row, participants, payments)
            if "fee_account" in tx_row:
                self.store.write_fee_bump(tx_row)
        self.store.commit()
        return results

    def _already_applied(self, tx_hash: bytes) -> SubmitResult | None:
        """The original outcome of a transaction already in a ledger (its sequence number is
        used, hence tx_bad_seq), so a client that lost the first answer can resubmit safely."""
        try:
            record = self.transaction(tx_hash.hex())
        except NotFoundError:
            return None
        return SubmitResult(
            hash=record.hash,
            successful=record.successful,
            applied=True,
            ledger=record.ledger,
            fee_charged=record.fee_charged,
            tx_code=record.tx_code,
            op_codes=record.op_codes,
            inner_tx_code=record.inner_tx_code,
        )

    def _decode(self, envelope_xdr: str) -> Decoded:
        """Decode once; hashes are taken over the received bytes, not a re-encoding."""
        if not isinstance(envelope_xdr, str) or len(envelope_xdr) > MAX_ENVELOPE_BYTES * 4 // 3:
            raise LedgerError("transaction envelope missing or too large")
        try:
            raw = base64.b64decode(envelope_xdr, validate=True)
            env = TransactionEnvelope.from_xdr_bytes(raw)
        except (binascii.Error, ValueError, EOFError, struct.error, IndexError, TypeError) as err:
            raise LedgerError(f"malformed transaction envelope: {type(err).__name__}") from None
        except Exception as err:  # the XDR unpacker raises assorted types on garbage
            raise LedgerError(f"malformed transaction envelope: {type(err).__name__}") from None
        if env.type == EnvelopeType.ENVELOPE_TYPE_TX and env.v1 is not None:
            tx_bytes = raw[4 : len(raw) - _signatures_len(env.v1.signatures)]
            tx_hash = hashlib.sha256(self.network_id + _TX_TYPE + tx_bytes).digest()
            return Decoded(envelope_xdr, raw, env, env.v1.tx, env.v1.signatures, tx_hash, tx_hash)
        if env.type == EnvelopeType.ENVELOPE_TYPE_TX_FEE_BUMP and env.fee_bump is not None:
            fee_bump = env.fee_bump
            inner = fee_bump.tx.inner_tx.v1
            if inner is None:
                raise LedgerError("a fee bump must wrap a v1 transaction envelope")
            bump_bytes = raw[4 : len(raw) - _signatures_len(fee_bump.signatures)]
            # fee source (muxed account), fee (int64), the inner envelope's type, then the
            # inner envelope: its transaction, its signatures; the fee bump's ext (4 bytes)
            start = len(fee_bump.tx.fee_source.to_xdr_bytes()) + 8 + 4
            tx_bytes = bump_bytes[start : len(bump_bytes) - 4 - _signatures_len(inner.signatures)]
            return Decoded(
                envelope_xdr,
                raw,
                env,
                inner.tx,
                inner.signatures,
                hashlib.sha256(self.network_id + _FEE_BUMP_TYPE + bump_bytes).digest(),
                hashlib.sha256(self.network_id + _TX_TYPE + tx_bytes).digest(),
            )
        raise LedgerError("only v1 and fee bump transaction envelopes are supported (no v0)")

    def inner_hash(self, envelope_xdr: str) -> str:
        """The hash (hex) of the transaction an envelope carries: a fee bump's inner one."""
        return self._decode(envelope_xdr).inner_hash.hex()

    def envelope_hash(self, envelope_xdr: str) -> str:
        """The hash (hex) the ledger files an envelope under (a fee bump's own hash), taken over
        the received bytes; LedgerError if it does not decode. Lets a front end tell a
        resubmission from a new transaction before submitting it."""
        return self._decode(envelope_xdr).hash.hex()

    def _valid_transaction(
        self, root: Overlay, d: Decoded, close_time: int, min_fee: int | None
    ) -> Account:
        """The source of a transaction that may apply (``min_fee`` None: a fee bump's inner
        transaction, whose own fee is not charged); raise _Rejected otherwise."""
        tx = d.tx
        src = root.account(muxed_id(tx.source_account))
        if src is None:
            raise _Rejected("tx_no_source_account")
        ops = tx.operations
        if not ops:
            raise _Rejected("tx_missing_operation")
        unsupported = tuple(
            "op_success" if op.body.type in OPERATIONS else "op_not_supported" for op in ops
        )
        if "op_not_supported" in unsupported:
            raise _Rejected("tx_failed", unsupported)
        self._check_time_bounds(tx.cond, close_time)
        if min_fee is not None and tx.fee.uint32 < min_fee:
            raise _Rejected("tx_insufficient_fee")
        if tx.seq_num.sequence_number.int64 != src.seq_num + 1:
            raise _Rejected("tx_bad_seq")
        self._check_signatures(root, src, ops, d.signatures, d.inner_hash)
        return src

    def _apply(
        self,
        root: Overlay,
        d: Decoded,
        ledger_seq: int,
        close_time: int,
        idx: int,
    ) -> tuple[SubmitResult, tuple[dict[str, Any], set[str], list[tuple[Any, ...]]]]:
        """Check and apply one transaction on ``root``; raise _Rejected if it is invalid."""
        tx = d.tx
        source = muxed_id(tx.source_account)
        ops = tx.operations
        per_op = BASE_FEE if self.congestion is None else self.congestion.fee_per_op
        fee_bump = d.env.fee_bump
        if fee_bump is None:
            payer, bid, min_fee = source, tx.fee.uint32, per_op * len(ops)
            self._valid_transaction(root, d, close_time, min_fee)
        else:
            # CAP-15: the fee source's checks first, then the inner transaction's without its
            # fee; an invalid inner transaction rejects the whole, nothing charged
            payer = muxed_id(fee_bump.tx.fee_source)
            fee_source = root.account(payer)
            if fee_source is None:
                raise _Rejected("tx_no_source_account")
            bid, min_fee = fee_bump.tx.fee.int64, per_op * (len(ops) + 1)
            # the fee rate may not drop below the inner one: fee / (ops + 1) >= inner fee / ops
            if bid < min_fee or bid * len(ops) < tx.fee.uint32 * (len(ops) + 1):
                raise _Rejected("tx_insufficient_fee")
            candidates = {payer, *(k for k, _ in fee_source.signers)}
            signed_by = _signed_by(candidates, fee_bump.signatures, d.hash)
            if sum(fee_source.weight_of(k) for k in signed_by) < max(1, fee_source.low):
                raise _Rejected("tx_bad_auth")
            if len(signed_by) != len(fee_bump.signatures):
                raise _Rejected("tx_bad_auth_extra")
            try:
                self._valid_transaction(root, d, close_time, None)
            except _Rejected as rej:
                raise _Rejected("tx_fee_bump_inner_failed", rej.op_codes, rej.tx_code) from None
        fee = min(bid, min_fee)
        paying = root.account(payer)
        assert paying is not None
        if paying.available(BASE_RESERVE) < fee:
            raise _Rejected("tx_insufficient_balance")

        # Applied from here on: the fee and the sequence number are taken whatever happens.
        charged = Overlay(root)
        charged.update_account(payer, lambda a: replace(a, balance=a.balance - fee))
        charged.update_account(
            source, lambda a: replace(a, seq_num=tx.seq_num.sequence_number.int64)
        )
        ops_state = Overlay(charged)
        ctx = ApplyContext(
            ledger_seq=ledger_seq,
            base_reserve=BASE_RESERVE,
            close_time=close_time,
            tx_source=source,
            tx_seq=tx.seq_num.sequence_number.int64,
        )
        codes = []
        for op_index, op in enumerate(ops, start=1):
            ctx.op_index = op_index
            op_source = muxed_id(op.source_account) if op.source_account else source
            if ops_state.account(op_source) is None:
                codes.append("op_no_source_account")  # never created, or merged away
                continue
            codes.append(OPERATIONS[op.body.type].apply(op, op_source, ops_state, ctx))
        successful = all(c == "op_success" for c in codes) and not ctx.sponsoring
        tx_code = (
            "tx_success"
            if successful
            else (
                "tx_bad_sponsorship"
                if ctx.sponsoring and all(c == "op_success" for c in codes)
                else "tx_failed"
            )
        )
        inner_code = ""
        if fee_bump is not None:
            inner_code = tx_code
            tx_code = "tx_fee_bump_inner_success" if successful else "tx_fee_bump_inner_failed"
        if successful:
            ops_state.merge_into(charged)
        charged.merge_into(root)

        tx_hex = d.hash.hex()
        memo_type, memo = _memo(tx.memo)
        participants = {source, payer} | {
            muxed_id(op.source_account) for op in ops if op.source_account
        }
        if successful:
            participants |= ctx.participants
        payments = []
        if successful:
            for i, kind, frm, to, asset, amount in ctx.payments:
                pid = str(toid(ledger_seq, idx, i))  # the operation's id, as Horizon's
                for account in {frm, to}:
                    payments.append(
                        (pid, account, ledger_seq, idx, i, tx_hex, kind, frm, to, asset, amount)
                    )
                participants |= {frm, to}
        row = {
            "hash": tx_hex,
            "ledger": ledger_seq,
            "idx": idx,
            "source": source,
            "fee_charged": fee,
            "successful": int(successful),
            "tx_code": tx_code,
            "op_codes": codes,
            "memo_type": memo_type,
            "memo": memo,
            "op_count": len(ops),
            "envelope": base64.b64encode(d.raw).decode(),
            "created_at": close_time,
        }
        if fee_bump is not None:
            row |= {
                "fee_account": payer,
                "inner_hash": d.inner_hash.hex(),
                "inner_code": inner_code,
            }
        result = SubmitResult(
            hash=tx_hex,
            successful=successful,
            applied=True,
            ledger=ledger_seq,
            fee_charged=fee,
            tx_code=tx_code,
            op_codes=tuple(codes),
            inner_tx_code=inner_code,
        )
        return result, (row, participants, payments)

    @staticmethod
    def _check_time_bounds(cond: Any, close_time: int) -> None:
        if cond.type == PreconditionType.PRECOND_NONE:
            return
        if cond.type == PreconditionType.PRECOND_V2:
            v2 = cond.v2
            if (
                v2.ledger_bounds is not None
                or v2.min_seq_num is not None
                or v2.min_seq_age.duration.uint64
                or v2.min_seq_ledger_gap.uint32
                or v2.extra_signers
            ):
                raise _Rejected("tx_not_supported")
            bounds = v2.time_bounds
        else:
            bounds = cond.time_bounds
        if bounds is None:
            return
        if bounds.min_time.time_point.uint64 > close_time:
            raise _Rejected("tx_too_early")
        max_time = bounds.max_time.time_point.uint64
        if max_time and max_time < close_time:
            raise _Rejected("tx_too_late")

    @staticmethod
    def _check_signatures(
        st: Overlay, src: Account, ops: list[Any], signatures: list[Any], tx_hash: bytes
    ) -> None:
        """Weights of valid signatures against each needed threshold; no signature unused."""
        # Like stellar-core: an operation whose source account does not exist yet (created
        # by an earlier operation of the same transaction) needs that key's own signature;
        # whether the account exists is checked when the operation applies.
        accounts: dict[str, Account] = {src.account_id: src}
        for op in ops:
            if op.source_account is not None:
                op_src = muxed_id(op.source_account)
                accounts[op_src] = st.account(op_src) or Account(
                    account_id=op_src, balance=0, seq_num=0
                )
        candidates = set()
        for account in accounts.values():
            candidates.add(account.account_id)
            candidates.update(s for s, _ in account.signers)
        signed_by = _signed_by(candidates, signatures, tx_hash)
        used: set[int] = set()

        def authorized(account: Account, level: str) -> bool:
            needed = max(1, {"low": account.low, "med": account.med, "high": account.high}[level])
            keys = [k for k in signed_by if account.weight_of(k) > 0]
            weight = sum(account.weight_of(k) for k in keys)
            if weight >= needed:
                used.update(signed_by[k] for k in keys)
                return True
            return False

        if not authorized(src, "low"):
            raise _Rejected("tx_bad_auth")
        codes = []
        for op in ops:
            account = accounts[muxed_id(op.source_account) if op.source_account else src.account_id]
            module = OPERATIONS[op.body.type]
            level = set_options.threshold(op) if module is set_options else module.THRESHOLD
            codes.append("op_success" if authorized(account, level) else "op_bad_auth")
        if "op_bad_auth" in codes:
            raise _Rejected("tx_failed", tuple(codes))
        if len(used) != len(signatures):
            raise _Rejected("tx_bad_auth_extra")

    # ------------------------------------------------------------------ queries
    def load_account(self, account_id: str) -> AccountInfo:
        if not StrKey.is_valid_ed25519_public_key(account_id):
            raise LedgerError(f"invalid account id {account_id!r}")
        acct = self.store.get(("acct", account_id))
        if not isinstance(acct, Account):
            raise NotFoundError(f"account {account_id} not found")
        lines = [
            e for e in self.store.entries_with_prefix("tl", account_id) if isinstance(e, TrustLine)
        ]
        data = [
            e
            for e in self.store.entries_with_prefix("data", account_id)
            if isinstance(e, DataEntry)
        ]
        return AccountInfo(
            account_id=account_id,
            sequence=acct.seq_num,
            balances=(
                *(Balance(line.asset, line.balance, line.limit, line.flags) for line in lines),
                Balance(NATIVE, acct.balance),
            ),
            thresholds=(acct.low, acct.med, acct.high),
            master_weight=acct.master_weight,
            signers=acct.signers,
            flags=acct.flags,
            num_subentries=acct.num_subentries,
            home_domain=acct.home_domain,
            data=tuple((d.name, d.value) for d in data),
            num_sponsoring=acct.num_sponsoring,
            num_sponsored=acct.num_sponsored,
        )

    def latest_ledger(self) -> dict[str, Any]:
        header = self.store.last_header()
        assert header is not None
        return header

    def transaction(self, tx_hash: str) -> TxRecord:
        """A transaction by its hash, or a fee bump by its inner transaction's (as Horizon)."""
        wanted = tx_hash.lower()
        row = self.store.db.execute(f"SELECT {_TX_COLS} FROM txs WHERE hash = ?", (wanted,))
        row = row.fetchone()
        if row is None and (outer := self.store.outer_hash(wanted)) is not None:
            row = self.store.db.execute(f"SELECT {_TX_COLS} FROM txs WHERE hash = ?", (outer,))
            row = row.fetchone()
        if row is None:
            raise NotFoundError(f"transaction {tx_hash} not found")
        return _tx_record(row, self.store)

    def header(self, seq: int) -> dict[str, Any]:
        """One ledger header by sequence number (Horizon's ``/ledgers/{seq}``)."""
        header = self.store.header(seq)
        if header is None:
            raise NotFoundError(f"ledger {seq} not found")
        return header

    def transactions(
        self,
        *,
        ledger: int | None = None,
        cursor: str | None = None,
        limit: int = 10,
        order: str = "asc",
    ) -> Page[TxRecord]:
        """All transactions (or those of one ledger), in ledger order, paged by TOID."""
        where, args, direction = _paging(cursor, order, "((ledger << 32) | (idx << 12))")
        if ledger is not None:
            where, args = f"AND ledger = ? {where}", (ledger, *args)
        rows = self.store.db.execute(
            f"SELECT {_TX_COLS} FROM txs WHERE 1 = 1 {where} "
            f"ORDER BY ledger {direction}, idx {direction} LIMIT ?",
            (*args, _limit(limit)),
        ).fetchall()
        records = tuple(_tx_record(r, self.store) for r in rows)
        return Page(records, records[-1].paging_token if records else cursor)

    def operations(
        self,
        *,
        account: str | None = None,
        tx_hash: str | None = None,
        ledger: int | None = None,
        cursor: str | None = None,
        limit: int = 10,
        order: str = "asc",
    ) -> Page[tuple[TxRecord, int]]:
        """Operations as (transaction, 1-based index), paged by operation id (TOID).

        ``account`` selects the operations of the transactions it took part in; ``tx_hash`` one
        transaction's; ``ledger`` one ledger's; none of them, all.
        """
        _limit(limit)
        _paging(cursor, order, "x")  # validates cursor and order
        start = int(cursor) if cursor else None
        tx_cursor = None
        if start is not None:  # the transaction holding the cursor's operation, inclusive
            tx_start = start & ~0xFFF
            tx_cursor = str(tx_start - 1 if order == "asc" else tx_start + 1)
        if tx_hash is not None:
            txs: tuple[TxRecord, ...] = (self.transaction(tx_hash),)
        elif account is not None:
            txs = self.account_transactions(
                account, cursor=tx_cursor, limit=limit + 1, order=order
            ).records
        else:
            txs = self.transactions(
                ledger=ledger, cursor=tx_cursor, limit=limit + 1, order=order
            ).records
        out: list[tuple[TxRecord, int]] = []
        for t in txs:
            indices = range(1, t.operation_count + 1)
            for i in indices if order == "asc" else reversed(indices):
                op_id = int(t.paging_token) | i
                if start is None or (op_id > start if order == "asc" else op_id < start):
                    out.append((t, i))
        out = out[:limit]
        nxt = str(int(out[-1][0].paging_token) | out[-1][1]) if out else cursor
        return Page(tuple(out), nxt)

    def moved_amount(self, op_id: int) -> int | None:
        """What an operation moved (payments history), e.g. the balance an AccountMerge sent."""
        row = self.store.db.execute(
            "SELECT amount FROM payments WHERE id = ? LIMIT 1", (str(op_id),)
        ).fetchone()
        return int(row[0]) if row else None

    def account_transactions(
        self, account_id: str, *, cursor: str | None = None, limit: int = 10, order: str = "asc"
    ) -> Page[TxRecord]:
        where, args, direction = _paging(cursor, order, "(a.ledger << 32) | (a.idx << 12)")
        rows = self.store.db.execute(
            f"SELECT {', '.join('t.' + c for c in _TX_COLS.split(', '))} FROM tx_accounts a "
            f"JOIN txs t ON t.hash = a.hash WHERE a.account = ? {where} "
            f"ORDER BY a.ledger {direction}, a.idx {direction} LIMIT ?",
            (account_id, *args, _limit(limit)),
        ).fetchall()
        records = tuple(_tx_record(r, self.store) for r in rows)
        token = records[-1].paging_token if records else cursor
        return Page(records, token)

    def account_payments(
        self, account_id: str, *, cursor: str | None = None, limit: int = 10, order: str = "asc"
    ) -> Page[PaymentRecord]:
        where, args, direction = _paging(cursor, order, "CAST(id AS INTEGER)")
        rows = self.store.db.execute(
            "SELECT id, hash, ledger, type, source, destination, asset, amount FROM payments "
            f"WHERE account = ? {where} ORDER BY ledger {direction}, idx {direction}, "
            f"op_index {direction} LIMIT ?",
            (account_id, *args, _limit(limit)),
        ).fetchall()
        records = tuple(PaymentRecord(*r) for r in rows)
        return Page(records, records[-1].id if records else cursor)

    def holders(
        self, asset: str, *, cursor: str | None = None, limit: int = 10
    ) -> Page[AccountInfo]:
        """Accounts with a trustline to exactly ``asset`` (``CODE:ISSUER``), by account id.

        The code is validated and compared exactly (``=``, case-sensitive): SQL ``LIKE`` would
        list holders of ``dlc`` as ``DLC`` holders, and a ``_``/``%`` in the request would be
        a wildcard.
        """
        code, issuer = parse_asset(asset)
        suffix = f"\x1f{code}:{issuer}"
        rows = self.store.db.execute(
            "SELECT key FROM entries WHERE kind = 'tl' AND substr(key, -?) = ? ORDER BY key",
            (len(suffix), suffix),
        ).fetchall()
        parts = (key.split("\x1f") for (key,) in rows)  # ("tl", account, "CODE:ISSUER")
        accounts = sorted(p[1] for p in parts if len(p) == 3 and p[2] == f"{code}:{issuer}")
        if cursor:
            accounts = [a for a in accounts if a > cursor]
        records = tuple(self.load_account(a) for a in accounts[: _limit(limit)])
        return Page(records, records[-1].account_id if records else cursor)

    def claimable_balances(
        self,
        *,
        claimant: str | None = None,
        sponsor: str | None = None,
        cursor: str | None = None,
        limit: int = 10,
    ) -> Page[ClaimableBalanceRecord]:
        """Claimable balances naming ``claimant`` and/or sponsored by ``sponsor``, by id."""
        if claimant is None and sponsor is None:
            raise LedgerError("claimable balances are listed by claimant or sponsor")
        for name, value in (("claimant", claimant), ("sponsor", sponsor)):
            if value is not None and not StrKey.is_valid_ed25519_public_key(value):
                raise LedgerError(f"invalid {name} {value!r}")
        if cursor and not (len(cursor) == 72 and all(c in "0123456789abcdef" for c in cursor)):
            raise LedgerError(f"invalid cursor {cursor!r}: a claimable balance id")
        _limit(limit)
        found = [
            _balance_record(e)
            for e in self.store.entries_of_kind("cb")
            if isinstance(e, ClaimableBalance)
            and (claimant is None or any(c == claimant for c, _ in e.claimants))
            and (sponsor is None or e.sponsor == sponsor)
            and (not cursor or e.balance_id > cursor)
        ]
        records = tuple(found[:limit])
        return Page(records, records[-1].id if records else cursor)

    def claimable_balance(self, balance_id: str) -> ClaimableBalanceRecord:
        """One claimable balance by its hex id; NotFoundError once claimed (or never made)."""
        entry = self.store.get(("cb", balance_id.lower()))
        if not isinstance(entry, ClaimableBalance):
            raise NotFoundError(f"claimable balance {balance_id} not found")
        return _balance_record(entry)

    # ------------------------------------------------------------------ friendbot
    def fund(self, account_id: str, amount: int = FRIENDBOT_STARTING_BALANCE) -> SubmitResult:
        """Development faucet: the root account creates ``account_id`` (like friendbot)."""
        if not StrKey.is_valid_ed25519_public_key(account_id):
            raise LedgerError(f"invalid account id {account_id!r}")
        with self._lock:
            root = self.store.get(("acct", self.root.public_key))
            assert isinstance(root, Account)
            seq = root.seq_num
        tx = (
            TransactionBuilder(
                SdkAccount(self.root.public_key, seq), self._passphrase, base_fee=BASE_FEE
            )
            .append_create_account_op(account_id, format_amount(amount))
            .set_timeout(300)
            .build()
        )
        tx.sign(self.root)
        return self.submit(tx.to_xdr())

    # ------------------------------------------------------------------ audit
    def verify_chain(self) -> int:
        """Re-derive every header hash, link and tx-set hash; return the number of ledgers."""
        previous: dict[str, Any] | None = None
        count = 0
        for header in self.store.headers():
            seq = header["seq"]
            if header_hash(header) != header["hash"]:
                raise ChainError(f"ledger {seq}: header hash mismatch")
            expected_prev = previous["hash"] if previous else ZERO_HASH
            if header["prev_hash"] != expected_prev or (previous and previous["seq"] != seq - 1):
                raise ChainError(f"ledger {seq}: does not link to ledger {seq - 1}")
            envelopes = [
                r[0]
                for r in self.store.db.execute(
                    "SELECT envelope, hash FROM txs WHERE ledger = ? ORDER BY idx", (seq,)
                )
            ]
            hashes = b"".join(self._decode(envelope).hash for envelope in envelopes)
            stored = [
                r[0]
                for r in self.store.db.execute(
                    "SELECT hash FROM txs WHERE ledger = ? ORDER BY idx", (seq,)
                )
            ]
            if [bytes.fromhex(h) for h in stored] != [
                hashes[i : i + 32] for i in range(0, len(hashes), 32)
            ]:
                raise ChainError(f"ledger {seq}: a transaction's hash does not match its envelope")
            if header["tx_set_hash"] != hashlib.sha256(hashes).hexdigest():
                raise ChainError(f"ledger {seq}: transaction set hash mismatch")
            previous, count = header, count + 1
        return count


_TX_COLS = (
    "hash, ledger, source, fee_charged, successful, memo_type, memo, op_count, "
    "envelope, created_at, tx_code, op_codes, idx"
)


def _tx_record(row: tuple[Any, ...], store: Store) -> TxRecord:
    (
        h,
        ledger,
        source,
        fee,
        ok,
        memo_type,
        memo,
        op_count,
        envelope,
        created,
        code,
        op_codes,
        idx,
    ) = row
    bump = store.fee_bump(h) if envelope.startswith(_FEE_BUMP_B64) else None
    inner_hash, fee_account, inner_code = bump or ("", "", "")
    return TxRecord(
        hash=h,
        ledger=ledger,
        source=source,
        fee_charged=fee,
        successful=bool(ok),
        memo_type=memo_type,
        memo=memo,
        operation_count=op_count,
        envelope_xdr=envelope,
        created_at=created,
        tx_code=code,
        op_codes=tuple(json.loads(op_codes)),
        paging_token=str(toid(ledger, idx)),
        fee_account=fee_account,
        inner_hash=inner_hash,
        inner_tx_code=inner_code,
    )


def _balance_record(e: ClaimableBalance) -> ClaimableBalanceRecord:
    return ClaimableBalanceRecord(
        id=e.balance_id,
        asset=e.asset,
        amount=e.amount,
        sponsor=e.sponsor,
        claimants=e.claimants,
        last_modified_ledger=e.created_ledger,
        paging_token=e.balance_id,
    )


def _limit(limit: int) -> int:
    if not 1 <= limit <= 200:
        raise LedgerError(f"limit must be in [1, 200], got {limit}")
    return limit


def _paging(cursor: str | None, order: str, key_sql: str) -> tuple[str, tuple[int, ...], str]:
    if order not in ("asc", "desc"):
        raise LedgerError(f"order must be asc or desc, got {order!r}")
    if cursor in (None, ""):
        return "", (), order.upper()
    start = parse_uint(str(cursor), "cursor", 2**63)  # ASCII digits only (a TOID)
    op = ">" if order == "asc" else "<"
    return f"AND {key_sql} {op} ?", (start,), order.upper()


def _memo(memo: Any) -> tuple[str, str | None]:
    if memo.type == MemoType.MEMO_TEXT:
        text = memo.text
        return "text", text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    if memo.type == MemoType.MEMO_ID:
        return "id", str(memo.id.uint64)
    if memo.type == MemoType.MEMO_HASH:
        return "hash", base64.b64encode(memo.hash.hash).decode()
    if memo.type == MemoType.MEMO_RETURN:
        return "return", base64.b64encode(memo.ret_hash.hash).decode()
    return "none", None


__all__ = ["DEFAULT_PASSPHRASE", "ChainError", "EmbeddedLedger", "OperationType"]
