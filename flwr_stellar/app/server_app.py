"""ServerApp: builds the configured strategy, runs it, and writes the run's outputs."""

from __future__ import annotations

from logging import INFO

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from flwr_stellar.app.config import AppConfig
from flwr_stellar.app.ledger_layer import LedgerLayer
from flwr_stellar.app.models import build_model
from flwr_stellar.app.strategy_factory import build_strategy
from flwr_stellar.app.summary import render_rewards, render_summary
from flwr_stellar.app.task import (
    CentralEvaluator,
    RoundLog,
    record_verdicts,
    resolve_output_dir,
    save_model,
)
from strategies.verified import VerifiedStrategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = AppConfig.from_run_config(context.run_config)
    out = resolve_output_dir(cfg.output_dir, context.run_id)
    log(INFO, "flwr-stellar: run %s, outputs in %s", context.run_id, out)
    round_log = RoundLog(out / "metrics.json", context.run_id, cfg.to_run_config())
    round_log.flush(status="running")

    initial = ArrayRecord(build_model(cfg.model.name, seed=cfg.seed).state_dict())
    strategy = build_strategy(cfg.strategy)
    layer: LedgerLayer | None = None
    if cfg.ledger.enabled:
        layer = LedgerLayer.open(cfg, strategy, out)
        strategy = layer.strategy
    elif cfg.identity.enabled:
        strategy = VerifiedStrategy(strategy)
    try:
        result = strategy.start(
            grid=grid,
            initial_arrays=initial,
            num_rounds=cfg.num_rounds,
            train_config=ConfigRecord(),
            evaluate_fn=CentralEvaluator(cfg, round_log) if cfg.evaluation.central else None,
        )
        for server_round, metrics in result.train_metrics_clientapp.items():
            round_log.rounds.setdefault(server_round, {}).update(
                {k: float(v) for k, v in metrics.items() if k != "num-examples"}
            )
        for server_round, metrics in result.evaluate_metrics_clientapp.items():
            round_log.rounds.setdefault(server_round, {}).update(
                {f"client_{k}": float(v) for k, v in metrics.items() if k != "num-examples"}
            )
        if isinstance(strategy, VerifiedStrategy):
            record_verdicts(round_log, strategy)
        save_model(result.arrays, out / "model.pt")
        if layer is not None:
            round_log.extra.update(layer.finish())
        round_log.flush(status="completed", model="model.pt")
    finally:
        if layer is not None:
            layer.close()
    log(INFO, "%s", render_summary(round_log.rounds, out))
    if layer is not None:
        log(INFO, "%s", render_rewards(round_log.extra))
