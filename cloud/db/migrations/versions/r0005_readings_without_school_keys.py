"""The readings' tables lose what each inserted row paid for and nothing used: samples, counter readings and
intervals have no foreign key to schools any more (see `cloud.db.models` for why), a sample's key is its edge
row ``(school_id, stream, seq)`` instead of a surrogate number, and counter readings lose their index by
school and time (every query names the counter, which the primary key serves).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCHOOL_KEYS = {
    "samples": "fk_samples_school_id_schools",
    "counter_readings": "fk_counter_readings_school_id_schools",
    "intervals": "fk_intervals_school_id_schools",
}


def upgrade() -> None:
    op.drop_index("ix_counter_readings_school_ts", table_name="counter_readings")
    if op.get_bind().dialect.name == "postgresql":
        for table, key in _SCHOOL_KEYS.items():
            op.drop_constraint(key, table, type_="foreignkey")
        op.drop_constraint("pk_samples", "samples", type_="primary")
        op.drop_column("samples", "id")
        # Builds the key's index once over the whole table (minutes for a year of a city's samples).
        op.create_primary_key("pk_samples", "samples", ["school_id", "stream", "seq"])
        op.drop_constraint("uq_samples_school_id_stream_seq", "samples", type_="unique")
        return
    # SQLite alters a table by copying it into a new one.
    for table, key in _SCHOOL_KEYS.items():
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_constraint(key, type_="foreignkey")
            if table == "samples":
                batch.drop_constraint("uq_samples_school_id_stream_seq", type_="unique")
                batch.drop_constraint("pk_samples", type_="primary")
                batch.drop_column("id")
                batch.create_primary_key("pk_samples", ["school_id", "stream", "seq"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_samples", "samples", type_="primary")
        op.create_unique_constraint(
            "uq_samples_school_id_stream_seq", "samples", ["school_id", "stream", "seq"]
        )
        op.execute("ALTER TABLE samples ADD COLUMN id BIGSERIAL CONSTRAINT pk_samples PRIMARY KEY")
    else:
        with op.batch_alter_table("samples", recreate="always") as batch:
            batch.drop_constraint("pk_samples", type_="primary")
            # The copy leaves it out, and SQLite numbers the rows.
            batch.add_column(sa.Column("id", sa.Integer(), nullable=False))
            batch.create_primary_key("pk_samples", ["id"])
            batch.create_unique_constraint("uq_samples_school_id_stream_seq", ["school_id", "stream", "seq"])
    for table, key in _SCHOOL_KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(key, "schools", ["school_id"], ["id"])
    op.create_index("ix_counter_readings_school_ts", "counter_readings", ["school_id", "ts_ms"])
