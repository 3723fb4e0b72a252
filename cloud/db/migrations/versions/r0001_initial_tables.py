"""The initial tables: schools, devices, samples, counter readings, intervals, links and dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 03:30:41.631696
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index("ix_dead_letters_received", "dead_letters", ["received_ms"])

    op.create_table(
        "schools",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("pv_kwp", sa.Float(), nullable=False),
        sa.Column("pupils", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schools")),
    )
    op.create_table(
        "counter_readings",
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.String(length=48), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value_wh", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_counter_readings_school_id_schools")
        ),
        sa.PrimaryKeyConstraint(
            "school_id", "device_id", "quantity", "ts_ms", name=op.f("pk_counter_readings")
        ),
    )
    op.create_index("ix_counter_readings_school_ts", "counter_readings", ["school_id", "ts_ms"])

    op.create_table(
        "devices",
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], name=op.f("fk_devices_school_id_schools")),
        sa.PrimaryKeyConstraint("school_id", "device_id", name=op.f("pk_devices")),
    )
    op.create_table(
        "intervals",
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("pv_wh", sa.Float(), nullable=False),
        sa.Column("import_wh", sa.Float(), nullable=False),
        sa.Column("export_wh", sa.Float(), nullable=False),
        sa.Column("consumption_wh", sa.Float(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], name=op.f("fk_intervals_school_id_schools")),
        sa.PrimaryKeyConstraint("school_id", "start_ms", name=op.f("pk_intervals")),
    )
    op.create_table(
        "links",
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], name=op.f("fk_links_school_id_schools")),
        sa.PrimaryKeyConstraint("school_id", name=op.f("pk_links")),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("school_id", sa.String(length=32), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("backfill", sa.Boolean(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], name=op.f("fk_samples_school_id_schools")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_samples")),
        sa.UniqueConstraint("school_id", "stream", "seq", name=op.f("uq_samples_school_id_stream_seq")),
    )
    op.create_index("ix_samples_school_device_ts", "samples", ["school_id", "device_id", "ts_ms"])


def downgrade() -> None:
    op.drop_index("ix_samples_school_device_ts", table_name="samples")

    op.drop_table("samples")
    op.drop_table("links")
    op.drop_table("intervals")
    op.drop_table("devices")
    op.drop_index("ix_counter_readings_school_ts", table_name="counter_readings")

    op.drop_table("counter_readings")
    op.drop_table("schools")
    op.drop_index("ix_dead_letters_received", table_name="dead_letters")

    op.drop_table("dead_letters")
