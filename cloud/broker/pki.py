"""The city's own certificate authority for MQTT over TLS: the CA, the broker's server certificate and client
certificates for the schools that log in with a certificate instead of a password.

Keys are ECDSA (P-384 for the CA, P-256 for the rest): small, fast, and supported by Mosquitto, OpenSSL and
Python's ``ssl`` on a Raspberry Pi. Every certificate issued is recorded in ``pki/issued.json`` so that a
client's certificates can be revoked by name; the revocation list (``crl.pem``) is rewritten on each
revocation and read by the broker's certificate listener.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud.broker.files import SecretsLayout, write_file

CA_VALIDITY_DAYS = 20 * 365 + 5
LEAF_VALIDITY_DAYS = 3 * 365
DEFAULT_CA_NAME = "lokalnie CA Zduńska Wola"
ORGANIZATION = "Miasto Zduńska Wola"
# The names the broker is always reached by inside the compose network and on the server itself.
DEFAULT_SERVER_HOSTS = ("mosquitto", "localhost", "127.0.0.1")
# MQTT user names double as certificate common names and client ids.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# A certificate is valid from a little before it is made, so that a clock a few minutes behind accepts it.
_BACKDATE = dt.timedelta(minutes=10)


class PkiError(Exception):
    """Something the person running the command must fix; the text says what."""


@dataclass(frozen=True)
class IssuedCertificate:
    """One entry of the register of issued certificates."""

    serial: int
    common_name: str
    kind: str  # "server" or "client"
    not_after: str  # ISO 8601, UTC
    revoked_at: str | None = None


def create_ca(
    layout: SecretsLayout,
    *,
    common_name: str = DEFAULT_CA_NAME,
    days: int = CA_VALIDITY_DAYS,
    force: bool = False,
    now: dt.datetime | None = None,
) -> list[Path]:
    """Create the CA's key and self-signed certificate, an empty revocation list, and the broker's copies.

    An existing CA is replaced only with ``force``: every certificate it signed stops being trusted.
    """
    if days < 1:
        raise PkiError(f"--days must be at least 1, got {days}")
    if layout.ca_key.exists() and not force:
        raise PkiError(
            f"a CA already exists in {layout.pki_dir}; replacing it breaks every certificate it signed "
            "(use --force to replace it anyway)"
        )
    now = now or _now()
    layout.ensure_root()
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    written = [
        write_file(layout.ca_key, _key_pem(key), secret=True),
        write_file(layout.ca_cert, _cert_pem(certificate), secret=False),
        write_file(layout.broker_ca, _cert_pem(certificate), secret=False),
    ]
    # A new CA starts a new register: certificates of the old one are not trusted any more anyway.
    written.append(_write_index(layout, []))
    written.extend(_write_crl(layout, key, certificate, [], now))
    return written


def issue_server_cert(
    layout: SecretsLayout,
    hosts: Sequence[str],
    *,
    days: int = LEAF_VALIDITY_DAYS,
    now: dt.datetime | None = None,
) -> list[Path]:
    """The broker's key and certificate, valid for ``hosts`` (DNS names or IP addresses) and the defaults."""
    names = list(dict.fromkeys([*hosts, *DEFAULT_SERVER_HOSTS]))
    alternative_names: list[x509.GeneralName] = [_general_name(host) for host in names]
    ca_key, ca_cert = load_ca(layout)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _leaf(
        ca_key,
        ca_cert,
        key,
        common_name=names[0],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        days=days,
        now=now or _now(),
        alternative_names=alternative_names,
    )
    written = [
        write_file(layout.server_key, _key_pem(key), secret=True),
        write_file(layout.server_cert, _cert_pem(certificate), secret=False),
    ]
    written.append(_record(layout, certificate, "server"))
    return written


def issue_client_cert(
    layout: SecretsLayout,
    username: str,
    *,
    days: int = LEAF_VALIDITY_DAYS,
    now: dt.datetime | None = None,
) -> list[Path]:
    """A client key and certificate whose common name is the MQTT user name, with a copy of the CA."""
    if not _USERNAME.match(username):
        raise PkiError(f"user name {username!r} does not match {USERNAME_PATTERN}")
    ca_key, ca_cert = load_ca(layout)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _leaf(
        ca_key,
        ca_cert,
        key,
        common_name=username,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=days,
        now=now or _now(),
        alternative_names=[],
    )
    directory = layout.client_dir(username)
    written = [
        write_file(directory / "client.key", _key_pem(key), secret=True),
        write_file(directory / "client.crt", _cert_pem(certificate), secret=False),
        write_file(directory / "ca.crt", _cert_pem(ca_cert), secret=False),
    ]
    written.append(_record(layout, certificate, "client"))
    return written


def revoke_client_certs(
    layout: SecretsLayout, username: str, *, now: dt.datetime | None = None
) -> list[Path]:
    """Revoke every certificate issued to ``username`` and rewrite the revocation list; the broker applies it
    when it reloads (SIGHUP)."""
    ca_key, ca_cert = load_ca(layout)
    now = now or _now()
    entries = read_index(layout)
    matching = [
        entry
        for entry in entries
        if entry.common_name == username and entry.kind == "client" and not entry.revoked_at
    ]
    if not matching:
        raise PkiError(f"no valid client certificate was issued to {username!r}")
    stamp = now.isoformat(timespec="seconds")
    updated = [
        IssuedCertificate(**{**vars(entry), "revoked_at": stamp}) if entry in matching else entry
        for entry in entries
    ]
    return [_write_index(layout, updated), *_write_crl(layout, ca_key, ca_cert, updated, now)]


def load_ca(layout: SecretsLayout) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA's key and certificate; `PkiError` if there is none."""
    if not layout.ca_key.exists() or not layout.ca_cert.exists():
        raise PkiError(f"no CA in {layout.pki_dir} (create it with 'lokalnie broker pki-init')")
    key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{layout.ca_key} is not an EC private key")
    return key, x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())


def read_index(layout: SecretsLayout) -> list[IssuedCertificate]:
    """The register of issued certificates (empty when there is none yet)."""
    if not layout.issued_index.exists():
        return []
    raw: list[dict[str, Any]] = json.loads(layout.issued_index.read_text())["certificates"]
    return [IssuedCertificate(**{**entry, "serial": int(entry["serial"], 16)}) for entry in raw]


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    days: int,
    now: dt.datetime,
    alternative_names: list[x509.GeneralName],
) -> x509.Certificate:
    if days < 1:
        raise PkiError(f"--days must be at least 1, got {days}")
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise PkiError(f"{host!r} is neither a host name nor an IP address")
    return x509.DNSName(host.lower())


def _record(layout: SecretsLayout, certificate: x509.Certificate, kind: str) -> Path:
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    entry = IssuedCertificate(
        serial=certificate.serial_number,
        common_name=str(common_name),
        kind=kind,
        not_after=certificate.not_valid_after_utc.isoformat(timespec="seconds"),
    )
    return _write_index(layout, [*read_index(layout), entry])


def _write_index(layout: SecretsLayout, entries: list[IssuedCertificate]) -> Path:
    document = {"certificates": [{**vars(entry), "serial": f"{entry.serial:x}"} for entry in entries]}
    return write_file(layout.issued_index, json.dumps(document, indent=2) + "\n", secret=False)


def _write_crl(
    layout: SecretsLayout,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    entries: list[IssuedCertificate],
    now: dt.datetime,
) -> list[Path]:
    # OpenSSL refuses every client certificate once the list's next update has passed, and nobody republishes
    # it on a schedule: it stays valid as long as the CA.
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - _BACKDATE)
        .next_update(ca_cert.not_valid_after_utc)
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
    )
    for entry in entries:
        if entry.revoked_at:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(dt.datetime.fromisoformat(entry.revoked_at))
                .build()
            )
    crl = builder.sign(ca_key, hashes.SHA384())
    pem = crl.public_bytes(serialization.Encoding.PEM)
    return [
        write_file(layout.pki_dir / "crl.pem", pem, secret=False),
        write_file(layout.broker_crl, pem, secret=False),
    ]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
