"""Crash safety: a process submitting in a loop is SIGKILLed again and again; afterwards the
database opens, its chain verifies and every acknowledged transaction is there."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flwr_stellar.ledger.embedded import EmbeddedLedger

pytestmark = pytest.mark.slow

WRITER = r"""
import sys
from stellar_sdk import Account, Asset, Keypair, TransactionBuilder
from flwr_stellar.ledger.embedded import EmbeddedLedger

ledger = EmbeddedLedger(sys.argv[1])
payer = Keypair.from_raw_ed25519_seed(bytes(32))
sink = Keypair.from_raw_ed25519_seed(bytes([1] * 32))
for kp in (payer, sink):
    try:
        ledger.load_account(kp.public_key)
    except Exception:
        ledger.fund(kp.public_key)
while True:
    seq = ledger.load_account(payer.public_key).sequence
    tb = TransactionBuilder(Account(payer.public_key, seq), ledger.network_passphrase, 100)
    for _ in range(20):
        tb.append_payment_op(sink.public_key, Asset.native(), "0.0000001")
    tx = tb.set_timeout(300).build()
    tx.sign(payer)
    result = ledger.submit(tx.to_xdr())
    if result.successful:
        print(result.hash, flush=True)  # acknowledged only after the commit returned
"""


def test_sigkill_never_corrupts(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    acknowledged: list[str] = []
    rng = random.Random(7)
    for _ in range(6):
        out = tmp_path / "acks.txt"
        with out.open("w") as fh:
            proc = subprocess.Popen(
                [sys.executable, str(script), str(db)], stdout=fh, stderr=subprocess.DEVNULL
            )
            time.sleep(2.5 + rng.random())  # start-up ~1.5 s, then submitting
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        acknowledged += out.read_text().split()
    assert len(acknowledged) > 50, "the writer never got going"
    ledger = EmbeddedLedger(db)
    assert ledger.verify_chain() >= len(acknowledged)
    for tx_hash in acknowledged:
        assert ledger.transaction(tx_hash).successful
    sink = ledger.load_account("GCFIRY65OQE7DFP5KLNS2PF2LVZMUZYJX4OZIEQ36N2IQANUB5XVYOJR")
    # every acknowledged payment of 20 x 1 stroop arrived (more may have: committed, unacked)
    assert sink.balance() >= 10_000 * 10_000_000 + 20 * len(acknowledged)
