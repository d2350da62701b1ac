"""Per-run pseudonyms derived from the node's master secret, and proofs of ownership.

Each (federation, run id) gets its own ed25519 account, HKDF-SHA256(master seed, salt,
info = federation + run id). The same node gets the same pseudonym if a run restarts; without
the master seed, pseudonyms of different runs look like independent random accounts, so the
ledger cannot link them. When the node chooses to (to claim or move rewards), it proves
ownership with a signature chain over a verifier's challenge: the node's **owner key** signs the
statement naming the pseudonym, and the pseudonym signs the same statement.

The owner key is derived from the master seed for proofs alone (HKDF, its own salt). It is not
the master key itself, which is SEP-5 account 0 of the mnemonic: the default account of any
wallet the provider restores the words into, so a proof naming it would tie the provider's
runs to that wallet's public history.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from stellar_sdk import Keypair
from stellar_sdk.exceptions import BadSignatureError, Ed25519PublicKeyInvalidError

from flwr_stellar.identity.keystore import MasterSecret

DERIVATION_SALT = b"flwr-stellar/pseudonym/v1"
PROOF_DOMAIN = b"flwr-stellar/ownership-proof/v2\x00"  # v2: signed by the owner key
OWNER_SALT = b"flwr-stellar/owner/v1"


class OwnershipError(ValueError):
    """An ownership proof does not hold; the message says which check failed."""


def derive_keypair(master: MasterSecret, salt: bytes, info: bytes) -> Keypair:
    """An ed25519 account derived from the master secret (HKDF-SHA256), one per (salt, info)."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master.seed)
    return Keypair.from_raw_ed25519_seed(seed)


def derive_pseudonym(master: MasterSecret, run_id: int, federation: str = "default") -> Keypair:
    if run_id < 0:
        raise ValueError(f"run id must be >= 0, got {run_id}")
    info = b"federation\x00" + federation.encode() + b"\x00run\x00" + str(run_id).encode()
    return derive_keypair(master, DERIVATION_SALT, info)


def owner_keypair(master: MasterSecret) -> Keypair:
    """The node's owner key: what signs its ownership proofs (never the SEP-5 account 0)."""
    return derive_keypair(master, OWNER_SALT, b"ownership proofs")


@dataclass(frozen=True)
class OwnershipProof:
    owner: str
    pseudonym: str
    challenge: bytes
    owner_signature: bytes
    pseudonym_signature: bytes

    def statement(self) -> bytes:
        return _statement(self.owner, self.pseudonym, self.challenge)

    def to_json(self) -> str:
        return json.dumps(
            {
                "owner": self.owner,
                "pseudonym": self.pseudonym,
                "challenge": base64.b64encode(self.challenge).decode(),
                "owner_signature": base64.b64encode(self.owner_signature).decode(),
                "pseudonym_signature": base64.b64encode(self.pseudonym_signature).decode(),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> OwnershipProof:
        try:
            d = json.loads(text)
            return cls(
                owner=str(d["owner"]),
                pseudonym=str(d["pseudonym"]),
                challenge=base64.b64decode(d["challenge"], validate=True),
                owner_signature=base64.b64decode(d["owner_signature"], validate=True),
                pseudonym_signature=base64.b64decode(d["pseudonym_signature"], validate=True),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise OwnershipError(f"malformed ownership proof: {type(err).__name__}") from None


def _statement(owner: str, pseudonym: str, challenge: bytes) -> bytes:
    return PROOF_DOMAIN + owner.encode() + b"\x00" + pseudonym.encode() + b"\x00" + challenge


def prove_ownership(master: MasterSecret, pseudonym: Keypair, challenge: bytes) -> OwnershipProof:
    if len(challenge) < 16:
        raise ValueError("a challenge must be at least 16 random bytes")
    owner = owner_keypair(master)
    statement = _statement(owner.public_key, pseudonym.public_key, challenge)
    return OwnershipProof(
        owner=owner.public_key,
        pseudonym=pseudonym.public_key,
        challenge=challenge,
        owner_signature=owner.sign(statement),
        pseudonym_signature=pseudonym.sign(statement),
    )


def verify_ownership(
    proof: OwnershipProof,
    *,
    pseudonym: str,
    challenge: bytes,
    owner: str | None = None,
) -> None:
    """Raise OwnershipError unless ``proof`` binds ``pseudonym`` to its owner for ``challenge``."""
    if proof.pseudonym != pseudonym:
        raise OwnershipError("proof is for a different pseudonym")
    if proof.challenge != challenge:
        raise OwnershipError("proof answers a different challenge")
    if owner is not None and proof.owner != owner:
        raise OwnershipError("proof is signed by a different owner key")
    statement = proof.statement()
    for who, address, signature in (
        ("owner", proof.owner, proof.owner_signature),
        ("pseudonym", proof.pseudonym, proof.pseudonym_signature),
    ):
        try:
            Keypair.from_public_key(address).verify(statement, signature)
        except Ed25519PublicKeyInvalidError:
            raise OwnershipError(f"{who} address is not a valid Stellar account id") from None
        except BadSignatureError:
            raise OwnershipError(f"{who} signature does not verify") from None
