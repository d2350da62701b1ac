import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import pytest

from flwr_stellar.app.config import AppConfig, default_config


@pytest.fixture(scope="session")
def defaults() -> AppConfig:
    return default_config()
