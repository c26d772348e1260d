"""Traces with OpenTelemetry, off by default: a span per HTTP request and per pipeline stage.

On when ``PHT_OTEL_ENDPOINT`` is set (an OTLP/HTTP collector, e.g. ``http://127.0.0.1:4318``) or the
standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
``OTEL_TRACES_EXPORTER`` variables ask for it (``OTEL_TRACES_EXPORTER=none`` turns it off).

The pipeline is not edited for this: LangChain calls :class:`StageTracer` for every runnable of the
chain (a configure hook adds it while a traced request runs), and each stage becomes a span named
after it, with the OpenInference attributes its kind has: ``embed`` an EMBEDDING span (model name),
``retrieve`` a RETRIEVER span (each passage's id and relevance score), ``compose`` an LLM span (the
composer's name as model), ``safety``, ``scope`` and ``ground`` GUARDRAIL spans (decision and
rule), ``answerability`` an EVALUATOR span (whether to answer), the rest CHAIN spans. Nothing a patient typed and nothing answered is put in a span (no ``input.value``,
``output.value``, embedded text or passage content) unless ``PHT_LOG_QUESTIONS`` is on.

>>> tracing_enabled(Settings(otel_endpoint="http://127.0.0.1:4318"))
True
>>> tracing_enabled(Settings())
False
"""

from __future__ import annotations

import json
import logging
import threading
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from assistant.settings import Settings

log = logging.getLogger("assistant.tracing")

# stage name -> OpenInference span kind; any other runnable (rewrite, decided, finish, ...) is a CHAIN
KINDS = {
    "embed": "EMBEDDING",
    "retrieve": "RETRIEVER",
    "compose": "LLM",
    "safety": "GUARDRAIL",
    "triage": "GUARDRAIL",
    "scope": "GUARDRAIL",
    "ground": "GUARDRAIL",
    "answerability": "EVALUATOR",
}

_STAGE_TRACER: ContextVar[Any] = ContextVar("pht_stage_tracer", default=None)
_hooked = threading.Lock()
_HOOKED = False


def tracing_enabled(settings: Settings) -> bool:
    exporter = settings.otel_traces_exporter.strip().lower()
    if exporter == "none":
        return False
    return bool(settings.otel_endpoint or settings.otel_standard_endpoint or exporter in {"otlp", "console"})


def _hook_langchain() -> None:
    """Once per process: LangChain adds the tracer in ``_STAGE_TRACER`` (if any) to every run."""
    global _HOOKED
    with _hooked:
        if not _HOOKED:
            from langchain_core.tracers.context import register_configure_hook

            register_configure_hook(_STAGE_TRACER, True)
            _HOOKED = True


class Tracing:
    """One app's tracer provider, its exporter and its :class:`StageTracer`.

    ``exporter`` replaces the configured one (tests pass the SDK's in-memory exporter, whose spans
    are then exported as each one ends).
    """

    def __init__(self, settings: Settings, *, exporter: Any = None, model_name: str = "", composer: str = "") -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        self.provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            self.provider.add_span_processor(BatchSpanProcessor(self._exporter(settings)))
        self.tracer = self.provider.get_tracer("assistant")
        self.stages = StageTracer(
            self.tracer, log_questions=settings.log_questions, model_name=model_name, composer=composer
        )
        _hook_langchain()

    @staticmethod
    def _exporter(settings: Settings) -> Any:
        if settings.otel_traces_exporter.strip().lower() == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if settings.otel_endpoint:
            endpoint = settings.otel_endpoint.rstrip("/")
            if not endpoint.endswith("/v1/traces"):
                endpoint += "/v1/traces"
            return OTLPSpanExporter(endpoint=endpoint)
        return OTLPSpanExporter()  # the standard OTEL_EXPORTER_OTLP_* variables

    def request(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> "RequestSpan":
        """The server span of one HTTP request (continuing the caller's ``traceparent``, if any)."""
        return RequestSpan(self, method, path, headers)

    def shutdown(self) -> None:
        self.provider.shutdown()


class RequestSpan:
    """Context manager: the request's span is current and the stage tracer active inside it."""

    def __init__(self, tracing: Tracing, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.tracing, self.method = tracing, method
        from opentelemetry import propagate, trace

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
        parent = propagate.extract(carrier)
        self.span = tracing.tracer.start_span(
            f"{method} {path}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )

    @property
    def trace_id(self) -> str:
        return format(self.span.get_span_context().trace_id, "032x")

    def __enter__(self) -> "RequestSpan":
        from opentelemetry import context, trace

        self._token = context.attach(trace.set_span_in_context(self.span))
        self._stages = _STAGE_TRACER.set(self.tracing.stages)
        return self

    def finish(self, route: str, status: int | None, clinic: str | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.span.update_name(f"{self.method} {route}")
        self.span.set_attribute("http.route", route)
        if status is not None:
            self.span.set_attribute("http.response.status_code", status)
            if status >= 500:
                self.span.set_status(Status(StatusCode.ERROR))
        if clinic:
            self.span.set_attribute("pht.clinic", clinic)

    def __exit__(self, *exc: Any) -> None:
        from opentelemetry import context

        _STAGE_TRACER.reset(self._stages)
        context.detach(self._token)
        self.span.end()


def _callbacks_base() -> type:
    from langchain_core.callbacks import BaseCallbackHandler

    return BaseCallbackHandler


class StageTracer(_callbacks_base()):  # type: ignore[misc]
    """A LangChain callback handler that turns each chain run into an OpenTelemetry span."""

    raise_error = False
    run_inline = True

    def __init__(self, tracer: Any, *, log_questions: bool = False, model_name: str = "", composer: str = "") -> None:
        super().__init__()
        self.tracer = tracer
        self.log_questions = log_questions
        self.model_name = model_name
        self.composer = composer
        self._spans: dict[UUID, Any] = {}

    # -- LangChain's callbacks -------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        from opentelemetry import trace

        name = kwargs.get("name") or (serialized or {}).get("name") or "chain"
        parent = self._spans.get(parent_run_id) if parent_run_id else None
        if parent_run_id is None:
            name = "answer"  # the whole chain
        elif parent is None:
            return  # under a run this tracer did not see start
        kind = KINDS.get(name, "CHAIN")
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(name, context=context, attributes={"openinference.span.kind": kind})
        if self.log_questions and parent_run_id is None:
            question = getattr(inputs, "question", None)
            if isinstance(question, str):
                span.set_attribute("input.value", question)
        self._spans[run_id] = span

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is None:
            return
        try:
            self._describe(span, outputs)
        except Exception:  # a trace never breaks an answer
            log.debug("could not describe span %s", span.name, exc_info=True)
        span.end()

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = self._spans.pop(run_id, None)
        if span is None:
            return
        # the error's kind only: a message could repeat what was typed
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.set_attribute("exception.type", type(error).__name__)
        span.end()

    # -- what each kind of span carries ------------------------------------------------------------

    def _describe(self, span: Any, out: Any) -> None:
        name = span.name
        kind = KINDS.get(name, "CHAIN")
        if kind == "EMBEDDING":
            if self.model_name:
                span.set_attribute("embedding.model_name", self.model_name)
            vector = getattr(out, "vector", None)
            if vector is not None:
                span.set_attribute("pht.embedding.dimensions", len(vector))
            if self.log_questions and isinstance(getattr(out, "question", None), str):
                span.set_attribute("embedding.embeddings.0.embedding.text", out.question)
        elif kind == "RETRIEVER":
            if self.log_questions and isinstance(getattr(out, "question", None), str):
                span.set_attribute("input.value", out.question)
            for i, p in enumerate(getattr(out, "passages", None) or []):
                chunk = getattr(p, "chunk", None)
                prefix = f"retrieval.documents.{i}.document"
                span.set_attribute(f"{prefix}.id", getattr(chunk, "source", "") or getattr(chunk, "id", ""))
                span.set_attribute(f"{prefix}.score", float(getattr(p, "relevance", 0.0)))
                meta = {
                    "version": getattr(chunk, "version", ""),
                    "dense": round(float(getattr(p, "dense", 0.0)), 4),
                    "lexical": round(float(getattr(p, "lexical", 0.0)), 4),
                }
                span.set_attribute(f"{prefix}.metadata", json.dumps(meta))
                if self.log_questions and getattr(chunk, "text", None):
                    span.set_attribute(f"{prefix}.content", chunk.text)
        elif kind == "LLM":
            draft = getattr(out, "draft", None)
            span.set_attribute("llm.model_name", getattr(draft, "composer", "") or self.composer or "composer")
            span.set_attribute("pht.compose.drafted", draft is not None)
            if draft is not None:
                span.set_attribute("pht.compose.citations", len(getattr(draft, "citations", []) or []))
                if self.log_questions and isinstance(getattr(draft, "text", None), str):
                    span.set_attribute("output.value", draft.text)
        elif kind == "GUARDRAIL":
            triage = getattr(out, "triage", None)
            if triage is not None:
                span.set_attribute("pht.triage.decision", triage.decision)
                span.set_attribute("pht.triage.rule", triage.rule)
            answer = getattr(out, "answer", None)
            if name == "ground" and answer is not None:
                span.set_attribute("pht.answer.status", answer.status.value)
        elif kind == "EVALUATOR":
            judgement = getattr(out, "judgement", None)
            if judgement is not None:  # never what is missing: it is said in the patient's words
                span.set_attribute("pht.answerability.answerable", bool(judgement.answerable))
                span.set_attribute("pht.answerability.passages", len(judgement.passages))
        answer = out if hasattr(out, "safety_notice") else None  # the chain's end result: an Answer
        if answer is not None:
            span.set_attribute("pht.answer.id", answer.id)
            span.set_attribute("pht.answer.status", answer.status.value)
            span.set_attribute("pht.answer.citations", json.dumps([c.source for c in answer.citations]))
            span.set_attribute("pht.corpus_version", answer.corpus_version or "")
            if self.log_questions:
                span.set_attribute("output.value", answer.text)
