"""A ledger backend is one registered class: settings validate against the registry and open
through it, and the reference app's ``ledger.backend`` follows without an edit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flwr_stellar.ledger import registry
from flwr_stellar.ledger.backends import EmbeddedBackend, HorizonBackend, RpcBackend
from flwr_stellar.ledger.base import Ledger
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.ledger.registry import LedgerBackend, backend_names, get_backend
from flwr_stellar.ledger.settings import LedgerSettings


@pytest.fixture
def fake_backend() -> Iterator[type[LedgerBackend]]:
    opened: list[tuple[LedgerSettings, Path]] = []

    @registry.register_backend("fake")
    class FakeBackend(LedgerBackend):
        calls = opened

        @classmethod
        def problems(cls, settings: LedgerSettings) -> list[registry.Problem]:
            return [("db", settings.db != "forbidden", "must not be 'forbidden'")]

        @classmethod
        def open(cls, settings: LedgerSettings, output_dir: Path) -> Ledger:
            opened.append((settings, output_dir))
            return EmbeddedLedger(output_dir / "fake.db")

    yield FakeBackend
    registry._BACKENDS.pop("fake", None)


def test_the_built_ins_are_registered_in_order() -> None:
    assert backend_names()[:3] == ("embedded", "horizon", "rpc")
    assert get_backend("embedded") is EmbeddedBackend and get_backend("horizon") is HorizonBackend
    assert get_backend("rpc") is RpcBackend
    with pytest.raises(KeyError, match="no ledger backend 'core'"):
        get_backend("core")


def test_settings_open_through_the_registry(tmp_path: Path) -> None:
    ledger = LedgerSettings().open(tmp_path)
    try:
        assert isinstance(ledger, EmbeddedLedger) and (tmp_path / "ledger.db").is_file()
    finally:
        ledger.close()
    horizon = LedgerSettings(backend="horizon", horizon_url="http://127.0.0.1:1").open(tmp_path)
    assert isinstance(horizon, HorizonLedger)
    horizon.close()
    with pytest.raises(ValueError, match=r"LedgerSettings\.backend must be one of"):
        LedgerSettings(backend="core")


def test_a_new_backend_is_one_class(fake_backend: type[LedgerBackend], tmp_path: Path) -> None:
    settings = LedgerSettings(backend="fake")
    ledger = settings.open(tmp_path)
    ledger.close()
    assert fake_backend.calls == [(settings, tmp_path)]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"LedgerSettings\.db must not be 'forbidden'"):
        LedgerSettings(backend="fake", db="forbidden")  # the backend's own rule, by field


def test_a_taken_name_is_refused(fake_backend: type[LedgerBackend]) -> None:
    with pytest.raises(ValueError, match="'fake' is already"):

        @registry.register_backend("fake")
        class Other(LedgerBackend):
            pass


def test_the_reference_app_accepts_a_registered_backend(
    fake_backend: type[LedgerBackend],
) -> None:
    from flwr_stellar.app.config import AppConfig, ConfigError, load_default_run_config

    flat = load_default_run_config()
    assert AppConfig.from_run_config(flat | {"ledger.backend": "fake"}).ledger.backend == "fake"
    names = r"\('embedded', 'horizon', 'rpc', 'fake'\)"
    with pytest.raises(ConfigError, match=r"ledger\.backend must be one of " + names):
        AppConfig.from_run_config(flat | {"ledger.backend": "core"})
