"""Which ledger a run uses: typed settings that validate before round 1, and ``open``.

The embedded ledger is the zero-set-up default; ``backend="horizon"`` talks to any Horizon (the
embedded ``ledger serve``, a private network, testnet, or pubnet once ``allow_pubnet`` says so),
``backend="rpc"`` to the same networks through Stellar RPC.
``backend`` names a class in :mod:`flwr_stellar.ledger.registry`; its own rules and its opening
live there, so these settings know no backend by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flwr_stellar.ledger.base import Ledger, LedgerError
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.ledger.networks import PRESETS
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
        ``horizon``, any Horizon server through stellar_sdk; ``rpc``, any Stellar RPC.
    db : str
        Embedded ledger file; ``""`` puts ``ledger.db`` in the output folder.
    preset : {"local", "testnet", "futurenet", "pubnet", "custom"}
        Network preset (``horizon``, ``rpc``); ``custom`` needs ``horizon_url`` (``rpc``:
        ``rpc_url``) and ``network_passphrase``.
    horizon_url : str
        Overrides the preset's Horizon URL (``""`` keeps it).
    rpc_url : str
        Overrides the preset's Stellar RPC URL for ``backend="rpc"`` (``""`` keeps it: local
        ``http://127.0.0.1:8000/rpc``, testnet ``https://soroban-testnet.stellar.org``);
        pubnet has no public one, so it must be set there.
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
    rpc_url: str = ""
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
            (
                "rpc_url",
                not self.rpc_url or self.rpc_url.startswith(("http://", "https://")),
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
    db: Path | None = None,
    url: str | None = None,
    network_passphrase: str = "",
    rpc_url: str | None = None,
) -> Ledger:
    """Open a ledger to read (audits, the explorer): an existing embedded file, a Horizon URL
    or a Stellar RPC URL.

    Parameters
    ----------
    db : Path, optional
        Embedded ledger file; it must exist (nothing is created).
    url : str, optional
        Horizon base URL (used when ``db`` is None); a URL whose path ends in ``/rpc`` is taken
        as Stellar RPC (``ledger serve`` answers RPC there).
    network_passphrase : str
        For a Horizon URL: the network's passphrase (default: the embedded ledger's). For RPC:
        the server's own (``getNetwork``) when empty. For a file: read from the file when
        empty.
    rpc_url : str, optional
        Stellar RPC endpoint (used when ``db`` and ``url`` are None).

    Raises
    ------
    LedgerError
        None given, or the file does not exist.
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
    if url and is_rpc_url(url):
        rpc_url, url = url, None
    # reading is harmless: pubnet needs no confirmation here, nothing is signed
    if url:
        return HorizonLedger(url, network_passphrase or DEFAULT_PASSPHRASE, allow_real_money=True)
    if rpc_url:
        from flwr_stellar.ledger.rpc import RpcLedger

        return RpcLedger(rpc_url, network_passphrase or None, allow_real_money=True)
    raise LedgerError(
        "name a ledger: --db PATH (embedded file), --ledger URL (Horizon) or --rpc URL "
        "(Stellar RPC)"
    )


def is_rpc_url(url: str) -> bool:
    """Whether ``url`` names a Stellar RPC endpoint by its path (``.../rpc``, as ``ledger
    serve`` serves it); other RPC URLs are named with ``--rpc``."""
    from urllib.parse import urlsplit

    return urlsplit(url).path.rstrip("/").endswith("/rpc")
