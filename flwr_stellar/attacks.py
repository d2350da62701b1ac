"""Simulated misbehaving nodes, for experiments and tests.

``attack_mod`` sits outside the signing Mod (``ClientApp(mods=[attack_mod, signing_mod])``),
so it acts on replies that are already signed, as a man in the middle or a cheating node
would. Which nodes misbehave and how comes from the run config (``attack.kind``,
``attack.nodes``).

- ``tamper``: changes one byte of the signed model update (forgery -> bad signature)
- ``replay``: answers with its signed reply of the previous round (replay -> wrong round)
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from flwr_stellar.config import AppConfig

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


ATTACKS: dict[str, Callable[[Message, Message, Context], Message] | None] = {
    "none": None,
    "tamper": _tamper,
    "replay": _replay,
}


def attack_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    reply = call_next(msg, context)
    if msg.metadata.message_type != MessageType.TRAIN or reply.has_error():
        return reply
    attack = AppConfig.from_run_config(context.run_config).attack
    act = ATTACKS[attack.kind]
    if act is None or int(context.node_config.get("partition-id", -1)) not in attack.partitions():
        return reply
    return act(reply, msg, context)
