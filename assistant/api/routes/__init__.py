"""One router per resource: ask, health, sources, documents, audit, metrics."""
