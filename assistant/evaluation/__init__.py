"""Answer-quality evaluation: suites of questions run against the assistant, scored, reported.

``pht-assistant eval SUITE ...`` and ``pytest evals/`` use the same pieces, read top to bottom:

- :mod:`~assistant.evaluation.suite`: load JSONL / YAML suites and validate them against the JSON
  Schema (``evals/suite.schema.json``); a bad row names its file, line and field.
- :mod:`~assistant.evaluation.runner`: ask every case through a target (the local
  :class:`~assistant.Assistant`, or a deployed HTTP API) and check each reply.
- :mod:`~assistant.evaluation.metrics`: deterministic figures (no language-model judge), overall,
  per suite and per tag, each with the number of cases it stands on; gates over them.
- :mod:`~assistant.evaluation.reports`: JSON and JUnit XML; :mod:`~assistant.evaluation.html`: one
  self-contained HTML page.
- :mod:`~assistant.evaluation.compare`: two JSON reports side by side (fixed, broken, changed).

Importing this package is cheap; the model loads only when a local target first asks.
See docs/evals.md.
"""
