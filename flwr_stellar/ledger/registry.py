"""The one registry of ledger backends: ``ledger.backend`` names a class registered here.

A backend is one class: it checks the settings only it cares about and opens its
:class:`~flwr_stellar.ledger.base.Ledger`. ``LedgerSettings`` validates ``backend`` against this
registry and ``LedgerSettings.open`` dispatches through it, and the reference app's
``ledger.backend`` is validated by ``LedgerSettings``, so a new backend (a test double, another
network client) is one decorated class, with no list or ``if`` chain to extend elsewhere::

    @register_backend("mine")
    class MyBackend(LedgerBackend):
        @classmethod
        def open(cls, settings: LedgerSettings, output_dir: Path) -> Ledger:
            return MyLedger(settings.rpc_url, settings.network_passphrase)

The built-in backends (``embedded``, ``horizon``, ``rpc``) live in
:mod:`flwr_stellar.ledger.backends` and are registered on first use of the registry, so
importing it never misses them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, TypeVar

from flwr_stellar.ledger.base import Ledger

if TYPE_CHECKING:
    from flwr_stellar.ledger.settings import LedgerSettings

BUILTINS = "flwr_stellar.ledger.backends"  # the module that registers the built-in backends

Problem = tuple[str, bool, str]  # (LedgerSettings field, ok, why not), as __post_init__ reports


class LedgerBackend:
    """One ledger backend: what ``ledger.backend = "<name>"`` opens.

    Subclass it, implement :meth:`open`, and register it with :func:`register_backend`. The
    other hooks have defaults that suit a backend with no settings of its own.
    """

    name: ClassVar[str] = ""  # set by register_backend

    @classmethod
    def open(cls, settings: LedgerSettings, output_dir: Path) -> Ledger:
        """Open (creating, where that is the backend's way) the ledger ``settings`` name.

        Parameters
        ----------
        settings : LedgerSettings
            Already validated, including :meth:`problems`.
        output_dir : Path
            The run's output folder, for backends that keep files (the embedded ``ledger.db``).
        """
        raise NotImplementedError(f"ledger backend {cls.name!r} does not implement open")

    @classmethod
    def problems(cls, settings: LedgerSettings) -> list[Problem]:
        """The checks only this backend needs, as ``(field, ok, why)`` (default: none).

        ``LedgerSettings.__post_init__`` raises for the first one that is not ok, naming the
        field, so a backend's rules fail before round 1 like every other setting.
        """
        return []

    @classmethod
    def network_ops_per_ledger(cls, settings: LedgerSettings) -> int:
        """The network's own per-ledger operation limit, used when ``ops_per_ledger`` is 0
        (default: 0, no pacing: a ledger that answers as fast as we submit)."""
        return 0


BackendT = TypeVar("BackendT", bound=type[LedgerBackend])

_BACKENDS: dict[str, type[LedgerBackend]] = {}


def register_backend(name: str) -> Callable[[BackendT], BackendT]:
    """Class decorator: make ``cls`` the backend ``ledger.backend = name`` opens.

    Parameters
    ----------
    name : str
        The settings value; registering a second class under a taken name is refused (two
        backends answering to one name would make a run's ledger depend on import order).

    Raises
    ------
    ValueError
        ``name`` is empty or already names another class.
    """

    def add(cls: BackendT) -> BackendT:
        if not name:
            raise ValueError("a ledger backend needs a non-empty name")
        taken = _BACKENDS.get(name)
        if taken is not None and taken is not cls:
            raise ValueError(f"ledger backend {name!r} is already {taken.__qualname__}")
        cls.name = name
        _BACKENDS[name] = cls
        return cls

    return add


def backends() -> Mapping[str, type[LedgerBackend]]:
    """Every registered backend by name, built-ins first (a read-only view)."""
    importlib.import_module(BUILTINS)  # registers the built-ins on first use
    return MappingProxyType(_BACKENDS)


def backend_names() -> tuple[str, ...]:
    """The names ``ledger.backend`` accepts, in registration order."""
    return tuple(backends())


def get_backend(name: str) -> type[LedgerBackend]:
    """The backend class registered as ``name``.

    Raises
    ------
    KeyError
        No backend has that name; the message lists those that do.
    """
    found = backends().get(name)
    if found is None:
        raise KeyError(f"no ledger backend {name!r}; registered: {backend_names()}")
    return found
