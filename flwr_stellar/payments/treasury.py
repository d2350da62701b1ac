"""The server's Stellar accounts: DLC issuer, distributor (holds the budget), sponsor (pays
pseudonyms' reserves). All three derive from one master secret kept in an encrypted keystore,
so a restarted server finds the same accounts and only one file needs guarding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from logging import INFO, WARNING
from pathlib import Path

from flwr.common.logger import log
from stellar_sdk import (
    Asset,
    AuthorizationFlag,
    ChangeTrust,
    Keypair,
    Operation,
    Payment,
    SetOptions,
    SetTrustLineFlags,
    TrustLineFlags,
)

from flwr_stellar.identity import keystore
from flwr_stellar.identity.passphrase import resolve_passphrase
from flwr_stellar.identity.pseudonym import derive_keypair
from flwr_stellar.ledger.base import (
    AccountInfo,
    Ledger,
    LedgerError,
    LedgerUnavailableError,
    NotFoundError,
)
from flwr_stellar.ledger.tx import submit_signed
from flwr_stellar.payments.amounts import format_amount
from flwr_stellar.payments.settings import RewardSettings

DEV_TREASURY_PASSPHRASE = "flwr-stellar-dev-only"  # dev treasuries of simulations only
ROLES = ("issuer", "distributor", "sponsor")


def _role_keypair(master: keystore.MasterSecret, role: str) -> Keypair:
    return derive_keypair(master, b"flwr-stellar/treasury/v1", role.encode())


@dataclass(frozen=True)
class Treasury:
    issuer: Keypair
    distributor: Keypair
    sponsor: Keypair
    asset: Asset

    @classmethod
    def from_master(cls, master: keystore.MasterSecret, asset_code: str) -> Treasury:
        issuer, distributor, sponsor = (_role_keypair(master, r) for r in ROLES)
        return cls(issuer, distributor, sponsor, Asset(asset_code, issuer.public_key))

    @property
    def asset_id(self) -> str:
        return f"{self.asset.code}:{self.asset.issuer}"

    def __repr__(self) -> str:  # never show secrets
        return f"Treasury(asset={self.asset_id}, distributor={self.distributor.public_key})"


def open_treasury(cfg: RewardSettings, output_dir: Path) -> Treasury:
    """Unlock (or, for a dev treasury, create) the keystore and derive the three accounts.

    Parameters
    ----------
    cfg : RewardSettings
        ``treasury_keystore`` and its passphrase variable; ``asset_code``.
    output_dir : Path
        Where a development treasury is created when no keystore is named.
    """
    if cfg.treasury_keystore:
        path = Path(cfg.treasury_keystore).expanduser()
        passphrase = resolve_passphrase(env=cfg.treasury_passphrase_env, file=None, prompt=False)
    else:
        path, passphrase = output_dir / "treasury.json", DEV_TREASURY_PASSPHRASE
        if not path.exists():
            keystore.save(path, keystore.MasterSecret.generate(with_mnemonic=False), passphrase)
            log(
                WARNING,
                "flwr-stellar: created DEVELOPMENT treasury %s with the public dev passphrase; "
                "set treasury_keystore for real money",
                path,
            )
    return Treasury.from_master(keystore.load(path, passphrase), cfg.asset_code)


def _account(ledger: Ledger, address: str) -> AccountInfo | None:
    try:
        return ledger.load_account(address)
    except NotFoundError:
        return None


def ensure_all_funded(ledger: Ledger, addresses: list[str]) -> list[AccountInfo]:
    """The accounts, funding missing ones through the network's faucet; where there is none
    (pubnet) or it refuses, one error names every address the operator must send XLM to."""
    unfunded: list[str] = []
    for address in addresses:
        if _account(ledger, address) is not None:
            continue
        try:
            result = ledger.fund(address)
        except LedgerUnavailableError:
            raise
        except LedgerError as err:
            unfunded.append(f"{address} ({err})")
            continue
        if not result.successful:
            unfunded.append(f"{address} ({result.tx_code})")
    if unfunded:
        raise LedgerError(
            "treasury accounts missing on this network; send each at least 5 XLM and start "
            "again: " + "; ".join(unfunded)
        )
    return [ledger.load_account(a) for a in addresses]


def required_signers(
    source: Keypair, operations: Sequence[Operation], keypairs: Sequence[Keypair]
) -> list[Keypair]:
    """The keypairs whose signatures the transaction needs: its source's and each operation
    source's, once each, in ``keypairs`` order.

    Stellar refuses a transaction carrying a signature that no source needs
    (``tx_bad_auth_extra``), so a top-up that only issues more coin must not also carry the
    distributor's signature that the first run's trustline needed.

    Parameters
    ----------
    source : Keypair
        The transaction's source account.
    operations : sequence of Operation
        The operations; one without a source acts for the transaction's source.
    keypairs : sequence of Keypair
        The keypairs available to sign.

    Returns
    -------
    list[Keypair]
        Those of ``keypairs`` that are the source or an operation's source.

    Raises
    ------
    ValueError
        When a needed account has no keypair in ``keypairs``.
    """
    needed = {source.public_key}
    needed.update(op.source.account_id for op in operations if op.source is not None)
    chosen = [kp for kp in keypairs if kp.public_key in needed]
    missing = needed - {kp.public_key for kp in chosen}
    if missing:
        raise ValueError(f"no keypair to sign for {', '.join(sorted(missing))}")
    return list({kp.public_key: kp for kp in chosen}.values())


def prepare(ledger: Ledger, treasury: Treasury, cfg: RewardSettings, budget_total: int) -> None:
    """Idempotently: accounts exist, issuer flags set, distributor trusts DLC and holds at
    least ``budget_total`` stroops of it (issuing only the difference)."""
    issuer, _, distributor = ensure_all_funded(
        ledger,
        [
            treasury.issuer.public_key,
            treasury.sponsor.public_key,
            treasury.distributor.public_key,
        ],
    )
    wanted = AuthorizationFlag(0)
    if cfg.auth_required:
        wanted |= AuthorizationFlag.AUTHORIZATION_REQUIRED
    if cfg.auth_revocable:
        wanted |= AuthorizationFlag.AUTHORIZATION_REVOCABLE
    if cfg.clawback:
        wanted |= AuthorizationFlag.AUTHORIZATION_CLAWBACK_ENABLED
    if int(wanted) & ~issuer.flags:
        submit_signed(ledger, [treasury.issuer], [SetOptions(set_flags=wanted)])
    asset = treasury.asset_id
    line = next((b for b in distributor.balances if b.asset == asset), None)
    setup: list[Operation] = []
    if line is None:
        setup.append(ChangeTrust(treasury.asset, source=treasury.distributor.public_key))
    if cfg.auth_required and (line is None or not line.flags & 1):
        setup.append(
            SetTrustLineFlags(
                treasury.distributor.public_key,
                treasury.asset,
                set_flags=TrustLineFlags.AUTHORIZED_FLAG,
                source=treasury.issuer.public_key,
            )
        )
    held = line.balance if line else 0
    if held < budget_total:
        setup.append(
            Payment(
                treasury.distributor.public_key,
                treasury.asset,
                format_amount(budget_total - held),
                source=treasury.issuer.public_key,
            )
        )
    if setup:
        roles = [treasury.issuer, treasury.distributor]
        signers = required_signers(treasury.issuer, setup, roles)
        submit_signed(ledger, signers, setup, source=treasury.issuer)
        log(INFO, "treasury: distributor holds %s stroops of %s", budget_total, asset)
