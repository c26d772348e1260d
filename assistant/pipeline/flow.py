"""The flow of one question through the stages, as one LangChain (LCEL) chain.

::

    embed ─► safety ─┬─ urgent, clinician-only ─────────────────────────────────────────► reply
                     └─ rewrite ─► retrieve ─► scope ─┬─ off topic ──────────────────────► reply
                                                      └─ answerability ─► compose ─► ground ─► reply
    reply ─► finish (timings, approvers, audit) ─► Answer

Each step reads what it needs from the :class:`Turn`, calls one stage through its contract
(:mod:`assistant.contracts`), and writes what it found back. Urgent and out-of-scope questions
leave before anything is composed; urgent ones before anything is retrieved. The chain is split in
two halves, :attr:`Flow.prepare` (up to the answerability judgement) and :attr:`Flow.respond`
(compose, check, finish), so a streaming composer can run between them.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.answer import Answer, Citation, RetrievedPassage, Status, Triage
from assistant.contracts import ComposerFailed, Draft, GroundingResult, Judgement, Passage, Query, StreamingComposer
from assistant.pipeline.context import Context
from assistant.pipeline.writing import SentenceCheck, passages_match, sentences
from assistant.safety import replies

log = logging.getLogger("assistant")


@dataclass
class Turn:
    """The state one question carries through the chain."""

    question: str
    history: list[dict[str, str]]
    context: Context
    explain: bool = False
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    vector: list[float] | None = None
    triage: Triage | None = None
    query: Query | None = None
    passages: list[Passage] = field(default_factory=list)
    nearest: float = 0.0
    judgement: Judgement | None = None
    draft: Draft | None = None
    verdict: GroundingResult | None = None
    answer: Answer | None = None
    answer_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # known before the reply is written
    note: str = ""  # what happened to a written reply (dropped sentences, a fallback)

    def lap(self, stage: str, since: float) -> None:
        self.timings[stage] = round((time.perf_counter() - since) * 1000, 2)

    @property
    def user_turns(self) -> list[str]:
        return [t["content"] for t in self.history if t["role"] == "user"]


@dataclass(frozen=True)
class Stages:
    """The stages a pipeline is assembled from (each behind its contract in assistant.contracts)."""

    embedder: Any  # LangChain Embeddings
    safety: Any  # SafetyTriage
    rewriter: Any  # Rewriter
    scope: Any  # Scope
    answerability: Any  # Answerability
    composer: Any  # Composer
    quoter: Any  # the extractive composer: quotes for not-covered replies, whatever the composer
    grounding: Any  # GroundingCheck
    rules: Any  # assistant.safety.rules.Rules, for the replies that name a flag or a decision
    top_k: int = 3
    log_questions: bool = False
    commit_after: int = 2  # verified sentences of a written reply before it is shown
    min_kept_share: float = 0.5  # below this share of verified sentences, the extractive reply instead
    on_composed: Callable[[str, str], None] | None = None  # (composer, outcome) for metrics


class Flow:
    """The chain over a set of :class:`Stages`."""

    def __init__(self, stages: Stages) -> None:
        self.stages = stages
        self._chains: tuple[Any, Any, Any] | None = None

    def _build(self) -> tuple[Any, Any, Any]:
        """The LCEL chain, in its two halves (built on first use: importing LangChain's runnables
        and tracers costs a new process most of a second)."""
        if self._chains is None:
            from langchain_core.runnables import RunnableBranch

            decided = stage(_decided, "decided")
            after_scope = RunnableBranch((decided, _identity()), stage(self.judge, "answerability"))
            after_safety = RunnableBranch(
                (decided, _identity()),
                stage(self.rewrite, "rewrite") | stage(self.retrieve, "retrieve") | stage(self.scope, "scope") | after_scope,
            )
            prepare = stage(self.embed, "embed") | stage(self.safety, "safety") | after_safety
            respond = stage(self.compose, "compose") | stage(self.ground, "ground") | stage(self.finish, "finish")
            self._chains = (prepare, respond, prepare | respond)
        return self._chains

    @property
    def prepare(self) -> Any:
        """The first half as a LangChain runnable: embed ... answerability."""
        return self._build()[0]

    @property
    def respond(self) -> Any:
        """The second half as a LangChain runnable: compose, ground, finish."""
        return self._build()[1]

    @property
    def chain(self) -> Any:
        """The whole chain as one LangChain runnable."""
        return self._build()[2]

    # -- running it -----------------------------------------------------------------------------
    # LangChain's bookkeeping for each step (a config, a callback manager, a context) costs about as
    # much as the pipeline's own work, about 2 ms an answer, and serves whoever listens to the run: a
    # tracer (the API's OpenTelemetry stage spans, LangSmith). With nobody listening, the same steps
    # are called in the same order directly (tests/test_pipeline.py holds the two ways equal).

    def run(self, turn: Turn) -> Answer:
        """The whole chain for one turn (one run for a listener: its stages under one ``answer``)."""
        if listened():
            return self.chain.invoke(turn)
        return self.run_respond(self.run_prepare(turn))

    def run_prepare(self, turn: Turn) -> Turn:
        """Up to the answerability judgement (or a reply decided before it)."""
        if listened():
            return self.prepare.invoke(turn)
        turn = self.safety(self.embed(turn))
        if turn.answer is None:
            turn = self.scope(self.retrieve(self.rewrite(turn)))
            if turn.answer is None:
                turn = self.judge(turn)
        return turn

    def run_respond(self, turn: Turn) -> Answer:
        """Compose, check and finish."""
        if listened():
            return self.respond.invoke(turn)
        return self.finish(self.ground(self.compose(turn)))

    # -- the steps, in order --------------------------------------------------------------------

    def embed(self, turn: Turn) -> Turn:
        t = time.perf_counter()
        turn.vector = self.stages.embedder.embed_query(turn.question)
        turn.lap("embed", t)
        return turn

    def safety(self, turn: Turn) -> Turn:
        t = time.perf_counter()
        turn.triage = self.stages.safety.triage(turn.question, turn.vector, turn.user_turns)
        if turn.triage.decision == "urgent":
            text = replies.urgent_reply(turn.triage, self.stages.rules, turn.context.emergency_contact)
            turn.answer = Answer(id=turn.answer_id, status=Status.urgent, text=text, triage=turn.triage)
        elif turn.triage.decision == "out_of_scope":
            text = replies.out_of_scope_reply(turn.triage, self.stages.rules, list(turn.context.topics))
            turn.answer = Answer(id=turn.answer_id, status=Status.out_of_scope, text=text, triage=turn.triage)
        turn.lap("triage", t)
        return turn

    def rewrite(self, turn: Turn) -> Turn:
        t = time.perf_counter()
        # misspellings become the sources' own spelling ("cusion" -> "cushion") from here on
        spelled = turn.context.retriever.spelled(turn.question)
        vector = turn.vector if spelled == turn.question else None
        turn.query = self.stages.rewriter.rewrite(spelled, vector, turn.history)
        turn.lap("rewrite", t)
        return turn

    def retrieve(self, turn: Turn) -> Turn:
        t = time.perf_counter()
        retriever = turn.context.retriever
        turn.passages = retriever.retrieve(turn.query)
        turn.nearest = retriever.nearest(turn.query.vector)
        turn.lap("retrieve", t)
        return turn

    def scope(self, turn: Turn) -> Turn:
        t = time.perf_counter()
        decision = self.stages.scope.judge(turn.query, turn.nearest, bool(turn.user_turns))
        safety_note = turn.triage.matched if turn.triage else ""
        if decision.decision == "out_of_scope":
            turn.triage = decision
            text = replies.out_of_scope_reply(decision, self.stages.rules, list(turn.context.topics))
            turn.answer = Answer(id=turn.answer_id, status=Status.out_of_scope, text=text, triage=decision)
        else:
            matched = "; ".join(filter(None, ["no rule matched", decision.matched, safety_note]))
            turn.triage = Triage(decision="continue", rule=decision.rule, matched=matched)
        turn.lap("scope", t)
        return turn

    def judge(self, turn: Turn) -> Turn:
        t = time.perf_counter()
        turn.judgement = self.stages.answerability.judge(turn.query, turn.passages, turn.context.retriever)
        turn.lap("answerability", t)
        return turn

    def compose(self, turn: Turn) -> Turn:
        if turn.answer is not None or turn.judgement is None:
            return turn
        t = time.perf_counter()
        if turn.judgement.answerable:
            for _ in self.write(turn):  # a writing composer's sentences, checked; nobody is waiting for them here
                pass
        turn.lap("compose", t)
        return turn

    def write(self, turn: Turn) -> Any:
        """Compose the reply; for a writing composer (a language model), yield each sentence as it
        passes the grounding check, once the reply is committed to (see :class:`Stages`). Sets
        ``turn.draft``: the written reply, or the extractive one when the writer failed or too
        little of what it wrote was supported (``turn.note`` says which)."""
        composer = turn.context.composer or self.stages.composer
        judgement, focus = turn.judgement, turn.query.focus
        if not isinstance(composer, StreamingComposer):
            turn.draft = composer.compose(focus, judgement)
            return
        citations = composer.citations(judgement)
        if not passages_match(citations, turn.context.retriever):
            turn.note = "extractive instead: the passages given to the writer do not match the sources"
            self._composed(composer.name, "fallback:citations")
            turn.draft = self.stages.quoter.compose(focus, judgement)
            return
        check = SentenceCheck(citations, self.stages.grounding)
        pending: list[str] = []
        committed, failure = False, ""
        try:
            for sentence in sentences(composer.stream(focus, judgement)):
                good = check.verify(sentence)
                if good is None:
                    continue
                piece = good if len(check.kept) == 1 else " " + good
                if committed:
                    yield piece
                    continue
                pending.append(piece)
                if len(check.kept) >= self.stages.commit_after:
                    committed = True
                    yield from pending
        except ComposerFailed as exc:
            failure = exc.reason
            kept = "keeping what was shown" if committed else "answering extractively"
            log.warning("the %s composer failed (%s); %s", composer.name, exc.reason, kept)
        if not committed and (failure or not check.enough(self.stages.min_kept_share)):
            why = failure or (
                "nothing it wrote was supported" if not check.kept else f"only {len(check.kept)} of {check.total} sentences supported"
            )
            turn.note = f"extractive instead: {why}"
            self._composed(composer.name, f"fallback:{failure or 'unsupported'}")
            turn.draft = self.stages.quoter.compose(focus, judgement)
            return
        if not committed:
            yield from pending
        if check.dropped:
            turn.note = f"{len(check.dropped)} of {check.total} sentences dropped by the grounding check"
        self._composed(composer.name, "dropped" if check.dropped else ("partial:" + failure if failure else "ok"))
        turn.draft = Draft(
            text=" ".join(check.kept),
            citations=check.kept_citations(),
            composer=composer.name,
            prompt_version=getattr(composer, "prompt_version", ""),
        )

    def _composed(self, composer: str, outcome: str) -> None:
        if self.stages.on_composed is not None:
            self.stages.on_composed(composer, outcome)

    def ground(self, turn: Turn) -> Turn:
        """The check every answered reply passes before anyone sees it; otherwise not covered."""
        if turn.answer is not None or turn.judgement is None:
            return turn
        t = time.perf_counter()
        draft, sources = turn.draft, turn.context.retriever
        turn.verdict = self.stages.grounding.check(draft, sources) if draft is not None and draft.citations else None
        if turn.verdict is not None and turn.verdict.ok:
            turn.answer = Answer(
                id=turn.answer_id,
                status=Status.answered,
                text=draft.text,
                citations=draft.citations,
                triage=turn.triage,
                composer=draft.composer,
                prompt_version=draft.prompt_version,
                composer_note=turn.note,
            )
        else:
            turn.answer = self.not_covered(turn)
        turn.lap("ground", t)
        return turn

    def not_covered(self, turn: Turn) -> Answer:
        """What the sources lack, in the patient's words, and the closest thing they do say (quoted
        and checked like any answer) when there is something close."""
        judgement = turn.judgement
        verdict = turn.verdict
        if verdict is not None:
            log.warning("reply withheld by the grounding check: %s", verdict.reason)
            rule, missing = "grounding:" + verdict.reason, ""
        elif turn.draft is not None:
            rule, missing = "grounding:no citations", ""
        else:
            rule, missing = "answerability:" + (judgement.reason or "not addressed"), judgement.missing
        nearest, citations = "", []
        if judgement.related and verdict is None:
            quoted = self.stages.quoter.quote(turn.query.focus, judgement.related[:1], framing="")
            if quoted.citations and self.stages.grounding.check(quoted, turn.context.retriever).ok:
                nearest, citations = quoted.text.strip(), quoted.citations
        top = turn.passages[0].relevance if turn.passages else 0.0
        return Answer(
            id=turn.answer_id,
            status=Status.not_covered,
            composer_note=turn.note,
            text=replies.not_covered_reply(list(turn.context.topics), missing=missing, nearest=nearest),
            citations=citations,
            triage=Triage(decision="not_covered", rule=rule, matched=f"top relevance {top:.2f}"),
        )

    def finish(self, turn: Turn) -> Answer:
        answer = turn.answer
        assert answer is not None
        ctx = turn.context
        turn.timings["total"] = round((time.perf_counter() - turn.started) * 1000, 2)
        answer.timings = dict(turn.timings)
        answer.corpus_version = ctx.corpus_version
        if turn.explain:
            shown = _ranked(turn)[: self.stages.top_k + 2]
            answer.retrieved = [_retrieved(rank, p) for rank, p in enumerate(shown, 1)]
        if ctx.clinic_id is not None and answer.citations:
            answer.citations = [_approved(c, ctx) for c in answer.citations]
        if ctx.on_answer is not None:
            ctx.on_answer(answer)
        if self.stages.log_questions:
            log.info("question=%r status=%s", turn.question, answer.status.value)
        else:
            log.debug("status=%s total_ms=%s", answer.status.value, answer.timings["total"])
        return answer


def listened() -> bool:
    """Whether LangChain would report a run to anyone: a tracer a configure hook holds for this
    request (the API's OpenTelemetry stage tracer, a LangSmith context) or LangSmith tracing turned
    on in the environment. When it cannot tell, it says yes (the chain then runs as LangChain's)."""
    import sys

    hooks = sys.modules.get("langchain_core.tracers.context")
    if hooks is None:  # nothing has registered a tracer hook in this process; LangSmith may still be on
        return any(_truthy(v) for v in ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING"))
    try:
        for var, _, handler, env_var in hooks._configure_hooks:
            if var.get() is not None or (handler is not None and env_var and _truthy(env_var)):
                return True
        return bool(hooks._tracing_v2_is_enabled())
    except Exception:  # a LangChain that changed these internals: keep its own way
        return True


def _truthy(name: str) -> bool:
    import os

    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


_ONE_ARGUMENT = inspect.Signature([inspect.Parameter("turn", inspect.Parameter.POSITIONAL_OR_KEYWORD)])


def stage(fn: Callable[[Any], Any], name: str) -> Any:
    """A chain step: ``RunnableLambda(fn, name=name)`` for a function of the turn alone.

    LangChain inspects a lambda's signature on every call (does it take ``config``? a run
    manager?); for a bound method with annotations that cost about 0.1 ms per step, per answer.
    The step is given its signature (one argument) once, so the check is a lookup.
    """
    from langchain_core.runnables import RunnableLambda

    def run(turn: Any) -> Any:
        return fn(turn)

    run.__signature__ = _ONE_ARGUMENT  # type: ignore[attr-defined]
    run.__qualname__ = run.__name__ = getattr(fn, "__name__", name)
    return RunnableLambda(run, name=name)


def _identity() -> Any:
    return stage(lambda turn: turn, "decided")


def _decided(turn: Turn) -> bool:
    """A reply is already decided (urgent, clinician-only, off topic): nothing more is retrieved
    or composed."""
    return turn.answer is not None


def _ranked(turn: Turn) -> list[Passage]:
    """Retrieval's passages in the final order: those answerability put first, then the rest."""
    judged = list(turn.judgement.passages) if turn.judgement and turn.judgement.answerable else []
    seen = {p.chunk.id for p in judged}
    return judged + [p for p in turn.passages if p.chunk.id not in seen]


def _approved(citation: Citation, ctx: Context) -> Citation:
    doc_id = citation.source.split("#", 1)[0]
    who = ctx.approvers.get(doc_id)
    if who is None:
        who = (ctx.retriever.documents().get(doc_id) or {}).get("reviewed_by") or None
    return citation.model_copy(update={"approved_by": who})


def _retrieved(rank: int, p: Passage) -> RetrievedPassage:
    c = p.chunk
    return RetrievedPassage(
        rank=rank, source=c.source, title=f"{c.doc_title} — {c.section_title}", text=c.text, start=c.start,
        end=c.end, version=c.version, relevance=round(p.relevance, 4), dense=round(p.dense, 4),
        lexical=round(p.lexical, 4), fused=round(p.fused, 5), coverage=round(p.coverage, 4),
    )  # fmt: skip
