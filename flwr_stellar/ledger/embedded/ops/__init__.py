"""One module per Stellar operation, like stellar_sdk/operation/: its threshold and its rules.

Each module exposes ``THRESHOLD`` ("low" | "med" | "high", the signing weight its source
account must reach) and ``apply(op, source, state, ctx) -> str`` returning Horizon's result
code ("op_success", "op_underfunded", ...). ``apply`` only changes the state when it succeeds
(the caller drops the whole overlay otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

from stellar_sdk.xdr import OperationType

from flwr_stellar.ledger.embedded.ops import (
    account_merge,
    allow_trust,
    begin_sponsoring,
    bump_sequence,
    change_trust,
    claim_claimable_balance,
    clawback,
    create_account,
    create_claimable_balance,
    end_sponsoring,
    manage_data,
    payment,
    revoke_sponsorship,
    set_options,
    set_trust_line_flags,
)


@dataclass
class ApplyContext:
    ledger_seq: int
    base_reserve: int
    payments: list[tuple[int, str, str, str, str, int]] = field(default_factory=list)
    # (operation index, type, source, destination, asset, amount) for the payments history
    op_index: int = 0  # 1-based index of the operation being applied
    close_time: int = 0  # the ledger's close time (claim predicates)
    tx_source: str | None = None  # the transaction's source and sequence number: they name
    tx_seq: int = 0  # the claimable balances it creates
    participants: set[str] = field(default_factory=set)  # accounts named besides op sources

    def record_payment(
        self, kind: str, source: str, destination: str, asset: str, amount: int
    ) -> None:
        """Note a movement of funds by the current operation (its id is the operation's)."""
        self.payments.append((self.op_index, kind, source, destination, asset, amount))

    sponsoring: dict[str, str] = field(default_factory=dict)  # sponsored -> sponsor, open now


OPERATIONS: dict[OperationType, ModuleType] = {
    OperationType.CREATE_ACCOUNT: create_account,
    OperationType.PAYMENT: payment,
    OperationType.SET_OPTIONS: set_options,
    OperationType.CHANGE_TRUST: change_trust,
    OperationType.MANAGE_DATA: manage_data,
    OperationType.BUMP_SEQUENCE: bump_sequence,
    OperationType.ALLOW_TRUST: allow_trust,
    OperationType.ACCOUNT_MERGE: account_merge,
    OperationType.BEGIN_SPONSORING_FUTURE_RESERVES: begin_sponsoring,
    OperationType.END_SPONSORING_FUTURE_RESERVES: end_sponsoring,
    OperationType.REVOKE_SPONSORSHIP: revoke_sponsorship,
    OperationType.CLAWBACK: clawback,
    OperationType.SET_TRUST_LINE_FLAGS: set_trust_line_flags,
    OperationType.CREATE_CLAIMABLE_BALANCE: create_claimable_balance,
    OperationType.CLAIM_CLAIMABLE_BALANCE: claim_claimable_balance,
}
