"""Prometheus metrics for one API process: requests, latency per stage, statuses, errors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pht_requests",
            "HTTP requests by route, method and status code",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pht_request_seconds",
            "Request latency by route",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "pht_stage_seconds",
            "Latency of each answering stage",
            ["stage"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter("pht_answers", "Answers by status", ["status"], registry=self.registry)
        self.composers = Counter(
            "pht_answers_by_composer", "Answered replies by the composer that wrote them", ["composer"], registry=self.registry
        )
        self.errors = Counter(
            "pht_errors", "Error responses by error code", ["error"], registry=self.registry
        )
        self.limit_fallbacks = Counter(
            "pht_rate_limit_fallbacks",
            "Requests counted by this worker alone because Redis did not answer",
            registry=self.registry,
        )
        self.redis_up = Gauge(
            "pht_redis_up",
            "1 while the shared rate-limit counter (Redis) answers, 0 while this worker counts alone",
            registry=self.registry,
        )
        self.redis_up.set(1)
        self.refused = Counter(
            "pht_refused_requests",
            "Requests refused before counting against a key (no or a bad key, a foreign origin), and "
            "those of them that got 429 for coming too often from one address",
            ["reason"],
            registry=self.registry,
        )
        from assistant.api.connections import collector

        self.registry.register(collector())  # this worker's connections: open, refused, closed

        self.composed = Counter(
            "pht_composer_replies",
            "Replies of writing composers (language models) by composer and outcome: ok, dropped (sentences "
            "dropped by the grounding check), partial (failed after it was shown), fallback (the extractive reply "
            "instead); reason says why",
            ["composer", "outcome", "reason"],
            registry=self.registry,
        )

    def observe_composed(self, composer: str, outcome: str) -> None:
        """One writing composer's reply (:class:`assistant.pipeline.assistant.ComposerTally` calls it)."""
        kind, _, reason = outcome.partition(":")
        self.composed.labels(composer, kind, reason).inc()

    def observe_answer(self, answer) -> None:
        self.answers.labels(answer.status.value).inc()
        if answer.composer:
            self.composers.labels(answer.composer).inc()
        for stage, ms in answer.timings.items():
            self.stages.labels(stage).observe(ms / 1000.0)
