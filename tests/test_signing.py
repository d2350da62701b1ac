"""Reply digest and signatures: every change matters except record order; precise reasons."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair

from flwr_stellar.protocol.digest import SIGNATURE_RECORD, Binding, reply_digest
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.signature import SignatureRecord, sign_reply, verify_content
from flwr_stellar.reasons import Reason

BINDING = Binding(
    run_id=11, server_round=3, nonce=b"n" * 32, instruction_id="abc", message_type="train"
)


def reply(arrays: list[np.ndarray], metrics: dict, order: str = "am") -> RecordDict:
    records = {
        "a": ("arrays", ArrayRecord({f"w{i}": Array(a) for i, a in enumerate(arrays)})),
        "m": ("metrics", MetricRecord(metrics)),
    }
    return RecordDict(dict(records[k] for k in order))


arrays_st = st.lists(
    st.builds(
        lambda n, seed: np.random.default_rng(seed).standard_normal(n).astype(np.float32),
        st.integers(1, 64),
        st.integers(0, 2**32 - 1),
    ),
    min_size=1,
    max_size=4,
)
metrics_st = st.dictionaries(
    st.text("abcdef_", min_size=1, max_size=8),
    st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**40), 2**40),
    max_size=4,
) | st.just({})


@settings(max_examples=60, deadline=None)
@given(arrays=arrays_st, metrics=metrics_st, data=st.data())
def test_any_array_byte_change_changes_digest(arrays, metrics, data) -> None:
    base = reply_digest(reply(arrays, metrics), BINDING)
    assert base == reply_digest(reply(arrays, metrics, order="ma"), BINDING)  # order-free
    i = data.draw(st.integers(0, len(arrays) - 1))
    raw = bytearray(arrays[i].tobytes())
    j = data.draw(st.integers(0, len(raw) - 1))
    raw[j] ^= 1 << data.draw(st.integers(0, 7))
    changed = [a.copy() for a in arrays]
    changed[i] = np.frombuffer(bytes(raw), dtype=np.float32)
    assert reply_digest(reply(changed, metrics), BINDING) != base


@settings(max_examples=60, deadline=None)
@given(
    arrays=arrays_st,
    metrics=metrics_st,
    key=st.text("xyz", min_size=1, max_size=3),
    value=st.floats(allow_nan=False) | st.integers(),
)
def test_metric_change_changes_digest(arrays, metrics, key, value) -> None:
    base = reply_digest(reply(arrays, metrics), BINDING)
    assert reply_digest(reply(arrays, {**metrics, key: value}), BINDING) != base


@pytest.mark.parametrize(
    "field, value",
    [
        ("run_id", 12),
        ("server_round", 4),
        ("nonce", b"m" * 32),
        ("instruction_id", "abd"),
        ("message_type", "evaluate"),
    ],
)
def test_binding_fields_change_digest(field: str, value: object) -> None:
    content = reply([np.ones(3, np.float32)], {"loss": 0.5})
    other = Binding(**{**BINDING.__dict__, field: value})
    assert reply_digest(content, other) != reply_digest(content, BINDING)


def test_types_dtypes_and_shapes_are_bound() -> None:
    d = lambda metrics: reply_digest(reply([np.zeros(4, np.float32)], metrics), BINDING)  # noqa: E731
    assert len({d({"k": 1}), d({"k": 1.0}), d({"k": [1]}), d({"k": [1.0]})}) == 4
    bools = [ConfigRecord({"k": v}) for v in (True, 1, "1", b"1")]
    assert len({reply_digest(RecordDict({"c": c}), BINDING) for c in bools}) == 4
    as_f32 = reply([np.zeros(4, np.float32)], {})
    as_i32 = reply([np.zeros(4, np.int32)], {})
    as_2x2 = reply([np.zeros((2, 2), np.float32)], {})
    assert len({reply_digest(r, BINDING) for r in (as_f32, as_i32, as_2x2)}) == 3
    with_config = reply([np.zeros(4, np.float32)], {})
    with_config["c"] = ConfigRecord({"blob": b"\x00\x01", "s": "x"})
    assert reply_digest(with_config, BINDING) != reply_digest(as_f32, BINDING)


def test_signature_cross_checks_with_stellar_sdk() -> None:
    kp = Keypair.random()
    content = reply([np.arange(10, dtype=np.float32)], {"loss": 0.25, "num-examples": 10})
    sign_reply(content, BINDING, kp)
    record = content[SIGNATURE_RECORD]
    # the signature record itself is not part of the digest
    Keypair.from_public_key(kp.public_key).verify(
        reply_digest(content, BINDING), record["signature"]
    )
    assert verify_content(content, BINDING).pseudonym == kp.public_key
    assert verify_content(content, BINDING).ok


def signed() -> RecordDict:
    content = reply([np.arange(6, dtype=np.float32)], {"loss": 1.0})
    sign_reply(content, BINDING, Keypair.random())
    return content


@pytest.mark.parametrize(
    "expected, reason",
    [
        (Binding(99, 3, b"n" * 32, "abc", "train"), Reason.WRONG_RUN),
        (Binding(11, 4, b"n" * 32, "abc", "train"), Reason.WRONG_ROUND),
        (Binding(11, 3, b"x" * 32, "abc", "train"), Reason.WRONG_NONCE),
        (Binding(11, 3, b"n" * 32, "xyz", "train"), Reason.WRONG_INSTRUCTION),
        (Binding(11, 3, b"n" * 32, "abc", "evaluate"), Reason.WRONG_MESSAGE_TYPE),
    ],
)
def test_wrong_binding_reasons(expected: Binding, reason: Reason) -> None:
    verdict = verify_content(signed(), expected)
    assert verdict.reason == reason and not verdict.ok


def test_tampered_missing_and_malformed_signatures() -> None:
    content = signed()
    content["metrics"]["loss"] = 0.5
    assert verify_content(content, BINDING).reason == Reason.BAD_SIGNATURE
    content = signed()
    array = next(iter(content["arrays"].values()))
    array.data = array.data[:-1] + bytes([array.data[-1] ^ 1])
    assert verify_content(content, BINDING).reason == Reason.BAD_SIGNATURE
    # a forger signing with its own key over a victim's claimed address still fails
    content = signed()
    content[SIGNATURE_RECORD]["address"] = Keypair.random().public_key
    assert verify_content(content, BINDING).reason == Reason.BAD_SIGNATURE

    assert verify_content(reply([np.ones(2)], {}), BINDING).reason == Reason.MISSING_SIGNATURE
    content = signed()
    content[SIGNATURE_RECORD]["version"] = 3
    assert verify_content(content, BINDING).reason == Reason.UNKNOWN_VERSION
    for key, value in (("signature", b"short"), ("address", "GNOTANADDRESS")):
        content = signed()
        content[SIGNATURE_RECORD][key] = value
        assert verify_content(content, BINDING).reason == Reason.MALFORMED_SIGNATURE


@pytest.mark.parametrize("run_id", ["١١", "1¹", "１１", "9" * 5000, "011", "+11", " 11", "-1", ""])
def test_run_id_must_be_canonical_ascii_decimal(run_id: str) -> None:
    """``str.isdigit`` accepts Arabic-Indic, superscript and full-width digits: '١١' would
    be read as run 11 (and pass), '1¹' or 5000 digits made ``int`` raise before any check."""
    content = signed()
    content[SIGNATURE_RECORD]["run-id"] = run_id
    verdict = verify_content(content, BINDING)
    assert verdict.reason == Reason.MALFORMED_SIGNATURE and "run-id" in verdict.detail
    with pytest.raises(RecordError, match="run-id"):
        SignatureRecord.from_record(content[SIGNATURE_RECORD])


def test_wrong_binding_details_are_bounded() -> None:
    content = signed()
    content[SIGNATURE_RECORD]["instruction-id"] = "\x1b[31m" + "x" * 1_000_000 + "\n"
    verdict = verify_content(content, BINDING)
    assert verdict.reason == Reason.WRONG_INSTRUCTION
    assert len(verdict.detail) < 200 and "\x1b" not in verdict.detail
