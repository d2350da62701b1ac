"""Hydra front door: ``python -m flwr_stellar.app.experiment [overrides] [-m]``.

The base config is the run-config schema with its defaults read from pyproject.toml (the
one copy), registered as a structured config so Hydra rejects unknown keys and wrong types
naming the key. conf/ only chooses among options (dataset/, model/, strategy/, federation/).
Each job runs the same Flower App through flwr_stellar.app.simulation and writes config.json,
metrics.json, model.pt and run.log (the full log) into its own job folder. The terminal shows
warnings, one progress line over the rounds and a closing summary (flwr_stellar.app.console,
flwr_stellar.app.summary); conf/config.yaml leaves logging to them (hydra/job_logging: none).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import MISSING, DictConfig, OmegaConf

from flwr_stellar.app.config import (
    PROJECT_DIR,
    AppConfig,
    ConfigError,
    default_config,
    flatten_run_config,
)


@dataclass
class FederationConfig:
    """How to launch (Flower's federation config), not part of the App's run config."""

    num_supernodes: int = MISSING
    cpus_per_client: float = MISSING


@dataclass
class ExperimentConfig(AppConfig):
    """The run config plus how to launch it."""

    federation: FederationConfig = field(default_factory=FederationConfig)


def register_schema() -> None:
    """Schema node = the pyproject defaults, typed, + the federation group's fields."""
    base = default_config()
    values = ExperimentConfig(**{f.name: getattr(base, f.name) for f in fields(AppConfig)})
    ConfigStore.instance().store(name="schema", node=values)


def to_run_config(cfg: DictConfig) -> dict[str, Any]:
    """The Flower run config of a composed Hydra config (everything but federation)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    values = {str(k): v for k, v in container.items() if k != "federation"}
    return AppConfig.from_run_config(flatten_run_config(values)).to_run_config()


register_schema()


class SweepReportCallback(Callback):
    """Hydra callback: after a multirun, one page comparing its jobs (``sweep.html``) and one
    row per job in ``summary.csv``."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from flwr_stellar.report import write_sweep_report
        from flwr_stellar.report.sweep_report import write_sweep_csv

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            print(f"sweep report: {write_sweep_report(sweep_dir)}")
            print(f"sweep summary: {write_sweep_csv(sweep_dir)}")
        except FileNotFoundError as err:  # every job failed: nothing to compare
            print(f"sweep report: not written ({err})")


@hydra.main(version_base=None, config_path=str(PROJECT_DIR / "conf"), config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        run_config = to_run_config(cfg)
    except ConfigError as err:
        raise SystemExit(f"invalid config: {err}") from None
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    if not run_config["output_dir"]:
        run_config["output_dir"] = str(job_dir)
    (job_dir / "config.json").write_text(json.dumps(run_config, indent=2, sort_keys=True) + "\n")
    out = Path(run_config["output_dir"]).expanduser().resolve()  # as the ServerApp resolves it
    from flwr_stellar.app.console import LOG_FILE, app_console
    from flwr_stellar.app.summary import render_header, render_run_summary

    print(render_header(run_config, cfg.federation.num_supernodes, out, out / LOG_FILE))
    # warnings and one line a round on the terminal; everything from INFO up in run.log
    with app_console(out, int(run_config["num_rounds"])):
        from flwr_stellar.client.identity import create_dev_keystores

        app = AppConfig.from_run_config(run_config)
        if app.identity.enabled and app.identity.dev_keystores:  # one warning here, not N there
            labels = [str(i) for i in range(cfg.federation.num_supernodes)]
            create_dev_keystores(out / "keystores", labels)  # where client_app points them
        # importing Flower's simulation imports alembic, which logs at INFO: inside, to the file
        from flwr_stellar.app.simulation import run_app_simulation

        run_app_simulation(
            run_config,
            num_supernodes=cfg.federation.num_supernodes,
            cpus_per_client=cfg.federation.cpus_per_client,
        )
    metrics = json.loads((out / "metrics.json").read_text())
    print(render_run_summary(out, out / LOG_FILE), flush=True)
    if metrics.get("status") != "completed":
        raise SystemExit(f"run did not complete: {metrics.get('status')}")
    accuracies = [r["central_accuracy"] for r in metrics["rounds"] if "central_accuracy" in r]
    return accuracies[-1] if accuracies else float("nan")


if __name__ == "__main__":
    main()
