"""The registry's tables, for SQLAlchemy and Alembic: one definition for SQLite and PostgreSQL.

Times are ISO 8601 UTC text and lists are JSON text, in both databases, so a row reads the same
wherever it is stored and a SQLite file copies into PostgreSQL unchanged. The Alembic migrations in
``assistant/clinics/migrations`` create exactly these tables; a test compares the two.

>>> sorted(METADATA.tables)
['approval_jobs', 'audit', 'clinics', 'documents', 'feedback', 'keys']
"""

from __future__ import annotations

import sqlalchemy as sa

METADATA = sa.MetaData()

# A 64-bit counter in PostgreSQL; SQLite's INTEGER PRIMARY KEY (the rowid) there.
Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

clinics = sa.Table(
    "clinics",
    METADATA,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("emergency_text", sa.Text, nullable=False, server_default=""),
    sa.Column("allowed_origins", sa.Text, nullable=False, server_default="[]"),
    sa.Column("created", sa.Text, nullable=False),
    # goes up whenever an approved document of the clinic changes (workers compare it)
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    # the widget: its accent colour and logo ('' for none), and whether feedback keeps the question
    sa.Column("accent_color", sa.Text, nullable=False, server_default=""),
    sa.Column("logo_url", sa.Text, nullable=False, server_default=""),
    sa.Column("feedback_questions", sa.Integer, nullable=False, server_default="0"),
    # the clinic's own OpenAI-compatible language model ('' for the server's composer); the key is
    # kept as given because it is sent to that endpoint, and is never shown, logged or returned
    sa.Column("llm_base_url", sa.Text, nullable=False, server_default=""),
    sa.Column("llm_model", sa.Text, nullable=False, server_default=""),
    sa.Column("llm_api_key", sa.Text, nullable=False, server_default=""),
)

keys = sa.Table(
    "keys",
    METADATA,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("clinic_id", sa.Text, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("created", sa.Text, nullable=False),
    sa.Column("revoked", sa.Text, nullable=True),
    sa.Index("keys_clinic", "clinic_id"),
)

documents = sa.Table(
    "documents",
    METADATA,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("clinic_id", sa.Text, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("sections", sa.Text, nullable=False),
    sa.Column("uploaded", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="draft"),
    sa.Column("approved_by", sa.Text, nullable=True),
    sa.Column("approved_at", sa.Text, nullable=True),
    sa.Column("approved_version", sa.Text, nullable=True),
    # passages held back until the reviewer confirms them: JSON, each with ``confirmed``
    sa.Column("flags", sa.Text, nullable=False, server_default="[]"),
    sa.Index("documents_clinic", "clinic_id", "status"),
)

_RUNNING = sa.text("status IN ('queued', 'running')")

# One row per approval (assistant/clinics/approvals.py): who approves which version of a document,
# with which flagged passages confirmed, and where the job stands. ``heartbeat`` is wall-clock
# seconds (the worker running it updates it every few seconds; several machines compare it).
approval_jobs = sa.Table(
    "approval_jobs",
    METADATA,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("clinic_id", sa.Text, nullable=False),
    sa.Column("doc_id", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("reviewer", sa.Text, nullable=False),
    sa.Column("confirm", sa.Text, nullable=False, server_default="[]"),
    sa.Column("status", sa.Text, nullable=False),  # queued, running, succeeded, failed
    sa.Column("created", sa.Text, nullable=False),
    sa.Column("started", sa.Text, nullable=True),
    sa.Column("finished", sa.Text, nullable=True),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    # one approval at a time per document, for every worker
    sa.Index(
        "approval_jobs_one_per_document", "doc_id", unique=True, sqlite_where=_RUNNING, postgresql_where=_RUNNING
    ),
    sa.Index("approval_jobs_clinic", "clinic_id", "doc_id", "created"),
)

audit = sa.Table(
    "audit",
    METADATA,
    sa.Column("id", Serial, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Text, nullable=False),
    sa.Column("clinic_id", sa.Text, nullable=False),
    sa.Column("answer_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("triage", sa.Text, nullable=False),
    sa.Column("sources", sa.Text, nullable=False),
    sa.Column("corpus_version", sa.Text, nullable=False),
    sa.Column("composer", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    # the version of the prompt a language model wrote the reply with ('' for quoted replies)
    sa.Column("prompt_version", sa.Text, nullable=False, server_default=""),
    sa.Index("audit_clinic", "clinic_id", "id"),
    sa.Index("audit_answer", "answer_id"),
    sqlite_autoincrement=True,
)

feedback = sa.Table(
    "feedback",
    METADATA,
    sa.Column("id", Serial, primary_key=True, autoincrement=True),
    sa.Column("clinic_id", sa.Text, nullable=False),
    sa.Column("answer_id", sa.Text, nullable=False),
    sa.Column("rating", sa.Text, sa.CheckConstraint("rating IN ('up', 'down')"), nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    # only when the clinic keeps questions with feedback (feedback_questions); otherwise NULL
    sa.Column("question", sa.Text, nullable=True),
    sa.Column("status", sa.Text, nullable=False),  # the rated answer's, from the audit trail
    sa.Column("sources", sa.Text, nullable=False),
    sa.Column("time", sa.Text, nullable=False),
    sa.Column("updated", sa.Text, nullable=False),
    sa.UniqueConstraint("clinic_id", "answer_id"),
    sa.Index("feedback_clinic", "clinic_id", "id"),
    sqlite_autoincrement=True,
)

TABLES = (clinics, keys, documents, audit, feedback, approval_jobs)  # in the order rows are copied
