"""RoundState: the one value a round's stages pass along.

A round on the server is a pipeline, in the order data flows::

    verify (signatures) -> intake (decode every reply once, strictly) -> screen (checks)
    -> the inner strategy aggregates the survivors -> score -> settle (split, manifest)

Verification comes first so that unauthenticated bytes are never decoded and every later
rejection is attributable to the pseudonym that signed the reply (manifests name it, history
watches it); it reads only the small signature record and hashes the raw bytes.

Every stage is a function of the form ``RoundState -> RoundState``. The state holds what the
round knows: the global model it started from (the server's own reference, against which
every reply is decoded), the candidates still in the running with what was learned about
them (pseudonym, claimed examples, update hash, row of the delta matrix), every rejection
with its reason, and the scores. A stage never stashes data for another to fetch and never
writes into another stage's state; what it learns goes into the state it returns.

The one mutable part is the delta matrix, which intake fills once (``replies x parameters``
float32, one row per reply) and every later stage only reads: copying it per stage would
double the layer's memory at 1,000 replies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MessageType, MetricRecord

from flwr_stellar.reasons import Rejected

__all__ = ["Candidate", "ModelReference", "RecentUpdate", "RoundState", "claim_shares"]


@dataclass(frozen=True)
class ModelReference:
    """The global model as intake decodes replies against it: names, dtypes, shapes, offsets.

    Parameters
    ----------
    record : ArrayRecord
        The model the round started from (the server's own, never a reply's).
    """

    record: ArrayRecord
    keys: tuple[str, ...] = field(init=False)
    dtypes: tuple[np.dtype[Any], ...] = field(init=False)
    shapes: tuple[tuple[int, ...], ...] = field(init=False)
    offsets: tuple[int, ...] = field(init=False)
    size: int = field(init=False)
    base: np.ndarray = field(init=False, repr=False)  # the model, flat float32

    def __post_init__(self) -> None:
        arrays = [self.record[k].numpy() for k in self.record]
        sizes = [a.size for a in arrays]
        set_ = object.__setattr__
        set_(self, "keys", tuple(self.record.keys()))
        set_(self, "dtypes", tuple(a.dtype for a in arrays))
        set_(self, "shapes", tuple(tuple(int(d) for d in a.shape) for a in arrays))
        set_(self, "offsets", tuple(int(o) for o in np.cumsum([0, *sizes])[:-1]))
        set_(self, "size", int(sum(sizes)))
        parts = [a.ravel().astype(np.float32, copy=False) for a in arrays]
        set_(self, "base", np.concatenate(parts) if parts else np.zeros(0, np.float32))


@dataclass(frozen=True)
class Candidate:
    """A reply still in the running, and what the stages learned about it.

    Parameters
    ----------
    node : int
        Flower node id of the sender (``reply.metadata.src_node_id``).
    reply : Message
        The reply as received (the inner strategy gets it once it survived every stage).
    metrics : MetricRecord
        Its one MetricRecord, decoded and checked by intake.
    num_examples : int
        The claimed number of examples (a positive int, within the bound).
    row : int
        Its row in the round's delta matrix (train replies; -1 for evaluate).
    update_hash : str
        SHA-256 of its ArrayRecord (names, dtypes, shapes, bytes), as manifests cite it.
    pseudonym : str
        The Stellar account that signed it ("" until verified, or without verification).
    scale : float
        What the norm bound multiplied its update by (1.0 until bounded): row ``row`` of the
        delta matrix times ``scale`` is the update the inner strategy and the scorer see.
    """

    node: int
    reply: Message = field(repr=False)
    metrics: MetricRecord = field(repr=False)
    num_examples: int
    row: int = -1
    update_hash: str = ""
    pseudonym: str = ""
    scale: float = 1.0


@dataclass(frozen=True)
class RecentUpdate:
    """An accepted update of a recent round, as screening remembers it: a sketch (the same
    random coordinates of every update of the run), enough to tell a copy by its direction.

    Parameters
    ----------
    server_round : int
        The round it was accepted in.
    node : int
        Its sender (-1 for the round's global step).
    sketch : numpy.ndarray
        Its values at the run's sketch coordinates, float32.
    pseudonym : str
        The pseudonym that signed it ("" for a global step, or without verification): a
        SuperNode that restarts gets a new node id but keeps its pseudonym.
    """

    server_round: int
    node: int
    sketch: np.ndarray = field(repr=False)
    pseudonym: str = ""


@dataclass(frozen=True)
class RoundState:
    """Everything one round of one message type knows, passed from stage to stage.

    Parameters
    ----------
    server_round : int
        The round.
    kind : str
        ``MessageType.TRAIN`` or ``MessageType.EVALUATE``.
    model : ModelReference or None
        The global model the round started from (None when no instruction of this round and
        type was sent: every reply is then unexpected).
    replies : tuple of Message
        As received (after verification: the verified ones); intake turns them into
        candidates.
    signers : tuple of str
        After verification: the pseudonym that signed each of ``replies`` (empty without a
        verification stage).
    digests : Mapping[int, tuple[str, str]]
        After verification: node -> (the pseudonym its reply names, the reply's digest in
        hex) for every reply whose signature was checked, verified or not: what receipts cite.
    candidates : tuple of Candidate
        The replies still in the running, in arrival order.
    rejected : tuple of Rejected
        Every reply kept away from the inner strategy, with its reason.
    deltas : numpy.ndarray or None
        ``(replies, parameters)`` float32: row ``c.row`` is candidate ``c``'s update minus the
        global model (train rounds).
    norms : numpy.ndarray or None
        The L2 norm of each row.
    previous_base : numpy.ndarray or None
        The previous round's global model (flat float32): with ``model`` it gives the last
        global step.
    watched : frozenset of int
        Nodes with a recent rejection or worthless contribution (screening history).
    recent : tuple of RecentUpdate
        Accepted updates and global steps of recent rounds (screening history).
    sketch_index : numpy.ndarray or None
        The run's sketch coordinates (sorted indices into a flat update).
    reputation : Mapping[int, float]
        Node -> its trust in [0, 1] before this round (nodes not in it are new).
    scores : Mapping[str, int]
        Pseudonym -> non-negative integer weight, once scored.
    values : Mapping[str, float]
        Pseudonym -> the scorer's raw value, once scored.
    scoring : Mapping[str, str | int]
        The scorer's name and parameters as the manifest records them.
    """

    server_round: int
    kind: str
    model: ModelReference | None
    replies: tuple[Message, ...] = field(default=(), repr=False)
    signers: tuple[str, ...] = ()
    digests: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    deltas: np.ndarray | None = field(default=None, repr=False)
    norms: np.ndarray | None = field(default=None, repr=False)
    previous_base: np.ndarray | None = field(default=None, repr=False)
    watched: frozenset[int] = frozenset()
    recent: tuple[RecentUpdate, ...] = field(default=(), repr=False)
    sketch_index: np.ndarray | None = field(default=None, repr=False)
    reputation: Mapping[int, float] = field(default_factory=dict)
    scores: Mapping[str, int] = field(default_factory=dict)
    values: Mapping[str, float] = field(default_factory=dict)
    scoring: Mapping[str, str | int] = field(default_factory=dict)

    @classmethod
    def received(
        cls,
        server_round: int,
        kind: str,
        model: ModelReference | None,
        replies: Iterable[Message],
        *,
        previous_base: np.ndarray | None = None,
        watched: frozenset[int] = frozenset(),
        recent: tuple[RecentUpdate, ...] = (),
        sketch_index: np.ndarray | None = None,
        reputation: Mapping[int, float] | None = None,
    ) -> RoundState:
        """The state a round's replies start the pipeline in."""
        return cls(
            server_round,
            kind,
            model,
            tuple(replies),
            previous_base=previous_base,
            watched=watched,
            recent=recent,
            sketch_index=sketch_index,
            reputation=dict(reputation or {}),
        )

    @property
    def is_train(self) -> bool:
        return self.kind == MessageType.TRAIN

    def without(self, verdicts: Mapping[int, Rejected]) -> RoundState:
        """This state with the candidates at the given positions moved to ``rejected``.

        Parameters
        ----------
        verdicts : Mapping[int, Rejected]
            Position in ``candidates`` -> its rejection.
        """
        if not verdicts:
            return self
        keep = tuple(c for i, c in enumerate(self.candidates) if i not in verdicts)
        gone = tuple(verdicts[i] for i in sorted(verdicts))
        return replace(self, candidates=keep, rejected=self.rejected + gone)

    def accepted_replies(self) -> list[Message]:
        """The replies of the surviving candidates (what the inner strategy aggregates)."""
        return [c.reply for c in self.candidates]


def claim_shares(members: Sequence[Candidate]) -> np.ndarray:
    """Each candidate's share of the round: its claimed examples over all of them (float64),
    the weight FedAvg gives it, and so what scorers and the validation check apply it at."""
    counts = np.asarray([max(1, c.num_examples) for c in members], np.float64)
    shares: np.ndarray = counts / counts.sum()
    return shares
