"""``pht-assistant mcp``: the MCP server over standard input and output.

For an assistant that starts its tools as commands (Claude Desktop, IDE agents, ``mcp`` clients).
The server answers the handshake at once and loads the model and index in the background (about
ten seconds); a tool called before then waits for it. Standard output carries only the protocol:
the SDK points everything else printed at standard error while it serves.
"""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer

log = logging.getLogger("assistant.mcp")


class Loader:
    """Builds the assistant once, in a thread, while the server already answers."""

    def __init__(self, settings: Any, clinic_id: str | None) -> None:
        self.settings, self.clinic_id = settings, clinic_id
        self._ready = threading.Event()
        self._door: Any = None
        self._error: Exception | None = None
        self._assistant: Any = None

    def start(self) -> None:
        threading.Thread(target=self._load, name="pht-mcp-load", daemon=True).start()

    def _load(self) -> None:
        from assistant.errors import AssistantError
        from assistant.mcp.server import UNEXPECTED, Door
        from assistant.pipeline.assistant import Assistant

        try:
            assistant = self._assistant = Assistant.from_settings(
                self.settings, progress=False, notify=lambda m: print(m, file=sys.stderr)
            )
            assistant.warm_up()
            if self.clinic_id:
                assistant.for_clinic(self.clinic_id)  # the clinic's store and documents, now
            self._door = Door(assistant, self.clinic_id)
        except AssistantError as exc:
            self._error = exc
        except Exception as exc:
            log.error("the assistant could not be loaded: %s", type(exc).__name__, exc_info=exc)
            self._error = AssistantError(UNEXPECTED)
        finally:
            self._ready.set()

    async def door(self) -> Any:
        import anyio

        if not self._ready.is_set():
            await anyio.to_thread.run_sync(self._ready.wait, abandon_on_cancel=True)
        if self._error is not None:
            raise self._error
        return self._door

    def close(self) -> None:
        assistant = self._assistant
        if assistant is None:
            return
        library = assistant.library_if_open
        if library is not None:
            library.registry.flush_audit()
            library.store.release()
        assistant.close()


def mcp(
    clinic: Annotated[
        str | None,
        typer.Option(help="Answer as this clinic (name or id): its approved documents, emergency wording and audit trail."),
    ] = None,
) -> None:
    """Run the MCP server over standard input and output (tools: ask, search_sources, list_sources)."""
    from assistant.settings import get_settings

    settings = get_settings()
    clinic_id = None
    if clinic:
        from assistant.clinics.registry import open_registry

        registry = open_registry(settings)  # SQLite, or PostgreSQL with PHT_DATABASE_URL
        try:
            clinic_id = registry.clinic(clinic).id  # an unknown clinic is refused now
        finally:
            registry.close()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    loader = Loader(settings, clinic_id)

    from assistant.mcp.server import build_server

    @asynccontextmanager
    async def lifespan(_server: Any):
        loader.start()
        try:
            yield {}
        finally:
            loader.close()

    server = build_server(loader.door, settings, lifespan=lifespan)
    print("PHT Assistant MCP server on standard input and output; the model loads in the background.", file=sys.stderr)
    server.run("stdio")


def register(app: typer.Typer) -> None:
    """Add ``mcp`` to the ``pht-assistant`` app."""
    app.command()(mcp)
