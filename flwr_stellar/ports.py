"""Loopback ports and readiness of the servers we start (ledger server, SuperLink): one free
port, one wait loop, shared by ``deploy`` and the test/benchmark helper ``serve_process``."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import requests

LOOPBACK = "127.0.0.1"


class NotReadyError(RuntimeError):
    """A server did not come up: its process exited, or the timeout passed."""


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait(
    ready: Callable[[], bool], alive: Callable[[], bool], timeout_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive():
            raise NotReadyError(f"the process meant to serve {what} exited")
        time.sleep(0.1)
    raise NotReadyError(f"nothing serves {what} after {timeout_s:.0f} s")


def wait_for_port(host: str, port: int, timeout_s: float, alive: Callable[[], bool]) -> None:
    """Until something accepts TCP connections on ``host:port``."""

    def ready() -> bool:
        with socket.socket() as s:
            s.settimeout(1.0)
            return s.connect_ex((host, port)) == 0

    _wait(ready, alive, timeout_s, f"{host}:{port}")


def wait_for_http(url: str, timeout_s: float, alive: Callable[[], bool]) -> None:
    """Until ``GET url`` answers 200."""

    def ready() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    _wait(ready, alive, timeout_s, url)
