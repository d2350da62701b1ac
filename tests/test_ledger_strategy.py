"""LedgerStrategy over FedAvg on real Messages, a fake Grid and a real embedded ledger: bad
replies are rejected with their reasons, never crash FedAvg, and honest nodes get paid."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg, FedTrimmedAvg, Krum
from flwr.supercore.task_identity import TaskIdentity
from helpers import RUN_ID, instruction, node_context

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
from flwr_stellar.protocol.digest import SIGNATURE_RECORD
from flwr_stellar.protocol.terms import TERMS_RECORD, SignedTerms

SCREENING = Screening(checks=default_checks({"centre_cosine": {"min_cosine": 0.0}}))
INTAKE = IntakeSettings(max_num_examples=1000)
GLOBAL = ArrayRecord({"w": Array(np.ones(6, np.float32))})


class FakeGrid:
    """Delivers instructions to in-process nodes running the real client Mods."""

    def __init__(self, tmp: Path, nodes: int) -> None:
        self.run = SimpleNamespace(run_id=RUN_ID)
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN_ID, 0
        self.tmp = tmp
        self.nodes = list(range(100, 100 + nodes))

    def get_node_ids(self):
        return self.nodes

    def context(self, node: int):
        return node_context(self.tmp, partition=node - 100)

    def deliver(self, msg: Message, app=None, run_id: int = RUN_ID) -> Message:
        received = instruction(
            msg.content, msg.metadata.message_type, run_id, msg.metadata.dst_node_id
        )
        if msg.metadata.message_type == "query.onboard":
            return onboarding_reply(received, self.context(msg.metadata.dst_node_id))
        return signing_mod(received, self.context(msg.metadata.dst_node_id), app or honest_app)

    def send_and_receive(self, messages, *, timeout=None):
        return [self.deliver(m) for m in messages]


def honest_app(msg: Message, context) -> Message:
    pid = context.node_config["partition-id"]
    rng = np.random.default_rng(pid)
    base = msg.content["arrays"]["w"].numpy()
    update = 0.1 * (np.arange(6) + 0.3 * rng.normal(size=6))
    arrays = ArrayRecord({"w": Array((base + update).astype(np.float32))})
    metrics = MetricRecord({"num-examples": 10 * (pid + 1), "train_loss": 0.5})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)


def extra_record_app(msg: Message, context) -> Message:
    reply = honest_app(msg, context)
    reply.content["sneaky"] = ConfigRecord({"x": 1})
    return reply


def nan_app(msg: Message, context) -> Message:
    """A hostile node that signs a NaN update itself: only screening can stop it."""
    reply = honest_app(msg, context)
    w = reply.content["arrays"]["w"].numpy().copy()
    w[0] = np.nan
    reply.content["arrays"] = ArrayRecord({"w": Array(w)})
    return reply


@pytest.fixture
def layer(tmp_path: Path):
    opened = []

    def make(inner):
        config = LedgerConfig(
            output_dir=str(tmp_path / "out"),
            reward=RewardSettings(budget_per_round="10"),
            screening=SCREENING,
            intake=INTAKE,
            scorer="flat",
        )
        strategy = LedgerStrategy.wrap(inner, config=config)
        strategy.open(num_rounds=100)
        opened.append(strategy)
        return strategy

    yield make
    for strategy in opened:
        strategy.close()


def test_bad_replies_are_rejected_with_reasons_and_honest_ones_paid(tmp_path, layer) -> None:
    strategy = layer(FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1))
    ledger, anchorer = strategy.session.ledger, strategy.session.anchorer
    grid = FakeGrid(tmp_path, nodes=8)
    round1 = list(strategy.configure_train(1, GLOBAL, ConfigRecord(), grid))
    terms = SignedTerms.from_record(round1[0].content[TERMS_RECORD]).terms
    assert terms.budget_stroops == strategy.budget and terms.scorer == "flat"
    assert terms.asset_issuer == strategy.session.treasury.issuer.public_key
    assert terms.distributor == strategy.session.treasury.distributor.public_key
    assert terms.run_id == RUN_ID and terms.num_rounds == 100
    r1_replies = [grid.deliver(m) for m in round1]
    arrays, metrics = strategy.aggregate_train(1, r1_replies)
    assert arrays is not None and metrics["replies_accepted"] == 8

    by_node = lambda m: m.metadata.dst_node_id  # noqa: E731 - FedAvg samples in random order
    messages = sorted(strategy.configure_train(2, arrays, ConfigRecord(), grid), key=by_node)
    r1_replies.sort(key=lambda m: m.metadata.src_node_id)
    replies = [grid.deliver(m) for m in messages[:3]]  # nodes 100-102 honest
    unsigned = grid.deliver(messages[3])
    del unsigned.content[SIGNATURE_RECORD]
    forged = grid.deliver(messages[4])
    forged.content["metrics"]["num-examples"] = 10_000 // 20  # changed after signing
    replayed = r1_replies[5]  # node 105 answers with its round-1 reply
    other_run = grid.deliver(messages[6], run_id=RUN_ID + 1)
    extra = grid.deliver(messages[7], app=extra_record_app)
    arrays2, metrics2 = strategy.aggregate_train(
        2, [*replies, unsigned, forged, replayed, other_run, extra]
    )
    assert arrays2 is not None  # FedAvg ran on the three honest replies
    assert metrics2["replies_accepted"] == 3 and metrics2["replies_rejected"] == 5
    verdicts = strategy.verdicts[(2, "train")]
    reasons = {r.node: r.reason for r in verdicts.rejected}
    assert reasons[103] == "missing-signature"
    assert reasons[104] == "bad-signature"
    assert reasons[105] == "wrong-round"  # its round-1 signature, replayed
    assert reasons[106] == "error-reply"  # the node refuses a challenge of another run
    assert reasons[107] == "malformed-content"
    anchorer.drain()
    manifest = anchorer.store.get(strategy.outcomes[2].manifest_hash)
    paid = {c.pseudonym: c.payout for c in manifest.contributions}
    held = {c.pseudonym: c.held for c in manifest.contributions}
    assert len(paid) == 3 and sum(paid.values()) + sum(held.values()) == manifest.budget
    asset = strategy.session.treasury.asset_id
    for pseudonym in paid:  # paid twice: round 1 and round 2
        expected = strategy.outcomes[1].payouts[pseudonym] + paid[pseudonym]
        assert ledger.load_account(pseudonym).balance(asset) == expected


@pytest.mark.parametrize(
    "inner",
    [
        lambda: FedTrimmedAvg(
            fraction_train=1.0, min_available_nodes=1, min_train_nodes=1, beta=0.2
        ),
        lambda: Krum(
            fraction_train=1.0, min_available_nodes=1, min_train_nodes=1, num_malicious_nodes=1
        ),
    ],
    ids=["fedtrimmedavg", "krum"],
)
def test_wraps_other_strategies(tmp_path, layer, inner) -> None:
    strategy = layer(inner())
    grid = FakeGrid(tmp_path, nodes=5)
    messages = list(strategy.configure_train(1, GLOBAL, ConfigRecord(), grid))
    hostile = messages[0].metadata.dst_node_id
    replies = [grid.deliver(m, app=nan_app if m is messages[0] else None) for m in messages]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is not None and np.isfinite(arrays["w"].numpy()).all()
    assert metrics["replies_accepted"] == 4 and metrics["rejected_non-finite"] == 1
    verdicts = strategy.verdicts[(1, "train")]
    assert hostile not in verdicts.accepted
    assert [(r.node, r.reason) for r in verdicts.rejected] == [(hostile, "non-finite")]
    assert verdicts.rejected[0].pseudonym  # signed by the node itself: attributable
    anchorer = strategy.session.anchorer
    anchorer.drain()
    manifest = anchorer.store.get(strategy.outcomes[1].manifest_hash)
    assert anchorer.anchored[1].paid == strategy.budget - manifest.total_held
    assert verdicts.rejected[0].pseudonym not in {c.pseudonym for c in manifest.contributions}


class RefusingGrid(FakeGrid):
    """The node asked first to co-sign (smallest pseudonym, lowest sequence) refuses, so every
    later envelope of that batch hits tx_bad_seq and must be rebuilt in a second attempt."""

    refused: str | None = None

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        if messages and messages[0].metadata.message_type == "query.onboard" and not self.refused:
            first = messages[0]
            self.refused = str(first.metadata.dst_node_id)
            refusal = Message(
                Error(code=4701, reason="no thanks"), reply_to=self.deliver_raw(first)
            )
            return [refusal, *(self.deliver(m) for m in messages[1:])]
        return super().send_and_receive(messages, timeout=timeout)

    def deliver_raw(self, msg: Message) -> Message:
        return instruction(msg.content, msg.metadata.message_type, RUN_ID, msg.metadata.dst_node_id)


def test_a_node_refusing_onboarding_is_not_paid_and_the_others_are(tmp_path, layer) -> None:
    strategy = layer(FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1))
    ledger, anchorer = strategy.session.ledger, strategy.session.anchorer
    grid = RefusingGrid(tmp_path, nodes=5)
    replies = [grid.deliver(m) for m in strategy.configure_train(1, GLOBAL, ConfigRecord(), grid)]
    strategy.aggregate_train(1, replies)
    anchorer.drain()
    manifest = anchorer.store.get(strategy.outcomes[1].manifest_hash)
    refused = strategy.verdicts[(1, "train")].accepted[int(grid.refused)]
    by_pseudonym = {c.pseudonym: c for c in manifest.contributions}
    assert by_pseudonym[refused].payout == 0
    assert "not onboarded" in by_pseudonym[refused].note
    assert anchorer.anchored[1].paid == manifest.total_paid
    assert manifest.round_paid + manifest.total_held == manifest.budget
    asset = strategy.session.treasury.asset_id
    for pseudonym, c in by_pseudonym.items():
        if pseudonym != refused:
            assert c.payout > 0 and ledger.load_account(pseudonym).balance(asset) == c.payout


def test_verification_and_screening_work_without_payment(tmp_path) -> None:
    from flwr_stellar import ScreeningStrategy
    from strategies.verified import Verify

    inner = FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1)
    strategy = ScreeningStrategy(inner, SCREENING, INTAKE, verify=Verify())
    grid = FakeGrid(tmp_path, nodes=5)
    messages = list(strategy.configure_train(1, GLOBAL, ConfigRecord(), grid))
    assert all(TERMS_RECORD not in m.content for m in messages)  # nothing is paid
    hostile = messages[0].metadata.dst_node_id
    replies = [grid.deliver(m, app=nan_app if m is messages[0] else None) for m in messages]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is not None and np.isfinite(arrays["w"].numpy()).all()
    assert metrics["replies_accepted"] == 4 and metrics["replies_rejected"] == 1
    rejected = strategy.verdicts[(1, "train")].rejected
    assert [(r.node, r.reason) for r in rejected] == [(hostile, "non-finite")]
    assert rejected[0].pseudonym  # attributed to the pseudonym that signed it


def test_reference_app_screens_without_the_ledger(defaults) -> None:
    from dataclasses import replace

    from flwr_stellar.app.server_app import wrap_strategy
    from strategies.screening import ScreeningStrategy
    from strategies.verified import VerifiedStrategy

    cfg = replace(defaults, ledger=replace(defaults.ledger, enabled=False))
    wrapped = wrap_strategy(cfg, FedAvg(), Path("unused"))
    assert isinstance(wrapped, ScreeningStrategy) and wrapped.verify is not None
    unscreened = replace(cfg, screening=replace(cfg.screening, enabled=False))
    assert isinstance(wrap_strategy(unscreened, FedAvg(), Path("unused")), VerifiedStrategy)
    plain = replace(
        cfg,
        identity=replace(cfg.identity, enabled=False),
        screening=replace(cfg.screening, enabled=False),
    )
    assert isinstance(wrap_strategy(plain, FedAvg(), Path("unused")), FedAvg)


def reversing_app(msg: Message, context) -> Message:
    reply = honest_app(msg, context)
    base = msg.content["arrays"]["w"].numpy()
    w = reply.content["arrays"]["w"].numpy()
    reply.content["arrays"] = ArrayRecord({"w": Array((2 * base - w).astype(np.float32))})
    return reply


class ReversingGrid(FakeGrid):
    """Node 100 sends its update reversed (worth less than nothing to first order)."""

    def deliver(self, msg: Message, app=None, run_id: int = RUN_ID) -> Message:
        reverse = msg.metadata.dst_node_id == 100 and msg.metadata.message_type == "train"
        return super().deliver(msg, reversing_app if reverse else app, run_id)


@pytest.mark.parametrize(("gradient", "watched"), [(np.arange(6.0), {100}), (np.zeros(6), set())])
def test_worthless_contributions_are_watched_only_when_others_were_worth_something(
    tmp_path, gradient: np.ndarray, watched: set[int]
) -> None:
    """A contribution worth nothing while others earn is watched by screening next rounds;
    a round worth nothing as a whole (every value 0) singles nobody out."""
    config = LedgerConfig(
        output_dir=str(tmp_path / "out"),
        reward=RewardSettings(budget_per_round="10"),
        screening=Screening(checks=default_checks({"centre_cosine": {"min_cosine": -1.0}})),
        intake=INTAKE,
        scorer="first-order",
    )
    strategy = LedgerStrategy.wrap(
        FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1),
        config=config,
        validation=lambda arrays: 0.0,
        validation_gradient=lambda arrays: ArrayRecord({"w": Array(gradient.astype(np.float32))}),
    )
    strategy.open(num_rounds=3)
    try:
        grid = ReversingGrid(tmp_path, nodes=4)
        replies = [
            grid.deliver(m) for m in strategy.configure_train(1, GLOBAL, ConfigRecord(), grid)
        ]
        strategy.aggregate_train(1, replies)
        assert strategy.history.watched(2) == watched
        assert strategy.verdicts[(1, "train")].rejected == []  # paid or not, all aggregated
    finally:
        strategy.close()


def test_an_apps_own_check_runs_in_a_real_round_without_touching_the_library(tmp_path) -> None:
    """A screening check written here, passed to LedgerStrategy.wrap: it owns its setting,
    rejects with its one reason, and the round pays the others."""
    from dataclasses import dataclass

    from flwr_stellar import ReplyCheck

    @dataclass(frozen=True)
    class ClaimCap(ReplyCheck):
        """No node of this federation holds more than ``limit`` examples."""

        name = "claim_cap"
        reason = "claim-over-cap"
        limit: int = 25

        def judge_one(self, candidate, cohort) -> str | None:
            if candidate.num_examples > self.limit:
                return f"claims {candidate.num_examples} > {self.limit}"
            return None

    config = LedgerConfig(
        output_dir=str(tmp_path / "out"), screening=SCREENING, intake=INTAKE, scorer="flat"
    )
    inner = FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1)
    strategy = LedgerStrategy.wrap(inner, config=config, checks=[ClaimCap(limit=25)])
    strategy.open(num_rounds=1)
    try:
        grid = FakeGrid(tmp_path, nodes=4)  # honest_app claims 10, 20, 30, 40
        messages = list(strategy.configure_train(1, GLOBAL, ConfigRecord(), grid))
        arrays, metrics = strategy.aggregate_train(1, [grid.deliver(m) for m in messages])
        assert arrays is not None and metrics["rejected_claim-over-cap"] == 2
        rejected = strategy.verdicts[(1, "train")].rejected
        assert sorted((r.node, r.reason) for r in rejected) == [
            (102, "claim-over-cap"),
            (103, "claim-over-cap"),
        ]
        assert all(r.pseudonym for r in rejected)  # attributed to who signed them
        strategy.session.anchorer.drain()
        manifest = strategy.session.anchorer.store.get(strategy.outcomes[1].manifest_hash)
        assert [r.reason for r in manifest.rejections] == ["claim-over-cap"] * 2
        assert len(manifest.contributions) == 2
        assert manifest.round_paid + manifest.total_held == strategy.budget
    finally:
        strategy.close()


def test_a_failing_plugin_does_not_end_the_run(tmp_path) -> None:
    """A check that raises abstains; a scorer that raises pays nobody that round (the manifest
    names the failure); the round still aggregates, settles and anchors."""
    from dataclasses import dataclass

    from flwr_stellar import Check
    from strategies.scoring import Scorer

    @dataclass(frozen=True)
    class Broken(Check):
        name = "broken"
        reason = "never"

        def judge(self, cohort):  # type: ignore[no-untyped-def]
            raise ZeroDivisionError("a node's data divided by zero")

    @dataclass(frozen=True)
    class Miscounting(Check):
        name = "miscounting"
        reason = "never"

        def judge(self, cohort):  # type: ignore[no-untyped-def]
            return ["too few"]

    @dataclass(frozen=True)
    class Failing(Scorer):
        name = "failing"

        def values(self, state):  # type: ignore[no-untyped-def]
            raise IndexError("empty design matrix")

    config = LedgerConfig(output_dir=str(tmp_path / "out"), screening=SCREENING, intake=INTAKE)
    inner = FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1)
    strategy = LedgerStrategy.wrap(
        inner, config=config, checks=[Broken(), Miscounting()], scorer=Failing()
    )
    strategy.open(num_rounds=1)
    try:
        grid = FakeGrid(tmp_path, nodes=4)
        messages = list(strategy.configure_train(1, GLOBAL, ConfigRecord(), grid))
        arrays, metrics = strategy.aggregate_train(1, [grid.deliver(m) for m in messages])
        assert arrays is not None and metrics["replies_accepted"] == 4
        strategy.session.anchorer.drain()
        manifest = strategy.session.anchorer.store.get(strategy.outcomes[1].manifest_hash)
        assert manifest.scoring == {"name": "failing", "failed": "IndexError"}
        assert manifest.total_paid == 0 and len(manifest.contributions) == 4
    finally:
        strategy.close()


def test_integer_buffers_keep_their_dtype_across_rounds(tmp_path) -> None:
    """FedAvg averages an int64 buffer into float64; the wrapper hands back the model's own
    dtypes, so round 2's honest int64 replies still match the model."""
    from strategies.screening import ScreeningStrategy
    from strategies.verified import Verify

    model = ArrayRecord(
        {"w": Array(np.ones(6, np.float32)), "steps": Array(np.array([3], np.int64))}
    )

    def with_buffer(msg: Message, context) -> Message:
        reply = honest_app(msg, context)
        arrays = dict(reply.content["arrays"].items())
        arrays["steps"] = Array(np.array([4], np.int64))
        reply.content["arrays"] = ArrayRecord(arrays)
        return reply

    inner = FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1)
    strategy = ScreeningStrategy(inner, SCREENING, INTAKE, verify=Verify())
    grid = FakeGrid(tmp_path, nodes=4)
    arrays = model
    for server_round in (1, 2):
        messages = list(strategy.configure_train(server_round, arrays, ConfigRecord(), grid))
        replies = [grid.deliver(m, app=with_buffer) for m in messages]
        arrays, metrics = strategy.aggregate_train(server_round, replies)
        assert arrays is not None and metrics["replies_accepted"] == 4, server_round
        assert arrays["steps"].numpy().dtype == np.int64 and int(arrays["steps"].numpy()[0]) == 4


def _ledger_strategy(tmp_path: Path) -> LedgerStrategy:
    inner = FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1)
    config = LedgerConfig(
        output_dir=str(tmp_path / "out"),
        reward=RewardSettings(budget_per_round="10"),
        screening=SCREENING,
        intake=INTAKE,
        settle_timeout_s=10,
        receipt_timeout_s=5,
    )
    return LedgerStrategy(inner, config)


def test_start_refuses_an_argument_the_installed_flower_does_not_take_before_opening(
    tmp_path,
) -> None:
    import flwr

    strategy = _ledger_strategy(tmp_path)
    refused = rf"flwr {flwr.__version__} takes no argument 'should_stop'"
    with pytest.raises(TypeError, match=refused):
        strategy.start(FakeGrid(tmp_path, nodes=1), GLOBAL, num_rounds=1, should_stop=lambda: True)
    assert strategy.session is None  # nothing was opened
    assert not (tmp_path / "out").exists()


def test_start_passes_a_newer_flowers_keyword_arguments_through(tmp_path, monkeypatch) -> None:
    """Flower 1.43's ``Strategy.start(..., should_stop=...)``, stood in for by a base ``start``
    with that signature: the wrapped strategy receives the argument unchanged and still opens
    and closes its ledger around the rounds."""
    from flwr.serverapp.strategy import Result, Strategy

    seen: dict[str, object] = {}

    def newer_start(self, grid, initial_arrays, num_rounds=3, timeout=3600, train_config=None,
                    evaluate_config=None, evaluate_fn=None, should_stop=None):  # fmt: skip
        seen["should_stop"] = should_stop
        seen["session_open"] = self.session is not None
        return Result()

    monkeypatch.setattr(Strategy, "start", newer_start)
    stop = lambda: False  # noqa: E731
    strategy = _ledger_strategy(tmp_path)
    strategy.start(FakeGrid(tmp_path, nodes=1), GLOBAL, num_rounds=1, should_stop=stop)
    assert seen == {"should_stop": stop, "session_open": True}
    assert strategy.session is None  # closed after the rounds
