"""Building Flower Messages outside a running App, for unit tests of Mods and verification."""

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from flwr_stellar.app.config import load_default_run_config

RUN_ID = 4242


def instruction(
    content: RecordDict, message_type: str = "train", run_id: int = RUN_ID, dst_node_id: int = 7
) -> Message:
    """A server instruction as a node receives it (the SuperLink sets the message id)."""
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, 0
    msg = Message(content, dst_node_id=dst_node_id, message_type=message_type)
    msg.metadata.__dict__["_message_id"] = msg.object_id
    return msg


def node_context(tmp_path, partition: int = 0, run_id: int = RUN_ID, **overrides) -> Context:
    run_config = load_default_run_config() | {"output_dir": str(tmp_path)} | overrides
    return Context(
        run_id=run_id,
        node_id=100 + partition,
        node_config={
            "partition-id": partition,
            "num-partitions": 4,
            "dev-keystore": True,
            "dev-keystore-dir": str(tmp_path / "keystores"),
        },
        state=RecordDict(),
        run_config=run_config,
    )


def config_record(**values) -> ConfigRecord:
    return ConfigRecord(values)
