"""``flwr-stellar keys ...``: create, inspect and use a node's keystore.

Public data goes to stdout. Secrets are printed only by ``export-mnemonic``, with a warning
on stderr. Passphrases and mnemonics are never taken from the command line: a file, an
environment variable or an interactive prompt.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from flwr_stellar.identity import keystore
from flwr_stellar.identity.passphrase import DEFAULT_ENV, resolve_passphrase
from flwr_stellar.identity.pseudonym import (
    OwnershipError,
    OwnershipProof,
    derive_pseudonym,
    owner_keypair,
    prove_ownership,
    verify_ownership,
)


def _passphrase(args: argparse.Namespace, confirm: bool = False) -> str:
    return resolve_passphrase(
        env=args.passphrase_env,
        file=args.passphrase_file,
        prompt=sys.stdin.isatty(),
        confirm=confirm,
    )


def _unlock(args: argparse.Namespace) -> keystore.MasterSecret:
    return keystore.load(args.keystore, _passphrase(args))


def _read_mnemonic(args: argparse.Namespace) -> str:
    if args.mnemonic_file:
        return Path(args.mnemonic_file).read_text().strip()
    if sys.stdin.isatty():
        return getpass.getpass("SEP-5 mnemonic (hidden): ")
    return sys.stdin.readline().strip()


def _save(args: argparse.Namespace, master: keystore.MasterSecret) -> int:
    kdf = keystore.KdfParams(n=args.scrypt_n)
    keystore.save(
        args.keystore, master, _passphrase(args, confirm=True), kdf=kdf, overwrite=args.force
    )
    print(
        json.dumps(
            {
                "keystore": str(args.keystore),
                "public_key": master.public_key,
                "has_mnemonic": master.mnemonic is not None,
            }
        )
    )
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    return _save(args, keystore.MasterSecret.generate(with_mnemonic=not args.no_mnemonic))


def cmd_import_mnemonic(args: argparse.Namespace) -> int:
    return _save(args, keystore.MasterSecret.from_mnemonic(_read_mnemonic(args)))


def cmd_show(args: argparse.Namespace) -> int:
    doc = keystore.read_document(args.keystore)
    print(
        json.dumps(
            {
                "keystore": str(args.keystore),
                "public_key": doc["public_key"],
                "version": doc["version"],
                "kdf": {k: doc["kdf"][k] for k in ("name", "n", "r", "p")},
                "cipher": doc["cipher"]["name"],
            },
            indent=2,
        )
    )
    return 0


def cmd_export_mnemonic(args: argparse.Namespace) -> int:
    master = _unlock(args)
    if master.mnemonic is None:
        print("this keystore holds a raw seed, not a mnemonic", file=sys.stderr)
        return 1
    if not args.yes:
        print("refusing to print a secret without --yes", file=sys.stderr)
        return 1
    print(
        "WARNING: the words below control every pseudonym of this node. Keep them offline.",
        file=sys.stderr,
    )
    print(master.mnemonic)
    return 0


def cmd_derive(args: argparse.Namespace) -> int:
    pseudonym = derive_pseudonym(_unlock(args), args.run_id, args.federation)
    print(
        json.dumps(
            {
                "run_id": args.run_id,
                "federation": args.federation,
                "pseudonym": pseudonym.public_key,
            }
        )
    )
    return 0


def cmd_owner(args: argparse.Namespace) -> int:
    print(json.dumps({"owner": owner_keypair(_unlock(args)).public_key}))
    return 0


def cmd_prove(args: argparse.Namespace) -> int:
    master = _unlock(args)
    proof = prove_ownership(
        master,
        derive_pseudonym(master, args.run_id, args.federation),
        bytes.fromhex(args.challenge),
    )
    print(proof.to_json())
    return 0


def cmd_verify_proof(args: argparse.Namespace) -> int:
    proof = OwnershipProof.from_json(Path(args.proof).read_text())
    verify_ownership(
        proof, pseudonym=args.pseudonym, challenge=bytes.fromhex(args.challenge), owner=args.owner
    )
    print(json.dumps({"valid": True, "owner": proof.owner, "pseudonym": proof.pseudonym}))
    return 0


def add_keys_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser(
        "keys", help="node identity: keystore and per-run pseudonyms", description=__doc__
    )
    ksub = keys.add_subparsers(dest="keys_command", required=True)

    def cmd(name: str, func, help_: str, *, unlock: bool = True):  # type: ignore[no-untyped-def]
        p = ksub.add_parser(name, help=help_, description=help_)
        p.add_argument("keystore", type=Path, help="keystore file (JSON, mode 0600)")
        if unlock:
            p.add_argument(
                "--passphrase-file",
                type=Path,
                default=None,
                help="file holding the passphrase (mode 0600)",
            )
            p.add_argument(
                "--passphrase-env",
                default=DEFAULT_ENV,
                help=f"environment variable with the passphrase (default {DEFAULT_ENV})",
            )
        p.set_defaults(func=func)
        return p

    for name, func, help_ in (
        ("new", cmd_new, "create a keystore with a fresh master secret (24-word SEP-5 mnemonic)"),
        (
            "import-mnemonic",
            cmd_import_mnemonic,
            "create a keystore from a SEP-5 mnemonic (read from stdin, a prompt or a file)",
        ),
    ):
        p = cmd(name, func, help_)
        p.add_argument(
            "--scrypt-n",
            type=int,
            default=keystore.DEFAULT_SCRYPT["n"],
            help="scrypt cost (power of two; default %(default)s)",
        )
        p.add_argument("--force", action="store_true", help="replace an existing keystore")
        if name == "new":
            p.add_argument(
                "--no-mnemonic", action="store_true", help="random seed without a recovery mnemonic"
            )
        else:
            p.add_argument("--mnemonic-file", type=Path, default=None)
    cmd("show", cmd_show, "print the public key and KDF parameters (no passphrase)", unlock=False)
    cmd("owner", cmd_owner, "print the owner key that signs this node's ownership proofs")
    cmd(
        "export-mnemonic", cmd_export_mnemonic, "print the recovery mnemonic (a secret!)"
    ).add_argument("--yes", action="store_true", help="confirm printing the secret")
    for name, func, help_ in (
        ("derive", cmd_derive, "print the pseudonym of this node for a run"),
        ("prove", cmd_prove, "prove ownership of a run's pseudonym for a verifier's challenge"),
    ):
        p = cmd(name, func, help_)
        p.add_argument("--run-id", type=int, required=True)
        p.add_argument("--federation", default="default")
        if name == "prove":
            p.add_argument("--challenge", required=True, help="verifier's challenge, hex")
    verify = ksub.add_parser("verify-proof", help="check an ownership proof (no keystore)")
    verify.add_argument("proof", type=Path, help="proof JSON from `keys prove`")
    verify.add_argument("--pseudonym", required=True)
    verify.add_argument("--challenge", required=True, help="hex")
    verify.add_argument(
        "--owner", default=None, help="expected owner key, from `keys owner` (optional)"
    )
    verify.set_defaults(func=cmd_verify_proof)


KEY_ERRORS = (keystore.KeystoreError, OwnershipError, ValueError)
