"""Stage contracts: what each stage of the pipeline takes and gives.

The pipeline (:mod:`assistant.pipeline`) is assembled from these stages and calls them only
through the methods declared here, so any class that has them fits:

========================  =====================================================================
stage                     contract
========================  =====================================================================
embedder                  LangChain's ``Embeddings`` (``embed_query``, ``embed_documents``);
                          ``model_id``, ``warm_up`` and ``embed_for_index`` are used when present
safety triage             :class:`SafetyTriage`: red flags and clinician-only decisions
rewriter                  :class:`Rewriter`: a follow-up understood with the conversation
retriever                 :class:`Retriever` (and the :class:`Sources` it searches)
scope                     :class:`Scope`: is the question about PHT at all
answerability             :class:`Answerability`: do the passages address what was asked
composer                  :class:`Composer`: a reply with numbered citations
grounding check           :class:`GroundingCheck`: every sentence supported by what it cites
========================  =====================================================================

Every stage may have a ``warm_up()`` that loads what it needs once (``Assistant.warm_up`` calls
each). The data the stages pass along are the small classes below.

>>> from assistant.contracts import Query
>>> Query(text="and how heavy?", vector=[0.0], focus="and how heavy?").expanded
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from assistant.answer import Citation, Triage
from assistant.corpus.parse import Chunk, Unit

# Lines a composer may write around its quotes that carry no content of their own: the grounding
# check lets them stand without a citation. Nothing else may.
FRAMING_LINES = (
    "Here is what my sources say, quoted as written:",
    "The closest thing they say, quoted as written:",
)

# -- what travels between stages ----------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """What retrieval searches for, and what the answer must address.

    ``text`` is what is searched: the question, or a short follow-up expanded with the turn it
    follows. ``focus`` is the patient's own question (without orders to the assistant), with the
    words it refers back to filled in; answerability judges the passages against it.
    """

    text: str
    vector: Sequence[float]
    focus: str
    expanded: bool = False  # text was expanded with earlier turns
    context: str = ""  # the earlier words a follow-up was understood with


@dataclass
class Passage:
    """A retrieved passage with the evidence for it."""

    chunk: Chunk
    relevance: float  # calibrated 0..1: how likely this passage answers the question
    dense: float  # best unit similarity, hubness-corrected
    lexical: float  # BM25 score
    fused: float  # reciprocal-rank-fusion score (orders the passages)
    coverage: float  # share of the question's specific words found in the passage
    units: list[tuple[Unit, float]] = field(default_factory=list)  # every unit, text order, raw similarity


@dataclass
class Judgement:
    """What answerability found: whether to answer, from which passages, and what is missing.

    ``passages`` are those worth citing, best first (reordered by how well they address the
    focus). When ``answerable`` is False, ``missing`` names what the sources lack in the patient's
    words ("shockwave therapy", "how long PHT takes to heal"), and ``related`` may hold a passage
    that says something close, to quote after saying so.
    """

    answerable: bool
    passages: list[Passage] = field(default_factory=list)
    missing: str = ""
    related: list[Passage] = field(default_factory=list)
    reason: str = ""
    sentences: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # chunk id -> spans that address the focus


@dataclass
class Draft:
    """A composed reply before the safety notice and the checks are added."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    composer: str = "extractive"
    prompt_version: str = ""


@dataclass(frozen=True)
class SentenceSupport:
    """How one sentence of a reply is supported by the passages it cites."""

    sentence: str
    cited: tuple[int, ...]
    supported: bool
    score: float
    verbatim: bool
    reason: str = ""


@dataclass(frozen=True)
class GroundingResult:
    ok: bool
    reason: str = ""
    sentences: tuple[SentenceSupport, ...] = ()


# -- the stages ----------------------------------------------------------------------------------


@runtime_checkable
class Sources(Protocol):
    """The indexed text a retriever searches: for quoting, checking quotes and judging coverage."""

    def chunks_of(self, doc_id: str) -> list[Chunk]: ...

    def text_at(self, doc_id: str, version: str, start: int, end: int) -> str | None:
        """The indexed text of that document version at those offsets, or ``None``."""
        ...

    def vocabulary(self) -> frozenset[str]:
        """Every index term (stemmed word) the passages use."""
        ...

    def spelled(self, text: str) -> str:
        """``text`` with misspelt words replaced by the spelling the passages use."""
        ...

    def documents(self) -> dict[str, dict[str, Any]]:
        """Document id -> what the index records of it (title, version, reviewer, sections)."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """Question in, passages best first out."""

    def warm_up(self) -> None: ...

    def retrieve(self, query: Query) -> list[Passage]: ...

    def nearest(self, vector: Sequence[float]) -> float:
        """Similarity of a vector to its nearest sentence anywhere in the sources."""
        ...


@runtime_checkable
class SafetyTriage(Protocol):
    """Urgent symptoms and clinician-only decisions, found before anything is retrieved."""

    def warm_up(self) -> None: ...

    def triage(self, question: str, vector: Sequence[float], earlier: list[str]) -> Triage | None:
        """A decision (``urgent`` or ``out_of_scope``) or ``None`` to go on; ``earlier`` are the
        conversation's earlier user turns, newest last."""
        ...


@runtime_checkable
class Rewriter(Protocol):
    """A short or elliptical follow-up, understood with the conversation before it."""

    def rewrite(self, question: str, vector: Sequence[float] | None, history: list[dict[str, str]]) -> Query:
        """``vector`` is the question's vector when it is at hand (``None``: the rewriter embeds it)."""
        ...


@runtime_checkable
class Scope(Protocol):
    """Whether a question is about PHT, its rehab and running at all."""

    def warm_up(self) -> None: ...

    def judge(self, query: Query, nearest: float, follow_up: bool) -> Triage:
        """``Triage(decision="continue", ...)`` when on topic, else ``out_of_scope`` with the reason."""
        ...


@runtime_checkable
class Answerability(Protocol):
    """Whether the passages address what was asked (and which of them do)."""

    def judge(self, query: Query, passages: list[Passage], sources: Sources) -> Judgement: ...


@runtime_checkable
class Composer(Protocol):
    """A reply from the passages worth citing: numbered citations, nothing beyond them."""

    name: str

    def compose(self, question: str, judgement: Judgement) -> Draft: ...


@runtime_checkable
class StreamingComposer(Protocol):
    """A composer that writes its own sentences (a language model) and hands them out as it goes.

    The pipeline shows the writer the passages :meth:`citations` numbers, reads the text
    :meth:`stream` yields, checks each complete sentence against the passages it cites before anyone
    sees it (:mod:`assistant.grounding.support`), drops what is not supported, and falls back to the
    extractive composer when too little is left or the writer fails (:class:`ComposerFailed`).
    """

    name: str
    prompt_version: str

    def citations(self, judgement: Judgement) -> list[Citation]:
        """The passages the writer is shown, numbered as it must cite them."""
        ...

    def stream(self, question: str, judgement: Judgement) -> Iterator[str]:
        """The reply's text as it is written; raises :class:`ComposerFailed` when it cannot."""
        ...


class ComposerFailed(Exception):
    """A composer could not write a reply (its service is down, slow, refusing, or talks nonsense);
    ``reason`` is a short word for metrics: ``timeout``, ``unavailable``, ``rate-limited``, ``malformed``..."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@runtime_checkable
class GroundingCheck(Protocol):
    """Every sentence of a reply supported by the passages it cites."""

    def check(self, draft: Draft, sources: Sources) -> GroundingResult: ...

    def support(self, sentence: str, quotes: Sequence[str]) -> SentenceSupport:
        """One sentence against the text of the passages it cites."""
        ...


def model_id_of(embedder: Any) -> str:
    """The embedder's model id, or its class name when it does not say."""
    return str(getattr(embedder, "model_id", "") or type(embedder).__name__)


def embed_for_index(embedder: Any, texts: list[str], progress: Callable[[int], None] | None = None) -> list[list[float]]:
    """Vectors for the index: the embedder's ``embed_for_index`` when it has one (with progress),
    else plain ``embed_documents`` (any LangChain ``Embeddings``), reporting progress once."""
    method = getattr(embedder, "embed_for_index", None)
    if callable(method):
        return method(texts, progress=progress)
    vectors = embedder.embed_documents(texts)
    if progress:
        progress(len(texts))
    return vectors


def warm_up(stage: Any) -> None:
    """Call a stage's ``warm_up`` if it has one."""
    method: Callable[[], Any] | None = getattr(stage, "warm_up", None)
    if callable(method):
        method()
