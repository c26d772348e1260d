"""Approvals as jobs and passages held back (issue 19): ``approval_jobs``, one row per approval,
with a unique index that lets one approval of a document run at a time; ``documents.flags``, the
passages held back until the reviewer confirms them.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RUNNING = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("flags", sa.Text, nullable=False, server_default="[]"))
    op.create_table(
        "approval_jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("clinic_id", sa.Text, nullable=False),
        sa.Column("doc_id", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("confirm", sa.Text, nullable=False, server_default="[]"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("started", sa.Text, nullable=True),
        sa.Column("finished", sa.Text, nullable=True),
        sa.Column("heartbeat", sa.Float, nullable=False),
        sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("message", sa.Text, nullable=True),
    )
    op.create_index(
        "approval_jobs_one_per_document",
        "approval_jobs",
        ["doc_id"],
        unique=True,
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )
    op.create_index("approval_jobs_clinic", "approval_jobs", ["clinic_id", "doc_id", "created"])


def downgrade() -> None:
    op.drop_index("approval_jobs_clinic", table_name="approval_jobs")
    op.drop_index("approval_jobs_one_per_document", table_name="approval_jobs")
    op.drop_table("approval_jobs")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("flags")
