"""The clinics' HTTP API (FastAPI). See docs/api.md.

``app.py`` assembles; ``deps.py`` holds the assistant, settings, auth and limits;
``routes/<resource>.py`` is one router each; ``errors.py`` translates :mod:`assistant.errors`
into status codes and JSON bodies. Importing this package is cheap: FastAPI loads in ``app``.
"""
