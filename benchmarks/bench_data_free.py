"""The examples' data-free defaults under attack: each example App (no server data, so no
value scorer) on 8 simulated nodes of which 2 are hostile, per attack kind, with the library's
defaults before issue 20 (``num-examples``, no norm bound, no reputation, no claim bound) and
after (``gradient-similarity``, the norm bound, claims held to the peers', reputation).

The example's own code runs unchanged in a scratch copy; the copy adds a ClientApp that wraps
the example's handlers with a hostile Mod inside the signing Mod (a node signing its own
poisoned reply), and a ServerApp line that picks the defaults to compare. Reports the
attackers' share of all DLC, the final federated accuracy and the rejections by reason;
writes benchmarks/results/data_free.json.

    python benchmarks/bench_data_free.py [--examples numpy-logreg pytorch-mlp]
        [--kinds none claims lazy freeride labelflip] [--rounds 8]

Attack kinds (parameters of our own): ``claims`` (claims 999,999 examples), ``lazy`` (sends a
tenth of its honest update, claims all its examples), ``freeride`` (the global model back),
``labelflip`` (trains on flipped labels: ``1 - y`` for the binary logreg, ``9 - y`` for the MLP).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "data_free.json"
PACKAGES = {"numpy-logreg": "logreg", "pytorch-mlp": "mlp"}

HOSTILE = '''"""The example's handlers behind a hostile Mod inside the signing Mod (benchmark)."""

from flwr.app import Array, ArrayRecord
from flwr.clientapp import ClientApp

from flwr_stellar import LedgerConfig, onboarding_reply, signing_mod
from PKG import client_app as example

def hostile_mod(msg, context, call_next):
    pid = int(context.node_config["partition-id"])
    nodes = [int(p) for p in str(context.run_config["attack-nodes"]).split(",") if p]
    kind = str(context.run_config["attack-kind"]) if pid in nodes else "none"
    reply = call_next(msg, context)  # labelflip: the example's own train_fn flips (see below)
    if reply.has_error() or msg.metadata.message_type != "train" or kind in ("none", "labelflip"):
        return reply
    sent = msg.content["arrays"]
    got = reply.content["arrays"]
    if kind == "claims":
        reply.content["metrics"]["num-examples"] = 999_999
    elif kind in ("lazy", "freeride"):
        keep = 0.1 if kind == "lazy" else 0.0
        reply.content["arrays"] = ArrayRecord(
            {
                k: Array((sent[k].numpy() + keep * (a.numpy() - sent[k].numpy())).astype(
                    a.numpy().dtype
                ))
                for k, a in got.items()
            }
        )
    return reply


app = ClientApp(mods=[signing_mod, hostile_mod])
app.train()(example.train_fn)
app.evaluate()(example.evaluate_fn)
app.query("onboard")(onboarding_reply)


def bench_config(output_dir, defences):
    """The library's defaults, or the defaults before issue 20."""
    if defences == "after":
        return LedgerConfig(output_dir=output_dir)
    from strategies.bounding import NormBound
    from strategies.reputation import Reputation
    from strategies.screening import Screening, default_checks

    checks = default_checks(
        {"claim_outlier": {"factor": 0.0}, "copied_update": {"max_cosine": 1.0}}
    )
    return LedgerConfig(
        output_dir=output_dir,
        scorer="num-examples",
        bound=NormBound("off"),
        reputation=Reputation(enabled=False, holdback=0.0),
        screening=Screening(checks=checks),
    )
'''


def scratch_copy(example: str) -> Path:
    """The example in a scratch folder, with the hostile ClientApp and the defaults switch."""
    package = PACKAGES[example]
    where = Path(tempfile.mkdtemp(prefix=f"bench-{example}-")) / example
    shutil.copytree(ROOT / "examples" / example, where)
    hostile = HOSTILE.replace("PKG", package)
    (where / package / "hostile.py").write_text(hostile)
    server = where / package / "server_app.py"
    text = server.read_text()
    text = text.replace(
        'config=LedgerConfig(output_dir=str(cfg["ledger-dir"]))',
        'config=bench_config(str(cfg["ledger-dir"]), str(cfg["defences"]))',
    )
    text = text.replace(
        "from flwr_stellar import LedgerConfig, LedgerStrategy",
        f"from flwr_stellar import LedgerStrategy\nfrom {package}.hostile import bench_config",
    )
    text = text.replace(
        'print(f"final evaluation: {result.evaluate_metrics_clientapp}")',
        "import json, pathlib\n"
        "    final = result.evaluate_metrics_clientapp[max(result.evaluate_metrics_clientapp)]\n"
        '    pathlib.Path(str(cfg["ledger-dir"]), "result.json").write_text(\n'
        '        json.dumps({"accuracy": float(final["accuracy"])})\n'
        "    )",
    )
    server.write_text(text)
    flip = "1 - y" if package == "logreg" else "9 - y"
    client = where / package / "client_app.py"
    ctext = client.read_text()
    marker = "    cfg = context.run_config\n"
    ctext = ctext.replace(
        marker,
        marker + "    hostile = str(cfg['attack-nodes']).split(',')\n"
        "    me = str(context.node_config['partition-id'])\n"
        f"    if cfg['attack-kind'] == 'labelflip' and me in hostile:\n        y = {flip}\n",
        1,
    )
    client.write_text(ctext)
    pyproject = where / "pyproject.toml"
    ptext = pyproject.read_text().replace(
        f'clientapp = "{package}.client_app:app"', f'clientapp = "{package}.hostile:app"'
    )
    ptext += '\nattack-kind = "none"\nattack-nodes = ""\ndefences = "after"\n'
    pyproject.write_text(ptext)
    return where


def run(app_dir: Path, overrides: dict[str, Any], nodes: int) -> int:
    """One simulated run of the App in ``app_dir``; returns its run id."""
    from flwr.common.config import get_fused_config_from_dir

    from flwr_stellar.app.simulation import simulate_app

    fused = get_fused_config_from_dir(app_dir, overrides)
    return simulate_app(app_dir, fused, overrides, nodes).run_id


def roles(run_id: int, nodes: int, hostile: set[int]) -> dict[str, str]:
    """Pseudonym -> role, from the nodes' development keystores (as the e2e test derives)."""
    from flwr_stellar.client.identity import DEV_PASSPHRASE, default_home
    from flwr_stellar.identity import derive_pseudonym, keystore

    out = {}
    for i in range(nodes):
        master = keystore.load(default_home() / "dev-keystores" / f"node-{i}.json", DEV_PASSPHRASE)
        role = "attacker" if i in hostile else "honest"
        out[derive_pseudonym(master, run_id).public_key] = role
    return out


def one(example: str, kind: str, defences: str, args: argparse.Namespace) -> dict[str, Any]:
    from flwr_stellar.payments.manifest import read_run_manifests

    app_dir = scratch_copy(example)
    out = app_dir.parent / "ledger-out"
    hostile = {int(p) for p in args.attackers.split(",")} if kind != "none" else set()
    started = time.perf_counter()
    run_id = run(
        app_dir,
        {
            "num-server-rounds": args.rounds,
            "fraction-evaluate": 1.0,
            "ledger-dir": str(out),
            "attack-kind": kind,
            "attack-nodes": ",".join(str(p) for p in sorted(hostile)),
            "defences": defences,
        },
        args.nodes,
    )
    who = roles(run_id, args.nodes, hostile)
    attackers = honest = 0
    rejects: dict[str, int] = {}
    for m in read_run_manifests(out, run_id):
        for pseudonym, amount in m.payments():
            if who.get(pseudonym) == "attacker":
                attackers += amount
            else:
                honest += amount
        for r in m.rejections:
            rejects[r.reason] = rejects.get(r.reason, 0) + 1
    total = attackers + honest
    accuracy = json.loads((out / "result.json").read_text())["accuracy"]
    return {
        "example": example,
        "kind": kind,
        "defences": defences,
        "nodes": args.nodes,
        "attackers": sorted(hostile),
        "rounds": args.rounds,
        "attacker_share": round(attackers / total, 4) if total else 0.0,
        "final_accuracy": round(accuracy, 4),
        "rejects": rejects,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", default=list(PACKAGES))
    parser.add_argument(
        "--kinds", nargs="+", default=["none", "claims", "lazy", "freeride", "labelflip"]
    )
    parser.add_argument("--defences", nargs="+", default=["before", "after"])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--attackers", default="2,5")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = json.loads(args.results.read_text())["rows"] if args.results.exists() else []
    for example in args.examples:
        for defences in args.defences:
            for kind in args.kinds:
                row = one(example, kind, defences, args)
                key = ("example", "kind", "defences", "nodes", "rounds")
                rows = [r for r in rows if any(r.get(k) != row[k] for k in key)] + [row]
                print(
                    f"{example:>13} {defences:>6} {kind:>10}: attackers "
                    f"{row['attacker_share']:.1%} of the DLC, accuracy {row['final_accuracy']:.3f},"
                    f" rejects {row['rejects']}",
                    flush=True,
                )
                args.results.parent.mkdir(parents=True, exist_ok=True)
                args.results.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
