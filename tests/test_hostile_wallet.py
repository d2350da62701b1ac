"""Hostile review of fee bumps, claimable balances, claimable payouts and the provider wallet.

Each test is an attack: a malformed or tricky envelope, a stranger on the ledger spamming or
griefing a pseudonym, a cheating operator paying with strings attached, a hand-edited journal.
Each bug these tests found is fixed; the tests keep it fixed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from pathlib import Path

import pytest
from ledger_helpers import Chain, trust
from starlette.testclient import TestClient
from stellar_sdk import (
    Account,
    Asset,
    Claimant,
    ClaimPredicate,
    CreateAccount,
    CreateClaimableBalance,
    FeeBumpTransactionEnvelope,
    Keypair,
    MuxedAccount,
    Payment,
    TransactionBuilder,
    TransactionEnvelope,
    xdr,
)
from wallet_world import UNIT, World, make_world

from flwr_stellar.cli import main
from flwr_stellar.client.journal import COLLECT, Journal, journal_path
from flwr_stellar.ledger.base import LedgerError
from flwr_stellar.ledger.decode import decode_envelope
from flwr_stellar.ledger.server import create_app
from flwr_stellar.ledger.tx import submit_signed
from flwr_stellar.payments.amounts import split_budget
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.protocol.canonical import RecordError, canonical_json
from flwr_stellar.protocol.terms import RewardTerms

PASSPHRASE = "hostile-wallet-passphrase"
INT64_MAX = 2**63 - 1
PAID_RUN, CLAIMABLE_RUN = 21, 22
NOW = int(time.time())
U = ClaimPredicate.predicate_unconditional()


# ------------------------------------------------------------------------------------ fee bumps
@pytest.fixture
def chain() -> Chain:
    return Chain()


def _inner(
    chain: Chain,
    source: Keypair,
    dest: Keypair,
    *,
    muxed: bool = False,
    fee: int = 100,
    extra_sigs: int = 0,
) -> TransactionEnvelope:
    sequence = chain.ledger.load_account(source.public_key).sequence
    account_id = MuxedAccount(source.public_key, 2**64 - 1).account_muxed if muxed else None
    builder = TransactionBuilder(
        Account(account_id or source.public_key, sequence),
        chain.ledger.network_passphrase,
        base_fee=fee,
    )
    builder.append_payment_op(dest.public_key, Asset.native(), "1").set_timeout(300)
    tx = builder.build()
    tx.sign(source)
    for _ in range(extra_sigs):
        tx.sign(Keypair.random())
    return tx


def _bump(
    chain: Chain,
    inner: TransactionEnvelope,
    payer: Keypair,
    *,
    muxed: bool = False,
    base_fee: int = 200,
) -> TransactionEnvelope:
    fee_source = MuxedAccount(payer.public_key, 7).account_muxed if muxed else payer.public_key
    bump = TransactionBuilder.build_fee_bump_transaction(
        fee_source, base_fee, inner, chain.ledger.network_passphrase
    )
    bump.sign(payer)
    return bump


@pytest.mark.parametrize("inner_muxed", [False, True])
@pytest.mark.parametrize("fee_muxed", [False, True])
@pytest.mark.parametrize("extra_sigs", [0, 5])
def test_fee_bump_hashes_match_the_sdk_for_muxed_accounts_and_many_signatures(
    chain: Chain, inner_muxed: bool, fee_muxed: bool, extra_sigs: int
) -> None:
    """``_decode`` slices the inner transaction out of the received bytes: the slice must be
    exact whatever the length of the (muxed) fee source and of each signature array."""
    src, payer, dest = chain.funded(), chain.funded(), chain.funded()
    inner = _inner(chain, src, dest, muxed=inner_muxed, extra_sigs=extra_sigs)
    bump = _bump(chain, inner, payer, muxed=fee_muxed)
    decoded = chain.ledger._decode(bump.to_xdr())
    assert decoded.inner_hash.hex() == inner.hash_hex()
    assert decoded.hash.hex() == bump.hash_hex()
    if extra_sigs:  # signatures by strangers: the inner transaction is refused, none charged
        before = chain.xlm(payer)
        result = chain.ledger.submit(bump.to_xdr())
        assert not result.applied and result.inner_tx_code == "tx_bad_auth_extra"
        assert chain.xlm(payer) == before
        return
    result = chain.ledger.submit(bump.to_xdr())
    assert result.successful and result.hash == bump.hash_hex()
    record = chain.ledger.transaction(inner.hash_hex())  # found by its inner hash too
    assert record.hash == bump.hash_hex() and record.fee_payer == payer.public_key
    assert record.source == src.public_key


def test_odd_length_signatures_do_not_shift_the_inner_slice(chain: Chain) -> None:
    src, payer, dest = chain.funded(), chain.funded(), chain.funded()
    inner = _inner(chain, src, dest)
    env = inner.to_xdr_object()
    assert env.v1 is not None
    for length in (1, 3, 5, 63, 0):
        env.v1.signatures.append(
            xdr.DecoratedSignature(xdr.SignatureHint(b"\x00" * 4), xdr.Signature(b"s" * length))
        )
    odd = TransactionEnvelope.from_xdr_object(env, chain.ledger.network_passphrase)
    bump = _bump(chain, odd, payer)
    decoded = chain.ledger._decode(bump.to_xdr())
    assert decoded.inner_hash.hex() == odd.hash_hex() == inner.hash_hex()
    assert decoded.hash.hex() == bump.hash_hex()


def test_trailing_bytes_after_a_fee_bump_are_refused(chain: Chain) -> None:
    src, payer, dest = chain.funded(), chain.funded(), chain.funded()
    bump = _bump(chain, _inner(chain, src, dest), payer)
    padded = base64.b64encode(base64.b64decode(bump.to_xdr()) + b"\x00" * 8).decode()
    with pytest.raises(LedgerError, match="malformed"):
        chain.ledger.submit(padded)


def test_a_fee_bump_of_a_fee_bump_cannot_even_be_decoded(chain: Chain) -> None:
    """FeeBumpTransaction.innerTx admits ENVELOPE_TYPE_TX only: hand-made bytes naming a fee
    bump as the inner envelope are malformed, not a nested fee bump."""
    src, payer, dest = chain.funded(), chain.funded(), chain.funded()
    once = _bump(chain, _inner(chain, src, dest), payer)
    raw = base64.b64decode(once.to_xdr())
    fee_source = Keypair.from_public_key(payer.public_key).xdr_muxed_account().to_xdr_bytes()
    nested = (
        struct.pack(">i", 5)
        + fee_source
        + struct.pack(">q", 10_000)
        + raw  # the inner "envelope": type 5, a whole fee bump
        + b"\x00" * 4  # ext
        + b"\x00" * 4  # no signatures
    )
    with pytest.raises(LedgerError, match="malformed"):
        chain.ledger.submit(base64.b64encode(nested).decode())


@pytest.mark.parametrize(
    "outer_fee, inner_fee, code",
    [
        (INT64_MAX, 100, "tx_fee_bump_inner_success"),  # a huge bid: only the minimum is taken
        (2**62, 0, "tx_fee_bump_inner_success"),  # an inner transaction bidding nothing
        (-1, 0, "tx_insufficient_fee"),
        (199, 0, "tx_insufficient_fee"),  # below 100 per operation, the bump counting as one
        (300, 200, "tx_insufficient_fee"),  # a rate below the inner one's
    ],
)
def test_fee_bump_bids(chain: Chain, outer_fee: int, inner_fee: int, code: str) -> None:
    src, payer, dest = chain.funded(), chain.funded(), chain.funded()
    inner = _inner(chain, src, dest, fee=inner_fee)
    bump = _bump(chain, inner, payer)
    env = bump.to_xdr_object()
    assert env.fee_bump is not None
    env.fee_bump.tx.fee = xdr.Int64(outer_fee)
    resigned = FeeBumpTransactionEnvelope.from_xdr_object(env, chain.ledger.network_passphrase)
    resigned.signatures = []
    resigned.sign(payer)
    before_payer, before_src = chain.xlm(payer), chain.xlm(src)
    result = chain.ledger.submit(resigned.to_xdr())
    assert result.tx_code == code
    if result.successful:
        assert result.fee_charged == 200 and chain.xlm(payer) == before_payer - 200
        assert chain.xlm(src) == before_src - UNIT  # the payment; no fee from the inner source
    else:
        assert chain.xlm(payer) == before_payer and chain.xlm(src) == before_src


def test_fee_bump_rejections_charge_nobody(chain: Chain) -> None:
    src, payer, dest = chain.funded(), chain.funded(), chain.funded()
    ledger = chain.ledger
    inner = _inner(chain, src, dest)
    # the fee source does not exist
    ghost = Keypair.random()
    assert ledger.submit(_bump(chain, inner, ghost).to_xdr()).tx_code == "tx_no_source_account"
    # no outer signature, or one by a stranger too
    bare = TransactionBuilder.build_fee_bump_transaction(
        payer.public_key, 200, inner, ledger.network_passphrase
    )
    assert ledger.submit(bare.to_xdr()).tx_code == "tx_bad_auth"
    extra = _bump(chain, inner, payer)
    extra.sign(Keypair.random())
    assert ledger.submit(extra.to_xdr()).tx_code == "tx_bad_auth_extra"
    # the inner transaction signed by someone else
    forged = _inner(chain, src, dest)
    forged.signatures = []
    forged.sign(Keypair.random())
    result = ledger.submit(_bump(chain, forged, payer).to_xdr())
    assert (result.tx_code, result.inner_tx_code, result.applied) == (
        "tx_fee_bump_inner_failed",
        "tx_bad_auth",
        False,
    )
    assert chain.xlm(payer) == chain.xlm(dest)  # both still at friendbot's amount


def test_a_second_fee_bump_of_an_applied_inner_tx_applies_nothing(chain: Chain) -> None:
    src, payer, other, dest = chain.funded(), chain.funded(), chain.funded(), chain.funded()
    inner = _inner(chain, src, dest)
    first = _bump(chain, inner, payer)
    assert chain.ledger.submit(first.to_xdr()).successful
    again = chain.ledger.submit(first.to_xdr())  # the same bump: Horizon's safe resubmission
    assert again.successful and again.hash == first.hash_hex()
    before = chain.xlm(other)
    second = chain.ledger.submit(_bump(chain, inner, other).to_xdr())
    assert not second.applied and second.inner_tx_code == "tx_bad_seq"
    assert chain.xlm(other) == before
    assert chain.xlm(dest) == chain.xlm(other) + UNIT  # paid once


def test_hostile_fee_bumps_through_ledger_serve_are_answered_never_a_500(chain: Chain) -> None:
    """Every rejected or odd fee bump POSTed to ``ledger serve``: a 200 or a 400 whose
    result_xdr (when given) decodes, and each stored one readable by either hash."""
    src, payer, dest = chain.funded(), chain.funded(), chain.funded()
    ledger = chain.ledger
    client = TestClient(create_app(ledger), raise_server_exceptions=False)
    forged = _inner(chain, src, dest)
    forged.signatures = []
    forged.sign(Keypair.random())
    extra = _bump(chain, _inner(chain, src, dest), payer)
    extra.sign(Keypair.random())
    envelopes = [
        lambda: _bump(chain, forged, payer),  # inner tx_bad_auth
        lambda: _bump(chain, _inner(chain, src, dest), Keypair.random()),  # no fee source
        lambda: extra,  # tx_bad_auth_extra
        lambda: _bump(chain, _inner(chain, src, dest, muxed=True), payer, muxed=True),
        lambda: _bump(chain, unpayable(), payer),  # applied, its payment failing
    ]

    def unpayable() -> TransactionEnvelope:
        no_trust = Asset("X", payer.public_key)
        built = chain.build(src, lambda b: b.append_payment_op(dest.public_key, no_trust, "1"))
        return TransactionEnvelope.from_xdr(built, ledger.network_passphrase)

    codes = []
    for make in envelopes:
        bump = make()
        answer = client.post("/transactions", data={"tx": bump.to_xdr()})
        assert answer.status_code in (200, 400), answer.text
        body = answer.json()
        found = body.get("result_codes") or body["extras"]["result_codes"]
        codes.append((found["transaction"], found.get("inner_transaction", "")))
        result_xdr = body.get("result_xdr") or body.get("extras", {}).get("result_xdr")
        if result_xdr:
            xdr.TransactionResult.from_xdr(result_xdr)
        if answer.status_code == 200 or body.get("extras", {}).get("applied"):
            for name in (bump.hash_hex(), bump.transaction.inner_transaction_envelope.hash_hex()):
                got = client.get(f"/transactions/{name}")
                assert got.status_code == 200 and got.json()["hash"] == name, got.text
                assert client.get(f"/transactions/{name}/operations").status_code == 200
    assert codes == [
        ("tx_fee_bump_inner_failed", "tx_bad_auth"),
        ("tx_no_source_account", ""),
        ("tx_bad_auth_extra", ""),
        ("tx_fee_bump_inner_success", "tx_success"),
        ("tx_fee_bump_inner_failed", "tx_failed"),
    ]


# ----------------------------------------------------------------------------- claimable balances
def _create(
    chain: Chain, source: Keypair, claimants: list[Claimant], amount: str = "1", asset=None
):  # type: ignore[no-untyped-def]
    return chain.submit(
        source,
        lambda b: b.append_create_claimable_balance_op(asset or Asset.native(), amount, claimants),
    )


def _nested_not(depth: int) -> ClaimPredicate:
    p = U
    for _ in range(depth - 1):
        p = ClaimPredicate.predicate_not(p)
    return p


@pytest.mark.parametrize(
    "predicate, ok",
    [
        (_nested_not(4), True),  # depth 4 (stellar-core's limit)
        (_nested_not(5), False),
        (_nested_not(6), False),
        (ClaimPredicate.predicate_before_absolute_time(-1), False),
        (ClaimPredicate.predicate_before_relative_time(-1), False),
        (ClaimPredicate.predicate_before_absolute_time(INT64_MAX), True),
        (ClaimPredicate.predicate_before_relative_time(INT64_MAX), True),  # capped, no overflow
        (ClaimPredicate.predicate_before_absolute_time(253_402_300_800 + 5), True),  # year 10000
    ],
)
def test_predicate_validity_and_its_horizon_json(
    chain: Chain, predicate: ClaimPredicate, ok: bool
) -> None:
    src, node = chain.funded(), Keypair.random()
    result = _create(chain, src, [Claimant(node.public_key, predicate)])
    assert result.successful is ok, result.op_codes
    if not ok:
        assert result.op_codes == ("op_malformed",)
    client = TestClient(create_app(chain.ledger), raise_server_exceptions=False)
    listed = client.get("/claimable_balances", params={"claimant": node.public_key})
    assert listed.status_code == 200, listed.text
    records = listed.json()["_embedded"]["records"]
    assert len(records) == (1 if ok else 0)
    if records:
        stored = records[0]["claimants"][0]["predicate"]
        if "abs_before_epoch" in stored:
            assert int(stored["abs_before_epoch"]) <= INT64_MAX
        one = client.get(f"/claimable_balances/{records[0]['id']}")
        assert one.status_code == 200
    # the (failed or applied) operation as Horizon shows it: never a 500
    ops = client.get(f"/accounts/{src.public_key}/operations", params={"limit": 50})
    assert ops.status_code == 200, ops.text
    txs = client.get(f"/transactions/{result.hash}")
    assert txs.status_code == 200, txs.text


def test_operation_json_of_an_extreme_negative_time_is_not_a_500(chain: Chain) -> None:
    src = chain.funded()
    result = _create(
        chain,
        src,
        [
            Claimant(
                Keypair.random().public_key, ClaimPredicate.predicate_before_absolute_time(-(2**63))
            )
        ],
    )
    assert result.op_codes == ("op_malformed",)
    client = TestClient(create_app(chain.ledger), raise_server_exceptions=False)
    ops = client.get(f"/accounts/{src.public_key}/operations", params={"limit": 50})
    assert ops.status_code == 200, ops.text


def test_malformed_claimant_lists(chain: Chain) -> None:
    src, node = chain.funded(), Keypair.random()
    assert _create(chain, src, [Claimant(node.public_key), Claimant(node.public_key)]).op_codes == (
        "op_malformed",
    )
    ten = [Claimant(Keypair.random().public_key) for _ in range(10)]
    raw = xdr.TransactionEnvelope.from_xdr(
        chain.build(src, lambda b: b.append_create_claimable_balance_op(Asset.native(), "1", ten))
    )
    assert raw.v1 is not None
    op = raw.v1.tx.operations[0].body.create_claimable_balance_op
    assert op is not None
    op.claimants.append(Claimant(Keypair.random().public_key).to_xdr_object())  # 11
    with pytest.raises(LedgerError, match="malformed"):  # XDR says <10>: not even decoded
        chain.ledger.submit(raw.to_xdr())
    assert _create(chain, src, [Claimant(node.public_key)], amount="0.0000001").successful


def test_int64_balances_by_the_issuer_and_a_full_line(chain: Chain) -> None:
    issuer, node = chain.funded(), chain.funded()
    asset = chain.asset(issuer)
    chain.submit(node, trust(asset))
    biggest = "922337203685.4775807"
    for _ in range(2):
        assert _create(chain, issuer, [Claimant(node.public_key)], biggest, asset).successful
    first, second = chain.ledger.claimable_balances(claimant=node.public_key).records
    claim = chain.submit(node, lambda b: b.append_claim_claimable_balance_op(first.id))
    assert claim.successful
    full = chain.submit(node, lambda b: b.append_claim_claimable_balance_op(second.id))
    assert full.op_codes == ("op_line_full",)
    assert chain.ledger.claimable_balance(second.id).amount == INT64_MAX  # still there
    assert chain.ledger.load_account(node.public_key).balance(f"DLC:{issuer.public_key}") == (
        INT64_MAX
    )


def test_claims_by_muxed_source_strangers_and_twice(chain: Chain) -> None:
    src, node, stranger = chain.funded(), chain.funded(), chain.funded()
    assert _create(chain, src, [Claimant(node.public_key)], "3").successful
    (balance,) = chain.ledger.claimable_balances(claimant=node.public_key).records
    stolen = chain.submit(stranger, lambda b: b.append_claim_claimable_balance_op(balance.id))
    assert stolen.op_codes == ("op_cannot_claim",)
    muxed = MuxedAccount(node.public_key, 42).account_muxed
    sequence = chain.ledger.load_account(node.public_key).sequence
    builder = TransactionBuilder(Account(muxed, sequence), chain.ledger.network_passphrase)
    builder.append_claim_claimable_balance_op(balance.id).set_timeout(300)
    tx = builder.build()
    tx.sign(node)
    before = chain.xlm(node)
    assert chain.ledger.submit(tx.to_xdr()).successful
    assert chain.xlm(node) == before + 3 * UNIT - 100
    twice = chain.submit(node, lambda b: b.append_claim_claimable_balance_op(balance.id))
    assert twice.op_codes == ("op_does_not_exist",)


def _alphanum12_short(code: bytes, issuer: str) -> xdr.Asset:
    return xdr.Asset(
        type=xdr.AssetType.ASSET_TYPE_CREDIT_ALPHANUM12,
        alpha_num12=xdr.AlphaNum12(
            xdr.AssetCode12(code.ljust(12, b"\x00")),
            Keypair.from_public_key(issuer).xdr_account_id(),
        ),
    )


def test_a_claimable_balance_of_an_invalid_asset_is_malformed(chain: Chain) -> None:
    issuer, node = chain.funded(), Keypair.random()
    op = xdr.Operation(
        source_account=None,
        body=xdr.OperationBody(
            type=xdr.OperationType.CREATE_CLAIMABLE_BALANCE,
            create_claimable_balance_op=xdr.CreateClaimableBalanceOp(
                asset=_alphanum12_short(b"DLC", issuer.public_key),
                amount=xdr.Int64(UNIT),
                claimants=[Claimant(node.public_key).to_xdr_object()],
            ),
        ),
    )
    sequence = chain.ledger.load_account(issuer.public_key).sequence
    builder = TransactionBuilder(
        Account(issuer.public_key, sequence), chain.ledger.network_passphrase
    ).set_timeout(300)
    tx = builder.build()
    env = tx.to_xdr_object()
    assert env.v1 is not None
    env.v1.tx.operations, env.v1.tx.fee = [op], xdr.Uint32(100)
    # sign the raw XDR: the SDK's own envelope class would re-encode the asset as alphanum4
    import hashlib

    network_id = hashlib.sha256(chain.ledger.network_passphrase.encode()).digest()
    payload = network_id + struct.pack(">i", 2) + env.v1.tx.to_xdr_bytes()
    signature = issuer.sign(hashlib.sha256(payload).digest())
    env.v1.signatures = [
        xdr.DecoratedSignature(xdr.SignatureHint(issuer.signature_hint()), xdr.Signature(signature))
    ]
    result = chain.ledger.submit(env.to_xdr())
    assert result.op_codes == ("op_malformed",)


def test_balance_ids_of_a_fee_bumped_muxed_tx_with_other_op_sources_match_the_sdk(
    chain: Chain,
) -> None:
    """The id names the transaction's source (not the operation's, not the fee payer) and its
    sequence number, as stellar-core and the SDK derive it."""
    src, other, payer = chain.funded(), chain.funded(), chain.funded()
    node = Keypair.random()
    muxed = MuxedAccount(src.public_key, 9).account_muxed
    sequence = chain.ledger.load_account(src.public_key).sequence
    builder = TransactionBuilder(Account(muxed, sequence), chain.ledger.network_passphrase)
    builder.append_create_claimable_balance_op(Asset.native(), "1", [Claimant(node.public_key)])
    builder.append_bump_sequence_op(0)
    builder.append_create_claimable_balance_op(
        Asset.native(), "2", [Claimant(node.public_key)], source=other.public_key
    )
    inner = builder.set_timeout(300).build()
    inner.sign(src)
    inner.sign(other)
    assert chain.ledger.submit(_bump(chain, inner, payer, muxed=True).to_xdr()).successful
    want = {inner.transaction.get_claimable_balance_id(i) for i in (0, 2)}
    got = chain.ledger.claimable_balances(claimant=node.public_key).records
    assert {b.id for b in got} == want
    assert {b.sponsor for b in got} == {src.public_key, other.public_key}


def test_claimable_balance_routes_refuse_bad_queries_with_a_400(chain: Chain) -> None:
    src, node = chain.funded(), Keypair.random()
    assert _create(chain, src, [Claimant(node.public_key)]).successful
    client = TestClient(create_app(chain.ledger), raise_server_exceptions=False)
    muxed = MuxedAccount(node.public_key, 1).account_muxed
    bad = [
        {},
        {"claimant": "GNOTANACCOUNT"},
        {"claimant": muxed},
        {"claimant": node.public_key, "cursor": "zz"},
        {"claimant": node.public_key, "cursor": "0" * 73},
        {"claimant": node.public_key, "limit": "0"},
        {"claimant": node.public_key, "limit": "201"},
        {"claimant": node.public_key, "limit": str(2**70)},
        {"claimant": node.public_key, "limit": "-1"},
        {"claimant": node.public_key, "order": "desc"},
        {"claimant": node.public_key, "asset": "native"},
        {"sponsor": "S" + "A" * 55},
    ]
    for query in bad:
        answer = client.get("/claimable_balances", params=query)
        assert answer.status_code == 400, (query, answer.status_code, answer.text)
    for balance_id in ("00", "z" * 72, "0" * 71 + "g", "0" * 72, "1" * 72):
        answer = client.get(f"/claimable_balances/{balance_id}")
        assert answer.status_code in (400, 404), (balance_id, answer.text)
    (balance,) = chain.ledger.claimable_balances(claimant=node.public_key).records
    page = client.get(
        "/claimable_balances", params={"claimant": node.public_key, "cursor": balance.id}
    )
    assert page.status_code == 200 and page.json()["_embedded"]["records"] == []
    by_sponsor = client.get("/claimable_balances", params={"sponsor": src.public_key})
    assert [r["id"] for r in by_sponsor.json()["_embedded"]["records"]] == [balance.id]


# ------------------------------------------------------------------ claimable payouts, the audit
def _operator_pays(claimants_of):  # type: ignore[no-untyped-def]
    """A distributor pays 5 DLC to a node by a claimable balance with ``claimants_of(node,
    distributor)``; returns (chain, node, distributor, the decoded payments, others, id)."""
    chain = Chain()
    issuer, distributor = chain.funded(), chain.funded()
    asset = Asset("DLC", issuer.public_key)
    chain.submit(distributor, trust(asset))
    chain.submit(issuer, lambda b: b.append_payment_op(distributor.public_key, asset, "100"))
    node = Keypair.random()
    result = chain.submit(
        distributor,
        lambda b: b.append_create_claimable_balance_op(
            asset, "5", claimants_of(node.public_key, distributor.public_key)
        ),
        lambda b: b.add_hash_memo(b"\x01" * 32),
    )
    assert result.successful, result.op_codes
    _, payments, others = decode_envelope(chain.ledger.transaction(result.hash))
    (balance,) = chain.ledger.claimable_balances(claimant=node.public_key).records
    return chain, node, distributor, payments, others, balance.id


def _back_after(predicate: ClaimPredicate):  # type: ignore[no-untyped-def]
    return lambda n, d: [Claimant(n), Claimant(d, ClaimPredicate.predicate_not(predicate))]


@pytest.mark.parametrize(
    "case, claimants",
    [
        (
            "the distributor after 0 s",
            _back_after(ClaimPredicate.predicate_before_relative_time(0)),
        ),
        (
            "the distributor since 1970",
            _back_after(ClaimPredicate.predicate_before_absolute_time(0)),
        ),
        (
            "the distributor since an hour ago",
            _back_after(ClaimPredicate.predicate_before_absolute_time(NOW - 3600)),
        ),
    ],
)
def test_a_reclaim_the_distributor_may_make_at_once_is_not_a_payout(case: str, claimants) -> None:  # type: ignore[no-untyped-def]
    chain, node, distributor, payments, others, balance_id = _operator_pays(claimants)
    # the harm: the distributor takes it back in the very next ledger, with no memo at all
    back = chain.submit(distributor, lambda b: b.append_claim_claimable_balance_op(balance_id))
    assert back.successful, case
    assert payments == [], f"{case}: counted as paid to {node.public_key}"
    assert others, case


def test_a_claimable_payout_with_a_real_delay_counts() -> None:
    later = ClaimPredicate.predicate_before_relative_time(86_400)
    chain, node, distributor, payments, _, balance_id = _operator_pays(_back_after(later))
    assert payments == [(node.public_key, payments[0][1], 5 * UNIT)]
    back = chain.submit(distributor, lambda b: b.append_claim_claimable_balance_op(balance_id))
    assert back.op_codes == ("op_cannot_claim",)  # not before a day


def test_claimable_payouts_in_an_auth_required_coin_are_refused() -> None:
    with pytest.raises(ValueError, match="auth_required"):
        RewardSettings(payout="claimable", auth_required=True, auth_revocable=True)


def test_an_auth_required_claimable_payout_cannot_be_claimed(chain: Chain) -> None:
    """What the settings bug means on the ledger: the node's own trustline stays unauthorized
    and its claim fails, the payout counted all the same."""
    from stellar_sdk import AuthorizationFlag, TrustLineFlags

    issuer, distributor, node = chain.funded(), chain.funded(), chain.funded()
    asset = chain.asset(issuer)
    flags = AuthorizationFlag.AUTHORIZATION_REQUIRED | AuthorizationFlag.AUTHORIZATION_REVOCABLE
    chain.submit(issuer, lambda b: b.append_set_options_op(set_flags=flags))
    chain.submit(distributor, trust(asset))
    chain.submit(
        issuer,
        lambda b: b.append_set_trust_line_flags_op(
            distributor.public_key, asset, set_flags=TrustLineFlags.AUTHORIZED_FLAG
        ),
    )
    chain.submit(issuer, lambda b: b.append_payment_op(distributor.public_key, asset, "10"))
    paid = chain.submit(
        distributor,
        lambda b: b.append_create_claimable_balance_op(asset, "5", [Claimant(node.public_key)]),
    )
    assert paid.successful
    _, payments, _ = decode_envelope(chain.ledger.transaction(paid.hash))
    assert payments  # the audit's view: paid
    chain.submit(node, trust(asset))
    (balance,) = chain.ledger.claimable_balances(claimant=node.public_key).records
    claim = chain.submit(node, lambda b: b.append_claim_claimable_balance_op(balance.id))
    assert claim.op_codes == ("op_not_authorized",)


@pytest.mark.parametrize(
    "budget, weights, quantum, want",
    [
        (10, {"a": 1, "b": 1}, 11, {"a": 0, "b": 0}),  # a quantum above the budget pays nothing
        (10, {"a": 1, "b": 1}, 3, {"a": 6, "b": 3}),  # 3 quanta, the odd one to "a"; 1 left
        (10, {"a": 1, "b": 0}, 3, {"a": 9, "b": 0}),
        (10, {}, 3, {}),
        (0, {"a": 5}, 7, {"a": 0}),
    ],
)
def test_quantum_edges(budget: int, weights: dict, quantum: int, want: dict) -> None:
    got = split_budget(budget, weights, quantum)
    assert got == want
    assert sum(got.values()) <= budget and all(v % quantum == 0 for v in got.values())


@pytest.mark.parametrize("budget, quantum", [(-1, 3), (10, 0), (10, -5)])
def test_quantum_rejects_nonsense(budget: int, quantum: int) -> None:
    with pytest.raises(ValueError):
        split_budget(budget, {"a": 1}, quantum)


def test_quantum_above_the_budget_is_refused_in_settings() -> None:
    with pytest.raises(ValueError, match="quantum"):
        RewardSettings(budget_per_round="1", quantum="2")
    with pytest.raises(ValueError, match="quantum"):
        RewardSettings(quantum="0")
    with pytest.raises(ValueError, match="reclaim_after_days"):
        RewardSettings(reclaim_after_days=True)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ terms
def _terms(**kw) -> RewardTerms:  # type: ignore[no-untyped-def]
    return RewardTerms(
        run_id=1,
        distributor=Keypair.random().public_key,
        asset_code="DLC",
        asset_issuer=Keypair.random().public_key,
        budget_stroops=100 * UNIT,
        held_stroops=0,
        num_rounds=1,
        scorer="num-examples",
        settings_hash="ab" * 32,
        **kw,
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("quantum_stroops", True),  # a bool is not an int
        ("quantum_stroops", 1.0),
        ("quantum_stroops", "7"),
        ("quantum_stroops", 0),
        ("reclaim_after_s", -1),
        ("reclaim_after_s", False),
        ("payout", "both"),
        ("payout", None),
    ],
)
def test_terms_optional_fields_of_the_wrong_type_or_range_are_refused(
    field: str, value: object
) -> None:
    doc = _terms().document() | {field: value}
    with pytest.raises(RecordError):
        RewardTerms.from_document(doc)


def test_terms_optional_fields_round_trip() -> None:
    terms = _terms(payout="claimable", quantum_stroops=1000, reclaim_after_s=86_400)
    doc = terms.document()
    assert {"payout", "quantum_stroops", "reclaim_after_s"} <= set(doc)
    assert RewardTerms.from_document(doc) == terms
    assert "payout" not in _terms().document()  # defaults are left out: old bytes, old hashes


@pytest.mark.parametrize(
    "field, default", [("payout", "payment"), ("quantum_stroops", 1), ("reclaim_after_s", 0)]
)
def test_terms_with_an_optional_field_at_its_default_are_not_canonical(
    field: str, default: object
) -> None:
    doc = _terms().document() | {field: default}
    with pytest.raises(RecordError):
        RewardTerms.from_document(doc)


# ------------------------------------------------------------------------------------ the wallet
@pytest.fixture
def world(tmp_path: Path) -> World:
    """Run 21 paid by payments to a sponsored pseudonym (20 DLC), run 22 by two claimable
    balances (12 + 7.25 DLC) to a pseudonym without an account; the provider's account trusts
    DLC and pays the fees."""
    return make_world(tmp_path, PASSPHRASE, (PAID_RUN, CLAIMABLE_RUN), ("20",), ("12", "7.25"))


OWED = {PAID_RUN: 20 * UNIT, CLAIMABLE_RUN: 1925 * UNIT // 100}


def _balances(world: World, capsys: pytest.CaptureFixture[str]) -> dict[int, dict]:
    assert main(world.args("balances", "--json")) == 0
    return {r["run_id"]: r for r in json.loads(capsys.readouterr().out)["runs"]}


def _collect(world: World, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(world.args("collect", *extra))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def unlocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", PASSPHRASE)


def test_spam_of_95_tiny_balances_and_a_look_alike_coin_is_collected_or_ignored(
    world: World, capsys: pytest.CaptureFixture[str], unlocked: None
) -> None:
    """A stranger names the claimable pseudonym in 95 one-stroop balances of the run's coin
    (more than one transaction's worth of claims), and in balances of a look-alike DLC of its
    own issuer and of XLM: the real ones are all collected, the others neither counted nor
    touched."""
    me = world.pseudonyms[CLAIMABLE_RUN].public_key
    stranger = world.stranger_with_dlc()
    ledger = world.ledger()
    fake_issuer = Keypair.random()
    assert ledger.fund(fake_issuer.public_key).successful
    fake = Asset("DLC", fake_issuer.public_key)
    spam = [CreateClaimableBalance(world.treasury.asset, "0.0000001", [Claimant(me)])] * 95
    submit_signed(ledger, [stranger], spam)
    submit_signed(
        ledger,
        [fake_issuer],
        [CreateClaimableBalance(fake, "1000", [Claimant(me)]) for _ in range(3)]
        + [CreateClaimableBalance(Asset.native(), "1", [Claimant(me)])],
    )
    ledger.close()
    rows = _balances(world, capsys)
    assert rows[CLAIMABLE_RUN]["claimable"] == OWED[CLAIMABLE_RUN] + 95
    code, out = _collect(world, capsys)
    assert code == 0, out
    assert world.dlc(world.destination.public_key) == sum(OWED.values()) + 95
    ledger = world.ledger()
    left = ledger.claimable_balances(claimant=me).records
    ledger.close()
    assert sorted(b.asset for b in left) == sorted([fake.code + ":" + fake.issuer] * 3 + ["native"])
    assert _balances(world, capsys)[CLAIMABLE_RUN]["state"] == "collected"


@pytest.mark.parametrize(
    "predicate",
    [
        ClaimPredicate.predicate_before_absolute_time(NOW - 60),  # expired
        ClaimPredicate.predicate_not(ClaimPredicate.predicate_unconditional()),  # never
        ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(86_400)),
    ],
    ids=["expired", "never", "tomorrow"],
)
def test_a_balance_the_pseudonym_cannot_claim_now_does_not_block_collect(
    world: World,
    capsys: pytest.CaptureFixture[str],
    unlocked: None,
    predicate: ClaimPredicate,
) -> None:
    me = world.pseudonyms[CLAIMABLE_RUN].public_key
    stranger = world.stranger_with_dlc()
    ledger = world.ledger()
    submit_signed(
        ledger,
        [stranger],
        [CreateClaimableBalance(world.treasury.asset, "0.0000001", [Claimant(me, predicate)])],
    )
    ledger.close()
    code, out = _collect(world, capsys)
    assert code == 0, out
    assert world.dlc(world.destination.public_key) == sum(OWED.values())
    # what it cannot claim is not reported as earnings waiting, nor keeps the run open
    assert _balances(world, capsys)[CLAIMABLE_RUN]["state"] == "collected"
    code, out = _collect(world, capsys)
    assert code == 0 and "nothing to collect" in out, out


def test_a_stranger_creating_the_claimable_pseudonym_does_not_block_collect(
    world: World, capsys: pytest.CaptureFixture[str], unlocked: None
) -> None:
    me = world.pseudonyms[CLAIMABLE_RUN].public_key
    ledger = world.ledger()
    stranger = Keypair.random()
    assert ledger.fund(stranger.public_key).successful
    submit_signed(ledger, [stranger], [CreateAccount(me, "1")])
    ledger.close()
    code, out = _collect(world, capsys)
    assert code == 0, out
    assert world.dlc(world.destination.public_key) == sum(OWED.values())


def test_xlm_a_stranger_sends_a_paid_pseudonym_goes_to_the_destination(
    world: World, capsys: pytest.CaptureFixture[str], unlocked: None
) -> None:
    me = world.pseudonyms[PAID_RUN].public_key
    ledger = world.ledger()
    stranger = Keypair.random()
    assert ledger.fund(stranger.public_key).successful
    submit_signed(ledger, [stranger], [Payment(me, Asset.native(), "3")])
    before = ledger.load_account(world.destination.public_key).balance()
    ledger.close()
    code, out = _collect(world, capsys, "--run-id", str(PAID_RUN))
    assert code == 0, out
    ledger = world.ledger()
    after = ledger.load_account(world.destination.public_key).balance()
    ledger.close()
    assert after - before > 3 * UNIT - 1000  # the 3 XLM, less the fee bump
    assert world.dlc(world.destination.public_key) == OWED[PAID_RUN]


def _forge(world: World, **entry: object) -> None:
    """A line written by hand (or by another program) into the journal, its hash right."""
    body = canonical_json({"kind": COLLECT, **entry})
    line = b'{"entry":' + body + b',"sha256":"' + hashlib.sha256(body).hexdigest().encode()
    with journal_path(world.keystore).open("ab") as f:
        f.write(line + b'"}\n')


def test_hand_made_collect_entries_of_the_wrong_types_are_ignored(
    world: World, capsys: pytest.CaptureFixture[str], unlocked: None
) -> None:
    for bad in (
        {
            "run_id": str(CLAIMABLE_RUN),
            "pseudonym": "x",
            "tx_hash": "a",
            "envelope": "e",
            "state": "done",
            "step": "collect",
        },
        {
            "run_id": CLAIMABLE_RUN,
            "pseudonym": 7,
            "tx_hash": "a",
            "envelope": "e",
            "state": "done",
            "step": "collect",
        },
        {
            "run_id": CLAIMABLE_RUN,
            "pseudonym": "x",
            "tx_hash": "a",
            "envelope": "e",
            "state": 1,
            "step": "collect",
        },
        {"run_id": CLAIMABLE_RUN, "tx_hash": "a", "envelope": "e", "state": "signed"},
        {
            "run_id": CLAIMABLE_RUN,
            "pseudonym": "x",
            "tx_hash": ["a"],
            "envelope": "e",
            "state": "signed",
            "step": "collect",
        },
    ):
        _forge(world, **bad)
    rows = _balances(world, capsys)
    assert rows[CLAIMABLE_RUN]["state"] == "uncollected"
    code, out = _collect(world, capsys)
    assert code == 0, out
    assert world.dlc(world.destination.public_key) == sum(OWED.values())


def test_a_forged_done_entry_neither_hides_coin_nor_stops_collect(
    world: World, capsys: pytest.CaptureFixture[str], unlocked: None
) -> None:
    me = world.pseudonyms[CLAIMABLE_RUN].public_key
    _forge(
        world,
        run_id=CLAIMABLE_RUN,
        pseudonym=me,
        tx_hash="00" * 32,
        envelope="AAAA",
        state="done",
        step="collect",
        amount=OWED[CLAIMABLE_RUN],
    )
    rows = _balances(world, capsys)
    assert rows[CLAIMABLE_RUN]["state"] == "uncollected"  # the ledger, not the journal, decides
    assert rows[CLAIMABLE_RUN]["claimable"] == OWED[CLAIMABLE_RUN]
    code, out = _collect(world, capsys)
    assert code == 0, out
    assert world.dlc(world.destination.public_key) == sum(OWED.values())


@pytest.mark.parametrize(
    "entry",
    [
        {"envelope": "bm90IGFuIGVudmVsb3Bl", "tx_hash": "ab" * 32},  # garbage envelope
        {"envelope": "AAAA", "tx_hash": "not hex"},
        {"envelope": "AAAA", "tx_hash": "ab" * 32, "amount": "lots"},  # int() of a text
    ],
    ids=["garbage-envelope", "bad-hash", "text-amount"],
)
def test_a_forged_signed_entry_is_settled_as_dead_and_collect_goes_on(
    world: World, capsys: pytest.CaptureFixture[str], unlocked: None, entry: dict
) -> None:
    """A ``signed`` entry is resumed before anything else: one the ledger cannot read (a
    hand-edited journal) is journaled ``dead``, never a traceback, and the run is collected
    from the ledger's state as if it were not there; balances still reads."""
    me = world.pseudonyms[CLAIMABLE_RUN].public_key
    _forge(world, run_id=CLAIMABLE_RUN, pseudonym=me, state="signed", step="collect", **entry)
    code, out = _collect(world, capsys, "--run-id", str(CLAIMABLE_RUN))
    assert code == 0 and "Traceback" not in out, out
    assert world.dlc(world.destination.public_key) == OWED[CLAIMABLE_RUN]
    states = [
        e["state"]
        for e in Journal(journal_path(world.keystore)).entries(kind=COLLECT)
        if e["tx_hash"] == entry["tx_hash"]
    ]
    assert states == ["signed", "dead"]
    assert _balances(world, capsys)[CLAIMABLE_RUN]["state"] == "collected"


def test_more_spam_than_one_collect_takes_is_finished_by_the_next(
    world: World, capsys: pytest.CaptureFixture[str], unlocked: None
) -> None:
    """800 one-stroop balances from a stranger: one collect makes at most 8 transactions
    (about 720 claims), so it stops with a message; the next one finishes, nothing twice."""
    me = world.pseudonyms[CLAIMABLE_RUN].public_key
    stranger = world.stranger_with_dlc()
    ledger = world.ledger()
    spam = CreateClaimableBalance(world.treasury.asset, "0.0000001", [Claimant(me)])
    for _ in range(8):
        submit_signed(ledger, [stranger], [spam] * 100)
    ledger.close()
    code, out = _collect(world, capsys, "--run-id", str(CLAIMABLE_RUN))
    if code != 0:
        assert "still not collected after 8 steps" in out, out
        code, out = _collect(world, capsys, "--run-id", str(CLAIMABLE_RUN))
    assert code == 0, out
    assert world.dlc(world.destination.public_key) == OWED[CLAIMABLE_RUN] + 800
    assert _balances(world, capsys)[CLAIMABLE_RUN]["state"] == "collected"
