"""TLS for a deployment: a local certificate authority and the SuperLink's certificate.

Flower's SuperLink refuses plaintext unless started with ``--insecure``; an operator without a
PKI needs a CA the SuperNodes and the ``flwr`` CLI can pin (``--root-certificates`` /
``root-certificates``). The CA key signs once and is kept 0600 beside the certificates; a node
host needs only ``ca.crt``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flwr_stellar.files import write_atomic

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity browsers and TLS stacks still accept for a leaf


@dataclass(frozen=True)
class ServerCertificates:
    """Where ``make_certificates`` put the files a SuperLink and its clients need."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flwr-stellar deployment"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: not an EC private key")
    return cert, key


def make_certificates(
    out: Path, hosts: Sequence[str] = ("127.0.0.1", "localhost")
) -> ServerCertificates:
    """Create (or reuse) a local CA in ``out`` and issue the SuperLink a certificate for ``hosts``.

    An existing CA is reused so that nodes which already pinned ``ca.crt`` keep trusting a
    re-issued server certificate (new hosts, expiry).

    Parameters
    ----------
    out : Path
        Folder for ``ca.crt``, ``ca.key`` (0600), ``server.crt`` and ``server.key`` (0600).
    hosts : sequence of str
        Every IP address or DNS name clients use to reach the SuperLink; a client checks the
        name it dialled against these.

    Raises
    ------
    ValueError
        No host given, or an existing ``ca.key`` is not an EC key.
    """
    if not hosts:
        raise ValueError("at least one host (IP or DNS name) is needed for the certificate")
    out.mkdir(parents=True, exist_ok=True)
    files = ServerCertificates(
        out / "ca.crt", out / "ca.key", out / "server.crt", out / "server.key"
    )
    now = dt.datetime.now(dt.UTC)
    if files.ca_cert.exists() and files.ca_key.exists():
        ca_cert, ca_key = _load_ca(files.ca_cert, files.ca_key)
    else:
        ca_key = ec.generate_private_key(ec.SECP384R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("flwr-stellar local CA"))
            .issuer_name(_name("flwr-stellar local CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA384())
        )
        write_atomic(files.ca_key, _key_pem(ca_key), mode=0o600)
        files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    write_atomic(files.server_key, _key_pem(server_key), mode=0o600)
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    return files


def certificate_hosts(cert_path: Path) -> list[str]:
    """The names and addresses a certificate is valid for (``deploy status`` shows them)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.IPAddress)] + list(
        san.get_values_for_type(x509.DNSName)
    )
