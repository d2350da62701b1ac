"""Keystore: round trip, distinct errors, permissions, KDF parameters, no secret leaks."""

import json
import logging
import os
import pickle
import stat
from pathlib import Path

import pytest
from stellar_sdk import Keypair

from flwr_stellar.identity import keystore
from flwr_stellar.identity.keystore import KdfParams, MasterSecret
from flwr_stellar.identity.passphrase import read_passphrase_file, resolve_passphrase

FAST = KdfParams(n=2**10, r=8, p=1)
PASS = "correct horse battery staple"


@pytest.fixture
def master() -> MasterSecret:
    return MasterSecret.generate()


@pytest.fixture
def stored(tmp_path: Path, master: MasterSecret) -> Path:
    return keystore.save(tmp_path / "node.json", master, PASS, kdf=FAST)


def test_round_trip_and_file_mode(stored: Path, master: MasterSecret) -> None:
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    loaded = keystore.load(stored, PASS)
    assert loaded.seed == master.seed and loaded.mnemonic == master.mnemonic
    doc = json.loads(stored.read_text())
    assert doc["public_key"] == master.public_key and doc["version"] == 1
    assert master.seed.hex() not in stored.read_text()
    assert master.mnemonic is not None
    assert " ".join(master.mnemonic.split()[:2]) not in stored.read_text()


def test_kdf_parameters_are_stored_and_honoured(tmp_path: Path, master: MasterSecret) -> None:
    path = keystore.save(tmp_path / "k.json", master, PASS, kdf=KdfParams(n=2**11, r=4, p=2))
    doc = json.loads(path.read_text())
    assert (doc["kdf"]["n"], doc["kdf"]["r"], doc["kdf"]["p"]) == (2**11, 4, 2)
    assert keystore.load(path, PASS).seed == master.seed
    # Changing the stored parameters (and fixing the checksum) derives another key: no unlock.
    doc["kdf"]["n"] = 2**12
    doc["checksum"] = keystore._checksum(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(keystore.WrongPassphraseError):
        keystore.load(path, PASS)
    default = keystore.encrypt(master, PASS)
    assert default["kdf"]["n"] == keystore.DEFAULT_SCRYPT["n"] >= 2**15
    with pytest.raises(ValueError, match="power of two"):
        keystore.encrypt(master, PASS, KdfParams(n=1000))


def test_wrong_passphrase(stored: Path) -> None:
    with pytest.raises(keystore.WrongPassphraseError, match="wrong passphrase"):
        keystore.load(stored, PASS + "!")


def test_truncated_file(stored: Path) -> None:
    text = stored.read_text()
    stored.write_text(text[: len(text) // 2])
    with pytest.raises(keystore.CorruptKeystoreError, match="not valid JSON"):
        keystore.load(stored, PASS)


@pytest.mark.parametrize("field", ["ciphertext", "checksum", "salt"])
def test_bit_flip_is_corruption_not_wrong_passphrase(stored: Path, field: str) -> None:
    doc = json.loads(stored.read_text())
    holder = doc["kdf"] if field == "salt" else doc
    value = holder[field]
    flipped = chr(ord(value[5]) ^ 0x01)
    holder[field] = value[:5] + flipped + value[6:]
    stored.write_text(json.dumps(doc))
    with pytest.raises(keystore.CorruptKeystoreError):
        keystore.load(stored, PASS)


def test_unknown_version_missing_file_and_not_a_keystore(stored: Path, tmp_path: Path) -> None:
    doc = json.loads(stored.read_text())
    doc["version"] = 2
    stored.write_text(json.dumps(doc))
    with pytest.raises(keystore.UnsupportedVersionError, match="version 2"):
        keystore.load(stored, PASS)
    with pytest.raises(keystore.KeystoreNotFoundError, match="keys new"):
        keystore.load(tmp_path / "absent.json", PASS)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    other.chmod(0o600)
    with pytest.raises(keystore.CorruptKeystoreError, match="not a flwr-stellar keystore"):
        keystore.load(other, PASS)


def test_group_readable_file_refused_with_fix(stored: Path) -> None:
    stored.chmod(0o644)
    with pytest.raises(keystore.InsecurePermissionsError, match=f"chmod 600 {stored}"):
        keystore.load(stored, PASS)


def test_no_overwrite_and_atomic_write(stored: Path, master: MasterSecret) -> None:
    before = stored.read_bytes()
    with pytest.raises(keystore.KeystoreError, match="refusing to overwrite"):
        keystore.save(stored, MasterSecret.generate(), PASS, kdf=FAST)
    assert stored.read_bytes() == before
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # no temp files left


def test_mnemonic_matches_sep5(master: MasterSecret) -> None:
    assert master.mnemonic is not None and len(master.mnemonic.split()) == 24
    sep5 = Keypair.from_mnemonic_phrase(master.mnemonic, index=0)
    assert master.seed == sep5.raw_secret_key() and master.public_key == sep5.public_key
    again = MasterSecret.from_mnemonic("  " + master.mnemonic.replace(" ", "   ") + "\n")
    assert again.seed == master.seed


def test_secrets_never_in_repr_logs_or_errors(
    stored: Path, master: MasterSecret, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert master.mnemonic is not None
    words = master.mnemonic.split()
    # word pairs: a single word ("public", "file") may well occur in ordinary text
    secrets_ = [
        master.seed.hex(),
        master.keypair().secret,
        PASS,
        *(" ".join(words[i : i + 2]) for i in range(0, 24, 2)),
    ]
    texts = [repr(master), str(master)]
    for attempt in (PASS + "x", PASS):
        try:
            keystore.load(stored, attempt)
        except keystore.KeystoreError as err:
            texts.append(str(err))
    with pytest.raises(ValueError) as bad:
        MasterSecret.from_mnemonic(" ".join(words[:-1]) + " notaword")
    texts.append(str(bad.value))
    assert bad.value.__cause__ is None and bad.value.__suppress_context__  # SDK text dropped
    texts.append(caplog.text)
    for text in texts:
        for secret in secrets_:
            assert secret not in text
    with pytest.raises(TypeError):
        pickle.dumps(master)


def test_passphrase_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "pass"
    f.write_text("from-file\n")
    f.chmod(0o600)
    assert read_passphrase_file(f) == "from-file"
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", "from-env")
    assert resolve_passphrase(file=f, prompt=False) == "from-file"
    assert resolve_passphrase(prompt=False) == "from-env"
    monkeypatch.delenv("FLWR_STELLAR_PASSPHRASE")
    with pytest.raises(keystore.KeystoreError, match="no passphrase"):
        resolve_passphrase(prompt=False)
    os.chmod(f, 0o640)
    with pytest.raises(keystore.InsecurePermissionsError, match="chmod 600"):
        read_passphrase_file(f)
