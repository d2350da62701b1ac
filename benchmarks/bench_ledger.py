"""Embedded ledger throughput: signed 100-operation DLC payment transactions (the payout shape),
applied (1) directly by EmbeddedLedger on a WAL SQLite file and (2) through
`flwr-stellar ledger serve` on 127.0.0.1 with stellar_sdk.Server as the client; plus (3) peak
RSS while applying 1,000,000 operations, sampled every 100,000.

Direct application is measured with one transaction per ledger (`submit`) and with ledgers
of 10 transactions = 1,000 operations (`submit_many`, pubnet's classic ledger size), where
the SQLite commit is paid once a ledger. Envelopes are real: built once with stellar_sdk,
then for each sequence number the 8 sequence bytes are patched and the envelope re-signed
with ed25519 (so the benchmark measures the ledger, not the SDK's XDR encoder). Ratios are
against Stellar pubnet's classic capacity of ~1,000 operations per ~5 s ledger (200 ops/s).
Writes benchmarks/results/ledger.json.

    python benchmarks/bench_ledger.py [--direct-ops N] [--http-ops N] [--memory-ops N]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import struct
import tempfile
import time
from pathlib import Path

from nacl.signing import SigningKey
from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.serve_process import serving

PUBNET_OPS_PER_S = 1000 / 5
OPS_PER_TX = 100
RESULTS = Path(__file__).resolve().parent / "results"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Payouts:
    """A distributor paying DLC to 100 holders, as signed envelopes with patched sequences."""

    def __init__(self, ledger: EmbeddedLedger) -> None:
        self.ledger = ledger
        issuer, self.distributor = Keypair.random(), Keypair.random()
        holders = [Keypair.random() for _ in range(OPS_PER_TX)]
        for kp in (issuer, self.distributor, *holders):
            assert ledger.fund(kp.public_key).successful
        dlc = Asset("DLC", issuer.public_key)
        for kp in (self.distributor, *holders):
            self._send(kp, lambda t: t.append_change_trust_op(dlc))
        self._send(
            issuer, lambda t: t.append_payment_op(self.distributor.public_key, dlc, "900000000000")
        )
        builder = TransactionBuilder(
            Account(self.distributor.public_key, 0), ledger.network_passphrase, 100
        )
        for kp in holders:
            builder.append_payment_op(kp.public_key, dlc, "0.0000001")
        tx = builder.set_timeout(0).build()
        tx.transaction.preconditions = None  # no time bounds: envelopes stay valid
        self.template = bytearray(base64.b64decode(tx.to_xdr()))
        self.key = SigningKey(self.distributor.raw_secret_key())
        self.hint = self.distributor.raw_public_key()[-4:]
        self.network_id = hashlib.sha256(ledger.network_passphrase.encode()).digest()

    def _send(self, kp: Keypair, op) -> None:  # type: ignore[no-untyped-def]
        seq = self.ledger.load_account(kp.public_key).sequence
        tx = (
            op(TransactionBuilder(Account(kp.public_key, seq), self.ledger.network_passphrase, 100))
            .set_timeout(300)
            .build()
        )
        tx.sign(kp)
        assert self.ledger.submit(tx.to_xdr()).successful

    def next_sequence(self) -> int:
        return self.ledger.load_account(self.distributor.public_key).sequence + 1

    def envelope(self, seq: int) -> str:
        raw = self.template
        raw[44:52] = struct.pack(">q", seq)  # type(4) source(36) fee(4) then seq
        tx_bytes = bytes(raw[4:])
        tx_bytes = tx_bytes[:-4]  # the template carries an empty signature array (4 bytes)
        digest = hashlib.sha256(self.network_id + struct.pack(">i", 2) + tx_bytes).digest()
        signature = self.key.sign(digest).signature
        signed = (
            bytes(raw[:-4]) + struct.pack(">i", 1) + self.hint + struct.pack(">i", 64) + signature
        )
        return base64.b64encode(signed).decode()


def throughput(operations: int, elapsed: float, **extra: int) -> dict[str, float]:
    rate = operations / elapsed
    return {
        "operations": operations,
        **extra,
        "seconds": round(elapsed, 3),
        "ops_per_s": round(rate),
        "ratio_to_pubnet": round(rate / PUBNET_OPS_PER_S, 1),
    }


def bench_direct(ops: int, per_ledger: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = EmbeddedLedger(Path(tmp) / "ledger.db")
        payouts = Payouts(ledger)
        seq, n = payouts.next_sequence(), ops // OPS_PER_TX
        envelopes = [payouts.envelope(seq + i) for i in range(n)]
        started = time.perf_counter()
        for start in range(0, n, per_ledger):
            results = ledger.submit_many(envelopes[start : start + per_ledger])
            assert all(r.successful for r in results)
        elapsed = time.perf_counter() - started
        ledger.verify_chain()
    return throughput(n * OPS_PER_TX, elapsed, transactions_per_ledger=per_ledger)


def bench_http(ops: int) -> dict[str, float]:
    from stellar_sdk import Server

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        EmbeddedLedger(db).close()
        with serving(db) as url:
            # set-up through a second connection to the same file (WAL allows it)
            payouts = Payouts(EmbeddedLedger(db))
            server = Server(url)
            seq, n = payouts.next_sequence(), ops // OPS_PER_TX
            envelopes = [payouts.envelope(seq + i) for i in range(n)]
            started = time.perf_counter()
            for env in envelopes:
                resp = server.submit_transaction(env, skip_memo_required_check=True)
                assert resp["successful"]
            elapsed = time.perf_counter() - started
    return throughput(n * OPS_PER_TX, elapsed, transactions_per_ledger=1)


def bench_memory(ops: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = EmbeddedLedger(Path(tmp) / "ledger.db")
        payouts = Payouts(ledger)
        seq = payouts.next_sequence()
        samples, started = [], time.perf_counter()
        for i in range(0, ops // OPS_PER_TX, 10):  # ledgers of 10 x 100 operations
            batch = [payouts.envelope(seq + i + k) for k in range(10)]
            assert all(r.successful for r in ledger.submit_many(batch))
            done = (i + 10) * OPS_PER_TX
            if done % 100_000 == 0:
                samples.append(
                    {
                        "operations": done,
                        "rss_mb": round(rss_mb(), 1),
                        "elapsed_s": round(time.perf_counter() - started, 1),
                    }
                )
                print(f"  {done:>9,} ops  RSS {samples[-1]['rss_mb']} MB", flush=True)
        db_mb = (Path(tmp) / "ledger.db").stat().st_size / 2**20
    first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    return {
        "operations": ops,
        "samples": samples,
        "rss_growth_mb_after_first_100k": round(float(last) - float(first), 1),
        "db_file_mb": round(db_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direct-ops", type=int, default=100_000)
    parser.add_argument("--http-ops", type=int, default=20_000)
    parser.add_argument("--memory-ops", type=int, default=1_000_000)
    args = parser.parse_args()
    result: dict[str, object] = {
        "benchmark": "embedded_ledger",
        "ops_per_tx": OPS_PER_TX,
        "pubnet_reference_ops_per_s": PUBNET_OPS_PER_S,
    }
    result["direct_one_tx_per_ledger"] = bench_direct(args.direct_ops, 1)
    print("direct, 1 tx a ledger  :", result["direct_one_tx_per_ledger"], flush=True)
    result["direct_ten_tx_per_ledger"] = bench_direct(args.direct_ops, 10)
    print("direct, 10 tx a ledger :", result["direct_ten_tx_per_ledger"], flush=True)
    result["http"] = bench_http(args.http_ops)
    print("http   :", result["http"], flush=True)
    if args.memory_ops:
        result["memory"] = bench_memory(args.memory_ops)
        print("memory :", {k: v for k, v in result["memory"].items() if k != "samples"})
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "ledger.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
