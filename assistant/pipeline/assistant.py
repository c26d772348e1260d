"""The door every surface uses: :class:`Assistant`, assembled from its stages.

``ask`` runs one LangChain (LCEL) chain (:mod:`assistant.pipeline.flow`): embed -> safety triage ->
rewrite -> retrieve -> scope -> answerability -> compose -> ground-check -> :class:`Answer`.
Urgent and out-of-scope questions leave the chain before anything is composed. Every stage is
swappable behind its contract (:mod:`assistant.contracts`); :meth:`Assistant.from_settings`
assembles the default ones. A clinic's request runs the same stages with the clinic's
:class:`~assistant.pipeline.context.Context`.

>>> from assistant import Assistant
>>> assistant = Assistant.from_settings()          # builds the index on first use
>>> answer = assistant.ask("Can running be part of my rehab?")
>>> answer.status.value, answer.citations[0].source
('answered', 'pht-podcast-qa#qa-1')
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from assistant.answer import Answer, Citation, Delta, Done, Started, Status
from assistant.contracts import StreamingComposer, model_id_of, warm_up
from assistant.pipeline.context import Context
from assistant.pipeline.flow import Flow, Turn
from assistant.pipeline.validate import validate_history, validate_question
from assistant.settings import Settings, get_settings


class Assistant:
    """Answers questions about PHT from the indexed corpus, always with the safety notice.

    Build one with :meth:`from_settings`; it is safe to share between threads. Any stage may be
    given in place of its default (``retriever``, ``safety``, ``rewriter``, ``scope``,
    ``answerability``, ``composer``, ``grounding``; see :mod:`assistant.pipeline.assembly`), each
    meeting its contract in :mod:`assistant.contracts`; ``embeddings`` is any LangChain ``Embeddings``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        embeddings: Any,
        index: Any = None,
        retriever: Any = None,
        **stages: Any,
    ) -> None:
        from assistant.pipeline.assembly import assemble, default_retriever

        if index is None and retriever is None:
            raise ValueError("an Assistant needs an index or a retriever")
        self.settings = settings
        self.embeddings = embeddings
        self._follows = retriever is None  # an index of its own: a newer one can take its place
        retriever = retriever or default_retriever(settings, index)
        self.composed = ComposerTally()  # how the writing composers fared (/v1/health, /metrics)
        self.stages = assemble(settings, embeddings, stages, on_composed=self.composed)
        self.composer = self.stages.composer
        self.flow = Flow(self.stages)
        self._warm = threading.Lock()
        self._ready = False
        self._library: Any = None
        self._generations = threading.Lock()
        self._current = Generation(
            index,
            retriever,
            Context(
                retriever=retriever,
                emergency_contact=settings.emergency_contact,
                corpus_version=getattr(index, "corpus_version", "") if index is not None else "",
            ),
        )
        self._follower: threading.Thread | None = None
        self._stop_following = threading.Event()

    # -- the index generation in use --------------------------------------------------------------

    @property
    def index(self) -> Any:
        return self._current.index

    @property
    def retriever(self) -> Any:
        return self._current.retriever

    @property
    def context(self) -> Context:
        """The assistant's own context (the shared corpus of the generation in use)."""
        return self._current.context

    @context.setter
    def context(self, value: Context) -> None:
        self._current.context = value

    @contextlib.contextmanager
    def reading(self) -> Iterator["Generation"]:
        """Hold the index generation in use now until the block ends: a request answers from the
        generation it started with, even if a newer one is published meanwhile; the old one is
        closed (and its lease let go) when its last request is done."""
        with self._generations:
            gen = self._current
            gen.refs += 1
        try:
            yield gen
        finally:
            with self._generations:
                gen.refs -= 1
                done = gen.retired and gen.refs == 0 and not gen.closed
                if done:
                    gen.closed = True
            if done:
                gen.close()

    def refresh_index(self, notify: Callable[[str], None] | None = None) -> bool:
        """Open the index that is published now if it is not the one in use, and answer from it from
        the next request on: ``True`` when it changed. Requests already running keep theirs."""
        from assistant.index.ensure import open_reader, published_generation

        if not self._follows:
            return False
        latest = published_generation(self.settings)
        if latest is None or latest == getattr(self.index, "generation", None):
            return False
        index = open_reader(self.settings)
        try:
            from assistant.pipeline.assembly import default_retriever

            retriever = default_retriever(self.settings, index)
            warm_up(retriever)
            context = self.context.with_changes(retriever=retriever, corpus_version=index.corpus_version)
            if self._ready:
                context = context.with_changes(topics=tuple(self._list_topics(retriever)))
        except BaseException:
            index.close()
            raise
        fresh = Generation(index, retriever, context)
        with self._generations:
            old, self._current = self._current, fresh
            old.retired = True
            done = old.refs == 0 and not old.closed
            if done:
                old.closed = True
        if self._library is not None:
            self._library.use_index(index)
        if done:
            old.close()
        (notify or (lambda _m: None))(
            f"Answering from the newly published index (corpus version {index.corpus_version}, "
            f"{getattr(index, 'generation', '')}); requests already running finish on the previous one."
        )
        return True

    def follow_index(self, every: float, notify: Callable[[str], None] | None = None) -> None:
        """Look for a newly published index every ``every`` seconds, in a thread, and answer from it
        without a restart (:meth:`refresh_index`). Stops with :meth:`close`."""
        import logging

        log = logging.getLogger("assistant.index")
        if self._follower is not None or not self._follows:
            return

        def follow() -> None:
            while not self._stop_following.wait(every):
                try:
                    self.refresh_index(notify=notify or log.info)
                except Exception as exc:  # the index being written, the store away: try again later
                    log.warning("could not open the newly published index (%s); trying again", exc)

        self._follower = threading.Thread(target=follow, name="pht-index-follower", daemon=True)
        self._follower.start()

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        embeddings: Any = None,
        composer: Any = None,
        progress: bool | None = None,
        notify: Callable[[str], None] | None = None,
        **stages: Any,
    ) -> "Assistant":
        """An assistant over the index in ``settings.data_dir``; builds the index if there is none.

        ``progress`` shows a progress bar on standard error while a first index is built (default:
        when standard error is a terminal). ``notify`` receives sentences for the person waiting.
        Other keyword arguments replace default stages (see the class).
        """
        from assistant.index.ensure import open_index

        settings = settings or get_settings()
        if embeddings is None:
            from assistant.embed.minilm import MiniLMEmbeddings

            embeddings = MiniLMEmbeddings(batch_size=settings.embedding_batch_size)
        say = notify or (lambda msg: print(msg, file=sys.stderr))
        index = open_index(settings, embeddings, progress=progress, notify=say)
        return cls(settings, embeddings=embeddings, index=index, composer=composer, **stages)

    def warm_up(self) -> None:
        """Load the model, the lexical index and the example sentences now, not on the first question."""
        if self._ready:
            return
        with self._warm:
            if not self._ready:
                warm_up(self.embeddings)
                for stage in (self.retriever, *vars(self.stages).values()):
                    warm_up(stage)
                topics = tuple(self._list_topics())
                self.context = self.context.with_changes(topics=topics)
                self._ready = True

    # -- what the assistant knows -----------------------------------------------------------------

    @property
    def corpus_version(self) -> str:
        return getattr(self.index, "corpus_version", "") if self.index is not None else ""

    @property
    def composer_name(self) -> str:
        """Who writes replies by default: ``extractive`` or ``llm:<model>`` (a clinic's record may name its own)."""
        return str(getattr(self.composer, "name", type(self.composer).__name__))

    def describe_composer(self) -> str:
        """The default composer in a sentence for health and reports (a language model's host, never its key)."""
        describe = getattr(self.composer, "describe", None)
        return describe() if callable(describe) else "extractive: quotes the sources word for word"

    @property
    def model_id(self) -> str:
        return model_id_of(self.embeddings)

    def sources(self) -> list[dict[str, Any]]:
        """The documents in the index with their sections, as recorded when it was built."""
        return [{"id": doc_id, **info} for doc_id, info in self.retriever.documents().items()]

    def topics(self) -> list[str]:
        """Short names of what the sources cover, for replies that say what the assistant can do."""
        self.warm_up()
        return list(self.context.topics)

    def _list_topics(self, retriever: Any = None) -> list[str]:
        from assistant.corpus.topics import topics_of

        return topics_of((retriever or self.retriever).documents()) or ["proximal hamstring tendinopathy"]

    def context_of(self, citation: Citation) -> tuple[str, str, str] | None:
        """The paragraph a citation was quoted from, as ``(before, quote, after)``.

        The text is that of the indexed passage the quote comes from (same document version), cut
        at the blank lines around the quote, so ``before + quote + after`` is an exact run of the
        source file. ``None`` when the index no longer holds that version of the passage.
        """
        doc_id = citation.source.split("#", 1)[0]
        for chunk in self.retriever.chunks_of(doc_id):
            inside = chunk.start <= citation.start <= citation.end <= chunk.end
            if chunk.version != citation.version or not inside:
                continue
            text, i, j = chunk.text, citation.start - chunk.start, citation.end - chunk.start
            if text[i:j] != citation.quote:
                return None
            first, last = text.rfind("\n\n", 0, i), text.find("\n\n", j)
            before = text[0 if first < 0 else first + 2 : i]
            after = text[j : len(text) if last < 0 else last]
            return before, text[i:j], after
        return None

    def close(self) -> None:
        self._stop_following.set()
        with self._generations:
            gen = self._current
            gen.closed = True
        gen.close()

    # -- clinics (docs/api.md) --------------------------------------------------------------------

    @property
    def library(self) -> Any:
        """Clinics' documents and audit trail (:class:`assistant.clinics.documents.ClinicLibrary`), opened on first use."""
        if self._library is None:
            from assistant.clinics.documents import ClinicLibrary

            with self._warm:
                if self._library is None:
                    self._library = ClinicLibrary(self.settings, self.embeddings, index=self.index)
        return self._library

    @property
    def library_if_open(self) -> Any:
        """The clinic library if something has opened it, else ``None`` (nothing is opened)."""
        return self._library

    def for_clinic(self, clinic_id: str) -> "ClinicAssistant":
        """This assistant answering for one clinic: the shared corpus plus the clinic's approved
        documents (never another clinic's), its emergency wording in urgent replies, citations that
        name who approved each quoted version, and an audit record per answer."""
        self.library.registry.clinic(clinic_id)  # an unknown clinic is refused now
        return ClinicAssistant(self, clinic_id)

    # -- asking --------------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        history: Sequence[Any] | None = None,
        *,
        explain: bool = False,
        context: Context | None = None,
    ) -> Answer:
        """Answer one question; ``history`` is the conversation so far, oldest first.

        ``explain=True`` also fills ``Answer.retrieved`` with the passages retrieval returned and
        their scores (the evaluation runner uses it; docs/evals.md). ``context`` is who the answer
        is for (a clinic's, from :meth:`for_clinic`); by default the assistant's own.

        Each turn is ``{"role": "user" | "assistant", "content": str}`` or a ``(role, content)``
        pair. Raises a :class:`~assistant.errors.InvalidQuestion` (a ``ValueError``) whose
        message says what to change.
        """
        with self.reading() as gen:
            return self.flow.run(self._turn(question, history, explain, context, gen))

    def stream(
        self,
        question: str,
        history: Sequence[Any] | None = None,
        *,
        explain: bool = False,
        context: Context | None = None,
    ) -> Iterator[Started | Delta | Done]:
        """The reply as it is written: :class:`Started` (status and id), :class:`Delta` pieces of
        text (joined, they are ``answer.text``, notice included), then :class:`Done` with the whole
        :class:`Answer`. Bad input raises before the first event, as :meth:`ask` does."""
        with self.reading() as gen:
            yield from self._stream(self._turn(question, history, explain, context, gen))

    def _stream(self, first: Turn) -> Iterator[Started | Delta | Done]:
        turn = self.flow.run_prepare(first)
        writes = (
            turn.answer is None
            and turn.judgement is not None
            and turn.judgement.answerable
            and isinstance(turn.context.composer or self.stages.composer, StreamingComposer)
        )
        if writes:  # a language model's sentences, shown as each passes the grounding check
            shown = ""
            began = time.perf_counter()
            for piece in self.flow.write(turn):
                if not shown:
                    turn.lap("first_text", turn.started)  # from the question to the first verified sentence shown
                    yield Started(status=Status.answered, id=turn.answer_id)
                shown += piece
                yield Delta(text=piece)
            turn.lap("compose", began)  # as Flow.compose records it when nothing streams
            answer = self.flow.finish(self.flow.ground(turn))
            if shown and answer.text.startswith(shown):
                if answer.text[len(shown) :]:
                    yield Delta(text=answer.text[len(shown) :])
                yield Done(answer=answer)
                return
            if shown:  # cannot happen with verified sentences; never leave a reader with unchecked text
                raise RuntimeError("a streamed reply changed after it was shown")
        else:
            answer = self.flow.run_respond(turn)
        yield Started(status=answer.status, id=answer.id)
        for piece in text_pieces(answer.text):
            yield Delta(text=piece)
        yield Done(answer=answer)

    def _turn(
        self,
        question: Any,
        history: Sequence[Any] | None,
        explain: bool,
        context: Context | None,
        gen: "Generation | None" = None,
    ) -> Turn:
        s = self.settings
        text = validate_question(question, s.max_question_chars)
        turns = validate_history(history, s.max_question_chars, s.max_history_turns)
        self.warm_up()
        own = (gen or self._current).context
        return Turn(question=text, history=turns, context=context or own, explain=explain)


class Generation:
    """One opened corpus index and what the assistant built on it, with the requests using it."""

    def __init__(self, index: Any, retriever: Any, context: Context) -> None:
        self.index, self.retriever, self.context = index, retriever, context
        self.refs = 0
        self.retired = False
        self.closed = False

    def close(self) -> None:
        if self.index is not None:
            self.index.close()


class ComposerTally:
    """How the writing composers (language models) fared in this process, for ``/v1/health`` and
    ``/metrics``: each reply's outcome by composer, as :meth:`Flow.write` reports it (``ok``,
    ``dropped`` when the check dropped sentences, ``partial:<reason>`` when the writer failed after
    its reply was shown, ``fallback:<reason>`` when the extractive reply was given instead).
    Listeners (the API's metrics) are told of each outcome as it happens. Thread-safe.

    >>> tally = ComposerTally()
    >>> tally("llm:m", "ok"); tally("llm:m", "fallback:timeout")
    >>> tally.summary()["fallbacks"], tally.summary()["fallback_reasons"]
    (1, {'timeout': 1})
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}
        self.listeners: list[Callable[[str, str], None]] = []

    def __call__(self, composer: str, outcome: str) -> None:
        with self._lock:
            self.counts[(composer, outcome)] = self.counts.get((composer, outcome), 0) + 1
            listeners = list(self.listeners)
        for listener in listeners:
            listener(composer, outcome)

    def summary(self) -> dict[str, Any]:
        """Written replies, fallbacks and why, over every writing composer of this process."""
        with self._lock:
            counts = dict(self.counts)
        written = sum(n for (_, o), n in counts.items() if not o.startswith("fallback:"))
        reasons: dict[str, int] = {}
        for (_, outcome), n in counts.items():
            if outcome.startswith("fallback:"):
                reason = outcome.split(":", 1)[1]
                reasons[reason] = reasons.get(reason, 0) + n
        fallbacks = sum(reasons.values())
        total = written + fallbacks
        return {
            "written": written,
            "fallbacks": fallbacks,
            "fallback_rate": round(fallbacks / total, 4) if total else 0.0,
            "fallback_reasons": dict(sorted(reasons.items())),
            "dropped_sentences_in": sum(n for (_, o), n in counts.items() if o == "dropped"),
        }


class ClinicAssistant:
    """An :class:`Assistant` answering for one clinic: the same stages, the clinic's context."""

    def __init__(self, assistant: Assistant, clinic_id: str) -> None:
        self.assistant = assistant
        self.clinic_id = clinic_id

    @property
    def settings(self) -> Settings:
        return self.assistant.settings

    def context(self, gen: Generation | None = None) -> Context:
        self.assistant.warm_up()
        own = (gen or self.assistant._current).context
        return self.assistant.library.context_for(self.clinic_id, own)

    def ask(self, question: str, history: Sequence[Any] | None = None, *, explain: bool = False) -> Answer:
        with self.assistant.reading() as gen:
            return self.assistant.ask(question, history, explain=explain, context=self.context(gen))

    def stream(
        self, question: str, history: Sequence[Any] | None = None, *, explain: bool = False
    ) -> Iterator[Started | Delta | Done]:
        with self.assistant.reading() as gen:
            yield from self.assistant.stream(question, history, explain=explain, context=self.context(gen))

    def sources(self) -> list[dict[str, Any]]:
        own = [{**d, "kind": "clinic"} for d in self.assistant.library.sources(self.clinic_id)]
        return [{**d, "kind": "corpus"} for d in self.assistant.sources()] + own


def text_pieces(text: str) -> list[str]:
    """``text`` in the pieces a reader sees arrive: sentences and paragraph breaks (joined, ``text``).

    >>> text_pieces("One. Two?\\n\\nThree")
    ['One.', ' Two?', '\\n', '\\nThree']
    """
    return [p for p in re.split(r"(?<=[.!?\n])(?=\s)", text) if p]
