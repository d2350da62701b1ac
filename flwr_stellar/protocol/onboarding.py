"""Onboarding records: the request (terms + envelope) the server sends, the node's reply, and
the one list of operations both sides build.

Onboarding puts a pseudonym on the ledger the Stellar way: its account and DLC trustline in one
transaction.

The server builds the transaction (source: its sponsor account, which pays the fee and, in
``sponsored`` mode, the reserves via Begin/EndSponsoringFutureReserves) and signs it; the node
co-signs, because only the pseudonym can open its own trustline. Before signing, the node
rebuilds the exact operations it expects from the terms and its own address and refuses any
envelope that differs in anything: extra or missing operations, another asset, another
sponsor, a memo, a far-off or missing expiry. So a co-signature can never spend or change
anything of the pseudonym's beyond opening that one trustline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flwr.app import ConfigRecord
from stellar_sdk import (
    Asset,
    BeginSponsoringFutureReserves,
    ChangeTrust,
    CreateAccount,
    EndSponsoringFutureReserves,
    Operation,
    SetTrustLineFlags,
    StrKey,
    TrustLineFlags,
)

from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.text import shown

ONBOARD_TYPE = "query.onboard"  # Flower message type of an onboarding request
ONBOARD_RECORD = "flwr-stellar.onboard"
VERSION = 1
MAX_VALIDITY_S = 900  # the node signs nothing that stays valid longer than this
_TEXT_FIELDS = ("envelope", "network-passphrase", "sponsor", "asset-code", "asset-issuer")
MAX_ENVELOPE_CHARS = 64 * 1024  # base64 of one onboarding transaction is ~1 KiB
_MAX_CHARS = {  # longest acceptable text per field: bounds the node's work on any request
    "envelope": MAX_ENVELOPE_CHARS,
    "network-passphrase": 256,
    "sponsor": 56,
    "asset-code": 12,
    "asset-issuer": 56,
}
_ASSET_CODE = re.compile(r"[A-Za-z0-9]{1,12}")


class OnboardingRefused(RecordError):
    """The node will not co-sign this envelope; the message says why."""


@dataclass(frozen=True)
class Terms:
    """What the node agrees to: who sponsors, which asset, on which network.

    Parameters
    ----------
    network_passphrase : str
        The network the envelope is for (its hash is what the node signs).
    sponsor : str
        The account that is the transaction's source and pays fees and reserves.
    asset_code, asset_issuer : str
        The coin the trustline is for.
    sponsored : bool
        True: the sponsor creates the account with 0 XLM; False: it exists (friendbot).
    authorize : bool
        The issuer authorizes the trustline in the same transaction (AUTH_REQUIRED assets).
    """

    network_passphrase: str
    sponsor: str
    asset_code: str
    asset_issuer: str
    sponsored: bool  # False: the account exists already (friendbot-funded)
    authorize: bool  # the issuer authorizes the trustline in the same transaction

    def to_record(self, envelope_xdr: str) -> ConfigRecord:
        """The request record: these terms and the envelope to co-sign."""
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
    def from_record(cls, record: object) -> tuple[Terms, str]:
        """(terms, envelope XDR) of a request record; OnboardingRefused if malformed.

        Every field is checked for type, length and form (account ids are strkeys, the asset
        code is 1-12 ASCII letters/digits, the passphrase printable ASCII) before anything is
        built from it, so a malformed request is refused with its field named instead of
        raising inside stellar_sdk, and no field can make the node do unbounded work.
        """
        if not isinstance(record, ConfigRecord):
            raise OnboardingRefused("onboarding request carries no onboarding record")
        try:
            version = record["version"]
            if type(version) is not int or version != VERSION:
                raise OnboardingRefused(f"unknown onboarding version {shown(version)}")
            text = {k: record[k] for k in _TEXT_FIELDS}
            flags = {k: record[k] for k in ("sponsored", "authorize")}
        except KeyError as err:
            raise OnboardingRefused(f"onboarding request lacks {err.args[0]!r}") from None
        for key, value in text.items():
            if not isinstance(value, str):
                raise OnboardingRefused(f"onboarding request field {key!r} is not a string")
            if len(value) > _MAX_CHARS[key]:
                raise OnboardingRefused(
                    f"onboarding request field {key!r} is longer than {_MAX_CHARS[key]} characters"
                )
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise OnboardingRefused(f"onboarding request field {key!r} is not a bool")
        passphrase = str(text["network-passphrase"])
        if not (passphrase and passphrase.isascii() and passphrase.isprintable()):
            raise OnboardingRefused(
                "onboarding request field 'network-passphrase' is not printable ASCII"
            )
        for key in ("sponsor", "asset-issuer"):
            if not StrKey.is_valid_ed25519_public_key(str(text[key])):
                raise OnboardingRefused(
                    f"onboarding request field {key!r} is not a Stellar account id: "
                    f"{shown(text[key])}"
                )
        if _ASSET_CODE.fullmatch(str(text["asset-code"])) is None:
            raise OnboardingRefused(
                "onboarding request field 'asset-code' is not 1-12 ASCII letters/digits: "
                f"{shown(text['asset-code'])}"
            )
        terms = cls(
            network_passphrase=passphrase,
            sponsor=str(text["sponsor"]),
            asset_code=str(text["asset-code"]),
            asset_issuer=str(text["asset-issuer"]),
            sponsored=bool(flags["sponsored"]),
            authorize=bool(flags["authorize"]),
        )
        return terms, str(text["envelope"])

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


@dataclass(frozen=True)
class Cosignature:
    """The node's reply: its pseudonym's signature over the envelope's hash.

    Parameters
    ----------
    pseudonym : str
        The account being onboarded.
    signature : bytes
        ed25519 signature over the transaction hash (network id included).
    """

    pseudonym: str
    signature: bytes

    def to_record(self) -> ConfigRecord:
        return ConfigRecord({"pseudonym": self.pseudonym, "signature": self.signature})

    @classmethod
    def from_record(cls, record: object) -> Cosignature:
        """Read the node's reply record; RecordError if it is not one."""
        if not isinstance(record, ConfigRecord):
            raise RecordError("onboarding reply carries no onboarding record")
        pseudonym, signature = record.get("pseudonym"), record.get("signature")
        if not isinstance(pseudonym, str) or not isinstance(signature, bytes):
            raise RecordError("onboarding reply: pseudonym or signature malformed")
        return cls(pseudonym, signature)
