"""Real servers for the integration tests, each on a free loopback port in its own temporary directory.

Every function here starts a real program from the Debian packages (``make test`` installs them), waits
until it answers, and is used as a context manager that stops the program and everything it started.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common.lifecycle import die_with_parent
from lokalnie.ports import free_port


def wait_for_port(port: int, timeout_s: float = 15.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s} s")


def wait_for_postgres(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Block until PostgreSQL on 127.0.0.1:port accepts connections: it listens while it still recovers
    ("the database system is starting up"), so an open port is not enough."""
    wait_for_port(port, timeout_s, process)
    deadline = time.monotonic() + timeout_s
    ready = [require("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    while subprocess.run(ready, check=False).returncode != 0:
        if process.poll() is not None:
            raise RuntimeError(f"PostgreSQL on port {port} exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL on port {port} did not accept connections within {timeout_s} s")
        time.sleep(0.1)


def stop_postgres(process: subprocess.Popen[bytes]) -> None:
    """PostgreSQL's fast shutdown (SIGINT): open connections are cut. Its SIGTERM waits for every client to
    disconnect, which pooled connections of the tests' own engines never do."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Stop a process and its process group: SIGTERM, then SIGKILL if it does not go in time."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout_s)


def start(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a program in its own process group with output to ``log_path``."""
    log = log_path.open("ab")
    return subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
        preexec_fn=die_with_parent,
    )


def require(program: str) -> str:
    """The path of a program the tests need; fail with the command that installs it."""
    found = shutil.which(program) or next(
        (str(path) for path in Path("/usr/lib/postgresql").glob(f"*/bin/{program}")), None
    )
    if found is None:
        raise RuntimeError(f"{program} is not installed; run 'make test' (it installs the Debian packages)")
    return found


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def mosquitto_config(port: int, directory: Path, extra: str = "") -> str:
    """A Mosquitto configuration for tests: one loopback listener, no persistence, unbounded queues."""
    return (
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_queued_messages 0\n"
        "max_inflight_messages 0\n"
        # Stay root when the tests run as root: a process that changes user loses its parent-death signal.
        "user root\n"
        f"log_dest file {directory / 'mosquitto.log'}\n"
        "log_type error\nlog_type warning\nlog_type notice\n" + extra
    )


@contextlib.contextmanager
def mosquitto(directory: Path, config: str | None = None, port: int | None = None) -> Iterator[Broker]:
    """A real Mosquitto broker on loopback."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config_path = directory / "mosquitto.conf"
    config_path.write_text(config or mosquitto_config(port, directory))
    process = start([require("mosquitto"), "-c", str(config_path)], directory / "mosquitto.out")
    try:
        wait_for_port(port, process=process)
        yield Broker("127.0.0.1", port, directory)
    finally:
        stop_process(process)


@contextlib.contextmanager
def subscriber(broker: Broker, topic: str = "lokalnie/v1/#") -> Iterator[Path]:
    """``mosquitto_sub`` taking every message on ``topic`` at QoS 1, as the ingest would, into a file in the
    broker's directory (yielded): with no subscriber, the broker answers "no matching subscribers" and the
    agents keep their rows."""
    out = broker.directory / "mosquitto_sub.out"
    process = start(
        [
            require("mosquitto_sub"),
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            topic,
        ],
        out,
    )
    try:
        # mosquitto_sub says nothing once subscribed: a moment without it ending is taken as subscribed.
        time.sleep(0.5)
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto_sub ended: {out.read_text()[-2000:]}")
        yield out
    finally:
        stop_process(process)


@dataclass(frozen=True)
class Postgres:
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://lokalnie:lokalnie@127.0.0.1:{self.port}/lokalnie"

    def new_database(self, prefix: str) -> str:
        """The URL of a new empty database on this server, named ``prefix`` and a unique suffix."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._admin(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def copy_database(self, template_url: str, url: str) -> None:
        """Make the database at ``url`` (on this server, replacing it) a copy of the one at ``template_url``,
        which nobody may be connected to: far quicker than migrating and filling another."""
        template, name = template_url.rsplit("/", 1)[1], url.rsplit("/", 1)[1]
        self._admin(f"DROP DATABASE IF EXISTS {name}")
        self._admin(f"CREATE DATABASE {name} TEMPLATE {template}")

    def _admin(self, statement: str) -> None:
        import sqlalchemy

        admin = sqlalchemy.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(statement)
        admin.dispose()


def child_pids(pid: int) -> set[int]:
    """The ids of the processes ``pid`` started that still run."""
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _as_postgres_user() -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--"]


def init_cluster(data: Path, prefix: list[str]) -> None:
    """A new PostgreSQL cluster in ``data`` (its parent must exist and belong to the user ``prefix`` runs as),
    with the superuser ``lokalnie`` (password ``lokalnie``, scram-sha-256)."""
    password_file = data.parent / "password"
    password_file.write_text("lokalnie\n")
    if prefix:
        shutil.chown(password_file, "postgres")
    subprocess.run(
        [
            *prefix,
            require("initdb"),
            "-D",
            str(data),
            "-U",
            "lokalnie",
            "--pwfile",
            str(password_file),
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def postgres(log_dir: Path, durable: bool = False) -> Iterator[Postgres]:
    """A real PostgreSQL cluster on loopback with a database and user ``lokalnie`` (password ``lokalnie``).

    The cluster lives in its own directory under the system's temporary directory: pytest's are private to
    the user running the tests, and the server runs as ``postgres`` when the tests run as root. Unless
    ``durable``, it does not wait for the disk (no fsync, no synchronous commit): tests do not survive a power
    cut anyway; a benchmark of what production does asks for ``durable``. Also unless ``durable``, the
    directory is in memory (``/dev/shm``) when there is room: the suite's cluster ends with some 200
    databases of ~1,000 files each, which took 18 s to delete from this machine's disk (0.5 s from memory),
    and each new database 0.1 s instead of 0.06 s.
    """
    durability = "on" if durable else "off"
    log_dir.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="lokalnie-pg-", dir=None if durable else _memory_directory()))
    data = directory / "data"
    prefix = _as_postgres_user()
    if prefix:
        shutil.chown(directory, "postgres")
    process: subprocess.Popen[bytes] | None = None
    try:
        init_cluster(data, prefix)
        port = free_port()
        process = start(
            [
                *prefix,
                require("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(directory),
                "-c",
                f"fsync={durability}",
                "-c",
                f"synchronous_commit={durability}",
                "-c",
                f"full_page_writes={durability}",
                "-c",
                "max_connections=100",
            ],
            log_dir / "postgres.log",
        )
        wait_for_postgres(port, process)
        _create_database(port)
        yield Postgres(port, log_dir)
    finally:
        if process is not None:
            stop_postgres(process)
        shutil.rmtree(directory, ignore_errors=True)


def _memory_directory(needed_bytes: int = 4 * 1024**3) -> str | None:
    """``/dev/shm`` if it has ``needed_bytes`` free, else None (the system's temporary directory); first the
    clusters that killed test runs left there are deleted (they would hold the memory until a reboot)."""
    memory = Path("/dev/shm")
    if not memory.is_dir():
        return None
    for left in memory.glob("lokalnie-pg-*"):
        if _abandoned(left):
            shutil.rmtree(left, ignore_errors=True)
    return str(memory) if shutil.disk_usage(memory).free >= needed_bytes else None


def _abandoned(cluster: Path, quiet_s: float = 600.0) -> bool:
    """Whether no PostgreSQL runs in ``cluster`` and it is older than ``quiet_s`` (not one being made now)."""
    try:
        if time.time() - cluster.stat().st_mtime < quiet_s:
            return False
        pid = int((cluster / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return True
    return not Path(f"/proc/{pid}").exists()


def _create_database(port: int) -> None:
    env = {**os.environ, "PGPASSWORD": "lokalnie"}
    command = [
        require("psql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        "lokalnie",
        "-d",
        "postgres",
        "-c",
        "CREATE DATABASE lokalnie",
    ]
    for _ in range(50):
        done = subprocess.run(command, env=env, capture_output=True)
        if done.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"could not create the test database: {done.stderr.decode()}")


def wait_for_log(
    path: Path, text: str, timeout_s: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until a process's log file contains ``text`` (e.g. the line that says it has subscribed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the process exited with code {process.returncode}: {path.read_text()[-2000:]}"
            )
        time.sleep(0.05)
    raise TimeoutError(f"{path} did not say {text!r} within {timeout_s} s")
