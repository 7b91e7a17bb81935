"""``berth up --tls``: a private CA and a server certificate under ``<data-dir>/tls/``.

Files (PEM): ``ca.key`` + ``ca.crt`` (self-signed, 10 years, ``CA:TRUE, pathlen:0``) and
``server.key`` + ``server.crt`` (signed by the CA, ~13 months, ``serverAuth``, SANs = the names
given). Keys are ECDSA P-256, mode 0600, in a 0700 folder. Later starts reuse them; the server
certificate is re-issued when its SANs differ from the names asked for, it expires within 30
days, it was not issued by the CA on disk, or its key does not match. RFC 5280 profiles; Go
(docker, podman, skopeo) needs SANs, Python 3.13's strict verification needs SKI/AKI.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_BEFORE = timedelta(days=30)
DEFAULT_NAMES = ("localhost", "127.0.0.1")
_UNSPECIFIED = {"", "0.0.0.0", "::", "[::]"}
PrivateKey = ec.EllipticCurvePrivateKey
GeneralName = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class TlsFiles:
    """What uvicorn serves (``cert``, ``key``) and what clients trust (``ca``; None if unknown)."""

    cert: Path
    key: Path
    ca: Path | None
    names: tuple[str, ...] = ()


def server_names(tls_names: Sequence[str], host: str) -> list[str]:
    """SANs for the server certificate: ``tls_names`` (default localhost, 127.0.0.1) plus ``host``
    unless it is a wildcard address (``0.0.0.0``, ``::``); duplicates dropped, order kept."""
    names = [n.strip().strip("[]") for n in (tls_names or DEFAULT_NAMES) if n.strip()]
    if host not in _UNSPECIFIED:
        names.append(host.strip("[]"))
    return list(dict.fromkeys(names))


def ensure_certificates(tls_dir: Path, names: Sequence[str], now: datetime | None = None) -> TlsFiles:
    """Make or reuse the CA and server certificate in ``tls_dir`` for ``names`` (DNS names or IPs).

    Raises:
        ValueError: if ``names`` is empty.
        OSError: if ``tls_dir`` cannot be written.
    """
    if not names:
        raise ValueError("a server certificate needs at least one name")
    now = now or datetime.now(UTC)
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.chmod(0o700)
    ca_key, ca_cert = _load_or_create_ca(tls_dir, now)
    files = TlsFiles(tls_dir / "server.crt", tls_dir / "server.key", tls_dir / "ca.crt", tuple(names))
    if not _server_current(files, ca_cert, names, now):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue_server(ca_key, ca_cert, key, names, now)
        _write_key(files.key, key)
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


def operator_files(cert: Path, key: Path) -> TlsFiles:
    """The operator's own ``--tls-cert``/``--tls-key``, checked by loading them into an SSL context.

    Raises:
        ValueError: if either file is missing or they do not form a certificate/key pair.
    """
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot use --tls-cert {cert} with --tls-key {key}: {exc}") from exc
    return TlsFiles(cert.resolve(), key.resolve(), None)


def trust_instructions(files: TlsFiles, host_port: str) -> str:
    """How clients trust the server of ``host_port`` (``HOST:PORT``), as lines to print."""
    if files.ca is None:
        return (
            f"TLS with your certificate {files.cert}: clients must trust the CA that issued it\n"
            f"  (docker: /etc/docker/certs.d/{host_port}/ca.crt; podman/skopeo: "
            f"/etc/containers/certs.d/{host_port}/ca.crt)"
        )
    ca = files.ca
    return "\n".join(
        [
            f"TLS certificate for {', '.join(files.names)}, signed by the Berth CA {ca}. To trust it:",
            f"  docker:         sudo mkdir -p /etc/docker/certs.d/{host_port} && "
            f"sudo cp {ca} /etc/docker/certs.d/{host_port}/ca.crt",
            f"  podman, skopeo: sudo mkdir -p /etc/containers/certs.d/{host_port} && "
            f"sudo cp {ca} /etc/containers/certs.d/{host_port}/ca.crt",
            "                  or --cert-dir DIR, with a copy of it as DIR/ca.crt",
            f"  Python (httpx, berth CLI): export SSL_CERT_FILE={ca}",
            f'  oras-py, requests: export REQUESTS_CA_BUNDLE={ca} (or OrasClient(tls_verify="{ca}"))',
        ]
    )


def _load_or_create_ca(tls_dir: Path, now: datetime) -> tuple[PrivateKey, x509.Certificate]:
    key_path, cert_path = tls_dir / "ca.key", tls_dir / "ca.crt"
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if (
            isinstance(key, PrivateKey)
            and cert.public_key() == key.public_key()
            and cert.not_valid_after_utc - now > RENEW_BEFORE
        ):
            return key, cert
    except (OSError, ValueError):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Berth"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Berth local CA {now:%Y-%m-%d}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _builder(name, name, key.public_key(), now, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _issue_server(
    ca_key: PrivateKey, ca_cert: x509.Certificate, key: PrivateKey, names: Sequence[str], now: datetime
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        _builder(subject, ca_cert.subject, key.public_key(), now, SERVER_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(general_names(names)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def general_names(names: Sequence[str]) -> list[GeneralName]:
    """SAN entries: an ``IPAddress`` for each IP literal, a ``DNSName`` for everything else."""
    result: list[GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _server_current(files: TlsFiles, ca_cert: x509.Certificate, names: Sequence[str], now: datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return (
        cert.public_key() == key.public_key()
        and set(sans) == set(general_names(names))
        and cert.not_valid_after_utc - now > RENEW_BEFORE
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_key(path: Path, key: PrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600 from creation, replacing atomically."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def configure(
    data_dir: Path,
    *,
    enabled: bool,
    names: Sequence[str],
    host: str,
    cert: Path | None = None,
    key: Path | None = None,
) -> TlsFiles | None:
    """The TLS files ``berth up`` serves with, or None for plain HTTP.

    ``cert``/``key`` (the operator's own) win and imply TLS; else ``enabled`` makes or reuses the
    CA and server certificate in ``data_dir/tls`` for :func:`server_names` ``(names, host)``.

    Raises:
        ValueError: if only one of ``cert``/``key`` is given or they cannot be loaded.
    """
    if cert or key:
        if not (cert and key):
            raise ValueError("--tls-cert and --tls-key go together")
        return operator_files(cert, key)
    if not enabled:
        return None
    return ensure_certificates(data_dir / "tls", server_names(names, host))


def client_host(host: str, files: TlsFiles) -> str:
    """The host name clients should use: ``host``, or for a wildcard address the first SAN."""
    if host not in _UNSPECIFIED:
        return host
    return files.names[0] if files.names else "localhost"
