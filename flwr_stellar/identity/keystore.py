"""Encrypted keystore for a node's ed25519 master secret.

File format (JSON, version 1)::

    {"format": "flwr-stellar-keystore", "version": 1,
     "public_key": "G...",                       # master account, public
     "kdf": {"name": "scrypt", "n": 65536, "r": 8, "p": 1, "salt": "<b64>"},
     "cipher": {"name": "aes-256-gcm", "nonce": "<b64>"},
     "ciphertext": "<b64>",                      # AES-GCM(JSON {"seed", "mnemonic"})
     "checksum": "<hex sha256 of the canonical JSON of all fields above>"}

The header is the AEAD's associated data, so it cannot be altered without detection. The
checksum only tells a damaged file (``CorruptKeystoreError``) from a wrong passphrase
(``WrongPassphraseError``): both would otherwise surface as the same failed tag. Writes are
atomic and the file is created 0600; a group/world-readable file is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from stellar_sdk import Keypair

from flwr_stellar.files import write_atomic

FORMAT = "flwr-stellar-keystore"
VERSION = 1
DEFAULT_SCRYPT = {"n": 2**16, "r": 8, "p": 1}  # ~64 MiB, ~0.2 s: interactive-grade
MIN_SCRYPT_N = 2**10


class KeystoreError(Exception):
    """Base class; messages never contain secret material."""


class KeystoreNotFoundError(KeystoreError, FileNotFoundError):
    pass


class WrongPassphraseError(KeystoreError):
    pass


class CorruptKeystoreError(KeystoreError):
    pass


class UnsupportedVersionError(KeystoreError):
    pass


class InsecurePermissionsError(KeystoreError, PermissionError):
    pass


class MasterSecret:
    """The unlocked master seed (and mnemonic, if any); never printed, never pickled."""

    __slots__ = ("_mnemonic", "_seed")

    def __init__(self, seed: bytes, mnemonic: str | None = None) -> None:
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        self._seed = bytes(seed)
        self._mnemonic = mnemonic

    @classmethod
    def generate(cls, *, with_mnemonic: bool = True) -> MasterSecret:
        if with_mnemonic:
            return cls.from_mnemonic(Keypair.generate_mnemonic_phrase(strength=256))
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_mnemonic(cls, mnemonic: str, passphrase: str = "") -> MasterSecret:
        """SEP-5: the master is the account at m/44'/148'/0'."""
        words = " ".join(mnemonic.split())
        try:
            kp = Keypair.from_mnemonic_phrase(words, passphrase=passphrase, index=0)
        except Exception:  # the SDK's message may quote the words: never chain it
            raise ValueError("invalid SEP-5 mnemonic (wrong word, count or checksum)") from None
        return cls(kp.raw_secret_key(), words)

    @property
    def seed(self) -> bytes:
        return self._seed

    @property
    def mnemonic(self) -> str | None:
        return self._mnemonic

    def keypair(self) -> Keypair:
        return Keypair.from_raw_ed25519_seed(self._seed)

    @property
    def public_key(self) -> str:
        return self.keypair().public_key

    def __repr__(self) -> str:
        return f"MasterSecret(public_key={self.public_key}, secret=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("MasterSecret cannot be pickled")


@dataclass(frozen=True)
class KdfParams:
    n: int = DEFAULT_SCRYPT["n"]
    r: int = DEFAULT_SCRYPT["r"]
    p: int = DEFAULT_SCRYPT["p"]

    def check(self) -> None:
        if self.n < MIN_SCRYPT_N or self.n & (self.n - 1):
            raise ValueError(f"scrypt n must be a power of two >= {MIN_SCRYPT_N}, got {self.n}")
        if not 1 <= self.r <= 64 or not 1 <= self.p <= 16:
            raise ValueError(f"scrypt r in [1, 64] and p in [1, 16], got r={self.r} p={self.p}")


def _derive_key(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    if not passphrase:
        raise KeystoreError("empty passphrase")
    return Scrypt(salt=salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(passphrase.encode())


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _checksum(doc: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "checksum"})).hexdigest()


def encrypt(master: MasterSecret, passphrase: str, kdf: KdfParams | None = None) -> dict[str, Any]:
    """The keystore document for ``master`` under ``passphrase``."""
    kdf = kdf or KdfParams()
    kdf.check()
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "public_key": master.public_key,
        "kdf": {
            "name": "scrypt",
            "n": kdf.n,
            "r": kdf.r,
            "p": kdf.p,
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "aes-256-gcm", "nonce": base64.b64encode(nonce).decode()},
    }
    plaintext = _canonical({"seed": master.seed.hex(), "mnemonic": master.mnemonic})
    key = _derive_key(passphrase, salt, kdf)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _canonical(header))
    doc = {**header, "ciphertext": base64.b64encode(ciphertext).decode()}
    doc["checksum"] = _checksum(doc)
    return doc


def decrypt(doc: dict[str, Any], passphrase: str) -> MasterSecret:
    header, salt, nonce, ciphertext, kdf = _parse(doc)
    key = _derive_key(passphrase, salt, kdf)
    try:
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, _canonical(header))
    except InvalidTag:
        raise WrongPassphraseError("wrong passphrase for this keystore") from None
    try:
        body = json.loads(plaintext)
        master = MasterSecret(bytes.fromhex(body["seed"]), body.get("mnemonic"))
    except (ValueError, KeyError, TypeError):
        raise CorruptKeystoreError("keystore decrypted but its content is malformed") from None
    if master.public_key != header["public_key"]:
        raise CorruptKeystoreError("keystore secret does not match its public key")
    return master


def _parse(doc: Any) -> tuple[dict[str, Any], bytes, bytes, bytes, KdfParams]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptKeystoreError("not a flwr-stellar keystore")
    if doc.get("version") != VERSION:
        raise UnsupportedVersionError(
            f"keystore version {doc.get('version')!r} is not supported (this build reads "
            f"version {VERSION}); upgrade flwr-stellar"
        )
    if doc.get("checksum") != _checksum(doc):
        raise CorruptKeystoreError("keystore checksum mismatch: the file is damaged")
    try:
        header = {k: doc[k] for k in ("format", "version", "public_key", "kdf", "cipher")}
        kdf_doc, cipher = doc["kdf"], doc["cipher"]
        if kdf_doc["name"] != "scrypt" or cipher["name"] != "aes-256-gcm":
            raise CorruptKeystoreError("unknown KDF or cipher in keystore")
        kdf = KdfParams(int(kdf_doc["n"]), int(kdf_doc["r"]), int(kdf_doc["p"]))
        kdf.check()
        salt = base64.b64decode(kdf_doc["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        ciphertext = base64.b64decode(doc["ciphertext"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise CorruptKeystoreError("keystore fields are missing or malformed") from None
    if len(nonce) != 12 or len(salt) < 16 or len(ciphertext) < 16:
        raise CorruptKeystoreError("keystore fields have wrong lengths")
    return header, salt, nonce, ciphertext, kdf


def save(
    path: Path,
    master: MasterSecret,
    passphrase: str,
    *,
    kdf: KdfParams | None = None,
    overwrite: bool = False,
) -> Path:
    """Write atomically with mode 0600; refuse to replace an existing keystore by default."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeystoreError(f"{path} already exists; refusing to overwrite a keystore")
    doc = encrypt(master, passphrase, kdf)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)
    return path


def read_document(path: Path) -> dict[str, Any]:
    """The parsed file after the permission check; no passphrase needed."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeystoreNotFoundError(
            f"keystore {path} not found; create one with `flwr-stellar keys new {path}`"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecurePermissionsError(
            f"keystore {path} is accessible by group/others (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CorruptKeystoreError(f"keystore {path} is not valid JSON (truncated?)") from None
    _parse(doc)
    return doc  # type: ignore[no-any-return]


def load(path: Path, passphrase: str) -> MasterSecret:
    return decrypt(read_document(path), passphrase)
