"""Crash injection for the exactly-once tests: ``FLWR_STELLAR_FAILPOINT=name[:n]`` makes the
process SIGKILL itself the n-th time (default 1st) it passes the named point. Unset, it costs
one dictionary lookup."""

from __future__ import annotations

import os
import signal

ENV = "FLWR_STELLAR_FAILPOINT"
_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
