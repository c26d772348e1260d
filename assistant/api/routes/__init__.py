"""One router per resource: ask, health, sources, documents, keys, audit, metrics."""
