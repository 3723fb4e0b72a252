"""The Stop Smog calculator's addresses and networks and the residents' applications; joins the auth (0002)
and ingest (0003) branches into one history.

Revision ID: 0004
Revises: 0002, 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = ("0002", "0003")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "smog_addresses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("postcode", sa.String(length=6), nullable=False),
        sa.Column("search_key", sa.String(length=250), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("distance_gas_m", sa.Float(), nullable=True),
        sa.Column("distance_heat_m", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smog_addresses")),
    )
    op.create_index(op.f("ix_smog_addresses_search_key"), "smog_addresses", ["search_key"], unique=False)
    op.create_table(
        "smog_applications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("case_number", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("heat_source", sa.String(length=32), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("status_token_sha256", sa.String(length=64), nullable=False),
        sa.Column("status_token_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("idempotency_key_sha256", sa.String(length=64), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("personal_data_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("proof_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("proof_content_type", sa.String(length=40), nullable=False),
        sa.Column("proof_size_bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smog_applications")),
        sa.UniqueConstraint("case_number"),
        sa.UniqueConstraint("idempotency_key_sha256"),
        sa.UniqueConstraint("status_token_sha256"),
        sa.UniqueConstraint("year", "sequence", name=op.f("uq_smog_applications_year_sequence")),
    )
    op.create_index(
        op.f("ix_smog_applications_created_ms"), "smog_applications", ["created_ms"], unique=False
    )
    op.create_index(
        op.f("ix_smog_applications_heat_source"), "smog_applications", ["heat_source"], unique=False
    )
    op.create_index(op.f("ix_smog_applications_status"), "smog_applications", ["status"], unique=False)
    op.create_index(
        op.f("ix_smog_applications_updated_ms"), "smog_applications", ["updated_ms"], unique=False
    )
    op.create_table(
        "smog_networks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("geometry", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smog_networks")),
    )
    op.create_index("ix_smog_networks_kind", "smog_networks", ["kind"], unique=False)
    op.create_table(
        "smog_application_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["smog_applications.id"],
            name=op.f("fk_smog_application_events_application_id_smog_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smog_application_events")),
    )
    op.create_index(
        op.f("ix_smog_application_events_application_id"),
        "smog_application_events",
        ["application_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_smog_application_events_application_id"), table_name="smog_application_events")
    op.drop_table("smog_application_events")
    op.drop_index("ix_smog_networks_kind", table_name="smog_networks")
    op.drop_table("smog_networks")
    op.drop_index(op.f("ix_smog_applications_updated_ms"), table_name="smog_applications")
    op.drop_index(op.f("ix_smog_applications_status"), table_name="smog_applications")
    op.drop_index(op.f("ix_smog_applications_heat_source"), table_name="smog_applications")
    op.drop_index(op.f("ix_smog_applications_created_ms"), table_name="smog_applications")
    op.drop_table("smog_applications")
    op.drop_index(op.f("ix_smog_addresses_search_key"), table_name="smog_addresses")
    op.drop_table("smog_addresses")
