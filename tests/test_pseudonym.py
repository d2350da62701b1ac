"""Per-run pseudonyms: stable, unlinkable across runs, provably owned."""

import secrets

import pytest

from flwr_stellar.identity import (
    MasterSecret,
    OwnershipError,
    OwnershipProof,
    derive_pseudonym,
    owner_keypair,
    prove_ownership,
    verify_ownership,
)


def test_stable_per_master_and_run_distinct_otherwise() -> None:
    a, b = MasterSecret.generate(with_mnemonic=False), MasterSecret.generate(with_mnemonic=False)
    assert derive_pseudonym(a, 7).public_key == derive_pseudonym(a, 7).public_key
    addresses = {
        derive_pseudonym(m, run, fed).public_key
        for m in (a, b)
        for run in (1, 2, 3, 2**63 + 5)
        for fed in ("default", "other")
    }
    assert len(addresses) == 16
    assert a.public_key not in addresses and b.public_key not in addresses
    with pytest.raises(ValueError):
        derive_pseudonym(a, -1)


def test_same_mnemonic_same_pseudonyms() -> None:
    m = MasterSecret.generate()
    again = MasterSecret.from_mnemonic(m.mnemonic or "")
    assert derive_pseudonym(m, 42).public_key == derive_pseudonym(again, 42).public_key


def test_ownership_proof_verifies_and_rejects_foreign_keys() -> None:
    owner, stranger = MasterSecret.generate(), MasterSecret.generate()
    pseudonym = derive_pseudonym(owner, 99)
    challenge = secrets.token_bytes(32)
    proof = OwnershipProof.from_json(prove_ownership(owner, pseudonym, challenge).to_json())
    verify_ownership(proof, pseudonym=pseudonym.public_key, challenge=challenge)
    verify_ownership(
        proof,
        pseudonym=pseudonym.public_key,
        challenge=challenge,
        owner=owner_keypair(owner).public_key,
    )
    # the proof never names the master key: SEP-5 account 0, a restored wallet's default account
    assert proof.owner != owner.public_key and owner.public_key not in proof.to_json()

    with pytest.raises(OwnershipError, match="different owner"):
        verify_ownership(
            proof,
            pseudonym=pseudonym.public_key,
            challenge=challenge,
            owner=owner_keypair(stranger).public_key,
        )
    with pytest.raises(OwnershipError, match="different challenge"):
        verify_ownership(proof, pseudonym=pseudonym.public_key, challenge=b"x" * 32)
    # A stranger claiming the pseudonym cannot produce the pseudonym's signature.
    forged = prove_ownership(stranger, derive_pseudonym(stranger, 99), challenge)
    forged = OwnershipProof(
        owner_keypair(stranger).public_key,
        pseudonym.public_key,
        challenge,
        forged.owner_signature,
        forged.pseudonym_signature,
    )
    with pytest.raises(OwnershipError, match="signature does not verify"):
        verify_ownership(forged, pseudonym=pseudonym.public_key, challenge=challenge)
    with pytest.raises(OwnershipError, match="malformed"):
        OwnershipProof.from_json('{"owner": 1}')
    with pytest.raises(ValueError, match="at least 16"):
        prove_ownership(owner, pseudonym, b"short")
