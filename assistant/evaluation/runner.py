"""Ask every case through a target and check each reply; the result is one plain dict per case.

A target is the local :class:`~assistant.Assistant` (:class:`LocalTarget`, asked with
``explain=True`` so the retrieved passages and their scores are recorded) or a deployed HTTP API
(:class:`HttpTarget`: ``POST /v1/ask`` with a clinic key). Both return the ``Answer`` as JSON, so
everything after the call is the same code.

>>> from assistant.evaluation.runner import grounded_sentences
>>> answer = {"text": "> Run slowly. Then faster. [1]", "citations": [{"n": 1, "quote": "Run slowly. Then faster.", "source": "d#s"}]}
>>> grounded_sentences(answer)
(2, 2)
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from assistant.answer import SAFETY_NOTICE
from assistant.errors import AssistantError
from assistant.evaluation.suite import Case, Suite



class TargetUnavailable(AssistantError):
    """The target cannot be reached or refuses the key; nothing was run."""


class CaseError(Exception):
    """One question failed at the target (an HTTP error, a rejected question); the case is an error."""


# -- targets ---------------------------------------------------------------------------------------


class LocalTarget:
    """The :class:`~assistant.Assistant` in this process (the one door), asked with ``explain=True``."""

    name = "local"

    def __init__(self, assistant: Any) -> None:
        self.assistant = assistant

    @classmethod
    def from_settings(cls, notify: Callable[[str], None] | None = None, composer: str = "settings") -> "LocalTarget":
        """``composer``: ``settings`` (as PHT_LLM_BASE_URL says), ``extractive`` (quotes, even when a
        language model is set) or ``llm`` (the language model; PHT_LLM_BASE_URL must be set)."""
        from assistant.pipeline.assistant import Assistant
        from assistant.settings import get_settings

        settings = get_settings()
        if composer == "extractive":
            settings = settings.model_copy(update={"llm_base_url": ""})
        elif composer == "llm" and not settings.llm_base_url.strip():
            raise TargetUnavailable(
                "--composer llm needs a language model: set PHT_LLM_BASE_URL (and PHT_LLM_MODEL) to its OpenAI-compatible endpoint."
            )
        elif composer not in ("settings", "llm"):
            raise TargetUnavailable(f"--composer is settings, extractive or llm, not {composer!r}.")
        return cls(Assistant.from_settings(settings, notify=notify))

    def warm_up(self) -> None:
        self.assistant.warm_up()

    def known_sources(self) -> set[str]:
        return {f"{d['id']}#{s['id']}" for d in self.assistant.sources() for s in d["sections"]}

    def ask(self, question: str, history: list[dict[str, str]]) -> dict[str, Any]:
        try:
            answer = self.assistant.ask(question, history or None, explain=True)
        except AssistantError as exc:
            raise CaseError(str(exc)) from exc
        return answer.model_dump(mode="json")

    def describe(self) -> dict[str, Any]:
        a, s = self.assistant, self.assistant.settings
        return {
            "target": "local",
            "model": getattr(a.embeddings, "model_id", ""),
            "corpus_version": a.corpus_version,
            "composer": a.composer_name,
            "composer_detail": a.describe_composer(),
            "prompt_version": getattr(a.composer, "prompt_version", ""),
            "composer_outcomes": a.composed.summary(),  # over this run: written, fallbacks and why
            "thresholds": {
                "relevance_threshold": s.relevance_threshold,
                "relevance_weights": list(s.relevance_weights),
                "scope_similarity": s.scope_similarity,
                "urgent_exemplar_similarity": s.urgent_exemplar_similarity,
                "clinician_exemplar_similarity": s.clinician_exemplar_similarity,
                "clinician_exemplar_margin": s.clinician_exemplar_margin,
                "citation_margin": s.citation_margin,
                "top_k": s.top_k,
            },
            "data_dir": str(s.data_dir),
        }

    def close(self) -> None:
        self.assistant.close()


class HttpTarget:
    """A deployed API: ``POST {url}/v1/ask`` with ``Authorization: Bearer {key}``.

    A 429 is waited out (``Retry-After``) up to ``retries`` times; other errors make the case an error.
    The request asks for ``explain``; a server that does not return ``retrieved`` is ranked by its citations.
    """

    name = "url"

    def __init__(self, url: str, key: str, *, timeout: float = 60.0, retries: int = 8) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.retries = retries
        self.client = httpx.Client(
            base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {key}"} if key else {}
        )
        self._health: dict[str, Any] = {}

    def _get(self, path: str) -> Any:
        import httpx

        try:
            r = self.client.get(path)
        except httpx.HTTPError as exc:
            raise TargetUnavailable(
                f"The API at {self.url} does not answer ({type(exc).__name__}); check the URL and that it is running."
            ) from exc
        if r.status_code in (401, 403):
            raise TargetUnavailable(f"The API at {self.url} refused the key (HTTP {r.status_code}); pass a valid clinic key with --key.")
        if r.status_code >= 400:
            raise TargetUnavailable(f"The API at {self.url} answered {path} with HTTP {r.status_code}; is it the PHT Assistant API?")
        return r.json()

    def warm_up(self) -> None:
        self._health = self._get("/v1/health")

    def known_sources(self) -> set[str]:
        body = self._get("/v1/sources")
        return {f"{d['id']}#{s['id']}" for d in body.get("sources", []) for s in d.get("sections", [])}

    def ask(self, question: str, history: list[dict[str, str]]) -> dict[str, Any]:
        import httpx

        body = {"question": question, "history": history or None, "explain": True}
        for attempt in range(self.retries + 1):
            try:
                r = self.client.post("/v1/ask", json=body)
            except httpx.HTTPError as exc:
                raise CaseError(f"request failed: {type(exc).__name__}: {exc}") from exc
            if r.status_code == 429 and attempt < self.retries:
                time.sleep(min(float(r.headers.get("Retry-After", "1") or 1), 60.0))
                continue
            if r.status_code != 200:
                try:
                    message = r.json().get("message", r.text)
                except ValueError:
                    message = r.text[:200]
                raise CaseError(f"HTTP {r.status_code}: {message}")
            return r.json()
        raise CaseError("HTTP 429: still rate-limited after retries")  # pragma: no cover

    def describe(self) -> dict[str, Any]:
        h = self._health or self._get("/v1/health")
        return {
            "target": self.url,
            "model": h.get("model", ""),
            "corpus_version": h.get("corpus_version", ""),
            "store": h.get("store", ""),
            "composer": h.get("composer"),
            "composer_detail": h.get("composer_detail", ""),
            "composer_outcomes": h.get("composer_outcomes"),  # the server's since it started, not this run's
            "thresholds": None,  # the server's own settings; not visible from outside
        }

    def close(self) -> None:
        self.client.close()


# -- checks ----------------------------------------------------------------------------------------


def body_of(answer: dict[str, Any]) -> str:
    text = (answer.get("text") or "").rstrip()
    notice = answer.get("safety_notice") or SAFETY_NOTICE
    return text[: -len(notice)].rstrip() if text.endswith(notice) else text


def grounded_sentences(answer: dict[str, Any], embed: Any = None) -> tuple[int, int]:
    """``(sentences, grounded)`` of a reply, by the one definition the pipeline also uses
    (:mod:`assistant.grounding.support`): each sentence supported by the quotes of the citations it
    points at, word for word or as a faithful paraphrase. ``embed`` checks paraphrases; without it
    the packaged model is loaded, and only if some sentence is not word for word."""
    from assistant.grounding.support import claims, sentence_support

    quotes = {c["n"]: c.get("quote") or "" for c in answer.get("citations") or []}
    found = claims(body_of(answer))
    total = grounded = 0
    for sentence, markers in found:
        total += 1
        cited = [quotes[m] for m in markers if m in quotes]
        support = sentence_support(sentence, cited)
        if not support.supported and cited and support.reason.startswith("a paraphrase needs"):
            support = sentence_support(sentence, cited, embed or _paraphrase_embedder())
        grounded += support.supported
    return total, grounded


def _paraphrase_embedder() -> Any:
    from assistant.embed.minilm import MiniLMEmbeddings

    global _EMBEDDER
    if _EMBEDDER is None:
        _EMBEDDER = MiniLMEmbeddings().embed_documents
    return _EMBEDDER


_EMBEDDER: Any = None


def ranking(answer: dict[str, Any]) -> tuple[list[str], str]:
    """Sources best first, each once: the retrieved passages when the target returned them, else the citations."""
    if answer.get("retrieved") is not None:
        items, origin = sorted(answer["retrieved"], key=lambda p: p["rank"]), "retrieval"
    else:
        items, origin = answer.get("citations") or [], "citations"
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item["source"], None)
    return list(seen), origin


def check(case: Case, answer: dict[str, Any] | None, latency_ms: float, error: str | None = None) -> dict[str, Any]:
    """The case's record for the reports: what was expected, what came back, and why it failed."""
    expected = {
        "status": case.expected_status,
        "sources": case.expected_sources,
        "must_include": case.must_include,
        "must_not_include": case.must_not_include,
        "missing": case.expected_missing,
    }
    record: dict[str, Any] = {
        "key": case.key, "suite": case.suite, "id": case.id, "file": case.file, "line": case.line,
        "question": case.question, "history": case.history, "tags": case.tags, "expected": expected,
        "latency_ms": round(latency_ms, 2),
    }  # fmt: skip
    if answer is None:
        record.update(
            got={"status": "error", "sources": [], "error": error}, answer="", citations=[], retrieved=[],
            retrieved_from="none", ranking=[], timings={}, triage=None,
            checks={"status": False, "notice": False, "sources": None, "phrases": None, "missing": None, "grounding": None},
            passed=False, reasons=[f"error: {error}"],
        )  # fmt: skip
        return record
    status = answer.get("status")
    cited = [c["source"] for c in answer.get("citations") or []]
    ranked, origin = ranking(answer)
    reasons = []
    checks: dict[str, Any] = {}
    checks["status"] = status == case.expected_status
    if not checks["status"]:
        reasons.append(f"status: expected {case.expected_status}, got {status}")
    checks["notice"] = (answer.get("text") or "").rstrip().endswith(SAFETY_NOTICE) and answer.get(
        "safety_notice"
    ) == SAFETY_NOTICE
    if not checks["notice"]:
        reasons.append("notice: the reply does not end with the safety notice")
    checks["sources"] = None
    if case.expected_sources and status == "answered":
        checks["sources"] = bool(set(cited) & set(case.expected_sources))
        if not checks["sources"]:
            reasons.append(f"sources: cited {', '.join(cited)}; expected one of {', '.join(case.expected_sources)}")
    checks["phrases"] = None
    if case.must_include or case.must_not_include:
        body = body_of(answer).lower()
        missing = [p for p in case.must_include if p.lower() not in body]
        present = [p for p in case.must_not_include if p.lower() in body]
        checks["phrases"] = not missing and not present
        reasons += [f"phrase missing: {p!r}" for p in missing] + [f"phrase present: {p!r}" for p in present]
    checks["missing"] = None
    if case.expected_missing and status == "not_covered":
        body = body_of(answer).lower()
        checks["missing"] = any(w.lower() in body for w in case.expected_missing)
        if not checks["missing"]:
            reasons.append(f"the reply does not name what is missing ({' / '.join(case.expected_missing)})")
    checks["grounding"] = None
    if status == "answered":
        total, grounded = grounded_sentences(answer)
        checks["grounding"] = {"sentences": total, "grounded": grounded}
        if grounded < total:
            reasons.append(f"grounding: {total - grounded} of {total} sentences not found in their cited passage")
    triage = answer.get("triage") or None
    record.update(
        got={"status": status, "sources": cited, "error": None},
        answer=answer.get("text", ""),
        citations=answer.get("citations") or [],
        retrieved=answer.get("retrieved") if answer.get("retrieved") is not None else [],
        retrieved_from=origin,
        ranking=ranked,
        timings=answer.get("timings") or {},
        triage=triage,
        answer_id=answer.get("id"),
        composer=answer.get("composer") or "",
        composer_note=answer.get("composer_note") or "",
        checks=checks,
        passed=not reasons,
        reasons=reasons,
    )
    return record


# -- the run ---------------------------------------------------------------------------------------


def run_cases(
    cases: list[Case], target: Any, *, progress: bool | None = None, on_case: Callable[[dict], None] | None = None
) -> list[dict[str, Any]]:
    """Every case through ``target`` in order; a progress bar on standard error when it is a terminal."""
    from tqdm import tqdm

    target.warm_up()
    out = []
    disable = None if progress is None else not progress
    with tqdm(total=len(cases), desc="Evaluating", unit="case", file=sys.stderr, disable=disable) as bar:
        for case in cases:
            t = time.perf_counter()
            answer, error = None, None
            try:
                answer = target.ask(case.question, case.history)
            except CaseError as exc:
                error = str(exc)
            record = check(case, answer, (time.perf_counter() - t) * 1000, error)
            out.append(record)
            if on_case:
                on_case(record)
            bar.update(1)
            if not record["passed"]:
                bar.set_postfix(failed=sum(not r["passed"] for r in out), refresh=False)
    return out


def commit() -> dict[str, Any] | None:
    """The checkout's commit (and whether files differ from it), or a CI's commit variable; None if unknown."""
    import os

    from assistant.settings import PROJECT_ROOT

    for var in ("GITHUB_SHA", "CI_COMMIT_SHA"):
        if os.environ.get(var):
            return {"sha": os.environ[var], "dirty": None, "from": var}
    if not (PROJECT_ROOT / ".git").exists():
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": sha, "dirty": bool(dirty), "from": "git"} if sha else None


def run_settings(target: Any, suites: list[Suite], tags: list[str] | None, started: datetime) -> dict[str, Any]:
    from assistant import __version__

    return {
        **target.describe(),
        "pht_assistant": __version__,
        "commit": commit(),
        "suites": [s.describe() for s in suites],
        "tags": tags or [],
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
    }
