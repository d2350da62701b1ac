"""The signing Mod: every train/evaluate reply signed by the node's per-run Stellar pseudonym.

Add it to any ClientApp: ``ClientApp(mods=[signing_mod])``. The secret stays on the node: the
keystore is unlocked once per process and only public data (address, signature) leaves. What the
Mod needs to know comes from two places only: the node's ``--node-config`` (see
:mod:`flwr_stellar.client.identity`) and the records the server attaches to the instruction
(the challenge, with its nonce and strict flag). The app's run config is never read.
"""

from __future__ import annotations

from logging import ERROR, WARNING

from flwr.app import Context, Error, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.logger import log

from flwr_stellar.client.identity import IdentityUnavailableError, NodeSettings
from flwr_stellar.identity import keystore
from flwr_stellar.protocol.challenge import CHALLENGE_RECORD, Challenge
from flwr_stellar.protocol.digest import Binding
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.signature import sign_reply
from flwr_stellar.protocol.text import printable_note

SIGNING_REFUSED = 4701  # Error.code of a refused instruction
REASON_LIMIT = 400  # characters of a refusal reason (it may quote the server's fields)
IDENTITY_ERRORS = (keystore.KeystoreError, IdentityUnavailableError, ValueError)


def refuse(msg: Message, reason: str) -> Message:
    """An error reply (never a crash) that tells the server why the node will not answer.

    The reason often quotes what the server sent, so it is made one printable line of at
    most ``REASON_LIMIT`` characters before it reaches the node's log or the reply.
    """
    reason = printable_note(reason, REASON_LIMIT)
    log(
        ERROR,
        "flwr-stellar: refusing %s instruction %s: %s",
        msg.metadata.message_type,
        msg.metadata.message_id,
        reason,
    )
    return Message(Error(code=SIGNING_REFUSED, reason=reason), reply_to=msg)


def signing_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Sign train/evaluate replies with this run's pseudonym.

    Parameters
    ----------
    msg : Message
        The server's instruction. Signing happens only when it carries the server's challenge;
        other message types pass through untouched.
    context : Context
        The node's context; its ``node_config`` says where the keystore is.
    call_next : ClientAppCallable
        The rest of the ClientApp (the user's handler and inner Mods).

    Returns
    -------
    Message
        The handler's reply with a signature record added, or an error reply when the
        challenge is malformed or for another run, or when the node cannot sign and the
        server is strict. Without a challenge the reply passes through unsigned, unless the
        node config sets ``require-challenge=true``.
    """
    if msg.metadata.message_type not in (MessageType.TRAIN, MessageType.EVALUATE):
        return call_next(msg, context)
    try:
        settings = NodeSettings.from_node_config(context.node_config, context.node_id)
    except IdentityUnavailableError as err:
        return refuse(msg, f"node identity unavailable: {err}")
    if CHALLENGE_RECORD not in msg.content:
        if settings.require_challenge:
            return refuse(msg, "instruction carries no server nonce (require-challenge=true)")
        return call_next(msg, context)  # a server without flwr-stellar: nothing to sign for
    try:
        challenge = Challenge.from_record(msg.content[CHALLENGE_RECORD])
    except RecordError as err:
        return refuse(msg, str(err))
    if challenge.run_id != msg.metadata.run_id:
        return refuse(msg, "server nonce is for another run")
    try:
        pseudonym = settings.pseudonym(msg.metadata.run_id)
    except IDENTITY_ERRORS as err:
        if challenge.strict:
            return refuse(msg, f"node identity unavailable: {err}")
        log(WARNING, "flwr-stellar: replying unsigned (server not strict): %s", err)
        return call_next(msg, context)

    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    binding = Binding(
        run_id=msg.metadata.run_id,
        server_round=challenge.server_round,
        nonce=challenge.nonce,
        instruction_id=msg.metadata.message_id,
        message_type=msg.metadata.message_type,
    )
    sign_reply(reply.content, binding, pseudonym)
    return reply
