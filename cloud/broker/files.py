"""The secrets directory's layout, and writing its files so that a reader never sees half a file.

A file that replaces an existing one keeps that file's owner and group (when the writer may set them): the
broker's files are owned by the user Mosquitto runs as, and rotating a password as root must not make the
password file unreadable to the broker.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

SECRET_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
SECRET_DIR_MODE = 0o700


@dataclass(frozen=True)
class SecretsLayout:
    """Where each generated file lives under one secrets directory (see docs/deploy.md)."""

    root: Path

    def ensure_root(self) -> None:
        """Create the secrets directory, readable by its owner only, if it does not exist yet."""
        self.root.mkdir(parents=True, mode=SECRET_DIR_MODE, exist_ok=True)

    # The certificate authority: its key signs every certificate; keep a copy offline.
    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def issued_index(self) -> Path:
        return self.pki_dir / "issued.json"

    # What the broker reads: mounted read-only into the Mosquitto container at /mosquitto/secrets.
    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    @property
    def broker_ca(self) -> Path:
        return self.broker_dir / "ca.crt"

    @property
    def broker_crl(self) -> Path:
        return self.broker_dir / "crl.pem"

    @property
    def server_cert(self) -> Path:
        return self.broker_dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.broker_dir / "server.key"

    @property
    def password_file(self) -> Path:
        return self.broker_dir / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.broker_dir / "acl"

    # The MQTT users and their passwords in clear: the source the password file is made from.
    @property
    def credentials(self) -> Path:
        return self.root / "mqtt-users.json"

    def school_dir(self, school_id: str) -> Path:
        """What goes onto one school's Raspberry Pi."""
        return self.root / "schools" / school_id

    def service_env(self, username: str) -> Path:
        """The environment file of one cloud service (an ingest worker, the broker's health check)."""
        return self.root / "services" / f"{username}.env"

    def client_dir(self, username: str) -> Path:
        """A client certificate and its key."""
        return self.root / "clients" / username


def write_file(path: Path, data: str | bytes, *, secret: bool) -> Path:
    """Write ``data`` to ``path`` atomically: mode 0600 if ``secret`` (its directory 0700 when created), 0644
    otherwise. A file it replaces keeps its owner and group where the writer may set them."""
    payload = data.encode() if isinstance(data, str) else data
    directory = path.parent
    if not directory.exists():
        directory.mkdir(parents=True, mode=SECRET_DIR_MODE if secret else 0o755)
    previous = path.stat() if path.exists() else None
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, SECRET_FILE_MODE if secret else PUBLIC_FILE_MODE)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        if previous is not None and (previous.st_uid, previous.st_gid) != (os.geteuid(), os.getegid()):
            # Only root may give a file away; anyone else keeps the file as their own.
            with contextlib.suppress(PermissionError):
                os.chown(temporary, previous.st_uid, previous.st_gid)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path
