"""What links a provider's runs on the ledger, measured: two runs of the reference app with the
same node keystores on one ledger, then an observer who sees only the ledger tries to pair each
pseudonym of run A with the same node's pseudonym of run B.

The observer reads the distributor's transactions (every payout, from the envelopes alone) and
every account's creation. Three linkers:

- **amounts**: a pseudonym's payouts, sorted, as a fingerprint; a pseudonym of run A is linked
  to the run-B pseudonym with the same fingerprint when exactly one has it;
- **nearest**: the run-B pseudonym whose per-round payouts are closest (L1) is the guess;
- **sponsor**: pseudonyms whose accounts the same sponsor created (this links every provider of
  a server to that server, not providers to each other: it is reported as the share of
  pseudonyms with an account).

Configurations (num-examples scoring, the worst case: a node's claim is the size of its local
data, the same in every run): direct payments with exact amounts (before), with payouts
quantized to whole coins (``reward.quantum``), and claimable payouts quantized to 1 and to 5
coins (of a 100-coin round). Writes
benchmarks/results/linkability.json.

    python benchmarks/bench_linkability.py [--nodes N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from demo_runner import write

CONFIGS = {
    "payments, exact amounts": {"reward.payout": "payment", "reward.quantum": "0.0000001"},
    "payments, quantum 1 DLC": {"reward.payout": "payment", "reward.quantum": "1"},
    "claimable, quantum 1 DLC": {"reward.payout": "claimable", "reward.quantum": "1"},
    "claimable, quantum 5 DLC": {"reward.payout": "claimable", "reward.quantum": "5"},
}


def two_runs(overrides: dict[str, Any], nodes: int, rounds: int) -> Path:
    """Two runs in one folder: one treasury, one ledger, the same node keystores."""
    from flwr_stellar.app.simulation import run_app_simulation

    out = Path(tempfile.mkdtemp(prefix="bench-link-"))
    for _ in range(2):
        run_app_simulation(
            {
                "num_rounds": rounds,
                "output_dir": str(out),
                "evaluation.central": False,
                "reward.scorer": "num-examples",
                "dataset.max_train_examples": 0,  # a node's claim: all its local data
                "model.name": "cnn_small",
                **overrides,
            },
            num_supernodes=nodes,
        )
    return out


def truth(out: Path) -> dict[int, dict[str, str]]:
    """run id -> node file -> pseudonym, from the nodes' journals (never seen by the observer)."""
    from flwr_stellar.client.journal import Journal

    found: dict[int, dict[str, str]] = defaultdict(dict)
    for path in sorted((out / "keystores").glob("node-*.journal")):
        for entry in Journal(path).entries(kind="sent"):
            found[entry["run_id"]][path.stem] = entry["pseudonym"]
    return dict(found)


def observe(out: Path) -> tuple[dict[str, list[int]], dict[str, str]]:
    """From the ledger alone: each destination's payouts in ledger order, and who created each
    account (the sponsor of its onboarding)."""
    from stellar_sdk import xdr

    from flwr_stellar.ledger.decode import decode_envelope, iter_pages
    from flwr_stellar.ledger.embedded import EmbeddedLedger

    ledger = EmbeddedLedger(out / "ledger.db")
    payouts: dict[str, list[int]] = defaultdict(list)
    created_by: dict[str, str] = {}
    for record in iter_pages(lambda c: ledger.transactions(cursor=c, limit=200)):
        if record.memo_type == "hash" and record.successful:
            _, payments, _ = decode_envelope(record)
            for destination, _asset, amount in payments:
                payouts[destination].append(amount)
        envelope = xdr.TransactionEnvelope.from_xdr(record.envelope_xdr)
        if envelope.v1 is not None:
            for op in envelope.v1.tx.operations:
                if op.body.type == xdr.OperationType.CREATE_ACCOUNT and record.successful:
                    from flwr_stellar.ledger.embedded.ops.xdr_util import account_id

                    created_by[account_id(op.body.create_account_op.destination)] = record.source
    ledger.close()
    return dict(payouts), created_by


def _distance(one: tuple[int, ...], other: tuple[int, ...]) -> int:
    """L1 distance of two payout lists, the shorter padded with zeros."""
    width = max(len(one), len(other))
    a, b = list(one) + [0] * (width - len(one)), list(other) + [0] * (width - len(other))
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


def link(
    truth_by_run: dict[int, dict[str, str]],
    payouts: dict[str, list[int]],
    created_by: dict[str, str],
) -> dict[str, Any]:
    (run_a, a), (run_b, b) = sorted(truth_by_run.items())
    nodes = sorted(set(a) & set(b))
    fingerprint = {p: tuple(sorted(payouts.get(p, []))) for p in [*a.values(), *b.values()]}
    exact_right = exact_wrong = 0
    nearest_right = 0
    for node in nodes:
        mine = fingerprint[a[node]]
        same = [n for n in nodes if fingerprint[b[n]] == mine]
        if len(same) == 1:
            exact_right += same[0] == node
            exact_wrong += same[0] != node

        guess = min(nodes, key=lambda n: (_distance(mine, fingerprint[b[n]]), n))
        nearest_right += guess == node
    pseudonyms = [*a.values(), *b.values()]
    sponsors = {created_by[p] for p in pseudonyms if p in created_by}
    return {
        "runs": [run_a, run_b],
        "nodes_in_both": len(nodes),
        "amounts_linked_right": exact_right,
        "amounts_linked_wrong": exact_wrong,
        "nearest_right": nearest_right,
        "chance_nearest": round(1 / len(nodes), 3) if nodes else None,
        "pseudonyms_with_an_account": sum(p in created_by for p in pseudonyms),
        "pseudonyms": len(pseudonyms),
        "creators_of_those_accounts": len(sponsors),
        "distinct_fingerprints_run_a": len({fingerprint[a[n]] for n in nodes}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results = {}
    for name, overrides in CONFIGS.items():
        started = time.perf_counter()
        out = two_runs(overrides, args.nodes, args.rounds)
        payouts, created_by = observe(out)
        results[name] = link(truth(out), payouts, created_by) | {
            "overrides": overrides,
            "wall_s": round(time.perf_counter() - started, 1),
        }
        print(name, json.dumps(results[name]), flush=True)
    path = write(
        "linkability",
        {"nodes": args.nodes, "rounds": args.rounds, "scorer": "num-examples", "configs": results},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
