"""The broker's users and passwords: generated, stored, hashed into Mosquitto's password file, handed to the
schools and the services, and rotated one at a time.

The passwords in clear live in one file, ``mqtt-users.json`` (0600), in the secrets directory; everything
else is made from it: the broker's password file (hashes only), each school's ``edge.env`` for its Raspberry
Pi and each service's environment file. Rewriting the password file keeps the line of every user whose
password did not change, so rotating one school's password changes one line.

The password file uses Mosquitto 2.0's own format, as ``mosquitto_passwd`` writes it::

    username:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512 of the password>
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from cloud.broker.acl import render_acl
from cloud.broker.files import SecretsLayout, write_file
from cloud.broker.pki import PkiError
from cloud.broker.users import (
    DEFAULT_INGEST_WORKERS,
    HEALTH_USER,
    MqttUser,
    Role,
    edge_username,
    expected_users,
)
from common.broker import parse_broker_url

PASSWORD_LENGTH = 32  # letters and digits: about 190 bits, nothing to escape in a URL or an env file
PASSWORD_ALPHABET = string.ascii_letters + string.digits
SALT_BYTES = 12  # as mosquitto_passwd
# mosquitto_passwd uses 101; the passwords are random, so this only slows down a stolen file's owner a little.
PBKDF2_ITERATIONS = 1000
# How the services in deploy/compose.yaml reach the broker: its service name, over TLS.
INTERNAL_BROKER_URL = "mqtts://mosquitto:8883"
# Where a school's Raspberry Pi keeps the city's CA certificate (see deploy/README.md).
PI_CA_FILE = "/etc/lokalnie/ca.crt"


class CredentialsError(Exception):
    """Something the person running the command must fix; the text says what."""


# Mosquitto's password file


def generate_password() -> str:
    """A new random password."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """The ``$7$`` hash Mosquitto 2.0 checks a password against."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (as written by us or by ``mosquitto_passwd``)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


def parse_password_file(text: str) -> dict[str, str]:
    """User name → hash of a Mosquitto password file."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        username, _, hashed = line.partition(":")
        entries[username] = hashed
    return entries


def render_password_file(passwords: Mapping[str, str], previous: Mapping[str, str] | None = None) -> str:
    """The password file for these users (in their order); a user whose ``previous`` hash still matches their
    password keeps it, so that the line does not change."""
    lines = []
    for username, password in passwords.items():
        if ":" in username:
            raise CredentialsError(f"user name {username!r} contains ':'")
        old = (previous or {}).get(username)
        hashed = old if old is not None and verify_password(password, old) else hash_password(password)
        lines.append(f"{username}:{hashed}")
    return "\n".join(lines) + "\n"


# The store of users and passwords


@dataclass
class StoredUser:
    role: Role
    password: str
    school: str | None = None


@dataclass
class CredentialStore:
    """The users and their passwords in clear, and the broker's address as the schools reach it."""

    broker_url: str | None = None
    users: dict[str, StoredUser] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> CredentialStore:
        if not path.exists():
            return cls()
        try:
            document = json.loads(path.read_text())
            users = {
                name: StoredUser(Role(entry["role"]), str(entry["password"]), entry.get("school"))
                for name, entry in document["users"].items()
            }
        except (ValueError, KeyError, TypeError) as error:
            raise CredentialsError(f"{path} is not a credentials file of lokalnie ({error})") from None
        return cls(document.get("broker_url"), users)

    def dumps(self) -> str:
        users = {
            name: {"role": user.role.value, "school": user.school, "password": user.password}
            for name, user in self.users.items()
        }
        return json.dumps({"broker_url": self.broker_url, "users": users}, indent=2) + "\n"

    def ingest_workers(self) -> int:
        return sum(1 for user in self.users.values() if user.role is Role.INGEST)


@dataclass
class Outcome:
    """What a command did: the files it wrote, those it left as they were, the users it added or removed."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def put(self, path: Path, data: str | bytes, *, secret: bool) -> None:
        """Write a file unless it already holds exactly ``data``."""
        payload = data.encode() if isinstance(data, str) else data
        if path.exists() and path.read_bytes() == payload:
            self.unchanged.append(path)
        else:
            self.written.append(write_file(path, payload, secret=secret))


def ensure_credentials(
    layout: SecretsLayout,
    school_ids: Iterable[str],
    *,
    broker_url: str | None = None,
    ingest_workers: int | None = None,
) -> Outcome:
    """Give every school and service a user with a password, keeping those that exist, and write the broker's
    password and ACL files, each school's ``edge.env`` and each service's environment file.

    Users of schools that are no longer in the site files are removed: they lose access at the broker's
    next reload. ``broker_url`` (``mqtts://host:port``, as the schools reach the broker) is remembered.
    """
    layout.ensure_root()
    store = CredentialStore.load(layout.credentials)
    if broker_url is not None:
        store.broker_url = _checked_broker_url(broker_url)
    if store.broker_url is None:
        raise CredentialsError(
            "give --broker-url (the address the schools reach the broker at) the first time"
        )
    workers = ingest_workers or store.ingest_workers() or DEFAULT_INGEST_WORKERS
    try:
        users = expected_users(sorted(set(school_ids)), workers)
    except ValueError as error:
        raise CredentialsError(str(error)) from None
    ca_pem = _ca_pem(layout)
    outcome = Outcome()
    wanted = {user.username for user in users}
    for name in [name for name in store.users if name not in wanted]:
        del store.users[name]
        outcome.removed.append(name)
    for user in users:
        if user.username not in store.users:
            store.users[user.username] = StoredUser(user.role, generate_password(), user.school)
            outcome.created.append(user.username)
    _write_all(layout, store, users, ca_pem, outcome)
    return outcome


def rotate_password(layout: SecretsLayout, name: str) -> Outcome:
    """Give one user (a school id such as ``sp5``, or a user name) a new password. Only that user's line of
    the password file and that user's files change; the broker accepts the new password after a reload."""
    store = CredentialStore.load(layout.credentials)
    username = name if name in store.users else edge_username(name)
    if username not in store.users:
        known = ", ".join(sorted(store.users)) or "none yet: run 'lokalnie broker credentials'"
        raise CredentialsError(f"unknown school or user {name!r} (known users: {known})")
    store.users[username].password = generate_password()
    users = [MqttUser(username_, user.role, user.school) for username_, user in store.users.items()]
    outcome = Outcome()
    _write_all(layout, store, users, _ca_pem(layout), outcome, only=username)
    return outcome


def write_acl(layout: SecretsLayout, school_ids: Iterable[str]) -> Outcome:
    """The broker's ACL file for these schools and the services of the credentials (or the default ones)."""
    layout.ensure_root()
    store = CredentialStore.load(layout.credentials)
    try:
        users = expected_users(sorted(set(school_ids)), store.ingest_workers() or DEFAULT_INGEST_WORKERS)
    except ValueError as error:
        raise CredentialsError(str(error)) from None
    outcome = Outcome()
    outcome.put(layout.acl_file, render_acl(users), secret=False)
    return outcome


def _write_all(
    layout: SecretsLayout,
    store: CredentialStore,
    users: list[MqttUser],
    ca_pem: bytes,
    outcome: Outcome,
    *,
    only: str | None = None,
) -> None:
    outcome.put(layout.credentials, store.dumps(), secret=True)
    previous = parse_password_file(layout.password_file.read_text()) if layout.password_file.exists() else {}
    passwords = {user.username: store.users[user.username].password for user in users}
    outcome.put(layout.password_file, render_password_file(passwords, previous), secret=True)
    outcome.put(layout.acl_file, render_acl(users), secret=False)
    assert store.broker_url is not None
    for user in users:
        if only is not None and user.username != only:
            continue
        password = store.users[user.username].password
        if user.role is Role.EDGE and user.school is not None:
            directory = layout.school_dir(user.school)
            outcome.put(directory / "edge.env", _edge_env(user, password, store.broker_url), secret=True)
            outcome.put(directory / "ca.crt", ca_pem, secret=False)
        elif user.role is Role.INGEST:
            outcome.put(layout.service_env(user.username), _ingest_env(user, password), secret=True)
        elif user.role is Role.HEALTH:
            env = f"MQTT_HEALTH_USERNAME={HEALTH_USER}\nMQTT_HEALTH_PASSWORD={password}\n"
            outcome.put(
                layout.service_env(user.username), _generated("the broker's health check") + env, secret=True
            )
        elif user.role is Role.OPS:
            url = _url_with_credentials(store.broker_url, user.username, password)
            env = f"MQTT_URL={url}\nMQTT_CA_FILE={layout.ca_cert.resolve()}\n"
            outcome.put(
                layout.service_env(user.username), _generated("the city's operators") + env, secret=True
            )


def _edge_env(user: MqttUser, password: str, broker_url: str) -> str:
    url = _url_with_credentials(broker_url, user.username, password)
    return (
        _generated(f"the edge agent of school {user.school}")
        + f"# On the school's Raspberry Pi: /etc/lokalnie/edge.env (0600), with ca.crt as {PI_CA_FILE}.\n"
        + f"MQTT_URL={url}\nMQTT_CA_FILE={PI_CA_FILE}\n"
    )


def _ingest_env(user: MqttUser, password: str) -> str:
    url = _url_with_credentials(INTERNAL_BROKER_URL, user.username, password)
    return (
        _generated(f"ingest worker {user.username}")
        + f"MQTT_URL={url}\nLOKALNIE_INGEST_CLIENT_ID={user.username}\n"
    )


def _generated(what: str) -> str:
    return f"# Broker credentials of {what}, written by 'lokalnie broker'. Secret: keep it 0600.\n"


def _url_with_credentials(broker_url: str, username: str, password: str) -> str:
    scheme, rest = broker_url.split("://", 1)
    return f"{scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{rest}"


def _checked_broker_url(url: str) -> str:
    try:
        address = parse_broker_url(url)
    except ValueError as error:
        raise CredentialsError(str(error)) from None
    if not address.tls:
        raise CredentialsError(
            f"the schools reach the broker over TLS only: give an mqtts:// URL, not {url!r}"
        )
    if address.username or address.password:
        raise CredentialsError("give the broker URL without a user name or password")
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"mqtts://{host}:{address.port}"


def _ca_pem(layout: SecretsLayout) -> bytes:
    if not layout.ca_cert.exists():
        raise PkiError(f"no CA in {layout.pki_dir} (create it with 'lokalnie broker pki-init')")
    return layout.ca_cert.read_bytes()
