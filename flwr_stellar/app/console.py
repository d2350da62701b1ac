"""What the reference app's Hydra front door shows in a terminal, and the full log it keeps.

A bare run (Flower 1.42) greets a newcomer with three kinds of noise, each from its own place:

- ``alembic.runtime.plugins`` INFO ``setup plugin ...``: importing Flower's simulation imports
  ``alembic`` (Flower keeps its SQL state migrations in it) and alembic >= 1.17 logs each of
  its built-in plugins at import. No migration runs; it happens in this process, and showed
  because Hydra's default job logging put the root logger at INFO on stdout.
- logger ``flwr`` (Flower, and this project, which logs through Flower's ``log``): its own
  ``ConsoleHandler`` on stderr at INFO prints the strategy's banner, ``[ROUND k/N]``,
  ``configure_train``/``aggregate_train``, every MetricRecord and the whole metric history at
  the end. The ServerApp runs in a thread of this process, so this is ordinary logging here.
- ClientApps run in Ray worker processes. Their output reaches this terminal through Ray's log
  forwarding (``log_to_driver``), not through logging here, so no handler set here applies;
  Flower reads ``FLWR_LOG_LEVEL`` when it is imported in the worker, and Ray starts its
  workers with this process's environment.

:func:`app_console` sets this up for one run of the reference app, and only there: the library
never touches logging configuration (a user's own app keeps theirs). The terminal gets
WARNING and above from every logger plus one progress line over the rounds (a rich bar on a
terminal, one plain line per round otherwise); ``run.log`` in the run's output folder gets
everything from INFO up, this project's and Flower's lines included. Everything is put back
as it was when the run ends.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from flwr.common.logger import ConsoleHandler as FlowerConsoleHandler

LOG_FILE = "run.log"
# What Flower's Strategy.start logs around each round (flwr/serverapp/strategy/strategy.py);
# the progress line reads the values these records carry, never their text.
FLOWER_ROUND = "[ROUND %s/%s]"
FLOWER_AGGREGATED = "\t└──> Aggregated MetricRecord: %s"  # train first, then evaluate
FLOWER_CENTRAL = "\t└──> MetricRecord: %s"  # the ServerApp's central evaluation
FLOWER_FINISHED = "Strategy execution finished in %.2fs"
FLOWER_TEMPLATES = (FLOWER_ROUND, FLOWER_AGGREGATED, FLOWER_CENTRAL, FLOWER_FINISHED)
LEVEL_COLORS = {"WARNING": "33", "ERROR": "31", "CRITICAL": "35"}
MUTED = logging.CRITICAL + 1  # a handler at this level passes nothing


def clock(seconds: float) -> str:
    """``H:MM:SS``."""
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass(frozen=True)
class RoundStatus:
    """Where a run stands after one of its rounds.

    Parameters
    ----------
    server_round, num_rounds : int
        The round that just ended, of how many.
    accepted, rejected : int or None
        Replies the plugin accepted / rejected this round (None: the strategy does not say).
    dlc_paid : float or None
        DLC paid (or owed) so far, all rounds together (None: no ledger).
    accuracy : float or None
        The central test accuracy after this round (None: no central evaluation).
    elapsed_s : float
        Seconds since the run started.
    eta_s : float or None
        Seconds the remaining rounds will take at the pace so far (None after the last).
    """

    server_round: int
    num_rounds: int
    accepted: int | None
    rejected: int | None
    dlc_paid: float | None
    accuracy: float | None
    elapsed_s: float
    eta_s: float | None

    def facts(self) -> str:
        """What the round did, without round number and times."""
        parts = []
        if self.accepted is not None:
            parts.append(f"{self.accepted} accepted, {self.rejected or 0} rejected")
        if self.dlc_paid is not None:
            parts.append(f"{self.dlc_paid:.2f} DLC paid so far")
        if self.accuracy is not None:
            parts.append(f"test accuracy {self.accuracy:.2%}")
        return "; ".join(parts)

    def line(self) -> str:
        """The plain one-line form (no control characters), for logs, pipes and CI."""
        when = f"elapsed {clock(self.elapsed_s)}"
        if self.eta_s is not None:
            when += f", ETA {clock(self.eta_s)}"
        facts = self.facts()
        return f"round {self.server_round}/{self.num_rounds}: " + (
            f"{facts}; {when}" if facts else when
        )


class ProgressView(Protocol):
    """Shows the rounds: told when one starts and when one ends."""

    def started(self, server_round: int, num_rounds: int) -> None: ...

    def finished(self, status: RoundStatus) -> None: ...

    def close(self) -> None: ...


class PlainLines:
    """One plain line a finished round, flushed at once (stdout is block-buffered in a pipe)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def started(self, server_round: int, num_rounds: int) -> None:
        pass

    def finished(self, status: RoundStatus) -> None:
        print(status.line(), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichBar:
    """A rich progress bar over the rounds. While it is live, rich stands in for
    ``sys.stdout``/``sys.stderr`` so that warnings (and Ray's forwarded worker lines, which
    look ``sys.stderr`` up each time) print above it instead of through it."""

    def __init__(self, stream: TextIO, num_rounds: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[facts]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=Console(file=stream),
        )
        self.task = self.progress.add_task(
            f"round 0/{num_rounds}",
            total=num_rounds,
            facts="starting: data, model, initial evaluation, Ray workers",
            eta="",
        )
        self.progress.start()

    def started(self, server_round: int, num_rounds: int) -> None:
        self.progress.update(self.task, total=num_rounds)
        if server_round == 1:
            self.progress.update(self.task, facts="round 1 training")

    def finished(self, status: RoundStatus) -> None:
        """The bar says what the plain line says: round k/N done, and what it did."""
        self.progress.update(
            self.task,
            description=f"round {status.server_round}/{status.num_rounds}",
            completed=status.server_round,
            facts=status.facts(),
            eta="" if status.eta_s is None else f"ETA {clock(status.eta_s)}",
        )

    def close(self) -> None:
        self.progress.stop()


def _record_mapping(record: logging.LogRecord) -> Mapping[str, Any] | None:
    """The MetricRecord a Flower record carries (logging unwraps a lone mapping argument)."""
    args = record.args
    if isinstance(args, Mapping):
        return args
    if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], Mapping):
        return args[0]
    return None


def _number(values: Mapping[str, Any] | None, key: str) -> float | None:
    value = values.get(key) if values is not None else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class RoundObserver(logging.Handler):
    """Follows the rounds of Flower's ``Strategy.start`` from the records it logs anyway.

    ``Strategy.start`` has no callback; the values it logs (round number, the aggregated
    train MetricRecord, the central evaluation's MetricRecord) are the only view of a round
    from outside the strategy. They are read from each record's arguments, never parsed from
    text. A round ends when the next one starts or the strategy finishes.
    """

    def __init__(
        self, view: ProgressView, num_rounds: int, now: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(logging.DEBUG)
        self.view = view
        self.num_rounds = num_rounds
        self.now = now
        self.started_at = now()
        self.round_started: dict[int, float] = {}
        self.current: int | None = None
        self.train: Mapping[str, Any] | None = None
        self.central: Mapping[str, Any] | None = None
        self.dlc_paid: float | None = None
        self.done: list[RoundStatus] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.msg == FLOWER_ROUND:
                args = record.args if isinstance(record.args, tuple) else ()
                k, n = args if len(args) == 2 else (None, None)
                if not isinstance(k, int) or not isinstance(n, int):
                    return
                self._finish()
                self.current, self.num_rounds = k, n
                self.round_started[self.current] = self.now()
                self.train = self.central = None
                self.view.started(self.current, self.num_rounds)
            elif record.msg == FLOWER_AGGREGATED and self.current is not None:
                if self.train is None:  # the evaluate side's record comes second
                    self.train = _record_mapping(record) or {}
            elif record.msg == FLOWER_CENTRAL and self.current is not None:
                self.central = _record_mapping(record)
            elif record.msg == FLOWER_FINISHED:
                self._finish()
        except Exception:  # a progress line never ends a run
            self.handleError(record)

    def _finish(self) -> None:
        if self.current is None:
            return
        k, now = self.current, self.now()
        self.current = None
        paid = _number(self.train, "dlc_paid")
        if paid is not None:
            self.dlc_paid = (self.dlc_paid or 0.0) + paid
        accepted = _number(self.train, "replies_accepted")
        rejected = _number(self.train, "replies_rejected")
        # round 1 also starts the Ray workers: the pace is taken from later rounds once known
        first = 2 if k >= 2 and 2 in self.round_started else min(self.round_started)
        pace = (now - self.round_started[first]) / (k - first + 1)
        status = RoundStatus(
            server_round=k,
            num_rounds=self.num_rounds,
            accepted=None if accepted is None else int(accepted),
            rejected=None if rejected is None else int(rejected),
            dlc_paid=self.dlc_paid,
            accuracy=_number(self.central, "accuracy"),
            elapsed_s=now - self.started_at,
            eta_s=pace * (self.num_rounds - k) if k < self.num_rounds else None,
        )
        self.done.append(status)
        self.view.finished(status)


class ConsoleLines(logging.Handler):
    """WARNING and above on the terminal, one line each (``WARNING  [logger] message``; the
    logger's name is left out for Flower's and this project's ``flwr``). It looks
    ``sys.stderr`` up for every record, so a live progress bar keeps its place."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            level = record.levelname
            if stream.isatty() and level in LEVEL_COLORS:
                level = f"\x1b[{LEVEL_COLORS[level]}m{level:<8}\x1b[0m"
            else:
                level = f"{level:<8}"
            name = "" if record.name.split(".")[0] == "flwr" else f"[{record.name}] "
            stream.write(f"{level} {name}{self.format(record)}\n")
            stream.flush()
        except Exception:
            self.handleError(record)


REJECTION = "round %d %s: rejected reply of node %s: %s (%s)"  # strategies/pipeline.py's


class FirstRejectionOnly(logging.Filter):
    """The terminal shows a node's rejection for a reason once: two hostile nodes would
    otherwise fill the screen with the same two lines every round. The progress line counts
    every rejection, the closing summary totals them, and ``run.log`` keeps each one."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()
        self.told = False

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg != REJECTION or not isinstance(args, tuple) or len(args) != 5:
            return True
        key = (str(args[2]), str(args[3]))
        if key not in self.seen:
            self.seen.add(key)
            return True
        if not self.told:
            self.told = True
            sys.stderr.write(
                "(further rejections of a node for the same reason: counted in the progress "
                "line, written to run.log)\n"
            )
        return False


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for the run: the ``py.warnings`` logger, as
    ``logging.captureWarnings`` would, but put back without touching logging's own state."""
    text = warnings.formatwarning(message, category, filename, lineno, line)
    logging.getLogger("py.warnings").warning("%s", text.rstrip())


@dataclass
class _Saved:
    """The logging state a run changes, to put back exactly."""

    root_level: int
    root_handlers: list[logging.Handler]
    flwr_propagate: bool
    flower_console_levels: list[tuple[logging.Handler, int]]
    flwr_log_level: str | None
    showwarning: Any

    @classmethod
    def take(cls) -> _Saved:
        root, flwr = logging.getLogger(), logging.getLogger("flwr")
        return cls(
            root_level=root.level,
            root_handlers=list(root.handlers),
            flwr_propagate=flwr.propagate,
            flower_console_levels=[
                (h, h.level) for h in flwr.handlers if isinstance(h, FlowerConsoleHandler)
            ],
            flwr_log_level=os.environ.get("FLWR_LOG_LEVEL"),
            showwarning=warnings.showwarning,
        )

    def restore(self) -> None:
        root, flwr = logging.getLogger(), logging.getLogger("flwr")
        root.handlers[:] = self.root_handlers
        root.setLevel(self.root_level)
        flwr.propagate = self.flwr_propagate
        for handler, level in self.flower_console_levels:
            handler.setLevel(level)
        if self.flwr_log_level is None:
            os.environ.pop("FLWR_LOG_LEVEL", None)
        else:
            os.environ["FLWR_LOG_LEVEL"] = self.flwr_log_level
        warnings.showwarning = self.showwarning


@contextmanager
def app_console(
    out_dir: Path, num_rounds: int, stream: TextIO | None = None
) -> Iterator[RoundObserver]:
    """Quiet terminal, full log file and a progress line, for one run of the reference app.

    Parameters
    ----------
    out_dir : Path
        The run's output folder; the log is ``out_dir / "run.log"`` (appended to).
    num_rounds : int
        How many rounds the progress line counts to.
    stream : TextIO, optional
        Where the progress goes (default ``sys.stdout``): a rich bar if it is a terminal,
        one plain line per round otherwise.

    Yields
    ------
    RoundObserver
        The rounds seen so far (``.done``).
    """
    stream = stream or sys.stdout
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = _Saved.take()
    root, flwr = logging.getLogger(), logging.getLogger("flwr")
    log_file = logging.FileHandler(out_dir / LOG_FILE, encoding="utf-8")
    log_file.setLevel(logging.INFO)  # Flower's DEBUG may carry sensitive details
    log_file.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-8s %(name)s [%(threadName)s] %(message)s")
    )
    console = ConsoleLines()
    console.addFilter(FirstRejectionOnly())
    root.handlers[:] = [log_file, console]
    root.setLevel(logging.INFO)
    flwr.propagate = True  # Flower's records reach the file and the console handler above
    for handler, _ in saved.flower_console_levels:
        handler.setLevel(MUTED)  # ... instead of Flower's own console handler
    os.environ["FLWR_LOG_LEVEL"] = "WARNING"  # Flower in the Ray workers started from here
    warnings.showwarning = _log_warning  # Python warnings: on the console and in the file too
    view: ProgressView = RichBar(stream, num_rounds) if stream.isatty() else PlainLines(stream)
    observer = RoundObserver(view, num_rounds)
    flwr.addHandler(observer)
    try:
        yield observer
    except BaseException:
        print(f"full log: {out_dir / LOG_FILE}", file=sys.stderr, flush=True)
        raise
    finally:
        flwr.removeHandler(observer)
        view.close()
        saved.restore()
        log_file.close()
