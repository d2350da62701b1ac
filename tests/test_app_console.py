"""The reference app's terminal: third-party INFO only in run.log, warnings on the console, one
plain progress line a round when stdout is no terminal; and the library leaves logging alone.

The rounds are real: Flower's own ``Strategy.start`` driving a LedgerStrategy (FedAvg inside,
an embedded ledger, the real client Mods) on the in-process grid of test_ledger_strategy, one
node of which sends NaNs.
"""

import inspect
import io
import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from flwr.app import Message, MetricRecord
from flwr.serverapp.strategy import FedAvg, Strategy
from test_ledger_strategy import GLOBAL, INTAKE, SCREENING, FakeGrid, nan_app

from flwr_stellar import LedgerConfig, LedgerStrategy, RewardSettings
from flwr_stellar.app.console import (
    FLOWER_TEMPLATES,
    LOG_FILE,
    RoundObserver,
    RoundStatus,
    app_console,
)
from flwr_stellar.app.summary import render_run_summary

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n
LINE = re.compile(
    r"round (\d+)/(\d+): (\d+) accepted, (\d+) rejected; (\d+\.\d\d) DLC paid so far; "
    r"test accuracy (\d+\.\d\d)%; elapsed \d+:\d\d:\d\d(, ETA \d+:\d\d:\d\d)?"
)
HOSTILE = 103  # the grid's fourth node


class HostileGrid(FakeGrid):
    def deliver(self, msg: Message, app=None, run_id: int = 4242) -> Message:
        if msg.metadata.dst_node_id == HOSTILE and msg.metadata.message_type == "train":
            app = nan_app
        return super().deliver(msg, app, run_id)


def ledger_strategy(out: Path) -> LedgerStrategy:
    inner = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=1)
    config = LedgerConfig(
        output_dir=str(out),
        reward=RewardSettings(budget_per_round="10"),
        screening=SCREENING,
        intake=INTAKE,
        scorer="flat",
    )
    return LedgerStrategy(inner, config)


def central(server_round: int, arrays) -> MetricRecord:
    return MetricRecord({"accuracy": 0.5 + 0.1 * server_round, "loss": 1.0})


def test_flower_still_logs_what_the_progress_line_reads() -> None:
    """The progress line follows these records of Flower's ``Strategy.start``; a Flower that
    words them differently must fail here, not leave the bar silently still."""
    source = inspect.getsource(Strategy.start)
    for template in FLOWER_TEMPLATES:
        assert template.replace("\t", "\\t") in source, template


def test_a_run_shows_warnings_and_one_plain_line_a_round(tmp_path, capsys) -> None:
    stdout = io.StringIO()  # not a terminal: plain lines
    flwr_logger = logging.getLogger("flwr")
    before = (logging.root.level, list(logging.root.handlers), flwr_logger.propagate)
    with app_console(tmp_path / "run", num_rounds=3, stream=stdout) as observer:
        result = ledger_strategy(tmp_path / "out").start(
            HostileGrid(tmp_path, nodes=4), GLOBAL, num_rounds=3, evaluate_fn=central
        )
        logging.getLogger("alembic.runtime.plugins").info("setup plugin %s", "probe")
        logging.getLogger("some.library").warning("a third-party warning")
        warnings.warn("a Python warning", UserWarning, stacklevel=1)
    assert (logging.root.level, list(logging.root.handlers), flwr_logger.propagate) == before

    lines = stdout.getvalue().splitlines()
    assert len(lines) == 3 and not CONTROL.search(stdout.getvalue())
    paid = 0.0
    for k, line in enumerate(lines, start=1):
        match = LINE.fullmatch(line)
        assert match, line
        metrics = result.train_metrics_clientapp[k]
        assert (int(match[1]), int(match[2])) == (k, 3)
        assert int(match[3]) == metrics["replies_accepted"] == 3
        assert int(match[4]) == metrics["replies_rejected"] == 1
        paid += float(metrics["dlc_paid"])
        assert float(match[5]) == pytest.approx(paid, abs=0.005)
        assert float(match[6]) == pytest.approx(100 * (0.5 + 0.1 * k))
        assert (match[7] is None) == (k == 3)  # an ETA until the last round
    assert [s.server_round for s in observer.done] == [1, 2, 3]

    console = capsys.readouterr()
    assert console.out == ""  # the progress went to the stream it was given
    # warnings and the node's rejection, one line each; none of Flower's or alembic's INFO
    assert "WARNING  fraction_evaluate is set to 0.0" in console.err
    # the hostile node's rejection once (round 1), then a note; rounds 2 and 3 only in run.log
    rejections = re.findall(
        r"WARNING  round (\d) train: rejected reply of node \d+: non-finite", console.err
    )
    assert rejections == ["1"], console.err
    assert console.err.count("further rejections of a node for the same reason") == 1
    assert "WARNING  [some.library] a third-party warning" in console.err
    assert "WARNING  [py.warnings]" in console.err and "a Python warning" in console.err
    for noise in ("[ROUND", "configure_train", "Aggregated MetricRecord", "Final results", "INFO"):
        assert noise not in console.err, noise
    assert "setup plugin" not in console.err
    # ... all of which the full log keeps
    full = (tmp_path / "run" / LOG_FILE).read_text()
    for kept in (
        "INFO     flwr",
        "[ROUND 3/3]",
        "Aggregated MetricRecord",
        "Final results",
        "alembic.runtime.plugins [MainThread] setup plugin probe",
        "round 1 train: rejected reply of node",
        "round 2 train: rejected reply of node",
        "round 3 train: rejected reply of node",
        "a third-party warning",
    ):
        assert kept in full, kept


def test_after_the_run_logging_is_as_it_was(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLWR_LOG_LEVEL", "INFO")
    root, flwr_logger = logging.getLogger(), logging.getLogger("flwr")
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        state = (
            root.level,
            list(root.handlers),
            flwr_logger.level,
            flwr_logger.propagate,
            [(h, h.level) for h in flwr_logger.handlers],
            warnings.showwarning,
        )
        failing = pytest.raises(RuntimeError, match="a round failed")
        with failing, app_console(tmp_path, num_rounds=2, stream=io.StringIO()):
            assert os.environ["FLWR_LOG_LEVEL"] == "WARNING"  # for the Ray workers
            raise RuntimeError("a round failed")
        assert os.environ["FLWR_LOG_LEVEL"] == "INFO"
        assert state == (
            root.level,
            list(root.handlers),
            flwr_logger.level,
            flwr_logger.propagate,
            [(h, h.level) for h in flwr_logger.handlers],
            warnings.showwarning,
        )
    finally:
        root.removeHandler(handler)


def _record(msg: str, args: object) -> logging.LogRecord:
    return logging.LogRecord("flwr", logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]


def test_a_round_without_ledger_metrics_or_central_evaluation_still_counts() -> None:
    """A strategy that reports no accepted/rejected counts and no DLC (ledger off), and no
    central evaluation: the line says what it knows, and the round still ends."""
    shown: list[RoundStatus] = []

    class View:
        def started(self, server_round, num_rounds):
            pass

        def finished(self, status):
            shown.append(status)

        def close(self):
            pass

    clock = iter([0.0, 10.0, 20.0, 25.0, 30.0, 40.0]).__next__
    observer = RoundObserver(View(), num_rounds=2, now=clock)
    for malformed in (("1", 2), (1, 2, 3), (None, None)):  # not Flower's: ignored
        observer.handle(_record("[ROUND %s/%s]", malformed))
    observer.handle(_record("\t└──> Aggregated MetricRecord: %s", ("not a mapping",)))
    assert shown == [] and observer.current is None
    observer.handle(_record("[ROUND %s/%s]", (1, 2)))
    observer.handle(_record("\t└──> Aggregated MetricRecord: %s", ({"train_loss": 0.3},)))
    observer.handle(_record("[ROUND %s/%s]", (2, 2)))
    observer.handle(_record("unrelated %s", ("line",)))
    observer.handle(_record("Strategy execution finished in %.2fs", (1.0,)))
    assert [s.line() for s in shown] == [
        "round 1/2: elapsed 0:00:20, ETA 0:00:10",
        "round 2/2: elapsed 0:00:30",
    ]


def test_the_closing_summary_names_roles_verdict_and_files(tmp_path) -> None:
    honest, attacker = "G" + "A" * 55, "G" + "B" * 55
    doc = {
        "status": "completed",
        "asset": "DLC:GISSUER",
        "rounds": [
            {"round": 0, "central_accuracy": 0.1},
            {
                "round": 1,
                "replies_accepted": 1.0,
                "replies_rejected": 1.0,
                "dlc_paid": 100.0,
                "rejected_non-finite": 1.0,
                "central_accuracy": 0.6,
            },
        ],
        "rewards": {honest: {"owed_stroops": 1_000_000_000, "balance_stroops": 1_000_000_000}},
        "roles": {honest: "honest", attacker: "attacker"},
        "ledger": {"backend": "embedded", "location": str(tmp_path / "ledger.db")},
        "audit": [
            {
                "run_id": 7,
                "passed": False,
                "rounds": [1],
                "findings": [
                    {"check": "terms", "round": None, "ok": True, "detail": "signed"},
                    {"check": "payouts", "round": 1, "ok": False, "detail": "[bold]paid twice"},
                ],
            }
        ],
    }
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    text = render_run_summary(tmp_path, tmp_path / LOG_FILE)
    assert re.search(r"│ all honest +│ 1 node\(s\) │ +100 │ +100 │", text)
    assert re.search(r"│ all attacker +│ 1 node\(s\) │ +0 │ +0 │", text)
    assert re.search(r"│ GBBBBBBBBB…BBBB │ attacker +│ +0 │ +- │", text)
    assert "rejected replies: 1 (1 non-finite)" in text
    assert "audit of run 7: FAIL (2 checks over 1 round(s)" in text
    assert "FAIL  round 1 payouts: [bold]paid twice" in text  # text, never markup
    assert f"full log: {tmp_path / LOG_FILE}" in text and "report:" in text
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"metrics\.json is not a JSON object"):
        render_run_summary(tmp_path, tmp_path / LOG_FILE)


LIBRARY_ALONE = r"""
import logging, os, sys, warnings
import flwr.common.logger  # Flower sets up its own logger when imported: that is Flower's
def state():
    flwr = logging.getLogger("flwr")
    ours = {n: (l.level, len(l.handlers), l.propagate)
            for n, l in logging.Logger.manager.loggerDict.items()
            if isinstance(l, logging.Logger) and n.split(".")[0] in ("flwr_stellar", "strategies")}
    return (logging.root.level, list(logging.root.handlers), flwr.level, flwr.propagate,
            [(h, h.level) for h in flwr.handlers], warnings.showwarning,
            os.environ.get("FLWR_LOG_LEVEL"), {k: v for k, v in ours.items() if v != (0, 0, True)})
before = state()
import flwr_stellar, strategies.ledger_strategy
from pathlib import Path
from test_app_console import GLOBAL, HostileGrid, central, ledger_strategy
tmp = Path(sys.argv[1])
result = ledger_strategy(tmp / "out").start(HostileGrid(tmp, 4), GLOBAL, num_rounds=2,
                                            evaluate_fn=central)
assert result.train_metrics_clientapp[2]["replies_rejected"] == 1
after = state()
assert after == before, (before, after)
print("unchanged")
"""


@pytest.mark.slow
def test_the_library_leaves_logging_configuration_alone(tmp_path) -> None:
    """Importing flwr_stellar and running LedgerStrategy for two rounds (a hostile node
    included) changes no logger level, handler or propagation, nor warnings or the env."""
    tests = Path(__file__).resolve().parent
    proc = subprocess.run(
        [sys.executable, "-c", LIBRARY_ALONE, str(tmp_path)],
        cwd=tests,
        env={**os.environ, "PYTHONPATH": str(tests)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("unchanged")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_rounds_are_one_bar_with_warnings_above_it(tmp_path) -> None:
    tty = Terminal()
    flwr_logger = logging.getLogger("flwr")
    with app_console(tmp_path, num_rounds=2, stream=tty):
        for k in (1, 2):
            flwr_logger.info("[ROUND %s/%s]", k, 2)
            flwr_logger.warning("round %d train: rejected reply of node 9: non-finite", k)
            flwr_logger.info("\t└──> Aggregated MetricRecord: %s", MetricRecord(
                {"replies_accepted": 3, "replies_rejected": 1, "dlc_paid": 5.0}
            ))  # fmt: skip
        flwr_logger.info("Strategy execution finished in %.2fs", 1.0)
    screen = tty.getvalue()
    assert "\x1b[" in screen  # drawn and redrawn in place, not one line a round
    assert "round 2/2" in screen and "3 accepted, 1 rejected; 10.00 DLC paid so far" in screen
    # rich prints the warnings (through its stand-in for sys.stderr) above the bar
    assert screen.index("round 1 train: rejected") < screen.rindex("round 2/2")
    assert not re.search(r"^round \d/2: ", screen, re.MULTILINE)  # no plain lines


def test_simulated_nodes_keystores_are_made_ahead_with_one_warning(tmp_path, caplog) -> None:
    """The reference app creates its simulated nodes' development keystores before the run:
    one warning in the main process instead of one per node from the Ray workers, and a node
    that then opens its identity finds its keystore and says nothing."""
    from flwr_stellar.client.identity import NodeSettings, create_dev_keystores

    directory = tmp_path / "keystores"
    with caplog.at_level(logging.WARNING, logger="flwr"):
        created = create_dev_keystores(directory, ["0", "1", "2"])
        assert [p.name for p in created] == ["node-0.json", "node-1.json", "node-2.json"]
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in created)
        assert create_dev_keystores(directory, ["0", "1", "2"]) == []  # idempotent
        node = NodeSettings.from_node_config(
            {"partition-id": 1, "dev-keystore": True, "dev-keystore-dir": str(directory)}, 7
        )
        assert node.dev_keystore
        before = node.pseudonym(5).public_key
    warned = [r.getMessage() for r in caplog.records if "DEVELOPMENT" in r.getMessage()]
    assert len(warned) == 1 and "created 3 DEVELOPMENT keystore(s)" in warned[0], warned
    again = NodeSettings.from_node_config(
        {"partition-id": 1, "dev-keystore": True, "dev-keystore-dir": str(directory)}, 7
    )
    assert again.pseudonym(5).public_key == before  # the same keystore, not a new one
