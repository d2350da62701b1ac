"""The budget split: a round's stroops shared among integer weights.

``split_budget`` shares a round's budget among non-negative integer weights by largest
remainder, so payouts are integers, sum to at most the budget (exactly the budget when any
weight is positive) and do not depend on reply order.

The stroop codec (parse / format) lives in :mod:`flwr_stellar.ledger.amounts`, the one place
Stellar's amount rules are applied; its names are re-exported here so existing imports keep
working, but new code should import them from there.
"""

from __future__ import annotations

from collections.abc import Mapping

from flwr_stellar.ledger.amounts import (
    MAX_AMOUNT,
    STROOPS_PER_UNIT,
    AmountError,
    format_amount,
    format_stroops,
    parse_amount,
    parse_stroops,
    stroops_to_units,
)
from flwr_stellar.ledger.base import asset_code_ok

__all__ = [
    "MAX_AMOUNT",
    "STROOPS_PER_UNIT",
    "AmountError",
    "asset_code_ok",
    "format_amount",
    "format_stroops",
    "parse_amount",
    "parse_stroops",
    "split_budget",
    "stroops_to_units",
]


def split_budget(budget: int, weights: Mapping[str, int], quantum: int = 1) -> dict[str, int]:
    """Largest-remainder split of ``budget`` stroops; ties go to the smaller key.

    With ``quantum`` > 1 the budget is split in whole quanta (every share a multiple of it);
    the ``budget % quantum`` left over is not paid.
    """
    if quantum < 1:
        raise ValueError("quantum must be >= 1 stroop")
    if quantum > 1:
        units = split_budget(budget // quantum, weights)
        return {k: v * quantum for k, v in units.items()}
    if budget < 0 or any(w < 0 for w in weights.values()):
        raise ValueError("budget and weights must be >= 0")
    total = sum(weights.values())
    if total == 0:
        return dict.fromkeys(weights, 0)
    shares = {k: budget * w // total for k, w in weights.items()}
    left = budget - sum(shares.values())
    by_remainder = sorted(weights, key=lambda k: (-(budget * weights[k] % total), k))
    for key in by_remainder[:left]:
        shares[key] += 1
    return shares
