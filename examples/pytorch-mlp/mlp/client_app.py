"""ClientApp: local MLP training. flwr-stellar adds the three marked lines."""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flwr_stellar import onboarding_reply, signing_mod  # flwr-stellar (1/3)
from mlp.task import build_model, evaluate, load_partition, train

app = ClientApp(mods=[signing_mod])  # flwr-stellar (2/3): sign every reply
app.query("onboard")(onboarding_reply)  # flwr-stellar (3/3): co-sign the DLC trustline


def _data(context: Context):
    nc, cfg = context.node_config, context.run_config
    return load_partition(
        str(cfg["data-dir"]),
        int(nc["partition-id"]),
        int(nc["num-partitions"]),
        int(cfg["examples-per-node"]),
    )


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    x, y, _, _ = _data(context)
    cfg = context.run_config
    model = build_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss = train(
        model,
        x,
        y,
        int(cfg["local-epochs"]),
        float(cfg["learning-rate"]),
        int(cfg["batch-size"]),
    )
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(x)})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate_fn(msg: Message, context: Context) -> Message:
    _, _, x, y = _data(context)
    model = build_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss, acc = evaluate(model, x, y)
    metrics = MetricRecord({"loss": loss, "accuracy": acc, "num-examples": len(x)})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
