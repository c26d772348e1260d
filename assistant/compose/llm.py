"""A clinic's own language model writes the reply; the pipeline checks every sentence before anyone sees it.

:class:`LLMComposer` is a writing composer (:class:`assistant.contracts.StreamingComposer`). It is
a LangChain runnable, the prompt of ``prompts/answer.toml`` piped into ``langchain-openai``'s
``ChatOpenAI`` pointed at an OpenAI-compatible endpoint (vLLM, llama.cpp's server, Ollama, a hosted
API). It shows the model the passages answerability found worth citing, numbered and quoted as data,
and streams the model's text back. It never decides what is shown: the flow
(:meth:`assistant.pipeline.flow.Flow.write`) splits the text into sentences, drops every sentence
that cites nothing or is not supported by the passage it cites (:mod:`assistant.grounding.support`),
and gives the extractive reply instead when too little is left or the endpoint fails. Failures
(down, slow, rate-limited, a 500, malformed JSON, a stream cut midway) become
:class:`~assistant.contracts.ComposerFailed` with a short reason for the metrics; the patient sees
no error.

Nothing here is built, imported or called unless ``PHT_LLM_BASE_URL`` (or a clinic's record) names an
endpoint: :func:`composer_from_settings` returns ``None`` otherwise.

>>> from assistant.settings import Settings
>>> composer_from_settings(Settings(llm_base_url="")) is None
True
>>> endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", model="m", api_key=SecretStr("sk-secret"))
>>> "sk-secret" in repr(endpoint) or "sk-secret" in endpoint.describe()
False
>>> load_prompt().version
'answer-1'
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from assistant.answer import Citation
from assistant.contracts import ComposerFailed, Judgement, Passage

log = logging.getLogger("assistant.compose.llm")

PROMPT_FILE = Path(__file__).with_name("prompts") / "answer.toml"


@dataclass(frozen=True)
class Prompt:
    """The versioned prompt: a system message and a user message with ``{passages}`` and ``{question}``."""

    version: str
    system: str
    user: str


@lru_cache(maxsize=4)
def load_prompt(path: Path = PROMPT_FILE) -> Prompt:
    """The prompt file, checked: a version, a system message, and a user message with both placeholders."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    prompt = Prompt(str(data.get("version", "")).strip(), str(data.get("system", "")), str(data.get("user", "")))
    if not prompt.version or not prompt.system.strip() or not all(p in prompt.user for p in ("{passages}", "{question}")):
        raise ValueError(f"{path} needs a version, a system message and a user message with {{passages}} and {{question}}")
    return prompt


@dataclass(frozen=True)
class Endpoint:
    """Where the model is and how long it may take. The key never appears in ``repr``, logs or errors."""

    base_url: str
    model: str
    api_key: SecretStr = field(default=SecretStr(""), repr=False)
    timeout: float = 20.0
    max_tokens: int = 400
    temperature: float = 0.0

    @classmethod
    def from_settings(cls, settings: Any) -> "Endpoint | None":
        if not settings.llm_base_url.strip():
            return None
        return cls(
            base_url=settings.llm_base_url.strip(),
            model=settings.llm_model.strip() or "default",
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
        )

    def describe(self) -> str:
        """The model and the endpoint's host, for health and reports (no path, query, user or key)."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or "?"
        return f"{self.model} at {host}{':' + str(parts.port) if parts.port else ''}"


def composer_from_settings(settings: Any, *, max_passages: int | None = None) -> "LLMComposer | None":
    """The language-model composer the settings name, or ``None`` when ``PHT_LLM_BASE_URL`` is unset."""
    endpoint = Endpoint.from_settings(settings)
    if endpoint is None:
        return None
    return LLMComposer(endpoint, max_passages=max_passages or settings.top_k)


def passages_block(citations: list[Citation]) -> str:
    """The numbered passages as the model reads them: each quoted inside its own tags, as data.

    A passage that contains the closing tag cannot end its quote early: the tag is broken up.

    >>> c = Citation(n=1, source="d#s", title="Leaflet — Rest", quote="Rest a little.", start=0, end=14, score=1.0, version="v")
    >>> print(passages_block([c]))
    <passage number="1" title="Leaflet — Rest">
    Rest a little.
    </passage>
    """
    out = []
    for c in citations:
        text = c.quote.replace("</passage", "</ passage").replace("<passage", "< passage")
        title = c.title.replace('"', "'")
        out.append(f'<passage number="{c.n}" title="{title}">\n{text.strip()}\n</passage>')
    return "\n\n".join(out)


class LLMComposer:
    """Writes the reply with a language model at an OpenAI-compatible endpoint (see the module)."""

    def __init__(self, endpoint: Endpoint, *, max_passages: int = 3, prompt: Prompt | None = None) -> None:
        self.endpoint = endpoint
        self.max_passages = max_passages
        self.prompt = prompt or load_prompt()
        self.name = f"llm:{endpoint.model}"
        self.prompt_version = self.prompt.version
        self._runnable: Any = None

    def __repr__(self) -> str:
        return f"LLMComposer({self.endpoint.describe()}, prompt {self.prompt_version})"

    def describe(self) -> str:
        return f"language model {self.endpoint.describe()} (prompt {self.prompt_version})"

    @property
    def runnable(self) -> Any:
        """The LangChain runnable: the prompt template piped into ``ChatOpenAI`` (built on first use)."""
        if self._runnable is None:
            from langchain_core.prompts import ChatPromptTemplate
            from langchain_openai import ChatOpenAI

            e = self.endpoint
            model = ChatOpenAI(
                model=e.model,
                base_url=e.base_url,
                api_key=e.api_key if e.api_key.get_secret_value() else SecretStr("not-needed"),
                timeout=e.timeout,
                max_retries=0,  # the extractive reply is the retry: a patient never waits twice
                max_tokens=e.max_tokens,
                temperature=e.temperature,
                streaming=True,
            )
            template = ChatPromptTemplate.from_messages([("system", self.prompt.system), ("human", self.prompt.user)])
            self._runnable = template | model
        return self._runnable

    def warm_up(self) -> None:
        """Build the runnable (imports the client); no request is sent."""
        _ = self.runnable

    # -- the StreamingComposer contract -------------------------------------------------------------

    def citations(self, judgement: Judgement) -> list[Citation]:
        """The passages the model is shown, best first, numbered from 1: each quote is the whole
        indexed passage at its offsets, so the check compares sentences with exactly what the model read."""
        return [_citation(n, p) for n, p in enumerate(self._passages(judgement), 1)]

    def stream(self, question: str, judgement: Judgement) -> Iterator[str]:
        """The model's text as it arrives. Raises :class:`ComposerFailed` (``timeout``,
        ``rate-limited``, ``unavailable``, ``refused``, ``malformed``, ``cut``, ``too-long``, ``empty``)."""
        citations = self.citations(judgement)
        inputs = {"passages": passages_block(citations), "question": question.strip()}
        runnable = self.runnable  # built (the client imported) before the clock starts
        deadline = time.monotonic() + self.endpoint.timeout
        wrote, finished = False, False
        chunks = runnable.stream(inputs)
        try:
            for chunk in chunks:
                if time.monotonic() > deadline:
                    raise ComposerFailed("timeout", f"the model took longer than {self.endpoint.timeout:g} s")
                text = chunk.content if isinstance(chunk.content, str) else _text_of(chunk.content)
                reason = (getattr(chunk, "response_metadata", None) or {}).get("finish_reason")
                if text:
                    wrote = True
                    yield text
                if reason:
                    finished = True
                    if reason == "length":
                        raise ComposerFailed("too-long", "the reply reached the token limit")
        except ComposerFailed:
            raise
        except Exception as exc:  # the client's errors, told apart by type; never the key
            raise ComposerFailed(_reason(exc, wrote), f"{type(exc).__name__} from {self.endpoint.describe()}") from None
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # an abandoned reply's connection is closed now, not when collected
        if not finished:
            raise ComposerFailed("cut" if wrote else "empty", "the reply stopped before the model finished it")
        if not wrote:
            raise ComposerFailed("empty", "the model wrote nothing")

    # -- helpers -------------------------------------------------------------------------------

    def _passages(self, judgement: Judgement) -> list[Passage]:
        passages = judgement.passages
        if judgement.sentences:  # those answerability found addressing the question, as the extractive composer quotes
            passages = [p for p in passages if p.chunk.id in judgement.sentences] or passages
        return list(passages[: self.max_passages])


def _citation(n: int, passage: Passage) -> Citation:
    c = passage.chunk
    return Citation(
        n=n,
        source=c.source,
        title=f"{c.doc_title} — {c.section_title}",
        quote=c.text,
        start=c.start,
        end=c.end,
        score=round(passage.relevance, 4),
        version=c.version,
    )


def _text_of(content: Any) -> str:
    """Text parts of a message whose content is a list of parts."""
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")


def _reason(exc: Exception, wrote: bool) -> str:
    """A short word for what went wrong with the endpoint (a metrics label)."""
    import httpx
    import openai

    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        return "timeout"
    if isinstance(exc, openai.RateLimitError):
        return "rate-limited"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        if wrote or isinstance(cause, (httpx.RemoteProtocolError, httpx.ReadError)):
            return "cut"
        return "unavailable"
    if isinstance(exc, openai.InternalServerError):
        return "unavailable"
    if isinstance(exc, openai.APIStatusError):
        return "refused"  # 401, 403, 404 (a wrong model name), 400...
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return "cut"
    if isinstance(exc, httpx.TransportError):
        return "cut" if wrote else "unavailable"
    return "malformed"  # a body that is not the chat-completions JSON, in whatever way
