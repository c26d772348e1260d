"""The widget (issue 14): the clinic's accent colour, logo and feedback setting, patients' feedback
on answers, and answers found by id in the audit trail.

A SQLite file that the widget's first release opened already has exactly this (it added them
itself, before migrations): ``pht-assistant db upgrade`` records such a file at this revision.

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
        batch.add_column(sa.Column("accent_color", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("logo_url", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("feedback_questions", sa.Integer, nullable=False, server_default="0"))
    op.create_index("audit_answer", "audit", ["answer_id"])
    op.create_table(
        "feedback",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("clinic_id", sa.Text, nullable=False),
        sa.Column("answer_id", sa.Text, nullable=False),
        sa.Column("rating", sa.Text, sa.CheckConstraint("rating IN ('up', 'down')"), nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("question", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("time", sa.Text, nullable=False),
        sa.Column("updated", sa.Text, nullable=False),
        sa.UniqueConstraint("clinic_id", "answer_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_index("audit_answer", table_name="audit")
    with op.batch_alter_table("clinics") as batch:
        batch.drop_column("feedback_questions")
        batch.drop_column("logo_url")
        batch.drop_column("accent_color")
