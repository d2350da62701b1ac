"""ServerApp: FedAvg, wrapped by flwr-stellar in the marked lines."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from flwr_stellar import LedgerConfig, LedgerStrategy  # flwr-stellar (1/2)
from logreg.task import init_params

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    strategy = FedAvg(fraction_evaluate=float(cfg["fraction-evaluate"]))
    strategy = LedgerStrategy.wrap(  # flwr-stellar (2/2): verify, screen, anchor, pay
        strategy, config=LedgerConfig(output_dir=str(cfg["ledger-dir"]))
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(init_params()),
        num_rounds=int(cfg["num-server-rounds"]),
    )
    print(f"final evaluation: {result.evaluate_metrics_clientapp}")
