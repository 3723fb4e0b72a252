"""Each ingest worker records when the broker's TLS certificate expires (`cloud.ingest.certificate`).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ingest_workers", sa.Column("broker_cert_not_after_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingest_workers") as table:
        table.drop_column("broker_cert_not_after_ms")
