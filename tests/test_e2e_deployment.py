"""End-to-end deployments on loopback with `flwr-stellar deploy`: ledger server + SuperLink with
TLS and SuperNode authentication + SuperNodes with their own keystores, `flwr run` in deployment
mode; then the faults an operator meets (a node killed and restarted, the ledger server killed
and restarted, the ServerApp killed mid-run and its payments settled afterwards)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from deploy_helpers import (
    CLI,
    PROJECT,
    all_stopped,
    check_ledger_matches,
    deploy_run,
    kill_tree,
    manifests_of,
    metrics_of,
    node_pseudonyms,
    run_config,
    run_id_of,
    start_deploy_run,
    wait_for,
)

from flwr_stellar.audit.cli import run_audit_for
from flwr_stellar.deploy import processes
from flwr_stellar.deploy.node_auth import make_node_auth_key
from flwr_stellar.deploy.stack import Deployment, DeploySettings
from flwr_stellar.flwr_run import run_status

pytestmark = pytest.mark.slow


def test_secure_deployment_pays_honest_nodes_and_refuses_unregistered_keys(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "deploy"
    deployment = Deployment(DeploySettings(folder=folder, nodes=3))
    try:
        state = deployment.up()
        config = (folder / "flwr-home" / "config.toml").read_text()
        assert "root-certificates" in config and "insecure" not in config
        superlink_argv = state.processes["superlink"].argv
        assert "--enable-supernode-auth" in superlink_argv and "--insecure" not in superlink_argv

        # a SuperNode whose key nobody registered is refused by the SuperLink
        stranger = make_node_auth_key(tmp_path / "stranger" / "auth.key")
        intruder = processes.start(
            "intruder",
            [
                str(Path(CLI[0]).parent / "flower-supernode"),
                "--root-certificates",
                str(folder / "certs" / "ca.crt"),
                "--auth-supernode-private-key",
                str(stranger.private_key),
                "--superlink",
                state.superlink,
                "--max-retries",
                "1",
                "--node-config",
                "partition-id=0 num-partitions=3",
            ],
            tmp_path / "intruder.log",
            deployment._env(),
            tmp_path,
        )
        wait_for(lambda: not processes.is_running(intruder), 60, "the intruder to be refused")
        assert "Failed to activate SuperNode" in Path(intruder.log).read_text()
        assert sorted(deployment.superlink_nodes().values()) == ["online"] * 3

        out = tmp_path / "run"
        run = deploy_run(
            folder,
            *run_config(state.ledger_url, out, 2, 'attack.kind="nan"', 'attack.nodes="2"'),
        )
        assert "flwr-stellar: run" in run.stdout and "completed" in run.stdout, (
            run.stdout[-4000:] + run.stderr[-2000:]
        )
        run_id = run_id_of(run.stdout)
        honest_0, honest_1, hostile = node_pseudonyms(deployment, 3, run_id)
        owed = check_ledger_matches(out, state.ledger_url)
        assert owed.get(hostile, 0) == 0
        assert owed[honest_0] > 0 and owed[honest_1] > 0
        for m in manifests_of(out):
            assert m.round_paid + m.total_held == m.budget  # half held until the last round
            assert any(r.reason == "non-finite" for r in m.rejections)
        # each SuperNode's journal, beside its keystore: the audit with the nodes' evidence
        # passes, and every node's receipts agree with the ledger through the Horizon API
        (report,) = run_audit_for(out, url=state.ledger_url, evidence=folder / "nodes")
        assert report.passed, report.render()
        for i in range(3):
            node = deployment.node_dir(i)
            done = subprocess.run(
                [
                    *CLI,
                    "node",
                    "check",
                    str(node / "keystore.json"),
                    "--ledger",
                    state.ledger_url,
                    "--passphrase-file",
                    str(node / "passphrase"),
                    "--run-id",
                    str(run_id),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
    finally:
        deployment.down()
    assert all_stopped(deployment) == []


def finish_restarting(
    deployment: Deployment, run: subprocess.Popen[str], name: str, timeout: float
) -> str:
    """Wait for the run to end, starting ``name`` again whenever it has exited meanwhile: under
    load the SuperLink may not have let the killed SuperNode's activation expire yet, and then
    refuses the restarted one (it exits with code 305); the next try is let in."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            output, _ = run.communicate(timeout=2)  # keeps reading: no output is lost
            return output
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                raise
        if not processes.is_running(deployment.state.processes[name]):
            deployment.up()


def test_faults_node_and_ledger_killed_and_restarted_then_serverapp_killed(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "deploy"
    deployment = Deployment(DeploySettings(folder=folder, nodes=3))
    try:
        state = deployment.up()
        out = tmp_path / "run"
        # a round gives up on a node that has not answered after 40 s (not less: the restart
        # below must come after the SuperLink has let the dead node's activation expire, or
        # the restarted SuperNode is refused with 412 and exits with code 305)
        # 7 rounds: under load the restarted node can miss rounds 3-4 (not yet registered when
        # they are configured; its late reply is an unexpected one) and still rejoin after
        config = run_config(state.ledger_url, out, 7, "strategy.round_timeout_s=40")
        run = start_deploy_run(folder, *config)
        try:
            done = lambda n: len(manifests_of(out)) >= n if (out / "manifests").exists() else False  # noqa: E731
            # round 2 under way: SIGKILL supernode-1 (it and its ClientApp die with it)
            wait_for(lambda: done(1), 300, "round 1")
            kill_tree(deployment.state.processes["supernode-1"].pid)
            # round 2 over without it: restart it; round 3 under way: SIGKILL the ledger
            # server and restart it 6 s later
            wait_for(lambda: done(2), 300, "round 2")
            deployment.up()  # restarts exactly what is down: supernode-1
            kill_tree(deployment.state.processes["ledger"].pid)
            time.sleep(6)  # backoff 0.5, 1, 2, 4 s meanwhile
            deployment.up()  # now the ledger server
            output = finish_restarting(deployment, run, "supernode-1", 600)
        finally:
            if run.poll() is None:
                run.kill()
        assert "completed" in output, output[-5000:]
        run_id = run_id_of(output)
        pseudonyms = node_pseudonyms(deployment, 3, run_id)
        manifests = manifests_of(out)
        assert [m.server_round for m in manifests] == [1, 2, 3, 4, 5, 6, 7]
        paid = [{c.pseudonym for c in m.contributions if c.payout > 0} for m in manifests]
        assert paid[0] == set(pseudonyms)
        assert paid[1] == {pseudonyms[0], pseudonyms[2]}  # dropped from the round it died in
        # rejoined under the same per-run pseudonym, and paid again
        seen = [
            (m.server_round, [(c.pseudonym[:6], c.payout) for c in m.contributions], m.rejections)
            for m in manifests
        ]
        assert any(pseudonyms[1] in p for p in paid[2:]), (pseudonyms, seen, output[-3000:])
        # a dead node is not penalised: nothing rejected in round 1, and in round 2 at most the
        # error reply the SuperLink writes for a node it saw die (NODE_UNAVAILABLE: whether it
        # comes before the round's timeout depends on the heartbeat, i.e. on the machine's load)
        assert not manifests[0].rejections, seen
        assert {r.reason for r in manifests[1].rejections} <= {"error-reply"}, seen
        check_ledger_matches(out, state.ledger_url)  # nothing lost, nothing paid twice

        # the ServerApp process killed mid-run while the ledger is down (its last rounds are
        # journaled, unpaid): the run fails; settling afterwards pays each round exactly once
        out2 = tmp_path / "run2"
        second = start_deploy_run(folder, *run_config(state.ledger_url, out2, 6))
        try:
            started = lambda n: (out2 / "manifests").exists() and len(manifests_of(out2)) >= n  # noqa: E731
            wait_for(lambda: started(1), 300, "round 1 of the second run", every=0.1)
            kill_tree(deployment.state.processes["ledger"].pid)
            wait_for(lambda: started(2), 300, "round 2 of the second run", every=0.1)
            time.sleep(0.5)  # round 2 journaled in the outbox too (right after its manifest)
            serverapps = [
                p
                for p in processes.descendants(deployment.state.processes["superlink"].pid)
                if b"flwr-serverapp" in Path(f"/proc/{p}/cmdline").read_bytes()
            ]
            assert serverapps, "no ServerApp process found under the SuperLink"
            for pid in serverapps:
                kill_tree(pid)
            output2, _ = second.communicate(timeout=300)
        finally:
            if second.poll() is None:
                second.kill()
        assert second.returncode != 0, output2[-3000:]
        status = run_status(str(run_id_of(output2)), folder / "flwr-home", "deploy")
        assert status != "finished:completed"
        deployment.up()  # the ledger server back
        payouts = [*CLI, "payouts"]
        pending = subprocess.run(
            [*payouts, "status", str(out2)], capture_output=True, text=True, check=False
        )
        assert pending.returncode == 1 and "pending" in pending.stdout, pending.stdout
        settle = subprocess.run(
            [*payouts, "settle", str(out2), "--ledger", state.ledger_url],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert settle.returncode == 0 and "all settled" in settle.stdout, settle.stdout
        assert 2 <= len(manifests_of(out2)) < 6
        check_ledger_matches(out2, state.ledger_url)
        assert metrics_of(out)["status"] == "completed"
    finally:
        deployment.down()
    assert all_stopped(deployment) == []


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def two_hosts():  # type: ignore[no-untyped-def]
    """Two network namespaces joined by a veth pair: 10.231.0.1 (server) and .2 (nodes)."""
    tag = f"{os.getpid() % 100000}"
    server, nodes = f"fs-srv-{tag}", f"fs-nod-{tag}"
    made = _ip("netns", "add", server)
    if made.returncode != 0:
        pytest.skip(f"cannot create network namespaces here (needs root + iproute2): {made.stderr}")
    try:
        steps = [
            ("netns", "add", nodes),
            ("link", "add", f"vs{tag}", "type", "veth", "peer", "name", f"vn{tag}"),
            ("link", "set", f"vs{tag}", "netns", server),
            ("link", "set", f"vn{tag}", "netns", nodes),
            ("-n", server, "addr", "add", "10.231.0.1/24", "dev", f"vs{tag}"),
            ("-n", nodes, "addr", "add", "10.231.0.2/24", "dev", f"vn{tag}"),
            ("-n", server, "link", "set", f"vs{tag}", "up"),
            ("-n", nodes, "link", "set", f"vn{tag}", "up"),
            ("-n", server, "link", "set", "lo", "up"),
            ("-n", nodes, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        yield server, nodes
    finally:
        _ip("netns", "del", nodes)
        _ip("netns", "del", server)


def test_across_hosts_tls_and_node_auth_cross_a_real_interface(tmp_path: Path, two_hosts) -> None:  # type: ignore[no-untyped-def]
    server_ns, nodes_ns = two_hosts
    server_dir, nodes_dir = tmp_path / "server", tmp_path / "nodes"
    in_server = ["ip", "netns", "exec", server_ns, *CLI, "deploy"]
    in_nodes = ["ip", "netns", "exec", nodes_ns, *CLI, "deploy"]
    server = Deployment(DeploySettings(folder=server_dir, role="server", host="10.231.0.1"))
    try:
        up = subprocess.run(
            [*in_server, "up", str(server_dir), "--role", "server", "--host", "10.231.0.1"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        server = Deployment(server.settings)  # reload what the command recorded
        superlink = server.state.superlink
        assert superlink.startswith("10.231.0.1:")
        up_nodes = subprocess.run(
            [*in_nodes, "up", str(nodes_dir), "--role", "nodes", "--nodes", "2",
             "--superlink", superlink,
             "--root-certificates", str(server_dir / "certs" / "ca.crt"),
             "--control-flwr-home", str(server_dir / "flwr-home")],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )  # fmt: skip
        assert up_nodes.returncode == 0, up_nodes.stdout + up_nodes.stderr
        nodes = Deployment(
            DeploySettings(
                folder=nodes_dir,
                nodes=2,
                role="nodes",
                superlink=superlink,
                root_certificates=server_dir / "certs" / "ca.crt",
            )
        )
        # really apart: the SuperNodes live in another network namespace than the SuperLink
        netns = {
            name: os.readlink(f"/proc/{record.pid}/ns/net")
            for d in (server, nodes)
            for name, record in d.state.processes.items()
        }
        assert netns["supernode-0"] == netns["supernode-1"] != netns["superlink"]
        assert netns["ledger"] == netns["superlink"]

        out = tmp_path / "run"
        run = subprocess.run(
            [*in_server, "run", str(server_dir), "--app-dir", str(PROJECT),
             "--run-config", *run_config(server.state.ledger_url, out, 2)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )  # fmt: skip
        assert run.returncode == 0 and "completed" in run.stdout, run.stdout[-4000:]
        run_id = run_id_of(run.stdout)
        # the Horizon API listens on the server namespace's loopback: read its file instead
        owed = check_ledger_matches(out, "", db=server_dir / "ledger.db")
        assert set(owed) == set(node_pseudonyms(nodes, 2, run_id))
    finally:
        for folder in (nodes_dir, server_dir):
            if (folder / "deploy.json").exists():
                subprocess.run([*CLI, "deploy", "down", str(folder)], timeout=120, check=False)
    assert all_stopped(Deployment(server.settings)) == []
