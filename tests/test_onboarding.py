"""Sponsored onboarding: the node co-signs exactly the expected transaction and nothing else;
the co-signed transaction creates a sponsored account with an (authorized) DLC trustline."""

import time
from dataclasses import replace

import pytest
from anchor_world import REWARD
from flwr.app import ConfigRecord, RecordDict
from helpers import instruction
from stellar_sdk import Asset, Keypair, ManageData, Payment, SetOptions

from flwr_stellar.client.onboarding import check_envelope, cosign
from flwr_stellar.identity.keystore import MasterSecret
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.embedded.entries import AUTH_REQUIRED
from flwr_stellar.ledger.tx import build
from flwr_stellar.payments.onboarding import attach_cosignature
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.payments.treasury import Treasury, prepare
from flwr_stellar.protocol.onboarding import ONBOARD_RECORD, OnboardingRefused, Terms, operations

PSEUDONYM = Keypair.random()


def reward_cfg(**kw) -> RewardSettings:
    return replace(REWARD, onboarding="sponsored", **kw)


@pytest.fixture
def world(tmp_path):
    ledger = EmbeddedLedger(tmp_path / "l.db")
    treasury = Treasury.from_master(MasterSecret.generate(with_mnemonic=False), "DLC")
    yield ledger, treasury
    ledger.close()


def terms_for(ledger, treasury, authorize=False, sponsored=True) -> Terms:
    return Terms(
        ledger.network_passphrase,
        treasury.sponsor.public_key,
        "DLC",
        treasury.issuer.public_key,
        sponsored=sponsored,
        authorize=authorize,
    )


def envelope_for(ledger, treasury, terms, ops=None, memo=False, timeout=300):
    env = build(
        ledger,
        terms.sponsor,
        41,
        ops or operations(terms, PSEUDONYM.public_key),
        memo_hash=b"\1" * 32 if memo else None,
        timeout_s=timeout,
    )
    env.sign(treasury.sponsor)
    return env


def test_expected_envelope_passes(world) -> None:
    ledger, treasury = world
    terms = terms_for(ledger, treasury)
    env = envelope_for(ledger, treasury, terms)
    assert check_envelope(env.to_xdr(), terms, PSEUDONYM.public_key).hash() == env.hash()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        ("extra-op", "operations"),
        ("drain", "operation 2"),
        ("other-asset", "operation 2"),
        ("add-signer", "operation"),
        ("memo", "memo"),
        ("long-validity", "expire"),
        ("other-sponsor", "sponsor"),
    ],
)
def test_anything_else_is_refused(world, mutate: str, match: str) -> None:
    ledger, treasury = world
    terms = terms_for(ledger, treasury)
    ops = operations(terms, PSEUDONYM.public_key)
    kw = {}
    if mutate == "extra-op":
        ops = [*ops, ManageData("x", b"y", source=PSEUDONYM.public_key)]
    elif mutate == "drain":
        ops[2] = Payment(
            treasury.sponsor.public_key, Asset.native(), "5", source=PSEUDONYM.public_key
        )
    elif mutate == "other-asset":
        ops = operations(replace(terms, asset_code="EVIL"), PSEUDONYM.public_key)
    elif mutate == "add-signer":
        ops[2] = SetOptions(master_weight=0, source=PSEUDONYM.public_key)
    elif mutate == "memo":
        kw["memo"] = True
    elif mutate == "long-validity":
        kw["timeout"] = 100_000
    env = envelope_for(ledger, treasury, terms, ops=ops, **kw)
    checked_terms = terms
    if mutate == "other-sponsor":
        checked_terms = replace(terms, sponsor=Keypair.random().public_key)
    with pytest.raises(OnboardingRefused, match=match):
        check_envelope(env.to_xdr(), checked_terms, PSEUDONYM.public_key)


def test_pinned_issuer_is_enforced(world) -> None:
    ledger, treasury = world
    terms = terms_for(ledger, treasury)
    env = envelope_for(ledger, treasury, terms)
    msg = instruction(RecordDict({ONBOARD_RECORD: terms.to_record(env.to_xdr())}), "query.onboard")
    with pytest.raises(OnboardingRefused, match="pinned"):
        cosign(msg, PSEUDONYM, pinned_issuer=Keypair.random().public_key)
    with pytest.raises(OnboardingRefused, match="lacks"):
        cosign(
            instruction(
                RecordDict({ONBOARD_RECORD: ConfigRecord({"version": 1})}), "query.onboard"
            ),
            PSEUDONYM,
        )


@pytest.mark.parametrize("authorize", [False, True])
def test_cosigned_onboarding_applies_sponsored(world, authorize: bool) -> None:
    ledger, treasury = world
    prepare(ledger, treasury, reward_cfg(auth_required=authorize, auth_revocable=authorize), 10**9)
    terms = terms_for(ledger, treasury, authorize=authorize)
    seq = ledger.load_account(terms.sponsor).sequence
    env = build(ledger, terms.sponsor, seq, operations(terms, PSEUDONYM.public_key))
    env.sign(treasury.sponsor)
    if authorize:
        env.sign(treasury.issuer)
    msg = instruction(RecordDict({ONBOARD_RECORD: terms.to_record(env.to_xdr())}), "query.onboard")
    reply = cosign(msg, PSEUDONYM)
    assert attach_cosignature(env, PSEUDONYM.public_key, reply)
    wrong = cosign(msg, PSEUDONYM)
    wrong.content[ONBOARD_RECORD]["pseudonym"] = Keypair.random().public_key
    assert not attach_cosignature(env, PSEUDONYM.public_key, wrong)
    result = ledger.submit(env.to_xdr())
    assert result.successful, (result.tx_code, result.op_codes)
    account = ledger.load_account(PSEUDONYM.public_key)
    assert account.balance() == 0  # owns no XLM: the sponsor carries its reserves
    assert account.num_sponsored == 3  # account (2 base reserves) + trustline
    line = next(b for b in account.balances if b.asset == treasury.asset_id)
    assert line.flags & 1  # authorized: by the issuer's operation when the asset requires it
    issuer_flags = ledger.load_account(treasury.issuer.public_key).flags
    assert bool(issuer_flags & AUTH_REQUIRED) == authorize
    assert ledger.load_account(terms.sponsor).num_sponsoring == 3


def test_expiry_is_checked_against_now(world) -> None:
    ledger, treasury = world
    terms = terms_for(ledger, treasury)
    env = envelope_for(ledger, treasury, terms, timeout=600)
    with pytest.raises(OnboardingRefused, match="expire"):
        check_envelope(env.to_xdr(), terms, PSEUDONYM.public_key, now=time.time() - 1000)
