"""What a run pays and how: typed settings that validate in their constructor, before round 1."""

from __future__ import annotations

from dataclasses import dataclass

from flwr_stellar.ledger.amounts import parse_amount
from flwr_stellar.ledger.base import asset_code_ok

ONBOARDING = ("sponsored", "friendbot")
PAYOUTS = ("payment", "claimable")
DAY_S = 86_400
TREASURY_PASSPHRASE_ENV = "FLWR_STELLAR_TREASURY_PASSPHRASE"


@dataclass(frozen=True)
class RewardSettings:
    """The coin, the budget, how pseudonyms get a trustline, and whose keys pay.

    Parameters
    ----------
    asset_code : str
        The reward coin, a Stellar credit asset of the run's issuer (1-12 letters/digits).
    budget_per_round : str
        Coins shared by a round's accepted contributions, as a decimal string with at most
        7 decimals (Stellar amounts are integer stroops; a string keeps them exact).
    onboarding : {"sponsored", "friendbot"}
        ``sponsored``: the server's sponsor account creates each pseudonym with 0 XLM and pays
        its reserves, the node co-signs; ``friendbot``: a dev network's faucet funds it.
    auth_required, auth_revocable, clawback : bool
        Issuer flags; ``clawback`` needs ``auth_revocable`` (a Stellar rule).
    treasury_keystore : str
        The treasury keystore (issuer, distributor and sponsor derive from it); ``""`` creates
        a development treasury in the output folder with the public dev passphrase.
    treasury_passphrase_env : str
        Environment variable holding the treasury keystore's passphrase.
    payout : {"payment", "claimable"}
        ``payment``: each round pays onboarded pseudonyms directly; ``claimable``: each round
        creates one claimable balance a payout, claimable by the pseudonym whenever it likes,
        so a node is paid without an account or trustline (no sponsored onboarding, nothing
        of the sponsor ties its runs together); the distributor locks 0.5 XLM a balance until
        it is claimed.
    quantum : str
        Payouts and held shares are whole multiples of this amount (the split is done in
        quanta; the remainder of a round's budget stays unpaid), so that exact amounts do not
        fingerprint a provider across runs. ``"0.0000001"`` (one stroop) splits exactly.
    reclaim_after_days : int
        Claimable payouts only: after this many days the distributor may take an unclaimed
        balance back (a second claimant, one more reserve); 0 = never, the node's alone.
    """

    asset_code: str = "DLC"
    budget_per_round: str = "100"
    onboarding: str = "sponsored"
    auth_required: bool = False
    auth_revocable: bool = False
    clawback: bool = False
    treasury_keystore: str = ""
    treasury_passphrase_env: str = TREASURY_PASSPHRASE_ENV
    payout: str = "payment"
    quantum: str = "0.0000001"
    reclaim_after_days: int = 0

    def __post_init__(self) -> None:
        problems = [
            ("asset_code", asset_code_ok(self.asset_code), "must be 1-12 letters/digits"),
            (
                "budget_per_round",
                isinstance(self.budget_per_round, str)
                and parse_amount(self.budget_per_round) is not None,
                'must be a decimal string > 0 with at most 7 decimals, e.g. "100"',
            ),
            ("onboarding", self.onboarding in ONBOARDING, f"must be one of {ONBOARDING}"),
            (
                "clawback",
                not self.clawback or self.auth_revocable,
                "needs auth_revocable=True (Stellar rule)",
            ),
            ("treasury_passphrase_env", bool(self.treasury_passphrase_env), "must not be empty"),
            ("payout", self.payout in PAYOUTS, f"must be one of {PAYOUTS}"),
            (
                "quantum",
                isinstance(self.quantum, str)
                and parse_amount(self.quantum) is not None
                and (parse_amount(self.quantum) or 0) <= (parse_amount(self.budget_per_round) or 0),
                'must be a decimal string > 0 of at most budget_per_round, e.g. "0.01"',
            ),
            (
                "payout",
                self.payout != "claimable" or not self.auth_required,
                "claimable cannot be used with auth_required=True: no onboarding step would "
                "authorize the trustline a node opens to claim",
            ),
            (
                "reclaim_after_days",
                type(self.reclaim_after_days) is int and 0 <= self.reclaim_after_days <= 36_500,
                "must be a whole number of days in [0, 36500]",
            ),
        ]
        for name, ok, why in problems:
            if not ok:
                raise ValueError(f"RewardSettings.{name} {why}, got {getattr(self, name)!r}")

    @property
    def budget_stroops(self) -> int:
        """The round budget in stroops (validated, so never None)."""
        return parse_amount(self.budget_per_round) or 0

    @property
    def quantum_stroops(self) -> int:
        """The payout quantum in stroops (validated, so never None)."""
        return parse_amount(self.quantum) or 1

    @property
    def reclaim_after_s(self) -> int:
        return self.reclaim_after_days * DAY_S
