"""Node identities: encrypted keystore, per-run pseudonyms, ownership proofs."""

from flwr_stellar.identity.keystore import (
    CorruptKeystoreError,
    InsecurePermissionsError,
    KdfParams,
    KeystoreError,
    KeystoreNotFoundError,
    MasterSecret,
    UnsupportedVersionError,
    WrongPassphraseError,
)
from flwr_stellar.identity.pseudonym import (
    OwnershipError,
    OwnershipProof,
    derive_pseudonym,
    owner_keypair,
    prove_ownership,
    verify_ownership,
)

__all__ = [
    "CorruptKeystoreError",
    "InsecurePermissionsError",
    "KdfParams",
    "KeystoreError",
    "KeystoreNotFoundError",
    "MasterSecret",
    "OwnershipError",
    "OwnershipProof",
    "UnsupportedVersionError",
    "WrongPassphraseError",
    "derive_pseudonym",
    "owner_keypair",
    "prove_ownership",
    "verify_ownership",
]
