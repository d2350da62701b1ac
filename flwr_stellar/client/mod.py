"""The signing Mod: every train/evaluate reply signed by the node's per-run Stellar pseudonym.

Add it to any ClientApp: ``ClientApp(mods=[signing_mod])``. The secret stays on the node: the
keystore is unlocked once per process and only public data (address, signature) leaves. What the
Mod needs to know comes from two places only: the node's ``--node-config`` (see
:mod:`flwr_stellar.client.identity`) and the records the server attaches to the instruction
(the challenge, with its nonce and strict flag; the run's signed terms; receipts for earlier
rounds). The app's run config is never read.

The Mod also keeps the node's journal (:mod:`flwr_stellar.client.journal`): the terms it
accepted, each training reply it signed (written before the reply leaves) and every receipt,
and it answers the server's end-of-run delivery of receipts itself, without calling the app.
"""

from __future__ import annotations

from logging import ERROR, WARNING

from flwr.app import ConfigRecord, Context, Error, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.logger import log

from flwr_stellar.client.evidence import accept_receipts, accept_terms, sent_entry
from flwr_stellar.client.identity import IdentityUnavailableError, NodeSettings
from flwr_stellar.identity import keystore
from flwr_stellar.protocol.challenge import CHALLENGE_RECORD, Challenge
from flwr_stellar.protocol.digest import Binding
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.receipts import DELIVERY_RECORD, RECEIPTS_RECORD
from flwr_stellar.protocol.signature import sign_reply
from flwr_stellar.protocol.terms import TERMS_RECORD
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
    run_id = msg.metadata.run_id
    if DELIVERY_RECORD in msg.content and msg.metadata.message_type == MessageType.TRAIN:
        return _delivery(msg, settings, run_id)
    if CHALLENGE_RECORD not in msg.content:
        if settings.require_challenge:
            return refuse(msg, "instruction carries no server nonce (require-challenge=true)")
        return call_next(msg, context)  # a server without flwr-stellar: nothing to sign for
    try:
        challenge = Challenge.from_record(msg.content[CHALLENGE_RECORD])
    except RecordError as err:
        return refuse(msg, str(err))
    if challenge.run_id != run_id:
        return refuse(msg, "server nonce is for another run")
    if challenge.terms and TERMS_RECORD not in msg.content:
        return refuse(msg, "the challenge announces terms the instruction does not carry")
    try:
        pseudonym = settings.pseudonym(run_id)
        journal = settings.journal()
    except IDENTITY_ERRORS as err:
        if challenge.strict:
            return refuse(msg, f"node identity unavailable: {err}")
        log(WARNING, "flwr-stellar: replying unsigned (server not strict): %s", err)
        return call_next(msg, context)
    try:
        if challenge.terms:
            accept_terms(journal, msg.content[TERMS_RECORD], challenge, run_id, settings.dlc_issuer)
        elif journal is not None and journal.terms(run_id) is not None:
            return refuse(msg, f"run {run_id} has signed terms; this instruction names none")
        if RECEIPTS_RECORD in msg.content and journal is not None:
            _, refused = accept_receipts(journal, msg.content[RECEIPTS_RECORD], run_id)
            _log_refused(refused)
    except RecordError as err:
        return refuse(msg, str(err))
    except OSError as err:
        return refuse(msg, f"cannot write the node's journal: {err}")

    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    binding = Binding(
        run_id=run_id,
        server_round=challenge.server_round,
        nonce=challenge.nonce,
        instruction_id=msg.metadata.message_id,
        message_type=msg.metadata.message_type,
        terms=challenge.terms,
    )
    digest, signature = sign_reply(reply.content, binding, pseudonym)
    if msg.metadata.message_type == MessageType.TRAIN and journal is not None:
        entry = sent_entry(
            run_id=run_id,
            server_round=challenge.server_round,
            instruction_id=msg.metadata.message_id,
            pseudonym=pseudonym.public_key,
            federation=settings.federation,
            digest=digest,
            signature=signature,
            terms=challenge.terms,
            num_examples=_claim(reply),
        )
        try:
            journal.append(entry)  # before the reply leaves: what was sent is never unrecorded
        except OSError as err:
            return refuse(msg, f"cannot write the node's journal: {err}")
    return reply


def _delivery(msg: Message, settings: NodeSettings, run_id: int) -> Message:
    """Answer the server's end-of-run delivery of receipts: journal them, acknowledge."""
    try:
        journal = settings.journal()
        count, refused = (
            accept_receipts(journal, msg.content.get(RECEIPTS_RECORD), run_id)
            if journal is not None
            else (0, [])
        )
        _log_refused(refused)
    except RecordError as err:
        return refuse(msg, str(err))
    except (*IDENTITY_ERRORS, OSError) as err:
        return refuse(msg, f"cannot write the node's journal: {err}")
    ack = ConfigRecord({"version": 1, "journaled": count, "refused": len(refused)})
    return Message(RecordDict({DELIVERY_RECORD: ack}), reply_to=msg)


def _log_refused(refused: list[str]) -> None:
    for reason in refused:
        log(WARNING, "flwr-stellar: %s", printable_note(reason, REASON_LIMIT))


def _claim(reply: Message) -> int:
    """The ``num-examples`` the reply claims (0 when it names none): journaled, so a node can
    see whether the server cut its claim down."""
    for record in reply.content.metric_records.values():
        value = record.get("num-examples")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return int(value) if float(value).is_integer() else 0
    return 0
