"""The ``pht-assistant`` command line.

    pht-assistant ask "Can I keep running with PHT?"
    pht-assistant ask "..." --json
    pht-assistant chat
    pht-assistant index [--rebuild]
    pht-assistant sources
    pht-assistant --version

Heavy libraries (torch, Chroma, LangChain) load inside the commands that need them, so
``pht-assistant --help`` answers at once. Errors meant for people print one sentence and exit
with code 2; nothing prints a traceback unless ``PHT_DEBUG=1``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, NoReturn

import typer

from assistant.errors import AssistantError

app = typer.Typer(
    name="pht-assistant",
    help="Answers questions about proximal hamstring tendinopathy (PHT) from a curated corpus, "
    "with citations and a physiotherapist notice.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    from assistant.answer import SAFETY_NOTICE

    _err(message)
    _err(SAFETY_NOTICE)
    sys.exit(code)


def _version(value: bool) -> None:
    if value:
        from assistant import __version__

        typer.echo(f"pht-assistant {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Answers questions about proximal hamstring tendinopathy (PHT) from a curated corpus."""


def _assistant() -> Any:
    from assistant.pipeline.assistant import Assistant

    return Assistant.from_settings(notify=_err)


def _render(answer: Any) -> str:
    lines = [answer.body]
    if answer.citations:
        lines.append("")
        lines.append("Sources:")
        for c in answer.citations:
            lines.append(
                f"  [{c.n}] {c.title} ({c.source}, version {c.version}, characters {c.start}-{c.end})"
            )
    lines.append("")
    lines.append(answer.safety_notice)
    return "\n".join(lines)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question, in quotes.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON.")] = False,
) -> None:
    """Answer one question, with its sources and the safety notice."""
    from assistant.pipeline.validate import validate_question
    from assistant.settings import get_settings

    validate_question(question, get_settings().max_question_chars)  # before loading anything heavy
    assistant = _assistant()
    answer = assistant.ask(question)
    if json_:
        typer.echo(answer.model_dump_json(indent=2))
    else:
        typer.echo(_render(answer))


@app.command()
def chat() -> None:
    """A conversation in the terminal; follow-up questions use what was said before. Ctrl-D ends it."""
    assistant = _assistant()
    history: list[dict[str, str]] = []
    typer.echo("Ask about proximal hamstring tendinopathy. Type 'exit' or press Ctrl-D to leave.")
    while True:
        try:
            question = input("\nyou> ")
        except EOFError:
            typer.echo("")
            break
        if question.strip().lower() in {"exit", "quit"}:
            break
        if not question.strip():
            continue
        try:
            answer = assistant.ask(question, history=history)
        except AssistantError as exc:
            _err(str(exc))
            continue
        typer.echo("\n" + _render(answer))
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.body}]


@app.command()
def index(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Embed every passage again from scratch.")
    ] = False,
) -> None:
    """Build or update the search index from the corpus folder (only changed passages are embedded)."""
    from assistant.index.ensure import ensure_index
    from assistant.embed.minilm import MiniLMEmbeddings
    from assistant.settings import get_settings

    settings = get_settings()
    embeddings = MiniLMEmbeddings(batch_size=settings.embedding_batch_size)
    report = ensure_index(settings, embeddings, rebuild=rebuild, notify=_err, wait=0)
    if not report.changed:
        typer.echo(
            f"The index in {settings.data_dir} is up to date: {report.chunks} passages "
            f"(corpus version {report.corpus_version})."
        )
        return
    typer.echo(
        f"Indexed {report.chunks} passages ({report.records} records) in {report.seconds:.1f} s: "
        f"{report.added} added ({report.encoded} texts encoded{f' by {report.encoder}' if report.encoder else ''}), "
        f"{report.removed} removed, {report.unchanged} unchanged. "
        f"Corpus version {report.corpus_version}."
    )


@app.command()
def sources() -> None:
    """List the documents and sections in the index."""
    from assistant.errors import IndexMissing
    from assistant.index.embedded import ChromaIndex, read_meta
    from assistant.settings import get_settings

    settings = get_settings()
    meta = read_meta(settings.data_dir)
    if meta is None:
        raise IndexMissing(
            f"There is no index in {settings.data_dir} yet; build it with `pht-assistant index`."
        )
    ChromaIndex(
        settings.data_dir, collection=settings.collection, check_timeout=settings.index_check_timeout
    ).close()
    typer.echo(f"Corpus version {meta.corpus_version}, built {meta.built_at}, model {meta.model}")
    for doc_id, doc in meta.documents.items():
        reviewed = doc.get("reviewed_by") or "not yet reviewed"
        typer.echo(f"\n{doc_id}  {doc['title']}")
        typer.echo(f"  version {doc['version']} · added {doc.get('added') or '?'} · reviewed by: {reviewed}")
        for s in doc["sections"]:
            typer.echo(f"  {doc_id}#{s['id']:<10} {s['title']}")


from assistant.api.cli import register as _register_api  # noqa: E402 - serve, clinic, key

_register_api(app)

from assistant.evaluation.cli import register as _register_eval  # noqa: E402 - eval, eval compare

_register_eval(app)

from assistant.mcp.stdio import register as _register_mcp  # noqa: E402 - mcp

_register_mcp(app)


def main() -> None:
    """Entry point: run the app, turning errors meant for people into one sentence and exit 2."""
    from assistant.errors import RegistryUnavailable

    try:
        app()
    except RegistryUnavailable as exc:
        where = getattr(exc, "where", "")
        _fail(
            f"The clinics database at {where} cannot be reached; check that it is running and that "
            "PHT_DATABASE_URL (or PHT_CLINICS_PATH) points at it."
            if where
            else str(exc)
        )
    except AssistantError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _err("Stopped.")
        sys.exit(130)
    except Exception as exc:  # never a traceback to a person
        from assistant.settings import get_settings

        if get_settings().debug:
            raise
        _fail(
            f"Something unexpected went wrong ({type(exc).__name__}); run again with PHT_DEBUG=1 "
            "for details, or rebuild the index with `pht-assistant index --rebuild`.",
            code=1,
        )


if __name__ == "__main__":  # pragma: no cover
    main()
