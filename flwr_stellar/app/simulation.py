"""Run the Flower App in the Simulation Runtime exactly as ``flwr run`` does, in-process.

``flwr run`` on a ``:local:`` federation fuses ``[tool.flwr.app.config]`` with the
``--run-config`` overrides and loads the ServerApp / ClientApp by their component names
from the app folder. This module does the same through flwr 1.41's simulation entry
(``_run_simulation``, private; flwr is pinned), so the Hydra front door drives the very
same App with the very same schema, and tests get a real simulation without a SuperLink.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # CPU-only; silence Ray's tip

from flwr.app import Context, RecordDict
from flwr.common.config import get_fused_config_from_dir, get_project_config
from flwr.common.constant import RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID
from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
from flwr.simulation.run_simulation import _run_simulation
from flwr.supercore.constant import NOOP_FEDERATION_ID
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.supercore.telemetry import EventType

from flwr_stellar.app.config import PROJECT_DIR, AppConfig, ConfigError


def fuse_run_config(overrides: Mapping[str, Any], app_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """Defaults + overrides, as Flower fuses them; unknown keys and bad values raise."""
    try:
        fused = get_fused_config_from_dir(app_dir, dict(overrides))
    except ValueError as err:  # Flower: "Key 'x' is not present in the main dictionary"
        raise ConfigError(str(err)) from None
    AppConfig.from_run_config(fused)
    return fused


def run_app_simulation(
    overrides: Mapping[str, Any],
    *,
    num_supernodes: int,
    cpus_per_client: float = 1.0,
    app_dir: Path = PROJECT_DIR,
    verbose: bool = False,
) -> Context:
    """Run the App on ``num_supernodes`` simulated nodes; returns the ServerApp's context."""
    if num_supernodes < 1:
        raise ConfigError(f"federation.num_supernodes must be >= 1, got {num_supernodes}")
    if cpus_per_client <= 0:
        raise ConfigError(f"federation.cpus_per_client must be > 0, got {cpus_per_client}")
    fused = fuse_run_config(overrides, app_dir)
    return simulate_app(app_dir, fused, overrides, num_supernodes, cpus_per_client, verbose)


def simulate_app(
    app_dir: Path,
    run_config: Mapping[str, Any],
    overrides: Mapping[str, Any],
    num_supernodes: int,
    cpus_per_client: float = 1.0,
    verbose: bool = False,
) -> Context:
    """Any Flower App in ``app_dir`` (not only the reference app: no schema check) with its
    already fused ``run_config``; returns the ServerApp's context."""
    components = get_project_config(app_dir)["tool"]["flwr"]["app"]["components"]
    run_id = generate_rand_int_from_bytes(RUN_ID_NUM_BYTES)
    run = Run.create_empty(run_id=run_id)
    run.override_config = dict(overrides)
    run.primary_task_id = generate_rand_int_from_bytes(RUN_ID_NUM_BYTES)
    run.federation_id = NOOP_FEDERATION_ID
    TaskIdentity.task_id = run.primary_task_id
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    context = Context(
        run_id=run_id,
        node_id=SUPERLINK_NODE_ID,
        node_config={},
        state=RecordDict(),
        run_config=dict(run_config),
    )
    result = _run_simulation(
        num_supernodes=num_supernodes,
        exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
        server_app_attr=components["serverapp"],
        client_app_attr=components["clientapp"],
        backend_config={"client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0}},
        server_app_context=context,
        app_dir=str(app_dir),
        run=run,
        is_app=True,
        verbose_logging=verbose,
    )
    return result.context
