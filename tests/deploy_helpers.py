"""Shared checks of the deployment end-to-end tests: what a finished (or settled) run left on
the ledger, read back through the Horizon API, against its manifests."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from flwr_stellar.deploy import processes
from flwr_stellar.deploy.stack import Deployment
from flwr_stellar.identity import derive_pseudonym, keystore
from flwr_stellar.ledger.base import Ledger
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.payments.manifest import RoundManifest
from flwr_stellar.payments.treasury import DEV_TREASURY_PASSPHRASE, Treasury

PROJECT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "flwr_stellar.cli"]
# small and quick: 200 examples a node a round, no central evaluation on 10k images
FAST = [
    "dataset.max_train_examples=200",
    "dataset.server_val_size=500",
    "evaluation.central=false",
    "identity.dev_keystores=false",
    'reward.scorer="num-examples"',  # the deployment is the subject: every honest node paid
]


def run_config(ledger_url: str, out: Path, rounds: int, *extra: str) -> list[str]:
    return [
        f"num_rounds={rounds}",
        *FAST,
        'ledger.backend="horizon"',
        f'ledger.horizon_url="{ledger_url}"',
        f'output_dir="{out}"',
        *extra,
    ]


def node_pseudonyms(deployment: Deployment, nodes: int, run_id: int) -> list[str]:
    """The pseudonym each node derives for the run from its own keystore."""
    found = []
    for i in range(nodes):
        node = deployment.node_dir(i)
        master = keystore.load(node / "keystore.json", (node / "passphrase").read_text().strip())
        found.append(derive_pseudonym(master, run_id).public_key)
    return found


def manifests_of(out: Path) -> list[RoundManifest]:
    found = [RoundManifest.decode(p.read_bytes()) for p in (out / "manifests").glob("*.json")]
    return sorted(found, key=lambda m: m.server_round)


def check_ledger_matches(out: Path, ledger_url: str, db: Path | None = None) -> dict[str, int]:
    """Every manifest anchored by exactly one distributor transaction per payment part (none
    lost, none twice), and every pseudonym's balance on the Horizon API (or in the ledger file
    ``db`` when the API is out of this process's reach) equal to what the manifests owe it.
    Returns pseudonym -> DLC owed (stroops)."""
    manifests = manifests_of(out)
    assert manifests, f"no manifests in {out}"
    treasury = Treasury.from_master(
        keystore.load(out / "treasury.json", DEV_TREASURY_PASSPHRASE), "DLC"
    )
    ledger: Ledger = (
        HorizonLedger(ledger_url, DEFAULT_PASSPHRASE) if db is None else EmbeddedLedger(db)
    )
    try:
        records = ledger.account_transactions(treasury.distributor.public_key, limit=200).records
        memos = Counter(
            base64.b64decode(t.memo).hex()
            for t in records
            if t.memo_type == "hash" and t.memo and t.successful
        )
        owed: dict[str, int] = {}
        for m in manifests:
            assert memos[m.hash()] == 1, f"round {m.server_round} anchored {memos[m.hash()]}x"
            for pseudonym, amount in m.payments():  # payouts, and the last round's releases
                owed[pseudonym] = owed.get(pseudonym, 0) + amount
        for pseudonym, amount in owed.items():
            if amount:
                assert ledger.load_account(pseudonym).balance(treasury.asset_id) == amount
        return owed
    finally:
        ledger.close()


def _run_argv(dir_: Path, config: tuple[str, ...]) -> list[str]:
    return [*CLI, "deploy", "run", str(dir_), "--app-dir", str(PROJECT), "--run-config", *config]


def deploy_run(dir_: Path, *config: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`flwr-stellar deploy run` of the reference app, to the end."""
    return subprocess.run(
        _run_argv(dir_, config), capture_output=True, text=True, timeout=timeout, check=False
    )


def start_deploy_run(dir_: Path, *config: str) -> subprocess.Popen[str]:
    """The same, in the background (output merged into stdout), for faults injected meanwhile."""
    return subprocess.Popen(
        _run_argv(dir_, config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def run_id_of(output: str) -> int:
    return int(output.split("Successfully started run ")[1].split()[0])


def wait_for(predicate, timeout: float, what: str, every: float = 0.5) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything below it: a host losing power, as far as it goes."""
    for p in [pid, *processes.descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def all_stopped(deployment: Deployment) -> list[str]:
    """Names of recorded processes (or any process below them) still alive: must be []."""
    return [
        name for name, record in deployment.state.processes.items() if processes.is_running(record)
    ]


def metrics_of(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "metrics.json").read_text())
