"""Safety: triage before retrieval (red flags, clinician-only decisions, scope) and the replies for them."""
