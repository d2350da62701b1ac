"""``flwr-stellar deploy up|status|down|run|certs|node-key``: a Flower deployment from one folder.

``up`` starts (on 127.0.0.1 unless told otherwise) the ledger server, ``flower-superlink`` with
TLS and SuperNode authentication, and N ``flower-supernode``s each with its own keystore,
partition and registered key; ``run`` runs an App on it with ``flwr run``; ``down`` stops only
what the folder recorded. ``certs`` and ``node-key`` make the material for pieces run by hand
on other hosts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flwr_stellar.deploy.certificates import make_certificates
from flwr_stellar.deploy.node_auth import make_node_auth_key
from flwr_stellar.deploy.stack import (
    FEDERATION,
    ROLES,
    DeployError,
    Deployment,
    DeploySettings,
)
from flwr_stellar.ports import LOOPBACK


def _deployment(args: argparse.Namespace) -> Deployment:
    return Deployment(
        DeploySettings(
            folder=args.dir,
            nodes=getattr(args, "nodes", 3),
            role=getattr(args, "role", "all"),
            host=getattr(args, "host", LOOPBACK),
            superlink=getattr(args, "superlink", "") or "",
            root_certificates=getattr(args, "root_certificates", None),
            cert_hosts=tuple(getattr(args, "cert_host", None) or ()),
            insecure=getattr(args, "insecure", False),
            ledger=not getattr(args, "no_ledger", False),
            node_config=getattr(args, "node_config", "") or "",
            control_flwr_home=getattr(args, "control_flwr_home", None),
        )
    )


def cmd_up(args: argparse.Namespace) -> int:
    deployment = _deployment(args)
    try:
        state = deployment.up()
    except (DeployError, ValueError) as err:
        print(f"flwr-stellar deploy: {err}")
        print(f"(what did start is recorded; stop it with `flwr-stellar deploy down {args.dir}`)")
        return 1
    _print_status(deployment, as_json=False)
    if state.ledger_url:
        print(f"ledger (Horizon API): {state.ledger_url}")
    if args.role != "nodes":
        print(
            f"superlink: {state.superlink}  (FLWR_HOME={deployment.flwr_home}, federation "
            f"'{FEDERATION}')"
        )
        print(f"run an App: flwr-stellar deploy run {args.dir} --app-dir <app> [--run-config ...]")
    return 0


def _print_status(deployment: Deployment, as_json: bool) -> None:
    rows = deployment.status()
    if as_json:
        print(
            json.dumps(
                {
                    "processes": rows,
                    "superlink": deployment.state.superlink,
                    "ledger_url": deployment.state.ledger_url,
                    "registered": deployment.state.registered,
                },
                indent=2,
            )
        )
        return
    for row in rows:
        state = "running" if row["running"] else "stopped"
        port = row["port"] if row["port"] is not None else "-"
        print(f"{row['name']:<14} {state:<8} pid {row['pid']:<8} port {port:<6} log {row['log']}")


def _existing(args: argparse.Namespace) -> Deployment | None:
    """The deployment in ``args.dir``, or None (said) when the folder holds none."""
    deployment = _deployment(args)
    if not deployment.state_path.exists():
        print(f"flwr-stellar deploy: no deployment in {args.dir}")
        return None
    return deployment


def cmd_status(args: argparse.Namespace) -> int:
    deployment = _existing(args)
    if deployment is None:
        return 2
    _print_status(deployment, args.json)
    return 0 if all(r["running"] for r in deployment.status()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    deployment = _existing(args)
    if deployment is None:
        return 2
    try:
        stopped = deployment.down(args.only or ())
    except DeployError as err:
        print(f"flwr-stellar deploy: {err}")
        return 2
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from flwr_stellar.flwr_run import FlwrRunError, flwr_run

    deployment = _deployment(args)
    try:
        run_id = flwr_run(
            app_dir=args.app_dir.resolve(),
            flwr_home=deployment.flwr_home,
            run_config=args.run_config,
            federation=FEDERATION,
        )
    except FlwrRunError as err:
        print(f"flwr-stellar: {err}")
        return 1
    print(f"flwr-stellar: run {run_id} completed")
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    files = make_certificates(args.out, args.host or [LOOPBACK, "localhost"])
    print(f"CA certificate (give to every SuperNode and flwr CLI): {files.ca_cert}")
    print(
        f"SuperLink: --ssl-ca-certfile {files.ca_cert} --ssl-certfile {files.server_cert} "
        f"--ssl-keyfile {files.server_key}"
    )
    return 0


def cmd_node_key(args: argparse.Namespace) -> int:
    key = make_node_auth_key(args.private_key)
    print(f"SuperNode: --auth-supernode-private-key {key.private_key}")
    print(f"operator:  flwr supernode register {key.public_key} <federation>")
    return 0


def add_deploy_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "deploy",
        help="run a Flower deployment (ledger server, SuperLink, SuperNodes) from one folder",
    )
    dsub = p.add_subparsers(dest="deploy_command", required=True)

    up = dsub.add_parser("up", help="create what is missing and start what is not running")
    up.add_argument("dir", type=Path, help="the deployment folder")
    up.add_argument("--nodes", type=int, default=3, help="SuperNodes (default 3)")
    up.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all (default), server (ledger + SuperLink) or nodes (SuperNodes)",
    )
    up.add_argument(
        "--host",
        default=LOOPBACK,
        help="address the SuperLink binds and is certified for (default 127.0.0.1)",
    )
    up.add_argument(
        "--cert-host",
        action="append",
        metavar="NAME_OR_IP",
        help="another name/address for the SuperLink certificate (repeatable)",
    )
    up.add_argument("--superlink", metavar="HOST:PORT", help="role nodes: the SuperLink")
    up.add_argument(
        "--root-certificates",
        type=Path,
        metavar="CA_CRT",
        help="role nodes: the SuperLink's CA certificate",
    )
    up.add_argument(
        "--control-flwr-home",
        type=Path,
        metavar="DIR",
        help="role nodes: FLWR_HOME allowed to register the nodes' keys",
    )
    up.add_argument("--node-config", default="", help="extra --node-config for every node")
    up.add_argument("--no-ledger", action="store_true", help="do not start the ledger server")
    up.add_argument(
        "--insecure",
        action="store_true",
        help="no TLS, no node authentication (loopback experiments only)",
    )
    up.set_defaults(func=cmd_up)

    status = dsub.add_parser("status", help="which recorded processes run")
    status.add_argument("dir", type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    down = dsub.add_parser("down", help="stop the processes this folder started")
    down.add_argument("dir", type=Path)
    down.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="stop only this process (e.g. supernode-1); repeatable",
    )
    down.set_defaults(func=cmd_down)

    run = dsub.add_parser("run", help="`flwr run` an App on the deployment, honest exit status")
    run.add_argument("dir", type=Path)
    run.add_argument("--app-dir", type=Path, default=Path.cwd())
    run.add_argument("--run-config", nargs="*", default=[], metavar="KEY=VALUE")
    run.set_defaults(func=cmd_run)

    certs = dsub.add_parser("certs", help="a local CA and a SuperLink certificate")
    certs.add_argument("out", type=Path)
    certs.add_argument(
        "--host",
        action="append",
        default=None,
        metavar="NAME_OR_IP",
        help="a name/address the SuperLink is reached at (repeatable)",
    )
    certs.set_defaults(func=cmd_certs)

    node_key = dsub.add_parser("node-key", help="a SuperNode authentication key pair (P-384)")
    node_key.add_argument("private_key", type=Path)
    node_key.set_defaults(func=cmd_node_key)
