"""The city's CA and the certificates it issues: what they say, how their keys are kept, what is refused."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud.broker import pki
from cloud.broker.files import SecretsLayout, write_file


@pytest.fixture
def layout(tmp_path: Path) -> SecretsLayout:
    made = SecretsLayout(tmp_path / "secrets")
    pki.create_ca(made)
    return made


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ca_is_a_long_lived_ca_with_its_key_kept_private(layout: SecretsLayout) -> None:
    ca = certificate(layout.ca_cert)
    assert ca.subject == ca.issuer
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > dt.timedelta(days=19 * 365)
    assert mode(layout.ca_key) == 0o600
    assert mode(layout.root) == 0o700
    assert mode(layout.pki_dir) == 0o700
    assert layout.broker_ca.read_bytes() == layout.ca_cert.read_bytes()
    assert x509.load_pem_x509_crl(layout.broker_crl.read_bytes()).is_signature_valid(ca.public_key())  # type: ignore[arg-type]


def test_an_existing_ca_is_replaced_only_with_force(layout: SecretsLayout) -> None:
    before = layout.ca_key.read_bytes()
    with pytest.raises(pki.PkiError, match="--force"):
        pki.create_ca(layout)
    assert layout.ca_key.read_bytes() == before
    pki.create_ca(layout, force=True)
    assert layout.ca_key.read_bytes() != before


def test_the_server_certificate_names_the_hosts_and_the_compose_service(layout: SecretsLayout) -> None:
    written = pki.issue_server_cert(layout, ["mqtt.zdunskawola.pl", "203.0.113.7"])
    assert layout.server_key in written and layout.server_cert in written
    server = certificate(layout.server_cert)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mqtt.zdunskawola.pl", "mosquitto", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("203.0.113.7"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert server.issuer == certificate(layout.ca_cert).subject
    server.verify_directly_issued_by(certificate(layout.ca_cert))
    assert mode(layout.server_key) == 0o600


def test_a_client_certificate_carries_the_user_name(layout: SecretsLayout) -> None:
    written = pki.issue_client_cert(layout, "edge-sp5")
    client = certificate(layout.client_dir("edge-sp5") / "client.crt")
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edge-sp5"
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    client.verify_directly_issued_by(certificate(layout.ca_cert))
    assert mode(layout.client_dir("edge-sp5") / "client.key") == 0o600
    assert layout.client_dir("edge-sp5") / "ca.crt" in written
    assert [entry.common_name for entry in pki.read_index(layout)] == ["edge-sp5"]


def test_revoking_lists_every_certificate_of_the_user(layout: SecretsLayout) -> None:
    pki.issue_client_cert(layout, "edge-sp5")
    pki.issue_client_cert(layout, "edge-sp5")
    pki.issue_client_cert(layout, "edge-sp6")
    pki.revoke_client_certs(layout, "edge-sp5")
    crl = x509.load_pem_x509_crl(layout.broker_crl.read_bytes())
    serials = {entry.serial for entry in pki.read_index(layout) if entry.common_name == "edge-sp5"}
    assert {revoked.serial_number for revoked in crl} == serials
    assert crl.next_update_utc == certificate(layout.ca_cert).not_valid_after_utc
    with pytest.raises(pki.PkiError, match="no valid client certificate"):
        pki.revoke_client_certs(layout, "edge-sp5")


def test_bad_input_is_refused(tmp_path: Path, layout: SecretsLayout) -> None:
    empty = SecretsLayout(tmp_path / "empty")
    with pytest.raises(pki.PkiError, match=r"no CA in .*pki-init"):
        pki.issue_server_cert(empty, ["mqtt.example.pl"])
    with pytest.raises(pki.PkiError, match="neither a host name nor an IP address"):
        pki.issue_server_cert(layout, ["not a host"])
    with pytest.raises(pki.PkiError, match="user name"):
        pki.issue_client_cert(layout, "edge sp5")
    with pytest.raises(pki.PkiError, match="--days"):
        pki.issue_client_cert(layout, "edge-sp5", days=0)


def test_a_replaced_file_keeps_its_mode_rules_and_never_shows_half(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "file"
    write_file(path, "one", secret=True)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    write_file(path, "two", secret=False)
    assert (path.read_text(), mode(path)) == ("two", 0o644)
    assert sorted(item.name for item in path.parent.iterdir()) == ["file"]
