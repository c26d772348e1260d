"""The reliability suite (docs/reliability.md): a package, so its conftest and helpers never shadow tests/conftest.py."""
