"""Alembic's environment for the cloud's store: runs the revisions in ``versions/`` on the connection that
`cloud.db.migrate` hands over (or on ``sqlalchemy.url`` when Alembic is driven some other way)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cloud.db.engine import make_engine
from cloud.db.schema import all_tables

# Any constant: PostgreSQL's advisory lock keeps two processes starting at once from migrating together.
_MIGRATION_LOCK_ID = 4_242_001


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=all_tables(),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})")
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the cloud's migrations run online only, on a connection")
_run_online()
