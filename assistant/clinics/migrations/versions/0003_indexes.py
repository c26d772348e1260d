"""Indexes for several workers: a clinic's keys, its documents by status, its feedback by id.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("keys_clinic", "keys", ["clinic_id"])
    op.create_index("documents_clinic", "documents", ["clinic_id", "status"])
    op.create_index("feedback_clinic", "feedback", ["clinic_id", "id"])


def downgrade() -> None:
    op.drop_index("feedback_clinic", table_name="feedback")
    op.drop_index("documents_clinic", table_name="documents")
    op.drop_index("keys_clinic", table_name="keys")
