"""The node decodes whatever the server sends without ever raising: every malformed challenge
or onboarding request gets an error reply (Flower ``Error``) with a clear, bounded reason.

Only values a Flower record can carry over the wire are used (no lone surrogates, ints within
int64): the others cannot reach a node."""

import base64
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from helpers import RUN_ID, instruction, node_context
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Keypair, TransactionBuilder, TransactionEnvelope

from flwr_stellar.client.mod import SIGNING_REFUSED, signing_mod
from flwr_stellar.client.onboarding import onboarding_reply
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE
from flwr_stellar.protocol.challenge import CHALLENGE_RECORD
from flwr_stellar.protocol.digest import DIGEST_VERSION, SIGNATURE_RECORD
from flwr_stellar.protocol.onboarding import ONBOARD_RECORD, ONBOARD_TYPE, Terms, operations

NONCE = b"\x05" * 32
SPONSOR, ISSUER = Keypair.random(), Keypair.random()
MAX_REASON = 500


def app(msg: Message, context) -> Message:
    arrays = ArrayRecord({"w": Array(np.zeros(3, np.float32))})
    return Message(
        RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 5})}), reply_to=msg
    )


def challenge(**changes: object) -> ConfigRecord:
    """A valid challenge record with some fields changed (None: removed)."""
    fields: dict = {
        "version": DIGEST_VERSION,
        "run-id": str(RUN_ID),
        "server-round": 1,
        "nonce": NONCE,
        "strict": True,
    }
    fields.update(changes)
    return ConfigRecord({k: v for k, v in fields.items() if v is not None})


def assert_refused(reply: Message, why: str) -> None:
    assert reply.has_error(), "expected an error reply"
    assert reply.error.code == SIGNING_REFUSED
    reason = reply.error.reason
    assert why in reason, reason[:300]
    assert len(reason) <= MAX_REASON and all(unicodedata.category(c)[0] != "C" for c in reason)


CHALLENGES: list[tuple[str, object, str]] = [
    ("array-record", ArrayRecord({"w": Array(np.zeros(1, np.float32))}), "not a ConfigRecord"),
    ("metric-record", MetricRecord({"version": 1}), "not a ConfigRecord"),
    ("empty", ConfigRecord({}), "unknown challenge version"),
    ("version-bool", challenge(version=True), "unknown challenge version"),
    ("version-text", challenge(version="1"), "unknown challenge version"),
    ("version-huge", challenge(version="9" * 100_000), "unknown challenge version"),
    ("no-nonce", challenge(nonce=None), "nonce"),
    ("short-nonce", challenge(nonce=b"\x05" * 31), "nonce"),
    ("long-nonce", challenge(nonce=b"\x05" * 10_000_000), "nonce"),
    ("text-nonce", challenge(nonce="05" * 32), "nonce"),
    ("no-run-id", challenge(**{"run-id": None}), "run id"),
    ("int-run-id", challenge(**{"run-id": RUN_ID}), "run id"),
    ("arabic-indic-run-id", challenge(**{"run-id": "٤٢٤٢"}), "run id"),
    ("superscript-run-id", challenge(**{"run-id": "4²"}), "run id"),
    ("fullwidth-run-id", challenge(**{"run-id": "４２４２"}), "run id"),
    ("huge-run-id", challenge(**{"run-id": "9" * 5000}), "run id"),
    ("negative-run-id", challenge(**{"run-id": "-1"}), "run id"),
    ("padded-run-id", challenge(**{"run-id": f" {RUN_ID}\n"}), "run id"),
    ("leading-zero-run-id", challenge(**{"run-id": f"0{RUN_ID}"}), "run id"),
    ("empty-run-id", challenge(**{"run-id": ""}), "run id"),
    ("garbage-run-id", challenge(**{"run-id": "\x1b[31m\xff\n"}), "run id"),
    ("text-round", challenge(**{"server-round": "1"}), "server round"),
    ("bool-round", challenge(**{"server-round": True}), "server round"),
    ("float-round", challenge(**{"server-round": 1.0}), "server round"),
    ("negative-round", challenge(**{"server-round": -1}), "server round"),
    ("int64-min-round", challenge(**{"server-round": -(2**63)}), "server round"),
    ("list-round", challenge(**{"server-round": [1, 2]}), "server round"),
    ("text-strict", challenge(strict="yes"), "strict"),
    ("other-run", challenge(**{"run-id": str(RUN_ID + 1)}), "another run"),
]


@pytest.mark.parametrize(
    ("record", "why"), [c[1:] for c in CHALLENGES], ids=[c[0] for c in CHALLENGES]
)
def test_malformed_challenges_get_an_error_reply(tmp_path: Path, record, why: str) -> None:
    content = RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros(3, np.float32))})})
    content[CHALLENGE_RECORD] = record
    called: list[Message] = []

    def handler(msg: Message, context) -> Message:
        called.append(msg)
        return app(msg, context)

    assert_refused(signing_mod(instruction(content), node_context(tmp_path), handler), why)
    assert not called  # refused before the node trains


def test_the_valid_challenge_is_signed(tmp_path: Path) -> None:
    content = RecordDict({CHALLENGE_RECORD: challenge()})
    reply = signing_mod(instruction(content), node_context(tmp_path), app)
    assert not reply.has_error() and SIGNATURE_RECORD in reply.content


# ---------------------------------------------------------------------------- onboarding
def pseudonym_of(tmp_path: Path) -> str:
    """The node's pseudonym for RUN_ID: what its valid onboarding must name."""
    reply = signing_mod(
        instruction(RecordDict({CHALLENGE_RECORD: challenge()})), node_context(tmp_path), app
    )
    return str(reply.content[SIGNATURE_RECORD]["address"])


def terms() -> Terms:
    return Terms(DEFAULT_PASSPHRASE, SPONSOR.public_key, "DLC", ISSUER.public_key, True, False)


def envelope(pseudonym: str) -> str:
    builder = TransactionBuilder(SdkAccount(SPONSOR.public_key, 41), DEFAULT_PASSPHRASE, 100)
    for op in operations(terms(), pseudonym):
        builder.append_operation(op)
    env = builder.set_timeout(300).build()
    env.sign(SPONSOR)
    return env.to_xdr()


def fee_bump(pseudonym: str) -> str:
    inner = TransactionEnvelope.from_xdr(envelope(pseudonym), DEFAULT_PASSPHRASE)
    bump = TransactionBuilder.build_fee_bump_transaction(SPONSOR, 200, inner, DEFAULT_PASSPHRASE)
    return bump.to_xdr()


def request(pseudonym: str, **changes: object) -> ConfigRecord:
    record = terms().to_record(envelope(pseudonym))
    fields = dict(record)
    fields.update(changes)
    return ConfigRecord({k: v for k, v in fields.items() if v is not None})


Requests = Callable[[str], object]
ONBOARDING: list[tuple[str, Requests, str]] = [
    ("no-record", lambda p: None, "no onboarding record"),
    ("metric-record", lambda p: MetricRecord({"version": 1}), "no onboarding record"),
    (
        "array-record",
        lambda p: ArrayRecord({"w": Array(np.zeros(1, np.float32))}),
        "no onboarding record",
    ),
    ("empty", lambda p: ConfigRecord({}), "lacks 'version'"),
    ("version-bool", lambda p: request(p, version=True), "unknown onboarding version"),
    ("version-text", lambda p: request(p, version="1"), "unknown onboarding version"),
    (
        "version-huge-text",
        lambda p: request(p, version="x" * 3_000_000),
        "unknown onboarding version",
    ),
    ("no-envelope", lambda p: request(p, envelope=None), "lacks 'envelope'"),
    ("int-envelope", lambda p: request(p, envelope=7), "'envelope' is not a string"),
    ("bytes-envelope", lambda p: request(p, envelope=b"AAAA"), "'envelope' is not a string"),
    ("empty-envelope", lambda p: request(p, envelope=""), "envelope does not decode"),
    ("short-envelope", lambda p: request(p, envelope="AAAA"), "envelope does not decode"),
    (
        "zeros-envelope",
        lambda p: request(p, envelope=base64.b64encode(bytes(7)).decode()),
        "envelope does not decode",
    ),
    (
        "garbage-envelope",
        lambda p: request(p, envelope=base64.b64encode(bytes(range(256)) * 3).decode()),
        "envelope does not decode",
    ),
    ("not-base64", lambda p: request(p, envelope="é\n\x1b[31m!"), "envelope does not decode"),
    (
        "truncated-envelope",
        lambda p: request(p, envelope=envelope(p)[:-12]),
        "envelope does not decode",
    ),
    ("huge-envelope", lambda p: request(p, envelope="A" * 4_000_000), "envelope"),
    ("fee-bump-envelope", lambda p: request(p, envelope=fee_bump(p)), "envelope does not decode"),
    (
        "list-sponsor",
        lambda p: request(p, sponsor=[SPONSOR.public_key]),
        "'sponsor' is not a string",
    ),
    ("bad-sponsor", lambda p: request(p, sponsor="GNOTANACCOUNT"), "sponsor"),
    ("bad-issuer", lambda p: request(p, **{"asset-issuer": "G" + "A" * 55}), "asset-issuer"),
    ("lowercase-junk-code", lambda p: request(p, **{"asset-code": "dl c"}), "asset-code"),
    ("long-code", lambda p: request(p, **{"asset-code": "A" * 13}), "asset-code"),
    ("empty-code", lambda p: request(p, **{"asset-code": ""}), "asset-code"),
    (
        "huge-passphrase",
        lambda p: request(p, **{"network-passphrase": "N" * 1_000_000}),
        "network-passphrase",
    ),
    ("text-sponsored", lambda p: request(p, sponsored="true"), "'sponsored' is not a bool"),
    ("int-authorize", lambda p: request(p, authorize=1), "'authorize' is not a bool"),
    (
        "other-account",
        lambda p: request(p, envelope=envelope(Keypair.random().public_key)),
        "operation",
    ),
]


@pytest.mark.parametrize(
    ("make", "why"), [c[1:] for c in ONBOARDING], ids=[c[0] for c in ONBOARDING]
)
def test_malformed_onboarding_requests_get_an_error_reply(tmp_path: Path, make, why: str) -> None:
    record = make(pseudonym_of(tmp_path))
    content = RecordDict() if record is None else RecordDict({ONBOARD_RECORD: record})
    reply = onboarding_reply(instruction(content, ONBOARD_TYPE), node_context(tmp_path))
    assert_refused(reply, why)


def test_the_valid_onboarding_request_is_cosigned(tmp_path: Path) -> None:
    content = RecordDict({ONBOARD_RECORD: request(pseudonym_of(tmp_path))})
    reply = onboarding_reply(instruction(content, ONBOARD_TYPE), node_context(tmp_path))
    assert not reply.has_error(), reply.error.reason
    assert ONBOARD_RECORD in reply.content
