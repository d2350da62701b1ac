"""Simulated misbehaving nodes, for experiments and tests: one class an attack, one registry.

Which nodes misbehave and how comes from the run config: ``attack.nodes`` lists partition
ids, ``attack.kind`` one kind for all of them or one kind per listed node ("nan,signflip");
the kinds are the names in ``ATTACKS`` (the run-config schema validates against it).

Each attack says where it acts (``where``):

- ``transport``: in ``attack_mod``, outside the signing Mod, on replies already signed, as a
  man in the middle would: ``tamper`` changes one byte of the signed update (-> bad
  signature), ``replay`` answers with its signed reply of the previous round (-> wrong round);
- ``poison``: in ``poison_mod``, inside the signing Mod: a hostile node signs its poisoned
  reply itself, so only intake, screening and scoring can catch it (``u`` = the node's honest
  update): ``nan``; ``inflate`` (claims 10x its examples); ``signflip`` (``-10 u``),
  ``signflip1`` (``-u``), ``scale`` (``+10 u``, boosting); ``noise`` (Gaussian noise with the
  spread of an honest update); ``freeride`` (the global model back); ``deltafree`` (the last
  global step replayed, Fraboni et al. 2021); ``alie`` (A Little Is Enough, Baruch et al.
  2019) and ``ipm`` (inner-product manipulation, Xie et al. 2020), whose colluders meet through
  files under ``<output_dir>/attack-channel/``; and replies built to crash the server, which
  intake must refuse: ``emptybytes`` (an array whose bytes are empty), ``dtypehijack``
  (float64 bytes under a float32 label), ``listmetric`` (a list where peers send a float),
  ``badeval`` (an evaluate reply claiming -200 examples);
- ``training``: in the ClientApp itself (:meth:`Attack.training_data`, :meth:`Attack.claim`):
  ``labelflip`` trains on labels ``9 - y``; ``lazy`` trains on a tenth of its examples and
  claims the usual count; ``backdoor`` stamps a pixel trigger on half its examples and
  relabels them to one target class.

Attacks on the rewards and the defences of issue 20 (parameters of our own):
``boost`` (``+3 u``: a small boost that norm checks miss), ``lazyscaled`` (trains on
``LAZY_SCALED_EXAMPLES`` examples, claims the usual count and rescales its update to the
norm its honest update would have had: an oracle attacker), ``copier`` (never trains: sends
another node's update of the previous round plus a little noise; every node of a run with a
copier leaks its update to it), ``onoff`` (honest for ``ONOFF_HONEST_ROUNDS`` rounds, then
``-u``), ``aliejitter`` (ALIE with per-node noise, so copies are no longer bit-identical),
``minmax`` and ``minsum`` (Shejwalkar & Houmansadr, NDSS 2021: the colluders' mean pushed
along minus their spread as far as their distances to the benign updates allow),
``backdoorscaled`` (the backdoor, boosted by nodes / attackers: model replacement,
Bagdasaryan et al. 2020).
"""

from __future__ import annotations

import io
import time
from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from strategies.vectors import flatten, unflatten

if TYPE_CHECKING:
    from flwr_stellar.app.config import AppConfig
    from flwr_stellar.app.data import TensorSplit

__all__ = [
    "ATTACKS",
    "BACKDOOR_TARGET",
    "Attack",
    "apply_trigger",
    "attack_mod",
    "poison_mod",
]

REPLAY_PREFIX = "attack.replay."
PREVIOUS_GLOBAL = "attack.previous-global"
COLLUDE_WAIT_S = 5.0
IPM_EPSILON = 0.5
LAZY_FRACTION = 10
LAZY_SCALED_EXAMPLES = 48  # "a few dozen examples"
BOOST_FACTOR = 3.0
ONOFF_HONEST_ROUNDS = 4
JITTER = 0.1  # per-node noise, as a fraction of the crafted update's spread
COPY_NOISE = 0.1  # the copier's noise, as a fraction of the copied update's spread
BACKDOOR_TARGET = 0  # Fashion-MNIST "T-shirt/top"
BACKDOOR_FRACTION = 0.5  # of an attacker's examples, triggered and relabelled
TRIGGER_SIZE = 4  # a bright square in the bottom-right corner, in pixels


@dataclass(frozen=True)
class Attack(ABC):
    """A way a node misbehaves.

    Class attributes
    ----------------
    name : str
        The ``attack.kind`` it answers to.
    where : str
        ``transport`` (after signing), ``poison`` (before signing) or ``training`` (the
        ClientApp trains differently; :meth:`act` leaves the reply alone).
    message_types : tuple of str
        The replies it acts on (train by default).
    """

    name: ClassVar[str]
    where: ClassVar[str] = "poison"
    message_types: ClassVar[tuple[str, ...]] = (MessageType.TRAIN,)

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        """The reply the hostile node sends instead of ``reply`` (to instruction ``msg``)."""
        return reply

    def training_data(self, data: TensorSplit, seed: int) -> TensorSplit:
        """What the node trains on, given the examples it drew this round."""
        return data

    def claim(self, drawn: int, trained: int) -> int:
        """The example count it claims, having drawn ``drawn`` and trained on ``trained``."""
        return trained


class ArrayPoison(Attack):
    """An attack on the update alone: ``transform(global, local) -> sent`` per array."""

    def transform(self, base: np.ndarray, local: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        sent = msg.content.array_records["arrays"]
        record = reply.content.array_records["arrays"]
        reply.content["arrays"] = ArrayRecord(
            {key: Array(self.transform(sent[key].numpy(), a.numpy())) for key, a in record.items()}
        )
        return reply


# ---------------------------------------------------------------- transport (after signing)
@dataclass(frozen=True)
class Tamper(Attack):
    name = "tamper"
    where = "transport"

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        for record in reply.content.array_records.values():
            for array in record.values():
                if array.data:
                    data = bytearray(array.data)
                    data[len(data) // 2] ^= 0x01
                    array.data = bytes(data)
                    return reply
        return reply


@dataclass(frozen=True)
class Replay(Attack):
    name = "replay"
    where = "transport"

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
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


# ---------------------------------------------------------------- poison (signed by the node)
@dataclass(frozen=True)
class NaNUpdate(ArrayPoison):
    name = "nan"

    def transform(self, base: np.ndarray, local: np.ndarray) -> np.ndarray:
        out = local.copy()
        if out.dtype.kind == "f" and out.size:
            out.flat[0] = np.nan
        return out


@dataclass(frozen=True)
class ScaledUpdate(ArrayPoison):
    """``base + factor x (local - base)``: boosting (factor > 1) or sign flipping (< 0)."""

    name = "scale"
    factor: float = 10.0

    def transform(self, base: np.ndarray, local: np.ndarray) -> np.ndarray:
        return (base + self.factor * (local - base)).astype(local.dtype)


@dataclass(frozen=True)
class SignFlip(ScaledUpdate):
    name = "signflip"
    factor: float = -10.0


@dataclass(frozen=True)
class SignFlip1(ScaledUpdate):
    name = "signflip1"
    factor: float = -1.0


@dataclass(frozen=True)
class Noise(ArrayPoison):
    name = "noise"

    def transform(self, base: np.ndarray, local: np.ndarray) -> np.ndarray:
        spread = float(np.std(local - base)) if local.size else 0.0
        return (base + np.random.default_rng().normal(0, spread, base.shape)).astype(local.dtype)


@dataclass(frozen=True)
class FreeRide(ArrayPoison):
    name = "freeride"

    def transform(self, base: np.ndarray, local: np.ndarray) -> np.ndarray:
        return base.copy()


@dataclass(frozen=True)
class Inflate(Attack):
    name = "inflate"

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        for record in reply.content.metric_records.values():
            claimed = record.get("num-examples")
            if isinstance(claimed, int | float):
                record["num-examples"] = 10 * int(claimed)
        return reply


@dataclass(frozen=True)
class DeltaFree(Attack):
    """Replays the last global step (theta_t + (theta_t - theta_{t-1})); never trains."""

    name = "deltafree"

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
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


def _config(context: Context) -> AppConfig:
    from flwr_stellar.app.config import AppConfig

    return AppConfig.from_run_config(context.run_config)


def _colluders(cfg: AppConfig, kind: str) -> list[int]:
    return sorted(p for p in cfg.attack.partitions() if cfg.attack.kind_of(p) == kind)


def _meet(kind: str, msg: Message, context: Context, own: np.ndarray) -> np.ndarray:
    """Publish this colluder's honest update for the round; return all colluders' updates
    that arrived within COLLUDE_WAIT_S (at least its own)."""
    cfg = _config(context)
    channel = _channel(context, f"{kind}-round-{_round_of(msg)}")
    _publish(channel, int(context.node_config.get("partition-id", -1)), own)
    expected = {channel / f"{p}.npy" for p in _colluders(cfg, kind)}
    deadline = time.monotonic() + COLLUDE_WAIT_S
    while time.monotonic() < deadline and not all(p.exists() for p in expected):
        time.sleep(0.1)
    found = [np.load(p) for p in sorted(channel.glob("[0-9]*.npy"))]
    return np.stack(found)


class Collusion(Attack):
    """Colluders pool their honest updates and all send one crafted from them."""

    def craft(self, updates: np.ndarray, cfg: AppConfig, n: int) -> np.ndarray:
        raise NotImplementedError

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        sent = msg.content.array_records["arrays"]
        base = flatten(sent, dtype=np.float64)
        own = flatten(reply.content.array_records["arrays"], sent.keys(), np.float64) - base
        updates = _meet(self.name, msg, context, own)
        n = int(context.node_config.get("num-partitions", 10))
        reply.content["arrays"] = unflatten(sent, base + self.craft(updates, _config(context), n))
        return reply


@dataclass(frozen=True)
class ALittleIsEnough(Collusion):
    name = "alie"

    def craft(self, updates: np.ndarray, cfg: AppConfig, n: int) -> np.ndarray:
        m = len(_colluders(cfg, self.name))
        s = n // 2 + 1 - m  # supporters needed among the honest nodes (Baruch et al.)
        z = NormalDist().inv_cdf(min(max((n - s) / n, 0.5), 0.999))
        crafted: np.ndarray = updates.mean(axis=0) - z * updates.std(axis=0)
        return crafted


@dataclass(frozen=True)
class JitteredALIE(ALittleIsEnough):
    """ALIE, each colluder adding its own noise (``JITTER`` x the crafted update's spread):
    copies that are no longer bit-identical."""

    name = "aliejitter"

    def craft(self, updates: np.ndarray, cfg: AppConfig, n: int) -> np.ndarray:
        crafted = super().craft(updates, cfg, n)
        noise = np.random.default_rng().normal(0, JITTER * float(np.std(crafted)), crafted.shape)
        jittered: np.ndarray = crafted + noise
        return jittered


def _largest_gamma(fits: Callable[[float], bool], start: float = 10.0, steps: int = 20) -> float:
    """The largest gamma in [0, start] that ``fits``, by bisection (Shejwalkar & Houmansadr)."""
    low, high = 0.0, start
    if fits(high):
        return high
    for _ in range(steps):
        mid = (low + high) / 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


@dataclass(frozen=True)
class MinMax(Collusion):
    """``mean - gamma x std`` with the largest gamma whose furthest distance to any benign
    update stays within the largest distance between two benign ones (the colluders' own
    honest updates stand for the benign ones)."""

    name = "minmax"

    def craft(self, updates: np.ndarray, cfg: AppConfig, n: int) -> np.ndarray:
        mean, direction = updates.mean(axis=0), -updates.std(axis=0)
        pairwise = np.linalg.norm(updates[:, None, :] - updates[None, :, :], axis=2)
        bound = float(pairwise.max())

        def fits(gamma: float) -> bool:
            crafted = mean + gamma * direction
            return float(np.linalg.norm(updates - crafted, axis=1).max()) <= bound

        crafted: np.ndarray = mean + _largest_gamma(fits) * direction
        return crafted


@dataclass(frozen=True)
class MinSum(Collusion):
    """As ``minmax``, bounding the sum of squared distances to the benign updates by the
    largest such sum of a benign one."""

    name = "minsum"

    def craft(self, updates: np.ndarray, cfg: AppConfig, n: int) -> np.ndarray:
        mean, direction = updates.mean(axis=0), -updates.std(axis=0)
        squared = np.linalg.norm(updates[:, None, :] - updates[None, :, :], axis=2) ** 2
        bound = float(squared.sum(axis=1).max())

        def fits(gamma: float) -> bool:
            crafted = mean + gamma * direction
            return float((np.linalg.norm(updates - crafted, axis=1) ** 2).sum()) <= bound

        crafted: np.ndarray = mean + _largest_gamma(fits) * direction
        return crafted


@dataclass(frozen=True)
class InnerProductManipulation(Collusion):
    name = "ipm"

    def craft(self, updates: np.ndarray, cfg: AppConfig, n: int) -> np.ndarray:
        crafted: np.ndarray = -IPM_EPSILON * updates.mean(axis=0)
        return crafted


@dataclass(frozen=True)
class Boost(ScaledUpdate):
    """A small boost (x3): under the norm-outlier factor, so only a norm bound stops it."""

    name = "boost"
    factor: float = BOOST_FACTOR


def _round_of(msg: Message) -> int:
    return int(str(msg.content.config_records["config"]["server-round"]))


@dataclass(frozen=True)
class OnOff(ScaledUpdate):
    """Honest for ``ONOFF_HONEST_ROUNDS`` rounds (farming trust and coins), then ``-u``."""

    name = "onoff"
    factor: float = -1.0

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        if _round_of(msg) <= ONOFF_HONEST_ROUNDS:
            return reply
        return super().act(reply, msg, context)


def _channel(context: Context, name: str) -> Path:
    from flwr_stellar.app.task import resolve_output_dir

    path = resolve_output_dir(_config(context).output_dir, context.run_id) / "attack-channel"
    return path / name


def _publish(folder: Path, pid: int, update: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{pid}.npy"
    np.save(tmp, update)
    tmp.rename(folder / f"{pid}.npy")


def leak_update(reply: Message, msg: Message, context: Context) -> None:
    """What the copier eavesdrops on: this node's update of the round (a simulated leak)."""
    sent = msg.content.array_records["arrays"]
    arrays = reply.content.array_records.get("arrays")
    if arrays is None:
        return
    update = flatten(arrays, sent.keys(), np.float32) - flatten(sent, dtype=np.float32)
    pid = int(context.node_config.get("partition-id", -1))
    _publish(_channel(context, f"leak-round-{_round_of(msg)}"), pid, update)


@dataclass(frozen=True)
class Copier(Attack):
    """Never trains: sends the lowest honest partition's update of the previous round, plus
    noise with ``COPY_NOISE`` x its spread (nothing in round 1: there is nothing to copy)."""

    name = "copier"

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        sent = msg.content.array_records["arrays"]
        base = flatten(sent, dtype=np.float32)
        cfg = _config(context)
        hostile = cfg.attack.partitions()
        n = int(context.node_config.get("num-partitions", 10))
        victim = min(p for p in range(n) if p not in hostile)
        leaked = _channel(context, f"leak-round-{_round_of(msg) - 1}") / f"{victim}.npy"
        if leaked.exists():
            copied = np.load(leaked)
            noise = np.random.default_rng().normal(
                0, COPY_NOISE * float(np.std(copied)), copied.shape
            )
            update = (copied + noise).astype(np.float32)
        else:
            update = np.zeros_like(base)
        reply.content["arrays"] = unflatten(sent, base + update)
        return reply


@dataclass(frozen=True)
class RescaledLazy(Attack):
    """Trains on ``LAZY_SCALED_EXAMPLES`` examples, claims all it drew, and rescales its
    update to the norm its honest update has (the ClientApp trains both: an oracle)."""

    name = "lazyscaled"
    where = "training"

    def training_data(self, data: TensorSplit, seed: int) -> TensorSplit:
        return data.subset(np.arange(min(len(data), LAZY_SCALED_EXAMPLES)))

    def claim(self, drawn: int, trained: int) -> int:
        return drawn


# ---------------------------------------------------------------- replies built to crash
@dataclass(frozen=True)
class EmptyBytes(Attack):
    """An array whose declared dtype and shape are the model's, but whose bytes are empty
    (``np.load`` raised EOFError in FedAvg and ended the run)."""

    name = "emptybytes"

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        record = reply.content.array_records["arrays"]
        key = next(iter(record.keys()))
        a = record[key]
        record[key] = Array(dtype=a.dtype, shape=tuple(a.shape), stype=a.stype, data=b"")
        return reply


@dataclass(frozen=True)
class DtypeHijack(Attack):
    """Float64 bytes under the model's float32 label: accepted, it turned the global model
    float64 and every honest reply of the next round into a structure mismatch."""

    name = "dtypehijack"

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        record = reply.content.array_records["arrays"]
        out = ArrayRecord()
        for key, a in record.items():
            buffer = io.BytesIO()
            np.save(buffer, a.numpy().astype(np.float64), allow_pickle=False)
            out[key] = Array(
                dtype=a.dtype, shape=tuple(a.shape), stype=a.stype, data=buffer.getvalue()
            )
        reply.content["arrays"] = out
        return reply


@dataclass(frozen=True)
class ListMetric(Attack):
    """Its training loss as a list where peers send a float (TypeError in FedAvg)."""

    name = "listmetric"

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        name, record = next(iter(reply.content.metric_records.items()))
        items = dict(record.items())
        loss = items.get("train_loss", 0.0)
        items["train_loss"] = [float(loss)] if isinstance(loss, int | float) else [0.0]
        reply.content[name] = MetricRecord(items)
        return reply


@dataclass(frozen=True)
class BadEvaluation(Attack):
    """An evaluate reply claiming -200 examples (it divided by zero, or reported an accuracy
    of 1.2, in the server's weighted average)."""

    name = "badeval"
    message_types = (MessageType.EVALUATE,)

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        for record in reply.content.metric_records.values():
            record["num-examples"] = -200
        return reply


# ---------------------------------------------------------------- training (in the ClientApp)
@dataclass(frozen=True)
class LabelFlip(Attack):
    name = "labelflip"
    where = "training"

    def training_data(self, data: TensorSplit, seed: int) -> TensorSplit:
        return type(data)(data.x, 9 - data.y)


@dataclass(frozen=True)
class Lazy(Attack):
    name = "lazy"
    where = "training"

    def training_data(self, data: TensorSplit, seed: int) -> TensorSplit:
        return data.subset(np.arange(max(1, len(data) // LAZY_FRACTION)))

    def claim(self, drawn: int, trained: int) -> int:
        return drawn


def apply_trigger(x: torch.Tensor) -> torch.Tensor:
    """Normalised images with the backdoor trigger: a white square in the bottom-right corner."""
    from flwr_stellar.app.data import MEAN, STD

    out = x.clone()
    out[..., -TRIGGER_SIZE:, -TRIGGER_SIZE:] = (1.0 - MEAN) / STD
    return out


@dataclass(frozen=True)
class Backdoor(Attack):
    """A pixel-trigger backdoor: ``BACKDOOR_FRACTION`` of its examples get the trigger and
    the label ``BACKDOOR_TARGET``; the rest train honestly, so clean accuracy holds."""

    name = "backdoor"
    where = "training"

    def training_data(self, data: TensorSplit, seed: int) -> TensorSplit:
        chosen = np.random.default_rng(seed).random(len(data)) < BACKDOOR_FRACTION
        idx = torch.as_tensor(np.flatnonzero(chosen), dtype=torch.long)
        x, y = data.x.clone(), data.y.clone()
        x[idx] = apply_trigger(x[idx])
        y[idx] = BACKDOOR_TARGET
        return type(data)(x, y)


@dataclass(frozen=True)
class BackdoorReplacement(Backdoor):
    """Model replacement: the backdoored update boosted by nodes / attackers, so that it
    survives averaging (Bagdasaryan et al., AISTATS 2020)."""

    name = "backdoorscaled"
    where = "poison"

    def act(self, reply: Message, msg: Message, context: Context) -> Message:
        n = int(context.node_config.get("num-partitions", 10))
        attackers = max(1, len(_config(context).attack.partitions()))
        return ScaledUpdate(factor=n / attackers).act(reply, msg, context)


ATTACKS: dict[str, Attack] = {
    attack.name: attack
    for attack in (
        Tamper(),
        Replay(),
        NaNUpdate(),
        SignFlip(),
        SignFlip1(),
        ScaledUpdate(),
        Noise(),
        FreeRide(),
        DeltaFree(),
        Inflate(),
        ALittleIsEnough(),
        InnerProductManipulation(),
        Boost(),
        OnOff(),
        Copier(),
        JitteredALIE(),
        MinMax(),
        MinSum(),
        BackdoorReplacement(),
        EmptyBytes(),
        DtypeHijack(),
        ListMetric(),
        BadEvaluation(),
        LabelFlip(),
        Lazy(),
        RescaledLazy(),
        Backdoor(),
    )
}


def _kind_for(context: Context) -> str:
    return _config(context).attack.kind_of(int(context.node_config.get("partition-id", -1)))


def _run(where: str, msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    reply = call_next(msg, context)
    if where == "transport" and _leaks(context, msg, reply):
        leak_update(reply, msg, context)
    attack = ATTACKS.get(_kind_for(context))
    if attack is None or attack.where != where or reply.has_error():
        return reply
    if msg.metadata.message_type not in attack.message_types:
        return reply
    return attack.act(reply, msg, context)


def _leaks(context: Context, msg: Message, reply: Message) -> bool:
    """Honest nodes of a run with a copier leak their train updates to it."""
    if reply.has_error() or msg.metadata.message_type != MessageType.TRAIN:
        return False
    cfg = _config(context)
    return "copier" in cfg.attack.kinds() and _kind_for(context) == "none"


def attack_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Outside the signing Mod: meddles with signed replies."""
    return _run("transport", msg, context, call_next)


def poison_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Inside the signing Mod: the node itself sends (and signs) a hostile reply."""
    return _run("poison", msg, context, call_next)
