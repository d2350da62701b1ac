"""SuperNode authentication keys: Flower's own mechanism, kept apart from the Stellar identity.

Flower authenticates a SuperNode by an ECDSA key on a NIST curve that the operator registers
with ``flwr supernode register`` (the SuperLink then refuses any other key). It signs the node's
requests, not its training replies: what binds an update to its pseudonym is still the Stellar
signature made by the signing Mod. The two keys are deliberately unrelated, so the node key the
federation operator sees never links to the pseudonym paid on the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from flwr_stellar.files import write_atomic


@dataclass(frozen=True)
class NodeAuthKey:
    """Paths of a SuperNode's authentication key pair."""

    private_key: Path  # OpenSSH private key, 0600: flower-supernode --auth-supernode-private-key
    public_key: Path  # OpenSSH line: flwr supernode register <public_key>


def make_node_auth_key(private_key: Path) -> NodeAuthKey:
    """Create a P-384 key pair (or keep an existing one) for ``flower-supernode``.

    Parameters
    ----------
    private_key : Path
        Where the private key goes (0600); the public key is written beside it with ``.pub``.
    """
    public_key = private_key.with_name(private_key.name + ".pub")
    if private_key.exists():
        loaded = serialization.load_ssh_private_key(private_key.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{private_key}: not an EC private key")
        key = loaded
    else:
        key = ec.generate_private_key(ec.SECP384R1())
        private_key.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(
            private_key,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ),
            mode=0o600,
        )
    public_key.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )
    return NodeAuthKey(private_key, public_key)
