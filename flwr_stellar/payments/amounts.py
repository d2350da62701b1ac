"""Amounts in integer stroops: the one codec between decimal coin strings and int64, and the
budget split.

``split_budget`` shares a round's budget among non-negative integer weights by largest
remainder, so payouts are integers, sum to at most the budget (exactly the budget when any
weight is positive) and do not depend on reply order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from flwr_stellar.ledger.base import STROOPS_PER_UNIT

MAX_AMOUNT = 2**63 - 1  # int64 stroops


def parse_amount(text: str) -> int | None:
    """'100' or '0.5' DLC -> stroops; None if not a positive amount with <= 7 decimals."""
    try:
        value = Decimal(text.strip()) * STROOPS_PER_UNIT
    except (InvalidOperation, AttributeError):
        return None
    if not value.is_finite() or value != value.to_integral_value() or not 0 < value <= MAX_AMOUNT:
        return None
    return int(value)


def format_amount(stroops: int) -> str:
    units, frac = divmod(stroops, STROOPS_PER_UNIT)
    return f"{units}.{frac:07d}".rstrip("0").rstrip(".")


def asset_code_ok(code: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9]{1,12}", code) is not None


def split_budget(budget: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Largest-remainder split of ``budget`` stroops; ties go to the smaller key."""
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
