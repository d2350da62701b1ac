"""The server's receipts: one per training reply received, signed, delivered until answered.

After a round is settled, every node whose reply the server received (an error reply excepted:
the node refused, it sent nothing to sign for) gets a receipt signed by the run's distributor:
the digest of its reply as the server saw it, accepted or the reason it was rejected, its score,
payout and held-back share from the round's manifest, the manifest's hash and the terms' hash.

A receipt rides on every instruction the node gets until the node answers one that carried it
(its journal has it then: the client wrapper journals receipts before it trains). After the last
round, :meth:`ReceiptBook.deliver` sends what is still pending in delivery messages the client
wrapper answers itself. A node restarted under a new Flower node id that signs with the same
pseudonym inherits its pending receipts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from logging import WARNING
from typing import Any

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid

from flwr_stellar.payments.manifest import RoundManifest
from flwr_stellar.protocol.receipts import (
    ACCEPTED,
    DELIVERY_RECORD,
    REASON_LIMIT,
    RECEIPTS_LIMIT,
    RECEIPTS_RECORD,
    REJECTED,
    Receipt,
    SignedReceipt,
    receipts_record,
)
from flwr_stellar.reasons import Reason
from strategies.round import RoundState

__all__ = ["ReceiptBook"]


@dataclass
class ReceiptBook:
    """Receipts issued in a run and not yet known to be delivered.

    Attributes
    ----------
    issued : list[SignedReceipt]
        Every receipt of the run, in order (what the server said, for its own records).
    pending : dict[int, dict[str, SignedReceipt]]
        Node id -> receipts (by document hash) it has not acknowledged yet.
    """

    issued: list[SignedReceipt] = field(default_factory=list)
    pending: dict[int, dict[str, SignedReceipt]] = field(default_factory=dict)
    _carried: dict[tuple[int, str, int], tuple[str, ...]] = field(default_factory=dict)
    _homes: dict[str, int] = field(default_factory=dict)  # pseudonym -> its latest node id

    def attach(self, messages: Iterable[Message], server_round: int, kind: str) -> None:
        """Put each node's pending receipts (oldest first, at most a record's worth) on its
        instruction, and remember what went where."""
        for message in messages:
            node = message.metadata.dst_node_id
            waiting = list(self.pending.get(node, {}).items())[:RECEIPTS_LIMIT]
            if not waiting:
                continue
            # Flower's strategies give every instruction of a round one shared RecordDict:
            # this node's receipts go into a copy of its own
            content = RecordDict(dict(message.content.items()))
            content[RECEIPTS_RECORD] = receipts_record(r for _, r in waiting)
            message.content = content
            self._carried[(server_round, kind, node)] = tuple(k for k, _ in waiting)

    def acknowledged(self, replies: Iterable[Message], server_round: int, kind: str) -> None:
        """Drop the receipts an answered instruction carried: a node whose Mod answered it
        (not with an error: a refusal may come before the receipts were journaled) has
        journaled them, or refused them one by one, which sending them again does not change."""
        for reply in replies:
            if reply.has_error():
                continue
            node = reply.metadata.src_node_id
            for key in self._carried.pop((server_round, kind, node), ()):
                self.pending.get(node, {}).pop(key, None)

    def issue(
        self,
        state: RoundState,
        manifest: RoundManifest,
        manifest_hash: str,
        distributor: Any,
    ) -> list[SignedReceipt]:
        """Sign a receipt for every reply of a settled training round.

        Parameters
        ----------
        state : RoundState
            The round after settling (candidates and rejections, the digests verification
            computed).
        manifest : RoundManifest
            The round's manifest as the pipeline decided it (scores, payouts, held).
        manifest_hash : str
            The hash of the manifest that was anchored.
        distributor : Keypair
            The run's distributor, with its secret: it signs.
        """
        rows = {c.pseudonym: c for c in manifest.contributions}
        made = []
        for c in state.candidates:
            row = rows.get(c.pseudonym)
            made.append(
                (
                    c.node,
                    c.pseudonym,
                    ACCEPTED,
                    "",
                    (row.score, row.payout, row.held) if row is not None else (0, 0, 0),
                    max(0, c.num_examples),
                )
            )
        for r in state.rejected:
            if r.reason == Reason.ERROR_REPLY:
                continue
            claimed = state.digests.get(r.node, ("", ""))[0]
            reason = str(r.reason)[:REASON_LIMIT]
            made.append((r.node, r.pseudonym or claimed, REJECTED, reason, (0, 0, 0), 0))
        out = []
        for node, pseudonym, status, reason, (score, payout, held), claim in made:
            receipt = Receipt(
                run_id=manifest.run_id,
                server_round=manifest.server_round,
                node_id=node,
                pseudonym=pseudonym,
                reply_digest=state.digests.get(node, ("", ""))[1],
                status=status,
                reason=reason,
                num_examples=claim,
                score=score,
                payout=payout,
                held=held,
                manifest=manifest_hash,
                terms=manifest.terms,
            ).sign(distributor)
            if status == ACCEPTED:
                self._move_home(pseudonym, node)
            self.pending.setdefault(node, {})[receipt.signed.digest] = receipt
            out.append(receipt)
        self.issued.extend(out)
        return out

    def _move_home(self, pseudonym: str, node: int) -> None:
        """A pseudonym now answering from another node id takes its pending receipts along."""
        before = self._homes.get(pseudonym)
        self._homes[pseudonym] = node
        if before is not None and before != node and before in self.pending:
            moved = self.pending.pop(before)
            self.pending.setdefault(node, {}).update(moved)

    def deliver(self, grid: Grid, timeout: float) -> int:
        """After the last round: send every pending receipt in delivery messages and drop
        those acknowledged; return how many receipts remain undelivered (logged)."""
        nodes = [n for n, waiting in self.pending.items() if waiting]
        while nodes:
            marker = RecordDict({DELIVERY_RECORD: ConfigRecord({"version": 1})})
            messages = [
                Message(marker, dst_node_id=node, message_type=MessageType.TRAIN) for node in nodes
            ]
            self.attach(messages, 0, "delivery")  # each node's receipts, as on an instruction
            replies = list(grid.send_and_receive(messages, timeout=timeout))
            self.acknowledged(replies, 0, "delivery")
            for reply in replies:
                if reply.has_error():
                    log(
                        WARNING,
                        "flwr-stellar: node %s refused its receipts: %s",
                        reply.metadata.src_node_id,
                        (reply.error.reason or "")[:200],
                    )
            self._carried = {k: v for k, v in self._carried.items() if k[1] != "delivery"}
            progressed = {r.metadata.src_node_id for r in replies if not r.has_error()}
            nodes = [n for n in nodes if n in progressed and self.pending.get(n)]
        left = sum(len(w) for w in self.pending.values())
        if left:
            log(
                WARNING,
                "flwr-stellar: %d receipt(s) undelivered to node(s) %s",
                left,
                sorted(n for n, w in self.pending.items() if w),
            )
        return left
