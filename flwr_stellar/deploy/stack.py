"""``flwr-stellar deploy``: a ledger server, a SuperLink and N SuperNodes from one folder.

Everything a deployment needs lives under one folder, so an operator can read, copy or wipe it::

    deploy.json            what was started (pids, argv, ports) and the node registrations
    certs/                 local CA + SuperLink certificate (ca.key, server.key 0600)
    nodes/node-<i>/        keystore.json + passphrase (0600): the provider's Stellar identity;
                           auth.key (0600) + auth.key.pub: its Flower node-authentication key
    flwr-home/config.toml  a ``deploy`` connection for the ``flwr`` CLI (TLS pinned to the CA)
    ledger.db, superlink.db, logs/<process>.log

``up`` is idempotent: it creates what is missing, starts what is not running (a killed
SuperNode comes back with the same keys, hence the same per-run pseudonym) and leaves running
processes alone. ``down`` stops only processes this folder recorded. Roles split the pieces
across hosts: ``server`` (ledger + SuperLink) on one, ``nodes`` on each provider's.

Secure by default: TLS with the local CA and SuperNode authentication (each node's P-384 key
registered with ``flwr supernode register`` before it starts). ``insecure=True`` turns both off
and says so on every ``up``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from logging import WARNING
from pathlib import Path
from typing import Any

from flwr.common.logger import log

from flwr_stellar.deploy import processes
from flwr_stellar.deploy.certificates import make_certificates
from flwr_stellar.deploy.node_auth import make_node_auth_key
from flwr_stellar.deploy.processes import ProcessRecord
from flwr_stellar.files import write_atomic
from flwr_stellar.flwr_run import flwr_env
from flwr_stellar.identity import keystore
from flwr_stellar.ports import LOOPBACK, NotReadyError, free_port, wait_for_http, wait_for_port

ROLES = ("all", "server", "nodes")
FEDERATION = "deploy"
STATE_FILE = "deploy.json"
START_TIMEOUT_S = 60.0


class DeployError(RuntimeError):
    """A deployment step failed; the message says which and where its log is."""


@dataclass(frozen=True)
class DeploySettings:
    """What ``deploy up`` starts and how.

    Parameters
    ----------
    folder : Path
        The deployment's folder (created); everything it writes goes under it.
    nodes : int
        SuperNodes to run (role ``all`` or ``nodes``); node ``i`` gets partition ``i`` of
        ``nodes``.
    role : {"all", "server", "nodes"}
        ``server``: ledger server + SuperLink; ``nodes``: SuperNodes only, dialling
        ``superlink``; ``all``: both on this host.
    host : str
        Address the SuperLink binds (and its certificate names). Loopback by default; another
        host's nodes need an address they can reach.
    superlink : str
        ``host:port`` of the SuperLink for role ``nodes`` (other roles use their own).
    root_certificates : Path, optional
        The CA certificate nodes pin (role ``nodes``; others use ``certs/ca.crt``).
    cert_hosts : tuple of str
        Further names/addresses to put in the SuperLink certificate.
    insecure : bool
        No TLS and no node authentication: only for a throw-away loopback experiment.
    ledger : bool
        Start ``flwr-stellar ledger serve`` (role ``server``/``all``).
    node_config : str
        Extra ``--node-config`` entries for every SuperNode (e.g. ``dlc-issuer=G...``).
    control_flwr_home : Path, optional
        Role ``nodes``: a FLWR_HOME whose ``deploy`` connection may register nodes on the
        SuperLink (the federation operator's); without it nodes must be registered already.
    """

    folder: Path
    nodes: int = 3
    role: str = "all"
    host: str = LOOPBACK
    superlink: str = ""
    root_certificates: Path | None = None
    cert_hosts: tuple[str, ...] = ()
    insecure: bool = False
    ledger: bool = True
    node_config: str = ""
    control_flwr_home: Path | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"DeploySettings.role must be one of {ROLES}, got {self.role!r}")
        if self.role != "server" and self.nodes < 1:
            raise ValueError(f"DeploySettings.nodes must be >= 1, got {self.nodes}")
        if self.role == "nodes" and not self.superlink:
            raise ValueError("DeploySettings.superlink (host:port) is required for role 'nodes'")
        if self.role == "nodes" and not self.insecure and self.root_certificates is None:
            raise ValueError(
                "DeploySettings.root_certificates (the SuperLink's CA certificate) is required "
                "for role 'nodes' unless insecure"
            )


@dataclass
class DeployState:
    """deploy.json: the deployment's ports, node registrations and started processes."""

    ports: dict[str, int] = field(default_factory=dict)
    registered: dict[str, str] = field(default_factory=dict)  # node name -> Flower node id
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    insecure: bool = False
    superlink: str = ""
    ledger_url: str = ""

    @classmethod
    def load(cls, path: Path) -> DeployState:
        if not path.exists():
            return cls()
        try:
            doc = json.loads(path.read_text())
            return cls(
                ports={str(k): int(v) for k, v in doc.get("ports", {}).items()},
                registered={str(k): str(v) for k, v in doc.get("registered", {}).items()},
                processes={
                    str(k): ProcessRecord.from_dict(v) for k, v in doc.get("processes", {}).items()
                },
                insecure=bool(doc.get("insecure", False)),
                superlink=str(doc.get("superlink", "")),
                ledger_url=str(doc.get("ledger_url", "")),
            )
        except (ValueError, AttributeError, TypeError) as err:
            raise DeployError(f"{path} is not a deployment state file: {err}") from None

    def save(self, path: Path) -> None:
        doc = {
            "ports": self.ports,
            "registered": self.registered,
            "processes": {k: v.as_dict() for k, v in self.processes.items()},
            "insecure": self.insecure,
            "superlink": self.superlink,
            "ledger_url": self.ledger_url,
        }
        write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode())


def _bin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


class Deployment:
    """One deployment folder: create its material, start, inspect and stop its processes."""

    def __init__(self, settings: DeploySettings) -> None:
        self.settings = settings
        self.folder = settings.folder.resolve()
        self.state_path = self.folder / STATE_FILE
        self.flwr_home = self.folder / "flwr-home"
        self.state = DeployState.load(self.state_path)

    # ------------------------------------------------------------------ paths and material
    def node_dir(self, index: int) -> Path:
        return self.folder / "nodes" / f"node-{index}"

    def _port(self, name: str, host: str = LOOPBACK) -> int:
        if name not in self.state.ports:
            self.state.ports[name] = free_port(host)
        return self.state.ports[name]

    def _env(self) -> dict[str, str]:
        return flwr_env(self.flwr_home)

    def _certificates(self) -> Path | None:
        """The CA nodes and the CLI pin (created for server roles); None when insecure."""
        s = self.settings
        if s.insecure:
            return None
        if s.role == "nodes":
            assert s.root_certificates is not None
            return s.root_certificates.resolve()
        certs = self.folder / "certs"
        if not (certs / "server.crt").exists():
            hosts = list(dict.fromkeys([s.host, LOOPBACK, "localhost", *s.cert_hosts]))
            make_certificates(certs, hosts)
        return certs / "ca.crt"

    def _write_flwr_config(self, address: str, ca: Path | None) -> None:
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        lines = [
            "# Written by flwr-stellar deploy: `flwr run <app> deploy`, `flwr ls deploy`, ...",
            "[superlink]",
            f'default = "{FEDERATION}"',
            "",
            f"[superlink.{FEDERATION}]",
            f'address = "{address}"',
            f'root-certificates = "{ca}"' if ca is not None else "insecure = true",
            "",
        ]
        (self.flwr_home / "config.toml").write_text("\n".join(lines))

    def _node_material(self, index: int) -> tuple[Path, Path, Path]:
        """Keystore, passphrase file and Flower auth key of node ``index`` (created once)."""
        node = self.node_dir(index)
        node.mkdir(parents=True, exist_ok=True)
        passphrase = node / "passphrase"
        if not passphrase.exists():
            write_atomic(passphrase, (secrets.token_urlsafe(24) + "\n").encode(), mode=0o600)
        store = node / "keystore.json"
        if not store.exists():
            keystore.save(store, keystore.MasterSecret.generate(), passphrase.read_text().strip())
        auth = make_node_auth_key(node / "auth.key")
        return store, passphrase, auth.private_key

    # ------------------------------------------------------------------ process starting
    def _running(self, name: str) -> bool:
        record = self.state.processes.get(name)
        return record is not None and processes.is_running(record)

    def _start(self, name: str, argv: Sequence[str], port: int | None = None) -> ProcessRecord:
        record = processes.start(
            name, argv, self.folder / "logs" / f"{name}.log", self._env(), self.folder, port
        )
        self.state.processes[name] = record
        self.state.save(self.state_path)
        return record

    def _log_tail(self, name: str, lines: int = 15) -> str:
        path = self.folder / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _start_ledger(self) -> None:
        port = self._port("ledger")
        url = f"http://{LOOPBACK}:{port}"
        self.state.ledger_url = url
        if self._running("ledger"):
            return
        argv = [
            sys.executable,
            "-m",
            "flwr_stellar.cli",
            "ledger",
            "serve",
            "--db",
            str(self.folder / "ledger.db"),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
        ]
        record = self._start("ledger", argv, port)
        try:
            wait_for_http(url, START_TIMEOUT_S, lambda: processes.is_running(record))
        except NotReadyError as err:
            raise DeployError(f"{err}; ledger log:\n{self._log_tail('ledger')}") from None

    def _start_superlink(self, ca: Path | None) -> str:
        s = self.settings
        port = self._port("superlink", s.host)
        address = f"{s.host}:{port}"
        self.state.superlink = address
        if self._running("superlink"):
            return address
        argv = [_bin("flower-superlink")]
        if ca is None:
            argv.append("--insecure")
        else:
            certs = ca.parent
            argv += [
                "--ssl-ca-certfile",
                str(ca),
                "--ssl-certfile",
                str(certs / "server.crt"),
                "--ssl-keyfile",
                str(certs / "server.key"),
                "--enable-supernode-auth",
            ]
        argv += [
            "--host",
            s.host,
            "--port",
            str(port),
            "--database",
            str(self.folder / "superlink.db"),
            "--disable-runtime-dependency-installation",
        ]
        record = self._start("superlink", argv, port)
        try:
            wait_for_port(s.host, port, START_TIMEOUT_S, lambda: processes.is_running(record))
        except NotReadyError as err:
            raise DeployError(f"{err}; superlink log:\n{self._log_tail('superlink')}") from None
        return address

    def _flwr(self, *args: str, flwr_home: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = flwr_env(flwr_home or self.flwr_home)
        return subprocess.run(
            [_bin("flwr"), *args], env=env, capture_output=True, text=True, check=False, timeout=120
        )

    def superlink_nodes(self, flwr_home: Path | None = None) -> dict[str, str]:
        """Node id -> status as the SuperLink's Control API reports them."""
        out = self._flwr("supernode", "ls", FEDERATION, "--format", "json", flwr_home=flwr_home)
        try:
            doc = json.loads(out.stdout)
            return {str(n["node-id"]): str(n["status"]) for n in doc["nodes"]}
        except (ValueError, KeyError, TypeError):
            raise DeployError(f"flwr supernode ls failed: {out.stdout}{out.stderr}") from None

    def _register(self, name: str, public_key: Path, flwr_home: Path) -> None:
        if name in self.state.registered:
            return
        out = self._flwr(
            "supernode", "register", str(public_key), FEDERATION, "--format", "json",
            flwr_home=flwr_home,
        )  # fmt: skip
        try:
            doc = json.loads(out.stdout)
            node_id = str(doc["node-id"])
        except (ValueError, KeyError, TypeError):
            raise DeployError(
                f"registering {name}'s key {public_key} failed: {out.stdout}{out.stderr}"
            ) from None
        self.state.registered[name] = node_id
        self.state.save(self.state_path)

    def _start_node(self, index: int, superlink: str, ca: Path | None) -> None:
        s = self.settings
        name = f"supernode-{index}"
        store, passphrase, auth_key = self._node_material(index)
        control_home = self.flwr_home if s.role == "all" else s.control_flwr_home
        if ca is not None and control_home is not None:
            self._register(name, auth_key.with_name(auth_key.name + ".pub"), control_home)
        if self._running(name):
            return
        port = self._port(name)
        node_config = (
            f"partition-id={index} num-partitions={s.nodes} keystore='{store}' "
            f"passphrase-file='{passphrase}' {s.node_config}"
        ).strip()
        argv = [_bin("flower-supernode")]
        if ca is None:
            argv.append("--insecure")
        else:
            argv += ["--root-certificates", str(ca), "--auth-supernode-private-key", str(auth_key)]
        argv += [
            "--superlink",
            superlink,
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--node-config",
            node_config,
        ]
        self._start(name, argv, port)

    def _wait_nodes_online(self, flwr_home: Path) -> None:
        """Until every registered node of ours is online (the SuperLink accepted its key)."""
        names = [f"supernode-{i}" for i in range(self.settings.nodes)]
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            statuses = self.superlink_nodes(flwr_home)
            waiting = [
                n for n in names if statuses.get(self.state.registered.get(n, "")) != "online"
            ]
            if not waiting:
                return
            dead = [n for n in waiting if not self._running(n)]
            if dead or time.monotonic() > deadline:
                who = dead or waiting
                raise DeployError(
                    f"{', '.join(who)} did not come online; log of {who[0]}:\n"
                    f"{self._log_tail(who[0])}"
                )
            time.sleep(0.5)

    # ------------------------------------------------------------------ public commands
    def up(self) -> DeployState:
        """Create what is missing and start what is not running; return the state."""
        s = self.settings
        self.folder.mkdir(parents=True, exist_ok=True)
        if s.insecure:
            log(
                WARNING,
                "deploy: INSECURE mode: no TLS, no SuperNode authentication; anyone who reaches "
                "the SuperLink can join and read the traffic",
            )
        self.state.insecure = s.insecure
        ca = self._certificates()
        superlink = s.superlink
        if s.role in ("all", "server"):
            if s.ledger:
                self._start_ledger()
            superlink = self._start_superlink(ca)
            self._write_flwr_config(superlink, ca)
        self.state.superlink = superlink
        self.state.save(self.state_path)
        if s.role in ("all", "nodes"):
            for index in range(s.nodes):
                self._start_node(index, superlink, ca)
            control_home = self.flwr_home if s.role == "all" else s.control_flwr_home
            if ca is not None and control_home is not None:
                self._wait_nodes_online(control_home)
        self.state.save(self.state_path)
        return self.state

    def status(self) -> list[dict[str, Any]]:
        """Each recorded process: name, pid, running or not, port, log."""
        return [
            {
                "name": name,
                "pid": record.pid,
                "running": processes.is_running(record),
                "port": record.port,
                "log": record.log,
            }
            for name, record in sorted(self.state.processes.items())
        ]

    def down(self, only: Sequence[str] = ()) -> list[str]:
        """Stop the recorded processes (or only the named ones), nodes first; return the names
        of those that were running."""
        unknown = [n for n in only if n not in self.state.processes]
        if unknown:
            raise DeployError(f"not processes of this deployment: {', '.join(unknown)}")
        order = {"superlink": 1, "ledger": 2}  # nodes first, the ledger last
        names = list(only) or sorted(self.state.processes, key=lambda n: (order.get(n, 0), n))
        stopped = [n for n in names if processes.stop(self.state.processes[n])]
        return stopped
