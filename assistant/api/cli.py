"""``pht-assistant serve``, ``clinic`` and ``key``: the HTTP API and its clinics and keys.

Only Typer loads here; FastAPI, uvicorn and Chroma load inside ``serve``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from assistant.errors import AssistantError

clinic_app = typer.Typer(help="Clinics that use the HTTP API.", no_args_is_help=True)
key_app = typer.Typer(help="API keys of clinics (shown once, stored only as a hash).", no_args_is_help=True)
db_app = typer.Typer(
    help="The clinics database: SQLite by default, PostgreSQL with PHT_DATABASE_URL (docs/deploy.md).",
    no_args_is_help=True,
)


def _registry():
    from assistant.clinics.registry import open_registry
    from assistant.settings import get_settings

    settings = get_settings()
    if not settings.database_url:
        from assistant.index.embedded import check_data_dir

        check_data_dir(settings.data_dir)
    return open_registry(settings)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (more than 1 needs PHT_CHROMA_URL).")
    ] = 1,
) -> None:
    """Start the clinics' HTTP API (docs at /docs). Ctrl-C stops it."""
    from assistant.settings import get_settings

    settings = get_settings()
    if workers > 1 and not settings.chroma_url:
        raise AssistantError(
            f"The embedded store takes one writing process, so --workers {workers} needs a Chroma server: "
            "start one with `chroma run --path DIR --host 127.0.0.1 --port 8000` and set "
            "PHT_CHROMA_URL=http://127.0.0.1:8000 (or serve with --workers 1)."
        )
    registry = _registry()  # refuses a database whose schema this version does not know, with what to run
    registry.close()
    if settings.redis_url:
        _say_if_redis_is_away(settings)
    if settings.chroma_url:
        from assistant.errors import StoreUnavailable
        from assistant.index.store import Store

        if not Store(url=settings.chroma_url, timeout=settings.store_timeout).heartbeat():
            raise StoreUnavailable(
                f"The Chroma server at {settings.chroma_url} does not answer; start it with "
                "`chroma run --path DIR --host 127.0.0.1 --port N`, or unset PHT_CHROMA_URL to use the embedded store."
            )
    else:
        from assistant.index.store import Store

        store = Store.from_settings(settings)
        store.claim()  # a second server on the same data folder is told so now, not at its first upload
        store.release()
    import uvicorn

    from assistant.api.connections import GuardedProtocol

    typer.echo(
        f"Serving the PHT Assistant API on http://{host}:{port} (docs at /docs); Ctrl-C stops it.", err=True
    )
    uvicorn.run(
        "assistant.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # ours carries no query string, body or key
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
        # header and body time limits, connection caps, error bodies with the notice (api/connections.py)
        http=GuardedProtocol,
        timeout_keep_alive=settings.api_keepalive_timeout,
    )


def _say_if_redis_is_away(settings) -> None:
    """Redis away at start is not fatal (each worker counts alone until it returns): say so once."""
    import redis

    try:
        redis.Redis.from_url(
            settings.redis_url, socket_timeout=settings.redis_timeout, socket_connect_timeout=settings.redis_timeout
        ).ping()
    except Exception:
        typer.echo(
            f"Redis at {settings.redis_url.split('@')[-1]} does not answer: starting anyway; each worker counts "
            "its own requests until it does (see /v1/health).",
            err=True,
        )


_ACCENT = typer.Option(help="The widget's accent colour, e.g. '#0b7285' (hex).")
_LOGO = typer.Option(help="An http(s) address of the clinic's logo, shown in the widget's header.")
_QUESTIONS = typer.Option(
    "--feedback-questions/--no-feedback-questions",
    help="Keep the question a patient rated with their feedback (off by default: only the rating, "
    "the comment and the answer's status and sources are kept).",
)


_LLM_URL = typer.Option(
    help="The clinic's own OpenAI-compatible language-model endpoint (e.g. http://10.0.0.5:8000/v1): it writes "
    "this clinic's replies, each sentence checked against its sources. Empty: the server's composer."
)
_LLM_MODEL = typer.Option(help="The model's name at that endpoint.")
_LLM_KEY = typer.Option(
    help="The endpoint's key, if it needs one ('-' reads it from standard input, kept out of the shell's history). "
    "Stored in the registry (SQLite file or PostgreSQL) to call the endpoint; never shown."
)


def _secret(value: str | None) -> str | None:
    if value == "-":
        return sys.stdin.readline().strip()
    return value


@clinic_app.command("add")
def clinic_add(
    name: Annotated[str, typer.Argument(help="The clinic's name, e.g. 'North Physio'.")],
    emergency_text: Annotated[
        str,
        typer.Option(help="What urgent replies tell the clinic's patients to call, e.g. 'NHS 111 or 999'."),
    ] = "",
    allowed_origin: Annotated[
        list[str] | None, typer.Option(help="A site whose pages may use publishable keys (repeatable).")
    ] = None,
    accent_color: Annotated[str, _ACCENT] = "",
    logo_url: Annotated[str, _LOGO] = "",
    feedback_questions: Annotated[bool, _QUESTIONS] = False,
    llm_base_url: Annotated[str, _LLM_URL] = "",
    llm_model: Annotated[str, _LLM_MODEL] = "",
    llm_api_key: Annotated[str, _LLM_KEY] = "",
) -> None:
    """Add a clinic."""
    clinic = _registry().add_clinic(
        name,
        emergency_text=emergency_text,
        allowed_origins=allowed_origin or [],
        accent_color=accent_color,
        logo_url=logo_url,
        feedback_questions=feedback_questions,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        llm_api_key=_secret(llm_api_key) or "",
    )
    typer.echo(
        f"Added clinic {clinic.name!r} (id {clinic.id}). Create a key with `pht-assistant key create --clinic {clinic.id}`."
    )


@clinic_app.command("set")
def clinic_set(
    clinic: Annotated[str, typer.Argument(help="The clinic's name or id.")],
    emergency_text: Annotated[
        str | None, typer.Option(help="What urgent replies tell the clinic's patients to call.")
    ] = None,
    allowed_origin: Annotated[
        list[str] | None,
        typer.Option(help="The sites whose pages may use publishable keys (repeatable; replaces the list)."),
    ] = None,
    no_allowed_origins: Annotated[
        bool, typer.Option("--no-allowed-origins", help="Allow no site at all (publishable keys stop working).")
    ] = False,
    accent_color: Annotated[str | None, typer.Option(help="The widget's accent colour (hex); '' for the default.")] = None,
    logo_url: Annotated[str | None, typer.Option(help="The logo's http(s) address; '' for none.")] = None,
    feedback_questions: Annotated[bool | None, _QUESTIONS] = None,
    llm_base_url: Annotated[str | None, typer.Option(help="The clinic's own language-model endpoint; '' removes it (with its model and key).")] = None,
    llm_model: Annotated[str | None, _LLM_MODEL] = None,
    llm_api_key: Annotated[str | None, _LLM_KEY] = None,
) -> None:
    """Change a clinic's emergency wording, allowed sites, widget looks, feedback setting or language
    model; every worker on every machine applies it on its next request."""
    origins = [] if no_allowed_origins else allowed_origin
    c = _registry().update_clinic(
        clinic,
        emergency_text=emergency_text,
        allowed_origins=origins,
        accent_color=accent_color,
        logo_url=logo_url,
        feedback_questions=feedback_questions,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        llm_api_key=_secret(llm_api_key),
    )
    typer.echo(f"Updated clinic {c.name!r}: {_describe(c)}")


def _describe(c) -> str:
    return (
        f"emergency: {c.emergency_text or '(default)'} · origins: {', '.join(c.allowed_origins) or '-'} · "
        f"accent: {c.accent_color or '(default)'} · logo: {c.logo_url or '-'} · "
        f"questions with feedback: {'kept' if c.feedback_questions else 'not kept'} · "
        f"language model: {_llm(c)}"
    )


def _llm(c) -> str:
    if not c.llm_base_url:
        return "(the server's)"
    from urllib.parse import urlsplit, urlunsplit

    key = "key set" if c.llm_api_key.get_secret_value() else "no key"
    parts = urlsplit(c.llm_base_url)
    shown = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))  # never a user:password in the URL
    return f"{c.llm_model or 'default'} at {shown} ({key})"


@clinic_app.command("list")
def clinic_list() -> None:
    """List the clinics, with their keys' counts."""
    registry = _registry()
    clinics = registry.clinics()
    if not clinics:
        typer.echo("No clinics yet; add one with `pht-assistant clinic add NAME`.")
        return
    for c in clinics:
        active = [k for k in registry.keys(c.id) if not k["revoked"]]
        typer.echo(f"{c.id}  {c.name}  · {_describe(c)} · {len(active)} active key(s)")


@key_app.command("create")
def key_create(
    clinic: Annotated[str, typer.Option(help="The clinic's name or id.")],
    publishable: Annotated[
        bool,
        typer.Option(
            "--publishable", help="A key for web pages: asks only, from the clinic's allowed origins."
        ),
    ] = False,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    key = _registry().create_key(clinic, publishable=publishable)
    typer.echo(key)
    typer.echo("Keep this key now: it is not stored and cannot be shown again.", err=True)


@key_app.command("list")
def key_list(clinic: Annotated[str | None, typer.Option(help="Only this clinic's keys.")] = None) -> None:
    """List keys by id (never the keys themselves)."""
    for k in _registry().keys(clinic):
        typer.echo(
            f"{k['id']}  {k['clinic_id']}  {k['kind']}  created {k['created']}  {'revoked ' + k['revoked'] if k['revoked'] else 'active'}"
        )


@key_app.command("revoke")
def key_revoke(
    key: Annotated[str, typer.Argument(help="The key, or its id (see `pht-assistant key list`).")],
) -> None:
    """Revoke a key at once: requests with it get 401."""
    key_id = _registry().revoke_key(key)
    typer.echo(f"Revoked key {key_id}.")


def _database() -> tuple[str, str]:
    """The database the settings name, as ``(url, shown)``: PHT_DATABASE_URL or the SQLite file."""
    from assistant.clinics.migrate import display_url
    from assistant.settings import get_settings

    settings = get_settings()
    if settings.database_url:
        return settings.database_url, display_url(settings.database_url)
    from assistant.index.embedded import check_data_dir

    check_data_dir(settings.data_dir)
    settings.clinics_path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.clinics_path}", str(settings.clinics_path)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the clinics database's tables to this version's schema (keeps every row)."""
    from assistant.clinics.migrate import HEAD, upgrade

    url, shown = _database()
    before, after = upgrade(url, notify=lambda m: typer.echo(m, err=True))
    if before == after:
        typer.echo(f"The clinics database at {shown} is up to date (schema revision {HEAD}).")
    else:
        typer.echo(f"Upgraded the clinics database at {shown} from {before or 'empty'} to schema revision {after}.")


@db_app.command("status")
def db_status() -> None:
    """Say which schema revision the clinics database has, and whether this version can use it."""
    import sqlalchemy as sa

    from assistant.clinics.migrate import HEAD, current_revision, database_url
    from assistant.errors import RegistryUnavailable

    url, shown = _database()
    engine = sa.create_engine(database_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            revision = current_revision(conn)
    except sa.exc.OperationalError:
        raise RegistryUnavailable(
            f"The clinics database at {shown} cannot be reached; check PHT_DATABASE_URL and that the server is running."
        ) from None
    finally:
        engine.dispose()
    if revision == HEAD:
        typer.echo(f"{shown}: schema revision {revision}, up to date.")
    else:
        typer.echo(
            f"{shown}: schema revision {revision or 'none (empty)'}, this version needs {HEAD}; "
            "run `pht-assistant db upgrade`."
        )
        raise typer.Exit(1)


@db_app.command("import-sqlite")
def db_import_sqlite(
    path: Annotated[
        str | None,
        typer.Argument(help="The SQLite registry to copy (default: clinics.sqlite3 in the data folder)."),
    ] = None,
) -> None:
    """Copy a single machine's SQLite registry (clinics, keys, documents, audit, feedback) into the
    PostgreSQL database of PHT_DATABASE_URL, all or nothing; the SQLite file is left unchanged."""
    from pathlib import Path

    from assistant.clinics.migrate import display_url
    from assistant.clinics.transfer import import_sqlite
    from assistant.errors import ClinicError
    from assistant.settings import get_settings

    settings = get_settings()
    if not settings.database_url.startswith("postgresql"):
        raise ClinicError(
            "Set PHT_DATABASE_URL to the PostgreSQL database to import into (postgresql+psycopg://USER:PASSWORD@HOST/DB)."
        )
    source = Path(path) if path else settings.clinics_path
    bars: dict[str, object] = {}

    def progress(table: str, done: int, total: int) -> None:
        if total < 5000:
            return
        from tqdm import tqdm

        bar = bars.get(table) or bars.setdefault(table, tqdm(total=total, desc=f"Copying {table}", unit="row"))
        bar.n = done  # type: ignore[attr-defined]
        bar.refresh()  # type: ignore[attr-defined]

    try:
        copied = import_sqlite(source, settings.database_url, progress=progress, notify=lambda m: typer.echo(m, err=True))
    finally:
        for bar in bars.values():
            bar.close()  # type: ignore[attr-defined]
    counts = ", ".join(f"{n} {table}" for table, n in copied.items())
    typer.echo(
        f"Copied {counts} from {source} into {display_url(settings.database_url)}. "
        "Set PHT_DATABASE_URL on every worker; keep the SQLite file as a backup."
    )


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``clinic``, ``key`` and ``db`` to the ``pht-assistant`` app."""
    app.command()(serve)
    app.add_typer(clinic_app, name="clinic")
    app.add_typer(key_app, name="key")
    app.add_typer(db_app, name="db")
