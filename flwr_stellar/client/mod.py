"""The client wrapper: a Flower Mod that signs every train/evaluate reply with the node's
per-run Stellar pseudonym.

Install it as ``ClientApp(mods=[signing_mod])``. The secret stays on the node: the keystore
is unlocked once per process and only public data (address, signature) leaves. Where the
keystore comes from:

- deployment: ``--node-config "keystore='/path/node.json' passphrase-file='/path/pass'"``
  (or ``passphrase-env='VAR'``; default variable FLWR_STELLAR_PASSPHRASE);
- simulation (``identity.dev_keystores = true`` and no ``keystore`` key): one keystore per
  partition under ``<output_dir>/keystores/``, encrypted with the documented development
  passphrase ``DEV_PASSPHRASE``. Never use dev keystores for real rewards.
"""

from __future__ import annotations

import contextlib
import threading
from logging import ERROR, WARNING
from pathlib import Path

from flwr.app import ConfigRecord, Context, Error, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.logger import log
from stellar_sdk import Keypair

from flwr_stellar.app.config import AppConfig
from flwr_stellar.identity import keystore
from flwr_stellar.identity.passphrase import DEFAULT_ENV, resolve_passphrase
from flwr_stellar.identity.pseudonym import derive_pseudonym
from flwr_stellar.protocol.digest import CHALLENGE_RECORD, DIGEST_VERSION, Binding, sign_reply

DEV_PASSPHRASE = "flwr-stellar-dev-only"  # documented; simulation keystores only
DEV_KDF = keystore.KdfParams(n=2**14)  # cheaper unlock for many simulated nodes
SIGNING_REFUSED = 4701  # Error.code of a refused instruction

_unlocked: dict[Path, keystore.MasterSecret] = {}
_lock = threading.Lock()


class IdentityUnavailableError(RuntimeError):
    """The node has no usable keystore; the message says what to configure."""


def _dev_keystore(context: Context, cfg: AppConfig) -> Path:
    from flwr_stellar.app.task import node_partition, resolve_output_dir

    pid, _ = node_partition(context)
    path = resolve_output_dir(cfg.output_dir, context.run_id) / "keystores" / f"node-{pid}.json"
    if not path.exists():
        with contextlib.suppress(keystore.KeystoreError):  # another worker may be first
            keystore.save(
                path,
                keystore.MasterSecret.generate(with_mnemonic=False),
                DEV_PASSPHRASE,
                kdf=DEV_KDF,
            )
        log(WARNING, "node %s: created development keystore %s (dev passphrase)", pid, path)
    return path


def node_master(context: Context, cfg: AppConfig) -> keystore.MasterSecret:
    """This node's unlocked master secret (cached per process and keystore)."""
    nc = context.node_config
    if "keystore" in nc:
        path = Path(str(nc["keystore"])).expanduser().resolve()
        pass_file = nc.get("passphrase-file")
        env = str(nc.get("passphrase-env", DEFAULT_ENV))
        passphrase = None
    elif cfg.identity.dev_keystores:
        path, pass_file, env, passphrase = _dev_keystore(context, cfg), None, None, DEV_PASSPHRASE
    else:
        raise IdentityUnavailableError(
            "no keystore: start the SuperNode with --node-config \"keystore='PATH' "
            "passphrase-file='PATH'\" (create one with `flwr-stellar keys new PATH`)"
        )
    with _lock:
        if path not in _unlocked:
            if passphrase is None:
                passphrase = resolve_passphrase(
                    env=env, file=Path(str(pass_file)) if pass_file else None, prompt=False
                )
            _unlocked[path] = keystore.load(path, passphrase)
        return _unlocked[path]


def _refuse(msg: Message, reason: str) -> Message:
    log(
        ERROR,
        "flwr-stellar: refusing %s instruction %s: %s",
        msg.metadata.message_type,
        msg.metadata.message_id,
        reason,
    )
    return Message(Error(code=SIGNING_REFUSED, reason=reason), reply_to=msg)


def _challenge(msg: Message) -> tuple[int, bytes] | str:
    """(server round, nonce) from the instruction, or why it is unusable."""
    record = msg.content.get(CHALLENGE_RECORD)
    if not isinstance(record, ConfigRecord):
        return "instruction carries no server nonce"
    nonce, server_round = record.get("nonce"), record.get("server-round")
    if record.get("version") != DIGEST_VERSION:
        return f"unknown challenge version {record.get('version')!r}"
    if not isinstance(nonce, bytes) or len(nonce) != 32 or not isinstance(server_round, int):
        return "malformed server nonce"
    if record.get("run-id") != str(msg.metadata.run_id):
        return "server nonce is for another run"
    return server_round, nonce


def signing_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Sign train/evaluate replies; refuse un-nonced instructions when identity.strict."""
    if msg.metadata.message_type not in (MessageType.TRAIN, MessageType.EVALUATE):
        return call_next(msg, context)
    cfg = AppConfig.from_run_config(context.run_config)
    if not cfg.identity.enabled:
        return call_next(msg, context)
    challenge = _challenge(msg)
    if isinstance(challenge, str):
        if cfg.identity.strict:
            return _refuse(msg, challenge + " (identity.strict = true)")
        config = msg.content.get("config")
        server_round = config.get("server-round", 0) if isinstance(config, ConfigRecord) else 0
        challenge = (int(server_round), b"")  # type: ignore[arg-type]
    try:
        pseudonym: Keypair = derive_pseudonym(
            node_master(context, cfg), msg.metadata.run_id, cfg.identity.federation
        )
    except (keystore.KeystoreError, IdentityUnavailableError, ValueError) as err:
        return _refuse(msg, f"node identity unavailable: {err}")

    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    binding = Binding(
        run_id=msg.metadata.run_id,
        server_round=challenge[0],
        nonce=challenge[1],
        instruction_id=msg.metadata.message_id,
        message_type=msg.metadata.message_type,
    )
    sign_reply(reply.content, binding, pseudonym)
    return reply


def onboarding_reply(msg: Message, context: Context) -> Message:
    """Co-sign the server's onboarding transaction for this run's pseudonym, or refuse.

    Register it on the ClientApp as ``app.query("onboard")(onboarding_reply)``. A node may
    pin the issuer it accepts coins from with ``--node-config "dlc-issuer='G...'"``.
    """
    from flwr_stellar.protocol.onboarding import OnboardingRefused, cosign

    cfg = AppConfig.from_run_config(context.run_config)
    try:
        pseudonym = derive_pseudonym(
            node_master(context, cfg), msg.metadata.run_id, cfg.identity.federation
        )
        pinned = context.node_config.get("dlc-issuer")
        return cosign(msg, pseudonym, str(pinned) if pinned else None)
    except OnboardingRefused as err:
        return _refuse(msg, f"onboarding refused: {err}")
    except (keystore.KeystoreError, IdentityUnavailableError, ValueError) as err:
        return _refuse(msg, f"node identity unavailable: {err}")
