"""A second run in the same output folder reuses the ledger and treasury of the first: the
distributor's top-up for the longer run must be signed only by the accounts it needs (Stellar
refuses a needless signature with tx_bad_auth_extra), and both runs must audit clean."""

from pathlib import Path

import pytest
from anchor_world import treasury
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.task_identity import TaskIdentity
from helpers import RUN_ID
from stellar_sdk import ChangeTrust, Payment
from test_ledger_strategy import GLOBAL, FakeGrid

from flwr_stellar import LedgerConfig, LedgerStrategy
from flwr_stellar.audit.cli import run_audit_for
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.payments.treasury import prepare, required_signers


class RunGrid(FakeGrid):
    """FakeGrid under another Flower run id, so two runs' manifests stay apart."""

    def __init__(self, tmp: Path, nodes: int, run_id: int) -> None:
        super().__init__(tmp, nodes)
        self.run.run_id = run_id
        TaskIdentity.run_id = run_id

    def send_and_receive(self, messages, *, timeout=None):
        return [self.deliver(m, run_id=self.run.run_id) for m in messages]


def paid_run(tmp_path: Path, out: Path, run_id: int, num_rounds: int) -> LedgerStrategy:
    config = LedgerConfig(output_dir=str(out), scorer="num-examples")
    strategy = LedgerStrategy.wrap(
        FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1), config=config
    )
    strategy.open(num_rounds=num_rounds)
    try:
        grid = RunGrid(tmp_path, nodes=3, run_id=run_id)
        arrays: ArrayRecord = GLOBAL
        for server_round in range(1, num_rounds + 1):
            messages = strategy.configure_train(server_round, arrays, ConfigRecord(), grid)
            replies = [grid.deliver(m, run_id=run_id) for m in messages]
            new, metrics = strategy.aggregate_train(server_round, replies)
            assert new is not None and metrics is not None and metrics["replies_accepted"] == 3
            arrays = new
    finally:
        report = strategy.close()
    assert report is not None and report.settled, report
    assert sorted(report.anchors) == [str(r) for r in range(1, num_rounds + 1)]
    # half of each round is held and released in the last: the run pays exactly its budgets
    assert sum(a["paid_stroops"] for a in report.anchors.values()) == num_rounds * strategy.budget
    return strategy


def test_a_longer_second_run_in_the_same_output_dir_tops_up_and_both_runs_audit(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    first = paid_run(tmp_path, out, RUN_ID, num_rounds=2)
    second = paid_run(tmp_path, out, RUN_ID + 1, num_rounds=4)  # needs a distributor top-up
    assert first.budget == second.budget
    reports = {r.run_id: r for r in run_audit_for(out)}
    assert sorted(reports) == [RUN_ID, RUN_ID + 1]
    for run_id, rounds in ((RUN_ID, [1, 2]), (RUN_ID + 1, [1, 2, 3, 4])):
        assert reports[run_id].passed, reports[run_id].render()
        assert reports[run_id].rounds == rounds


@pytest.mark.parametrize("auth_required", [False, True])
def test_prepare_tops_up_an_existing_distributor(tmp_path: Path, auth_required: bool) -> None:
    """First call opens (and authorizes) the trustline, needing both signatures; later calls
    only issue the difference, signed by the issuer alone."""
    ledger = EmbeddedLedger(tmp_path / "ledger.db")
    try:
        t = treasury()
        cfg = RewardSettings(
            budget_per_round="10", auth_required=auth_required, auth_revocable=auth_required
        )
        for total in (10**8, 3 * 10**8, 3 * 10**8, 7 * 10**8):
            prepare(ledger, t, cfg, total)
            assert ledger.load_account(t.distributor.public_key).balance(t.asset_id) == total
    finally:
        ledger.close()


def test_required_signers_are_the_sources_only() -> None:
    t = treasury()
    roles = [t.issuer, t.distributor, t.sponsor]
    pay = Payment(t.distributor.public_key, t.asset, "1", source=t.issuer.public_key)
    trust = ChangeTrust(t.asset, source=t.distributor.public_key)
    assert required_signers(t.issuer, [pay], roles) == [t.issuer]
    assert required_signers(t.issuer, [ChangeTrust(t.asset)], roles) == [t.issuer]
    assert required_signers(t.issuer, [trust, pay], roles) == [t.issuer, t.distributor]
    with pytest.raises(ValueError, match=t.sponsor.public_key):
        required_signers(t.sponsor, [pay], [t.issuer])
