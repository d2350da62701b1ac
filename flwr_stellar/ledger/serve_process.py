"""`flwr-stellar ledger serve` as a child process on a free loopback port: for end-to-end
tests, benchmarks and local recipes that need a real Horizon-compatible endpoint."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from flwr_stellar.ports import NotReadyError, free_port, wait_for_http


@contextlib.contextmanager
def serving(
    db: Path,
    log: Path | None = None,
    start_timeout_s: float = 30.0,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Start the server over ``db``, wait until it answers, yield its URL, stop it after.

    ``extra_args`` go to ``ledger serve`` as given (e.g. ``--rpc-retention-window 5``).
    """
    port = free_port()
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
                *extra_args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                wait_for_http(url, start_timeout_s, lambda: proc.poll() is None)
            except NotReadyError as err:
                detail = log.read_text() if log is not None else f"exit {proc.poll()}"
                raise RuntimeError(f"ledger server did not come up ({err}): {detail}") from None
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
