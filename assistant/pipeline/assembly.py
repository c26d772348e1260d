"""Where the pipeline is assembled: the default stage for each place, from the settings.

Each stage is built here once, with its settings; a stage given to the ``Assistant`` takes the
place of its default. Adding a stage to every assistant is one line in :func:`assemble`.

>>> from assistant.settings import Settings
>>> default_retriever(Settings(candidates=12), index=None).candidates
12
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assistant.pipeline.flow import Stages
from assistant.settings import Settings


def default_retriever(settings: Settings, index: Any) -> Any:
    """Dense sentences and BM25 passages over ``index``, fused, with the calibrated relevance."""
    from assistant.retrieval.hybrid import HybridRetriever, RelevanceModel

    return HybridRetriever(
        index,
        candidates=settings.candidates,
        rrf_k=settings.rrf_k,
        detail=settings.top_k + 2,
        relevance=RelevanceModel(*settings.relevance_weights),
    )


def assemble(
    settings: Settings,
    embeddings: Any,
    given: dict[str, Any],
    on_composed: Callable[[str, str], None] | None = None,
) -> Stages:
    """Every stage: the one ``given`` for its place (``safety``, ``rewriter``, ``scope``,
    ``answerability``, ``composer``, ``grounding``), else its default."""
    from assistant.answerability.judge import FocusAnswerability
    from assistant.compose.extractive import ExtractiveComposer
    from assistant.compose.llm import composer_from_settings
    from assistant.grounding.support import SupportCheck
    from assistant.rewrite.followups import FollowUpRewriter
    from assistant.safety.rules import load_rules
    from assistant.safety.scope import ScopeGate, ScopeWords
    from assistant.safety.triage import RuleTriage

    s = settings
    rules = load_rules(s.policy_dir)
    words = ScopeWords.load(s.policy_dir)
    quoter = ExtractiveComposer(max_citations=s.top_k, citation_margin=s.citation_margin, min_relevance=s.relevance_threshold)
    defaults: dict[str, Callable[[], Any]] = {
        "safety": lambda: RuleTriage(
            embeddings,
            rules=rules,
            topic_examples=words.topic_examples,
            urgent_similarity=s.urgent_exemplar_similarity,
            clinician_similarity=s.clinician_exemplar_similarity,
            clinician_margin=s.clinician_exemplar_margin,
        ),
        "rewriter": lambda: FollowUpRewriter(embeddings),
        "scope": lambda: ScopeGate(embeddings, words=words, similarity=s.scope_similarity),
        "answerability": lambda: FocusAnswerability(
            threshold=s.relevance_threshold, focus_threshold=s.focus_relevance_threshold, keep=s.top_k + 2
        ),
        # the clinic's language model when PHT_LLM_BASE_URL names one, else quotes
        "composer": lambda: composer_from_settings(s, max_passages=s.top_k) or quoter,
        "grounding": lambda: SupportCheck(embeddings),
    }
    unknown = set(given) - set(defaults)
    if unknown:
        raise TypeError(f"no stage is called {', '.join(sorted(unknown))}; the stages are {', '.join(defaults)}")
    stage = {name: given.get(name) or make() for name, make in defaults.items()}
    return Stages(
        embedder=embeddings,
        quoter=quoter,
        rules=rules,
        top_k=s.top_k,
        log_questions=s.log_questions,
        on_composed=on_composed,
        **stage,
    )
