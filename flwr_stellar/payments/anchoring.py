"""Anchoring: a background worker that puts each round on the ledger and pays its rewards.

The training loop hands over a finished manifest and moves on; the worker stores it, journals
its transactions in the outbox, and submits them (payments of <= 100 operations, MemoHash =
manifest hash; a round with nothing to pay anchors with a no-op BumpSequence; a payee that can
no longer receive a payment, or every payee with ``reward.payout = "claimable"``, gets a
claimable balance instead). The run waits for the worker only at the end (``drain``).
``settle_all`` is also what a restarted server runs first, so entries left over by a crash are
finished, not repeated.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from logging import ERROR, INFO, WARNING

from flwr.common.logger import log
from stellar_sdk import (
    BumpSequence,
    Claimant,
    ClaimPredicate,
    CreateClaimableBalance,
    Operation,
    Payment,
    TransactionEnvelope,
)

from flwr_stellar.failpoints import failpoint
from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import (
    Ledger,
    LedgerError,
    LedgerUnavailableError,
    NotFoundError,
    SubmitResult,
)
from flwr_stellar.ledger.decode import iter_transactions
from flwr_stellar.ledger.pacing import FeeBid, LedgerPacer
from flwr_stellar.ledger.tx import MAX_OPS, TX_TIMEOUT_S, build
from flwr_stellar.payments.manifest import ManifestStore, RoundManifest
from flwr_stellar.payments.outbox import Entry, Outbox
from flwr_stellar.payments.treasury import Treasury

DEAD = ("tx_bad_seq", "tx_too_late", "tx_insufficient_fee")  # not applied, and never can be
OUTBID = ("tx_too_late", "tx_insufficient_fee")  # congestion: the rebuilt envelope bids more
MAX_ATTEMPTS = 5
BACKOFF_START_S = 0.5  # ledger unavailable: wait, doubling up to the cap, and try again
BACKOFF_CAP_S = 30.0
SETTLE_TIMEOUT_S = 120.0  # how long the end of a run waits for an unavailable ledger
CLOCK_MARGIN_S = 60  # our clock against the network's, when a pruned history decides


@dataclass(frozen=True)
class Anchored:
    server_round: int
    manifest_hash: str
    tx_hashes: tuple[str, ...]
    paid: int
    failed: tuple[str, ...] = ()  # result codes of entries that failed
    pending: int = 0  # entries still journaled (the ledger was unavailable)


def payment_parts(manifest: RoundManifest) -> list[list[tuple[str, int]]]:
    """The round's payments in chunks of <= 100; one empty chunk anchors a round with none."""
    payouts = sorted(manifest.payments())
    return [payouts[i : i + MAX_OPS] for i in range(0, len(payouts), MAX_OPS)] or [[]]


def unjournaled(store: ManifestStore, outbox: Outbox) -> list[str]:
    """Stored manifests the outbox has no entry for."""
    journaled = {e.manifest_hash for e in outbox.entries()}
    return [d for d in store.digests() if d not in journaled]


def anchored_memos(ledger: Ledger, distributor: str) -> set[str]:
    """Manifest hashes (hex) the distributor's successful transactions carry as MemoHash."""
    return {
        base64.b64decode(t.memo).hex()
        for t in iter_transactions(ledger, distributor)
        if t.memo_type == "hash" and t.memo and t.successful
    }


def history_covers(entry: Entry, begins: int, network_passphrase: str) -> bool:
    """Whether a ledger whose history begins at ``begins`` (Unix seconds) would hold the
    entry's signed transaction had it applied: the envelope was signed ``TX_TIMEOUT_S`` before
    its ``max_time``, and only a history that began a safety margin before that can say "never
    applied". An envelope without a ``max_time`` could have applied at any time: never."""
    assert entry.envelope is not None
    bounds = TransactionEnvelope.from_xdr(
        entry.envelope, network_passphrase
    ).transaction.preconditions
    max_time = bounds.time_bounds.max_time if bounds and bounds.time_bounds else 0
    return max_time > 0 and begins <= max_time - TX_TIMEOUT_S - CLOCK_MARGIN_S


def journal_stored(
    store: ManifestStore, outbox: Outbox, ledger: Ledger, distributor: str
) -> list[int]:
    """Journal every stored manifest the outbox lacks (a process killed between storing a
    round's manifest and journaling it) and return their rounds; idempotent. Runs before any
    settling, so such a round is paid like any other leftover instead of never. A manifest
    whose hash the distributor already anchored on the ledger is left alone: its journal was
    lost (a deleted outbox.db), not its payment, and paying it again would pay twice."""
    missing = unjournaled(store, outbox)
    if not missing:
        return []
    anchored = anchored_memos(ledger, distributor)
    begins = ledger.history_begins()
    added = []
    for digest in missing:
        manifest = store.get(digest)
        if begins is not None and store.stored_at(digest) < begins + CLOCK_MARGIN_S:
            log(
                ERROR,
                "outbox: round %d (manifest %s…) is not journaled, and %s's history (from %s) "
                "may not reach back to its anchor: not journaling it (that could pay twice); "
                "settle this run through a ledger that holds its whole history (a full Horizon)",
                manifest.server_round,
                digest[:12],
                ledger.location,
                time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(begins)),
            )
            continue
        if digest in anchored:
            log(
                WARNING,
                "outbox: round %d (manifest %s…) is not journaled but already anchored on the "
                "ledger: not paying it again",
                manifest.server_round,
                digest[:12],
            )
            continue
        outbox.add(digest, manifest.server_round, payment_parts(manifest))
        added.append(manifest.server_round)
    if added:
        log(WARNING, "outbox: journaled rounds %s whose manifests were never journaled", added)
    return added


class Anchorer:
    def __init__(
        self,
        ledger_factory: Callable[[], Ledger],
        treasury: Treasury,
        outbox: Outbox,
        store: ManifestStore,
        *,
        pacer: LedgerPacer | None = None,
        fee: FeeBid | None = None,
        claimable: bool = False,
        reclaim_after_s: int = 0,
    ) -> None:
        self._ledger_factory = ledger_factory
        self.claimable = claimable
        self.reclaim_after_s = reclaim_after_s
        self.pacer = pacer
        self.fee = fee or FeeBid()
        self.treasury = treasury
        self.outbox = outbox
        self.store = store
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._deadline: float | None = None  # set by drain(): stop waiting for the ledger then
        self.anchored: dict[int, Anchored] = {}

    # ---------------------------------------------------------------- caller side
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="flwr-stellar-anchor", daemon=True)
        self._thread.start()

    def submit_round(self, manifest: RoundManifest) -> str:
        """Store and journal the round now (cheap, durable); submit in the background."""
        digest = self.store.put(manifest)
        self.outbox.add(digest, manifest.server_round, payment_parts(manifest))
        self._queue.put(digest)
        return digest

    def drain(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Wait until everything handed over is settled, or, while the ledger is unavailable,
        at most ``timeout`` seconds more (what is left stays journaled in the outbox, to be
        settled later by a restarted server or ``flwr-stellar payouts settle``). Re-raises a
        worker crash; an unavailable ledger is not one."""
        self._deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    # ---------------------------------------------------------------- worker side
    def _run(self) -> None:
        ledger = self._ledger_factory()
        try:
            while (digest := self._queue.get()) is not None:
                self.settle_all(ledger, only=digest)
        except BaseException as err:  # surfaced by drain(); the outbox keeps the rest
            log(ERROR, "anchoring worker stopped: %s", err)
            self._error = err
        finally:
            close = getattr(ledger, "close", None)
            if close is not None:
                close()

    def settle_all(
        self, ledger: Ledger, only: str | None = None, timeout: float | None = None
    ) -> bool:
        """Drive unfinished entries (of one manifest, or all) to done or failed; True when
        none is left pending because the ledger stayed unavailable past the deadline
        (``timeout`` seconds from now when given, else the one ``drain`` set, else none)."""
        if timeout is not None:
            saved, self._deadline = self._deadline, time.monotonic() + timeout
            try:
                return self.settle_all(ledger, only)
            finally:
                self._deadline = saved
        if only is None:
            self.journal_stored(ledger)
        entries = [e for e in self.outbox.unfinished() if only is None or e.manifest_hash == only]
        settled = True
        for entry in entries:
            if not self._settle_patiently(ledger, entry):
                settled = False
                break  # the ledger is down: the rest would wait in vain; all stay journaled
        for digest in dict.fromkeys(e.manifest_hash for e in entries):
            self._report(digest)
        return settled

    def journal_stored(self, ledger: Ledger) -> list[int]:
        """See :func:`journal_stored`."""
        return journal_stored(self.store, self.outbox, ledger, self.treasury.distributor.public_key)

    def _settle_patiently(self, ledger: Ledger, entry: Entry) -> bool:
        """``_settle`` through outages: every state is journaled, so a retry after an
        unavailable ledger starts from the outbox and settles by hash (never pays twice)."""
        delay = BACKOFF_START_S
        while True:
            try:
                self._settle(ledger, self._reload(entry))
                return True
            except LedgerUnavailableError as err:
                left = None if self._deadline is None else self._deadline - time.monotonic()
                if left is not None and left <= 0:
                    log(
                        WARNING,
                        "anchoring round %d part %d: ledger unavailable (%s); left pending in "
                        "the outbox",
                        entry.server_round,
                        entry.part,
                        err,
                    )
                    return False
                wait = delay if left is None else min(delay, left)
                log(WARNING, "anchoring: ledger unavailable (%s); retrying in %.1f s", err, wait)
                time.sleep(wait)
                delay = min(2 * delay, BACKOFF_CAP_S)

    def _settle(self, ledger: Ledger, entry: Entry) -> None:
        for _ in range(MAX_ATTEMPTS):
            if entry.state == "signed":
                outcome = self._resolve_signed(ledger, entry)
                if outcome in ("settled", "unknown"):
                    return
                if outcome == "resubmit" and self._handle(
                    ledger, entry, self._submit(ledger, entry)
                ):
                    return
                entry = self._reload(entry)
                continue
            entry = self._sign(ledger, entry)
            failpoint("outbox-signed")
            result = self._submit(ledger, entry)
            failpoint("outbox-submitted")
            if self._handle(ledger, entry, result):
                return
            entry = self._reload(entry)
        # Never guess: an unsettled entry stays journaled and the next start settles it.
        log(
            ERROR,
            "anchoring round %d part %d: unsettled, left in the outbox",
            entry.server_round,
            entry.part,
        )

    def _resolve_signed(self, ledger: Ledger, entry: Entry) -> str:
        """'settled' (on the ledger), 'resubmit' (may still apply) or 'rebuild' (dead)."""
        assert entry.tx_hash is not None and entry.sequence is not None
        if self._found(ledger, entry):
            return "settled"
        current = ledger.load_account(self.treasury.distributor.public_key).sequence
        if current == entry.sequence - 1:
            return "resubmit"
        # The sequence is used, perhaps by this very envelope, landing between the lookup
        # above and the read of the sequence: look again, now that the sequence is used.
        if self._found(ledger, entry):
            return "settled"
        begins = ledger.history_begins()
        if begins is not None and not history_covers(entry, begins, ledger.network_passphrase):
            log(
                ERROR,
                "anchoring round %d part %d: transaction %s is not in %s's history, which begins "
                "at %s, and it may have applied before that; not rebuilding it (that could pay "
                "twice). Settle this run through a ledger that holds its whole history (a full "
                "Horizon): it stays in the outbox",
                entry.server_round,
                entry.part,
                entry.tx_hash,
                ledger.location,
                time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(begins)),
            )
            return "unknown"
        self.outbox.reset(entry.id, f"sequence {entry.sequence} consumed by another transaction")
        return "rebuild"

    def _found(self, ledger: Ledger, entry: Entry) -> bool:
        """Look the entry's transaction up by hash; when it is on the ledger, journal its
        outcome (done or failed) and say so."""
        assert entry.tx_hash is not None
        try:
            record = ledger.transaction(entry.tx_hash)
        except NotFoundError:
            return False
        if record.successful:
            self.outbox.mark_done(entry.id, record.ledger)
        else:
            self.outbox.mark_failed(entry.id, ",".join((record.tx_code, *record.op_codes)))
        return True

    def _sign(self, ledger: Ledger, entry: Entry) -> Entry:
        distributor = self.treasury.distributor
        account = ledger.load_account(distributor.public_key)
        operations: list[Operation]
        if entry.payments:
            operations = [
                self._payout(dest, amount, self.claimable or not self._can_receive(ledger, dest))
                for dest, amount in entry.payments
            ]
        else:
            operations = [BumpSequence(0)]  # a no-op: the round is anchored by its memo
        envelope = build(
            ledger,
            distributor.public_key,
            account.sequence,
            operations,
            memo_hash=bytes.fromhex(entry.manifest_hash),
            fee_per_op=self.fee.per_op,
        )
        envelope.sign(distributor)
        tx_hash = envelope.hash_hex()
        xdr = envelope.to_xdr()
        self.outbox.mark_signed(entry.id, xdr, tx_hash, account.sequence + 1)
        return self._reload(entry)

    def _can_receive(self, ledger: Ledger, destination: str) -> bool:
        """Whether a payment to ``destination`` would apply now: an account with an authorized
        trustline to the coin. A node can merge its pseudonym (or remove its trustline) at any
        time; one failed payment would fail the round's whole transaction, everyone's payouts
        and its anchor with it, so such a destination is paid by a claimable balance instead,
        which needs neither (the audit counts it as the same payout)."""
        try:
            account = ledger.load_account(destination)
        except NotFoundError:
            return False
        line = next((b for b in account.balances if b.asset == self.treasury.asset_id), None)
        return line is not None and bool(line.flags & 1)

    def _payout(self, destination: str, amount: int, claimable: bool) -> Operation:
        """A payment, or a claimable balance only ``destination`` may claim (the distributor
        too, after ``reclaim_after_s``: ``not(before_relative_time)``)."""
        if not claimable:
            return Payment(destination, self.treasury.asset, format_amount(amount))
        claimants = [Claimant(destination)]
        if self.reclaim_after_s:
            later = ClaimPredicate.predicate_not(
                ClaimPredicate.predicate_before_relative_time(self.reclaim_after_s)
            )
            claimants.append(Claimant(self.treasury.distributor.public_key, later))
        return CreateClaimableBalance(self.treasury.asset, format_amount(amount), claimants)

    def _submit(self, ledger: Ledger, entry: Entry) -> SubmitResult | None:
        assert entry.envelope is not None
        ops = max(1, len(entry.payments))
        if self.pacer is not None and (waited := self.pacer.before(ops)) > 0:
            log(INFO, "anchoring: paced %.1f s for the network's per-ledger limit", waited)
        try:
            return ledger.submit(entry.envelope)
        except LedgerUnavailableError:
            # outcome unknown (down, or a full ledger left it out): the caller backs off and
            # then settles by hash, resubmitting the same envelope while it can still apply
            raise
        except (LedgerError, OSError) as err:
            log(WARNING, "anchoring: submission outcome unknown (%s); will look it up", err)
            return None
        finally:
            if self.pacer is not None:
                self.pacer.after(ops)

    def _handle(self, ledger: Ledger, entry: Entry, result: SubmitResult | None) -> bool:
        """True when the entry is settled; False when it must be looked up or rebuilt."""
        if result is None:
            return False
        if result.successful:
            self.outbox.mark_done(entry.id, result.ledger)
            return True
        codes = ",".join((result.tx_code, *result.op_codes))
        if result.applied or result.tx_code not in DEAD:
            self.outbox.mark_failed(entry.id, codes)
            log(
                ERROR,
                "anchoring round %d part %d failed: %s",
                entry.server_round,
                entry.part,
                codes,
            )
            return True
        if result.tx_code in OUTBID and self.fee.outbid():
            log(
                WARNING,
                "anchoring: %s; bidding %d stroops per operation from now on",
                result.tx_code,
                self.fee.per_op,
            )
        # Rebuilding signs the account's next sequence. While this envelope's own sequence is
        # unused, that is the same sequence: at most one of the two can ever apply. Once it is
        # used, a "dead" answer may be wrong (a lying or lagging server, or this envelope
        # applied earlier): the entry stays signed and is settled by hash first.
        assert entry.sequence is not None
        if ledger.load_account(self.treasury.distributor.public_key).sequence != entry.sequence - 1:
            log(
                WARNING,
                "anchoring round %d part %d: %s, but its sequence is used; looking it up",
                entry.server_round,
                entry.part,
                codes,
            )
            return False
        self.outbox.reset(entry.id, codes)
        return False

    def _reload(self, entry: Entry) -> Entry:
        return next(e for e in self.outbox.entries(entry.manifest_hash) if e.id == entry.id)

    def _report(self, digest: str) -> None:
        entries = self.outbox.entries(digest)
        done = [e for e in entries if e.state == "done"]
        anchored = Anchored(
            server_round=entries[0].server_round,
            manifest_hash=digest,
            tx_hashes=tuple(str(e.tx_hash) for e in done),
            paid=sum(a for e in done for _, a in e.payments),
            failed=tuple(f"failed: {e.codes}" for e in entries if e.state == "failed"),
            pending=sum(e.state in ("pending", "signed") for e in entries),
        )
        with self._lock:
            self.anchored[anchored.server_round] = anchored
        level = INFO if not anchored.failed else ERROR
        if anchored.pending:
            level = WARNING
        log(
            level,
            "round %d anchored: manifest %s… tx %s, %s %s paid%s%s",
            anchored.server_round,
            digest[:12],
            ", ".join(h[:12] + "…" for h in anchored.tx_hashes) or "-",
            format_amount(anchored.paid),
            self.treasury.asset.code,
            f", FAILED: {anchored.failed}" if anchored.failed else "",
            f", {anchored.pending} transaction(s) PENDING in the outbox"
            if anchored.pending
            else "",
        )
