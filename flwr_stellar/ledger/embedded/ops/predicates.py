"""Claim predicates (CAP-23): decoded once into plain JSON values, evaluated at claim time.

A predicate is stored as ``{"unconditional": True}``, ``{"abs_before": unix}``,
``{"not": p}``, ``{"and": [p, q]}`` or ``{"or": [p, q]}``. A relative predicate
(``before_relative_time``) is made absolute when its balance is created, as stellar-core does,
so the stored value never depends on when it is read. Validity follows stellar-core: depth at
most 4, ``and``/``or`` with exactly two children, ``not`` with one, times not negative.
"""

from __future__ import annotations

from typing import Any

from stellar_sdk.xdr import ClaimPredicate, ClaimPredicateType

from flwr_stellar.ledger.base import predicate_holds
from flwr_stellar.ledger.embedded.entries import INT64_MAX

MAX_DEPTH = 4


class PredicateError(ValueError):
    """A predicate stellar-core would refuse as malformed."""


def decode(predicate: ClaimPredicate, close_time: int, depth: int = 1) -> Any:
    """The predicate as a JSON value, relative times added to ``close_time``."""
    if depth > MAX_DEPTH:
        raise PredicateError("predicate nested deeper than 4")
    kind = predicate.type
    if kind == ClaimPredicateType.CLAIM_PREDICATE_UNCONDITIONAL:
        return {"unconditional": True}
    if kind in (
        ClaimPredicateType.CLAIM_PREDICATE_AND,
        ClaimPredicateType.CLAIM_PREDICATE_OR,
    ):
        children = (
            predicate.and_predicates
            if kind == ClaimPredicateType.CLAIM_PREDICATE_AND
            else predicate.or_predicates
        )
        if children is None or len(children) != 2:
            raise PredicateError("and/or predicates take exactly two predicates")
        name = "and" if kind == ClaimPredicateType.CLAIM_PREDICATE_AND else "or"
        return {name: [decode(c, close_time, depth + 1) for c in children]}
    if kind == ClaimPredicateType.CLAIM_PREDICATE_NOT:
        if predicate.not_predicate is None:
            raise PredicateError("a not predicate takes one predicate")
        return {"not": decode(predicate.not_predicate, close_time, depth + 1)}
    if kind == ClaimPredicateType.CLAIM_PREDICATE_BEFORE_ABSOLUTE_TIME:
        assert predicate.abs_before is not None
        at = predicate.abs_before.int64
        if at < 0:
            raise PredicateError("absolute time before 0")
        return {"abs_before": at}
    assert predicate.rel_before is not None
    rel = predicate.rel_before.int64
    if rel < 0:
        raise PredicateError("relative time below 0")
    return {"abs_before": min(INT64_MAX, close_time + rel)}


holds = predicate_holds  # evaluation is shared with balances read from any backend
