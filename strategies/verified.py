"""VerifiedStrategy: a wrapper that lets only correctly signed, fresh replies through.

Like Flower's DP wrappers, it holds an inner strategy and adds one concern. Every
train/evaluate instruction gets the round's challenge (a fresh 256-bit nonce); every reply
must carry a valid signature over its records bound to this run, round, nonce, instruction
and message type, and each pseudonym may answer once per round. Rejected replies are
recorded with a reason and never reach the inner strategy, so a forged, replayed or broken
reply cannot crash FedAvg; the accepted ones reach it untouched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from logging import INFO, WARNING

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from flwr_stellar.protocol.digest import CHALLENGE_RECORD, new_challenge, verify_reply

DUPLICATE = "duplicate-pseudonym"


@dataclass
class RoundVerdicts:
    """What verification decided for one round and message type."""

    accepted: dict[int, str] = field(default_factory=dict)  # node id -> pseudonym
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # node, reason, detail

    def metrics(self) -> dict[str, int]:
        out = {"replies_accepted": len(self.accepted), "replies_rejected": len(self.rejected)}
        for reason, n in Counter(r for _, r, _ in self.rejected).items():
            out[f"rejected_{reason}"] = n
        return out


class VerifiedStrategy(Strategy):
    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self._nonces: dict[tuple[int, str], bytes] = {}
        self._run_id: int | None = None
        self.verdicts: dict[tuple[int, str], RoundVerdicts] = {}

    # ------------------------------------------------------------------ configure
    def _attach(
        self, messages: Iterable[Message], server_round: int, kind: str, grid: Grid
    ) -> list[Message]:
        out = list(messages)
        if not out:
            return out
        self._run_id = grid.run.run_id
        challenge = new_challenge(self._run_id, server_round)
        self._nonces[(server_round, kind)] = challenge["nonce"]  # type: ignore[assignment]
        for message in out:
            message.content[CHALLENGE_RECORD] = challenge
        return out

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        inner = self.inner.configure_train(server_round, arrays, config, grid)
        return self._attach(inner, server_round, MessageType.TRAIN, grid)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        inner = self.inner.configure_evaluate(server_round, arrays, config, grid)
        return self._attach(inner, server_round, MessageType.EVALUATE, grid)

    # ------------------------------------------------------------------ aggregate
    def screen(self, server_round: int, replies: Iterable[Message], kind: str) -> list[Message]:
        """Verify every reply; return the accepted ones, remember the verdicts."""
        nonce = self._nonces.pop((server_round, kind), None)
        verdicts = RoundVerdicts()
        accepted: list[Message] = []
        for reply in replies:
            node = reply.metadata.src_node_id
            if nonce is None or self._run_id is None:
                verdicts.rejected.append((node, "unexpected-reply", "no instruction was sent"))
                continue
            verdict = verify_reply(
                reply,
                run_id=self._run_id,
                server_round=server_round,
                nonce=nonce,
                message_type=kind,
            )
            if verdict.ok and verdict.pseudonym in verdicts.accepted.values():
                verdicts.rejected.append((node, DUPLICATE, "pseudonym already answered"))
                continue
            if verdict.ok:
                verdicts.accepted[node] = str(verdict.pseudonym)
                accepted.append(reply)
            else:
                verdicts.rejected.append((node, str(verdict.reason), verdict.detail))
        self.verdicts[(server_round, kind)] = verdicts
        for node, reason, detail in verdicts.rejected:
            log(
                WARNING,
                "round %d %s: rejected reply of node %s: %s (%s)",
                server_round,
                kind,
                node,
                reason,
                detail,
            )
        log(
            INFO,
            "round %d %s: %d replies verified, %d rejected",
            server_round,
            kind,
            len(verdicts.accepted),
            len(verdicts.rejected),
        )
        return accepted

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        accepted = self.screen(server_round, replies, MessageType.TRAIN)
        arrays, metrics = (
            self.inner.aggregate_train(server_round, accepted) if accepted else (None, None)
        )
        return arrays, self._with_counts(metrics, server_round, MessageType.TRAIN)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        replies = list(replies)
        if not replies and (server_round, MessageType.EVALUATE) not in self._nonces:
            return None  # no federated evaluation this round
        accepted = self.screen(server_round, replies, MessageType.EVALUATE)
        metrics = self.inner.aggregate_evaluate(server_round, accepted) if accepted else None
        return self._with_counts(metrics, server_round, MessageType.EVALUATE)

    def _with_counts(
        self, metrics: MetricRecord | None, server_round: int, kind: str
    ) -> MetricRecord:
        merged = MetricRecord(dict(metrics.items()) if metrics is not None else {})
        for key, value in self.verdicts[(server_round, kind)].metrics().items():
            merged[key] = value
        return merged

    def summary(self) -> None:
        log(INFO, "\t├── VerifiedStrategy: signed, nonce-bound replies only")
        self.inner.summary()
