"""Which ledger a run uses: typed settings that validate before round 1, and ``open``.

The embedded ledger is the zero-set-up default; ``backend="horizon"`` talks to any Horizon (the
embedded ``ledger serve``, a private network, testnet, or pubnet once ``allow_pubnet`` says so).
``backend`` names a class in :mod:`flwr_stellar.ledger.registry`; its own rules and its opening
live there, so these settings know no backend by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flwr_stellar.ledger.base import Ledger, LedgerError
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.horizon import PRESETS, HorizonLedger
from flwr_stellar.ledger.pacing import MAX_FEE_PER_OP, FeeBid, LedgerPacer
from flwr_stellar.ledger.registry import LedgerBackend, backend_names, get_backend
from flwr_stellar.ledger.tx import BASE_FEE, MAX_OPS

PRESET_NAMES = (*PRESETS, "custom")


@dataclass(frozen=True)
class LedgerSettings:
    """Where rounds are anchored and rewards paid.

    Parameters
    ----------
    backend : str
        A registered backend (:func:`~flwr_stellar.ledger.registry.backend_names`); built in:
        ``embedded``, a Stellar-rules ledger in a local SQLite file, nothing to set up (default);
        ``horizon``, any Horizon server through stellar_sdk.
    db : str
        Embedded ledger file; ``""`` puts ``ledger.db`` in the output folder.
    preset : {"local", "testnet", "futurenet", "pubnet", "custom"}
        Horizon network preset; ``custom`` needs ``horizon_url`` and ``network_passphrase``.
    horizon_url : str
        Overrides the preset's URL (``""`` keeps it).
    network_passphrase : str
        Overrides the preset's passphrase; for ``embedded``, its own network's.
    allow_pubnet : bool
        Pubnet moves real money: it must be allowed explicitly.
    ops_per_ledger : int
        Operations of ours per ledger close (~5 s): ``0`` takes the preset's network limit
        (testnet 200, pubnet 1,000; no pacing for ``embedded`` and ``local``); set it lower to
        leave room for others, or >= 100 for a custom network.
    max_fee_per_op : int
        Highest fee bid per operation in stroops when the network is congested (the bid starts
        at the base fee, 100, and doubles on ``tx_insufficient_fee`` / ``tx_too_late``).
    """

    backend: str = "embedded"
    db: str = ""
    preset: str = "local"
    horizon_url: str = ""
    network_passphrase: str = ""
    allow_pubnet: bool = False
    ops_per_ledger: int = 0
    max_fee_per_op: int = MAX_FEE_PER_OP

    def __post_init__(self) -> None:
        names = backend_names()
        problems = [
            ("backend", self.backend in names, f"must be one of {names}"),
            ("preset", self.preset in PRESET_NAMES, f"must be one of {PRESET_NAMES}"),
        ]
        if self.backend in names:  # the backend's own rules, e.g. horizon's pubnet confirmation
            problems += get_backend(self.backend).problems(self)
        problems += [
            (
                "horizon_url",
                not self.horizon_url or self.horizon_url.startswith(("http://", "https://")),
                "must be an http(s) URL",
            ),
        ]
        problems += [
            (
                "ops_per_ledger",
                self.ops_per_ledger == 0 or self.ops_per_ledger >= MAX_OPS,
                f"must be 0 (the preset's) or >= {MAX_OPS} (one full transaction)",
            ),
            ("max_fee_per_op", self.max_fee_per_op >= BASE_FEE, f"must be >= {BASE_FEE}"),
        ]
        for name, ok, why in problems:
            if not ok:
                raise ValueError(f"LedgerSettings.{name} {why}, got {getattr(self, name)!r}")

    def pacer(self) -> LedgerPacer | None:
        """The pacing these settings ask for (None: submit as fast as the ledger answers)."""
        limit = self.ops_per_ledger or self.backend_class().network_ops_per_ledger(self)
        return LedgerPacer(limit) if limit else None

    def fee_bid(self) -> FeeBid:
        return FeeBid(self.max_fee_per_op)

    def backend_class(self) -> type[LedgerBackend]:
        """The registered class ``backend`` names."""
        return get_backend(self.backend)

    def open(self, output_dir: Path) -> Ledger:
        """Open (creating, for an embedded file) the ledger these settings name, through the
        backend's class.

        Parameters
        ----------
        output_dir : Path
            Where an embedded ``ledger.db`` goes when ``db`` is empty.
        """
        return self.backend_class().open(self, output_dir)


def open_existing(
    db: Path | None = None, url: str | None = None, network_passphrase: str = ""
) -> Ledger:
    """Open a ledger to read (audits, the explorer): an existing embedded file or a Horizon URL.

    Parameters
    ----------
    db : Path, optional
        Embedded ledger file; it must exist (nothing is created).
    url : str, optional
        Horizon base URL (used when ``db`` is None).
    network_passphrase : str
        For a URL: the network's passphrase (default: the embedded ledger's). For a file:
        read from the file when empty.

    Raises
    ------
    LedgerError
        Neither given, or the file does not exist.
    """
    if db is not None:
        if not Path(db).is_file():
            raise LedgerError(f"ledger database {db} not found")
        if not network_passphrase:
            from flwr_stellar.ledger.embedded.store import Store

            store = Store(db)
            try:
                network_passphrase = store.meta("network_passphrase") or DEFAULT_PASSPHRASE
            finally:
                store.close()
        return EmbeddedLedger(db, network_passphrase)
    if url:
        # reading is harmless: pubnet needs no confirmation here, nothing is signed
        return HorizonLedger(url, network_passphrase or DEFAULT_PASSPHRASE, allow_real_money=True)
    raise LedgerError("name a ledger: --db PATH (embedded file) or --ledger URL (Horizon)")
