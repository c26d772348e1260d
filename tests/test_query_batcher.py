"""Questions asked at the same moment are encoded together (assistant.embed.minilm.QueryBatcher)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from assistant.embed.minilm import QueryBatcher


class SlowEncoder:
    """A stand-in encoder: a text's vector is its length, each call takes ``delay`` seconds."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.delay, self.fail_on = delay, fail_on
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()
        self.active = self.most_active = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self.lock:
            self.calls.append(list(texts))
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(self.delay)
            if self.fail_on is not None and self.fail_on in texts:
                raise RuntimeError("the encoder failed")
            return np.array([[float(len(t)), 1.0] for t in texts])
        finally:
            with self.lock:
                self.active -= 1


def _ask_together(batcher: QueryBatcher, texts: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    start = threading.Barrier(len(texts))

    def ask(t: str) -> None:
        start.wait()
        try:
            out[t] = batcher(t)
        except Exception as exc:  # noqa: BLE001 - the test looks at what each caller got
            out[t] = exc

    threads = [threading.Thread(target=ask, args=(t,)) for t in texts]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert not any(th.is_alive() for th in threads), "a caller never got its vector"
    return out


def test_a_lone_question_is_encoded_at_once_by_itself():
    enc = SlowEncoder()
    b = QueryBatcher(enc, runners=2)
    began = time.perf_counter()
    assert b("ice or heat?") == [12.0, 1.0]
    assert enc.calls == [["ice or heat?"]]
    assert time.perf_counter() - began < 1.0  # nothing waits for company


def test_questions_asked_together_share_batches_and_each_gets_its_own_vector():
    enc = SlowEncoder(delay=0.05)
    b = QueryBatcher(enc, runners=1, most=16)
    texts = ["x" * n for n in range(1, 13)]

    out = _ask_together(b, texts)

    assert {t: out[t] for t in texts} == {t: [float(len(t)), 1.0] for t in texts}
    assert len(enc.calls) < len(texts)  # at least one batch held several questions
    assert sorted(t for call in enc.calls for t in call) == sorted(texts)  # each encoded once
    assert b.questions == len(texts) and b.batches == len(enc.calls)


def test_no_more_batches_run_at_once_than_runners_and_none_holds_more_than_most():
    enc = SlowEncoder(delay=0.02)
    b = QueryBatcher(enc, runners=2, most=3)
    texts = [f"question {i}" for i in range(20)]

    out = _ask_together(b, texts)

    assert all(out[t] == [float(len(t)), 1.0] for t in texts)
    assert enc.most_active <= 2
    assert max(len(c) for c in enc.calls) <= 3


def test_a_failed_batch_fails_its_own_questions_and_the_next_ones_are_answered():
    enc = SlowEncoder(delay=0.05, fail_on="bad")
    b = QueryBatcher(enc, runners=1)
    out = _ask_together(b, ["bad", "good one", "another"])
    failed = [t for t, v in out.items() if isinstance(v, RuntimeError)]
    assert "bad" in failed  # everyone batched with it shares the failure, nobody hangs
    assert all(v == [float(len(t)), 1.0] for t, v in out.items() if t not in failed)
    assert b("after") == [5.0, 1.0]
    with pytest.raises(RuntimeError):
        b("bad")


@pytest.mark.integration
def test_the_real_encoder_gives_each_question_its_vector_under_concurrent_load(embeddings):
    from assistant.embed.minilm import MiniLMEmbeddings

    enc = MiniLMEmbeddings(query_cache=0)
    texts = [f"Can I do {n} slow bridges a day with hamstring pain when sitting?" for n in range(24)]
    alone = {t: np.asarray(enc.embed_query(t)) for t in texts}
    batcher = enc.query_batcher()
    before = batcher.batches

    out = _ask_together(batcher, texts)

    assert all(np.allclose(out[t], alone[t], atol=1e-5) for t in texts)
    assert batcher.batches - before < len(texts)
