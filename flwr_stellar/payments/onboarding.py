"""The server's side of onboarding: make every accepted pseudonym payable, once.

For each pseudonym not yet on the ledger with a trustline for the coin, the sponsor builds and
signs one transaction (see :mod:`flwr_stellar.protocol.onboarding`), sends it to the node as a
``query.onboard`` message, checks the co-signature and submits. A node that refuses, or does not
answer, is not onboarded and gets a note instead of a payout; nothing else in the round waits on
it beyond one round trip.
"""

from __future__ import annotations

from logging import INFO, WARNING

from flwr.app import Message, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from stellar_sdk import DecoratedSignature, Keypair, TransactionEnvelope
from stellar_sdk.exceptions import SdkError

from flwr_stellar.ledger.base import Ledger, NotFoundError
from flwr_stellar.ledger.tx import build
from flwr_stellar.payments.treasury import Treasury
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.onboarding import (
    ONBOARD_RECORD,
    ONBOARD_TYPE,
    Cosignature,
    Terms,
    operations,
)
from flwr_stellar.protocol.text import printable_note

ATTEMPTS = 2
TIMEOUT_S = 120.0


def attach_cosignature(envelope: TransactionEnvelope, pseudonym: str, reply: Message) -> bool:
    """Add the node's signature if it is the pseudonym's, over this envelope's hash.

    Parameters
    ----------
    envelope : TransactionEnvelope
        What the sponsor sent; gains the signature when it checks out.
    pseudonym : str
        The account the node is expected to sign for.
    reply : Message
        The node's answer (an error reply counts as a refusal).
    """
    if reply.has_error():
        return False
    try:
        cosignature = Cosignature.from_record(reply.content.get(ONBOARD_RECORD))
    except RecordError:
        return False
    if cosignature.pseudonym != pseudonym:
        return False
    kp = Keypair.from_public_key(pseudonym)
    try:
        kp.verify(envelope.hash(), cosignature.signature)
    except SdkError:
        return False
    envelope.signatures.append(DecoratedSignature(kp.signature_hint(), cosignature.signature))
    return True


class Onboarder:
    """Onboards pseudonyms through their nodes and remembers who is payable.

    Parameters
    ----------
    ledger : Ledger
        Where accounts are created.
    treasury : Treasury
        Sponsor (source, fees, reserves) and issuer (authorizes trustlines when required).
    terms : Terms
        What every node is asked to co-sign.
    """

    def __init__(self, ledger: Ledger, treasury: Treasury, terms: Terms) -> None:
        self.ledger = ledger
        self.treasury = treasury
        self.terms = terms
        self.onboarded: set[str] = set()

    def onboard(self, grid: Grid, server_round: int, pending: dict[str, int]) -> dict[str, str]:
        """Make the pseudonyms (pseudonym -> node id) payable; return notes for those that
        are not."""
        todo = {p: n for p, n in pending.items() if p not in self.onboarded}
        for pseudonym in list(todo):
            if self._ready(pseudonym):
                self.onboarded.add(pseudonym)
                del todo[pseudonym]
        notes: dict[str, str] = {}
        for _ in range(ATTEMPTS):
            if not todo:
                break
            todo, batch_notes = self._batch(grid, server_round, todo)
            notes.update(batch_notes)
        for pseudonym in todo:
            notes.setdefault(pseudonym, "not onboarded")
        return notes

    def _ready(self, pseudonym: str) -> bool:
        try:
            account = self.ledger.load_account(pseudonym)
        except NotFoundError:
            return False
        line = next((b for b in account.balances if b.asset == self.treasury.asset_id), None)
        return line is not None and (not self.terms.authorize or bool(line.flags & 1))

    def _exists(self, account: str) -> bool:
        try:
            self.ledger.load_account(account)
        except NotFoundError:
            return False
        return True

    def _batch(
        self, grid: Grid, server_round: int, pending: dict[str, int]
    ) -> tuple[dict[str, int], dict[str, str]]:
        """One round trip: build, send for co-signing, submit in sequence order."""
        if not self.terms.sponsored:
            for pseudonym in pending:
                if not self._exists(pseudonym):
                    self.ledger.fund(pseudonym)
        sequence = self.ledger.load_account(self.terms.sponsor).sequence
        envelopes = {}
        messages = []
        for i, (pseudonym, node) in enumerate(sorted(pending.items())):
            envelope = build(
                self.ledger, self.terms.sponsor, sequence + i, operations(self.terms, pseudonym)
            )
            envelope.sign(self.treasury.sponsor)
            if self.terms.authorize:
                envelope.sign(self.treasury.issuer)
            envelopes[pseudonym] = envelope
            content = RecordDict({ONBOARD_RECORD: self.terms.to_record(envelope.to_xdr())})
            messages.append(Message(content, node, ONBOARD_TYPE))
        replies = {
            r.metadata.src_node_id: r for r in grid.send_and_receive(messages, timeout=TIMEOUT_S)
        }
        retry: dict[str, int] = {}
        notes: dict[str, str] = {}
        for pseudonym, node in sorted(pending.items()):
            envelope = envelopes[pseudonym]
            reply = replies.get(node)
            if reply is None or not attach_cosignature(envelope, pseudonym, reply):
                why = (  # the node's own words: bounded and printable before log/manifest
                    printable_note(reply.error.reason or f"error {reply.error.code}")
                    if reply is not None and reply.has_error()
                    else "no valid co-signature"
                )
                notes[pseudonym] = f"not onboarded: {why}"
                log(
                    WARNING,
                    "round %d: node %s did not co-sign onboarding: %s",
                    server_round,
                    node,
                    why,
                )
                continue
            result = self.ledger.submit(envelope.to_xdr())
            if result.successful:
                self.onboarded.add(pseudonym)
            elif result.tx_code == "tx_bad_seq":
                retry[pseudonym] = node  # an earlier envelope was missing; rebuild next time
            else:
                notes[pseudonym] = f"not onboarded: {','.join((result.tx_code, *result.op_codes))}"
        done = self.onboarded & set(pending)
        if done:
            log(INFO, "round %d: onboarded %d pseudonym(s)", server_round, len(done))
        return retry, notes
