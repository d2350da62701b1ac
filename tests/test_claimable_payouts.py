"""Claimable payouts as the audit reads them: a balance counts as paid to its first claimant
only when that claimant can take it at any time; an operator who pays with strings attached
(an expired predicate, a stranger or itself able to take it first) pays nothing in the audit."""

from __future__ import annotations

import time

import pytest
from ledger_helpers import Chain, trust
from stellar_sdk import Asset, Claimant, ClaimPredicate, Keypair

from flwr_stellar.ledger.decode import decode_envelope
from flwr_stellar.payments.amounts import split_budget


def paid_and_flagged(claimants_of) -> tuple[list, list]:  # type: ignore[no-untyped-def]
    chain = Chain()
    issuer, distributor = chain.funded(), chain.funded()
    asset = Asset("DLC", issuer.public_key)
    chain.submit(distributor, trust(asset))
    chain.submit(issuer, lambda b: b.append_payment_op(distributor.public_key, asset, "100"))
    node, stranger = Keypair.random(), Keypair.random()
    claimants = claimants_of(node.public_key, distributor.public_key, stranger.public_key)
    result = chain.submit(
        distributor,
        lambda b: b.append_create_claimable_balance_op(asset, "5", claimants),
        lambda b: b.add_hash_memo(b"\x01" * 32),
    )
    assert result.successful, result.op_codes
    _, payments, others = decode_envelope(chain.ledger.transaction(result.hash))
    return payments, others


NOW = int(time.time())
LATER = ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(30 * 86400))


@pytest.mark.parametrize(
    "case, claimants, counted",
    [
        ("node alone, unconditional", lambda n, d, s: [Claimant(n)], True),
        (
            "node, and the distributor after 30 days",
            lambda n, d, s: [Claimant(n), Claimant(d, LATER)],
            True,
        ),
        (
            "node until an hour ago (expired)",
            lambda n, d, s: [
                Claimant(n, ClaimPredicate.predicate_before_absolute_time(NOW - 3600))
            ],
            False,
        ),
        ("node, and a stranger at once", lambda n, d, s: [Claimant(n), Claimant(s)], False),
        ("node, and the distributor at once", lambda n, d, s: [Claimant(n), Claimant(d)], False),
        (
            "node, and a stranger after 30 days",
            lambda n, d, s: [Claimant(n), Claimant(s, LATER)],
            False,
        ),
        ("the distributor first", lambda n, d, s: [Claimant(d), Claimant(n)], False),
        (
            "three claimants",
            lambda n, d, s: [Claimant(n), Claimant(d, LATER), Claimant(s, LATER)],
            False,
        ),
    ],
)
def test_only_a_balance_the_node_can_take_counts(case: str, claimants, counted: bool) -> None:  # type: ignore[no-untyped-def]
    payments, others = paid_and_flagged(claimants)
    assert bool(payments) is counted, case
    assert bool(others) is not counted, case  # anything else is an operation the audit reports
    if counted:
        assert payments[0][2] == 50_000_000


@pytest.mark.parametrize("quantum", [1, 7, 100_000, 10_000_000])
def test_quantized_split_pays_whole_quanta_and_never_more_than_the_budget(quantum: int) -> None:
    weights = {"a": 3, "b": 5, "c": 11, "d": 0}
    shares = split_budget(1_000_000_001, weights, quantum)
    assert all(v % quantum == 0 for v in shares.values())
    assert 1_000_000_001 - quantum < sum(shares.values()) <= 1_000_000_001
    assert shares["d"] == 0
    assert split_budget(1_000_000_001, weights, quantum) == shares  # deterministic
