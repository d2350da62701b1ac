"""Building and submitting real stellar_sdk envelopes against an EmbeddedLedger in tests."""

from collections.abc import Callable
from pathlib import Path

from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.serve_process import serving


class Chain:
    """A ledger plus helpers: funded accounts, transactions signed as you ask."""

    def __init__(self, path: str = ":memory:") -> None:
        self.ledger = EmbeddedLedger(path)

    def funded(self, xlm: int | None = None) -> Keypair:
        kp = Keypair.random()
        result = (
            self.ledger.fund(kp.public_key)
            if xlm is None
            else self.ledger.fund(kp.public_key, xlm * 10_000_000)
        )
        assert result.successful, result.tx_code
        return kp

    def build(
        self,
        source: Keypair,
        *ops: Callable[[TransactionBuilder], object],
        fee: int = 100,
        seq: int | None = None,
        signers: tuple[Keypair, ...] | None = None,
        timeout: int = 300,
        time_bounds: tuple[int, int] | None = None,
    ) -> str:
        sequence = self.ledger.load_account(source.public_key).sequence if seq is None else seq
        builder = TransactionBuilder(
            Account(source.public_key, sequence), self.ledger.network_passphrase, base_fee=fee
        )
        for op in ops:
            op(builder)
        if time_bounds is not None:
            builder.add_time_bounds(*time_bounds)
        else:
            builder.set_timeout(timeout)
        tx = builder.build()
        for kp in (source,) if signers is None else signers:
            tx.sign(kp)
        return tx.to_xdr()

    def submit(self, source: Keypair, *ops, **kw):  # type: ignore[no-untyped-def]
        return self.ledger.submit(self.build(source, *ops, **kw))

    def xlm(self, kp: Keypair) -> int:
        return self.ledger.load_account(kp.public_key).balance()

    def asset(self, issuer: Keypair, code: str = "DLC") -> Asset:
        return Asset(code, issuer.public_key)


def pay(dest: Keypair, amount: str, asset: Asset | None = None):  # type: ignore[no-untyped-def]
    return lambda b: b.append_payment_op(dest.public_key, asset or Asset.native(), amount)


def trust(asset: Asset, limit: str | None = None):  # type: ignore[no-untyped-def]
    return lambda b: b.append_change_trust_op(asset, limit)


def serve_ledger(db: Path):
    """`flwr-stellar ledger serve` on a free loopback port; yields its URL; stops it after."""
    return serving(db, log=db.parent / f"server-{db.stem}.log")
