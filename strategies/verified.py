"""Verification: only correctly signed, fresh replies go on.

Every train/evaluate instruction gets the round's challenge (a fresh 256-bit nonce and the
strict flag); every reply must carry a valid signature over its records bound to this run,
round, nonce, instruction and message type, and each pseudonym may answer once per round.

:class:`Verify` is the pipeline stage (``RoundState -> RoundState``); :class:`VerifiedStrategy`
is the one-stage wrapper for apps that want only verification (intake still applies: nothing a
node sends can raise in the inner strategy).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from logging import INFO

from flwr.app import ArrayRecord, Message, MessageType, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from flwr_stellar.protocol.challenge import CHALLENGE_RECORD, Challenge
from flwr_stellar.protocol.signature import Verdict, verify_reply
from flwr_stellar.reasons import Reason, Rejected, RoundVerdicts
from strategies.intake import IntakeSettings
from strategies.pipeline import PipelineStrategy
from strategies.round import RoundState

__all__ = ["RoundVerdicts", "VerifiedStrategy", "Verify"]

VERIFY_THREADS = max(1, min(4, os.cpu_count() or 1))


class Verify:
    """The verification stage: challenges out with the instructions, signatures checked in.

    A node signs with one pseudonym for the whole run: the first it verified with. A reply
    signed with another is rejected (``pseudonym-changed``), so a node cannot collect a fresh
    onboarding (three sponsored reserves) and a clean history every round.

    Parameters
    ----------
    strict : bool (default: True)
        Sent with each challenge: a node that cannot sign refuses the instruction instead of
        replying unsigned (which would be rejected anyway).
    """

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.run_id: int | None = None
        self.pseudonyms: dict[int, str] = {}  # node id -> the one pseudonym it signs with
        self.terms = b""  # SHA-256 of the run's signed terms, bound into every reply
        self._challenges: dict[tuple[int, str], tuple[Challenge, frozenset[int]]] = {}

    def attach(
        self, messages: list[Message], server_round: int, kind: str, grid: Grid
    ) -> list[Message]:
        """Add a fresh challenge of this round and type to every instruction."""
        if not messages:
            return messages
        self.run_id = grid.run.run_id
        challenge = Challenge.fresh(self.run_id, server_round, self.strict, self.terms)
        instructed = frozenset(m.metadata.dst_node_id for m in messages)
        self._challenges[(server_round, kind)] = (challenge, instructed)
        record = challenge.to_record()
        for message in messages:
            message.content[CHALLENGE_RECORD] = record
        return messages

    def __call__(self, state: RoundState) -> RoundState:
        sent = self._challenges.pop((state.server_round, state.kind), None)
        kept: list[Message] = []
        signers: list[str] = []
        rejected = list(state.rejected)

        def check(reply: Message) -> Verdict:
            if sent is None:
                return Verdict(None, Reason.UNEXPECTED_REPLY, "no challenge was sent")
            challenge, instructed = sent
            if reply.metadata.src_node_id not in instructed:
                return Verdict(None, Reason.UNEXPECTED_REPLY, "node was not instructed this round")
            try:
                return verify_reply(
                    reply,
                    run_id=challenge.run_id,
                    server_round=state.server_round,
                    nonce=challenge.nonce,
                    message_type=state.kind,
                    terms=challenge.terms,
                )
            except Exception as err:  # records no honest node can build (e.g. surrogates)
                return Verdict(None, Reason.MALFORMED_SIGNATURE, f"unreadable: {err!r}"[:200])

        # the digests hash every byte of every reply: in threads (hashlib releases the GIL)
        with ThreadPoolExecutor(max_workers=VERIFY_THREADS) as pool:
            verdicts = list(pool.map(check, state.replies))
        digests: dict[int, tuple[str, str]] = {}
        for reply, verdict in zip(state.replies, verdicts, strict=True):
            node = reply.metadata.src_node_id
            if verdict.digest:
                digests[node] = (verdict.pseudonym or "", verdict.digest)
            if not verdict.ok:
                assert verdict.reason is not None
                rejected.append(Rejected(node, verdict.reason, verdict.detail))
            elif verdict.pseudonym in signers:
                rejected.append(
                    Rejected(node, Reason.DUPLICATE_PSEUDONYM, "pseudonym already answered")
                )
            elif self.pseudonyms.setdefault(node, str(verdict.pseudonym)) != verdict.pseudonym:
                rejected.append(
                    Rejected(
                        node,
                        Reason.PSEUDONYM_CHANGED,
                        f"node signed as {self.pseudonyms[node]} earlier in this run",
                        str(verdict.pseudonym),
                    )
                )
            else:
                kept.append(reply)
                signers.append(str(verdict.pseudonym))
        return replace(
            state,
            replies=tuple(kept),
            signers=tuple(signers),
            digests=digests,
            rejected=tuple(rejected),
        )


class VerifiedStrategy(PipelineStrategy):
    """Verify every reply's signature before the inner strategy sees it.

    Parameters
    ----------
    inner : Strategy
        Any Flower strategy (or another wrapper); it receives only verified replies, untouched.
    strict : bool (default: True)
        Nodes that cannot sign refuse instructions instead of replying unsigned.
    intake : IntakeSettings, optional
        Record keys and claim bound (defaults read from ``inner``).
    """

    def __init__(
        self, inner: Strategy, *, strict: bool = True, intake: IntakeSettings | None = None
    ) -> None:
        super().__init__(inner, intake)
        self.strict = strict
        self.verify = Verify(strict)

    @property
    def run_id(self) -> int | None:
        """The run this strategy serves (known after the first ``configure_*``)."""
        return self.verify.run_id

    def prepare(
        self, messages: list[Message], server_round: int, kind: str, grid: Grid
    ) -> list[Message]:
        return self.verify.attach(messages, server_round, kind, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        state = self.received(server_round, MessageType.TRAIN, replies)
        state = self.authenticate(state)
        state = self.intake(state)
        arrays, metrics = self.aggregate_inner(state)
        return arrays, self.record(state, metrics)

    def authenticate(self, state: RoundState) -> RoundState:
        return self.verify(state)

    def summary(self) -> None:
        log(
            INFO,
            "\t├── VerifiedStrategy: signed, nonce-bound replies only (strict=%s)",
            self.strict,
        )
        self.inner.summary()
