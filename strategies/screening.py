"""Screening: small checks that keep broken or hostile updates away from the inner strategy.

Each check looks at one verified reply (or at the round's replies together) and either passes
it or names a reason code. They run after signature verification and before aggregation, so
the inner strategy (FedAvg, Krum, ...) only ever sees well-formed, plausible updates, and one
malformed reply cannot raise inside it. Checks that compare against the round (norm outlier,
cosine to the median update) need at least ``min_peers`` candidates; with fewer they pass.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord

from flwr_stellar.app.config import ScreeningConfig
from flwr_stellar.protocol.digest import SIGNATURE_RECORD, array_record_hash

WEIGHT_KEY = "num-examples"
DATASET_BOUND = 60_000  # no node holds more training examples than the whole training set


class Reject(StrEnum):
    MALFORMED = "malformed-content"  # not exactly one ArrayRecord + one MetricRecord
    NUM_EXAMPLES = "implausible-num-examples"
    STRUCTURE = "structure-mismatch"  # names, shapes or dtypes differ from the global model
    NON_FINITE = "non-finite"
    NORM = "norm-too-large"  # absolute bound
    NORM_OUTLIER = "norm-outlier"  # relative to the round's median norm
    COSINE = "cosine-too-low"  # direction disagrees with the median update
    FREE_RIDER = "free-rider"  # (almost) no change to the global model
    DUPLICATE = "duplicate-update"  # bit-identical to another reply this round


@dataclass
class Candidate:
    """A verified reply and what screening learned about it."""

    node: int
    pseudonym: str
    reply: Message
    num_examples: int = 0
    update_hash: str = ""
    update: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Screened:
    accepted: list[Candidate]
    rejected: list[tuple[Candidate, Reject, str]]


def _flatten(record: ArrayRecord) -> np.ndarray:
    return np.concatenate([a.numpy().ravel().astype(np.float64) for a in record.values()])


def _content(reply: Message, array_key: str) -> tuple[ArrayRecord, MetricRecord] | str:
    arrays = reply.content.array_records
    metrics = reply.content.metric_records
    configs = [k for k in reply.content.config_records if k != SIGNATURE_RECORD]
    if len(arrays) != 1 or len(metrics) != 1 or configs:
        return (
            f"{len(arrays)} ArrayRecord(s), {len(metrics)} MetricRecord(s), "
            f"extra ConfigRecord(s) {configs}; expected exactly one of each, no extras"
        )
    if array_key not in arrays:
        return f"ArrayRecord named {next(iter(arrays))!r}, expected {array_key!r}"
    return arrays[array_key], next(iter(metrics.values()))


def _metric_shape(reply: Message) -> tuple[str, tuple[str, ...]]:
    name, record = next(iter(reply.content.metric_records.items()))
    return name, tuple(sorted(record.keys()))


def _structure_error(record: ArrayRecord, reference: ArrayRecord) -> str | None:
    if list(record.keys()) != list(reference.keys()):
        return "array names differ from the global model's"
    for key, ref in reference.items():
        got = record[key]
        if tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
            return f"{key}: {got.dtype}{list(got.shape)} != {ref.dtype}{list(ref.shape)}"
    return None


def _check_one(
    c: Candidate, base: np.ndarray, global_arrays: ArrayRecord, cfg: ScreeningConfig, array_key: str
) -> tuple[Reject, str] | None:
    """Per-reply checks; sets ``c.update`` and returns (reason, detail) on rejection."""
    content = _content(c.reply, array_key)
    if isinstance(content, str):
        return Reject.MALFORMED, content
    arrays, metrics = content
    for key, value in metrics.items():
        values = value if isinstance(value, list) else [value]
        if not all(np.isfinite(v) for v in values):
            return Reject.NON_FINITE, f"metric {key!r} is not finite"
    n = metrics.get(WEIGHT_KEY)
    limit = cfg.max_num_examples or DATASET_BOUND
    if not isinstance(n, int | float) or not 1 <= n <= limit or n != int(n):
        return Reject.NUM_EXAMPLES, f"{WEIGHT_KEY}={n!r}, expected an integer in [1, {limit}]"
    c.num_examples = int(n)
    problem = _structure_error(arrays, global_arrays)
    if problem:
        return Reject.STRUCTURE, problem
    try:
        flat = _flatten(arrays)
    except (ValueError, TypeError) as err:
        return Reject.STRUCTURE, f"arrays do not decode: {err}"
    if not np.isfinite(flat).all():
        return Reject.NON_FINITE, f"{int((~np.isfinite(flat)).sum())} NaN/inf values"
    c.update = flat - base
    c.update_hash = array_record_hash(arrays)
    norm = float(np.linalg.norm(c.update))
    if cfg.max_norm > 0 and norm > cfg.max_norm:
        return Reject.NORM, f"update norm {norm:.4g} > max_norm {cfg.max_norm:.4g}"
    if norm == 0.0:
        return Reject.FREE_RIDER, "update identical to the global model"
    return None


def screen(
    candidates: list[Candidate],
    global_arrays: ArrayRecord,
    cfg: ScreeningConfig,
    array_key: str = "arrays",
) -> Screened:
    """Split verified replies into accepted and rejected (with a reason code and detail)."""
    if not cfg.enabled:
        for c in candidates:
            content = _content(c.reply, array_key)
            if not isinstance(content, str):
                n = content[1].get(WEIGHT_KEY, 0)
                c.num_examples = int(n) if isinstance(n, int | float) else 0
                c.update_hash = array_record_hash(content[0])
        return Screened(list(candidates), [])
    base = _flatten(global_arrays)
    rejected: list[tuple[Candidate, Reject, str]] = []
    alive: list[Candidate] = []
    for c in candidates:
        verdict = _check_one(c, base, global_arrays, cfg, array_key)
        if verdict is None:
            alive.append(c)
        else:
            rejected.append((c, verdict[0], verdict[1]))

    # Aggregators need every reply's MetricRecord to have the same name and keys: keep the
    # most common shape (ties: the smallest), so a deviant reply cannot make them raise.
    shapes = Counter(_metric_shape(c.reply) for c in alive)
    if len(shapes) > 1:
        usual = min(shapes, key=lambda shape: (-shapes[shape], shape))
        for c in alive:
            if _metric_shape(c.reply) != usual:
                rejected.append(
                    (c, Reject.MALFORMED, f"metrics {_metric_shape(c.reply)} != {usual}")
                )
        alive = [c for c in alive if _metric_shape(c.reply) == usual]

    by_hash: dict[str, list[Candidate]] = defaultdict(list)
    for c in alive:
        by_hash[c.update_hash].append(c)
    copies = {id(c) for group in by_hash.values() if len(group) > 1 for c in group}
    for c in alive:
        if id(c) in copies:
            rejected.append((c, Reject.DUPLICATE, "bit-identical to another reply this round"))
    alive = [c for c in alive if id(c) not in copies]

    if len(alive) >= cfg.min_peers:
        updates = np.stack([c.update for c in alive])  # type: ignore[arg-type]
        norms = np.linalg.norm(updates, axis=1)
        median_norm = float(np.median(norms))
        median_update = np.median(updates, axis=0)
        median_update_norm = float(np.linalg.norm(median_update))
        keep: list[Candidate] = []
        for c, norm in zip(alive, norms, strict=True):
            reason = _relative_verdict(
                c, float(norm), median_norm, median_update, median_update_norm, cfg
            )
            if reason is None:
                keep.append(c)
            else:
                rejected.append((c, reason[0], reason[1]))
        alive = keep
    for c in candidates:
        c.update = None  # free the round's vectors early
    return Screened(alive, rejected)


def _relative_verdict(
    c: Candidate,
    norm: float,
    median_norm: float,
    median_update: np.ndarray,
    median_update_norm: float,
    cfg: ScreeningConfig,
) -> tuple[Reject, str] | None:
    if cfg.norm_factor > 0 and norm > cfg.norm_factor * median_norm:
        return Reject.NORM_OUTLIER, (
            f"update norm {norm:.4g} > {cfg.norm_factor:g} x round median {median_norm:.4g}"
        )
    if norm < cfg.min_relative_norm * median_norm:
        return Reject.FREE_RIDER, (
            f"update norm {norm:.3g} < {cfg.min_relative_norm:g} x round median {median_norm:.4g}"
        )
    if cfg.min_cosine > -1 and median_update_norm > 0:
        cosine = float(np.dot(c.update, median_update) / (norm * median_update_norm))  # type: ignore[arg-type]
        if cosine < cfg.min_cosine:
            return Reject.COSINE, f"cosine to the median update {cosine:.3f} < {cfg.min_cosine:g}"
    return None
