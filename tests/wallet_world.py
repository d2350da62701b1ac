"""A provider's two runs on a real embedded ledger, shared by the wallet tests: one paid by
payments to a sponsored pseudonym, one by claimable balances to a pseudonym without an account;
the provider's own account trusts DLC and pays the fees (its seed in a 0600 file)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stellar_sdk import ChangeTrust, Claimant, CreateClaimableBalance, Keypair, Payment

from flwr_stellar.client.evidence import sent_entry
from flwr_stellar.client.journal import TERMS, Journal, journal_path, signed_entry
from flwr_stellar.identity import keystore
from flwr_stellar.identity.pseudonym import derive_pseudonym
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.tx import build, submit_signed
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.payments.treasury import Treasury, prepare
from flwr_stellar.protocol.onboarding import Terms, operations
from flwr_stellar.protocol.terms import RewardTerms

UNIT = 10_000_000


@dataclass
class World:
    db: Path
    keystore: Path
    treasury: Treasury
    destination: Keypair
    fee_file: Path
    pseudonyms: dict[int, Keypair]

    def ledger(self) -> EmbeddedLedger:
        return EmbeddedLedger(self.db)

    def dlc(self, account: str) -> int:
        ledger = self.ledger()
        try:
            return ledger.load_account(account).balance(self.treasury.asset_id)
        finally:
            ledger.close()

    def sponsoring(self) -> int:
        ledger = self.ledger()
        try:
            return ledger.load_account(self.treasury.sponsor.public_key).num_sponsoring
        finally:
            ledger.close()

    def args(self, verb: str, *extra: str) -> list[str]:
        base = ["wallet", verb, str(self.keystore), "--db", str(self.db)]
        if verb == "collect":
            base += ["--to", self.destination.public_key, "--fee-secret-file", str(self.fee_file)]
        return [*base, *extra]

    def journal(self) -> Journal:
        return Journal(journal_path(self.keystore))

    def stranger_with_dlc(self, amount: str = "10") -> Keypair:
        """Another provider of the federation: it holds some of the same coin."""
        ledger = self.ledger()
        try:
            stranger = Keypair.random()
            assert ledger.fund(stranger.public_key).successful
            submit_signed(ledger, [stranger], [ChangeTrust(self.treasury.asset)])
            submit_signed(
                ledger,
                [self.treasury.distributor],
                [Payment(stranger.public_key, self.treasury.asset, amount)],
            )
            return stranger
        finally:
            ledger.close()


def journal_run(
    journal: Journal, treasury: Treasury, run_id: int, pseudonym: Keypair, payout: str
) -> None:
    """The node's journal of a one-round run: the signed terms and one sent reply."""
    terms = RewardTerms(
        run_id=run_id,
        distributor=treasury.distributor.public_key,
        asset_code="DLC",
        asset_issuer=treasury.issuer.public_key,
        budget_stroops=100 * UNIT,
        held_stroops=0,
        num_rounds=1,
        scorer="num-examples",
        settings_hash="ab" * 32,
        payout=payout,
    ).sign(treasury.distributor)
    digest = secrets.token_bytes(32)
    journal.append(
        signed_entry(TERMS, run_id, terms.signed, terms=terms.digest),
        sent_entry(
            run_id=run_id,
            server_round=1,
            instruction_id="i",
            pseudonym=pseudonym.public_key,
            federation="default",
            digest=digest,
            signature=pseudonym.sign(digest),
            terms=terms.digest_bytes,
        ),
    )


def make_world(
    tmp_path: Path,
    passphrase: str,
    runs: tuple[int, int],
    payments: Sequence[str],
    claimable: Sequence[str],
) -> World:
    """Run ``runs[0]`` paid ``payments`` (DLC amounts) to its sponsored pseudonym, run
    ``runs[1]`` left ``claimable`` balances for a pseudonym that has no account."""
    paid_run, claimable_run = runs
    db = tmp_path / "ledger.db"
    ledger = EmbeddedLedger(db)
    treasury = Treasury.from_master(keystore.MasterSecret.generate(with_mnemonic=False), "DLC")
    prepare(ledger, treasury, RewardSettings(), 1000 * UNIT)
    node = keystore.MasterSecret.generate(with_mnemonic=False)
    path = keystore.save(tmp_path / "node.json", node, passphrase, kdf=keystore.KdfParams(n=2**10))
    journal = Journal(journal_path(path))
    paid = derive_pseudonym(node, paid_run)
    onboarding = Terms(
        ledger.network_passphrase,
        treasury.sponsor.public_key,
        "DLC",
        treasury.issuer.public_key,
        True,
        False,
    )
    envelope = build(
        ledger,
        treasury.sponsor.public_key,
        ledger.load_account(treasury.sponsor.public_key).sequence,
        operations(onboarding, paid.public_key),
    )
    envelope.sign(treasury.sponsor)
    envelope.sign(paid)
    assert ledger.submit(envelope.to_xdr()).successful
    for amount in payments:
        submit_signed(
            ledger, [treasury.distributor], [Payment(paid.public_key, treasury.asset, amount)]
        )
    journal_run(journal, treasury, paid_run, paid, "payment")
    waiting = derive_pseudonym(node, claimable_run)
    for amount in claimable:
        submit_signed(
            ledger,
            [treasury.distributor],
            [CreateClaimableBalance(treasury.asset, amount, [Claimant(waiting.public_key)])],
        )
    journal_run(journal, treasury, claimable_run, waiting, "claimable")
    destination = Keypair.random()
    assert ledger.fund(destination.public_key).successful
    submit_signed(ledger, [destination], [ChangeTrust(treasury.asset)])
    fee_file = tmp_path / "fee.secret"
    fee_file.write_text(destination.secret + "\n")
    fee_file.chmod(0o600)
    ledger.close()
    return World(
        db, path, treasury, destination, fee_file, {paid_run: paid, claimable_run: waiting}
    )
