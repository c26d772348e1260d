"""A clinic's own language model (issue 16): its endpoint, model and key on ``clinics``, and the
version of the prompt a language model wrote each reply with on ``audit``.

The single-file SQLite registry of issue 16's first release added these columns itself, before
it had migrations: such a file is recorded at revision 0002 (it has the widget's tables) and this
migration adds only the columns it still lacks.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = {
    "clinics": ("llm_base_url", "llm_model", "llm_api_key"),
    "audit": ("prompt_version",),
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, names in COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        missing = [name for name in names if name not in have]
        if missing:
            with op.batch_alter_table(table) as batch:
                for name in missing:
                    batch.add_column(sa.Column(name, sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    for table, names in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name in reversed(names):
                batch.drop_column(name)
