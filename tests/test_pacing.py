"""Paying at the pace a public network accepts: the pacer's window, the fee bid under surge
pricing, and anchoring against an embedded ledger that emulates a congested network (full
ledgers refused like Horizon's 504, a surge fee above the base fee): paced, nothing is refused;
unpaced, refusals happen and still nothing is lost or paid twice."""

from pathlib import Path

import pytest
from anchor_world import REWARD, manifest, pseudonyms, setup, treasury
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient
from stellar_sdk import Account, Keypair, TransactionBuilder

from flwr_stellar.ledger.base import LedgerError
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, Congestion, EmbeddedLedger
from flwr_stellar.ledger.pacing import FeeBid, LedgerPacer
from flwr_stellar.ledger.server import create_app
from flwr_stellar.ledger.settings import LedgerSettings
from flwr_stellar.payments import anchoring
from flwr_stellar.payments.anchoring import Anchorer
from flwr_stellar.payments.manifest import ManifestStore
from flwr_stellar.payments.outbox import Outbox
from flwr_stellar.payments.treasury import prepare


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@given(st.lists(st.integers(1, 100), min_size=1, max_size=40), st.floats(0.0, 3.0))
def test_pacer_never_puts_more_than_the_limit_in_any_ledger_window(sizes, gap) -> None:
    clock = FakeClock()
    pacer = LedgerPacer(200, 5.0, clock=clock, sleep=clock.sleep)
    sent: list[tuple[float, int]] = []
    for ops in sizes:
        pacer.before(ops)
        sent.append((clock.now, ops))
        pacer.after(ops)
        clock.now += gap
    for start, _ in sent:  # every window that opens with one of our submissions
        assert sum(n for t, n in sent if start <= t < start + 5.0) <= 200


def test_pacer_waits_only_when_the_window_is_full() -> None:
    clock = FakeClock()
    pacer = LedgerPacer(200, 5.0, clock=clock, sleep=clock.sleep)
    assert pacer.before(100) == 0
    pacer.after(100)
    assert pacer.before(100) == 0
    pacer.after(100)
    assert pacer.before(50) == pytest.approx(5.0)  # the third has to wait one ledger
    with pytest.raises(ValueError, match="never fit"):
        pacer.before(201)


def test_fee_bid_doubles_up_to_its_cap() -> None:
    bid = FeeBid(maximum=500)
    assert bid.per_op == 100
    assert bid.outbid() and bid.per_op == 200
    assert bid.outbid() and bid.per_op == 400
    assert bid.outbid() and bid.per_op == 500
    assert not bid.outbid() and bid.per_op == 500
    with pytest.raises(ValueError):
        FeeBid(maximum=99)


def test_presets_pace_public_networks_only() -> None:
    testnet = LedgerSettings(backend="horizon", preset="testnet").pacer()
    pubnet = LedgerSettings(backend="horizon", preset="pubnet", allow_pubnet=True).pacer()
    assert testnet is not None and testnet.ops_per_ledger == 200
    assert pubnet is not None and pubnet.ops_per_ledger == 1000
    assert LedgerSettings().pacer() is None
    assert LedgerSettings(backend="horizon", preset="local").pacer() is None
    own = LedgerSettings(backend="horizon", preset="testnet", ops_per_ledger=120).pacer()
    assert own is not None and own.ops_per_ledger == 120
    with pytest.raises(ValueError, match="ops_per_ledger"):
        LedgerSettings(ops_per_ledger=50)
    with pytest.raises(ValueError, match="max_fee_per_op"):
        LedgerSettings(max_fee_per_op=10)


def _paid(ledger: EmbeddedLedger, address: str) -> int:
    return ledger.load_account(address).balance(treasury().asset_id)


@pytest.mark.parametrize("paced", [True, False])
def test_anchoring_on_a_congested_network_pays_once(tmp_path: Path, monkeypatch, paced) -> None:
    monkeypatch.setattr(anchoring, "BACKOFF_START_S", 0.05)
    db = tmp_path / "ledger.db"
    setup(db, 3)
    # 6 operations per 0.5 s ledger, and the going fee is 4x the base fee
    ledger = EmbeddedLedger(db, congestion=Congestion(6, 0.5, fee_per_op=400))
    payees = pseudonyms(3)
    pacer = LedgerPacer(6, 0.5) if paced else None
    a = Anchorer(
        lambda: ledger,
        treasury(),
        Outbox(tmp_path / "outbox.db"),
        ManifestStore(tmp_path / "manifests"),
        pacer=pacer,
    )
    for r in range(1, 7):  # 6 rounds x 3 payments: at least 3 ledgers' worth
        a.outbox.add(*_journal(a, manifest(r, payees)))
    assert a.settle_all(ledger, timeout=60)
    assert all(e.state == "done" for e in a.outbox.entries())
    assert [_paid(ledger, kp.public_key) for kp in payees] == [sum(7 + r for r in range(1, 7))] * 3
    assert a.fee.per_op == 400  # outbid twice on tx_insufficient_fee, then kept
    if paced:
        assert ledger.congestion_refusals == 0 and pacer is not None and pacer.waited_s > 0.4
    else:
        assert ledger.congestion_refusals > 0  # refused, looked up by hash, resubmitted


def _journal(a: Anchorer, m) -> tuple[str, int, list[list[tuple[str, int]]]]:  # type: ignore[no-untyped-def]
    return a.store.put(m), m.server_round, anchoring.payment_parts(m)


def test_a_full_ledger_is_answered_like_horizon_504(tmp_path: Path) -> None:
    ledger = EmbeddedLedger(tmp_path / "l.db")
    senders = [Keypair.random(), Keypair.random()]
    for kp in senders:
        ledger.fund(kp.public_key)
    ledger.congestion = Congestion(1, 60.0)  # room for one operation a minute from now on
    client = TestClient(create_app(ledger))
    answers = []
    for kp in senders:
        seq = ledger.load_account(kp.public_key).sequence
        tx = TransactionBuilder(Account(kp.public_key, seq), DEFAULT_PASSPHRASE, 100)
        tx = tx.append_bump_sequence_op(0).set_timeout(60).build()
        tx.sign(kp)
        answers.append(client.post("/transactions", data={"tx": tx.to_xdr()}))
    assert answers[0].status_code == 200
    assert answers[1].status_code == 504 and answers[1].json()["type"].endswith("timeout")
    assert ledger.congestion_refusals == 1


class NoFaucetLedger(EmbeddedLedger):
    """Like pubnet: no friendbot."""

    def fund(self, account_id: str):  # type: ignore[no-untyped-def]
        raise LedgerError("this network has no friendbot: fund the account yourself")


def test_a_network_without_faucet_names_every_treasury_account_to_fund(tmp_path: Path) -> None:
    ledger = NoFaucetLedger(tmp_path / "l.db")
    t = treasury()
    with pytest.raises(LedgerError, match="send each at least") as err:
        prepare(ledger, t, REWARD, 10**9)
    for kp in (t.issuer, t.sponsor, t.distributor):
        assert kp.public_key in str(err.value)
    assert ledger.store.last_header()["seq"] == 1  # nothing was submitted (genesis only)
