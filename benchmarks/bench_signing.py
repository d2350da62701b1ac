"""Cost of hashing + signing a model update vs one plain SHA-256 pass over the same bytes.

Side by side in one run, for a 10 MB and a 100 MB update (float32 arrays in an ArrayRecord):
- sha256:        hashlib.sha256 over every array's bytes (the floor)
- digest+sign:   flwr_stellar.protocol.digest.reply_digest + ed25519 signature (what the Mod does)
- digest+verify: what the server does per reply
- object_id:     Flower's own record hash, for reference
Median of N repetitions each; ratios are medians of per-repetition ratios.
Writes benchmarks/results/signing.json.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
from stellar_sdk import Keypair

from flwr_stellar.protocol.digest import Binding, reply_digest
from flwr_stellar.protocol.signature import sign_reply, verify_content

REPS = 7
BINDING = Binding(1, 1, b"n" * 32, "instruction", "train")


def content_of(megabytes: int) -> RecordDict:
    rng = np.random.default_rng(0)
    n = megabytes * 1024 * 1024 // 4
    sizes = [n // 2, n // 4, n // 8, n - n // 2 - n // 4 - n // 8]  # a few layers
    arrays = {
        f"layer{i}": Array(rng.standard_normal(s).astype(np.float32)) for i, s in enumerate(sizes)
    }
    return RecordDict(
        {"arrays": ArrayRecord(arrays), "metrics": MetricRecord({"num-examples": 100, "loss": 0.1})}
    )


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench(megabytes: int, kp: Keypair) -> dict[str, float]:
    content = content_of(megabytes)
    arrays = list(content["arrays"].values())

    def sha() -> None:
        h = hashlib.sha256()
        for a in arrays:
            h.update(a.data)
        h.digest()

    def sign() -> None:
        sign_reply(content, BINDING, kp)

    def verify() -> None:
        assert verify_content(content, BINDING).ok

    def object_id() -> None:
        fresh = ArrayRecord(
            {k: Array(np.frombuffer(v.data, np.float32)) for k, v in content["arrays"].items()}
        )
        _ = fresh.object_id

    sign()  # warm-up, and gives verify something to check
    rows: dict[str, list[float]] = {"sha256": [], "sign": [], "verify": [], "object_id": []}
    for _ in range(REPS):  # interleaved, so drift hits all alike
        rows["sha256"].append(timed(sha))
        rows["sign"].append(timed(sign))
        rows["verify"].append(timed(verify))
        rows["object_id"].append(timed(object_id))
    ratio = lambda k: statistics.median(  # noqa: E731
        x / s for x, s in zip(rows[k], rows["sha256"], strict=True)
    )
    reply_digest(content, BINDING)
    return {
        "megabytes": megabytes,
        "sha256_ms": round(statistics.median(rows["sha256"]) * 1e3, 2),
        "digest_sign_ms": round(statistics.median(rows["sign"]) * 1e3, 2),
        "digest_verify_ms": round(statistics.median(rows["verify"]) * 1e3, 2),
        "flower_object_id_ms": round(statistics.median(rows["object_id"]) * 1e3, 2),
        "sign_vs_sha256": round(ratio("sign"), 3),
        "verify_vs_sha256": round(ratio("verify"), 3),
        "object_id_vs_sha256": round(ratio("object_id"), 3),
    }


def main() -> None:
    kp = Keypair.random()
    results = [bench(mb, kp) for mb in (10, 100)]
    for r in results:
        print(
            f"{r['megabytes']:>4} MB: sha256 {r['sha256_ms']} ms | digest+sign "
            f"{r['digest_sign_ms']} ms ({r['sign_vs_sha256']}x) | digest+verify "
            f"{r['digest_verify_ms']} ms ({r['verify_vs_sha256']}x) | Flower object_id "
            f"{r['flower_object_id_ms']} ms ({r['object_id_vs_sha256']}x)"
        )
    out = Path(__file__).resolve().parent / "results" / "signing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"benchmark": "signing", "repetitions": REPS, "results": results}, indent=2)
        + "\n"
    )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
