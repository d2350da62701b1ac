"""The run's terms: what a node is promised, signed by the account that will pay it.

The server attaches the signed terms to every train/evaluate instruction. The client wrapper
reads nothing else about rewards: a node learns the asset, its issuer, each round's budget and
how much of it is held back, the scorer and its parameters, the number of rounds, a hash of the
screening/scoring settings and (for value scorers on server data) a hash committing to that
validation set from the server that will pay it, never from the app's run config.

The terms are a canonical JSON document signed by the run's distributor (the account that
anchors and pays), so they cannot be denied afterwards: a node keeps them in its journal, binds
their hash into every reply it signs, and refuses a change of terms within a run. An auditor
checks each manifest's budget, asset and distributor against them.

Trust in the distributor's key is on first use, per run: the node cannot know in advance which
account a server will pay from, but once it has signed terms, every later instruction, receipt
and payment must come from that account (and the node may pin the issuer, ``dlc-issuer``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ConfigRecord

from flwr_stellar.protocol.canonical import (
    DOCUMENT_LIMIT,
    SignedDocument,
    check_document,
    field_of,
    hex64,
)
from flwr_stellar.protocol.errors import RecordError, require_version

TERMS_RECORD = "flwr-stellar.terms"  # the instruction's ConfigRecord with the signed terms
VERSION = 2  # v2: signed by the distributor, for the whole run
FORMAT = "flwr-stellar/terms/v2"
DOMAIN = b"flwr-stellar/terms/v2"
SCORING_KEYS = 16  # scorer parameters a terms document may name
PAYOUTS = ("payment", "claimable")
OPTIONAL: dict[str, Any] = {"payout": "payment", "quantum_stroops": 1, "reclaim_after_s": 0}


@dataclass(frozen=True)
class RewardTerms:
    """The terms of one run.

    Parameters
    ----------
    run_id : int
        Flower run id: terms of another run are refused.
    distributor : str
        The account that signs these terms and every receipt, anchors each round and pays.
    asset_code, asset_issuer : str
        The coin (``DLC``) and its issuer's account id (``G...``); a node may pin the issuer.
    budget_stroops : int
        What each round pays in all, in stroops (1e-7 of a coin).
    held_stroops : int
        Of that, what each round holds back until the last round (released by trust).
    num_rounds : int
        The rounds the run will have: an auditor expects a manifest for each.
    scorer : str
        How a round's budget is shared among accepted contributions.
    scoring : Mapping[str, int | str]
        The scorer's parameters (e.g. its evaluation budget), as manifests give them.
    settings_hash : str
        SHA-256 of the screening, bounding, reputation and scoring settings (the manifests'
        ``config_hash``).
    validation_hash : str
        SHA-256 committing to the server's validation data when a value scorer or check uses
        it (``""`` when the server uses none).
    payout : {"payment", "claimable"}
        How rounds pay: payments to onboarded pseudonyms, or claimable balances.
    quantum_stroops : int
        Payouts and held shares are multiples of it (1: the exact split).
    reclaim_after_s : int
        Claimable payouts: seconds after which the distributor may reclaim (0: never).

    The last three appear in the document only when they differ from their defaults, so the
    terms of runs that use none of them keep their bytes (and hashes).
    """

    run_id: int
    distributor: str
    asset_code: str
    asset_issuer: str
    budget_stroops: int
    held_stroops: int
    num_rounds: int
    scorer: str
    settings_hash: str
    scoring: Mapping[str, int | str] = field(default_factory=dict)
    validation_hash: str = ""
    payout: str = "payment"
    quantum_stroops: int = 1
    reclaim_after_s: int = 0

    def __post_init__(self) -> None:
        if self.payout not in PAYOUTS:
            raise RecordError(f"terms: payout must be one of {PAYOUTS}")
        if self.quantum_stroops < 1 or self.reclaim_after_s < 0:
            raise RecordError("terms: quantum_stroops must be >= 1, reclaim_after_s >= 0")
        if not 0 <= self.held_stroops <= self.budget_stroops:
            raise RecordError("terms: held_stroops must be between 0 and budget_stroops")
        if self.num_rounds < 1:
            raise RecordError("terms: num_rounds must be >= 1")
        hex64(self.settings_hash, "terms settings_hash")
        hex64(self.validation_hash, "terms validation_hash", empty=True)
        if len(self.scoring) > SCORING_KEYS or not all(
            isinstance(k, str) and type(v) in (int, str) for k, v in self.scoring.items()
        ):
            raise RecordError("terms: scoring must map at most 16 names to ints or strings")

    def document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "run_id": self.run_id,
            "distributor": self.distributor,
            "asset_code": self.asset_code,
            "asset_issuer": self.asset_issuer,
            "budget_stroops": self.budget_stroops,
            "held_stroops": self.held_stroops,
            "num_rounds": self.num_rounds,
            "scorer": self.scorer,
            "scoring": dict(self.scoring),
            "settings_hash": self.settings_hash,
            "validation_hash": self.validation_hash,
        } | {k: getattr(self, k) for k, default in OPTIONAL.items() if getattr(self, k) != default}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> RewardTerms:
        """Read a terms document; RecordError naming the first bad field."""
        fields = [k for k in cls.__dataclass_fields__ if k not in OPTIONAL or k in doc]
        check_document(doc, FORMAT, fields, "terms")
        scoring = doc.get("scoring")
        if not isinstance(scoring, dict):
            raise RecordError("terms field 'scoring' is not an object")
        ints = ("run_id", "budget_stroops", "held_stroops", "num_rounds")
        texts = ("distributor", "asset_code", "asset_issuer", "scorer", "settings_hash")
        values: dict[str, Any] = {k: field_of(doc, k, int, "terms") for k in ints}
        values |= {k: field_of(doc, k, str, "terms") for k in texts}
        if values["budget_stroops"] < 0:
            raise RecordError("terms: budget_stroops must be >= 0")
        optional = {
            k: field_of(doc, k, type(default), "terms")
            for k, default in OPTIONAL.items()
            if k in doc
        }
        if any(optional[k] == OPTIONAL[k] for k in optional):
            raise RecordError("terms: an optional field at its default is left out (canonical)")
        return cls(
            **values,
            **optional,
            scoring=scoring,
            validation_hash=field_of(doc, "validation_hash", str, "terms"),
        )

    def sign(self, distributor: Any) -> SignedTerms:
        """Signed by ``distributor`` (a Keypair with its secret), which must be the one named."""
        if distributor.public_key != self.distributor:
            raise ValueError("terms must be signed by the distributor they name")
        return SignedTerms(self, SignedDocument.sign(self.document(), distributor, DOMAIN))


@dataclass(frozen=True)
class SignedTerms:
    """The terms and the distributor's signature over their canonical bytes.

    Parameters
    ----------
    terms : RewardTerms
        What was promised.
    signed : SignedDocument
        The canonical bytes and the signature; ``signed.digest`` is the terms hash that
        replies, receipts and manifests cite.
    """

    terms: RewardTerms
    signed: SignedDocument

    @property
    def digest(self) -> str:
        return self.signed.digest

    @property
    def digest_bytes(self) -> bytes:
        return bytes.fromhex(self.signed.digest)

    def to_record(self) -> ConfigRecord:
        return ConfigRecord(
            {"version": VERSION, "document": self.signed.data, "signature": self.signed.signature}
        )

    @classmethod
    def from_signed(cls, signed: SignedDocument) -> SignedTerms:
        """Verify a signed terms document: canonical, well formed, signed by the distributor
        it names; RecordError otherwise."""
        if not isinstance(signed.data, bytes) or len(signed.data) > DOCUMENT_LIMIT:
            raise RecordError(f"terms document is not bytes of at most {DOCUMENT_LIMIT}")
        try:
            named = json.loads(signed.data).get("distributor") if signed.data else None
        except (ValueError, AttributeError, RecursionError):
            named = None
        if not isinstance(named, str):
            raise RecordError("terms document names no distributor")
        return cls(RewardTerms.from_document(signed.verify(named, DOMAIN)), signed)

    @classmethod
    def from_record(cls, record: object) -> SignedTerms:
        """Read and verify a terms record; RecordError naming the problem."""
        if not isinstance(record, ConfigRecord):
            raise RecordError("terms record is not a ConfigRecord")
        require_version(record, VERSION, "terms")
        data, signature = record.get("document"), record.get("signature")
        if not isinstance(data, bytes) or not isinstance(signature, bytes):
            raise RecordError("terms record: document and signature must be bytes")
        return cls.from_signed(SignedDocument(data, signature))
