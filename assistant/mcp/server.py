"""The MCP server: tools ``ask``, ``search_sources`` and ``list_sources``, resource ``pht://sources``.

Every tool answers through the :class:`~assistant.Assistant` (or a clinic's view of it) that a
:class:`Door` names; the transport decides which door a call comes through. Failures are tool
results with ``isError`` and one sentence saying what to do, never a traceback: arguments that do
not fit the published input schema are refused before a tool runs, the assistant's own errors
(an empty question, an index being rebuilt, ...) keep their sentence, anything unexpected is logged
here and reported with a generic one.
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations, whose bounds are
# this module's closure variables, so they must be evaluated where the tools are defined.
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import anyio
from pydantic import BaseModel, Field

from assistant import __version__
from assistant.answer import SAFETY_NOTICE, Answer, Citation
from assistant.api.models import SourceInfo
from assistant.errors import AssistantError, RequestTimedOut
from assistant.reply import patient_text
from assistant.settings import Settings

log = logging.getLogger("assistant.mcp")
T = TypeVar("T")

UNEXPECTED = "Something unexpected went wrong; please try again, and tell the clinic if it happens again."

INSTRUCTIONS = (
    "Answers questions about proximal hamstring tendinopathy (PHT, high hamstring tendon pain) from a "
    "curated corpus and the clinic's approved documents. Show the `ask` tool's text to the person as it is: "
    "it quotes its sources with [n] markers and ends with a safety notice that must stay. When the status is "
    "`urgent`, tell the person to seek medical care now and give no exercise advice. `search_sources` returns "
    "passages (with source ids and character offsets) for composing a reply yourself: say nothing the "
    "passages do not say, and pass on the notice."
)


# -- where a call is answered from -----------------------------------------------------------------


@dataclass(frozen=True)
class Door:
    """What one call is answered from: the assistant, and the clinic it answers for (if any)."""

    assistant: Any
    clinic_id: str | None = None
    observe: Callable[[Answer], None] | None = None  # the API's answer metrics

    def view(self) -> Any:
        """The assistant as the clinic's patients get it (its documents, wording and audit), or as is."""
        return self.assistant.for_clinic(self.clinic_id) if self.clinic_id else self.assistant

    def sources(self) -> "SourceList":
        docs = [SourceInfo(**{**d, "kind": "corpus"}) for d in self.assistant.sources()]
        if self.clinic_id:
            docs += [SourceInfo(**{**d, "kind": "clinic"}) for d in self.assistant.library.sources(self.clinic_id)]
        return SourceList(corpus_version=self.assistant.corpus_version, sources=docs, safety_notice=SAFETY_NOTICE)


Resolve = Callable[[], Awaitable[Door]]


async def blocking(settings: Settings, fn: Callable[[], T]) -> T:
    """Run the assistant's blocking work in a thread, within ``api_request_timeout`` seconds."""
    try:
        with anyio.fail_after(settings.api_request_timeout):
            return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)
    except TimeoutError:
        raise RequestTimedOut(settings.api_request_timeout) from None


# -- what the tools take and return ----------------------------------------------------------------


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(description="What was said in that turn.")


class AskResult(BaseModel):
    """The answer: its status, its text (ending with the safety notice) and its citations."""

    id: str = Field(description="The answer's id (as in the clinic's audit trail).")
    status: Literal["answered", "not_covered", "out_of_scope", "urgent"] = Field(
        description="`urgent`: red-flag symptoms, tell the person to seek care now; `answered`: drawn from the "
        "cited passages; `not_covered`: the sources do not say; `out_of_scope`: not about PHT, or for a clinician."
    )
    text: str = Field(description="The reply with [n] markers; always ends with the safety notice.")
    citations: list[Citation] = Field(description="The passages the [n] markers refer to, with offsets and versions.")
    safety_notice: str = SAFETY_NOTICE
    corpus_version: str = ""


class Passage(BaseModel):
    rank: int = Field(ge=1)
    source: str = Field(description="DOCID#SECTIONID, e.g. pht-podcast-qa#qa-2.")
    title: str = Field(description="Document title, then the section title.")
    text: str = Field(description="The passage as written in the source.")
    start: int = Field(ge=0, description="Character offset of the passage in its document.")
    end: int = Field(ge=0, description="Character offset just past the passage.")
    version: str = Field(description="Hash of the document version the passage comes from.")
    relevance: float = Field(description="Calibrated relevance to the query, 0..1.")
    approved_by: str | None = Field(default=None, description="Who approved this version of the document.")
    safety_notice: str = SAFETY_NOTICE


class SearchResult(BaseModel):
    status: Literal["answered", "not_covered", "out_of_scope", "urgent"] = Field(
        description="`answered`: passages follow; `not_covered`: nothing relevant enough; `urgent` or "
        "`out_of_scope`: no passages, pass `message` on instead."
    )
    message: str = Field(default="", description="For `urgent`, `out_of_scope` and `not_covered`: what to tell the person.")
    results: list[Passage]
    safety_notice: str = SAFETY_NOTICE


class SourceList(BaseModel):
    corpus_version: str
    sources: list[SourceInfo] = Field(description="Each document with its id, kind, title, version, reviewer and sections.")
    safety_notice: str = SAFETY_NOTICE


def _text(*parts: str) -> list[Any]:
    from mcp_types import TextContent

    return [TextContent(type="text", text=p) for p in parts if p]


def failed(sentence: str) -> Any:
    """A tool result that says, in one sentence, what went wrong and what to do."""
    from mcp_types import CallToolResult

    return CallToolResult(content=_text(sentence), is_error=True)


async def guarded(tool: str, work: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await work()
    except AssistantError as exc:
        log.info("tool %s refused: %s", tool, type(exc).__name__)
        return failed(exc.message)
    except Exception as exc:
        log.error("tool %s failed: %s", tool, type(exc).__name__, exc_info=exc)
        return failed(UNEXPECTED)


# -- arguments: refused by the published schema, with a sentence -----------------------------------


def _where(error: Any) -> str:
    path = [str(p) for p in error.absolute_path]
    return f"`{'.'.join(path)}`" if path else "the arguments"


def schema_sentence(tool: str, error: Any) -> str:
    """One sentence for a JSON-schema validation error of a tool's arguments."""
    kind, value, where = error.validator, error.validator_value, _where(error)
    if kind == "required":
        missing = next((n for n in value if n not in (error.instance or {})), value[0])
        problem = f"`{'.'.join([*map(str, error.absolute_path), missing])}` is required"
    elif kind == "type":
        problem = f"{where} must be of type {value if isinstance(value, str) else ' or '.join(value)}"
    elif kind == "anyOf" and all("type" in option for option in value):
        problem = f"{where} must be of type {' or '.join(option['type'] for option in value)}"
    elif kind == "minLength":
        problem = f"{where} must not be empty"
    elif kind == "maxLength":
        problem = f"{where} must be at most {value} characters long"
    elif kind in ("minimum", "maximum"):
        problem = f"{where} must be {'at least' if kind == 'minimum' else 'at most'} {value}"
    elif kind == "enum":
        problem = f"{where} must be one of {', '.join(map(str, value))}"
    elif kind == "additionalProperties":
        problem = "the arguments include one this tool does not take"
    else:
        problem = f"{where} is not valid"
    return f"The {tool} tool's {problem}; call it again with arguments that fit its input schema."


def _parse_json_strings(arguments: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Lists sent as JSON text (some clients do) are read as lists, as the SDK itself does."""
    out = dict(arguments)
    for name, prop in (schema.get("properties") or {}).items():
        value = out.get(name)
        kinds = {prop.get("type")} | {p.get("type") for p in prop.get("anyOf", [])}
        if isinstance(value, str) and kinds & {"array", "object"}:
            try:
                parsed = json.loads(value)
            except ValueError:
                continue
            if isinstance(parsed, (list, dict)):
                out[name] = parsed
    return out


class ArgumentCheck:
    """Server middleware: a ``tools/call`` whose arguments do not fit the tool's input schema gets an
    error result with a sentence, before the tool runs (the SDK's own message is pydantic's dump)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self._schemas: dict[str, Any] | None = None

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        params = ctx.params
        if ctx.method != "tools/call" or not isinstance(params, Mapping):
            return await call_next(ctx)
        if self._schemas is None:
            from jsonschema import Draft202012Validator

            self._schemas = {t.name: Draft202012Validator(t.input_schema) for t in await self.server.list_tools()}
        validator = self._schemas.get(params.get("name"))
        arguments = params.get("arguments") or {}
        if validator is None or not isinstance(arguments, Mapping):
            return await call_next(ctx)
        arguments = _parse_json_strings(dict(arguments), validator.schema)
        from jsonschema.exceptions import best_match

        problem = best_match(validator.iter_errors(arguments))
        if problem is not None:
            log.info("tool %s: arguments refused by the schema (%s)", params["name"], problem.validator)
            return failed(schema_sentence(params["name"], problem))
        return await call_next(dataclasses.replace(ctx, params={**params, "arguments": arguments}))


# -- the server ------------------------------------------------------------------------------------


def _passages(answer: Answer, door_sources: Any, limit: int, threshold: float) -> list[Passage]:
    reviewers = {s.id: s.reviewed_by for s in door_sources.sources}
    out = []
    for p in answer.retrieved or []:
        if p.relevance < threshold or len(out) >= limit:
            continue
        out.append(
            Passage(
                rank=len(out) + 1,
                source=p.source,
                title=p.title,
                text=p.text,
                start=p.start,
                end=p.end,
                version=p.version,
                relevance=p.relevance,
                approved_by=reviewers.get(p.source.split("#", 1)[0]),
            )
        )
    return out


def _listing(result: SearchResult) -> str:
    lines = []
    for p in result.results:
        lines.append(
            f"[{p.rank}] {p.source} (characters {p.start}-{p.end}, version {p.version}, relevance {p.relevance:.2f})\n"
            f"{p.title}\n{p.text}"
        )
    return "\n\n".join([result.message] if result.message else lines)


def build_server(resolve: Resolve, settings: Settings, lifespan: Callable[[Any], Any] | None = None) -> Any:
    """The MCP server; ``resolve`` gives the :class:`Door` each call is answered through, ``lifespan``
    (an async context manager factory taking the server) runs while a transport serves it."""
    import logging as _logging

    from mcp.server.mcpserver import MCPServer
    from mcp_types import CallToolResult, ToolAnnotations

    # The SDK's constructor calls logging.basicConfig; a handler held on the root logger for that
    # moment keeps the process's own logging set-up (the API's format and PHT_LOG_LEVEL).
    root, hold = _logging.getLogger(), _logging.NullHandler()
    root.addHandler(hold)
    try:
        server = MCPServer(
            name="pht-assistant",
            title="PHT Assistant",
            description="Answers about proximal hamstring tendinopathy, with citations and a safety notice.",
            instructions=INSTRUCTIONS,
            version=__version__,
            log_level="WARNING",
            lifespan=lifespan,
        )
    finally:
        root.removeHandler(hold)
    # Nothing a patient types is logged: the SDK's debug logs carry the messages.
    _logging.getLogger("mcp").setLevel(max(_logging.getLogger("mcp").level, _logging.INFO))
    server.middleware.append(ArgumentCheck(server))
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    max_chars = settings.max_question_chars

    @server.tool(name="ask", title="Ask PHT Assistant", annotations=read_only)
    async def ask(
        question: Annotated[
            str, Field(min_length=1, max_length=max_chars, description="The person's question, in their words.")
        ],
        history: Annotated[
            list[Turn] | None, Field(description="The conversation so far, oldest first (for follow-up questions).")
        ] = None,
    ) -> AskResult:
        """Answer a question about proximal hamstring tendinopathy from the curated sources: the reply
        quotes its sources with [n] markers, lists them, and ends with a safety notice to pass on."""

        async def work() -> Any:
            door = await resolve()
            turns = [t.model_dump() for t in history] if history else None
            answer = await blocking(settings, lambda: door.view().ask(question, turns))
            if door.observe is not None:
                door.observe(answer)
            result = AskResult(
                id=answer.id,
                status=answer.status.value,
                text=answer.text,
                citations=answer.citations,
                safety_notice=answer.safety_notice,
                corpus_version=answer.corpus_version,
            )
            return CallToolResult(content=_text(patient_text(answer)), structured_content=result.model_dump(mode="json"))

        return await guarded("ask", work)

    @server.tool(name="search_sources", title="Search PHT Assistant's sources", annotations=read_only)
    async def search_sources(
        query: Annotated[str, Field(min_length=1, max_length=max_chars, description="What to look for.")],
        limit: Annotated[int, Field(ge=1, le=10, description="At most this many passages.")] = 5,
    ) -> SearchResult:
        """Passages of the curated sources relevant to a query, best first, each with its source id,
        character offsets and document version, for composing a reply yourself. Red-flag symptoms get
        no passages but a message to seek care now. Every result carries the safety notice."""

        async def work() -> Any:
            door = await resolve()

            def run() -> tuple[Answer, Any, float]:
                view = door.view()
                return view.ask(query, explain=True), door.sources(), view.settings.relevance_threshold

            answer, sources, threshold = await blocking(settings, run)
            if answer.status.value in ("urgent", "out_of_scope"):  # triage decided: no passages
                result = SearchResult(status=answer.status.value, message=answer.body, results=[])
            else:
                results = _passages(answer, sources, limit, threshold)
                result = SearchResult(
                    status="answered" if results else "not_covered",
                    message="" if results else answer.body,
                    results=results,
                )
            return CallToolResult(
                content=_text(_listing(result), SAFETY_NOTICE), structured_content=result.model_dump(mode="json")
            )

        return await guarded("search_sources", work)

    @server.tool(name="list_sources", title="List PHT Assistant's sources", annotations=read_only)
    async def list_sources() -> SourceList:
        """The documents answers are drawn from (the shared corpus and the clinic's approved documents),
        with their versions, reviewers and sections."""

        async def work() -> Any:
            door = await resolve()
            listing = await blocking(settings, door.sources)
            return CallToolResult(
                content=_text(_source_lines(listing)), structured_content=listing.model_dump(mode="json")
            )

        return await guarded("list_sources", work)

    @server.resource(
        "pht://sources",
        name="sources",
        title="PHT Assistant's sources",
        description="The documents answers are drawn from, with their versions, reviewers and sections (JSON).",
        mime_type="application/json",
    )
    async def sources_resource() -> str:
        from mcp.server.mcpserver.exceptions import ResourceError

        try:
            door = await resolve()
            listing = await blocking(settings, door.sources)
        except AssistantError as exc:
            raise ResourceError(exc.message) from None
        return listing.model_dump_json(indent=1)

    return server


def _source_lines(listing: SourceList) -> str:
    lines = [f"Corpus version {listing.corpus_version}."]
    for s in listing.sources:
        reviewed = f", reviewed by {s.reviewed_by}" if s.reviewed_by else ""
        lines.append(f"- {s.id} ({s.kind}, version {s.version}{reviewed}): {s.title}")
    return "\n".join(lines)
