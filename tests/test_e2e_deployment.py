"""End-to-end on loopback: flower-superlink + two flower-supernodes with real keystores from
--node-config, `flwr run` in deployment mode; every reply signed by the node's own pseudonym."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flwr_stellar.app.config import PROJECT_DIR
from flwr_stellar.flwr_run import flwr_env, run_status
from flwr_stellar.identity import derive_pseudonym, keystore

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def test_deployment_with_node_keystores(tmp_path: Path) -> None:
    home = tmp_path / "flwr-home"
    home.mkdir()
    link = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "deploy"\n\n[superlink.deploy]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    env = flwr_env(home)
    masters, procs, logs = [], [], []
    pass_file = tmp_path / "pass"
    pass_file.write_text("node-pass\n")
    pass_file.chmod(0o600)

    def spawn(name: str, *cmd: str) -> None:
        log = (tmp_path / f"{name}.log").open("w")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                list(cmd),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                start_new_session=True,
            )
        )

    try:
        spawn(
            "superlink",
            str(BIN / "flower-superlink"),
            "--insecure",
            "--host",
            "127.0.0.1",
            "--port",
            str(link),
            "--database",
            str(tmp_path / "state.db"),
            "--disable-runtime-dependency-installation",
        )
        wait_for_port(link)
        for pid in range(2):
            master = keystore.MasterSecret.generate()
            store = keystore.save(
                tmp_path / f"node{pid}.json", master, "node-pass", kdf=keystore.KdfParams(n=2**10)
            )
            masters.append(master)
            spawn(
                f"supernode{pid}",
                str(BIN / "flower-supernode"),
                "--insecure",
                "--superlink",
                f"127.0.0.1:{link}",
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--node-config",
                f"partition-id={pid} num-partitions=2 keystore='{store}' "
                f"passphrase-file='{pass_file}'",
            )
        out = tmp_path / "out"
        run = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(PROJECT_DIR),
                "deploy",
                "--stream",
                "--run-config",
                f"num_rounds=2 dataset.max_train_examples=100 identity.dev_keystores=false "
                f'output_dir="{out}"',
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
        assert "Successfully started run" in run.stdout, run.stdout + run.stderr
        run_id = run.stdout.split("Successfully started run ")[1].split()[0]
        status = run_status(run_id, home, federation="deploy")
        assert status == "finished:completed", run.stdout[-3000:]
        metrics = json.loads((out / "metrics.json").read_text())
        expected = {derive_pseudonym(m, int(run_id)).public_key for m in masters}
        for server_round in ("1", "2"):
            train = metrics["verification"][server_round]["train"]
            assert set(train["accepted"].values()) == expected and train["rejected"] == []
        assert not (out / "keystores").exists()  # real keystores, no dev ones
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs:
            log.close()
