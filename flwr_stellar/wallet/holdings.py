"""What a provider holds: one row per run of its journal, read from the ledger."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from stellar_sdk import Keypair

from flwr_stellar.audit.evidence import run_evidence
from flwr_stellar.client.journal import COLLECT, Journal
from flwr_stellar.identity.keystore import MasterSecret
from flwr_stellar.identity.pseudonym import derive_pseudonym
from flwr_stellar.ledger.base import ClaimableBalanceRecord, Ledger, NotFoundError
from flwr_stellar.ledger.decode import claimable_for


@dataclass(frozen=True)
class Holding:
    """One run's pseudonym and what it holds.

    Parameters
    ----------
    run_id : int
        The Flower run.
    pseudonym : str
        The run's account, as the journal names it (the node signed its replies with it).
    federation : str
        The label it was derived under (with the run id, from the keystore).
    asset : str
        ``CODE:ISSUER`` of the run's coin (from its signed terms).
    exists : bool
        Whether the pseudonym's account is on the ledger (a claimable-payout run never
        creates it; a collected one was merged).
    on_trustline : int
        Stroops on the pseudonym's trustline.
    claimable : tuple of ClaimableBalanceRecord
        Balances of the coin the pseudonym may claim.
    collected : tuple of str
        Hashes of this wallet's collection transactions the ledger applied for the run.
    num_rounds : int
        Rounds the run's terms announce; ``receipts_up_to`` the last round receipted.
    """

    run_id: int
    pseudonym: str
    asset: str
    exists: bool
    on_trustline: int
    claimable: tuple[ClaimableBalanceRecord, ...] = ()
    collected: tuple[str, ...] = ()
    num_rounds: int = 0
    receipts_up_to: int = 0
    federation: str = "default"

    def signer(self, master: MasterSecret) -> Keypair:
        """The pseudonym's keypair; ValueError if the keystore does not derive it."""
        keypair = derive_pseudonym(master, self.run_id, self.federation)
        if keypair.public_key != self.pseudonym:
            raise ValueError(
                f"run {self.run_id}: pseudonym {self.pseudonym} is not this keystore's "
                "(a journal of another node?)"
            )
        return keypair

    @property
    def total(self) -> int:
        return self.on_trustline + sum(b.amount for b in self.claimable)

    @property
    def state(self) -> str:
        """``collected`` (nothing left, and this wallet moved it), ``empty`` (nothing left,
        nothing collected: paid nothing, or moved by other means) or ``uncollected``."""
        if self.total or self.exists:
            return "uncollected"
        return "collected" if self.collected else "empty"


@dataclass(frozen=True)
class Recovery:
    """How to find a run the journal does not hold (a journal lost or from another machine):
    the keystore derives the pseudonym, the coin is named by hand.

    Parameters
    ----------
    master : MasterSecret
        The node's unlocked keystore.
    asset : str
        ``CODE:ISSUER`` of the run's coin.
    federation : str
        The label the pseudonym was derived under (the node config's, ``default``).
    """

    master: MasterSecret
    asset: str
    federation: str = "default"


def holdings(
    journal: Journal,
    ledger: Ledger,
    run_ids: list[int] | None = None,
    recovery: Recovery | None = None,
) -> list[Holding]:
    """Every run of the journal (or of ``run_ids``) in which the node sent a reply, with what
    its pseudonym holds; no secret is needed to read the journal's runs.

    Parameters
    ----------
    journal : Journal
        The node's journal: its runs, their terms (the coin) and the federation label each
        pseudonym was derived under.
    ledger : Ledger
        Where the runs paid.
    run_ids : list of int, optional
        Only these runs.
    recovery : Recovery, optional
        For runs of ``run_ids`` the journal does not hold: derive their pseudonyms.

    Raises
    ------
    ValueError
        A run that is not in the journal (and no ``recovery``), or one without verifiable
        signed terms.
    """
    runs = journal.runs()
    wanted = runs if run_ids is None else run_ids
    missing = sorted(set(wanted) - set(runs))
    if missing and recovery is None:
        raise ValueError(
            f"run(s) {missing} are not in {journal.path}: name the coin (--asset CODE:ISSUER) "
            "to find them from the keystore alone"
        )
    out = []
    for run_id in wanted:
        found = run_evidence(journal.path, run_id) if run_id not in missing else None
        if found is None or found.terms is None or not found.sent:
            if recovery is not None and run_ids is not None:  # asked for: derive it
                pseudonym = derive_pseudonym(recovery.master, run_id, recovery.federation)
                blank = Holding(
                    run_id,
                    pseudonym.public_key,
                    recovery.asset,
                    False,
                    0,
                    federation=recovery.federation,
                )
                out.append(read_holding(blank, ledger, journal))
            elif found is not None and found.terms is None and found.sent:
                raise ValueError(f"run {run_id}: no verifiable signed terms in {journal.path}")
            continue  # never trained in this run (or only collected in it): nothing here
        terms = found.terms.terms
        blank = Holding(
            run_id=run_id,
            pseudonym=found.sent[0].pseudonym,
            asset=f"{terms.asset_code}:{terms.asset_issuer}",
            exists=False,
            on_trustline=0,
            num_rounds=terms.num_rounds,
            receipts_up_to=max((r.server_round for r in found.receipts), default=0),
            federation=found.sent[0].federation,
        )
        out.append(read_holding(blank, ledger, journal))
    return out


def read_holding(holding: Holding, ledger: Ledger, journal: Journal) -> Holding:
    """``holding`` with what the ledger (and the journal's collections) say now."""
    done = tuple(
        str(e["tx_hash"])
        for e in journal.entries(holding.run_id, COLLECT)
        if e["state"] == "done" and e["pseudonym"] == holding.pseudonym
    )
    try:
        account = ledger.load_account(holding.pseudonym)
    except NotFoundError:
        account = None
    return replace(
        holding,
        exists=account is not None,
        on_trustline=account.balance(holding.asset) if account is not None else 0,
        claimable=tuple(
            claimable_for(ledger, holding.pseudonym, holding.asset, now=int(time.time()))
        ),
        collected=done,
    )
