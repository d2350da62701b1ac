"""Hypothesis state machine over random valid and invalid transactions on the embedded ledger.

Invariants after every step: the native supply is conserved (balances + fee pool = genesis
supply), no balance is negative or above its trustline limit, every account holds its minimum
balance (reserves), sequence numbers never go down, and a transaction that failed changed
nothing but its source's fee and sequence number.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from ledger_helpers import Chain, pay, trust
from stellar_sdk import Keypair

from flwr_stellar.ledger.embedded.entries import Account, TrustLine
from flwr_stellar.ledger.embedded.ledger import TOTAL_COINS

amounts = st.sampled_from(["0.0000001", "1", "7.5", "250", "10000", "99999"])


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.chain = Chain()
        self.issuer = self.chain.funded()
        self.dlc = self.chain.asset(self.issuer)
        self.keys = [self.issuer] + [self.chain.funded(xlm=50) for _ in range(3)]
        self.seqs = {
            k.public_key: self.chain.ledger.load_account(k.public_key).sequence for k in self.keys
        }

    def entries(self) -> dict[tuple, object]:
        rows = self.chain.ledger.store.db.execute("SELECT key, kind, value FROM entries")
        from flwr_stellar.ledger.embedded.entries import decode

        return {key: decode(kind, value) for key, kind, value in rows}

    def submit_and_check(self, source: Keypair, *ops) -> None:  # type: ignore[no-untyped-def]
        before = self.entries()
        result = self.chain.submit(source, *ops)
        after = self.entries()
        if result.applied and not result.successful:
            changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
            assert changed <= {"acct\x1f" + source.public_key}
            old, new = before["acct\x1f" + source.public_key], after["acct\x1f" + source.public_key]
            assert new.balance == old.balance - result.fee_charged
            assert new.seq_num == old.seq_num + 1
        if not result.applied:
            assert before == after

    @rule(src=st.integers(0, 3), dst=st.integers(0, 4), amount=amounts)
    def pay_native(self, src: int, dst: int, amount: str) -> None:
        dest = self.keys[dst] if dst < 4 else Keypair.random()
        self.submit_and_check(self.keys[src], pay(dest, amount))

    @rule(src=st.integers(0, 3), dst=st.integers(0, 3), amount=amounts)
    def pay_dlc(self, src: int, dst: int, amount: str) -> None:
        self.submit_and_check(self.keys[src], pay(self.keys[dst], amount, self.dlc))

    @rule(who=st.integers(1, 3), limit=st.sampled_from([None, "0", "5", "100000"]))
    def change_trust(self, who: int, limit: str | None) -> None:
        self.submit_and_check(self.keys[who], trust(self.dlc, limit))

    @rule(src=st.integers(0, 3), amount=st.sampled_from(["0.5", "1", "2", "30"]))
    def create_account(self, src: int, amount: str) -> None:
        kp = Keypair.random()
        self.submit_and_check(
            self.keys[src], lambda t: t.append_create_account_op(kp.public_key, amount)
        )

    @rule(
        src=st.integers(0, 3),
        name=st.sampled_from(["a", "b"]),
        value=st.sampled_from([None, b"x", b"y" * 64]),
    )
    def manage_data(self, src: int, name: str, value: bytes | None) -> None:
        self.submit_and_check(self.keys[src], lambda t: t.append_manage_data_op(name, value))

    @rule(src=st.integers(0, 3), two=st.integers(0, 3), amount=amounts)
    def two_ops(self, src: int, two: int, amount: str) -> None:
        self.submit_and_check(
            self.keys[src], pay(self.keys[two], amount), pay(self.keys[two], amount, self.dlc)
        )

    @rule(src=st.integers(0, 3), wrong=st.sampled_from(["seq", "signer", "fee"]))
    def invalid(self, src: int, wrong: str) -> None:
        kp = self.keys[src]
        other = self.keys[(src + 1) % 4]
        kw = {"seq": {"seq": 0}, "signer": {"signers": (other,)}, "fee": {"fee": 10}}[wrong]
        before = self.entries()
        result = self.chain.submit(kp, pay(other, "1"), **kw)
        assert not result.applied and self.entries() == before

    @invariant()
    def supply_conserved_and_bounds(self) -> None:
        if not hasattr(self, "chain"):
            return
        entries = self.entries().values()
        accounts = [e for e in entries if isinstance(e, Account)]
        fee_pool = self.chain.ledger.latest_ledger()["fee_pool"]
        assert sum(a.balance for a in accounts) + fee_pool == TOTAL_COINS
        for a in accounts:
            assert a.balance >= a.min_balance() > 0
            previous = self.seqs.get(a.account_id, a.seq_num)
            assert a.seq_num >= previous
            self.seqs[a.account_id] = a.seq_num
        for line in (e for e in entries if isinstance(e, TrustLine)):
            assert 0 <= line.balance <= line.limit


LedgerMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase


def test_chain_after_random_history() -> None:
    machine = Chain()
    a, b = machine.funded(), machine.funded()
    for i in range(20):
        machine.submit(a, pay(b, str(i + 1)))
    assert machine.ledger.verify_chain() == 23
