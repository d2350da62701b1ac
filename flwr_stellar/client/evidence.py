"""What the client wrapper checks and keeps about the server: its terms and its receipts.

Before a node trains it verifies the run's signed terms (signature by the distributor they
name, this run, the pinned issuer, the hash the challenge announced) and refuses a change of
terms within a run: the first terms it accepted are in its journal, which is also what lets a
node that runs each instruction in a fresh process remember them. Receipts are verified
against those terms' distributor and against what the node itself sent (same round, same
digest, same pseudonym) before they are journaled; a receipt that fails any of this is refused
(logged, never journaled), so nothing the node keeps was forged or meant for another reply. The
instruction itself is still answered: a receipt the node cannot use must not cost it the round
(a reply tampered with on the way gets a true receipt that cites what the server received).
"""

from __future__ import annotations

from typing import Any

from flwr_stellar.client.journal import RECEIPT, SENT, TERMS, Journal, signed_entry
from flwr_stellar.protocol.challenge import Challenge
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.receipts import Receipt, SignedReceipt, read_receipts_record
from flwr_stellar.protocol.terms import SignedTerms

# receipts kept per reply: one, and a second that contradicts it is the proof of equivocation;
# more would only let a hostile server grow the node's journal
RECEIPTS_PER_REPLY = 2


def accept_terms(
    journal: Journal | None, record: object, challenge: Challenge, run_id: int, issuer: str | None
) -> SignedTerms:
    """The run's terms, verified and journaled on first sight; RecordError to refuse.

    Parameters
    ----------
    journal : Journal or None
        The node's journal (holds the terms already accepted for this run, if any); without
        one the terms are verified but a change between processes cannot be seen.
    record : object
        The instruction's terms record.
    challenge : Challenge
        The instruction's challenge: its terms hash must be these terms'.
    run_id : int
        The instruction's run.
    issuer : str or None
        The node's pinned coin issuer (``dlc-issuer``).
    """
    signed = SignedTerms.from_record(record)
    terms = signed.terms
    if terms.run_id != run_id:
        raise RecordError(f"terms are for run {terms.run_id}, not run {run_id}")
    if signed.digest_bytes != challenge.terms:
        raise RecordError("terms do not hash to what the challenge announced")
    if issuer is not None and terms.asset_issuer != issuer:
        raise RecordError(f"terms pay an asset of issuer {terms.asset_issuer}, pinned {issuer}")
    if journal is None:
        return signed
    accepted = journal.terms(run_id)
    if accepted is not None and accepted.digest != signed.digest:
        raise RecordError(
            f"terms changed within run {run_id}: accepted {accepted.digest[:16]}…, "
            f"now {signed.digest[:16]}…"
        )
    if accepted is None:
        journal.append(signed_entry(TERMS, run_id, signed.signed, terms=signed.digest))
    return signed


def accept_receipts(journal: Journal, record: object, run_id: int) -> tuple[int, list[str]]:
    """Verify the receipts an instruction carries and journal the new ones.

    A receipt is refused when it is not signed by the run's distributor (forged, or changed
    after signing: another round, another digest), is for another run or other terms, or does
    not answer a reply this node journaled as sent (same round, pseudonym and digest).

    Returns
    -------
    tuple[int, list[str]]
        Receipts newly journaled (a receipt sent again is not written twice), and why each
        refused one was refused.

    Raises
    ------
    RecordError
        The receipts record itself is malformed.
    """
    documents = read_receipts_record(record)
    if not documents:
        return 0, []
    terms = journal.terms(run_id)
    if terms is None:
        return 0, [f"{len(documents)} receipt(s) of run {run_id}, whose terms it never accepted"]
    distributor = SignedTerms.from_signed(terms).terms.distributor
    sent = journal.entries(run_id, SENT)
    kept: dict[tuple[int, str], int] = {}
    for entry in journal.entries(run_id, RECEIPT):
        where_ = (int(entry.get("server_round", -1)), str(entry.get("pseudonym", "")))
        kept[where_] = kept.get(where_, 0) + 1
    entries, refused = [], []
    for signed in documents:
        try:
            receipt = SignedReceipt.verify(signed, distributor).receipt
        except RecordError as err:
            refused.append(f"receipt refused: {err}")
            continue
        where = f"receipt of round {receipt.server_round}"
        if receipt.run_id != run_id:
            refused.append(f"{where} is for run {receipt.run_id}, carried in run {run_id}")
        elif receipt.terms != terms.digest:
            refused.append(f"{where} is under other terms")
        elif not any(_answers(receipt, s) for s in sent):
            refused.append(
                f"{where} cites digest {receipt.reply_digest[:16] or '(none)'}… of "
                f"{receipt.pseudonym[:8] or '(no pseudonym)'}…, not a reply this node sent"
            )
        elif kept.get((receipt.server_round, receipt.pseudonym), 0) >= RECEIPTS_PER_REPLY:
            refused.append(f"{where} is one too many for one reply (kept {RECEIPTS_PER_REPLY})")
        else:
            where_ = (receipt.server_round, receipt.pseudonym)
            kept[where_] = kept.get(where_, 0) + 1
            entries.append(
                signed_entry(
                    RECEIPT,
                    run_id,
                    signed,
                    server_round=receipt.server_round,
                    pseudonym=receipt.pseudonym,
                )
            )
    return journal.append(*entries), refused


def _answers(receipt: Receipt, sent: dict[str, Any]) -> bool:
    """Whether ``receipt`` is about the reply journaled as ``sent``."""
    return bool(
        sent.get("server_round") == receipt.server_round
        and sent.get("pseudonym") == receipt.pseudonym
        and (sent.get("digest") == receipt.reply_digest or receipt.reply_digest == "")
    )


def sent_entry(
    *,
    run_id: int,
    server_round: int,
    instruction_id: str,
    pseudonym: str,
    federation: str,
    digest: bytes,
    signature: bytes,
    terms: bytes,
    num_examples: int = 0,
) -> dict[str, Any]:
    """The journal entry of a signed training reply, written before it leaves the node."""
    return {
        "kind": SENT,
        "run_id": run_id,
        "server_round": server_round,
        "message_type": "train",
        "instruction_id": instruction_id[:200],
        "pseudonym": pseudonym,
        "federation": federation,
        "digest": digest.hex(),
        "signature": signature.hex(),
        "terms": terms.hex(),
        "num_examples": num_examples,
    }


__all__ = ["RECEIPT", "accept_receipts", "accept_terms", "sent_entry"]
