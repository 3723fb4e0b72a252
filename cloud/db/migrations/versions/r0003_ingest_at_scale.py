"""The ingest at scale: health events and their states, counter corrections, the ingest workers' counters and
the time-series outbox.

Revision ID: 0003
Revises: 0001 (branches beside 0002; a merge revision joins them)
Create Date: 2026-11-27 04:42:10.017765
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_workers",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("group_name", sa.String(length=64), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_ms", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("readings", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("dead_letters", sa.BigInteger(), nullable=False),
        sa.Column("refused_readings", sa.BigInteger(), nullable=False),
        sa.Column("statuses", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("corrections", sa.BigInteger(), nullable=False),
        sa.Column("intervals", sa.BigInteger(), nullable=False),
        sa.Column("transactions", sa.BigInteger(), nullable=False),
        sa.Column("newest_ts_ms", sa.BigInteger(), nullable=True),
        sa.Column("commit_lag_ms", sa.BigInteger(), nullable=True),
        sa.Column("lag_histogram", sa.JSON(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("timeseries_lines", sa.BigInteger(), nullable=False),
        sa.Column("timeseries_batches", sa.BigInteger(), nullable=False),
        sa.Column("timeseries_failures", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_ingest_workers")),
    )
    op.create_table(
        "timeseries_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeseries_outbox")),
    )
    op.create_table(
        "counter_corrections",
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.String(length=48), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("correction", sa.String(length=16), nullable=False),
        sa.Column("previous_ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("previous_wh", sa.Float(), nullable=False),
        sa.Column("value_wh", sa.Float(), nullable=False),
        sa.Column("counted_wh", sa.Float(), nullable=False),
        sa.Column("detected_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_counter_corrections_school_id_schools")
        ),
        sa.PrimaryKeyConstraint(
            "school_id", "device_id", "quantity", "ts_ms", name=op.f("pk_counter_corrections")
        ),
    )
    op.create_index("ix_counter_corrections_school_ts", "counter_corrections", ["school_id", "ts_ms"])

    op.create_table(
        "event_states",
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("since_ms", sa.BigInteger(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("message_pl", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_event_states_school_id_schools")
        ),
        sa.PrimaryKeyConstraint("school_id", "device_id", "code", name=op.f("pk_event_states")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=True),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("message_pl", sa.String(length=500), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], name=op.f("fk_events_school_id_schools")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("school_id", "stream", "seq", name=op.f("uq_events_school_id_stream_seq")),
    )
    op.create_index("ix_events_school_ts", "events", ["school_id", "ts_ms"])


def downgrade() -> None:
    op.drop_index("ix_events_school_ts", table_name="events")

    op.drop_table("events")
    op.drop_table("event_states")
    op.drop_index("ix_counter_corrections_school_ts", table_name="counter_corrections")

    op.drop_table("counter_corrections")
    op.drop_table("timeseries_outbox")
    op.drop_table("ingest_workers")
