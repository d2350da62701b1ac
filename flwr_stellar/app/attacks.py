"""Simulated misbehaving nodes, for experiments and tests.

Which nodes misbehave and how comes from the run config: ``attack.nodes`` lists partition
ids, ``attack.kind`` one kind for all of them or one kind per listed node ("nan,signflip").

``attack_mod`` sits outside the signing Mod and acts on replies that are already signed, as
a man in the middle or a cheating node would:

- ``tamper``: changes one byte of the signed model update (forgery -> bad signature)
- ``replay``: answers with its signed reply of the previous round (replay -> wrong round)

``poison_mod`` sits inside the signing Mod: a hostile node signs its poisoned update itself,
so only screening and scoring can catch it (``u`` = the node's honest update):

- ``nan``: a NaN in the update; ``inflate``: claims 10x the examples it trained on;
- ``signflip``: ``-10 u``; ``signflip1``: ``-u``; ``scale``: ``+10 u`` (boosting);
- ``noise``: Gaussian noise with the spread of an honest update (a random-noise sender);
- ``freeride``: the global model back unchanged; ``deltafree``: replays the last global step
  instead of training (delta-weights free rider, Fraboni et al. 2021);
- ``alie`` (A Little Is Enough, Baruch et al. 2019): colluders send ``mean - z std`` of their
  honest updates, ``z`` from the federation's size and theirs; ``ipm`` (inner-product
  manipulation, Xie et al. 2020): colluders send ``-0.5 x`` their mean. Colluders meet
  through files under ``<output_dir>/attack-channel/`` (a simulation shares one disk),
  waiting a few seconds for each other.

Two kinds change training itself (``client_app``): ``labelflip`` trains on labels ``9 - y``;
``lazy`` trains on a tenth of its examples and claims the usual count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from flwr_stellar.app.config import AppConfig
from flwr_stellar.app.task import resolve_output_dir
from strategies.vectors import flatten, unflatten

REPLAY_PREFIX = "attack.replay."
PREVIOUS_GLOBAL = "attack.previous-global"
COLLUDE_WAIT_S = 5.0
IPM_EPSILON = 0.5


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


def _noise(base: np.ndarray, local: np.ndarray) -> np.ndarray:
    spread = float(np.std(local - base)) if local.size else 0.0
    return (base + np.random.default_rng().normal(0, spread, base.shape)).astype(local.dtype)


def _inflate(reply: Message, msg: Message, context: Context) -> Message:
    for record in reply.content.metric_records.values():
        claimed = record.get("num-examples")
        if isinstance(claimed, int | float):
            record["num-examples"] = 10 * int(claimed)
    return reply


def _delta_free(reply: Message, msg: Message, context: Context) -> Message:
    """Replays the last global step (theta_t + (theta_t - theta_{t-1})); never trains."""
    sent = msg.content.array_records["arrays"]
    previous = context.state.array_records.get(PREVIOUS_GLOBAL)
    context.state[PREVIOUS_GLOBAL] = ArrayRecord(
        {k: Array(v.numpy().copy()) for k, v in sent.items()}
    )
    replayed = ArrayRecord()
    for key, array in sent.items():
        now = array.numpy()
        step = now - previous[key].numpy() if previous is not None else np.zeros_like(now)
        replayed[key] = Array((now + step).astype(now.dtype))
    reply.content["arrays"] = replayed
    return reply


def _colluders(cfg: AppConfig, kind: str) -> list[int]:
    return sorted(p for p in cfg.attack.partitions() if cfg.attack.kind_of(p) == kind)


def _meet(kind: str, msg: Message, context: Context, own: np.ndarray) -> np.ndarray:
    """Publish this colluder's honest update for the round; return all colluders' updates
    that arrived within COLLUDE_WAIT_S (at least its own)."""
    cfg = AppConfig.from_run_config(context.run_config)
    server_round = int(str(msg.content.config_records["config"]["server-round"]))
    channel = (
        resolve_output_dir(cfg.output_dir, context.run_id)
        / "attack-channel"
        / f"{kind}-round-{server_round}"
    )
    channel.mkdir(parents=True, exist_ok=True)
    pid = int(context.node_config.get("partition-id", -1))
    tmp = channel / f".{pid}.npy"
    np.save(tmp, own)
    tmp.rename(channel / f"{pid}.npy")
    expected = {channel / f"{p}.npy" for p in _colluders(cfg, kind)}
    deadline = time.monotonic() + COLLUDE_WAIT_S
    while time.monotonic() < deadline and not all(p.exists() for p in expected):
        time.sleep(0.1)
    found = [np.load(p) for p in sorted(channel.glob("[0-9]*.npy"))]
    return np.stack(found)


def _collude(craft: Callable[[np.ndarray, AppConfig, int], np.ndarray], kind: str) -> Attack:
    def act(reply: Message, msg: Message, context: Context) -> Message:
        sent = msg.content.array_records["arrays"]
        base = flatten(sent, dtype=np.float64)
        own = flatten(reply.content.array_records["arrays"], sent.keys(), np.float64) - base
        updates = _meet(kind, msg, context, own)
        cfg = AppConfig.from_run_config(context.run_config)
        n = int(context.node_config.get("num-partitions", 10))
        reply.content["arrays"] = unflatten(sent, base + craft(updates, cfg, n))
        return reply

    return act


def _alie(updates: np.ndarray, cfg: AppConfig, n: int) -> np.ndarray:
    m = len(_colluders(cfg, "alie"))
    s = n // 2 + 1 - m  # supporters needed among the honest nodes (Baruch et al.)
    z = NormalDist().inv_cdf(min(max((n - s) / n, 0.5), 0.999))
    return updates.mean(axis=0) - z * updates.std(axis=0)


def _ipm(updates: np.ndarray, cfg: AppConfig, n: int) -> np.ndarray:
    return -IPM_EPSILON * updates.mean(axis=0)


Attack = Callable[[Message, Message, Context], Message]
TRANSPORT: dict[str, Attack] = {"tamper": _tamper, "replay": _replay}
POISON: dict[str, Attack] = {
    "nan": _poison(_nan),
    "signflip": _poison(lambda base, local: (base - 10 * (local - base)).astype(local.dtype)),
    "signflip1": _poison(lambda base, local: (base - (local - base)).astype(local.dtype)),
    "scale": _poison(lambda base, local: (base + 10 * (local - base)).astype(local.dtype)),
    "noise": _poison(_noise),
    "freeride": _poison(lambda base, local: base.copy()),
    "deltafree": _delta_free,
    "inflate": _inflate,
    "alie": _collude(_alie, "alie"),
    "ipm": _collude(_ipm, "ipm"),
}
TRAINING = ("labelflip", "lazy")  # client_app trains differently
LAZY_FRACTION = 10
ATTACKS = ("none", *TRANSPORT, *POISON, *TRAINING)


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
