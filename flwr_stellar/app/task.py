"""Glue between Flower's Context / records and the data, model and training code."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from logging import INFO
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Context, MetricRecord
from flwr.common.logger import log

from flwr_stellar.app.config import AppConfig
from flwr_stellar.app.data import TensorSplit, load_server_data
from flwr_stellar.app.models import build_model, evaluate
from flwr_stellar.files import write_atomic
from flwr_stellar.reasons import RoundVerdicts


def node_partition(context: Context) -> tuple[int, int]:
    """(partition-id, num-partitions) from the node config, with a fix-it message."""
    try:
        return int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    except KeyError as err:
        raise ValueError(
            f"node config lacks {err.args[0]!r}: start the SuperNode with "
            "--node-config 'partition-id=<i> num-partitions=<n>'"
        ) from None


def resolve_output_dir(output_dir: str, run_id: int) -> Path:
    path = Path(output_dir) if output_dir else Path("outputs") / f"run-{run_id}"
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json_atomic(path: Path, payload: Any) -> None:
    """Readers never see a half-written file, even if the process dies mid-write."""
    write_atomic(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


@dataclass
class RoundLog:
    """Per-round metrics, rewritten to metrics.json after every round so nothing is lost."""

    path: Path
    run_id: int
    config: Mapping[str, Any]
    started: float = field(default_factory=time.perf_counter)
    rounds: dict[int, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, server_round: int, values: Mapping[str, float]) -> None:
        row = self.rounds.setdefault(server_round, {})
        row.update(values)
        row["elapsed_s"] = round(time.perf_counter() - self.started, 3)
        self.flush()

    def flush(self, **extra: Any) -> None:
        write_json_atomic(
            self.path,
            {
                "run_id": self.run_id,
                "config": dict(self.config),
                "rounds": [{"round": r, **v} for r, v in sorted(self.rounds.items())],
                **self.extra,
                **extra,
            },
        )


ASR_EXAMPLES = 2000  # triggered test images the attack success rate is measured on


class CentralEvaluator:
    """Evaluates the global model on the 10k test set (never used for training), and the
    backdoor's attack success rate: the share of triggered test images of other classes that
    the model sends to the backdoor's target class (measured in every run, so a clean run
    gives the baseline)."""

    def __init__(self, cfg: AppConfig, round_log: RoundLog) -> None:
        from flwr_stellar.app.attacks import BACKDOOR_TARGET, apply_trigger

        _, self.test = load_server_data(cfg.dataset, cfg.seed)
        others = np.flatnonzero(self.test.y.numpy() != BACKDOOR_TARGET)[:ASR_EXAMPLES]
        triggered = self.test.subset(others)
        self.triggered = TensorSplit(apply_trigger(triggered.x), triggered.y)
        self.target = BACKDOOR_TARGET
        self.cfg = cfg
        self.round_log = round_log
        self.model = build_model(cfg.model.name)

    @torch.no_grad()
    def attack_success_rate(self) -> float:
        self.model.eval()
        hits = 0
        batch = self.cfg.evaluation.batch_size
        for start in range(0, len(self.triggered), batch):
            logits = self.model(self.triggered.x[start : start + batch])
            hits += int((logits.argmax(1) == self.target).sum())
        return hits / max(1, len(self.triggered))

    def __call__(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        self.model.load_state_dict(arrays.to_torch_state_dict())
        loss, acc = evaluate(self.model, self.test, self.cfg.evaluation.batch_size)
        asr = self.attack_success_rate()
        self.round_log.record(
            server_round,
            {"central_loss": loss, "central_accuracy": acc, "attack_success_rate": asr},
        )
        log(
            INFO,
            "round %d/%d: central accuracy %.4f, loss %.4f, backdoor success %.3f (%.1f s elapsed)",
            server_round,
            self.cfg.num_rounds,
            acc,
            loss,
            asr,
            self.round_log.rounds[server_round]["elapsed_s"],
        )
        return MetricRecord({"accuracy": acc, "loss": loss, "attack_success_rate": asr})


class ServerValidation:
    """Minus the cross-entropy of a candidate model on (part of) the server's validation split:
    what value scorers price updates with (the first ``examples``, default
    ``reward.validation_examples``; 0 = all). One model instance, reused for every call."""

    def __init__(self, cfg: AppConfig, examples: int | None = None) -> None:
        val, _ = load_server_data(cfg.dataset, cfg.seed)
        n = cfg.reward.validation_examples if examples is None else examples
        self.data = val if n <= 0 or n >= len(val) else val.subset(np.arange(n))
        self.model = build_model(cfg.model.name)
        self.batch_size = cfg.evaluation.batch_size
        self.calls = 0

    def __call__(self, arrays: ArrayRecord) -> float:
        self.model.load_state_dict(arrays.to_torch_state_dict())
        loss, _ = evaluate(self.model, self.data, self.batch_size)
        self.calls += 1
        return -loss

    def gradient(self, arrays: ArrayRecord) -> ArrayRecord:
        """The gradient of the utility (minus the mean cross-entropy) at ``arrays``."""
        self.model.load_state_dict(arrays.to_torch_state_dict())
        self.model.eval()
        self.model.zero_grad()
        for start in range(0, len(self.data), self.batch_size):
            x = self.data.x[start : start + self.batch_size]
            y = self.data.y[start : start + self.batch_size]
            loss = torch.nn.functional.cross_entropy(self.model(x), y, reduction="sum")
            (-loss / len(self.data)).backward()
        self.calls += 1
        params = dict(self.model.named_parameters())
        return ArrayRecord(
            {
                key: Array(
                    params[key].grad.detach().numpy().copy()  # type: ignore[union-attr]
                    if key in params and params[key].grad is not None
                    else np.zeros_like(value.numpy())
                )
                for key, value in arrays.items()
            }
        )


def record_verdicts(round_log: RoundLog, strategy: object) -> None:
    """Per round: which pseudonym each node used, and every rejection with its reason (from
    the outermost plugin wrapper that keeps ``verdicts``)."""
    found: dict[tuple[int, str], RoundVerdicts] = getattr(strategy, "verdicts", {})
    verdicts: dict[str, dict[str, Any]] = {}
    for (server_round, kind), v in sorted(found.items()):
        verdicts.setdefault(str(server_round), {})[kind] = {
            "accepted": {str(node): pseudonym for node, pseudonym in v.accepted.items()},
            "rejected": [
                {"node": r.node, "reason": str(r.reason), "detail": r.detail} for r in v.rejected
            ],
        }
    round_log.extra["verification"] = verdicts


def pseudonym_roles(cfg: AppConfig, out: Path, run_id: int) -> dict[str, str]:
    """Pseudonym -> "attacker" | "honest" for simulated nodes with dev keystores in ``out``.

    Only the app knows which partitions it made hostile; reports use this to split the coins.
    """
    from flwr_stellar.client.identity import DEV_PASSPHRASE
    from flwr_stellar.identity import derive_pseudonym, keystore

    roles: dict[str, str] = {}
    hostile = cfg.attack.partitions() if cfg.attack.kind != "none" else frozenset()
    for path in sorted((out / "keystores").glob("node-*.json")):
        try:
            partition = int(path.stem.removeprefix("node-"))
            master = keystore.load(path, DEV_PASSPHRASE)
        except (ValueError, keystore.KeystoreError):
            continue
        pseudonym = derive_pseudonym(master, run_id, cfg.identity.federation).public_key
        roles[pseudonym] = "attacker" if partition in hostile else "honest"
    return roles


def save_model(arrays: ArrayRecord, path: Path) -> None:
    torch.save(arrays.to_torch_state_dict(), path)
