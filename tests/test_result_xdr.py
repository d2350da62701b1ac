"""result_xdr: every result code the embedded ledger can emit has its XDR twin, and the codes
round-trip through stellar_sdk's XDR classes."""

import re
from pathlib import Path

import pytest
from stellar_sdk import Keypair, xdr

from flwr_stellar.ledger import result_xdr
from flwr_stellar.ledger.embedded import EmbeddedLedger

EMBEDDED = Path(result_xdr.__file__).parent / "embedded"


def horizon_code(name: str, prefix: str) -> str:
    code = "op_" + name[len(prefix) :].lower()
    return {v: k for k, v in result_xdr._ALIASES.items()}.get(code, code)


@pytest.mark.parametrize("op_type", list(result_xdr._RESULTS), ids=lambda t: t.name)
def test_every_code_of_every_operation_round_trips(op_type: xdr.OperationType) -> None:
    _, code_enum, prefix, field = result_xdr._RESULTS[op_type]
    for name, member in code_enum.__members__.items():
        made = "00000000" + "ab" * 32  # a CreateClaimableBalance success names its balance
        encoded = result_xdr._inner(op_type, horizon_code(name, prefix), 5, made).to_xdr()
        back = xdr.OperationResult.from_xdr(encoded)
        assert back.tr is not None and getattr(back.tr, field).code == member


def test_every_code_the_ledger_emits_has_an_xdr_twin() -> None:
    emitted = set()
    for path in EMBEDDED.rglob("*.py"):
        emitted |= set(re.findall(r'"(op_[a-z_]+)"', path.read_text()))
    emitted -= {"op_count", "op_codes", "op_index"}  # field names, not result codes
    known = set(result_xdr._OUTER)
    for _, code_enum, prefix, _ in result_xdr._RESULTS.values():
        known |= {horizon_code(n, prefix) for n in code_enum.__members__}
    assert emitted - known == set()


def test_rejected_and_applied_results(tmp_path: Path) -> None:
    ledger = EmbeddedLedger(tmp_path / "l.db")
    payer = Keypair.random()
    funded = ledger.fund(payer.public_key)
    record = ledger.transaction(funded.hash)
    result = xdr.TransactionResult.from_xdr(
        result_xdr.build_result_xdr(
            record.envelope_xdr, record.fee_charged, record.tx_code, record.op_codes
        )
    )
    assert result.fee_charged.int64 == record.fee_charged
    assert result.result.code == xdr.TransactionResultCode.txSUCCESS
    assert result.result.results[0].tr.create_account_result.code.name == "CREATE_ACCOUNT_SUCCESS"
    rejected = xdr.TransactionResult.from_xdr(
        result_xdr.build_result_xdr(record.envelope_xdr, 0, "tx_bad_seq", ())
    )
    assert (
        rejected.result.code == xdr.TransactionResultCode.txBAD_SEQ
        and rejected.result.results is None
    )
    with pytest.raises(result_xdr.ResultCodeError, match="operation codes"):
        result_xdr.build_result_xdr(record.envelope_xdr, 100, "tx_failed", ("op_underfunded", "x"))
    ledger.close()
