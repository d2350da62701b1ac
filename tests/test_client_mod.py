"""The signing Mod and VerifiedStrategy on real Flower Messages, without a simulation."""

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg
from helpers import RUN_ID, instruction, node_context

from flwr_stellar.client.identity import DEV_PASSPHRASE, HOME_ENV, NodeSettings
from flwr_stellar.client.mod import SIGNING_REFUSED, signing_mod
from flwr_stellar.identity import derive_pseudonym, keystore
from flwr_stellar.protocol.challenge import CHALLENGE_RECORD, Challenge
from flwr_stellar.protocol.digest import DIGEST_VERSION, SIGNATURE_RECORD
from flwr_stellar.protocol.signature import verify_reply
from flwr_stellar.reasons import Reason
from strategies.verified import VerifiedStrategy


def train_content(with_challenge: bool = True, server_round: int = 1) -> RecordDict:
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.zeros(3, np.float32))}),
            "config": ConfigRecord({"server-round": server_round}),
        }
    )
    if with_challenge:
        content[CHALLENGE_RECORD] = Challenge.fresh(RUN_ID, server_round).to_record()
    return content


def honest_app(msg: Message, context) -> Message:
    arrays = ArrayRecord({"w": Array(np.full(3, context.node_config["partition-id"], np.float32))})
    return Message(
        RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 5})}), reply_to=msg
    )


def test_mod_signs_with_the_nodes_run_pseudonym(tmp_path: Path) -> None:
    msg = instruction(train_content())
    ctx = node_context(tmp_path, partition=2)
    reply = signing_mod(msg, ctx, honest_app)
    nonce = msg.content[CHALLENGE_RECORD]["nonce"]
    verdict = verify_reply(reply, run_id=RUN_ID, server_round=1, nonce=nonce)
    assert verdict.ok, verdict
    store = tmp_path / "keystores" / "node-2.json"
    master = keystore.load(store, DEV_PASSPHRASE)
    assert verdict.pseudonym == derive_pseudonym(master, RUN_ID, "default").public_key
    assert verdict.pseudonym != master.public_key
    assert oct(store.stat().st_mode & 0o777) == "0o600"


def test_node_requiring_a_challenge_refuses_instruction_without_nonce(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    called = []
    msg = instruction(train_content(with_challenge=False))
    ctx = node_context(tmp_path)
    ctx.node_config["require-challenge"] = True
    caplog.set_level(logging.ERROR, logger="flwr")
    reply = signing_mod(msg, ctx, lambda m, c: called.append(1) or m)
    assert reply.has_error() and reply.error.code == SIGNING_REFUSED
    assert "no server nonce" in reply.error.reason and not called
    assert "refusing train instruction" in caplog.text


def test_without_a_challenge_replies_pass_unsigned_and_queries_are_skipped(
    tmp_path: Path,
) -> None:
    ctx = node_context(tmp_path)
    reply = signing_mod(
        instruction(train_content(with_challenge=False, server_round=5)), ctx, honest_app
    )
    assert not reply.has_error() and SIGNATURE_RECORD not in reply.content
    query = instruction(RecordDict(), message_type="query")
    passthrough = signing_mod(query, ctx, lambda m, c: Message(RecordDict(), reply_to=m))
    assert SIGNATURE_RECORD not in passthrough.content
    assert not (tmp_path / "keystores").exists()  # nothing asked for a signature


@pytest.mark.parametrize(
    ("challenge", "why"),
    [
        (ConfigRecord({"version": 9}), "unknown challenge version"),
        (Challenge.fresh(RUN_ID + 1, 1).to_record(), "another run"),
        (ConfigRecord({"version": DIGEST_VERSION, "run-id": str(RUN_ID), "nonce": b"x"}), "nonce"),
    ],
)
def test_malformed_or_foreign_challenge_is_refused(tmp_path: Path, challenge, why: str) -> None:
    content = train_content(with_challenge=False)
    content[CHALLENGE_RECORD] = challenge
    reply = signing_mod(instruction(content), node_context(tmp_path), honest_app)
    assert reply.has_error() and why in reply.error.reason


def test_deployment_keystore_from_node_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    master = keystore.MasterSecret.generate()
    path = keystore.save(
        tmp_path / "node.json", master, "s3cret-pass", kdf=keystore.KdfParams(n=2**10)
    )
    pass_file = tmp_path / "pass"
    pass_file.write_text("s3cret-pass\n")
    pass_file.chmod(0o600)
    deployed = {"partition-id": 0, "num-partitions": 2}
    ctx = node_context(tmp_path)
    ctx.node_config = deployed | {"keystore": str(path), "passphrase-file": str(pass_file)}
    msg = instruction(train_content())
    reply = signing_mod(msg, ctx, honest_app)
    assert reply.content[SIGNATURE_RECORD]["address"] == derive_pseudonym(master, RUN_ID).public_key

    caplog.set_level(logging.DEBUG)
    bad = node_context(tmp_path / "other")
    bad.node_config = deployed | {
        "keystore": str(tmp_path / "missing.json"),
        "passphrase-file": str(pass_file),
    }
    refused = signing_mod(instruction(train_content()), bad, honest_app)
    assert refused.has_error() and "identity unavailable" in refused.error.reason
    nothing = node_context(tmp_path / "none")
    nothing.node_config = deployed | {"dev-keystore": False}
    refused = signing_mod(instruction(train_content()), nothing, honest_app)
    assert "--node-config" in refused.error.reason
    assert "s3cret-pass" not in caplog.text


def test_non_strict_server_gets_an_unsigned_reply_when_the_node_cannot_sign(
    tmp_path: Path,
) -> None:
    content = train_content(with_challenge=False)
    content[CHALLENGE_RECORD] = Challenge.fresh(RUN_ID, 1, strict=False).to_record()
    ctx = node_context(tmp_path)
    ctx.node_config = {"partition-id": 0, "num-partitions": 2, "dev-keystore": False}
    reply = signing_mod(instruction(content), ctx, honest_app)
    assert not reply.has_error() and SIGNATURE_RECORD not in reply.content


def test_node_settings_read_only_the_node_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    simulated = NodeSettings.from_node_config({"partition-id": 3, "num-partitions": 10}, 99)
    assert simulated.dev_keystore and simulated.label == "3"
    assert simulated.dev_keystore_dir == tmp_path / "home" / "dev-keystores"
    pseudonym = simulated.pseudonym(RUN_ID)
    stored = keystore.load(tmp_path / "home" / "dev-keystores" / "node-3.json", DEV_PASSPHRASE)
    assert pseudonym.public_key == derive_pseudonym(stored, RUN_ID).public_key
    deployed = NodeSettings.from_node_config({"partition-id": 3, "other": "x"}, 99)
    assert not deployed.dev_keystore  # a deployed SuperNode needs a real keystore
    with pytest.raises(Exception, match="dlc-issuer"):
        NodeSettings.from_node_config({"dlc-issuer": "GNOTANADDRESS"}, 1)
    with pytest.raises(Exception, match="require-challenge"):
        NodeSettings.from_node_config({"require-challenge": 3}, 1)


class FakeGrid:
    """Just enough Grid for FedAvg.configure_train: node ids and the run."""

    def __init__(self, nodes: list[int]) -> None:
        self.nodes, self.run = nodes, SimpleNamespace(run_id=RUN_ID)

    def get_node_ids(self):
        return self.nodes


def test_verified_strategy_screens_before_fedavg(tmp_path: Path) -> None:
    strategy = VerifiedStrategy(FedAvg(fraction_evaluate=0.0))
    arrays = ArrayRecord({"w": Array(np.zeros(3, np.float32))})
    messages = list(strategy.configure_train(1, arrays, ConfigRecord(), FakeGrid([1, 2, 3, 4])))
    assert all(CHALLENGE_RECORD in m.content for m in messages)
    replies = []
    for i, m in enumerate(messages):
        m.metadata.__dict__["_message_id"] = m.object_id
        reply = signing_mod(m, node_context(tmp_path, partition=i), honest_app)
        reply.metadata.__dict__["_src_node_id"] = m.metadata.dst_node_id
        replies.append(reply)
    replies[1].content["arrays"]["w"] = Array(np.full(3, 1e6, np.float32))  # forged update
    replies[2].content = RecordDict(
        {
            "arrays": replies[2].content["arrays"],  # FedAvg-killer:
            "metrics": MetricRecord({"num-examples": 5}),
            "extra": MetricRecord({"x": 1.0}),
        }
    )  # second MetricRecord
    replies.append(replies[0])  # the same pseudonym answering twice
    agg, metrics = strategy.aggregate_train(1, replies)
    verdicts = strategy.verdicts[(1, "train")]
    reasons = sorted(r.reason for r in verdicts.rejected)
    expected = [Reason.BAD_SIGNATURE, Reason.MISSING_SIGNATURE, Reason.DUPLICATE_PSEUDONYM]
    assert reasons == sorted(expected)
    assert len(verdicts.accepted) == 2
    # FedAvg saw only nodes 0 and 3: their mean is 1.5, the forged 1e6 never got in
    np.testing.assert_allclose(agg["w"].numpy(), np.full(3, 1.5, np.float32))
    assert metrics["replies_rejected"] == 3 and metrics["replies_accepted"] == 2
    # a reply to an instruction never sent (no nonce for round 2) is rejected, not crashed on
    agg2, metrics2 = strategy.aggregate_train(2, replies[:1])
    assert agg2 is None and metrics2["rejected_unexpected-reply"] == 1
