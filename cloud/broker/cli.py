"""`lokalnie broker ...`: the commands the city's IT runs to create the broker's CA and certificates, the
users and passwords of the schools and services, and the ACL. Each command says which files it wrote; bad
input is refused with one line and exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cloud.broker import pki
from cloud.broker.credentials import (
    CredentialsError,
    CredentialStore,
    Outcome,
    ensure_credentials,
    rotate_password,
    write_acl,
)
from cloud.broker.files import SecretsLayout
from cloud.broker.users import MAX_INGEST_WORKERS, edge_username
from common.config import ConfigError
from common.sites import load_sites

EXIT_BAD_INPUT = 2
RELOAD_HINT = "reload the broker to apply it: docker compose kill -s HUP mosquitto (in deploy/)"

app = typer.Typer(
    help="The MQTT broker's CA, certificates, users, passwords and ACL: files for Mosquitto and the schools.",
    no_args_is_help=True,
)

SecretsOption = Annotated[
    Path,
    typer.Option(
        "--secrets",
        "--out",
        envvar="LOKALNIE_SECRETS_DIR",
        help="The secrets directory, outside git (deploy/secrets/ is ignored by git).",
    ),
]
SitesOption = Annotated[
    Path,
    typer.Option("--sites", envvar="LOKALNIE_SITES_DIR", help="Directory of the schools' site files."),
]
DaysOption = Annotated[int | None, typer.Option("--days", help="Validity in days.", show_default=False)]
DEFAULT_SECRETS = Path("deploy/secrets")
DEFAULT_SITES = Path("firmware-config/sites")


@app.command("pki-init")
def pki_init(
    secrets: SecretsOption = DEFAULT_SECRETS,
    name: Annotated[str, typer.Option("--name", help="The CA's common name.")] = pki.DEFAULT_CA_NAME,
    days: DaysOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing CA (every certificate it signed stops working)."),
    ] = False,
) -> None:
    """Create the city's certificate authority (key, certificate, empty revocation list)."""
    layout = SecretsLayout(secrets)
    with _refusals():
        written = pki.create_ca(layout, common_name=name, days=days or pki.CA_VALIDITY_DAYS, force=force)
    _report(written)
    typer.echo(
        f"keep a copy of {layout.ca_key} offline: it signs every certificate of the broker and the schools"
    )


@app.command("server-cert")
def server_cert(
    host: Annotated[
        list[str],
        typer.Option(
            "--host",
            help="A DNS name or IP address the schools reach the broker at (repeat it); "
            f"{', '.join(pki.DEFAULT_SERVER_HOSTS)} are always added.",
        ),
    ],
    secrets: SecretsOption = DEFAULT_SECRETS,
    days: DaysOption = None,
) -> None:
    """Issue the broker's TLS certificate, signed by the city's CA."""
    with _refusals():
        written = pki.issue_server_cert(SecretsLayout(secrets), host, days=days or pki.LEAF_VALIDITY_DAYS)
    _report(written)
    typer.echo(RELOAD_HINT)


@app.command("client-cert")
def client_cert(
    user: Annotated[str, typer.Argument(help="The MQTT user, e.g. edge-sp5 (or the school id, sp5).")],
    secrets: SecretsOption = DEFAULT_SECRETS,
    days: DaysOption = None,
) -> None:
    """Issue a client certificate named after the MQTT user (logs in on port 8884 without a password)."""
    layout = SecretsLayout(secrets)
    with _refusals():
        username = _known_user(layout, user)
        written = pki.issue_client_cert(layout, username, days=days or pki.LEAF_VALIDITY_DAYS)
    _report(written)


@app.command("revoke-cert")
def revoke_cert(
    user: Annotated[
        str, typer.Argument(help="The MQTT user whose certificates to revoke (or the school id).")
    ],
    secrets: SecretsOption = DEFAULT_SECRETS,
) -> None:
    """Revoke every client certificate of a user (the revocation list is rewritten)."""
    layout = SecretsLayout(secrets)
    with _refusals():
        username = _known_user(layout, user)
        written = pki.revoke_client_certs(layout, username)
    _report(written)
    typer.echo(RELOAD_HINT)


@app.command("credentials")
def credentials(
    sites: SitesOption = DEFAULT_SITES,
    secrets: SecretsOption = DEFAULT_SECRETS,
    broker_url: Annotated[
        str | None,
        typer.Option(
            "--broker-url",
            help="mqtts://host:port the schools reach the broker at (needed the first time, then kept).",
            show_default=False,
        ),
    ] = None,
    ingest_workers: Annotated[
        int | None,
        typer.Option(
            "--ingest-workers",
            min=1,
            max=MAX_INGEST_WORKERS,
            help="How many ingest workers get a user [default: as before, or 2].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create the users and passwords that are missing (keeping the others) and write the broker's password
    and ACL files, each school's edge.env and each service's environment file."""
    layout = SecretsLayout(secrets)
    with _refusals():
        school_ids = [site.id for site in load_sites(sites)]
        outcome = ensure_credentials(layout, school_ids, broker_url=broker_url, ingest_workers=ingest_workers)
    _report_outcome(outcome)
    typer.echo(f"{len(school_ids)} schools; copy schools/<school>/edge.env and ca.crt to each school's Pi")
    if outcome.written:
        typer.echo(RELOAD_HINT)


@app.command("rotate")
def rotate(
    name: Annotated[str, typer.Argument(help="A school id (sp5) or a user name (lokalnie-ingest-1).")],
    secrets: SecretsOption = DEFAULT_SECRETS,
) -> None:
    """Give one school (or user) a new password; the others are not touched."""
    with _refusals():
        outcome = rotate_password(SecretsLayout(secrets), name)
    _report_outcome(outcome)
    typer.echo(f"{RELOAD_HINT}; until then the old password still works, afterwards only the new one")


@app.command("acl")
def acl(sites: SitesOption = DEFAULT_SITES, secrets: SecretsOption = DEFAULT_SECRETS) -> None:
    """Write the broker's ACL file from the site files."""
    with _refusals():
        outcome = write_acl(SecretsLayout(secrets), [site.id for site in load_sites(sites)])
    _report_outcome(outcome)
    if outcome.written:
        typer.echo(RELOAD_HINT)


def _known_user(layout: SecretsLayout, name: str) -> str:
    users = CredentialStore.load(layout.credentials).users
    for candidate in (name, edge_username(name)):
        if candidate in users:
            return candidate
    raise CredentialsError(f"unknown school or user {name!r} (run 'lokalnie broker credentials' first?)")


@contextmanager
def _refusals() -> Iterator[None]:
    """One line on standard error and exit code 2 for what the person running the command must fix."""
    try:
        yield
    except (pki.PkiError, CredentialsError, ConfigError) as error:
        _refuse(str(error))
    except OSError as error:
        _refuse(f"{error.filename or ''}: {error.strerror or error}".lstrip(": "))


def _refuse(reason: str) -> NoReturn:
    typer.echo(f"error: {reason}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _report(paths: list[Path]) -> None:
    for path in dict.fromkeys(paths):
        typer.echo(f"wrote {path}")


def _report_outcome(outcome: Outcome) -> None:
    for name in outcome.created:
        typer.echo(f"new user {name}")
    for name in outcome.removed:
        typer.echo(f"removed user {name} (no longer in the site files)")
    _report(outcome.written)
    if outcome.unchanged:
        typer.echo(f"{len(outcome.unchanged)} files unchanged")
