"""The deployment's building blocks without a federation: TLS material, node-auth keys that
Flower itself accepts, process records that never signal a stranger, and settings/state files
validated with clear errors."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.cli.supernode.register import try_load_public_key

from flwr_stellar.cli import main
from flwr_stellar.deploy import processes
from flwr_stellar.deploy.certificates import certificate_hosts, make_certificates
from flwr_stellar.deploy.node_auth import make_node_auth_key
from flwr_stellar.deploy.processes import ProcessRecord
from flwr_stellar.deploy.stack import DeployError, Deployment, DeploySettings, DeployState

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_certificates_chain_to_the_local_ca_and_name_every_host(tmp_path: Path) -> None:
    files = make_certificates(tmp_path, ["10.0.0.5", "link.example", "127.0.0.1"])
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(  # raises if the CA did not sign it
        server.signature, server.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384())
    )
    assert server.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert set(certificate_hosts(files.server_cert)) == {"10.0.0.5", "link.example", "127.0.0.1"}
    assert _mode(files.ca_key) == 0o600 and _mode(files.server_key) == 0o600
    # a re-issue keeps the CA the nodes pinned
    again = make_certificates(tmp_path, ["10.0.0.6"])
    assert again.ca_cert.read_bytes() == files.ca_cert.read_bytes()
    assert certificate_hosts(again.server_cert) == ["10.0.0.6"]
    with pytest.raises(ValueError, match="at least one host"):
        make_certificates(tmp_path / "none", [])


def test_node_auth_keys_are_what_flower_loads(tmp_path: Path) -> None:
    key = make_node_auth_key(tmp_path / "node" / "auth.key")
    assert _mode(key.private_key) == 0o600
    assert try_load_public_key(key.public_key)  # `flwr supernode register` accepts it
    private = serialization.load_ssh_private_key(key.private_key.read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)  # what flower-supernode reads
    assert private.curve.name == "secp384r1"
    pub = key.public_key.read_bytes()
    assert make_node_auth_key(key.private_key).public_key.read_bytes() == pub  # kept, not replaced


def test_process_records_never_signal_a_recycled_pid(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    record = processes.start(
        "sleeper", ["/bin/sh", "-c", "sleep 60 & wait"], tmp_path / "s.log", env, tmp_path
    )
    assert processes.is_running(record)
    deadline = time.monotonic() + 10
    while not (wait := processes.descendants(record.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)  # the shell forks its child a moment after it starts
    assert wait, "the shell's child is found"
    stranger = ProcessRecord("other", ("/bin/sleep", "60"), record.pid, str(tmp_path / "o.log"))
    assert not processes.is_running(stranger)  # same pid, another command: not ours
    assert processes.stop(stranger) is False and processes.is_running(record)
    assert processes.stop(record, grace_s=5) is True
    assert not processes.is_running(record)
    assert all(not Path(f"/proc/{p}").exists() or processes._state(p) == "Z" for p in wait)
    assert processes.stop(record) is False  # stopping twice signals nothing


def test_settings_and_state_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="role"):
        DeploySettings(folder=tmp_path, role="everything")
    with pytest.raises(ValueError, match="superlink"):
        DeploySettings(folder=tmp_path, role="nodes")
    with pytest.raises(ValueError, match="root_certificates"):
        DeploySettings(folder=tmp_path, role="nodes", superlink="10.0.0.1:9100")
    DeploySettings(folder=tmp_path, role="nodes", superlink="10.0.0.1:9100", insecure=True)
    with pytest.raises(ValueError, match="nodes"):
        DeploySettings(folder=tmp_path, nodes=0)
    (tmp_path / "deploy.json").write_text('{"processes": {"x": {"pid": "nope"}}}')
    with pytest.raises(DeployError, match="not a deployment state file"):
        DeployState.load(tmp_path / "deploy.json")
    state = DeployState(ports={"superlink": 9100}, registered={"supernode-0": "123"})
    state.processes["ledger"] = ProcessRecord("ledger", ("a", "b"), 42, "l.log", 8000)
    state.save(tmp_path / "deploy.json")
    loaded = DeployState.load(tmp_path / "deploy.json")
    assert loaded.processes["ledger"] == state.processes["ledger"]
    assert loaded.ports == {"superlink": 9100} and loaded.registered == {"supernode-0": "123"}
    with pytest.raises(DeployError, match="not processes of this deployment"):
        Deployment(DeploySettings(folder=tmp_path)).down(["nope"])


def test_cli_on_a_folder_without_deployment(tmp_path: Path, capsys) -> None:
    assert main(["deploy", "status", str(tmp_path / "none")]) == 2
    assert main(["deploy", "down", str(tmp_path / "none")]) == 2
    assert "no deployment" in capsys.readouterr().out
    assert main(["deploy", "certs", str(tmp_path / "certs")]) == 0
    assert set(certificate_hosts(tmp_path / "certs" / "server.crt")) == {"127.0.0.1", "localhost"}
    assert main(["deploy", "node-key", str(tmp_path / "n" / "auth.key")]) == 0
    assert "flwr supernode register" in capsys.readouterr().out


def test_insecure_needs_the_flag_and_warns(tmp_path: Path, caplog) -> None:
    # a bare SuperLink (role server, no ledger) is enough to see what insecure mode starts
    deployment = Deployment(
        DeploySettings(folder=tmp_path, role="server", insecure=True, ledger=False)
    )
    try:
        deployment.up()
        assert "--insecure" in deployment.state.processes["superlink"].argv
        assert "insecure = true" in (tmp_path / "flwr-home" / "config.toml").read_text()
        assert not (tmp_path / "certs").exists()
        assert "INSECURE" in caplog.text
    finally:
        deployment.down()
    assert not processes.is_running(deployment.state.processes["superlink"])
