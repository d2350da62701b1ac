"""Fee bumps (CAP-15) and claimable balances (CAP-23) as stellar-core applies them.

Fee bumps: the fee source pays min(bid, base fee x (ops + 1)), the inner source's sequence number
is consumed, an invalid inner transaction rejects the whole (nothing charged), and the result
codes are stellar-core's. Claimable balances: the creator pays one reserve per claimant, the
claimants need neither an account nor a trustline until they claim, a claim needs the
predicate to hold, and the reserves come back to the sponsor.
"""

import time

import pytest
from ledger_helpers import Chain, pay, trust
from stellar_sdk import (
    Account,
    Asset,
    Claimant,
    ClaimPredicate,
    FeeBumpTransaction,
    FeeBumpTransactionEnvelope,
    Keypair,
    TransactionBuilder,
    TransactionEnvelope,
)
from stellar_sdk import xdr as stellar_xdr

from flwr_stellar.ledger.base import NotFoundError
from flwr_stellar.ledger.embedded.ops.create_claimable_balance import balance_id
from flwr_stellar.ledger.result_xdr import build_result_xdr


@pytest.fixture
def chain() -> Chain:
    return Chain()


def inner_tx(chain: Chain, source: Keypair, *ops, fee: int = 100, seq: int | None = None):  # type: ignore[no-untyped-def]
    sequence = chain.ledger.load_account(source.public_key).sequence if seq is None else seq
    builder = TransactionBuilder(
        Account(source.public_key, sequence), chain.ledger.network_passphrase, base_fee=fee
    )
    for op in ops:
        op(builder)
    tx = builder.set_timeout(300).build()
    tx.sign(source)
    return tx


def bumped(chain: Chain, inner, fee_source: Keypair, base_fee: int = 100, signers=None) -> str:  # type: ignore[no-untyped-def]
    bump = TransactionBuilder.build_fee_bump_transaction(
        fee_source.public_key, base_fee, inner, chain.ledger.network_passphrase
    )
    for kp in signers if signers is not None else (fee_source,):
        bump.sign(kp)
    return bump.to_xdr()


def raw_bump(chain: Chain, inner, fee_source: Keypair, base_fee: int) -> str:  # type: ignore[no-untyped-def]
    """A fee bump the SDK's builder would refuse to make (its checks are the ledger's)."""
    env = FeeBumpTransactionEnvelope(
        FeeBumpTransaction(fee_source.public_key, base_fee, inner), chain.ledger.network_passphrase
    )
    env.sign(fee_source)
    return env.to_xdr()


def zero_xlm_account(chain: Chain, sponsor: Keypair) -> Keypair:
    """A sponsored account holding 0 XLM, like a node's pseudonym: it cannot pay any fee."""
    kp = Keypair.random()
    env = chain.build(
        sponsor,
        lambda b: b.append_begin_sponsoring_future_reserves_op(kp.public_key),
        lambda b: b.append_create_account_op(kp.public_key, "0"),
        lambda b: b.append_end_sponsoring_future_reserves_op(source=kp.public_key),
        signers=(sponsor, kp),
    )
    assert chain.ledger.submit(env).successful
    return kp


# ---------------------------------------------------------------------------- fee bumps
def test_fee_bump_lets_a_zero_xlm_account_move_its_funds(chain: Chain) -> None:
    sponsor, payer, dest = chain.funded(), chain.funded(), chain.funded()
    poor = zero_xlm_account(chain, sponsor)
    plain = chain.ledger.submit(chain.build(poor, pay(dest, "0.0000001")))
    assert (plain.tx_code, plain.applied) == ("tx_insufficient_balance", False)
    inner = inner_tx(chain, poor, lambda b: b.append_bump_sequence_op(0))
    before_payer, seq = chain.xlm(payer), chain.ledger.load_account(poor.public_key).sequence
    result = chain.ledger.submit(bumped(chain, inner, payer, base_fee=500))
    assert (result.successful, result.tx_code, result.inner_tx_code) == (
        True,
        "tx_fee_bump_inner_success",
        "tx_success",
    )
    assert result.fee_charged == 200  # min(bid 1000, base fee 100 x (1 op + 1))
    assert chain.xlm(payer) == before_payer - 200
    assert chain.xlm(poor) == 0
    assert chain.ledger.load_account(poor.public_key).sequence == seq + 1
    record = chain.ledger.transaction(result.hash)
    assert (record.source, record.fee_account, record.inner_hash) == (
        poor.public_key,
        payer.public_key,
        inner.hash_hex(),
    )
    assert chain.ledger.transaction(inner.hash_hex()).hash == result.hash  # by inner hash too
    payer_txs = chain.ledger.account_transactions(payer.public_key, limit=10).records
    assert result.hash in {t.hash for t in payer_txs}
    assert chain.ledger.verify_chain() > 0


def rejections(chain: Chain) -> dict[str, tuple[str, str]]:
    """Fee bumps stellar-core refuses whole: expected (outer code, inner code)."""
    a, payer, b, stranger = chain.funded(), chain.funded(), chain.funded(), chain.funded()
    broke = chain.funded(xlm=1)  # exactly its minimum balance
    ok = inner_tx(chain, a, pay(b, "1"))
    seq = chain.ledger.load_account(a.public_key).sequence
    low = raw_bump(chain, ok, payer, base_fee=75)  # fee 150 < 100 x (1 op + 1)
    rate = inner_tx(chain, a, pay(b, "1"), fee=400)
    low_rate = raw_bump(chain, rate, payer, base_fee=350)  # 700 / 2 < 400 / 1: the rate drops
    ghost = Keypair.random()
    return {
        "insufficient fee": (low, "tx_insufficient_fee"),
        "fee rate below the inner one": (low_rate, "tx_insufficient_fee"),
        "signed by someone else": (bumped(chain, ok, payer, signers=(stranger,)), "tx_bad_auth"),
        "extra signature": (
            bumped(chain, ok, payer, signers=(payer, stranger)),
            "tx_bad_auth_extra",
        ),
        "fee source missing": (bumped(chain, ok, ghost), "tx_no_source_account"),
        "fee source broke": (bumped(chain, ok, broke), "tx_insufficient_balance"),
        "inner bad sequence": (
            bumped(chain, inner_tx(chain, a, pay(b, "1"), seq=seq + 4), payer),
            "tx_fee_bump_inner_failed/tx_bad_seq",
        ),
        "inner bad signature": (
            bumped(chain, _resigned(chain, ok, stranger), payer),
            "tx_fee_bump_inner_failed/tx_bad_auth",
        ),
    }


def _resigned(chain: Chain, tx, signer: Keypair):  # type: ignore[no-untyped-def]
    env = TransactionEnvelope.from_xdr(tx.to_xdr(), chain.ledger.network_passphrase)
    env.signatures = []
    env.sign(signer)
    return env


@pytest.mark.parametrize(
    "case",
    [
        "insufficient fee",
        "fee rate below the inner one",
        "signed by someone else",
        "extra signature",
        "fee source missing",
        "fee source broke",
        "inner bad sequence",
        "inner bad signature",
    ],
)
def test_fee_bump_rejections_charge_nothing(chain: Chain, case: str) -> None:
    envelope, want = rejections(chain)[case]
    head = chain.ledger.latest_ledger()["seq"]
    result = chain.ledger.submit(envelope)
    outer, _, inner = want.partition("/")
    assert (result.tx_code, result.inner_tx_code, result.applied) == (outer, inner, False)
    assert result.fee_charged == 0
    assert chain.ledger.latest_ledger()["seq"] == head  # no ledger closed


def test_fee_bump_whose_inner_fails_is_charged_and_consumes_the_sequence(chain: Chain) -> None:
    a, payer, b = chain.funded(), chain.funded(), chain.funded()
    inner = inner_tx(chain, a, pay(b, "99999999"))  # more than a holds: op_underfunded
    seq, before_a, before_payer = (
        chain.ledger.load_account(a.public_key).sequence,
        chain.xlm(a),
        chain.xlm(payer),
    )
    result = chain.ledger.submit(bumped(chain, inner, payer))
    assert (result.applied, result.successful) == (True, False)
    assert (result.tx_code, result.inner_tx_code, result.op_codes) == (
        "tx_fee_bump_inner_failed",
        "tx_failed",
        ("op_underfunded",),
    )
    assert chain.xlm(a) == before_a and chain.xlm(payer) == before_payer - 200
    assert chain.ledger.load_account(a.public_key).sequence == seq + 1


def test_fee_bump_resubmission_and_a_second_bump_of_the_same_inner(chain: Chain) -> None:
    a, payer, other, b = chain.funded(), chain.funded(), chain.funded(), chain.funded()
    inner = inner_tx(chain, a, pay(b, "1"))
    envelope = bumped(chain, inner, payer)
    first = chain.ledger.submit(envelope)
    again = chain.ledger.submit(envelope)  # lost answer: the same envelope, the first outcome
    assert (again.hash, again.successful, again.ledger) == (first.hash, True, first.ledger)
    rebid = chain.ledger.submit(bumped(chain, inner, other, base_fee=1000))
    assert (rebid.applied, rebid.tx_code, rebid.inner_tx_code) == (
        False,
        "tx_fee_bump_inner_failed",
        "tx_bad_seq",
    )
    assert chain.xlm(b) == 10_000 * 10_000_000 + 10_000_000  # paid once


def test_fee_bump_result_xdr_names_the_inner_transaction(chain: Chain) -> None:
    a, payer, b = chain.funded(), chain.funded(), chain.funded()
    inner = inner_tx(chain, a, pay(b, "1"))
    result = chain.ledger.submit(bumped(chain, inner, payer))
    record = chain.ledger.transaction(result.hash)
    decoded = stellar_xdr.TransactionResult.from_xdr(
        build_result_xdr(
            record.envelope_xdr,
            record.fee_charged,
            record.tx_code,
            record.op_codes,
            inner_hash=record.inner_hash,
            inner_code=record.inner_tx_code,
        )
    )
    pair = decoded.result.inner_result_pair
    assert decoded.result.code == stellar_xdr.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS
    assert pair.transaction_hash.hash.hex() == inner.hash_hex()
    assert pair.result.result.code == stellar_xdr.TransactionResultCode.txSUCCESS


# ---------------------------------------------------------------------------- claimable balances
def coin(chain: Chain) -> tuple[Keypair, Keypair, Asset]:
    """An issuer and a distributor holding 1,000 DLC."""
    issuer, distributor = chain.funded(), chain.funded()
    asset = chain.asset(issuer)
    assert chain.submit(distributor, trust(asset)).successful
    assert chain.submit(issuer, pay(distributor, "1000", asset)).successful
    return issuer, distributor, asset


def create(chain: Chain, source: Keypair, asset: Asset, amount: str, *claimants: Claimant):  # type: ignore[no-untyped-def]
    env = chain.build(
        source, lambda b: b.append_create_claimable_balance_op(asset, amount, list(claimants))
    )
    return env, chain.ledger.submit(env)


def test_claimable_balance_pays_a_node_that_has_no_account_yet(chain: Chain) -> None:
    _, distributor, asset = coin(chain)
    node = Keypair.random()  # no account, no trustline
    env, result = create(chain, distributor, asset, "12.5", Claimant(node.public_key))
    assert result.successful, result.op_codes
    tx = TransactionEnvelope.from_xdr(env, chain.ledger.network_passphrase).transaction
    bid = tx.get_claimable_balance_id(0)  # the official SDK's derivation of the id
    assert bid == balance_id(distributor.public_key, tx.sequence, 0)
    listed = chain.ledger.claimable_balances(claimant=node.public_key).records
    assert [(b.id, b.amount, b.sponsor) for b in listed] == [
        (bid, 125_000_000, distributor.public_key)
    ]
    assert chain.ledger.load_account(distributor.public_key).num_sponsoring == 1
    assert chain.ledger.load_account(distributor.public_key).balance(asset_id(asset)) == (
        987_5000000
    )
    # the node opens an account and a trustline later, then claims
    funder = chain.funded()
    assert chain.submit(
        funder, lambda b: b.append_create_account_op(node.public_key, "5")
    ).successful
    no_trust = chain.submit(node, lambda b: b.append_claim_claimable_balance_op(bid))
    assert no_trust.op_codes == ("op_no_trust",)
    assert chain.submit(node, trust(asset)).successful
    claimed = chain.submit(node, lambda b: b.append_claim_claimable_balance_op(bid))
    assert claimed.successful, claimed.op_codes
    assert chain.ledger.load_account(node.public_key).balance(asset_id(asset)) == 125_000_000
    assert chain.ledger.load_account(distributor.public_key).num_sponsoring == 0
    with pytest.raises(NotFoundError):
        chain.ledger.claimable_balance(bid)
    twice = chain.submit(node, lambda b: b.append_claim_claimable_balance_op(bid))
    assert twice.op_codes == ("op_does_not_exist",)


def asset_id(asset: Asset) -> str:
    return f"{asset.code}:{asset.issuer}"


def test_claim_predicates_unconditional_absolute_relative_and_not(chain: Chain) -> None:
    _, distributor, asset = coin(chain)
    node, thief = chain.funded(), chain.funded()
    for kp in (node, distributor, thief):
        if kp is not distributor:
            assert chain.submit(kp, trust(asset)).successful
    now = int(time.time())
    cases = {
        "expired": (ClaimPredicate.predicate_before_absolute_time(now - 60), node, False),
        "open": (ClaimPredicate.predicate_before_relative_time(3600), node, True),
        "not yet (reclaim after a day)": (
            ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(86400)),
            distributor,
            False,
        ),
        "and of open and unconditional": (
            ClaimPredicate.predicate_and(
                ClaimPredicate.predicate_before_relative_time(3600),
                ClaimPredicate.predicate_unconditional(),
            ),
            node,
            True,
        ),
        "or of expired and expired": (
            ClaimPredicate.predicate_or(
                ClaimPredicate.predicate_before_absolute_time(now - 5),
                ClaimPredicate.predicate_before_absolute_time(now - 1),
            ),
            node,
            False,
        ),
    }
    for name, (predicate, who, claimable) in cases.items():
        env, result = create(chain, distributor, asset, "1", Claimant(who.public_key, predicate))
        assert result.successful, (name, result.op_codes)
        tx = TransactionEnvelope.from_xdr(env, chain.ledger.network_passphrase).transaction
        bid = tx.get_claimable_balance_id(0)
        stolen = chain.submit(thief, lambda b, i=bid: b.append_claim_claimable_balance_op(i))
        assert stolen.op_codes == ("op_cannot_claim",), name
        got = chain.submit(who, lambda b, i=bid: b.append_claim_claimable_balance_op(i))
        assert got.successful is claimable, (name, got.op_codes)
        if not claimable:
            assert got.op_codes == ("op_cannot_claim",), name


@pytest.mark.parametrize(
    "case",
    [
        "zero amount",
        "duplicate claimants",
        "no claimants",
        "underfunded",
        "no trust",
        "low reserve",
    ],
)
def test_create_claimable_balance_failures(chain: Chain, case: str) -> None:
    issuer, distributor, asset = coin(chain)
    node = Keypair.random()
    broke = Keypair.random()  # its minimum balance and one fee: no room for a reserve
    assert chain.ledger.fund(broke.public_key, 10_000_000 + 100).successful
    untrusting = chain.funded()
    source, amount, claimants, want = {
        "zero amount": (distributor, "0.0000000", [Claimant(node.public_key)], "op_malformed"),
        "duplicate claimants": (
            distributor,
            "1",
            [Claimant(node.public_key), Claimant(node.public_key)],
            "op_malformed",
        ),
        "no claimants": (distributor, "1", [], "op_malformed"),
        "underfunded": (distributor, "1000.0000001", [Claimant(node.public_key)], "op_underfunded"),
        "no trust": (untrusting, "1", [Claimant(node.public_key)], "op_no_trust"),
        "low reserve": (broke, "0.1", [Claimant(node.public_key)], "op_low_reserve"),
    }[case]
    if case == "low reserve":
        asset = Asset.native()
    built = TransactionBuilder(
        Account(source.public_key, chain.ledger.load_account(source.public_key).sequence),
        chain.ledger.network_passphrase,
        base_fee=100,
    )
    if case == "zero amount":  # the SDK refuses to build it: write the operation's XDR
        op = stellar_xdr.Operation(
            None,
            stellar_xdr.OperationBody(
                stellar_xdr.OperationType.CREATE_CLAIMABLE_BALANCE,
                create_claimable_balance_op=stellar_xdr.CreateClaimableBalanceOp(
                    asset.to_xdr_object(),
                    stellar_xdr.Int64(0),
                    [c.to_xdr_object() for c in claimants],
                ),
            ),
        )
        tx = built.append_bump_sequence_op(0).set_timeout(60).build()
        tx.transaction.operations = []
        envelope = tx.to_xdr_object()
        envelope.v1.tx.operations = [op]
        from stellar_sdk import TransactionEnvelope as Env

        signed = Env.from_xdr_object(envelope, chain.ledger.network_passphrase)
        signed.signatures = []
        signed.sign(source)
        xdr_text = signed.to_xdr()
    else:
        tx = built.append_create_claimable_balance_op(asset, amount, claimants)
        tx = tx.set_timeout(60).build()
        tx.sign(source)
        xdr_text = tx.to_xdr()
    before = chain.ledger.load_account(source.public_key).num_sponsoring
    result = chain.ledger.submit(xdr_text)
    assert (result.applied, result.op_codes) == (True, (want,))
    assert chain.ledger.load_account(source.public_key).num_sponsoring == before
    assert chain.ledger.claimable_balances(claimant=node.public_key).records == ()
    del issuer


def test_sponsored_claimable_balance_reserve_goes_to_the_sponsor(chain: Chain) -> None:
    _, distributor, asset = coin(chain)
    sponsor, node = chain.funded(), Keypair.random()
    env = chain.build(
        sponsor,
        lambda b: b.append_begin_sponsoring_future_reserves_op(distributor.public_key),
        lambda b: b.append_create_claimable_balance_op(
            asset, "3", [Claimant(node.public_key)], source=distributor.public_key
        ),
        lambda b: b.append_end_sponsoring_future_reserves_op(source=distributor.public_key),
        signers=(sponsor, distributor),
    )
    result = chain.ledger.submit(env)
    assert result.successful, result.op_codes
    (record,) = chain.ledger.claimable_balances(sponsor=sponsor.public_key).records
    assert record.sponsor == sponsor.public_key
    assert chain.ledger.load_account(sponsor.public_key).num_sponsoring == 1
    assert chain.ledger.load_account(distributor.public_key).num_sponsoring == 0
