"""The node's side of onboarding: check the server's envelope, co-sign it, or refuse.

Before signing, the node rebuilds the exact operations it expects from the terms and its own
address and refuses any envelope that differs in anything: extra or missing operations, another
asset, another sponsor, a memo, a far-off or missing expiry, an implausible fee. So a
co-signature can never spend or change anything of the pseudonym's beyond opening that one
trustline. Register the handler with ``app.query("onboard")(onboarding_reply)``.
"""

from __future__ import annotations

import re
import time

from flwr.app import Context, Message, RecordDict
from stellar_sdk import Keypair, NoneMemo, TransactionEnvelope

from flwr_stellar.client.identity import IdentityUnavailableError, NodeSettings
from flwr_stellar.client.mod import IDENTITY_ERRORS, refuse
from flwr_stellar.ledger.tx import BASE_FEE
from flwr_stellar.protocol.onboarding import (
    MAX_VALIDITY_S,
    ONBOARD_RECORD,
    Cosignature,
    OnboardingRefused,
    Terms,
    operations,
)
from flwr_stellar.protocol.text import shown

_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")  # with a length that is a multiple of 4


def check_envelope(
    envelope_xdr: str, terms: Terms, pseudonym: str, now: float | None = None
) -> TransactionEnvelope:
    """Parse and check an onboarding envelope; raise OnboardingRefused naming the problem.

    The envelope is the server's bytes: it must be strict base64 of a (v1) transaction
    envelope. stellar_sdk's XDR reader fails on garbage in many ways (EOFError on short
    input, ValueError on unknown unions, ...), so any failure there is one refusal, not a
    crash of the node's handler.
    """
    if len(envelope_xdr) % 4 or _BASE64.fullmatch(envelope_xdr) is None:
        raise OnboardingRefused("envelope does not decode: not base64 text")
    try:
        envelope = TransactionEnvelope.from_xdr(envelope_xdr, terms.network_passphrase)
    except Exception as err:  # a third-party decoder on untrusted bytes: any failure
        raise OnboardingRefused(
            f"envelope does not decode: {type(err).__name__} {shown(str(err))}"
        ) from None
    tx = envelope.transaction
    if tx.source.account_id != terms.sponsor:
        raise OnboardingRefused(f"transaction source {tx.source.account_id} is not the sponsor")
    expected = operations(terms, pseudonym)
    if len(tx.operations) != len(expected):
        raise OnboardingRefused(
            f"{len(tx.operations)} operations, expected exactly {len(expected)}"
        )
    for i, (got, want) in enumerate(zip(tx.operations, expected, strict=True)):
        if got.to_xdr_object().to_xdr() != want.to_xdr_object().to_xdr():
            raise OnboardingRefused(f"operation {i} is not the expected {type(want).__name__}")
    if not isinstance(tx.memo, NoneMemo):
        raise OnboardingRefused("onboarding transactions carry no memo")
    bounds = tx.preconditions.time_bounds if tx.preconditions else None
    now = time.time() if now is None else now
    if bounds is None or bounds.max_time == 0 or bounds.max_time > now + MAX_VALIDITY_S:
        raise OnboardingRefused(f"transaction must expire within {MAX_VALIDITY_S} s")
    if tx.fee > 10 * BASE_FEE * len(expected):
        raise OnboardingRefused(f"fee {tx.fee} stroops is implausibly high")
    return envelope


def cosign(msg: Message, pseudonym: Keypair, pinned_issuer: str | None = None) -> Message:
    """Check the request, add the pseudonym's signature, reply.

    Parameters
    ----------
    msg : Message
        The server's ``query.onboard`` instruction.
    pseudonym : Keypair
        This run's pseudonym, the account being onboarded.
    pinned_issuer : str, optional
        Refuse terms for any other coin issuer.

    Raises
    ------
    OnboardingRefused
        Naming what differs from what the node expects.
    """
    terms, envelope_xdr = Terms.from_record(msg.content.get(ONBOARD_RECORD))
    if pinned_issuer and terms.asset_issuer != pinned_issuer:
        raise OnboardingRefused(
            f"asset issuer {terms.asset_issuer} is not the pinned issuer {pinned_issuer}"
        )
    envelope = check_envelope(envelope_xdr, terms, pseudonym.public_key)
    cosignature = Cosignature(pseudonym.public_key, pseudonym.sign(envelope.hash()))
    return Message(RecordDict({ONBOARD_RECORD: cosignature.to_record()}), reply_to=msg)


def onboarding_reply(msg: Message, context: Context) -> Message:
    """ClientApp handler for ``query.onboard``: co-sign this run's onboarding, or refuse.

    Parameters
    ----------
    msg : Message
        The server's onboarding request.
    context : Context
        The node's context; ``dlc-issuer`` in its node config pins the issuer.
    """
    try:
        settings = NodeSettings.from_node_config(context.node_config, context.node_id)
        return cosign(msg, settings.pseudonym(msg.metadata.run_id), settings.dlc_issuer)
    except OnboardingRefused as err:
        return refuse(msg, f"onboarding refused: {err}")
    except (IdentityUnavailableError, *IDENTITY_ERRORS) as err:
        return refuse(msg, f"node identity unavailable: {err}")
