"""`flwr-stellar ledger serve` as a child process on a free loopback port: for end-to-end
tests, benchmarks and local recipes that need a real Horizon-compatible endpoint."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests


@contextlib.contextmanager
def serving(db: Path, log: Path | None = None, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Start the server over ``db``, wait until it answers, yield its URL, stop it after."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = log.open("w") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flwr_stellar.cli",
                "ledger",
                "serve",
                "--db",
                str(db),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + start_timeout_s
            while True:
                try:
                    if requests.get(url, timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    detail = log.read_text() if log is not None else f"exit {proc.poll()}"
                    raise RuntimeError(f"ledger server did not come up: {detail}")
                time.sleep(0.1)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
