"""A node's identity settings and its unlocked master secret.

Everything here comes from ``context.node_config`` (the SuperNode's ``--node-config``), never from
the app's run config, so the client wrapper works in any Flower App:

==================== ===================================================================
``keystore``         path of the node's encrypted keystore (``flwr-stellar keys new``)
``passphrase-file``  file (mode 0600) holding its passphrase
``passphrase-env``   environment variable holding it (default ``FLWR_STELLAR_PASSPHRASE``)
``federation``       label mixed into the pseudonym derivation (default ``default``)
``dlc-issuer``       the only coin issuer this node co-signs trustlines for (``G...``)
``dev-keystore``     ``true``/``false``: allow a development keystore when ``keystore`` is unset
``dev-keystore-dir`` where development keystores go
``require-challenge`` ``true``: refuse any train/evaluate instruction without a server nonce
``journal``          ``false``: keep no journal (default ``true``: beside the keystore)
==================== ===================================================================

Development keystores: with no ``keystore`` in a simulation (whose node config holds only
``partition-id`` / ``num-partitions``), each node gets ``node-<partition-id>.json`` in
``dev-keystore-dir`` (default ``$FLWR_STELLAR_HOME/dev-keystores``, ``FLWR_STELLAR_HOME``
defaulting to ``~/.flwr-stellar``), encrypted with the documented passphrase
:data:`DEV_PASSPHRASE`. A deployed SuperNode without ``keystore`` refuses to sign unless it sets
``dev-keystore=true``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from logging import WARNING
from pathlib import Path

from flwr.common.logger import log
from stellar_sdk import Keypair
from stellar_sdk.exceptions import Ed25519PublicKeyInvalidError

from flwr_stellar.client.journal import Journal
from flwr_stellar.identity import keystore
from flwr_stellar.identity.keystore import MasterSecret
from flwr_stellar.identity.passphrase import DEFAULT_ENV, resolve_passphrase
from flwr_stellar.identity.pseudonym import derive_pseudonym

DEV_PASSPHRASE = "flwr-stellar-dev-only"  # documented; development keystores only
DEV_KDF = keystore.KdfParams(n=2**14)  # cheaper unlock for many simulated nodes
HOME_ENV = "FLWR_STELLAR_HOME"
SIMULATION_KEYS = frozenset({"partition-id", "num-partitions"})

_unlocked: dict[Path, MasterSecret] = {}
_lock = threading.Lock()


class IdentityUnavailableError(RuntimeError):
    """The node has no usable identity; the message says what to configure."""


def default_home() -> Path:
    """``$FLWR_STELLAR_HOME`` or ``~/.flwr-stellar``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".flwr-stellar").expanduser()


@dataclass(frozen=True)
class NodeSettings:
    """How this node signs, read from its node config.

    Parameters
    ----------
    label : str
        The node's name in dev keystore files: its partition id, else its node id.
    keystore : Path or None
        Encrypted keystore; None means a development keystore (if allowed).
    passphrase_file : Path or None
        Passphrase file (preferred over the environment).
    passphrase_env : str
        Environment variable with the passphrase.
    federation : str
        Mixed into the pseudonym: the same keystore in two federations gives unlinkable accounts.
    dlc_issuer : str or None
        Pinned coin issuer; onboarding for any other issuer is refused.
    dev_keystore : bool
        Whether a development keystore may be created and used.
    dev_keystore_dir : Path
        Where development keystores live.
    require_challenge : bool
        Refuse train/evaluate instructions that carry no server nonce.
    keep_journal : bool
        Keep the node's journal (its evidence) beside the keystore.
    """

    label: str
    keystore: Path | None = None
    passphrase_file: Path | None = None
    passphrase_env: str = DEFAULT_ENV
    federation: str = "default"
    dlc_issuer: str | None = None
    dev_keystore: bool = False
    dev_keystore_dir: Path = Path()
    require_challenge: bool = False
    keep_journal: bool = True

    def __post_init__(self) -> None:
        if not self.federation:
            raise IdentityUnavailableError("node config 'federation' must not be empty")
        if self.dlc_issuer is not None:
            try:
                Keypair.from_public_key(self.dlc_issuer)
            except Ed25519PublicKeyInvalidError:
                raise IdentityUnavailableError(
                    f"node config 'dlc-issuer' is not a Stellar account id: {self.dlc_issuer!r}"
                ) from None

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, object], node_id: int) -> NodeSettings:
        """Read and check the node config; IdentityUnavailableError names a bad key."""
        keys = set(node_config)
        looks_simulated = keys <= SIMULATION_KEYS and keys >= SIMULATION_KEYS
        path = _text(node_config, "keystore")
        dev_dir = _text(node_config, "dev-keystore-dir")
        pass_file = _text(node_config, "passphrase-file")
        return cls(
            label=str(node_config.get("partition-id", node_id)),
            keystore=Path(path).expanduser().resolve() if path else None,
            passphrase_file=Path(pass_file).expanduser() if pass_file else None,
            passphrase_env=_text(node_config, "passphrase-env") or DEFAULT_ENV,
            federation=_text(node_config, "federation", "default"),
            dlc_issuer=_text(node_config, "dlc-issuer") or None,
            dev_keystore=_flag(node_config, "dev-keystore", looks_simulated and not path),
            dev_keystore_dir=Path(dev_dir).expanduser()
            if dev_dir
            else default_home() / "dev-keystores",
            require_challenge=_flag(node_config, "require-challenge", False),
            keep_journal=_flag(node_config, "journal", True),
        )

    def master(self) -> MasterSecret:
        """The unlocked master secret (cached per process and keystore path)."""
        if self.keystore is not None:
            path, passphrase = self.keystore, None
        elif self.dev_keystore:
            path, passphrase = self._dev_keystore(), DEV_PASSPHRASE
        else:
            raise IdentityUnavailableError(
                "no keystore: start the SuperNode with --node-config \"keystore='PATH' "
                "passphrase-file='PATH'\" (create one with `flwr-stellar keys new PATH`), "
                "or dev-keystore=true for a development keystore"
            )
        with _lock:
            if path not in _unlocked:
                if passphrase is None:
                    passphrase = resolve_passphrase(
                        env=self.passphrase_env, file=self.passphrase_file, prompt=False
                    )
                _unlocked[path] = keystore.load(path, passphrase)
            return _unlocked[path]

    def pseudonym(self, run_id: int) -> Keypair:
        """This node's account in this run: unlinkable to its other runs and to its master.

        Parameters
        ----------
        run_id : int
            Flower run id.
        """
        return derive_pseudonym(self.master(), run_id, self.federation)

    def journal(self) -> Journal | None:
        """The node's journal, beside its keystore (a development one included); None when
        the node config says ``journal=false``."""
        if not self.keep_journal:
            return None
        if self.keystore is not None:
            return Journal.beside(self.keystore)
        if self.dev_keystore:
            return Journal.beside(self._dev_keystore())
        raise IdentityUnavailableError("no keystore, so no journal beside it")

    def _dev_keystore(self) -> Path:
        path = dev_keystore_path(self.dev_keystore_dir, self.label)
        if _create_dev_keystore(path):
            log(
                WARNING,
                "flwr-stellar: node %s created DEVELOPMENT keystore %s with the public dev "
                "passphrase; never use it for real rewards",
                self.label,
                path,
            )
        return path


def dev_keystore_path(directory: Path, label: str) -> Path:
    """Where the development keystore of the node labelled ``label`` lives in ``directory``."""
    return (directory / f"node-{label}.json").resolve()


def _create_dev_keystore(path: Path) -> bool:
    """Create a development keystore at ``path`` unless one is there; True if created."""
    if path.exists():
        return False
    with contextlib.suppress(keystore.KeystoreError):  # another worker may be first
        keystore.save(path, MasterSecret.generate(with_mnemonic=False), DEV_PASSPHRASE, kdf=DEV_KDF)
        return True
    return False


def create_dev_keystores(directory: Path, labels: Iterable[str]) -> list[Path]:
    """Create the development keystores of simulated nodes ahead of a run, with ONE warning.

    Each simulated node would otherwise create its own in its worker process and warn there,
    once per node and interleaved with the run's output. The nodes then find theirs and stay
    quiet. Returns the keystores created (those already there are left as they are).

    Parameters
    ----------
    directory : Path
        The nodes' ``dev-keystore-dir``.
    labels : Iterable[str]
        The nodes' labels (a simulation's partition ids).
    """
    created = [
        p for p in (dev_keystore_path(directory, lb) for lb in labels) if _create_dev_keystore(p)
    ]
    if created:
        log(
            WARNING,
            "flwr-stellar: created %d DEVELOPMENT keystore(s) in %s with the public dev "
            "passphrase; never use them for real rewards",
            len(created),
            directory.resolve(),
        )
    return created


def _text(node_config: Mapping[str, object], key: str, default: str = "") -> str:
    value = node_config.get(key, default)
    if not isinstance(value, str):
        raise IdentityUnavailableError(f"node config {key!r} must be a string, got {value!r}")
    return value


def _flag(node_config: Mapping[str, object], key: str, default: bool) -> bool:
    value = node_config.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise IdentityUnavailableError(f"node config {key!r} must be true or false, got {value!r}")
    return value
