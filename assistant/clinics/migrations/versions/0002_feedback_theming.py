"""Feedback on answers, the clinic's theming (accent colour, logo), indexes for keys and documents.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("clinics") as batch:
        batch.add_column(sa.Column("accent_color", sa.Text, nullable=True))
        batch.add_column(sa.Column("logo_url", sa.Text, nullable=True))
    op.create_index("keys_clinic", "keys", ["clinic_id"])
    op.create_index("documents_clinic", "documents", ["clinic_id", "status"])
    op.create_table(
        "feedback",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("clinic_id", sa.Text, nullable=False),
        sa.Column("answer_id", sa.Text, nullable=False),
        sa.Column("rating", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("question", sa.Text, nullable=True),
        sa.Column("created", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("feedback_clinic", "feedback", ["clinic_id", "id"])


def downgrade() -> None:
    op.drop_index("feedback_clinic", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("documents_clinic", table_name="documents")
    op.drop_index("keys_clinic", table_name="keys")
    with op.batch_alter_table("clinics") as batch:
        batch.drop_column("logo_url")
        batch.drop_column("accent_color")
