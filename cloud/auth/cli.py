"""``lokalnie users``: the API's users and API keys, managed by the city's IT on the server. Every change is
written to the audit log as done by ``cli:<os user>``. Reads DATABASE_URL like the other commands and
migrates the database first."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cloud.auth import accounts
from cloud.auth.audit import cli_actor, recent_entries
from cloud.auth.errors import UserError
from cloud.auth.roles import AuditArea, Role
from common.clock import SystemClock, datetime_from_ms
from common.config import describe_validation_error

LOCAL_ZONE = ZoneInfo("Europe/Warsaw")
EXIT_REFUSED = 1
EXIT_BAD_CONFIGURATION = 2

app = typer.Typer(
    help="The API's users and API keys; every change goes to the audit log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_clock = SystemClock()

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the store [env DATABASE_URL; default sqlite:///var/lokalnie.db]",
        show_default=False,
    ),
]
RoleOption = Annotated[Role, typer.Option("--role", help="The role.", case_sensitive=False)]
SchoolOption = Annotated[
    str | None, typer.Option("--school", help="The school's id (school_admin only).", show_default=False)
]
FirmOption = Annotated[
    str | None, typer.Option("--firm", help="The firm's id (firm only).", show_default=False)
]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
]


def _fail(message: str, code: int = EXIT_REFUSED) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _session(database_url: str | None) -> Iterator[Session]:
    """A session on the migrated store; commits when the block ends without an error."""
    from cloud.db.engine import make_engine
    from cloud.db.migrate import upgrade_database
    from cloud.settings import Settings

    try:
        settings = Settings(DATABASE_URL=database_url) if database_url else Settings()
    except ValidationError as error:
        raise _fail(
            f"bad configuration: {describe_validation_error(error)}", EXIT_BAD_CONFIGURATION
        ) from None
    try:
        upgrade_database(settings.database_url)
    except (SQLAlchemyError, OSError) as error:
        raise _fail(f"cannot prepare the database: {type(error).__name__}: {error}") from None
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            try:
                yield session
                session.commit()
            except UserError as error:
                session.rollback()
                raise _fail(str(error)) from None
    finally:
        engine.dispose()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _local(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "-"
    moment: datetime = datetime_from_ms(epoch_ms).astimezone(LOCAL_ZONE)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _scope(school_id: str | None, firm_id: str | None) -> str:
    if school_id is not None:
        return f"school:{school_id}"
    if firm_id is not None:
        return f"firm:{firm_id}"
    return "-"


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Sign-in name: 2 to 64 of a-z 0-9 . _ -")],
    role: RoleOption,
    display_name: Annotated[str, typer.Option("--name", help="The person's name as shown in the API.")],
    school: SchoolOption = None,
    firm: FirmOption = None,
    password_stdin: PasswordStdinOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Add a user (asks for the password twice unless --password-stdin)."""
    password = _password(password_stdin)
    with _session(database_url) as session:
        user = accounts.create_user(
            session,
            cli_actor(),
            username=username,
            display_name=display_name,
            role=role,
            password=password,
            now_ms=_clock.now_ms(),
            school_id=school,
            firm_id=firm,
        )
        typer.echo(f"added {user.username} ({user.role}, {_scope(user.school_id, user.firm_id)})")


@app.command("list")
def list_users(database_url: DatabaseUrlOption = None) -> None:
    """List the users."""
    with _session(database_url) as session:
        typer.echo("username\trole\tscope\tactive\tcreated\tname")
        for user in accounts.list_users(session):
            active = "yes" if user.active else "no"
            scope = _scope(user.school_id, user.firm_id)
            typer.echo(
                f"{user.username}\t{user.role}\t{scope}\t{active}\t{_local(user.created_ms)}\t{user.display_name}"
            )


@app.command("disable")
def disable(username: str, database_url: DatabaseUrlOption = None) -> None:
    """Disable a user: their sessions end and they cannot sign in."""
    with _session(database_url) as session:
        user = accounts.set_active(session, cli_actor(), username, False, _clock.now_ms())
        typer.echo(f"disabled {user.username}")


@app.command("enable")
def enable(username: str, database_url: DatabaseUrlOption = None) -> None:
    """Enable a disabled user."""
    with _session(database_url) as session:
        user = accounts.set_active(session, cli_actor(), username, True, _clock.now_ms())
        typer.echo(f"enabled {user.username}")


@app.command("set-password")
def set_password(
    username: str, password_stdin: PasswordStdinOption = False, database_url: DatabaseUrlOption = None
) -> None:
    """Set a user's password (their sessions end)."""
    password = _password(password_stdin)
    with _session(database_url) as session:
        user = accounts.set_password(session, cli_actor(), username, password, _clock.now_ms())
        typer.echo(f"password set for {user.username}")


@app.command("set-role")
def set_role(
    username: str,
    role: Annotated[Role, typer.Argument(help="The new role.", case_sensitive=False)],
    school: SchoolOption = None,
    firm: FirmOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Change a user's role and scope (their sessions end)."""
    with _session(database_url) as session:
        user = accounts.set_role(session, cli_actor(), username, role, _clock.now_ms(), school, firm)
        typer.echo(f"{user.username} is now {user.role} ({_scope(user.school_id, user.firm_id)})")


@app.command("create-key")
def create_key(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. 'kiosk sp5 hall'.")],
    role: RoleOption,
    school: SchoolOption = None,
    firm: FirmOption = None,
    expires_days: Annotated[
        int | None,
        typer.Option("--expires-days", min=1, help="Expire after this many days.", show_default=False),
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Make an API key for a machine. The key is printed once; only its digest is kept."""
    now_ms = _clock.now_ms()
    expires_ms = now_ms + expires_days * 86_400_000 if expires_days is not None else None
    with _session(database_url) as session:
        key, text = accounts.create_api_key(
            session,
            cli_actor(),
            name=name,
            role=role,
            now_ms=now_ms,
            school_id=school,
            firm_id=firm,
            expires_ms=expires_ms,
        )
        typer.echo(
            f"key {key.prefix} ({key.role}, {_scope(key.school_id, key.firm_id)}): "
            "keep it now, it is not shown again",
            err=True,
        )
        typer.echo(text)


@app.command("revoke-key")
def revoke_key(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (the 12 characters after lk_).")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke an API key at once."""
    with _session(database_url) as session:
        key = accounts.revoke_api_key(session, cli_actor(), prefix, _clock.now_ms())
        typer.echo(f"revoked key {key.prefix} ({key.name})")


@app.command("keys")
def list_keys(database_url: DatabaseUrlOption = None) -> None:
    """List the API keys (never their text)."""
    with _session(database_url) as session:
        typer.echo("prefix\trole\tscope\tcreated\texpires\trevoked\tname")
        for key in accounts.list_api_keys(session):
            typer.echo(
                f"{key.prefix}\t{key.role}\t{_scope(key.school_id, key.firm_id)}\t{_local(key.created_ms)}\t"
                f"{_local(key.expires_ms)}\t{_local(key.revoked_ms)}\t{key.name}"
            )


@app.command("audit")
def audit_tail(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="How many entries.")] = 50,
    area: Annotated[
        AuditArea | None,
        typer.Option("--area", help="Only this area.", case_sensitive=False, show_default=False),
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """The newest entries of the audit log, oldest first (Europe/Warsaw time)."""
    with _session(database_url) as session:
        entries = recent_entries(session, {area.value} if area is not None else None, limit)
        for entry in reversed(entries):
            details = " ".join(f"{key}={value}" for key, value in sorted(entry.details.items()))
            actor = (
                entry.actor_name if entry.actor_kind == "cli" else f"{entry.actor_kind}:{entry.actor_name}"
            )
            typer.echo(
                f"{_local(entry.at_ms)}\t{actor}\t{entry.client_ip or '-'}\t"
                f"{entry.action}\t{entry.target}\t{details}".rstrip()
            )
