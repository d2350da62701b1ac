"""The provider's wallet on a real embedded ledger: two runs (one paid by payments to a
sponsored pseudonym, one by claimable balances to a pseudonym with no account), listed and
collected with fee bumps into one account, exactly once across crashes at every step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stellar_sdk import Keypair
from wallet_world import UNIT, World, make_world

from flwr_stellar.cli import main
from flwr_stellar.client.journal import Journal, journal_path
from flwr_stellar.identity import keystore
from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import NotFoundError

PASSPHRASE = "wallet-test-passphrase"
PAID_RUN, CLAIMABLE_RUN = 11, 12


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(
        tmp_path, PASSPHRASE, (PAID_RUN, CLAIMABLE_RUN), ("20", "10.5"), ("12", "7.25")
    )


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
    for kp in world.pseudonyms.values():
        assert ledger.claimable_balances(claimant=kp.public_key).records == ()
        with pytest.raises(Exception, match="not found"):
            ledger.load_account(kp.public_key)
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
    for kp in world.pseudonyms.values():
        assert ledger.claimable_balances(claimant=kp.public_key).records == ()
        with pytest.raises(NotFoundError):
            ledger.load_account(kp.public_key)
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
