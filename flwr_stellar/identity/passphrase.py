"""Where a keystore passphrase comes from: an environment variable, a file, or a prompt.

Never from the command line (it would sit in shell history and `ps` output).
"""

from __future__ import annotations

import getpass
import os
import stat
from pathlib import Path

from flwr_stellar.identity.keystore import InsecurePermissionsError, KeystoreError

DEFAULT_ENV = "FLWR_STELLAR_PASSPHRASE"


def read_passphrase_file(path: Path) -> str:
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeystoreError(f"passphrase file {path} not found") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecurePermissionsError(
            f"passphrase file {path} is accessible by group/others; run `chmod 600 {path}`"
        )
    text = path.read_text().rstrip("\r\n")
    if not text:
        raise KeystoreError(f"passphrase file {path} is empty")
    return text


def resolve_passphrase(
    *,
    env: str | None = DEFAULT_ENV,
    file: Path | None = None,
    prompt: bool = True,
    confirm: bool = False,
) -> str:
    """File first (explicit), then the environment variable, then an interactive prompt."""
    if file is not None:
        return read_passphrase_file(file)
    if env and os.environ.get(env):
        return os.environ[env]
    if not prompt:
        raise KeystoreError(f"no passphrase: set {env or DEFAULT_ENV} or give a passphrase file")
    first = getpass.getpass("Keystore passphrase: ")
    if not first:
        raise KeystoreError("empty passphrase")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise KeystoreError("passphrases do not match")
    return first
