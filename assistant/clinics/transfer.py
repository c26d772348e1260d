"""Move a single machine's SQLite registry into PostgreSQL: ``pht-assistant db import-sqlite``.

Every row of every table is copied as it is (ids, key hashes, times, audit numbering), in one
transaction: the PostgreSQL database ends with all of it or none of it. The SQLite file is opened
read-only and left as it was (keep it as the backup of the move). A file of any earlier revision
is read (columns it lacks take their defaults); a PostgreSQL database that already holds clinics
is refused, so nothing is copied twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from assistant.clinics import schema as t
from assistant.clinics.migrate import current_revision, database_url, display_url, known_revisions, upgrade
from assistant.errors import ClinicError, RegistryUnavailable

BATCH = 1000


def import_sqlite(
    source: Path,
    target_url: str,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Copy the registry in the SQLite file ``source`` into the database at ``target_url`` (made
    or upgraded to the current schema first). Returns the rows copied per table, checked by
    counting both sides. ``progress(table, done, total)`` is called after each batch."""
    source = Path(source)
    if not source.is_file():
        raise ClinicError(
            f"There is no SQLite registry at {source}; give its path (by default it is clinics.sqlite3 in the data folder, PHT_DATA_DIR)."
        )
    src = sa.create_engine(f"sqlite:///file:{source}?mode=ro&uri=true", poolclass=sa.pool.NullPool)
    where = display_url(target_url)
    try:
        with src.connect() as s:
            revision = current_revision(s)
            if revision is None:
                raise ClinicError(f"{source} holds no clinics registry (no clinics table); check the path.")
            if revision not in known_revisions():
                raise ClinicError(
                    f"{source} was made by a newer version of PHT Assistant (schema revision {revision}); "
                    "upgrade PHT Assistant on this machine first."
                )
            present = {name: {c["name"] for c in sa.inspect(s).get_columns(name)} for name in sa.inspect(s).get_table_names()}
            upgrade(target_url, notify=notify)
            dst = sa.create_engine(database_url(target_url), poolclass=sa.pool.NullPool)
            try:
                with dst.begin() as d:
                    if d.execute(sa.select(sa.func.count()).select_from(t.clinics)).scalar():
                        raise ClinicError(
                            f"The database at {where} already has clinics; import into an empty database "
                            "(create one, run `pht-assistant db upgrade`, then import again)."
                        )
                    copied = {}
                    for table in t.TABLES:
                        copied[table.name] = _copy(s, d, table, present.get(table.name), progress)
                    if d.dialect.name == "postgresql":
                        for table in (t.audit, t.feedback):  # new rows are numbered after the copied ones
                            d.execute(
                                sa.text(
                                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                    f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                                )
                            )
                    for table in t.TABLES:
                        there = d.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                        if there != copied[table.name]:
                            raise ClinicError(
                                f"Copying {table.name} gave {there} rows for {copied[table.name]}; nothing was kept, run the import again."
                            )
            finally:
                dst.dispose()
    except sa.exc.OperationalError as exc:
        raise RegistryUnavailable(
            f"The import could not reach a database ({type(exc.orig).__name__}); check {source} and that "
            f"the server at {where} is running."
        ) from None
    finally:
        src.dispose()
    return copied


def _copy(
    s: sa.Connection,
    d: sa.Connection,
    table: sa.Table,
    columns: set[str] | None,
    progress: Callable[[str, int, int], None] | None,
) -> int:
    if not columns:
        return 0  # a table the source's revision did not have yet
    shared = [c for c in table.columns if c.name in columns]
    total = s.execute(sa.text(f"SELECT COUNT(*) FROM {table.name}")).scalar() or 0
    query = sa.select(*[sa.column(c.name) for c in shared]).select_from(sa.table(table.name))
    order = [sa.column(c.name) for c in table.primary_key.columns]
    done = 0
    result = s.execution_options(stream_results=True).execute(query.order_by(*order))
    while rows := result.fetchmany(BATCH):
        d.execute(table.insert(), [dict(r._mapping) for r in rows])
        done += len(rows)
        if progress is not None:
            progress(table.name, done, total)
    return done
