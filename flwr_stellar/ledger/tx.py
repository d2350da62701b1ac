"""Build and sign transactions for any Ledger backend (stellar_sdk does the XDR)."""

from __future__ import annotations

from collections.abc import Sequence

from stellar_sdk import Account, Keypair, TransactionBuilder, TransactionEnvelope
from stellar_sdk.operation import Operation

from flwr_stellar.ledger.base import Ledger, LedgerError, SubmitResult

BASE_FEE = 100  # stroops per operation (Stellar's minimum)
TX_TIMEOUT_S = 300  # a signed envelope is dead after this, so a lost one can be rebuilt safely
MAX_OPS = 100


def build(
    ledger: Ledger,
    source: str,
    sequence: int,
    operations: Sequence[Operation],
    *,
    memo_hash: bytes | None = None,
    timeout_s: int = TX_TIMEOUT_S,
    fee_per_op: int = BASE_FEE,
) -> TransactionEnvelope:
    """An unsigned envelope with sequence ``sequence + 1`` (the account's next), bidding
    ``fee_per_op`` stroops per operation."""
    if not 1 <= len(operations) <= MAX_OPS:
        raise ValueError(f"a transaction holds 1..{MAX_OPS} operations, got {len(operations)}")
    builder = TransactionBuilder(
        Account(source, sequence),
        network_passphrase=ledger.network_passphrase,
        base_fee=fee_per_op,
    ).set_timeout(timeout_s)
    if memo_hash is not None:
        builder.add_hash_memo(memo_hash)
    for op in operations:
        builder.append_operation(op)
    return builder.build()


def submit_signed(
    ledger: Ledger,
    signers: Sequence[Keypair],
    operations: Sequence[Operation],
    *,
    source: Keypair | None = None,
) -> SubmitResult:
    """Build from the source's current sequence, sign with every signer, submit, check."""
    src = source or signers[0]
    account = ledger.load_account(src.public_key)
    envelope = build(ledger, src.public_key, account.sequence, operations)
    for kp in signers:
        envelope.sign(kp)
    return require_success(ledger.submit(envelope.to_xdr()), what=f"{len(operations)} op(s)")


def require_success(result: SubmitResult, what: str) -> SubmitResult:
    if not result.successful:
        codes = ", ".join((result.tx_code, *result.op_codes))
        raise LedgerError(f"ledger refused {what}: {codes}")
    return result
