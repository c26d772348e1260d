"""Schema migrations of the clinics registry (Alembic), and the check a server makes before it starts.

``pht-assistant db upgrade`` runs :func:`upgrade`; every registry checks the database's revision
when it opens (:func:`check`) and refuses one it does not know, with the command to run. A new
table is one file in ``migrations/versions`` (the next revision) plus the registry's methods;
:data:`HEAD` names the newest revision so that opening a registry at head imports no Alembic.

>>> HEAD
'0005'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from assistant.errors import RegistrySchemaError

HEAD = "0005"  # the newest file in migrations/versions (a test keeps them equal)
# SQLite files made before migrations have no alembic_version: one without the widget's feedback
# table has revision 0001's tables (or some of them); one the widget's first release opened, 0002's
# (one the single-file release with clinics' language models opened also has 0004's columns, which
# that migration then leaves as they are).
LEGACY = "0001"
LEGACY_WIDGET = "0002"
_LEGACY_TABLES = """
CREATE TABLE IF NOT EXISTS clinics (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, emergency_text TEXT NOT NULL DEFAULT '',
    allowed_origins TEXT NOT NULL DEFAULT '[]', created TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, clinic_id TEXT NOT NULL REFERENCES clinics(id), hash TEXT NOT NULL,
    kind TEXT NOT NULL, created TEXT NOT NULL, revoked TEXT
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, clinic_id TEXT NOT NULL REFERENCES clinics(id), filename TEXT NOT NULL,
    title TEXT NOT NULL, media_type TEXT NOT NULL, text TEXT NOT NULL, version TEXT NOT NULL,
    sections TEXT NOT NULL, uploaded TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'draft',
    approved_by TEXT, approved_at TEXT, approved_version TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, clinic_id TEXT NOT NULL,
    answer_id TEXT NOT NULL, status TEXT NOT NULL, triage TEXT NOT NULL, sources TEXT NOT NULL,
    corpus_version TEXT NOT NULL, composer TEXT NOT NULL, model TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_clinic ON audit (clinic_id, id);
"""
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def display_url(url: str | sa.URL) -> str:
    """The database's address without its password, for messages and logs.

    >>> display_url("postgresql+psycopg://pht:secret@db.example:5432/pht")
    'postgresql+psycopg://pht:***@db.example:5432/pht'
    """
    return sa.make_url(url).render_as_string(hide_password=True)


def database_url(url: str | sa.URL) -> sa.URL:
    """``url`` with the psycopg driver named when it says only ``postgresql://``.

    >>> database_url("postgresql://pht@db/pht").drivername
    'postgresql+psycopg'
    """
    parsed = sa.make_url(url)
    return parsed.set(drivername="postgresql+psycopg") if parsed.drivername == "postgresql" else parsed


def current_revision(conn: sa.Connection) -> str | None:
    """The database's revision: Alembic's record, :data:`LEGACY` or :data:`LEGACY_WIDGET` for a
    file made before migrations, or ``None`` for an empty database."""
    names = set(sa.inspect(conn).get_table_names())
    if "alembic_version" in names:
        row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).first()
        if row is not None:
            return row[0]
    if "clinics" not in names:
        return None
    return LEGACY_WIDGET if "feedback" in names else LEGACY


def known_revisions() -> list[str]:
    """Every revision of this version's migrations, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def check(conn: sa.Connection, where: str, *, older: bool = False) -> str | None:
    """The database's revision if this version can use it: :data:`HEAD`, ``None`` (empty, for the
    caller to create), or with ``older=True`` an older revision it knows (for the caller to
    upgrade). Otherwise a :class:`RegistrySchemaError` saying what to run."""
    revision = current_revision(conn)
    if revision in (HEAD, None):
        return revision
    if revision in known_revisions():
        if older:
            return revision
        raise RegistrySchemaError(
            f"The clinics database at {where} has an older schema (revision {revision}, this version "
            f"needs {HEAD}); back it up, then run `pht-assistant db upgrade`."
        )
    raise RegistrySchemaError(
        f"The clinics database at {where} has schema revision {revision}, which this version of "
        "PHT Assistant does not know (a newer version made it); upgrade PHT Assistant on this machine, "
        "or point PHT_DATABASE_URL at the right database."
    )


def upgrade(url: str | sa.URL, *, notify: Callable[[str], None] | None = None) -> tuple[str | None, str]:
    """Bring the database at ``url`` to :data:`HEAD`; returns ``(before, after)`` revisions.

    A SQLite file made before migrations is first completed with any of revision 0001's tables it
    lacks and recorded at its revision (:func:`current_revision`).
    """
    from alembic import command
    from alembic.config import Config

    engine = sa.create_engine(database_url(url), poolclass=sa.pool.NullPool)
    say = notify or (lambda message: None)
    try:
        with engine.begin() as conn:
            before = current_revision(conn)
            if before is not None and before not in known_revisions():
                check(conn, display_url(url))  # raises: a newer version's database
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            if before is not None and not sa.inspect(conn).has_table("alembic_version"):
                if before == LEGACY and conn.dialect.name == "sqlite":
                    for statement in _LEGACY_TABLES.split(";"):
                        if statement.strip():
                            conn.exec_driver_sql(statement)
                say(f"Recording the existing tables as revision {before}.")
                command.stamp(cfg, before)
            if before != HEAD:
                say(f"Upgrading the clinics database from {before or 'empty'} to {HEAD}.")
                command.upgrade(cfg, "head")
        return before, HEAD
    except sa.exc.OperationalError as exc:
        from assistant.errors import RegistryUnavailable

        raise RegistryUnavailable(
            f"The clinics database at {display_url(url)} cannot be reached ({type(exc.orig).__name__}); "
            "check PHT_DATABASE_URL and that the server is running."
        ) from None
    finally:
        engine.dispose()
