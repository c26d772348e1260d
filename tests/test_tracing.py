"""Traces: the API app in process with the real pipeline, its spans read with the OpenTelemetry SDK's
in-memory exporter. A span per stage with OpenInference kinds and attributes, one trace per request
(continuing the caller's), its id in the access log, and no question or answer text in any span
unless PHT_LOG_QUESTIONS is on."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from assistant import Assistant, Settings

pytestmark = pytest.mark.integration

MARKER = "zebraquokka"
QUESTION = f"Can running be part of my rehab {MARKER}?"


@pytest.fixture(params=[False, True], ids=["questions-off", "questions-on"])
def traced(request, tmp_path, built_data_dir, embeddings):
    from fastapi.testclient import TestClient
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from assistant.api.app import create_app
    from assistant.tracing import Tracing

    data = tmp_path / "data"
    shutil.copytree(built_data_dir, data)
    settings = Settings(data_dir=data, log_questions=request.param, otel_endpoint="http://127.0.0.1:4318")
    a = Assistant.from_settings(settings, embeddings=embeddings, notify=lambda m: None)
    a.library.registry.add_clinic("North Physio")
    key = a.library.registry.create_key("north-physio")
    exporter = InMemorySpanExporter()
    tracing = Tracing(settings, exporter=exporter, model_name=embeddings.model_id, composer="extractive")
    app = create_app(settings, assistant=a, tracing=tracing)
    with TestClient(app) as client:
        client.key, client.exporter, client.log_questions = key, exporter, request.param
        yield client
    a.library.registry.close()
    a.library.store.release()
    a.close()


def _attributes(spans) -> str:
    return json.dumps([{"name": s.name, **dict(s.attributes or {}), "events": [e.name for e in s.events]} for s in spans])


def test_a_span_per_stage_with_openinference_attributes_in_one_trace(traced, caplog):
    caplog.set_level(logging.INFO, logger="assistant.api.access")
    r = traced.post("/v1/ask", json={"question": QUESTION}, headers={"Authorization": f"Bearer {traced.key}"})
    assert r.status_code == 200 and r.json()["status"] == "answered"
    spans = {s.name: s for s in traced.exporter.get_finished_spans()}
    assert {"POST /v1/ask", "answer", "embed", "safety", "rewrite", "retrieve", "scope", "answerability",
            "compose", "ground", "finish"} <= set(spans)

    request = spans["POST /v1/ask"]
    trace_id = request.context.trace_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}
    assert spans["answer"].parent.span_id == request.context.span_id
    assert spans["embed"].parent.span_id == spans["answer"].context.span_id
    assert request.attributes["http.route"] == "/v1/ask" and request.attributes["http.response.status_code"] == 200
    assert request.attributes["pht.clinic"] == "north-physio"
    assert f"trace={trace_id:032x}" in caplog.text  # the access log names the trace

    kind = lambda name: spans[name].attributes["openinference.span.kind"]  # noqa: E731
    assert (kind("answer"), kind("embed"), kind("retrieve"), kind("compose"), kind("safety"), kind("answerability")) == (
        "CHAIN", "EMBEDDING", "RETRIEVER", "LLM", "GUARDRAIL", "EVALUATOR"
    )
    assert spans["embed"].attributes["embedding.model_name"].startswith("sentence-transformers/")
    retrieved = spans["retrieve"].attributes
    assert retrieved["retrieval.documents.0.document.id"].startswith("pht-podcast-qa#")
    scores = [v for k, v in retrieved.items() if k.endswith(".document.score")]
    assert len(scores) >= 2 and all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    assert spans["compose"].attributes["llm.model_name"] == "extractive"
    assert spans["safety"].attributes["pht.triage.decision"] == "continue"
    assert spans["answerability"].attributes["pht.answerability.answerable"] is True
    answer = spans["answer"].attributes
    assert answer["pht.answer.status"] == "answered" and answer["pht.answer.id"] == r.json()["id"]

    text = _attributes(spans.values())
    if traced.log_questions:
        assert answer["input.value"] == QUESTION and answer["output.value"] == r.json()["text"]
        assert retrieved["input.value"] == QUESTION and "retrieval.documents.0.document.content" in retrieved
    else:  # nothing typed, nothing answered, no passage text
        assert MARKER not in text and r.json()["text"][:40] not in text
        assert not any(k.endswith((".content", "input.value", "output.value", ".text")) for k in json.loads(text)[0])
        for s in spans.values():
            assert not any(k in (s.attributes or {}) for k in ("input.value", "output.value"))
            assert not any(k.endswith((".document.content", "embedding.text")) for k in (s.attributes or {}))


def test_the_callers_trace_is_continued_and_errors_are_marked(traced):
    parent = "0af7651916cd43dd8448eb211c80319c"
    r = traced.post(
        "/v1/ask",
        json={"question": "x" * 3000},
        headers={"Authorization": f"Bearer {traced.key}", "traceparent": f"00-{parent}-b7ad6b7169203331-01"},
    )
    assert r.status_code == 422
    spans = traced.exporter.get_finished_spans()
    request = next(s for s in spans if s.name == "POST /v1/ask")
    assert f"{request.context.trace_id:032x}" == parent
    assert request.attributes["http.response.status_code"] == 422
    assert "x" * 50 not in _attributes(spans)


def test_traces_are_off_unless_asked_for():
    from assistant.tracing import tracing_enabled

    assert not tracing_enabled(Settings())
    assert tracing_enabled(Settings(otel_endpoint="http://collector:4318"))
    assert not tracing_enabled(Settings(otel_endpoint="http://collector:4318", otel_traces_exporter="none"))
