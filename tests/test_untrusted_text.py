"""Peer-supplied text (a node's onboarding refusal) reaches the server log and the round
manifest bounded and printable: no 2 MB notes, forged log lines or terminal escapes."""

import logging
import unicodedata

import pytest
from anchor_world import REWARD
from flwr.app import Error, Message
from flwr.supercore.task_identity import TaskIdentity
from helpers import RUN_ID, instruction
from stellar_sdk import Keypair

from flwr_stellar.identity.keystore import MasterSecret
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.payments.onboarding import Onboarder
from flwr_stellar.payments.treasury import Treasury, prepare
from flwr_stellar.protocol.onboarding import Terms
from flwr_stellar.protocol.text import ELLIPSIS, NOTE_LIMIT, printable_note

HOSTILE = ("no\nthanks\r\n\x1b[31mFORGED LOG LINE\x1b[0m\t\x00\x85\u202e\u2028\ud800 " * 40_000)[
    : 2 * 1024 * 1024
]


def printable(text: str) -> bool:
    return all(unicodedata.category(c)[0] != "C" and c not in "\u2028\u2029" for c in text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain reason", "plain reason"),
        ("two\nlines", "two lines"),
        ("\x1b[31mred\x1b[0m alert", "red alert"),
        ("\x1b]0;title\x07shown", "shown"),
        ("tab\tand\x00nul\x7fdel\x9bcsi", "tab and nul del csi"),
        ("rtl \u202eevil\u202c ok", "rtl evil ok"),
        ("  padded  ", "padded"),
        (None, "None"),
        ("", ""),
    ],
)
def test_printable_note_cleans(text, expected: str) -> None:
    assert printable_note(text) == expected


def test_printable_note_bounds_huge_text() -> None:
    note = printable_note(HOSTILE)
    assert len(note) <= NOTE_LIMIT and note.endswith(ELLIPSIS)
    assert printable(note) and "FORGED" in note and "\x1b" not in note
    note.encode("utf-8")  # no lone surrogate: a manifest can hold it
    assert printable_note("x" * 201) == "x" * 199 + ELLIPSIS
    assert printable_note("x" * 200) == "x" * 200
    assert printable_note("abcdef", limit=4) == "abc" + ELLIPSIS


class RefusingGrid:
    """Every node refuses onboarding with the same hostile reason."""

    def send_and_receive(self, messages, *, timeout=None):
        return [
            Message(
                Error(code=4701, reason=HOSTILE),
                reply_to=instruction(
                    m.content, m.metadata.message_type, dst_node_id=m.metadata.dst_node_id
                ),
            )
            for m in messages
        ]


def test_a_hostile_refusal_reason_is_bounded_in_notes_and_log(tmp_path, caplog) -> None:
    ledger = EmbeddedLedger(tmp_path / "l.db")
    try:
        treasury = Treasury.from_master(MasterSecret.generate(with_mnemonic=False), "DLC")
        prepare(ledger, treasury, REWARD, 10**9)
        terms = Terms(
            ledger.network_passphrase,
            treasury.sponsor.public_key,
            "DLC",
            treasury.issuer.public_key,
            sponsored=True,
            authorize=False,
        )
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN_ID, 0
        pseudonyms = {Keypair.random().public_key: 7, Keypair.random().public_key: 8}
        with caplog.at_level(logging.WARNING):
            notes = Onboarder(ledger, treasury, terms).onboard(RefusingGrid(), 1, pseudonyms)
    finally:
        ledger.close()
    assert set(notes) == set(pseudonyms)
    for note in notes.values():
        assert note.startswith("not onboarded: no thanks")
        assert len(note) <= len("not onboarded: ") + NOTE_LIMIT and printable(note)
    messages = [r.getMessage() for r in caplog.records if "co-sign" in r.getMessage()]
    assert len(messages) == len(pseudonyms)
    for line in messages:
        assert len(line) < 400 and printable(line), line[:300]


def test_the_round_manifest_holds_the_bounded_note(tmp_path) -> None:
    from flwr.app import ConfigRecord
    from flwr.serverapp.strategy import FedAvg
    from test_ledger_strategy import GLOBAL, FakeGrid

    from flwr_stellar import LedgerConfig, LedgerStrategy, RewardSettings

    class Grid(FakeGrid):
        """The first node asked to co-sign refuses (once) with the hostile reason."""

        refused = False

        def send_and_receive(self, messages, *, timeout=None):
            messages = list(messages)
            if messages and messages[0].metadata.message_type == "query.onboard":
                if self.refused:
                    return super().send_and_receive(messages, timeout=timeout)
                self.refused = True
                return RefusingGrid().send_and_receive(messages[:1]) + [
                    self.deliver(m) for m in messages[1:]
                ]
            return super().send_and_receive(messages, timeout=timeout)

    config = LedgerConfig(
        output_dir=str(tmp_path / "out"),
        reward=RewardSettings(budget_per_round="10"),
        scorer="flat",
    )
    strategy = LedgerStrategy.wrap(
        FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1), config=config
    )
    strategy.open(num_rounds=1)
    try:
        grid = Grid(tmp_path, nodes=3)
        messages = strategy.configure_train(1, GLOBAL, ConfigRecord(), grid)
        strategy.aggregate_train(1, [grid.deliver(m) for m in messages])
        anchorer = strategy.session.anchorer
        anchorer.drain()
        manifest = anchorer.store.get(strategy.outcomes[1].manifest_hash)
    finally:
        strategy.close()
    (refused,) = [c for c in manifest.contributions if c.payout == 0]
    assert refused.note.startswith("not onboarded: no thanks") and printable(refused.note)
    assert len(refused.note) <= len("not onboarded: ") + NOTE_LIMIT
