"""The registry as it was before migrations: clinics, keys, documents and audit.

A SQLite file made before Alembic has exactly these tables and no ``alembic_version``;
``pht-assistant db upgrade`` records it at this revision and goes on from there.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "clinics",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("emergency_text", sa.Text, nullable=False, server_default=""),
        sa.Column("allowed_origins", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("clinic_id", sa.Text, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("revoked", sa.Text, nullable=True),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("clinic_id", sa.Text, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("media_type", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("sections", sa.Text, nullable=False),
        sa.Column("uploaded", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="draft"),
        sa.Column("approved_by", sa.Text, nullable=True),
        sa.Column("approved_at", sa.Text, nullable=True),
        sa.Column("approved_version", sa.Text, nullable=True),
    )
    op.create_table(
        "audit",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Text, nullable=False),
        sa.Column("clinic_id", sa.Text, nullable=False),
        sa.Column("answer_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("triage", sa.Text, nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("corpus_version", sa.Text, nullable=False),
        sa.Column("composer", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("audit_clinic", "audit", ["clinic_id", "id"])


def downgrade() -> None:
    op.drop_index("audit_clinic", table_name="audit")
    for table in ("audit", "documents", "keys", "clinics"):
        op.drop_table(table)
