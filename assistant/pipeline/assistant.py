"""The door every surface uses: :class:`Assistant`.

``ask`` runs one LangChain (LCEL) chain: validate -> embed -> triage -> retrieve -> compose ->
ground-check -> :class:`~assistant.answer.Answer`. Urgent and out-of-scope questions leave the
chain after triage, before any passage is retrieved. The composer is a swappable stage.

>>> from assistant import Assistant
>>> assistant = Assistant.from_settings()          # builds the index on first use
>>> answer = assistant.ask("Can running be part of my rehab?")
>>> answer.status.value, answer.citations[0].source
('answered', 'pht-podcast-qa#qa-1')
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.answer import Answer, Citation, Delta, Done, RetrievedPassage, Started, Status, Triage
from assistant.errors import (
    EmptyQuestion,
    IndexBusy,
    InvalidCharacters,
    InvalidHistory,
    InvalidQuestion,
    QuestionTooLong,
)
from assistant.settings import Settings, get_settings

log = logging.getLogger("assistant")

# On-topic exemplars: with the corpus itself, they tell a PHT question from an unrelated one.
TOPIC_EXEMPLARS = (
    "pain deep in my buttock where my hamstring attaches to the sit bone",
    "proximal hamstring tendinopathy rehab exercises",
    "can I keep running with a high hamstring tendon injury",
    "how do I return to running after hamstring tendon pain",
    "strength training for a painful hamstring tendon",
    "training for a marathon with a hamstring problem",
    "my hamstring hurts when I sit for a long time",
    "which leg exercises are safe with tendinopathy",
    "how long until my tendon pain settles",
    "should I see a physiotherapist for my hamstring",
)


@dataclass
class Turn:
    """The state one question carries through the chain."""

    question: str
    history: list[dict[str, str]]
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    vector: list[float] | None = None
    triage: Triage | None = None
    passages: list[Any] = field(default_factory=list)
    draft: Any = None
    answer: Answer | None = None
    explain: bool = False
    search: str = ""  # the question as searched: without quoted text and orders to the assistant

    def lap(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[stage] = round((now - since) * 1000, 2)
        return now

    @property
    def user_turns(self) -> list[str]:
        return [t["content"] for t in self.history if t["role"] == "user"]


class Assistant:
    """Answers questions about PHT from the indexed corpus, always with the safety notice.

    Build one with :meth:`from_settings`; it is safe to share between threads.
    """

    def __init__(self, settings: Settings, *, embeddings: Any, index: Any, composer: Any = None) -> None:
        from assistant.compose.extractive import ExtractiveComposer
        from assistant.retrieval.hybrid import HybridRetriever, RelevanceModel

        self.settings = settings
        self.embeddings = embeddings
        self.index = index
        self.retriever = HybridRetriever(
            index,
            candidates=settings.candidates,
            rrf_k=settings.rrf_k,
            detail=settings.top_k + 2,
            relevance=RelevanceModel(*settings.relevance_weights),
        )
        self.composer = composer or ExtractiveComposer(
            max_citations=settings.top_k,
            citation_margin=settings.citation_margin,
            min_relevance=settings.relevance_threshold,
        )
        self._exemplars: Any = None
        self._safety_exemplars: Any = None  # assistant.safety.triage.ExemplarTriage, built in warm_up()
        self._warm = threading.Lock()
        self._chain = self._build_chain()

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
    ) -> "Assistant":
        """An assistant over the index in ``settings.data_dir``; builds the index if there is none.

        ``progress`` shows a progress bar on standard error while a first index is built (default:
        when standard error is a terminal). ``notify`` receives sentences for the person waiting.
        """
        from assistant.embed.minilm import MiniLMEmbeddings
        from assistant.index.embedded import ChromaIndex, read_meta

        settings = settings or get_settings()
        embeddings = embeddings or MiniLMEmbeddings(batch_size=settings.embedding_batch_size)
        say = notify or (lambda msg: print(msg, file=sys.stderr))
        if settings.chroma_url:  # a shared Chroma server: read only; `pht-assistant index` publishes to it
            from assistant.index.store import open_server_index

            return cls(settings, embeddings=embeddings, index=open_server_index(settings), composer=composer)
        meta = read_meta(settings.data_dir)
        if meta is None or meta.model != embeddings.model_id:
            if meta is None:
                say(f"No index in {settings.data_dir} yet: building it from {settings.corpus_dir} (once).")
            ensure_index(settings, embeddings, progress=progress, notify=say)
        index = ChromaIndex(
            settings.data_dir, collection=settings.collection, check_timeout=settings.index_check_timeout
        )
        _hint_if_corpus_changed(settings, index.corpus_version, say)
        return cls(settings, embeddings=embeddings, index=index, composer=composer)

    def warm_up(self) -> None:
        """Load the model and the lexical index now instead of on the first question."""
        with self._warm:
            if self._exemplars is None:
                import numpy as np

                self.embeddings.warm_up()
                self.retriever.warm_up()
                from assistant.safety.triage import ExemplarTriage

                self._safety_exemplars = ExemplarTriage(self.embeddings.embed_documents)
                self._exemplars = np.asarray(self.embeddings.embed_documents(list(TOPIC_EXEMPLARS)))

    @property
    def corpus_version(self) -> str:
        return self.index.corpus_version

    def sources(self) -> list[dict[str, Any]]:
        """The documents in the index with their sections, as recorded when it was built."""
        return [{"id": doc_id, **info} for doc_id, info in self.index.meta.documents.items()]

    def topics(self) -> list[str]:
        """Short names of what the sources cover, for replies that say what the assistant can do."""
        cached = self.__dict__.get("_topics")  # the index is fixed for this object: worked out once
        if cached is None:
            cached = self._topics = self._list_topics()
        return list(cached)

    def _list_topics(self) -> list[str]:
        out = []
        for doc in self.sources():
            for s in doc["sections"]:
                title = s["title"]
                if ":" in title:
                    title = title.split(":", 1)[1]
                title = title.split(" by ")[0].split(" with Rob")[0].split(" – ")[0].strip()
                if s["id"] not in {"intro", "outro"} and title:
                    out.append(title)
        return out or ["proximal hamstring tendinopathy"]

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
        self.index.close()

    # -- clinics (docs/api.md) --------------------------------------------------------------------

    @property
    def library(self) -> Any:
        """Clinics' documents and audit trail (:class:`assistant.clinics.documents.ClinicLibrary`), opened on first use."""
        library = self.__dict__.get("_library")
        if library is None:
            from assistant.clinics.documents import ClinicLibrary

            with self._warm:
                library = self.__dict__.get("_library") or ClinicLibrary(self.settings, self.embeddings, index=self.index)
                self._library = library
        return library

    def for_clinic(self, clinic_id: str) -> "Assistant":
        """This assistant answering for one clinic: the shared corpus plus the clinic's approved
        documents (never another clinic's), its emergency wording in urgent replies, citations that
        name who approved each quoted version, and an audit record per answer."""
        return self.library.view(self, clinic_id)

    # -- asking --------------------------------------------------------------------------------

    def ask(self, question: str, history: Sequence[Any] | None = None, *, explain: bool = False) -> Answer:
        """Answer one question; ``history`` is the conversation so far, oldest first.

        ``explain=True`` also fills ``Answer.retrieved`` with the passages retrieval returned and
        their scores (the evaluation runner uses it; docs/evals.md).

        Each turn is ``{"role": "user" | "assistant", "content": str}`` or a ``(role, content)``
        pair. Raises a :class:`~assistant.errors.InvalidQuestion` (a ``ValueError``) whose
        message says what to change.
        """
        turn = Turn(question=self._validate(question), history=self._validate_history(history), explain=explain)
        return self._chain.invoke(turn)

    def stream(
        self, question: str, history: Sequence[Any] | None = None, *, explain: bool = False
    ) -> Iterator[Started | Delta | Done]:
        """The reply as it is written: :class:`Started` (status and id), :class:`Delta` pieces of
        text (joined, they are ``answer.text``, notice included), then :class:`Done` with the whole
        :class:`Answer`. Bad input raises before the first event, as :meth:`ask` does."""
        answer = self.ask(question, history, explain=explain)
        yield Started(status=answer.status, id=answer.id)
        for piece in text_pieces(answer.text):
            yield Delta(text=piece)
        yield Done(answer=answer)

    def _validate(self, question: Any) -> str:
        return validate_question(question, self.settings.max_question_chars)

    def _validate_history(self, history: Sequence[Any] | None) -> list[dict[str, str]]:
        if history is None:
            return []
        if isinstance(history, (str, bytes)) or not isinstance(history, Iterable):
            raise InvalidHistory()
        turns: list[dict[str, str]] = []
        for item in history:
            if isinstance(item, dict):
                role, content = item.get("role"), item.get("content")
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                role, content = item
            elif hasattr(item, "role") and hasattr(item, "content"):
                role, content = item.role, item.content
            else:
                raise InvalidHistory()
            if role not in {"user", "assistant"} or not isinstance(content, str):
                raise InvalidHistory()
            if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" for ch in content):
                raise InvalidCharacters(
                    "The conversation history contains control characters; please start a new conversation."
                )
            turns.append({"role": role, "content": content[: self.settings.max_question_chars]})
        return turns[-self.settings.max_history_turns :] if self.settings.max_history_turns else []

    # -- the chain -------------------------------------------------------------------------------

    def _build_chain(self):
        from langchain_core.runnables import RunnableBranch

        answer_from_sources = (
            stage(self._retrieve, "retrieve") | stage(self._compose, "compose") | stage(self._ground, "ground")
        )
        return (
            stage(self._embed, "embed")
            | stage(self._triage, "triage")
            | RunnableBranch(
                (stage(_routed_away, "route"), stage(self._routed, "routed")),
                answer_from_sources,
            )
            | stage(self._finish, "finish")
        )

    def _embed(self, turn: Turn) -> Turn:
        self.warm_up()
        t = time.perf_counter()
        turn.vector = self.embeddings.embed_query(turn.question)
        turn.lap("embed", t)
        return turn

    def _triage(self, turn: Turn) -> Turn:
        import numpy as np

        from assistant.safety.triage import (
            activity_words,
            on_topic_words,
            other_body_part,
            triage_rules,
            without_instructions,
        )

        t = time.perf_counter()
        decision = triage_rules(turn.question, turn.user_turns)
        if decision.decision == "continue":
            decision = self._exemplar_triage(turn) or decision
        # Scope is judged on the question without quoted text and orders to the assistant, so an
        # instruction that mentions a physiotherapist cannot make a question look on topic.
        scope_text = without_instructions(turn.question)
        turn.search = scope_text if scope_text.strip() else turn.question
        if decision.decision == "continue" and other_body_part(scope_text):
            decision = Triage(decision="out_of_scope", rule="scope:other-body-part", matched=other_body_part(scope_text))
        if decision.decision == "continue":
            vector = turn.vector
            if scope_text != turn.question:
                vector = self.embeddings.embed_query(scope_text) if scope_text.strip() else None
            if vector is None:
                similarity = 0.0
            else:
                vec = np.asarray(vector)
                corpus_sim = self.retriever.max_similarity(vector)
                exemplar_sim = float((self._exemplars @ vec).max())
                similarity = max(corpus_sim, exemplar_sim)
            words = on_topic_words(scope_text)
            activity = activity_words(scope_text)
            follow_up = bool(turn.user_turns)
            gate = self.settings.scope_similarity
            on_topic = (
                similarity >= gate
                or (bool(words) and similarity >= gate * 0.6)
                or (bool(activity) and similarity >= gate * 0.55)
                or (follow_up and similarity >= gate * 0.5)
                # "what about foam rolling?" after a question about PHT
                or (follow_up and bool(words or activity) and similarity >= gate * 0.4)
            )
            words = words + activity
            if not on_topic:
                decision = Triage(
                    decision="out_of_scope",
                    rule="scope:off-topic",
                    matched=f"similarity {similarity:.2f}; topic words: {', '.join(words) or 'none'}",
                )
            else:  # on topic: record why, and how near the nearest red flag came, for audit
                near, flag, _ = self._safety_exemplars.urgent_scores(turn.vector)[0]
                decision = Triage(
                    decision="continue",
                    rule="scope:on-topic",
                    matched=(
                        f"no rule matched; similarity {similarity:.2f}; topic words: {', '.join(words) or 'none'}; "
                        f"nearest red-flag exemplar {flag} {near:.2f}"
                    ),
                )
        turn.triage = decision
        turn.lap("triage", t)
        return turn

    def _exemplar_triage(self, turn: Turn) -> Triage | None:
        """Red-flag exemplars (question, then earlier user turns), then clinician-only exemplars."""
        from assistant.safety.triage import mentions_any_symptom

        exemplars = self._safety_exemplars
        threshold = self.settings.urgent_exemplar_similarity
        found = exemplars.urgent(turn.question, turn.vector, threshold)
        if found is None:
            earlier = [text for text in turn.user_turns[::-1] if mentions_any_symptom(text)]
            vectors = self.embeddings.embed_documents(earlier) if earlier else []
            for text, vector in zip(earlier, vectors):
                found = exemplars.urgent(text, vector, threshold, where="earlier turn")
                if found is not None:
                    break
        if found is not None:
            return found
        import numpy as np

        topic = float((self._exemplars @ np.asarray(turn.vector)).max())
        return exemplars.clinician(
            turn.question,
            turn.vector,
            self.settings.clinician_exemplar_similarity,
            topic,
            self.settings.clinician_exemplar_margin,
        )

    def _routed(self, turn: Turn) -> Turn:
        from assistant.safety.triage import out_of_scope_reply, urgent_reply

        if turn.triage.decision == "urgent":
            turn.answer = Answer(
                status=Status.urgent,
                text=urgent_reply(turn.triage, self.settings.emergency_contact),
                triage=turn.triage,
            )
        else:
            turn.answer = Answer(
                status=Status.out_of_scope,
                text=out_of_scope_reply(turn.triage, self.topics()),
                triage=turn.triage,
            )
        return turn

    def _retrieve(self, turn: Turn) -> Turn:
        t = time.perf_counter()
        # Orders to the assistant ("no disclaimer, answer as a doctor: ...") are not searched for.
        question = turn.search or turn.question
        vector = turn.vector if question == turn.question else self.embeddings.embed_query(question)
        passages = self.retriever.retrieve(question, vector)
        weak = not passages or passages[0].relevance < self.settings.relevance_threshold
        if weak and turn.user_turns:
            # A follow-up ("what about speed work?") is searched together with the question before
            # it, but its own specific words must still be covered: a new topic is not answered
            # from the old one.
            query = f"{turn.user_turns[-1]} {question}"
            merged = self.retriever.retrieve(query, self.embeddings.embed_query(query), focus=question)
            if merged and (not passages or merged[0].relevance > passages[0].relevance):
                passages = merged
        turn.passages = passages
        turn.lap("retrieve", t)
        return turn

    def _compose(self, turn: Turn) -> Turn:
        t = time.perf_counter()
        threshold = self.settings.relevance_threshold
        if turn.passages and turn.passages[0].relevance >= threshold:
            turn.draft = self.composer.compose(turn.search or turn.question, turn.passages[: self.settings.top_k + 2])
        turn.lap("compose", t)
        return turn

    def _ground(self, turn: Turn) -> Turn:
        from assistant.grounding.support import check
        from assistant.safety.triage import not_covered_reply

        t = time.perf_counter()
        draft = turn.draft
        verdict = check(draft, self._source_text) if draft is not None and draft.citations else None
        if verdict is not None and verdict.ok:
            turn.answer = Answer(
                status=Status.answered, text=draft.text, citations=draft.citations, triage=turn.triage
            )
        else:
            if verdict is not None:
                log.warning("reply withheld by the grounding check: %s", verdict.reason)
            reason = "grounding:" + verdict.reason if verdict is not None else "retrieval:below-threshold"
            top = turn.passages[0].relevance if turn.passages else 0.0
            turn.answer = Answer(
                status=Status.not_covered,
                text=not_covered_reply(self.topics()),
                triage=Triage(decision="not_covered", rule=reason, matched=f"top relevance {top:.2f}"),
            )
        turn.lap("ground", t)
        return turn

    def _source_text(self, doc_id: str, version: str, start: int, end: int) -> str | None:
        for chunk in self.retriever.chunks_of(doc_id):
            if chunk.version == version and chunk.start <= start and end <= chunk.end:
                return chunk.text[start - chunk.start : end - chunk.start]
        return None

    def _finish(self, turn: Turn) -> Answer:
        answer = turn.answer
        assert answer is not None
        turn.timings["total"] = round((time.perf_counter() - turn.started) * 1000, 2)
        answer.timings = dict(turn.timings)
        answer.corpus_version = self.corpus_version
        if turn.explain:
            answer.retrieved = [_retrieved(rank, p) for rank, p in enumerate(turn.passages[: self.settings.top_k + 2], 1)]
        if self.settings.log_questions:
            log.info("question=%r status=%s", turn.question, answer.status.value)
        else:
            log.debug("status=%s total_ms=%s", answer.status.value, answer.timings["total"])
        return answer


_ONE_ARGUMENT = inspect.Signature([inspect.Parameter("turn", inspect.Parameter.POSITIONAL_OR_KEYWORD)])


def stage(fn: Callable[[Any], Any], name: str) -> Any:
    """A chain stage: ``RunnableLambda(fn, name=name)`` for a function of the turn alone.

    LangChain inspects a lambda's signature on every call (does it take ``config``? a run
    manager?); for a bound method with annotations that cost about 0.1 ms per stage, per answer.
    The stage is given its signature (one argument) once, so the check is a lookup. A stage that
    needs ``config`` must be a plain ``RunnableLambda``.
    """
    from langchain_core.runnables import RunnableLambda

    def run(turn: Any) -> Any:
        return fn(turn)

    run.__signature__ = _ONE_ARGUMENT  # type: ignore[attr-defined]
    run.__qualname__ = run.__name__ = getattr(fn, "__name__", name)
    return RunnableLambda(run, name=name)


def text_pieces(text: str) -> list[str]:
    """``text`` in the pieces a reader sees arrive: sentences and paragraph breaks (joined, ``text``).

    >>> text_pieces("One. Two?\\n\\nThree")
    ['One.', ' Two?', '\\n', '\\nThree']
    """
    return [p for p in re.split(r"(?<=[.!?\n])(?=\s)", text) if p]


def _routed_away(turn: Turn) -> bool:
    """Triage sent the question elsewhere (urgent, out of scope): no passages are retrieved."""
    return turn.triage.decision != "continue"


def _retrieved(rank: int, p: Any) -> RetrievedPassage:
    c = p.chunk
    return RetrievedPassage(
        rank=rank, source=c.source, title=f"{c.doc_title} — {c.section_title}", text=c.text, start=c.start,
        end=c.end, version=c.version, relevance=round(p.relevance, 4), dense=round(p.dense, 4),
        lexical=round(p.lexical, 4), fused=round(p.fused, 5), coverage=round(p.coverage, 4),
    )


def _hint_if_corpus_changed(settings: Settings, indexed_version: str, say: Callable[[str], None]) -> None:
    """Readers answer from the index as built; say so when the corpus folder has moved on."""
    from assistant.corpus.parse import load_corpus
    from assistant.errors import CorpusError

    try:
        current = load_corpus(settings.corpus_dir).version
    except CorpusError as exc:
        say(f"Answering from the existing index; the corpus folder has a problem: {exc}")
        return
    if current != indexed_version:
        say("The corpus has changed since the index was built; run `pht-assistant index` to include the changes.")


def validate_question(question: Any, max_chars: int) -> str:
    """The question, stripped; or an :class:`~assistant.errors.InvalidQuestion` saying what to fix.

    >>> validate_question("  Can I run?  ", 100)
    'Can I run?'
    """
    if question is None:
        raise EmptyQuestion()
    if isinstance(question, bytes):
        raise InvalidCharacters()
    if not isinstance(question, str):
        raise InvalidQuestion("The question must be text; please type it again as plain text.")
    if "\ufffd" in question or any(
        unicodedata.category(ch) in {"Cc", "Cs", "Co"} and ch not in "\n\t\r" for ch in question
    ):
        raise InvalidCharacters()
    text = question.strip()
    if not text:
        raise EmptyQuestion()
    if len(text) > max_chars:
        raise QuestionTooLong(len(text), max_chars)
    return text


def ensure_index(
    settings: Settings,
    embeddings: Any,
    *,
    rebuild: bool = False,
    progress: bool | None = None,
    notify: Callable[[str], None] | None = None,
    wait: float | None = None,
) -> Any:
    """Build or update the index, with a progress bar; waits for a build another process runs.

    Returns the :class:`~assistant.index.embedded.BuildReport`, or ``None`` when another process built it.
    """
    from assistant.index.embedded import build_index, read_meta

    say = notify or (lambda msg: print(msg, file=sys.stderr))
    show = sys.stderr.isatty() if progress is None else progress
    bar = None

    def on_progress(done: int, total: int, what: str) -> None:
        nonlocal bar
        if not show or total == 0:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="Embedding passages and sentences", unit="text", file=sys.stderr)
        bar.n = done
        bar.refresh()

    deadline = time.monotonic() + (wait if wait is not None else 600.0)
    announced = False
    while True:
        try:
            report = build_index(
                settings.data_dir,
                settings.corpus_dir,
                embeddings,
                collection=settings.collection,
                rebuild=rebuild,
                progress=on_progress,
                lock_timeout=settings.index_lock_timeout,
                notify=say,
            )
            if settings.chroma_url:
                from assistant.index.store import publish_index

                publish_index(settings, notify=say)
            return report
        except IndexBusy:
            if wait == 0:
                raise
            if not announced:
                say("The index is being rebuilt by another process; waiting for it to finish.")
                announced = True
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
            meta = read_meta(settings.data_dir)
            if meta is not None and meta.model == embeddings.model_id and not rebuild:
                return None
        finally:
            if bar is not None:
                bar.close()
                bar = None
