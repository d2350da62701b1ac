"""Simulated misbehaving nodes, for experiments and tests.

Which nodes misbehave and how comes from the run config: ``attack.nodes`` lists partition
ids, ``attack.kind`` one kind for all of them or one kind per listed node ("nan,signflip").

``attack_mod`` sits outside the signing Mod and acts on replies that are already signed, as
a man in the middle or a cheating node would:

- ``tamper``: changes one byte of the signed model update (forgery -> bad signature)
- ``replay``: answers with its signed reply of the previous round (replay -> wrong round)

``poison_mod`` sits inside the signing Mod: a hostile node signs its poisoned update itself,
so only screening can catch it:

- ``nan``: a NaN in the update; ``signflip``: the update reversed and scaled x10;
  ``freeride``: sends the global model back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from flwr_stellar.app.config import AppConfig

REPLAY_PREFIX = "attack.replay."


def _tamper(reply: Message, msg: Message, context: Context) -> Message:
    for record in reply.content.array_records.values():
        for array in record.values():
            if array.data:
                data = bytearray(array.data)
                data[len(data) // 2] ^= 0x01
                array.data = bytes(data)
                return reply
    return reply


def _replay(reply: Message, msg: Message, context: Context) -> Message:
    state = context.state
    previous = RecordDict(
        {k[len(REPLAY_PREFIX) :]: v for k, v in state.items() if k.startswith(REPLAY_PREFIX)}
    )
    for key in [k for k in state if k.startswith(REPLAY_PREFIX)]:
        del state[key]
    for name, record in reply.content.items():
        state[REPLAY_PREFIX + name] = record
    if len(previous) == 0:
        return reply  # first round: nothing to replay yet, behave honestly
    return Message(content=previous, reply_to=msg)


def _poison(transform: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Attack:
    def act(reply: Message, msg: Message, context: Context) -> Message:
        sent = msg.content.array_records["arrays"]
        record = reply.content.array_records["arrays"]
        poisoned = ArrayRecord()
        for key, array in record.items():
            poisoned[key] = Array(transform(sent[key].numpy(), array.numpy()))
        reply.content["arrays"] = poisoned
        return reply

    return act


def _nan(base: np.ndarray, local: np.ndarray) -> np.ndarray:
    out = local.copy()
    if out.dtype.kind == "f" and out.size:
        out.flat[0] = np.nan
    return out


Attack = Callable[[Message, Message, Context], Message]
TRANSPORT: dict[str, Attack] = {"tamper": _tamper, "replay": _replay}
POISON: dict[str, Attack] = {
    "nan": _poison(_nan),
    "signflip": _poison(lambda base, local: (base - 10 * (local - base)).astype(local.dtype)),
    "freeride": _poison(lambda base, local: base.copy()),
}
ATTACKS = ("none", *TRANSPORT, *POISON)


def _kind_for(context: Context) -> str:
    attack = AppConfig.from_run_config(context.run_config).attack
    return attack.kind_of(int(context.node_config.get("partition-id", -1)))


def _run(
    table: dict[str, Attack], msg: Message, context: Context, call_next: ClientAppCallable
) -> Message:
    reply = call_next(msg, context)
    if msg.metadata.message_type != MessageType.TRAIN or reply.has_error():
        return reply
    act = table.get(_kind_for(context))
    return reply if act is None else act(reply, msg, context)


def attack_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Outside the signing Mod: meddles with signed replies."""
    return _run(TRANSPORT, msg, context, call_next)


def poison_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Inside the signing Mod: the node itself sends (and signs) a hostile update."""
    return _run(POISON, msg, context, call_next)
