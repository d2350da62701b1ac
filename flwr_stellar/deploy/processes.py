"""Long-lived processes a deployment started: recorded so that ``status`` and ``down`` act on
exactly those and nothing else.

A record holds the pid and the full argument vector; a pid counts as ours only while
``/proc/<pid>/cmdline`` still equals that vector, so a recycled pid is never signalled. Flower
starts helpers (``flower-superexec``, ``flwr-serverapp``, ``flwr-clientapp``) in their own
sessions, so stopping walks the process tree by parent pid rather than by process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STOP_GRACE_S = 15.0
EXEC_WAIT_S = 10.0


@dataclass(frozen=True)
class ProcessRecord:
    """One started process: what ran, where its output goes, and how to reach it."""

    name: str
    argv: tuple[str, ...]
    pid: int
    log: str
    port: int | None = None

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["argv"] = list(self.argv)
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ProcessRecord:
        try:
            return cls(
                name=str(doc["name"]),
                argv=tuple(str(a) for a in doc["argv"]),
                pid=int(doc["pid"]),
                log=str(doc["log"]),
                port=None if doc.get("port") is None else int(doc["port"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"malformed process record {dict(doc)!r}: {err}") from None


def _cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_running(record: ProcessRecord) -> bool:
    """True while the recorded pid is alive (not a zombie) and still runs the recorded argv.

    Python entry points show up as ``python .../flower-superlink ...``; the recorded argv must
    be the tail of the live command line.
    """
    live = _cmdline(record.pid)
    if live is None or _state(record.pid) in (None, "Z", "X"):
        return False
    return live[-len(record.argv) :] == record.argv


def start(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str],
    cwd: Path,
    port: int | None = None,
) -> ProcessRecord:
    """Start ``argv`` detached in its own session, output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = ProcessRecord(name, tuple(argv), proc.pid, str(log), port)
    # until exec() completes, /proc shows the parent's command line: wait for it so the record
    # is recognised as running from the start
    deadline = time.monotonic() + EXEC_WAIT_S
    while not is_running(record) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return record


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first found, then theirs)."""
    tree = _children()
    found: list[int] = []
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(tree.get(child, []))
    return found


def _alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z", "X")


def stop(record: ProcessRecord, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM the recorded process and everything it started; SIGKILL what is left after
    ``grace_s``. Returns False when the record was not running (nothing was signalled)."""
    if not is_running(record):
        return False
    tree = [record.pid, *descendants(record.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_alive(p) for p in tree):
            time.sleep(0.1)
        tree = [p for p in tree if _alive(p)]
        if not tree:
            break
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(record.pid, os.WNOHANG)  # reap it when we are its parent (tests)
    return True
