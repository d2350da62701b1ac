"""ClientApp of the reference app: local training and evaluation on this node's partition.

It uses the plugin exactly as the README shows (the signing Mod, the onboarding handler), plus
three things of its own: a Mod that maps its run config's ``identity.*`` keys onto the node config
the plugin reads, the simulated attackers of ``attack.*``, and the DP Mod ``privacy.*`` names
(Flower's ``fixedclipping_mod`` or ``LocalDpMod``), inside the signing Mod so that the signature
covers the clipped or noised update.
"""

from __future__ import annotations

import copy
import math

import torch
from flwr.app import ArrayRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import LocalDpMod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable

from flwr_stellar import onboarding_reply, signing_mod, without_ledger_records
from flwr_stellar.app.attacks import ATTACKS, RescaledLazy, attack_mod, poison_mod
from flwr_stellar.app.config import AppConfig
from flwr_stellar.app.data import TensorSplit, load_client_data, round_sample
from flwr_stellar.app.models import TrainResult, build_model, evaluate, train
from flwr_stellar.app.task import node_partition, resolve_output_dir


def identity_settings_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """This app's ``identity.*`` run-config keys -> the plugin's node-config keys.

    The plugin never reads a run config; an app that wants its run config to steer the nodes'
    identities says so here. Keys the SuperNode was started with win.
    """
    cfg = AppConfig.from_run_config(context.run_config)
    nc = context.node_config
    nc.setdefault("federation", cfg.identity.federation)
    nc.setdefault("require-challenge", cfg.identity.enabled and cfg.identity.strict)
    nc.setdefault("journal", cfg.identity.receipts)
    if "keystore" not in nc:
        nc.setdefault("dev-keystore", cfg.identity.dev_keystores)
        keystores = resolve_output_dir(cfg.output_dir, context.run_id) / "keystores"
        nc.setdefault("dev-keystore-dir", str(keystores))
    return call_next(msg, context)


clipping_mod = without_ledger_records(fixedclipping_mod)  # it counts the instruction's records


def privacy_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """This app's ``privacy.mode`` on the node: clip (client) or clip and noise (local) the
    training update; nothing for none and server (the server clips)."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)  # Flower's DP mods act on train replies only
    p = AppConfig.from_run_config(context.run_config).privacy
    if p.mode == "client":
        return clipping_mod(msg, context, call_next)
    if p.mode == "local":
        local = LocalDpMod(p.clipping_norm, 2 * p.clipping_norm, p.local_epsilon, p.local_delta)
        return local(msg, context, call_next)
    return call_next(msg, context)


# Order matters: attack_mod wraps the signing Mod (it meddles with signed replies);
# poison_mod runs inside it (a hostile node signs its own poisoned update), and privacy_mod
# inside that: the signature covers the clipped/noised update, and a hostile node poisons its
# update after its DP Mod (an attacker does not clip what it means to push through).
app = ClientApp(mods=[identity_settings_mod, attack_mod, signing_mod, poison_mod, privacy_mod])
app.query("onboard")(onboarding_reply)  # co-signs the sponsored account + DLC trustline


def _setup(msg: Message, context: Context) -> tuple[AppConfig, torch.nn.Module, int, int]:
    torch.set_num_threads(1)  # one core per simulated node; Ray gives each one CPU
    cfg = AppConfig.from_run_config(context.run_config)
    model = build_model(cfg.model.name)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    pid, num_partitions = node_partition(context)
    return cfg, model, pid, num_partitions


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    cfg, model, pid, n = _setup(msg, context)
    local_train, _ = load_client_data(cfg.dataset, cfg.seed, pid, n)
    config = msg.content.config_records["config"]
    server_round = config["server-round"]
    assert isinstance(server_round, int), "Flower sends the round as an int"
    mu = config.get("proximal-mu", 0.0)
    rows = round_sample(
        len(local_train), cfg.dataset.max_train_examples, cfg.seed, pid, server_round
    )
    data = local_train.subset(rows)
    attack = ATTACKS.get(cfg.attack.kind_of(pid))
    seed = cfg.seed * 1_000_003 + pid * 1009 + server_round

    def local_training(model: torch.nn.Module, data: TensorSplit) -> TrainResult:
        return train(
            model,
            data,
            epochs=cfg.train.local_epochs,
            batch_size=cfg.train.batch_size,
            lr=cfg.train.lr,
            momentum=cfg.train.momentum,
            seed=seed,
            proximal_mu=float(mu) if isinstance(mu, int | float) else 0.0,
        )

    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    honest_norm = 0.0
    if isinstance(attack, RescaledLazy):  # the oracle: what its honest update's norm is
        honest = copy.deepcopy(model)
        local_training(honest, data)
        honest_norm = _update_norm(honest, start)
    used = attack.training_data(data, seed) if attack is not None else data
    result = local_training(model, used)
    if isinstance(attack, RescaledLazy):
        _rescale(model, start, honest_norm)
    claim = attack.claim(len(rows), result.num_examples) if attack else result.num_examples
    metrics = MetricRecord(
        {
            "train_loss": result.loss,
            "train_accuracy": result.accuracy,
            "num-examples": claim,
        }
    )
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


def _update_norm(model: torch.nn.Module, start: dict[str, torch.Tensor]) -> float:
    squares = [
        float(((v.double() - start[k].double()) ** 2).sum())
        for k, v in model.state_dict().items()
        if v.is_floating_point()
    ]
    return math.sqrt(sum(squares))


@torch.no_grad()
def _rescale(model: torch.nn.Module, start: dict[str, torch.Tensor], norm: float) -> None:
    """``start + (norm / |update|) x update``, in place (float tensors)."""
    current = _update_norm(model, start)
    if current == 0:
        return
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            value.copy_(start[key] + (norm / current) * (value - start[key]))


@app.evaluate()
def evaluate_fn(msg: Message, context: Context) -> Message:
    cfg, model, pid, n = _setup(msg, context)
    _, local_val = load_client_data(cfg.dataset, cfg.seed, pid, n)
    loss, acc = evaluate(model, local_val, cfg.evaluation.batch_size)
    metrics = MetricRecord({"loss": loss, "accuracy": acc, "num-examples": len(local_val)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
