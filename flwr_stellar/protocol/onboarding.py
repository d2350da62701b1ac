"""Onboarding a pseudonym the Stellar way: its account and DLC trustline in one transaction.

The server builds the transaction (source: its sponsor account, which pays the fee and, in
``sponsored`` mode, the reserves via Begin/EndSponsoringFutureReserves) and signs it; the node
co-signs, because only the pseudonym can open its own trustline. Before signing, the node
rebuilds the exact operations it expects from the terms and its own address and refuses any
envelope that differs in anything: extra or missing operations, another asset, another
sponsor, a memo, a far-off or missing expiry. So a co-signature can never spend or change
anything of the pseudonym's beyond opening that one trustline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flwr.app import ConfigRecord, Message, RecordDict
from stellar_sdk import (
    Asset,
    BeginSponsoringFutureReserves,
    ChangeTrust,
    CreateAccount,
    DecoratedSignature,
    EndSponsoringFutureReserves,
    Keypair,
    NoneMemo,
    Operation,
    SetTrustLineFlags,
    TransactionEnvelope,
    TrustLineFlags,
)
from stellar_sdk.exceptions import SdkError

from flwr_stellar.ledger.tx import BASE_FEE

ONBOARD_TYPE = "query.onboard"  # Flower message type of an onboarding request
ONBOARD_RECORD = "flwr-stellar.onboard"
VERSION = 1
MAX_VALIDITY_S = 900  # the node signs nothing that stays valid longer than this


class OnboardingRefused(ValueError):
    """The node will not co-sign this envelope; the message says why."""


@dataclass(frozen=True)
class Terms:
    """What the node agrees to: who sponsors, which asset, on which network."""

    network_passphrase: str
    sponsor: str
    asset_code: str
    asset_issuer: str
    sponsored: bool  # False: the account exists already (friendbot-funded)
    authorize: bool  # the issuer authorizes the trustline in the same transaction

    def to_record(self, envelope_xdr: str) -> ConfigRecord:
        return ConfigRecord(
            {
                "version": VERSION,
                "envelope": envelope_xdr,
                "network-passphrase": self.network_passphrase,
                "sponsor": self.sponsor,
                "asset-code": self.asset_code,
                "asset-issuer": self.asset_issuer,
                "sponsored": self.sponsored,
                "authorize": self.authorize,
            }
        )

    @classmethod
    def from_record(cls, record: ConfigRecord) -> tuple[Terms, str]:
        try:
            if record["version"] != VERSION:
                raise OnboardingRefused(f"unknown onboarding version {record['version']!r}")
            terms = cls(
                network_passphrase=str(record["network-passphrase"]),
                sponsor=str(record["sponsor"]),
                asset_code=str(record["asset-code"]),
                asset_issuer=str(record["asset-issuer"]),
                sponsored=bool(record["sponsored"]),
                authorize=bool(record["authorize"]),
            )
            return terms, str(record["envelope"])
        except KeyError as err:
            raise OnboardingRefused(f"onboarding request lacks {err.args[0]!r}") from None

    @property
    def asset(self) -> Asset:
        return Asset(self.asset_code, self.asset_issuer)


def operations(terms: Terms, pseudonym: str) -> list[Operation]:
    """The one list of operations both sides build: the server to send, the node to compare."""
    trust: list[Operation] = [ChangeTrust(terms.asset, source=pseudonym)]
    if terms.authorize:
        trust.append(
            SetTrustLineFlags(
                pseudonym,
                terms.asset,
                set_flags=TrustLineFlags.AUTHORIZED_FLAG,
                source=terms.asset_issuer,
            )
        )
    if not terms.sponsored:
        return trust
    return [
        BeginSponsoringFutureReserves(pseudonym),
        CreateAccount(pseudonym, "0"),
        *trust,
        EndSponsoringFutureReserves(source=pseudonym),
    ]


def check_envelope(
    envelope_xdr: str, terms: Terms, pseudonym: str, now: float | None = None
) -> TransactionEnvelope:
    """Parse and check an onboarding envelope; raise OnboardingRefused naming the problem."""
    try:
        envelope = TransactionEnvelope.from_xdr(envelope_xdr, terms.network_passphrase)
    except (SdkError, ValueError, TypeError) as err:
        raise OnboardingRefused(f"envelope does not decode: {err}") from None
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
    """The node's side: check the request, add the pseudonym's signature, reply."""
    record = msg.content.get(ONBOARD_RECORD)
    if not isinstance(record, ConfigRecord):
        raise OnboardingRefused("onboarding request carries no onboarding record")
    terms, envelope_xdr = Terms.from_record(record)
    if pinned_issuer and terms.asset_issuer != pinned_issuer:
        raise OnboardingRefused(
            f"asset issuer {terms.asset_issuer} is not the pinned issuer {pinned_issuer}"
        )
    envelope = check_envelope(envelope_xdr, terms, pseudonym.public_key)
    signature = pseudonym.sign(envelope.hash())
    reply = ConfigRecord({"pseudonym": pseudonym.public_key, "signature": signature})
    return Message(RecordDict({ONBOARD_RECORD: reply}), reply_to=msg)


def attach_cosignature(envelope: TransactionEnvelope, pseudonym: str, reply: Message) -> bool:
    """The server's side: add the node's signature if it is the pseudonym's over this hash."""
    if reply.has_error():
        return False
    record = reply.content.get(ONBOARD_RECORD)
    if not isinstance(record, ConfigRecord) or record.get("pseudonym") != pseudonym:
        return False
    signature = record.get("signature")
    if not isinstance(signature, bytes):
        return False
    kp = Keypair.from_public_key(pseudonym)
    try:
        kp.verify(envelope.hash(), signature)
    except SdkError:
        return False
    envelope.signatures.append(DecoratedSignature(kp.signature_hint(), signature))
    return True
