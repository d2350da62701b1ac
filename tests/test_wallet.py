"""The provider's wallet on a real embedded ledger: two runs (one paid by payments to a
sponsored pseudonym, one by claimable balances to a pseudonym with no account), listed and
collected with fee bumps into one account, exactly once across crashes at every step."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from stellar_sdk import Asset, Claimant, Keypair

from flwr_stellar.cli import main
from flwr_stellar.client.evidence import sent_entry
from flwr_stellar.client.journal import TERMS, Journal, journal_path, signed_entry
from flwr_stellar.identity import keystore
from flwr_stellar.identity.pseudonym import derive_pseudonym
from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import NotFoundError
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.tx import build, submit_signed
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.payments.treasury import Treasury, prepare
from flwr_stellar.protocol.onboarding import Terms, operations
from flwr_stellar.protocol.terms import RewardTerms

PASSPHRASE = "wallet-test-passphrase"
UNIT = 10_000_000
PAID_RUN, CLAIMABLE_RUN = 11, 12


@dataclass
class World:
    db: Path
    keystore: Path
    treasury: Treasury
    destination: Keypair
    fee_file: Path
    pseudonyms: dict[int, str]

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


def _journal_run(
    journal: Journal, treasury: Treasury, run_id: int, pseudonym: Keypair, payout: str
) -> None:
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


@pytest.fixture
def world(tmp_path: Path) -> World:
    db = tmp_path / "ledger.db"
    ledger = EmbeddedLedger(db)
    treasury = Treasury.from_master(keystore.MasterSecret.generate(with_mnemonic=False), "DLC")
    prepare(ledger, treasury, RewardSettings(), 1000 * UNIT)
    node = keystore.MasterSecret.generate(with_mnemonic=False)
    path = keystore.save(tmp_path / "node.json", node, PASSPHRASE, kdf=keystore.KdfParams(n=2**10))
    journal = Journal(journal_path(path))
    # run 11: sponsored onboarding, then two payments
    paid = derive_pseudonym(node, PAID_RUN)
    terms = Terms(
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
        operations(terms, paid.public_key),
    )
    envelope.sign(treasury.sponsor)
    envelope.sign(paid)
    assert ledger.submit(envelope.to_xdr()).successful
    for amount in ("20", "10.5"):
        submit_signed(
            ledger, [treasury.distributor], [_payment(paid.public_key, treasury.asset, amount)]
        )
    _journal_run(journal, treasury, PAID_RUN, paid, "payment")
    # run 12: two claimable balances for a pseudonym that has no account
    waiting = derive_pseudonym(node, CLAIMABLE_RUN)
    from stellar_sdk import CreateClaimableBalance

    for amount in ("12", "7.25"):
        submit_signed(
            ledger,
            [treasury.distributor],
            [CreateClaimableBalance(treasury.asset, amount, [Claimant(waiting.public_key)])],
        )
    _journal_run(journal, treasury, CLAIMABLE_RUN, waiting, "claimable")
    # the provider's own account: funded, trusting DLC
    destination = Keypair.random()
    assert ledger.fund(destination.public_key).successful
    from stellar_sdk import ChangeTrust

    submit_signed(ledger, [destination], [ChangeTrust(treasury.asset)])
    fee_file = tmp_path / "fee.secret"
    fee_file.write_text(destination.secret + "\n")
    fee_file.chmod(0o600)
    ledger.close()
    return World(
        db,
        path,
        treasury,
        destination,
        fee_file,
        {PAID_RUN: paid.public_key, CLAIMABLE_RUN: waiting.public_key},
    )


def _payment(destination: str, asset: Asset, amount: str):  # type: ignore[no-untyped-def]
    from stellar_sdk import Payment

    return Payment(destination, asset, amount)


OWED = 20 + 10.5 + 12 + 7.25


def balances(world: World, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(world.args("balances", "--json")) == 0
    return json.loads(capsys.readouterr().out)


def test_balances_list_both_runs(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    listed = balances(world, capsys)
    rows = {r["run_id"]: r for r in listed["runs"]}
    assert rows[PAID_RUN]["on_account"] == 305_000_000 and rows[PAID_RUN]["claimable"] == 0
    assert (
        rows[CLAIMABLE_RUN]["on_account"] == 0 and rows[CLAIMABLE_RUN]["claimable"] == 192_500_000
    )
    assert {r["state"] for r in rows.values()} == {"uncollected"}
    assert listed["totals"] == {world.treasury.asset_id: int(OWED * UNIT)}


def test_collect_moves_everything_once_and_releases_the_sponsor(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", PASSPHRASE)
    before_sponsoring = world.sponsoring()
    xlm_before = _xlm(world, world.destination.public_key)
    assert main(world.args("collect", "--dry-run")) == 0
    assert "would submit" in capsys.readouterr().out
    assert world.dlc(world.destination.public_key) == 0  # a dry run sends nothing
    assert main(world.args("collect")) == 0
    out = capsys.readouterr().out
    assert world.dlc(world.destination.public_key) == int(OWED * UNIT)
    assert world.sponsoring() == before_sponsoring - 3  # the account (2) and its trustline (1)
    ledger = world.ledger()
    for pseudonym in world.pseudonyms.values():
        assert ledger.claimable_balances(claimant=pseudonym).records == ()
        with pytest.raises(Exception, match="not found"):
            ledger.load_account(pseudonym)
    head = ledger.latest_ledger()["seq"]
    ledger.close()
    # fees only: 3 fee bumps / transactions (open: 7 ops, two collects), nothing else charged
    assert xlm_before - _xlm(world, world.destination.public_key) < 2000
    assert f"collected {format_amount(int(OWED * UNIT))} {world.treasury.asset_id}" in out
    assert main(world.args("collect")) == 0  # a second collect does nothing
    assert "nothing to collect" in capsys.readouterr().out
    again = world.ledger()
    assert again.latest_ledger()["seq"] == head
    again.close()
    states = {r["run_id"]: r["state"] for r in balances(world, capsys)["runs"]}
    assert states == {PAID_RUN: "collected", CLAIMABLE_RUN: "collected"}


def _xlm(world: World, account: str) -> int:
    ledger = world.ledger()
    try:
        return ledger.load_account(account).balance()
    finally:
        ledger.close()


def test_destination_without_trustline_is_refused_naming_the_fix(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", PASSPHRASE)
    stranger = Keypair.random()
    ledger = world.ledger()
    assert ledger.fund(stranger.public_key).successful
    head = ledger.latest_ledger()["seq"]
    ledger.close()
    args = world.args("collect")
    args[args.index("--to") + 1] = stranger.public_key
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "no trustline to DLC:" in err and "ChangeTrust" in err
    ledger = world.ledger()
    assert ledger.latest_ledger()["seq"] == head  # nothing submitted
    ledger.close()


@pytest.mark.parametrize(
    "bad, message",
    [
        (("--to", "GNOTANACCOUNT"), "not a Stellar account id"),
        (("--fee-secret-file", "/nonexistent/fee"), "not found"),
    ],
)
def test_bad_collect_inputs(
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    bad: tuple[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", PASSPHRASE)
    args = world.args("collect")
    args[args.index(bad[0]) + 1] = bad[1]
    assert main(args) == 1
    assert message in capsys.readouterr().err
    assert world.dlc(world.destination.public_key) == 0


def test_world_readable_fee_secret_is_refused(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", PASSPHRASE)
    world.fee_file.chmod(0o644)
    assert main(world.args("collect")) == 1
    assert "chmod 600" in capsys.readouterr().err


def test_someone_elses_journal_is_refused(
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", PASSPHRASE)
    other = keystore.save(
        tmp_path / "other.json",
        keystore.MasterSecret.generate(with_mnemonic=False),
        PASSPHRASE,
        kdf=keystore.KdfParams(n=2**10),
    )
    journal_path(other).write_bytes(journal_path(world.keystore).read_bytes())
    args = world.args("collect")
    args[2] = str(other)
    assert main(args) == 1
    assert "not this keystore's" in capsys.readouterr().err
    assert world.dlc(world.destination.public_key) == 0


@pytest.mark.parametrize(
    "crash",
    [
        "wallet.before_submit:1",
        "wallet.after_submit:1",
        "wallet.after_submit:2",
        "wallet.after_submit:3",
    ],
)
def test_a_crash_at_any_step_resumes_without_paying_twice(world: World, crash: str) -> None:
    env = os.environ | {"FLWR_STELLAR_PASSPHRASE": PASSPHRASE, "FLWR_STELLAR_FAILPOINT": crash}
    cli = [sys.executable, "-m", "flwr_stellar.cli", *world.args("collect")]
    killed = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    journaled = Journal(journal_path(world.keystore)).entries(kind="collect")
    assert journaled[-1]["state"] == "signed"  # killed with a transaction's outcome unknown
    sponsoring = world.sponsoring()
    del env["FLWR_STELLAR_FAILPOINT"]
    resumed = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert world.dlc(world.destination.public_key) == int(OWED * UNIT)
    assert world.sponsoring() <= sponsoring
    ledger = world.ledger()
    for pseudonym in world.pseudonyms.values():
        assert ledger.claimable_balances(claimant=pseudonym).records == ()
        with pytest.raises(NotFoundError):
            ledger.load_account(pseudonym)
    ledger.close()
    again = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "nothing to collect" in again.stdout
    assert world.dlc(world.destination.public_key) == int(OWED * UNIT)


def test_a_lost_journal_is_recovered_from_the_keystore_and_the_coin(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal_path(world.keystore).unlink()
    assert main(world.args("balances", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == []  # nothing known without it
    runs = ["--run-id", str(PAID_RUN), "--run-id", str(CLAIMABLE_RUN)]
    assert main(world.args("balances", *runs)) == 1
    assert "--asset CODE:ISSUER" in capsys.readouterr().err
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", PASSPHRASE)
    recover = [*runs, "--asset", world.treasury.asset_id]
    assert main(world.args("balances", "--json", *recover)) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["totals"] == {world.treasury.asset_id: int(OWED * UNIT)}
    assert main(world.args("collect", *recover)) == 0
    assert world.dlc(world.destination.public_key) == int(OWED * UNIT)
    assert main(world.args("collect", *recover)) == 0
    assert "nothing to collect" in capsys.readouterr().out
    assert world.dlc(world.destination.public_key) == int(OWED * UNIT)
