"""``flwr run .`` on a local simulation federation, with an honest exit status.

Flower 1.41 keeps federations in ``$FLWR_HOME/config.toml``; ``:local:`` starts a detached
SuperLink on first use. ``flwr run --stream`` exits 0 even when the run failed, so this
helper asks ``flwr ls`` for the run's final status, and stops the SuperLink it started so no
process outlives the command (a leftover would hold CI's stdout open).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

FEDERATION_TOML = """\
# Written by flwr-stellar: a local simulation federation for `flwr run . local`.
[superlink]
default = "local"

[superlink.local]
address = ":local:"
"""
RUN_ID = re.compile(r"Successfully started run (\d+)")


class FlwrRunError(RuntimeError):
    """The run could not be started or did not finish as completed."""


def ensure_federation(flwr_home: Path) -> Path:
    """Write config.toml with a ``local`` simulation federation unless one exists."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    config = flwr_home / "config.toml"
    if not config.exists():
        config.write_text(FEDERATION_TOML)
    elif "[superlink.local]" not in config.read_text():
        raise FlwrRunError(f"{config} exists but defines no [superlink.local] federation")
    return config


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def flwr_env(flwr_home: Path) -> dict[str, str]:
    """Environment for ``flwr``: this interpreter's bin/ first, so its SuperLink is found."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]),
        FLWR_HOME=str(flwr_home),
        FLWR_TELEMETRY_ENABLED=env.get("FLWR_TELEMETRY_ENABLED", "0"),
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
    )
    return env


def _flwr() -> str:
    beside = Path(sys.executable).parent / "flwr"
    return str(beside) if beside.exists() else "flwr"


def local_superlink_pids(flwr_home: Path) -> list[int]:
    """PIDs of the SuperLink that ``:local:`` started for this FLWR_HOME (Linux /proc)."""
    marker = str(flwr_home / "local-superlink" / "state.db").encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"flower-superlink" in cmdline and marker in cmdline:
            pids.append(int(proc.name))
    return pids


def stop_local_superlink(flwr_home: Path, grace_s: float = 10.0) -> list[int]:
    pids = local_superlink_pids(flwr_home)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.1)
        pids = [p for p in pids if Path(f"/proc/{p}").exists()]
        if not pids:
            break
    return pids


def run_status(run_id: str, flwr_home: Path, federation: str = "local") -> str:
    out = subprocess.run(
        [_flwr(), "ls", federation, "--run-id", run_id, "--format", "json"],
        env=flwr_env(flwr_home),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        runs = json.loads(out.stdout)["runs"]
        return str(runs[0]["status"])
    except (ValueError, KeyError, IndexError):
        raise FlwrRunError(
            f"cannot read status of run {run_id}: {out.stdout}{out.stderr}"
        ) from None


def flwr_run(
    *,
    app_dir: Path | None = None,
    flwr_home: Path | None = None,
    num_supernodes: int = 10,
    cpus_per_client: int = 1,
    run_config: Sequence[str] = (),
    keep_superlink: bool = False,
    federation: str = "local",
) -> str:
    """Run the App in ``app_dir`` (default: the working directory) with ``flwr run``; return
    the run id; raise unless it completed.

    ``federation="local"`` is a simulation on a SuperLink this call starts (and stops unless
    ``keep_superlink``); any other name must be a connection in ``flwr_home``'s config.toml,
    e.g. the ``deploy`` one ``flwr-stellar deploy up`` writes.
    """
    app_dir = (app_dir or Path.cwd()).resolve()
    home = (flwr_home or app_dir / ".flwr-home").resolve()
    cmd = [_flwr(), "run", str(app_dir), federation, "--stream"]
    if federation == "local":
        ensure_federation(home)
        cmd += [
            "--federation-config",
            f"num-supernodes={num_supernodes} client-resources-num-cpus={cpus_per_client}",
        ]
    elif f"[superlink.{federation}]" not in _read(home / "config.toml"):
        raise FlwrRunError(f"{home / 'config.toml'} defines no [superlink.{federation}]")
    if run_config:
        cmd += ["--run-config", " ".join(run_config)]
    run_id = None
    try:
        with subprocess.Popen(
            cmd,
            env=flwr_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                if run_id is None and (m := RUN_ID.search(line)):
                    run_id = m.group(1)
        if run_id is None:
            raise FlwrRunError(f"`flwr run` started no run (exit code {proc.returncode})")
        status = run_status(run_id, home, federation)
        if status != "finished:completed":
            raise FlwrRunError(f"run {run_id} ended as {status!r}")
        return run_id
    finally:
        if federation == "local" and not keep_superlink:
            stop_local_superlink(home)
