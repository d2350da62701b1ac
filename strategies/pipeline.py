"""What every flwr-stellar wrapper shares: the round's reference model, intake, the hand-off.

A wrapper holds an inner Flower strategy and talks to it only through arguments and return
values (as Flower's DP wrappers do). At ``configure_*`` it keeps the model the instructions
carry (the reference intake decodes replies against); at ``aggregate_*`` it turns the replies
into a :class:`RoundState`, runs its stages, gives the inner strategy the survivors (with the
metrics they share, :func:`strategies.intake.common_metrics`) and records what it decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from logging import INFO, WARNING
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from flwr_stellar.reasons import RoundVerdicts, merge_counts
from strategies.intake import Intake, IntakeSettings, common_metrics
from strategies.round import ModelReference, RoundState

__all__ = ["PipelineStrategy"]


def _in_dtypes(arrays: ArrayRecord, model: ModelReference) -> ArrayRecord:
    """``arrays`` with each array in the model's dtype (integers rounded), where it differs."""
    dtypes = dict(zip(model.keys, model.dtypes, strict=True))
    if all(arrays[k].dtype == str(dtypes.get(k, arrays[k].dtype)) for k in arrays):
        return arrays
    out = ArrayRecord()
    for key, array in arrays.items():
        want = dtypes.get(key)
        values = array.numpy()
        if want is not None and values.dtype != want:
            values = np.rint(values) if want.kind in "iub" else values
            values = values.astype(want)
        out[key] = Array(values)
    return out


class PipelineStrategy(Strategy):
    """Base of the wrappers: intake against the round's own model, then the wrapper's stages.

    Parameters
    ----------
    inner : Strategy
        Any Flower strategy; it receives only replies that survived every stage.
    intake : IntakeSettings, optional
        Defaults read the record and weight keys from ``inner``.

    Attributes
    ----------
    verdicts : dict[tuple[int, str], RoundVerdicts]
        Per (round, message type): accepted node -> pseudonym, rejections with reasons. A
        result for the app (logs, reports), never read by another stage.
    """

    def __init__(self, inner: Strategy, intake: IntakeSettings | None = None) -> None:
        self.inner = inner
        self.intake = Intake(intake or IntakeSettings.for_strategy(inner))
        self.verdicts: dict[tuple[int, str], RoundVerdicts] = {}
        self._models: dict[tuple[int, str], ModelReference] = {}

    # ------------------------------------------------------------------ hooks
    def prepare(
        self, messages: list[Message], server_round: int, kind: str, grid: Grid
    ) -> list[Message]:
        """Add what this wrapper sends with every instruction (default: nothing)."""
        return messages

    def authenticate(self, state: RoundState) -> RoundState:
        """The wrapper's verification stage (default: none; the replies go on unverified)."""
        return state

    # ------------------------------------------------------------------ configure
    def _configure(
        self,
        messages: Iterable[Message],
        server_round: int,
        kind: str,
        arrays: ArrayRecord,
        grid: Grid,
    ) -> list[Message]:
        out = list(messages)
        if out:
            self._models[(server_round, kind)] = ModelReference(arrays)
        return self.prepare(out, server_round, kind, grid)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        inner = self.inner.configure_train(server_round, arrays, config, grid)
        return self._configure(inner, server_round, MessageType.TRAIN, arrays, grid)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        inner = self.inner.configure_evaluate(server_round, arrays, config, grid)
        return self._configure(inner, server_round, MessageType.EVALUATE, arrays, grid)

    # ------------------------------------------------------------------ aggregate
    def expects(self, server_round: int, kind: str) -> bool:
        """Whether instructions of this round and type went out (and are not aggregated yet)."""
        return (server_round, kind) in self._models

    def received(
        self,
        server_round: int,
        kind: str,
        replies: Iterable[Message],
        *,
        memory: Callable[[int, ModelReference | None], Mapping[str, Any]] | None = None,
    ) -> RoundState:
        """The round's replies as the state every wrapper's stages start from.

        Parameters
        ----------
        memory : callable, optional
            ``(server_round, model) -> keyword arguments of RoundState.received``: what the
            wrapper remembers of earlier rounds (screening history, reputation).
        """
        model = self._models.pop((server_round, kind), None)
        known = dict(memory(server_round, model)) if memory is not None else {}
        return RoundState.received(server_round, kind, model, replies, **known)

    def aggregate_inner(self, state: RoundState) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The inner strategy's training aggregate of the survivors (None, None: none left),
        in the global model's own dtypes.

        FedAvg averages an int64 buffer (BatchNorm's ``num_batches_tracked``) into float64;
        kept so, the next round's honest replies, which send int64 again, would no longer
        match the model. The aggregate goes back to the dtypes the round started from.
        """
        accepted = common_metrics(state.accepted_replies())
        if not accepted:
            return None, None
        arrays, metrics = self.inner.aggregate_train(state.server_round, accepted)
        if arrays is None or state.model is None:
            return arrays, metrics
        return _in_dtypes(arrays, state.model), metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Evaluate replies: authenticate -> intake -> the inner strategy (not screened, not
        paid)."""
        replies = list(replies)
        if not replies and not self.expects(server_round, MessageType.EVALUATE):
            return None  # no federated evaluation this round
        state = self.received(server_round, MessageType.EVALUATE, replies)
        state = self.intake(self.authenticate(state))
        return self.record(state, self.evaluate_inner(state))

    def evaluate_inner(self, state: RoundState) -> MetricRecord | None:
        """The inner strategy's evaluation aggregate of the survivors."""
        accepted = common_metrics(state.accepted_replies())
        return self.inner.aggregate_evaluate(state.server_round, accepted) if accepted else None

    def record(self, state: RoundState, metrics: MetricRecord | None) -> MetricRecord:
        """Log and keep the round's verdicts; add this wrapper's counts to the metrics."""
        verdicts = RoundVerdicts(
            accepted={c.node: c.pseudonym for c in state.candidates},
            rejected=list(state.rejected),
        )
        self.verdicts[(state.server_round, state.kind)] = verdicts
        for r in state.rejected:
            log(
                WARNING,
                "round %d %s: rejected reply of node %s: %s (%s)",
                state.server_round,
                state.kind,
                r.node,
                r.reason,
                r.detail,
            )
        log(
            INFO,
            "round %d %s: %d replies accepted, %d rejected",
            state.server_round,
            state.kind,
            len(state.candidates),
            len(state.rejected),
        )
        return merge_counts(metrics, len(state.candidates), state.rejected)
