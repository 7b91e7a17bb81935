"""``berth up --tls`` certificates (src/berth/tls.py): SANs, chain, reuse, re-issue, key modes."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from berth import tls

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def load(path: Path) -> x509.Certificate:
    """The PEM certificate at ``path``."""
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses as strings) of ``cert``'s subjectAltName."""
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        set(ext.get_values_for_type(x509.DNSName)),
        {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)},
    )


def test_server_names_defaults_and_host() -> None:
    assert tls.server_names([], "127.0.0.1") == ["localhost", "127.0.0.1"]
    assert tls.server_names([], "0.0.0.0") == ["localhost", "127.0.0.1"]
    assert tls.server_names([], "reg.example") == ["localhost", "127.0.0.1", "reg.example"]
    assert tls.server_names(["reg.example", "10.0.0.5"], "::") == ["reg.example", "10.0.0.5"]
    assert tls.server_names(["reg.example"], "192.168.1.2") == ["reg.example", "192.168.1.2"]


def test_generated_chain_verifies_with_sans_and_profiles(tmp_path: Path) -> None:
    files = tls.ensure_certificates(
        tmp_path / "tls", ["localhost", "127.0.0.1", "::1", "reg.example"], now=NOW
    )
    assert files.ca is not None
    ca, server = load(files.ca), load(files.cert)
    server.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    ca.verify_directly_issued_by(ca)  # self-signed
    assert sans(server) == ({"localhost", "reg.example"}, {"127.0.0.1", "::1"})
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert ca.not_valid_after_utc - NOW >= timedelta(days=3649)
    assert server.not_valid_after_utc > NOW + timedelta(days=300)


def test_key_files_are_private(tmp_path: Path) -> None:
    tls.ensure_certificates(tmp_path / "tls", ["localhost"])
    for name in ("ca.key", "server.key"):
        assert stat.S_IMODE((tmp_path / "tls" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700


def test_python_ssl_verifies_the_chain_for_each_name(tmp_path: Path) -> None:
    """Python's default (strict on 3.13) verification accepts the pair, by name and by IP."""
    files = tls.ensure_certificates(tmp_path / "tls", ["localhost", "127.0.0.1"])
    client = ssl.create_default_context(cafile=str(files.ca))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(files.cert, files.key)
    for name in ("localhost", "127.0.0.1"):
        handshake(client, server, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(client, server, "other.example")


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> None:
    """A TLS handshake through memory BIOs, the client checking ``name``.

    Raises:
        ssl.SSLCertVerificationError: if the client rejects the server's certificate.
    """
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = 0
        for side, out, peer_in in ((c, c_out, s_in), (s, s_out, c_in)):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            peer_in.write(out.read())
        if done == 2:
            return
    raise AssertionError("handshake did not finish")


def test_later_starts_reuse_both_certificates(tmp_path: Path) -> None:
    first = tls.ensure_certificates(tmp_path, ["localhost"], now=NOW)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    second = tls.ensure_certificates(tmp_path, ["localhost"], now=NOW + timedelta(days=100))
    assert second == first
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_changed_names_reissue_the_server_certificate_only(tmp_path: Path) -> None:
    files = tls.ensure_certificates(tmp_path, ["localhost"], now=NOW)
    ca_before, key_before = files.ca.read_bytes(), files.key.read_bytes()  # type: ignore[union-attr]
    tls.ensure_certificates(tmp_path, ["localhost", "reg.example"], now=NOW)
    assert files.ca.read_bytes() == ca_before  # type: ignore[union-attr]
    assert files.key.read_bytes() != key_before
    assert sans(load(files.cert)) == ({"localhost", "reg.example"}, set())
    load(files.cert).verify_directly_issued_by(load(files.ca))  # type: ignore[arg-type]


def test_certificate_near_expiry_is_reissued(tmp_path: Path) -> None:
    files = tls.ensure_certificates(tmp_path, ["localhost"], now=NOW)
    old = load(files.cert)
    later = old.not_valid_after_utc - timedelta(days=29)
    tls.ensure_certificates(tmp_path, ["localhost"], now=later)
    assert load(files.cert).serial_number != old.serial_number
    assert load(files.cert).not_valid_after_utc > later + timedelta(days=300)


def test_replaced_ca_reissues_the_server_certificate(tmp_path: Path) -> None:
    files = tls.ensure_certificates(tmp_path, ["localhost"], now=NOW)
    (tmp_path / "ca.key").unlink()
    tls.ensure_certificates(tmp_path, ["localhost"], now=NOW)
    load(files.cert).verify_directly_issued_by(load(files.ca))  # type: ignore[arg-type]


def test_ip_literals_become_ip_sans() -> None:
    names = tls.general_names(["127.0.0.1", "::1", "localhost"])
    assert names == [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("localhost"),
    ]


def test_operator_files_are_checked(tmp_path: Path) -> None:
    made = tls.ensure_certificates(tmp_path / "tls", ["localhost"])
    own = tls.configure(tmp_path, enabled=False, names=[], host="127.0.0.1", cert=made.cert, key=made.key)
    assert own is not None and own.ca is None and own.cert == made.cert
    with pytest.raises(ValueError, match="go together"):
        tls.configure(tmp_path, enabled=True, names=[], host="h", cert=made.cert)
    with pytest.raises(ValueError, match="cannot use"):
        tls.operator_files(made.cert, made.cert)
    assert tls.configure(tmp_path, enabled=False, names=[], host="h") is None


def test_trust_instructions_name_every_client(tmp_path: Path) -> None:
    files = tls.ensure_certificates(tmp_path / "tls", ["localhost"])
    text = tls.trust_instructions(files, "localhost:5443")
    for needle in (
        "/etc/docker/certs.d/localhost:5443/ca.crt",
        "/etc/containers/certs.d/localhost:5443/ca.crt",
        "--cert-dir",
        f"SSL_CERT_FILE={files.ca}",
    ):
        assert needle in text


def test_berth_up_exports_the_expiry_of_its_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``berth up --tls`` adds its server certificate to ``metrics.tls_certificates`` (kept with
    any the operator listed), so every worker exports its notAfter."""
    from berth.server_cli import _watch_certificate
    from berth_common.settings import Settings
    from berth_common.telemetry.sampler import certificate_expiry

    files = tls.configure(tmp_path, enabled=True, names=[], host="127.0.0.1")
    assert files is not None
    monkeypatch.setenv("BERTH_METRICS__TLS_CERTIFICATES", "/etc/ingress/tls.crt")
    _watch_certificate(files.cert)
    watched = Settings().metrics.tls_certificates
    assert watched == [Path("/etc/ingress/tls.crt"), files.cert]
    assert certificate_expiry(files.cert) == load(files.cert).not_valid_after_utc.timestamp()
