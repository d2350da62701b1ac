"""Sponsored onboarding (the product's flow), issuer controls, clawback and account merge."""

import pytest
from ledger_helpers import Chain, pay, trust
from stellar_sdk import Keypair, TrustLineEntryFlag, TrustLineFlags

from flwr_stellar.ledger.embedded.entries import (
    AUTH_CLAWBACK_ENABLED,
    AUTH_REQUIRED,
    AUTH_REVOCABLE,
)

RESERVE = 5_000_000


@pytest.fixture
def chain() -> Chain:
    return Chain()


def onboard(chain: Chain, sponsor: Keypair, node: Keypair, issuer: Keypair, **kw):  # type: ignore[no-untyped-def]
    """Sponsor creates `node` with 0 XLM plus a DLC trustline, all reserves on the sponsor."""
    dlc = chain.asset(issuer)
    return chain.submit(
        sponsor,
        lambda t: t.append_begin_sponsoring_future_reserves_op(node.public_key),
        lambda t: t.append_create_account_op(node.public_key, "0"),
        lambda t: t.append_change_trust_op(dlc, source=node.public_key),
        lambda t: t.append_end_sponsoring_future_reserves_op(source=node.public_key),
        signers=(sponsor, node),
        **kw,
    )


def test_sponsored_account_and_trustline_in_one_transaction(chain: Chain) -> None:
    sponsor, issuer, node = chain.funded(), chain.funded(), Keypair.random()
    before = chain.xlm(sponsor)
    result = onboard(chain, sponsor, node, issuer)
    assert result.successful, (result.tx_code, result.op_codes)
    acct = chain.ledger.load_account(node.public_key)
    assert acct.balance() == 0 and acct.num_subentries == 1 and acct.num_sponsored == 3
    spons = chain.ledger.load_account(sponsor.public_key)
    assert spons.num_sponsoring == 3
    assert chain.xlm(sponsor) == before - 400  # only the fee: reserves are locked, not spent
    # the sponsor's minimum balance now carries 3 more reserves
    assert spons.num_sponsoring * RESERVE == 3 * RESERVE
    # the node can receive DLC right away
    assert chain.submit(issuer, pay(node, "7", chain.asset(issuer))).successful
    assert chain.ledger.verify_chain() > 0


def test_unclosed_sponsorship_fails_the_transaction(chain: Chain) -> None:
    sponsor, node = chain.funded(), Keypair.random()
    result = chain.submit(
        sponsor,
        lambda t: t.append_begin_sponsoring_future_reserves_op(node.public_key),
        lambda t: t.append_create_account_op(node.public_key, "0"),
    )
    assert result.applied and result.tx_code == "tx_bad_sponsorship"
    with pytest.raises(Exception, match="not found"):
        chain.ledger.load_account(node.public_key)


def test_unsponsored_zero_balance_account_is_malformed_and_poor_sponsor_fails(
    chain: Chain,
) -> None:
    a, node = chain.funded(), Keypair.random()
    result = chain.submit(a, lambda t: t.append_create_account_op(node.public_key, "0"))
    assert result.op_codes == ("op_malformed",)
    poor, issuer = chain.funded(xlm=2), chain.funded()  # 2 XLM: min balance 1, can't add 1.5
    result = onboard(chain, poor, Keypair.random(), issuer)
    assert result.tx_code == "tx_failed" and "op_low_reserve" in result.op_codes
    assert chain.ledger.load_account(poor.public_key).num_sponsoring == 0


def test_removing_a_sponsored_trustline_releases_the_reserve(chain: Chain) -> None:
    sponsor, issuer, node = chain.funded(), chain.funded(), Keypair.random()
    assert onboard(chain, sponsor, node, issuer).successful
    assert chain.submit(sponsor, pay(node, "1")).successful
    assert chain.submit(node, trust(chain.asset(issuer), "0")).successful
    assert chain.ledger.load_account(sponsor.public_key).num_sponsoring == 2
    assert chain.ledger.load_account(node.public_key).num_sponsored == 2


def test_revoke_sponsorship_hands_reserve_back(chain: Chain) -> None:
    sponsor, issuer, node = chain.funded(), chain.funded(), Keypair.random()
    assert onboard(chain, sponsor, node, issuer).successful
    dlc = chain.asset(issuer)
    revoke = lambda t: t.append_revoke_trustline_sponsorship_op(node.public_key, dlc)  # noqa: E731
    assert chain.submit(sponsor, revoke).op_codes == ("op_low_reserve",)  # node has 0 XLM
    assert chain.submit(sponsor, pay(node, "5")).successful
    assert chain.submit(node, revoke).op_codes == ("op_not_sponsor",)
    assert chain.submit(sponsor, revoke).successful
    assert chain.ledger.load_account(sponsor.public_key).num_sponsoring == 2
    assert chain.ledger.load_account(node.public_key).num_sponsored == 2


def test_auth_required_asset_allow_trust_and_flags(chain: Chain) -> None:
    issuer, holder = chain.funded(), chain.funded()
    assert chain.submit(
        issuer, lambda t: t.append_set_options_op(set_flags=AUTH_REQUIRED)
    ).successful
    dlc = chain.asset(issuer)
    assert chain.submit(holder, trust(dlc)).successful
    assert chain.submit(issuer, pay(holder, "1", dlc)).op_codes == ("op_not_authorized",)
    assert chain.submit(
        issuer,
        lambda t: t.append_allow_trust_op(
            holder.public_key, "DLC", TrustLineEntryFlag.AUTHORIZED_FLAG
        ),
    ).successful
    assert chain.submit(issuer, pay(holder, "1", dlc)).successful

    # revoking needs AUTH_REVOCABLE
    def clear(t):  # type: ignore[no-untyped-def]
        return t.append_set_trust_line_flags_op(
            holder.public_key, dlc, clear_flags=TrustLineFlags.AUTHORIZED_FLAG
        )

    assert chain.submit(issuer, clear).op_codes == ("op_cant_revoke",)
    assert chain.submit(
        issuer, lambda t: t.append_set_options_op(set_flags=AUTH_REVOCABLE)
    ).successful
    assert chain.submit(issuer, clear).successful
    assert chain.submit(holder, pay(issuer, "1", dlc)).op_codes == ("op_src_not_authorized",)
    stranger = chain.funded()
    assert chain.submit(
        stranger,
        lambda t: t.append_set_trust_line_flags_op(
            holder.public_key, dlc, set_flags=TrustLineFlags.AUTHORIZED_FLAG
        ),
    ).op_codes == ("op_malformed",)


def test_clawback(chain: Chain) -> None:
    issuer, holder, plain_issuer = chain.funded(), chain.funded(), chain.funded()
    assert chain.submit(
        issuer, lambda t: t.append_set_options_op(set_flags=AUTH_REVOCABLE | AUTH_CLAWBACK_ENABLED)
    ).successful
    dlc, plain = chain.asset(issuer), chain.asset(plain_issuer, "PLN")
    assert chain.submit(holder, trust(dlc), trust(plain)).successful
    assert chain.submit(issuer, pay(holder, "10", dlc)).successful
    assert chain.submit(plain_issuer, pay(holder, "10", plain)).successful
    claw = lambda asset, amount: lambda t: t.append_clawback_op(asset, holder.public_key, amount)  # noqa: E731
    assert chain.submit(issuer, claw(dlc, "4")).successful
    assert (
        chain.ledger.load_account(holder.public_key).balance(f"DLC:{issuer.public_key}")
        == 60_000_000
    )
    assert chain.submit(issuer, claw(dlc, "100")).op_codes == ("op_underfunded",)
    assert chain.submit(plain_issuer, claw(plain, "1")).op_codes == ("op_not_clawback_enabled",)


def test_account_merge(chain: Chain) -> None:
    a, b, issuer = chain.funded(), chain.funded(), chain.funded()
    merge = lambda t: t.append_account_merge_op(b.public_key)  # noqa: E731
    assert chain.submit(a, trust(chain.asset(issuer))).successful
    assert chain.submit(a, merge).op_codes == ("op_has_sub_entries",)
    assert chain.submit(a, trust(chain.asset(issuer), "0")).successful
    seq = chain.ledger.load_account(a.public_key).sequence
    assert chain.submit(a, lambda t: t.append_bump_sequence_op(seq + 2**40)).successful
    assert chain.submit(a, merge).op_codes == ("op_seqnum_too_far",)

    c = chain.funded()
    total = chain.xlm(c) + chain.xlm(b)
    result = chain.submit(c, merge)
    assert result.successful
    assert chain.xlm(b) == total - result.fee_charged
    with pytest.raises(Exception, match="not found"):
        chain.ledger.load_account(c.public_key)
    # a transaction after the merge: its source is gone
    assert chain.submit(b, merge).op_codes == ("op_malformed",)
