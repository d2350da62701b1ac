"""A small paying world on an embedded ledger, shared by the anchoring tests and the crash
script: a treasury, onboarded pseudonyms and deterministic round manifests."""

import hashlib
from pathlib import Path

from stellar_sdk import ChangeTrust, Keypair

from flwr_stellar.identity.keystore import MasterSecret
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.tx import submit_signed
from flwr_stellar.payments.anchoring import Anchorer
from flwr_stellar.payments.manifest import Contribution, ManifestStore, RoundManifest
from flwr_stellar.payments.outbox import Outbox
from flwr_stellar.payments.settings import RewardSettings
from flwr_stellar.payments.treasury import Treasury, prepare

REWARD = RewardSettings(budget_per_round="10")


def keypair(label: str) -> Keypair:
    return Keypair.from_raw_ed25519_seed(hashlib.sha256(label.encode()).digest())


def treasury() -> Treasury:
    return Treasury.from_master(MasterSecret(hashlib.sha256(b"treasury").digest()), "DLC")


def pseudonyms(n: int) -> list[Keypair]:
    return [keypair(f"pseudonym-{i}") for i in range(n)]


def setup(db: Path, n: int) -> None:
    """Idempotent: treasury funded with plenty of DLC, ``n`` pseudonyms trusting it."""
    ledger = EmbeddedLedger(db)
    t = treasury()
    prepare(ledger, t, REWARD, 10**15)
    for kp in pseudonyms(n):
        try:
            ledger.load_account(kp.public_key)
            continue
        except Exception:
            ledger.fund(kp.public_key)
        submit_signed(ledger, [kp], [ChangeTrust(t.asset)])
    ledger.close()


def manifest(server_round: int, payees: list[Keypair], amount: int = 7) -> RoundManifest:
    return RoundManifest(
        run_id=1,
        server_round=server_round,
        config_hash="c" * 64,
        model_before="a" * 64,
        model_after="b" * 64,
        asset=treasury().asset_id,
        budget=amount * max(1, len(payees)),
        contributions=tuple(
            Contribution(kp.public_key, "d" * 64, 10, 1, amount + server_round) for kp in payees
        ),
        rejections=(),
    )


def anchorer(db: Path, out: Path) -> Anchorer:
    return Anchorer(
        lambda: EmbeddedLedger(db), treasury(), Outbox(out / "outbox.db"), ManifestStore(out / "m")
    )
