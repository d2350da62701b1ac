"""Conformance of `ledger serve` with the official Stellar JS SDK (@stellar/stellar-sdk, pinned in
tests/js/package.json, installed by `make js`), run with node's own test runner."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ledger_helpers import serve_ledger

from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE

pytestmark = pytest.mark.slow

JS = Path(__file__).resolve().parent / "js"


def test_official_js_sdk_works_unchanged(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is missing (it ships with these machines; see README)"
    assert (JS / "node_modules" / "@stellar" / "stellar-sdk").is_dir(), "run `make js` first"
    with serve_ledger(tmp_path / "ledger.db") as url:
        proc = subprocess.run(
            [node, "--test", "--test-reporter=tap", "horizon.test.mjs"],
            cwd=JS,
            env=os.environ | {"HORIZON_URL": url, "NETWORK_PASSPHRASE": DEFAULT_PASSPHRASE},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    assert "# fail 0" in report and "# pass 10" in report, report[-3000:]


def test_official_js_sdk_rpc_server_works_unchanged(tmp_path: Path) -> None:
    """The JS SDK's Stellar RPC client (rpc.Server) against /rpc of the same server."""
    node = shutil.which("node")
    assert node, "node is missing (it ships with these machines; see README)"
    assert (JS / "node_modules" / "@stellar" / "stellar-sdk").is_dir(), "run `make js` first"
    with serve_ledger(tmp_path / "ledger.db") as url:
        proc = subprocess.run(
            [node, "--test", "--test-reporter=tap", "rpc.test.mjs"],
            cwd=JS,
            env=os.environ
            | {
                "RPC_URL": f"{url}/rpc",
                "HORIZON_URL": url,
                "NETWORK_PASSPHRASE": DEFAULT_PASSPHRASE,
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    assert "# fail 0" in report and "# pass 6" in report, report[-3000:]
