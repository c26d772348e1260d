"""Alembic's environment for the clinics registry: run by :mod:`assistant.clinics.migrate`, which
passes an open connection (``config.attributes["connection"]``); there is no alembic.ini."""

from __future__ import annotations

from alembic import context

from assistant.clinics.schema import METADATA

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=METADATA,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
