"""Result codes as Stellar gives them: rejected (nothing charged) vs applied-failed (charged)."""

import time

import pytest
from ledger_helpers import Chain, pay, trust
from stellar_sdk import Asset, Keypair

from flwr_stellar.ledger.base import LedgerError
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.embedded.entries import AUTH_REQUIRED


@pytest.fixture
def chain() -> Chain:
    return Chain()


def snapshot(chain: Chain, *kps: Keypair) -> tuple:
    return (
        chain.ledger.latest_ledger()["seq"],
        tuple(chain.ledger.load_account(k.public_key) for k in kps),
    )


def rejected_cases(chain: Chain) -> dict[str, tuple]:
    a, b = chain.funded(), chain.funded()
    poor = chain.funded(xlm=1)  # exactly the minimum balance: cannot even pay a fee
    seq = chain.ledger.load_account(a.public_key).sequence
    now = int(time.time())
    return {
        "tx_bad_seq": (a, chain.build(a, pay(b, "1"), seq=seq + 5)),
        "tx_bad_auth": (a, chain.build(a, pay(b, "1"), signers=(b,))),
        "tx_bad_auth_extra": (a, chain.build(a, pay(b, "1"), signers=(a, b))),
        "tx_insufficient_fee": (a, chain.build(a, pay(b, "1"), fee=99)),
        "tx_insufficient_balance": (poor, chain.build(poor, pay(b, "0.0000001"))),
        "tx_too_early": (a, chain.build(a, pay(b, "1"), time_bounds=(now + 3600, 0))),
        "tx_too_late": (a, chain.build(a, pay(b, "1"), time_bounds=(0, now - 10))),
    }


@pytest.mark.parametrize(
    "code",
    [
        "tx_bad_seq",
        "tx_bad_auth",
        "tx_bad_auth_extra",
        "tx_insufficient_fee",
        "tx_insufficient_balance",
        "tx_too_early",
        "tx_too_late",
    ],
)
def test_rejected_not_charged(chain: Chain, code: str) -> None:
    source, envelope = rejected_cases(chain)[code]
    before = snapshot(chain, source)
    result = chain.ledger.submit(envelope)
    assert (result.tx_code, result.applied, result.fee_charged) == (code, False, 0)
    assert snapshot(chain, source) == before  # no ledger closed, no fee, no sequence


def test_no_source_account_and_malformed(chain: Chain) -> None:
    ghost, b = Keypair.random(), chain.funded()
    result = chain.ledger.submit(chain.build(ghost, pay(b, "1"), seq=1))
    assert result.tx_code == "tx_no_source_account" and not result.applied
    for garbage in ("", "AAAA", "not base64!", "A" * 64):
        with pytest.raises(LedgerError, match=r"malformed|missing"):
            chain.ledger.submit(garbage)
    # the same account on another network: its envelopes are signed for that network only
    kp = chain.funded()
    other = EmbeddedLedger(":memory:", network_passphrase="Test SDF Network ; September 2015")
    other.fund(kp.public_key)
    foreign = Chain.__new__(Chain)
    foreign.ledger = other
    env = foreign.build(kp, pay(kp, "1"), seq=chain.ledger.load_account(kp.public_key).sequence)
    assert chain.ledger.submit(env).tx_code == "tx_bad_auth"


def charged_cases(chain: Chain) -> dict[str, tuple]:
    a, b, issuer = chain.funded(), chain.funded(), chain.funded()
    dlc = chain.asset(issuer)
    gated_issuer = chain.funded()
    assert chain.submit(
        gated_issuer, lambda t: t.append_set_options_op(set_flags=AUTH_REQUIRED)
    ).successful
    gated = chain.asset(gated_issuer, "GATE")
    assert chain.submit(b, trust(gated)).successful
    assert chain.submit(a, trust(dlc, "5")).successful
    assert chain.submit(issuer, pay(a, "5", dlc)).successful
    return {
        "op_underfunded": (a, [pay(b, "100000")]),
        "op_no_trust": (issuer, [pay(b, "1", dlc)]),
        "op_not_authorized": (gated_issuer, [pay(b, "1", gated)]),
        "op_line_full": (issuer, [pay(a, "1", dlc)]),
        "op_low_reserve": (
            a,
            [lambda t: t.append_create_account_op(Keypair.random().public_key, "0.5")],
        ),
        "op_no_destination": (a, [pay(Keypair.random(), "1")]),
        "op_already_exists": (a, [lambda t: t.append_create_account_op(b.public_key, "5")]),
        "op_src_no_trust": (b, [pay(a, "1", dlc)]),
    }


@pytest.mark.parametrize(
    "code",
    [
        "op_underfunded",
        "op_no_trust",
        "op_not_authorized",
        "op_line_full",
        "op_low_reserve",
        "op_no_destination",
        "op_already_exists",
        "op_src_no_trust",
    ],
)
def test_applied_failed_charged_and_rolled_back(chain: Chain, code: str) -> None:
    source, ops = charged_cases(chain)[code]
    witness = chain.funded()
    before = chain.ledger.load_account(source.public_key)
    witness_before = chain.xlm(witness)
    # a first operation that would succeed on its own must be rolled back with the failure
    result = chain.submit(source, pay(witness, "1"), *ops)
    after = chain.ledger.load_account(source.public_key)
    assert result.applied and not result.successful
    assert result.tx_code == "tx_failed" and result.op_codes == ("op_success", code)
    assert result.fee_charged == 200  # 2 operations x base fee
    assert after.sequence == before.sequence + 1
    assert after.balance() == before.balance() - 200
    assert [b for b in after.balances if b.asset != "native"] == [
        b for b in before.balances if b.asset != "native"
    ]
    assert chain.xlm(witness) == witness_before


def test_fee_is_min_of_bid_and_base_and_goes_to_fee_pool(chain: Chain) -> None:
    a, b = chain.funded(), chain.funded()
    pool = chain.ledger.latest_ledger()["fee_pool"]
    before = chain.xlm(a)
    result = chain.submit(a, pay(b, "1"), pay(b, "2"), fee=1000)  # bid 2000 for 2 ops
    assert result.successful and result.fee_charged == 200
    assert chain.xlm(a) == before - 200 - 30_000_000
    assert chain.ledger.latest_ledger()["fee_pool"] == pool + 200


def test_new_account_sequence_starts_at_ledger_shifted(chain: Chain) -> None:
    kp = Keypair.random()
    result = chain.ledger.fund(kp.public_key)
    assert chain.ledger.load_account(kp.public_key).sequence == result.ledger << 32


def test_thresholds_and_multisig(chain: Chain) -> None:
    a, cosigner, b = chain.funded(), Keypair.random(), chain.funded()
    assert chain.submit(
        a,
        lambda t: t.append_ed25519_public_key_signer(cosigner.public_key, 1),
        lambda t: t.append_set_options_op(
            master_weight=1, low_threshold=1, med_threshold=2, high_threshold=2
        ),
    ).successful
    info = chain.ledger.load_account(a.public_key)
    assert info.thresholds == (1, 2, 2) and info.num_subentries == 1
    # medium threshold 2: the master alone (weight 1) is not enough for a payment
    result = chain.submit(a, pay(b, "1"))
    assert result.tx_code == "tx_failed" and result.op_codes == ("op_bad_auth",)
    assert not result.applied
    assert chain.submit(a, pay(b, "1"), signers=(a, cosigner)).successful
    # low threshold 1: bump sequence with the master alone is fine
    seq = chain.ledger.load_account(a.public_key).sequence
    assert chain.submit(a, lambda t: t.append_bump_sequence_op(seq + 100)).successful
    assert chain.ledger.load_account(a.public_key).sequence == seq + 100


def test_trustlines_data_and_flags(chain: Chain) -> None:
    a, issuer = chain.funded(), chain.funded()
    dlc = chain.asset(issuer)
    assert chain.submit(issuer, trust(chain.asset(issuer, "OWN"))).op_codes == (
        "op_self_not_allowed",
    )
    assert chain.submit(a, trust(dlc, "10")).successful
    assert chain.submit(issuer, pay(a, "4", dlc)).successful
    assert chain.submit(a, trust(dlc, "0")).op_codes == ("op_invalid_limit",)  # balance 4
    assert chain.submit(a, pay(issuer, "4", dlc)).successful  # back to the issuer: burnt
    assert chain.submit(a, trust(dlc, "0")).successful
    assert chain.ledger.load_account(a.public_key).num_subentries == 0
    assert chain.submit(a, lambda t: t.append_manage_data_op("round", b"\x01" * 32)).successful
    info = chain.ledger.load_account(a.public_key)
    assert info.data == (("round", b"\x01" * 32),) and info.num_subentries == 1
    assert chain.submit(a, lambda t: t.append_manage_data_op("gone", None)).op_codes == (
        "op_data_name_not_found",
    )
    assert chain.submit(
        issuer, lambda t: t.append_set_options_op(set_flags=4)
    ).successful  # AUTH_IMMUTABLE
    assert chain.submit(issuer, lambda t: t.append_set_options_op(clear_flags=4)).op_codes == (
        "op_cant_change",
    )


def test_holders_match_the_asset_exactly(chain: Chain) -> None:
    """Only trustlines to exactly CODE:ISSUER count: not another case (``dlc``), a longer code
    sharing the prefix (``DLCX``), the same code of another issuer; a code with SQL wildcards
    is refused, not matched."""
    issuer, other_issuer = chain.funded(), chain.funded()
    holder, lower, longer, shorter, foreign = (chain.funded() for _ in range(5))
    for kp, asset in (
        (holder, chain.asset(issuer, "DLC")),
        (lower, chain.asset(issuer, "dlc")),
        (longer, chain.asset(issuer, "DLCX")),
        (shorter, chain.asset(issuer, "DL")),
        (foreign, chain.asset(other_issuer, "DLC")),
    ):
        assert chain.submit(kp, trust(asset)).successful
    ids = lambda asset: [a.account_id for a in chain.ledger.holders(asset).records]  # noqa: E731
    assert ids(f"DLC:{issuer.public_key}") == [holder.public_key]
    assert ids(f"dlc:{issuer.public_key}") == [lower.public_key]
    assert ids(f"DLCX:{issuer.public_key}") == [longer.public_key]
    assert ids(f"DLC:{other_issuer.public_key}") == [foreign.public_key]
    assert ids(f"DLCXY:{issuer.public_key}") == []
    for bad in ("D_C", "DL%", "%", "_LC", "DLC:X", "", "DLÇ", "A" * 13):
        with pytest.raises(LedgerError, match="CODE:ISSUER"):
            chain.ledger.holders(f"{bad}:{issuer.public_key}")
    with pytest.raises(LedgerError, match="CODE:ISSUER"):
        chain.ledger.holders("DLC:%")


def test_unsupported_operation_rejected(chain: Chain) -> None:
    a = chain.funded()
    result = chain.submit(
        a,
        lambda t: t.append_manage_sell_offer_op(Asset.native(), Asset("X", a.public_key), "1", "1"),
    )
    assert result.tx_code == "tx_failed" and result.op_codes == ("op_not_supported",)
    assert not result.applied


def test_chain_verifies_and_detects_tampering(tmp_path) -> None:
    path = tmp_path / "ledger.db"
    chain = Chain(str(path))
    a, b = chain.funded(), chain.funded()
    for _ in range(3):
        assert chain.submit(a, pay(b, "1")).successful
    assert chain.ledger.verify_chain() == 6
    chain.ledger.close()
    reopened = EmbeddedLedger(path)
    assert reopened.verify_chain() == 6
    reopened.store.db.execute("UPDATE ledgers SET fee_pool = fee_pool + 1 WHERE seq = 4")
    from flwr_stellar.ledger.embedded import ChainError

    with pytest.raises(ChainError, match="ledger 4: header hash"):
        reopened.verify_chain()
    with pytest.raises(LedgerError, match="holds a ledger of network"):
        EmbeddedLedger(path, network_passphrase="another")


def test_history_queries(chain: Chain) -> None:
    a, b = chain.funded(), chain.funded()
    hashes = [chain.submit(a, pay(b, str(i + 1))).hash for i in range(5)]
    page = chain.ledger.account_transactions(a.public_key, limit=3)
    assert len(page.records) == 3
    rest = chain.ledger.account_transactions(a.public_key, cursor=page.next_cursor, limit=10)
    seen = [r.hash for r in page.records + rest.records]
    assert seen[1:] == hashes  # first: the friendbot funding
    assert chain.ledger.transaction(hashes[0]).memo_type == "none"
    payments = chain.ledger.account_payments(b.public_key, order="desc", limit=2).records
    assert [p.amount for p in payments] == [50_000_000, 40_000_000]
    with pytest.raises(LedgerError):
        chain.ledger.account_payments(b.public_key, cursor="abc")
    with pytest.raises(LedgerError):
        chain.ledger.account_transactions(a.public_key, limit=0)


def test_transaction_set_in_one_ledger(chain: Chain) -> None:
    a, b = chain.funded(), chain.funded()
    seq = chain.ledger.load_account(a.public_key).sequence
    envs = [chain.build(a, pay(b, "1"), seq=seq + i) for i in range(3)]
    envs.insert(1, chain.build(a, pay(b, "1"), seq=seq + 7))  # bad sequence: left out
    envs.append(chain.build(a, pay(b, "99999999"), seq=seq + 3))  # applied, failed, charged
    before = chain.ledger.latest_ledger()["seq"]
    results = chain.ledger.submit_many(envs)
    assert [r.tx_code for r in results] == [
        "tx_success",
        "tx_bad_seq",
        "tx_success",
        "tx_success",
        "tx_failed",
    ]
    assert {r.ledger for r in results if r.applied} == {before + 1}
    header = chain.ledger.latest_ledger()
    assert header["seq"] == before + 1 and header["tx_count"] == 4
    assert chain.ledger.load_account(a.public_key).sequence == seq + 4
    page = chain.ledger.account_transactions(a.public_key, limit=2, order="desc")
    rest = chain.ledger.account_transactions(
        a.public_key, cursor=page.next_cursor, limit=10, order="desc"
    )
    ordered = [r.hash for r in page.records + rest.records]
    assert ordered[:4] == [results[i].hash for i in (4, 3, 2, 0)]
    assert chain.ledger.verify_chain() == header["seq"]
    with pytest.raises(LedgerError, match="envelope 1: malformed"):
        chain.ledger.submit_many([envs[0], "garbage"])
    assert chain.ledger.latest_ledger()["seq"] == header["seq"]
