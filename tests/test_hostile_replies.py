"""A hostile-reply corpus through the full LedgerStrategy, on real rounds, train and evaluate.

Every payload is sent by one node, signed by it with the real Mod (or changed after signing
where the signature itself is the attack), beside four honest nodes, in both arrival orders.
For each: nothing raises, the hostile reply is rejected with its reason, the honest replies
are accepted, FedAvg's model (or metrics) is exactly the honest replies' aggregate, and every
honest node is paid exactly what it was paid in the round without the hostile one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.task_identity import TaskIdentity
from helpers import RUN_ID, instruction, node_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

from flwr_stellar import (
    IntakeSettings,
    LedgerConfig,
    LedgerStrategy,
    RewardSettings,
    Screening,
    default_checks,
)
from flwr_stellar.client.mod import signing_mod
from flwr_stellar.client.onboarding import onboarding_reply
from flwr_stellar.protocol.challenge import CHALLENGE_RECORD
from flwr_stellar.protocol.digest import DIGEST_VERSION, SIGNATURE_RECORD
from flwr_stellar.protocol.terms import TERMS_RECORD
from flwr_stellar.reasons import Reason

HONEST = (0, 1, 2, 3)  # partitions; node id = 100 + partition
HOSTILE = 4
GLOBAL = ArrayRecord(
    {
        "w": Array(np.linspace(-1, 1, 6).astype(np.float32)),
        "b": Array(np.zeros(3, np.float32)),
        "m": Array(np.ones((1, 3), np.float32)),  # a size-1 dimension, as in Linear(d, 1)
    }
)
TRAIN_METRICS = ("train_loss", "num-examples")
EVALUATE_METRICS = ("loss", "accuracy", "num-examples")
Transform = Callable[[Message], Message]


# ------------------------------------------------------------------ the honest node
def honest_train(msg: Message, context) -> Message:  # type: ignore[no-untyped-def]
    pid = context.node_config["partition-id"]
    rng = np.random.default_rng([pid, int(msg.content[CHALLENGE_RECORD]["server-round"])])
    arrays = msg.content["arrays"]
    out = {}
    for key in arrays:
        base = arrays[key].numpy()
        out[key] = (base + 0.05 * (1 + 0.3 * rng.normal(size=base.shape))).astype(np.float32)
    metrics = MetricRecord({"train_loss": 0.5 + 0.1 * pid, "num-examples": 10 * (pid + 1)})
    content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in out.items()})})
    content["metrics"] = metrics
    return Message(content, reply_to=msg)


def honest_evaluate(msg: Message, context) -> Message:  # type: ignore[no-untyped-def]
    pid = context.node_config["partition-id"]
    metrics = {"loss": 0.3 + 0.1 * pid, "accuracy": 0.5 + 0.1 * pid, "num-examples": 5 + pid}
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


# ------------------------------------------------------------------ building payloads
def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def raw(data: bytes, dtype: str = "float32", shape=(6,), stype: str = "numpy.ndarray") -> Array:
    return Array(dtype=dtype, shape=tuple(shape), stype=stype, data=data)


def w_values(reply: Message) -> np.ndarray:
    return reply.content["arrays"]["w"].numpy()


def set_w(make: Callable[[Message], Array], key: str = "w") -> Transform:
    def transform(reply: Message) -> Message:
        arrays = dict(reply.content["arrays"].items())
        arrays[key] = make(reply)
        reply.content["arrays"] = ArrayRecord(arrays)
        return reply

    return transform


def header_text(text: bytes, version: bytes = b"\x01\x00") -> bytes:
    """A .npy header around ``text``, padded to 64 bytes as numpy pads."""
    size = 4 if version != b"\x01\x00" else 2
    text += b" " * ((-(len(text) + 1 + 8 + size)) % 64) + b"\n"
    return b"\x93NUMPY" + version + len(text).to_bytes(size, "little") + text


def set_arrays(make: Callable[[Message], dict[str, Array]]) -> Transform:
    def transform(reply: Message) -> Message:
        reply.content["arrays"] = ArrayRecord(make(reply))
        return reply

    return transform


def set_metric(key: str, value: object = None, record: str = "metrics") -> Transform:
    def transform(reply: Message) -> Message:
        items = dict(reply.content[record].items())
        if value is None:
            items.pop(key, None)
        else:
            items[key] = value
        reply.content[record] = MetricRecord(items)
        return reply

    return transform


def add_record(name: str, record: object) -> Transform:
    def transform(reply: Message) -> Message:
        reply.content[name] = record
        return reply

    return transform


def drop_record(name: str) -> Transform:
    def transform(reply: Message) -> Message:
        del reply.content[name]
        return reply

    return transform


def rename_record(old: str, new: str) -> Transform:
    def transform(reply: Message) -> Message:
        reply.content[new] = reply.content[old]
        del reply.content[old]
        return reply

    return transform


def error_reply(reply: Message) -> Message:
    """Marks the payload whose app answers with an Error instead of content (see deliver)."""
    return reply


def signature_field(key: str, value: object) -> Transform:
    def transform(reply: Message) -> Message:
        items = dict(reply.content[SIGNATURE_RECORD].items())
        items[key] = value
        reply.content[SIGNATURE_RECORD] = ConfigRecord(items)
        return reply

    return transform


@dataclass(frozen=True)
class Payload:
    """One hostile reply: what the node's app sends (signed by the Mod), what is changed
    after signing, and the reason the server must give."""

    name: str
    reason: str
    before_signing: Transform | None = None
    after_signing: Transform | None = None
    kind: str = "train"


def f64(reply: Message) -> Array:
    return raw(npy(w_values(reply).astype(np.float64)))  # declared float32, bytes float64


def big_endian(reply: Message) -> Array:
    return raw(npy(w_values(reply).astype(">f4")))


def swapped(reply: Message) -> dict[str, Array]:
    arrays = reply.content["arrays"]
    return {"b": arrays["b"], "w": arrays["w"], "m": arrays["m"]}


def w_bytes(reply: Message) -> bytes:
    return w_values(reply).tobytes()


def poke(index: int, value: float) -> Callable[[Message], Array]:
    def make(reply: Message) -> Array:
        w = w_values(reply).copy()
        w[index] = value
        return Array(w)

    return make


def zip_bytes(reply: Message) -> Array:
    buffer = io.BytesIO()
    np.savez(buffer, w=w_values(reply))
    return raw(buffer.getvalue())


def bad_header_text(reply: Message) -> Array:
    text = b"{'descr': __import__('os').getcwd(), 'fortran_order': False, 'shape': (6,), }"
    text += b" " * (63 - len(text) % 64) + b"\n"
    return raw(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + b"\0" * 24)


R = Reason
TRAIN_PAYLOADS = [
    # arrays whose bytes do not back what they declare
    Payload("empty-bytes", R.MALFORMED_ARRAY, set_w(lambda r: raw(b""))),
    Payload("header-only-1e12", R.STRUCTURE, set_w(lambda r: raw(header((10**12,))))),
    Payload(
        "declared-and-header-1e12",
        R.STRUCTURE,
        set_w(lambda r: raw(header((10**12,)), shape=(10**12,))),
    ),
    Payload("zip-bytes", R.MALFORMED_ARRAY, set_w(zip_bytes)),
    Payload(
        "declared-shape-disagrees",
        R.STRUCTURE,
        set_w(lambda r: raw(npy(w_values(r)), shape=(3,))),
    ),
    Payload("dtype-hijack-f64-bytes", R.STRUCTURE, set_w(f64)),
    Payload("honest-float64", R.STRUCTURE, set_w(lambda r: Array(w_values(r).astype("f8")))),
    Payload("stype-torch", R.STRUCTURE, set_w(lambda r: raw(npy(w_values(r)), stype="torch"))),
    Payload(
        "object-dtype-declared",
        R.STRUCTURE,
        set_w(
            lambda r: raw(
                npy(np.array([1, None] * 3, dtype=object), allow_pickle=True), dtype="object"
            )
        ),
    ),
    Payload(
        "object-bytes-declared-f32",
        R.STRUCTURE,
        set_w(lambda r: raw(npy(np.array([1, None] * 3, dtype=object), allow_pickle=True))),
    ),
    Payload("big-endian-bytes", R.STRUCTURE, set_w(big_endian)),
    Payload("int32", R.STRUCTURE, set_w(lambda r: Array(w_values(r).astype(np.int32)))),
    Payload("scalar-shape", R.STRUCTURE, set_w(lambda r: Array(np.array(1.0, np.float32)))),
    Payload("wrong-shape", R.STRUCTURE, set_w(lambda r: Array(np.zeros(7, np.float32)))),
    Payload(
        "2d-shape",
        R.STRUCTURE,
        set_w(lambda r: Array(w_values(r).reshape(2, 3))),
    ),
    Payload("trailing-bytes", R.MALFORMED_ARRAY, set_w(lambda r: raw(npy(w_values(r)) + b"x"))),
    Payload("truncated", R.MALFORMED_ARRAY, set_w(lambda r: raw(npy(w_values(r))[:-1]))),
    Payload("magic-only", R.MALFORMED_ARRAY, set_w(lambda r: raw(b"\x93NUMPY"))),
    Payload(
        "npy-version-9",
        R.MALFORMED_ARRAY,
        set_w(lambda r: raw(b"\x93NUMPY\x09\x00" + npy(w_values(r))[8:])),
    ),
    Payload("header-code", R.MALFORMED_ARRAY, set_w(bad_header_text)),
    Payload(
        "descr-empty-tuple",
        R.MALFORMED_ARRAY,
        set_w(
            lambda r: raw(
                header_text(b"{'descr': (), 'fortran_order': False, 'shape': (6,), }") + w_bytes(r)
            )
        ),
    ),
    Payload(
        "npy-version-3-bad-utf8",
        R.MALFORMED_ARRAY,
        set_w(
            lambda r: raw(
                header_text(
                    b"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } #\xff", b"\x03\x00"
                )
                + w_bytes(r)
            )
        ),
    ),
    Payload(
        "header-comment",
        R.MALFORMED_ARRAY,
        set_w(
            lambda r: raw(
                header_text(b"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } # hi")
                + w_bytes(r)
            )
        ),
    ),
    Payload(
        "header-shape-6L",
        R.MALFORMED_ARRAY,
        set_w(
            lambda r: raw(
                header_text(b"{'descr': '<f4', 'fortran_order': False, 'shape': (6L,), }")
                + w_bytes(r)
            )
        ),
    ),
    Payload(
        "header-shape-true-for-1",
        R.MALFORMED_ARRAY,
        set_w(
            lambda r: raw(
                header_text(b"{'descr': '<f4', 'fortran_order': False, 'shape': (True, 3), }")
                + np.ones(3, np.float32).tobytes(),
                shape=(1, 3),
            ),
            key="m",
        ),
    ),
    Payload(
        "header-length-4gib",
        R.MALFORMED_ARRAY,
        set_w(lambda r: raw(b"\x93NUMPY\x02\x00" + (2**32 - 1).to_bytes(4, "little") + w_bytes(r))),
    ),
    Payload("nan", R.NON_FINITE, set_w(poke(0, np.nan))),
    Payload("plus-inf", R.NON_FINITE, set_w(poke(1, np.inf))),
    Payload("minus-inf", R.NON_FINITE, set_w(poke(2, -np.inf))),
    Payload("norm-overflows", R.NON_FINITE, set_w(lambda r: Array(np.full(6, 3e38, np.float32)))),
    Payload(
        "extra-array-key",
        R.STRUCTURE,
        set_arrays(lambda r: {**dict(r.content["arrays"].items()), "x": Array(np.ones(1))}),
    ),
    Payload(
        "missing-array-key", R.STRUCTURE, set_arrays(lambda r: {"w": r.content["arrays"]["w"]})
    ),
    Payload("keys-reordered", R.STRUCTURE, set_arrays(swapped)),
    # record layout
    Payload("arrays-renamed", R.MALFORMED, rename_record("arrays", "weights")),
    Payload("two-array-records", R.MALFORMED, add_record("more", ArrayRecord())),
    Payload("no-array-record", R.MALFORMED, drop_record("arrays")),
    Payload(
        "two-metric-records",
        R.MALFORMED,
        add_record("more", MetricRecord({"num-examples": 1})),
    ),
    Payload("no-metric-record", R.MALFORMED, drop_record("metrics")),
    Payload("extra-config-record", R.MALFORMED, add_record("sneaky", ConfigRecord({"x": 1}))),
    Payload(
        "challenge-echoed",
        R.MALFORMED,
        add_record(CHALLENGE_RECORD, ConfigRecord({"nonce": b"0" * 32})),
    ),
    Payload("terms-echoed", R.MALFORMED, add_record(TERMS_RECORD, ConfigRecord({"budget": 1}))),
    Payload("error-reply", R.ERROR_REPLY, error_reply),
    # metrics
    Payload("num-examples-missing", R.MALFORMED_METRICS, set_metric("num-examples")),
    Payload("num-examples-zero", R.NUM_EXAMPLES, set_metric("num-examples", 0)),
    Payload("num-examples-negative", R.NUM_EXAMPLES, set_metric("num-examples", -200)),
    Payload("num-examples-fraction", R.NUM_EXAMPLES, set_metric("num-examples", 2.5)),
    Payload("num-examples-float", R.NUM_EXAMPLES, set_metric("num-examples", 20.0)),
    Payload("num-examples-huge", R.NUM_EXAMPLES, set_metric("num-examples", 10**12)),
    Payload("num-examples-2-62", R.MALFORMED_METRICS, set_metric("num-examples", 2**62)),
    Payload("num-examples-1e308", R.NUM_EXAMPLES, set_metric("num-examples", 1e308)),
    Payload("num-examples-list", R.MALFORMED_METRICS, set_metric("num-examples", [10])),
    Payload("metric-nan", R.NON_FINITE, set_metric("train_loss", math.nan)),
    Payload("metric-inf", R.NON_FINITE, set_metric("train_loss", math.inf)),
    Payload("metric-list-for-float", R.MALFORMED_METRICS, set_metric("train_loss", [0.5])),
    Payload("metric-missing", R.MALFORMED_METRICS, set_metric("train_loss")),
    Payload("metric-extra", R.MALFORMED_METRICS, set_metric("surprise", 1.0)),
    Payload("metric-huge-list", R.MALFORMED_METRICS, set_metric("train_loss", [0.5] * 20_000)),
    Payload("metric-nan-in-list", R.NON_FINITE, set_metric("train_loss", [0.1, math.nan])),
    Payload("metric-server-counter", R.MALFORMED_METRICS, set_metric("replies_accepted", 1000)),
    # the signature record, changed after signing
    Payload("unsigned", R.MISSING_SIGNATURE, after_signing=drop_record(SIGNATURE_RECORD)),
    Payload(
        "signature-as-metrics",
        R.MALFORMED_SIGNATURE,
        after_signing=add_record(SIGNATURE_RECORD, MetricRecord({"x": 1.0})),
    ),
    Payload(
        "run-id-arabic-digits",
        R.MALFORMED_SIGNATURE,
        after_signing=signature_field("run-id", "٤٢٤٢"),
    ),
    Payload("run-id-int", R.MALFORMED_SIGNATURE, after_signing=signature_field("run-id", RUN_ID)),
    Payload(
        "signature-63-bytes",
        R.MALFORMED_SIGNATURE,
        after_signing=signature_field("signature", b"s" * 63),
    ),
    Payload(
        "signature-as-str",
        R.MALFORMED_SIGNATURE,
        after_signing=signature_field("signature", "s" * 64),
    ),
    Payload("version-str", R.UNKNOWN_VERSION, after_signing=signature_field("version", "1")),
    Payload("version-3", R.UNKNOWN_VERSION, after_signing=signature_field("version", 3)),
    Payload(
        "address-garbage",
        R.MALFORMED_SIGNATURE,
        after_signing=signature_field("address", "G" + "A" * 55),
    ),
    Payload(
        "round-as-bool",
        R.MALFORMED_SIGNATURE,
        after_signing=signature_field("server-round", True),
    ),
    Payload(
        "nonce-as-str", R.MALFORMED_SIGNATURE, after_signing=signature_field("nonce", "n" * 32)
    ),
    Payload(
        "signature-fields-missing",
        R.MALFORMED_SIGNATURE,
        after_signing=add_record(SIGNATURE_RECORD, ConfigRecord({"version": DIGEST_VERSION})),
    ),
    Payload(
        "surrogate-in-a-key",
        R.MALFORMED_SIGNATURE,
        after_signing=set_metric("x\ud800", 1.0),
    ),
    Payload(
        "tampered-after-signing",
        R.BAD_SIGNATURE,
        after_signing=set_metric("num-examples", 40),
    ),
]
EVALUATE_PAYLOADS = [
    Payload(name, reason, before, after, kind="evaluate")
    for name, reason, before, after in [
        ("num-examples-negative-200", R.NUM_EXAMPLES, set_metric("num-examples", -200), None),
        ("num-examples-negative-50", R.NUM_EXAMPLES, set_metric("num-examples", -50), None),
        ("num-examples-zero", R.NUM_EXAMPLES, set_metric("num-examples", 0), None),
        ("num-examples-missing", R.MALFORMED_METRICS, set_metric("num-examples"), None),
        ("num-examples-fraction", R.NUM_EXAMPLES, set_metric("num-examples", 2.5), None),
        ("accuracy-list", R.MALFORMED_METRICS, set_metric("accuracy", [0.9]), None),
        ("accuracy-missing", R.MALFORMED_METRICS, set_metric("accuracy"), None),
        ("metric-extra", R.MALFORMED_METRICS, set_metric("surprise", 1.0), None),
        ("loss-nan", R.NON_FINITE, set_metric("loss", math.nan), None),
        ("accuracy-inf", R.NON_FINITE, set_metric("accuracy", math.inf), None),
        ("two-metric-records", R.MALFORMED, add_record("more", MetricRecord({"x": 1.0})), None),
        ("array-record-attached", R.MALFORMED, add_record("arrays", GLOBAL), None),
        ("extra-config-record", R.MALFORMED, add_record("sneaky", ConfigRecord({"x": 1})), None),
        ("unsigned", R.MISSING_SIGNATURE, None, drop_record(SIGNATURE_RECORD)),
        ("tampered", R.BAD_SIGNATURE, None, set_metric("accuracy", 1.0)),
        ("error-reply", R.ERROR_REPLY, error_reply, None),
    ]
]


# ------------------------------------------------------------------ the federation
class Federation:
    """Five in-process nodes running the real signing Mod; node 104 is the hostile one."""

    def __init__(self, tmp: Path) -> None:
        self.run = SimpleNamespace(run_id=RUN_ID)
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN_ID, 0
        self.tmp = tmp
        self.nodes = [100 + p for p in (*HONEST, HOSTILE)]
        self.contexts = {n: node_context(tmp, partition=n - 100) for n in self.nodes}

    def get_node_ids(self) -> list[int]:
        return self.nodes

    def deliver(self, msg: Message, payload: Payload | None = None) -> Message:
        kind = msg.metadata.message_type
        received = instruction(msg.content, kind, RUN_ID, msg.metadata.dst_node_id)
        context = self.contexts[msg.metadata.dst_node_id]
        if kind == "query.onboard":
            return onboarding_reply(received, context)
        app = honest_train if kind == "train" else honest_evaluate
        if payload is not None and payload.before_signing is error_reply:

            def app(m: Message, c) -> Message:  # type: ignore[no-untyped-def]
                return Message(Error(code=3, reason="hostile error"), reply_to=m)

        elif payload is not None and payload.before_signing is not None:
            transform, inner = payload.before_signing, app

            def app(m: Message, c) -> Message:  # type: ignore[no-untyped-def]
                return transform(inner(m, c))

        reply = signing_mod(received, context, app)
        if payload is not None and payload.after_signing is not None:
            reply = payload.after_signing(reply)
        return reply

    def send_and_receive(self, messages, *, timeout=None):  # type: ignore[no-untyped-def]
        return [self.deliver(m) for m in messages]


def fedavg() -> FedAvg:
    return FedAvg(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_available_nodes=1,
        min_train_nodes=1,
        min_evaluate_nodes=1,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):  # type: ignore[no-untyped-def]
    """One strategy, one run: round 1 is the honest baseline, then one round per payload and
    arrival order."""
    tmp = tmp_path_factory.mktemp("hostile")
    config = LedgerConfig(
        output_dir=str(tmp / "out"),
        reward=RewardSettings(budget_per_round="10"),
        intake=IntakeSettings(
            max_num_examples=1000,
            train_metrics=TRAIN_METRICS,
            evaluate_metrics=EVALUATE_METRICS,
        ),
        # the global-step checks judge honest updates that all follow the last step; they are
        # tested in test_screening.py, the subject here is what intake and verification do
        screening=Screening(
            checks=default_checks(
                {
                    "replayed_global_step": {"max_step_cosine": 1.0},
                    "reverses_global_step": {"step_cosine_margin": 0.0},
                }
            )
        ),
        scorer="num-examples",
    )
    strategy = LedgerStrategy.wrap(fedavg(), config=config)
    strategy.open(num_rounds=len(CASES) + 1)
    grid = Federation(tmp)
    state = SimpleNamespace(strategy=strategy, grid=grid, arrays=GLOBAL, round=0, last={})
    yield state
    strategy.close()


def play_round(run, payload: Payload | None, hostile_first: bool):  # type: ignore[no-untyped-def]
    """One train round (and, for evaluate payloads, the evaluate round after it)."""
    run.round += 1
    strategy, grid = run.strategy, run.grid
    messages = {
        m.metadata.dst_node_id: m
        for m in strategy.configure_train(run.round, run.arrays, ConfigRecord(), grid)
    }
    train_payload = payload if payload is not None and payload.kind == "train" else None
    honest = [grid.deliver(messages[100 + p]) for p in HONEST]
    replies = list(honest)
    hostile_node = 100 + HOSTILE
    if train_payload is not None:
        hostile = grid.deliver(messages[hostile_node], train_payload)
        replies = [hostile, *honest] if hostile_first else [*honest, hostile]
    arrays, metrics = strategy.aggregate_train(run.round, replies)
    expected = {
        key: sum(
            r.content["arrays"][key].numpy() * r.content["metrics"]["num-examples"] for r in honest
        )
        / sum(r.content["metrics"]["num-examples"] for r in honest)
        for key in GLOBAL
    }
    result = SimpleNamespace(arrays=arrays, metrics=metrics, expected=expected)
    run.arrays = arrays
    evaluate_payload = payload if payload is not None and payload.kind == "evaluate" else None
    if evaluate_payload is not None:
        messages = {
            m.metadata.dst_node_id: m
            for m in strategy.configure_evaluate(run.round, run.arrays, ConfigRecord(), grid)
        }
        honest = [grid.deliver(messages[100 + p]) for p in HONEST]
        hostile = grid.deliver(messages[hostile_node], evaluate_payload)
        replies = [hostile, *honest] if hostile_first else [*honest, hostile]
        result.evaluated = strategy.aggregate_evaluate(run.round, replies)
        result.evaluate_expected = {
            k: sum(r.content["metrics"][k] * r.content["metrics"]["num-examples"] for r in honest)
            / sum(r.content["metrics"]["num-examples"] for r in honest)
            for k in ("loss", "accuracy")
        }
    return result


CASES = [
    pytest.param(p, first, id=f"{p.kind}-{p.name}-{'first' if first else 'last'}")
    for p in (*TRAIN_PAYLOADS, *EVALUATE_PAYLOADS)
    for first in (True, False)
]


def test_the_corpus_is_large_and_every_name_unique() -> None:
    names = [(p.kind, p.name) for p in (*TRAIN_PAYLOADS, *EVALUATE_PAYLOADS)]
    assert len(names) == len(set(names)) >= 60


@pytest.mark.parametrize(("payload", "hostile_first"), CASES)
def test_a_hostile_reply_is_rejected_with_its_reason_and_changes_nothing_for_the_honest(
    run, payload: Payload, hostile_first: bool
) -> None:
    if run.round == 0:
        baseline = play_round(run, None, True)
        run.baseline = run.strategy.outcomes[run.round].payouts
        assert baseline.metrics["replies_accepted"] == len(HONEST)
    result = play_round(run, payload, hostile_first)
    strategy = run.strategy
    verdicts = strategy.verdicts[(run.round, payload.kind)]
    rejected = [(r.node, str(r.reason)) for r in verdicts.rejected]
    assert rejected == [(100 + HOSTILE, str(payload.reason))]
    assert sorted(verdicts.accepted) == [100 + p for p in HONEST]
    # the model is FedAvg of the honest replies, bit for bit the same dtype
    assert result.arrays is not None
    for key, value in result.expected.items():
        got = result.arrays[key].numpy()
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, value, rtol=1e-6)
    if payload.kind == "train":
        # honest payouts are exactly those of the round without the hostile reply
        assert strategy.outcomes[run.round].payouts == run.baseline
    else:
        assert result.evaluated is not None
        for key, value in result.evaluate_expected.items():
            assert result.evaluated[key] == pytest.approx(value, rel=1e-12)
        assert result.evaluated[f"rejected_{payload.reason}"] == 1


def test_every_round_is_paid_to_honest_nodes_only(run) -> None:
    """After the corpus: the outbox pays every round, none of it to the hostile pseudonym."""
    anchorer = run.strategy.session.anchorer
    anchorer.drain()
    honest = set(run.baseline)
    for server_round, outcome in run.strategy.outcomes.items():
        assert set(outcome.payouts) == honest, server_round
        manifest = anchorer.store.get(outcome.manifest_hash)
        assert manifest.round_paid + manifest.total_held == run.strategy.budget  # half held
        assert anchorer.anchored[server_round].paid == manifest.total_paid  # + releases at the end


# ------------------------------------------------------------------ arbitrary records
scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
metric_values = st.one_of(  # what a MetricRecord can hold: numbers, or lists of one kind
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
    st.lists(st.floats(), max_size=4),
)
arrays_st = st.one_of(
    st.builds(
        lambda dtype, shape, data, stype: Array(
            dtype=dtype, shape=tuple(shape), stype=stype, data=data
        ),
        st.sampled_from(["float32", "float64", "int8", "object", "<f4", ""]),
        st.lists(st.integers(0, 10**13), max_size=3),
        st.one_of(st.binary(max_size=200), st.just(npy(np.ones(6, np.float32)))),
        st.sampled_from(["numpy.ndarray", "torch", ""]),
    ),
    st.builds(
        lambda n, dt: Array(np.ones(n, dtype=dt)), st.integers(0, 8), st.sampled_from(["f4", "f8"])
    ),
)
records = st.one_of(
    st.builds(
        ArrayRecord, st.dictionaries(st.sampled_from(["w", "b", "x"]), arrays_st, max_size=3)
    ),
    st.builds(
        MetricRecord,
        st.dictionaries(
            st.sampled_from(["num-examples", "train_loss", "loss", "accuracy", "x"]),
            metric_values,
            max_size=4,
        ),
    ),
    st.builds(
        ConfigRecord,
        st.dictionaries(
            st.sampled_from(["version", "address", "signature", "run-id", "nonce", "x"]),
            st.one_of(scalars, st.text(max_size=60), st.binary(max_size=70)),
            max_size=6,
        ),
    ),
)
contents = st.dictionaries(
    st.sampled_from(["arrays", "metrics", SIGNATURE_RECORD, CHALLENGE_RECORD, "other"]),
    records,
    max_size=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(content=contents, kind=st.sampled_from(["train", "evaluate"]))
def test_arbitrary_record_dicts_as_replies_never_raise(tmp_path_factory, content, kind) -> None:
    """Whatever records a reply holds, the screening wrapper (intake, verification, checks)
    rejects it with a reason or hands FedAvg something it aggregates without raising."""
    from strategies.intake import Intake
    from strategies.round import ModelReference, RoundState
    from strategies.screening import Screen, Screening
    from strategies.verified import Verify

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN_ID, 0
    try:
        body = RecordDict(content)
    except (TypeError, ValueError):
        return  # Flower itself refuses to build (or deserialize) such a message
    reply = Message(body, reply_to=instruction(RecordDict(), kind))
    verify = Verify()
    grid = SimpleNamespace(run=SimpleNamespace(run_id=RUN_ID))
    verify.attach([instruction(RecordDict(), kind)], 1, kind, grid)  # type: ignore[arg-type]
    state = RoundState.received(1, kind, ModelReference(GLOBAL), [reply])
    unverified = Intake(IntakeSettings())(state)  # intake alone, as ScreeningStrategy runs it
    verified = Intake(IntakeSettings())(verify(state))
    for after in (Screen(Screening())(unverified), verified):
        assert len(after.candidates) + len(after.rejected) == 1
        if after.candidates:
            accepted = [c.reply for c in after.candidates]
            if kind == "train":
                fedavg().aggregate_train(1, accepted)
            else:
                fedavg().aggregate_evaluate(1, accepted)


@pytest.mark.parametrize("hostile_first", [True, False])
@pytest.mark.parametrize(
    ("layout", "shared_loss"),
    [(rename_record("metrics", "m"), True), (set_metric("train_loss"), False)],
    ids=["record-renamed", "key-left-out"],
)
def test_without_declared_metrics_a_deviant_layout_neither_raises_nor_costs_the_honest(
    tmp_path: Path, hostile_first: bool, layout: Transform, shared_loss: bool
) -> None:
    """The library default (no metric keys declared): a reply whose MetricRecord has another
    name, or lacks a key, is no attack on the model. FedAvg gets all five replies under one
    record name with the keys all of them share (a left-out key leaves the round's aggregate
    and is logged), and nobody is rejected."""
    from strategies.screening import ScreeningStrategy
    from strategies.verified import Verify

    grid = Federation(tmp_path)
    strategy = ScreeningStrategy(fedavg(), verify=Verify())
    messages = {
        m.metadata.dst_node_id: m
        for m in strategy.configure_train(1, GLOBAL, ConfigRecord(), grid)  # type: ignore[arg-type]
    }
    honest = [grid.deliver(messages[100 + p]) for p in HONEST]
    hostile = grid.deliver(messages[100 + HOSTILE], Payload("layout", "", layout))
    replies = [hostile, *honest] if hostile_first else [*honest, hostile]
    arrays, metrics = strategy.aggregate_train(1, replies)
    verdicts = strategy.verdicts[(1, "train")]
    assert verdicts.rejected == [] and len(verdicts.accepted) == 5 and arrays is not None
    assert ("train_loss" in metrics) == shared_loss
    assert metrics["replies_accepted"] == 5
