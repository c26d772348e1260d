"""Every knob in one place, read from the environment with the prefix ``PHT_``.

>>> from assistant.settings import Settings
>>> Settings(top_k=3).top_k
3

``get_settings()`` returns a cached instance; tests and servers override the environment and call
``get_settings.cache_clear()``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Chosen by benchmarks/calibrate.py on evals/suites (docs/retrieval.md); `make calibrate` re-runs it.
CALIBRATED_RELEVANCE = (1.21, 3.13, -0.94)  # logistic weights: dense, coverage, bias
CALIBRATED_THRESHOLD = 0.41


def _default_corpus_dir() -> Path:
    return PROJECT_ROOT / "corpus"


def _default_data_dir() -> Path:
    # In a checkout the index lives beside the code; an installed package uses ./data.
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "data"
    return Path.cwd() / "data"


class Settings(BaseSettings):
    """Configuration for the assistant; each field can be set as ``PHT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="PHT_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="Folder for the index.")
    corpus_dir: Path = Field(
        default_factory=_default_corpus_dir, description="Folder with the documents and manifest.toml."
    )
    collection: str = Field(default="pht-corpus", description="Chroma collection name.")

    top_k: int = Field(default=3, ge=1, le=10, description="Passages the composer may cite.")
    candidates: int = Field(
        default=20, ge=1, le=200, description="Passages each retriever returns before fusion."
    )
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank-fusion constant.")
    relevance_threshold: float = Field(
        default=CALIBRATED_THRESHOLD,
        ge=0.0,
        le=1.0,
        description=(
            "Below this relevance the top passage is not trusted and the answer is `not_covered`. "
            "Chosen on evals/suites; see docs/retrieval.md."
        ),
    )
    focus_relevance_threshold: float = Field(
        default=0.30,
        ge=0.0,
        le=1.0,
        description=(
            "The relevance a passage needs when one of its sentences names what the question asks about "
            "(an exercise, a treatment...): lexical evidence lowers the bar. See docs/retrieval.md."
        ),
    )
    relevance_weights: tuple[float, float, float] = Field(
        default=CALIBRATED_RELEVANCE,
        description="Logistic relevance model: weight of the dense score, of coverage, and the bias.",
    )
    scope_similarity: float = Field(
        default=0.42,
        ge=0.0,
        le=1.0,
        description=(
            "A question this similar to the corpus or the topic exemplars is on topic; with a "
            "domain word (hamstring, tendon, ...) 0.6 of it suffices. See docs/retrieval.md."
        ),
    )
    urgent_exemplar_similarity: float = Field(
        default=0.70,
        ge=0.0,
        le=1.0,
        description=(
            "A question this similar to a red-flag exemplar, that also affirms one of the flag's "
            "symptom words, is urgent even when no rule matched. See docs/safety.md."
        ),
    )
    clinician_exemplar_similarity: float = Field(
        default=0.60,
        ge=0.0,
        le=1.0,
        description=(
            "A question this similar to a clinician-only exemplar (medication, injections, surgery, "
            "stopping treatment, diagnosis) is out of scope even when no rule matched, if it is also "
            "nearer to it than to any on-topic exemplar by `clinician_exemplar_margin` and names that "
            "kind of decision. See docs/safety.md."
        ),
    )
    clinician_exemplar_margin: float = Field(
        default=0.15,
        ge=0.0,
        le=1.0,
        description="How much nearer a question must be to a clinician-only exemplar than to the topic exemplars.",
    )
    citation_margin: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Further passages are cited only when within this relevance of the best one.",
    )
    max_question_chars: int = Field(default=2000, ge=10, description="Longest question accepted.")
    max_history_turns: int = Field(default=20, ge=0, description="Turns of history considered.")
    emergency_contact: str = Field(
        default="your local emergency number",
        description="What the urgent reply tells people to call, e.g. 'emergency services on 112'.",
    )
    index_check_timeout: float = Field(
        default=30.0, gt=0, description="Seconds the start-up check of the index may take."
    )
    index_lock_timeout: float = Field(
        default=0.0,
        ge=0,
        description="Seconds `pht-assistant index` waits for another build to finish before giving up.",
    )
    embedding_batch_size: int = Field(default=32, ge=1, le=512)
    embedding_backend: str = Field(
        default="onnx",
        description="`onnx` (default) or `sentence-transformers`: which runtime encodes with the packaged model.",
    )
    index_precision: str = Field(
        default="int8",
        description="`int8` (default): the index is encoded by an int8 variant of the model; `float` turns it off.",
    )
    model_cache: Path | None = Field(
        default=None,
        description="Where the ONNX exports of the packaged model are kept; unset, `~/.cache/pht-assistant` "
        "(or `$XDG_CACHE_HOME/pht-assistant`).",
    )
    encoder_threads: int = Field(
        default=0, ge=0, description="Batches the ONNX encoder runs at once (and batches of questions asked together); 0: the usable cores, at most 4."
    )
    policy_dir: Path | None = Field(
        default=None,
        description="A clinic's folder of policy files (red_flags.yaml, clinician_only.yaml, scope.yaml, "
        "vocabulary.yaml) that extend the packaged ones; see docs/architecture.md.",
    )
    debug: bool = Field(default=False, description="Show tracebacks of unexpected errors in the CLI.")
    log_questions: bool = Field(
        default=False, description="Off by default: nothing a patient types is logged or stored."
    )
    feedback_enabled: bool = Field(
        default=False,
        description=(
            "Off by default. When on, the chat page shows thumbs up/down under each reply and stores "
            "them in `feedback_path`; the question itself is stored only if `log_questions` is on too."
        ),
    )
    feedback_path: Path = Field(
        default_factory=lambda data: data["data_dir"] / "feedback.sqlite3",
        description="SQLite file for the page's feedback; unset, `feedback.sqlite3` in `data_dir`.",
    )
    # -- a language model that writes the replies (docs/architecture.md, README "Language model") --
    llm_base_url: str = Field(
        default="",
        description=(
            "Unset (the default): the extractive composer quotes the sources and nothing calls a network. "
            "Set to an OpenAI-compatible endpoint (vLLM, llama.cpp's server, Ollama, a hosted API), e.g. "
            "http://127.0.0.1:8000/v1: a language model writes the replies, every sentence checked against "
            "the passage it cites, with the extractive reply as the fallback."
        ),
    )
    llm_model: str = Field(default="", description="The model's name at that endpoint, e.g. `llama-3.1-8b-instruct`.")
    llm_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="The endpoint's key, if it needs one; never logged, shown or recorded.",
    )
    llm_timeout: float = Field(
        default=20.0,
        gt=0,
        description="Seconds the model may take for a whole reply; past it the extractive reply is given.",
    )
    llm_max_tokens: int = Field(default=400, ge=16, le=8192, description="Longest reply the model may write, in tokens.")
    llm_temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature of the model.")
    # -- the clinics' HTTP API (docs/api.md) ------------------------------------------------------
    chroma_url: str = Field(
        default="",
        description=(
            "Unset: the embedded Chroma folder in `data_dir`. Set (e.g. http://127.0.0.1:8000): a Chroma "
            "server that several API workers and machines share."
        ),
    )
    clinics_path: Path = Field(
        default_factory=lambda data: data["data_dir"] / "clinics.sqlite3",
        description="SQLite file with clinics, key hashes, clinic documents, audit and feedback (when `database_url` is unset).",
    )
    database_url: str = Field(
        default="",
        description=(
            "Unset: the registry is the SQLite file `clinics_path`. Set (postgresql+psycopg://USER:PASSWORD@HOST/DB): "
            "a PostgreSQL database every worker on every machine shares; make its tables with `pht-assistant db upgrade`."
        ),
    )
    database_pool_size: int = Field(
        default=10, ge=1, le=200, description="PostgreSQL connections each worker keeps open (and as many again at peaks)."
    )
    redis_url: str = Field(
        default="",
        description=(
            "Set (redis://HOST:6379/0): rate limits are counted in Redis, one count for all workers and machines. "
            "Unset: each worker counts its own requests."
        ),
    )
    redis_timeout: float = Field(
        default=0.25, gt=0, description="Seconds a Redis call may take before the worker counts on its own instead."
    )
    redis_retry_seconds: float = Field(
        default=5.0, gt=0, description="After Redis failed, seconds a worker counts alone before it tries Redis again."
    )
    # -- traces (docs/deploy.md) -------------------------------------------------------------------
    otel_endpoint: str = Field(
        default="",
        description=(
            "OTLP/HTTP address that receives traces, e.g. http://127.0.0.1:4318 (/v1/traces is added). Unset, "
            "and no OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT either: no traces."
        ),
    )
    otel_standard_endpoint: str = Field(
        default="",
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="The standard OpenTelemetry variables turn traces on too (the exporter reads them itself).",
    )
    otel_traces_exporter: str = Field(
        default="",
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER"),
        description="OTEL_TRACES_EXPORTER: `none` turns traces off, `console` prints them, `otlp` sends them.",
    )
    otel_service_name: str = Field(
        default="pht-assistant",
        validation_alias=AliasChoices("OTEL_SERVICE_NAME", "PHT_OTEL_SERVICE_NAME"),
        description="The service name traces carry.",
    )
    api_rate_limit: int = Field(default=60, ge=1, description="Requests per key per `api_rate_window` seconds.")
    api_rate_window: float = Field(default=60.0, gt=0, description="Seconds of the rate-limit window.")
    api_max_body_bytes: int = Field(
        default=5_000_000, ge=1024, description="Largest request body the API accepts (413 above it)."
    )
    api_request_timeout: float = Field(
        default=30.0, gt=0, description="Seconds one API request may take before it fails with 504."
    )
    api_header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's line and headers (from connecting, or from its "
        "first byte after a reply); past it the connection is closed (408).",
    )
    api_body_timeout: float = Field(
        default=60.0, gt=0, description="Seconds a client has to send a request's body once its headers are in (408)."
    )
    api_keepalive_timeout: int = Field(
        default=5, ge=1, description="Seconds an idle kept-alive connection stays open between requests."
    )
    api_max_header_bytes: int = Field(
        default=65_536, ge=1024, description="Longest request line and headers, in bytes (431 above it)."
    )
    api_max_connections: int = Field(
        default=1000,
        ge=0,
        description="Open connections per worker; more are answered 503 and closed (0: as many as the file "
        "limit allows; never more than it).",
    )
    api_max_connections_per_client: int = Field(
        default=50,
        ge=0,
        description="Open connections from one client address; more are answered 503 and closed (0: no cap; "
        "behind a reverse proxy every client has the proxy's address, see docs/api.md).",
    )
    api_refused_limit: int = Field(
        default=30,
        ge=1,
        description="Refused requests (no or a bad key, a foreign origin, a key used where it may not be) per "
        "client address per `api_rate_window`; past it that address gets 429. Kept apart from the keys' limits.",
    )
    store_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds one call to the Chroma server or the clinics database may wait; past it the store "
        "counts as unavailable (503, and /v1/health not ready).",
    )
    upload_max_chars: int = Field(
        default=1_000_000,
        ge=1000,
        description="Most characters of text an upload may yield; extraction stops there and the upload gets 413.",
    )
    upload_max_pages: int = Field(default=500, ge=1, description="Most pages of an uploaded PDF (413 above it).")
    upload_max_sections: int = Field(
        default=1000, ge=1, description="Most sections (headings) an upload may have (413 above it)."
    )
    approval_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Seconds POST /v1/documents/{id}/approve waits for the approval; a longer one is answered "
        "202 with the job to poll (GET /v1/approvals/{job}).",
    )
    approval_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds one approval may run; past it the job is stopped, records nothing and takes back "
        "the passages it added.",
    )
    index_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often a serving process looks for a newly published index; it answers from it from "
        "then on, without a restart (requests already running finish on the one they started with).",
    )
    audit_enabled: bool = Field(
        default=True, description="An audit record per API answer (never the question text)."
    )
    metrics_token: str = Field(
        default="",
        description="Bearer token for GET /metrics; unset, only loopback callers may read the metrics.",
    )
    log_level: str = Field(default="info", description="Log level of `pht-assistant serve`.")
    clinic_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often a worker checks for documents approved or deleted through another worker.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment.

    >>> get_settings() is get_settings()
    True
    """
    return Settings()
