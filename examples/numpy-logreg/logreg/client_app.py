"""ClientApp: local logistic regression. flwr-stellar adds the three marked lines."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flwr_stellar import onboarding_reply, signing_mod  # flwr-stellar (1/3)
from logreg.task import evaluate, load_partition, train

app = ClientApp(mods=[signing_mod])  # flwr-stellar (2/3): sign every reply
app.query("onboard")(onboarding_reply)  # flwr-stellar (3/3): co-sign the DLC trustline


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    pid, n = int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    x, y, _, _ = load_partition(pid, n)
    cfg = context.run_config
    params, loss = train(
        msg.content["arrays"].to_numpy_ndarrays(),
        x,
        y,
        epochs=int(cfg["local-epochs"]),
        lr=float(cfg["learning-rate"]),
        batch_size=int(cfg["batch-size"]),
        seed=pid,
    )
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(x)})
    return Message(RecordDict({"arrays": ArrayRecord(params), "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate_fn(msg: Message, context: Context) -> Message:
    pid, n = int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    _, _, x, y = load_partition(pid, n)
    loss, acc = evaluate(msg.content["arrays"].to_numpy_ndarrays(), x, y)
    metrics = MetricRecord({"loss": loss, "accuracy": acc, "num-examples": len(x)})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
