"""VerifiedStrategy: a wrapper that lets only correctly signed, fresh replies through.

Like Flower's DP wrappers, it holds an inner strategy and adds one concern. Every train/evaluate
instruction gets the round's challenge (a fresh 256-bit nonce and the strict flag); every reply
must carry a valid signature over its records bound to this run, round, nonce, instruction and
message type, and each pseudonym may answer once per round. Rejected replies are recorded with a
reason and never reach the inner strategy, so a forged, replayed or broken reply cannot crash
FedAvg; the accepted ones reach it untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO, WARNING

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from flwr_stellar.protocol.challenge import CHALLENGE_RECORD, Challenge
from flwr_stellar.protocol.signature import verify_reply
from flwr_stellar.reasons import Reason, Rejected, RoundVerdicts, merge_counts

__all__ = ["RoundVerdicts", "VerifiedStrategy"]


class VerifiedStrategy(Strategy):
    """Verify every reply's signature before the inner strategy sees it.

    Parameters
    ----------
    inner : Strategy
        Any Flower strategy (or another wrapper); it receives only verified replies, untouched.
    strict : bool (default: True)
        Sent to the nodes with each challenge: a node that cannot sign refuses the instruction
        instead of replying unsigned (which would be rejected anyway).

    Attributes
    ----------
    verdicts : dict[tuple[int, str], RoundVerdicts]
        Per (round, message type): accepted node -> pseudonym, and rejections with reasons
        (including those of an inner wrapper that reports ``verdicts`` of its own).
    """

    def __init__(self, inner: Strategy, *, strict: bool = True) -> None:
        self.inner = inner
        self.strict = strict
        self._challenges: dict[tuple[int, str], Challenge] = {}
        self._run_id: int | None = None
        self.verdicts: dict[tuple[int, str], RoundVerdicts] = {}

    @property
    def run_id(self) -> int | None:
        """The run this strategy serves (known after the first ``configure_*``)."""
        return self._run_id

    # ------------------------------------------------------------------ configure
    def _attach(
        self, messages: Iterable[Message], server_round: int, kind: str, grid: Grid
    ) -> list[Message]:
        out = list(messages)
        if not out:
            return out
        self._run_id = grid.run.run_id
        challenge = Challenge.fresh(self._run_id, server_round, self.strict)
        self._challenges[(server_round, kind)] = challenge
        record = challenge.to_record()
        for message in out:
            message.content[CHALLENGE_RECORD] = record
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
    def verify(self, server_round: int, replies: Iterable[Message], kind: str) -> list[Message]:
        """Verify every reply; return the accepted ones and record the verdicts.

        Parameters
        ----------
        server_round : int
            The round the replies answer.
        replies : Iterable[Message]
            As received.
        kind : str
            ``train`` or ``evaluate``: which challenge they must answer.
        """
        challenge = self._challenges.pop((server_round, kind), None)
        verdicts = RoundVerdicts()
        accepted: list[Message] = []
        for reply in replies:
            node = reply.metadata.src_node_id
            if challenge is None:
                verdicts.rejected.append(
                    Rejected(node, Reason.UNEXPECTED_REPLY, "no instruction was sent")
                )
                continue
            verdict = verify_reply(
                reply,
                run_id=challenge.run_id,
                server_round=server_round,
                nonce=challenge.nonce,
                message_type=kind,
            )
            if verdict.ok and verdict.pseudonym in verdicts.accepted.values():
                verdicts.rejected.append(
                    Rejected(node, Reason.DUPLICATE_PSEUDONYM, "pseudonym already answered")
                )
            elif verdict.ok:
                verdicts.accepted[node] = str(verdict.pseudonym)
                accepted.append(reply)
            else:
                assert verdict.reason is not None
                verdicts.rejected.append(Rejected(node, verdict.reason, verdict.detail))
        self.verdicts[(server_round, kind)] = verdicts
        for r in verdicts.rejected:
            log(
                WARNING,
                "round %d %s: rejected reply of node %s: %s (%s)",
                server_round,
                kind,
                r.node,
                r.reason,
                r.detail,
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

    def _absorb_inner_verdicts(self, server_round: int, kind: str) -> int:
        """Attribute an inner wrapper's rejections to pseudonyms; return how many there were."""
        inner_verdicts = getattr(self.inner, "verdicts", {}).get((server_round, kind))
        if not isinstance(inner_verdicts, RoundVerdicts):
            return 0
        ours = self.verdicts[(server_round, kind)]
        for r in inner_verdicts.rejected:
            ours.reject(r.node, r.reason, r.detail)
        return len(inner_verdicts.rejected)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        accepted = self.verify(server_round, replies, MessageType.TRAIN)
        arrays, metrics = (
            self.inner.aggregate_train(server_round, accepted) if accepted else (None, None)
        )
        own = list(self.verdicts[(server_round, MessageType.TRAIN)].rejected)
        self._absorb_inner_verdicts(server_round, MessageType.TRAIN)
        return arrays, merge_counts(metrics, len(accepted), own)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        replies = list(replies)
        if not replies and (server_round, MessageType.EVALUATE) not in self._challenges:
            return None  # no federated evaluation this round
        accepted = self.verify(server_round, replies, MessageType.EVALUATE)
        metrics = self.inner.aggregate_evaluate(server_round, accepted) if accepted else None
        own = list(self.verdicts[(server_round, MessageType.EVALUATE)].rejected)
        self._absorb_inner_verdicts(server_round, MessageType.EVALUATE)
        return merge_counts(metrics, len(accepted), own)

    def summary(self) -> None:
        log(
            INFO,
            "\t├── VerifiedStrategy: signed, nonce-bound replies only (strict=%s)",
            self.strict,
        )
        self.inner.summary()
