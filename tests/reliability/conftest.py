"""The reliability suite: each finding of issue 19 reproduced against a real server on loopback,
and shown fixed (docs/reliability.md quotes what these tests measure).

Bounded: every server and Chroma server is started here on a free loopback port with lowered
limits and stopped at the end of its module; connection floods are a few thousand sockets. The
figures each test measures are printed at the end of the run ("reliability figures").
"""

from __future__ import annotations

from reliability.faults import FIGURES


def pytest_terminal_summary(terminalreporter):  # noqa: D103 - pytest hook
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in FIGURES:
            terminalreporter.write_line(f"{name}: {value}")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def standard(tmp_path_factory, built_data_dir):
    """One `pht-assistant serve` with the default limits (the rate limit lifted: these tests poll;
    approvals answered 202 after 1 s), shared by the tests that need nothing else (each makes its
    own clinic and keys: the server reads them per request)."""
    from api_server import serve
    from reliability.faults import copy_data

    from assistant.clinics.registry import ClinicRegistry

    root = tmp_path_factory.mktemp("standard")
    data = copy_data(built_data_dir, root)
    server = serve(
        data,
        root / "server.log",
        env={"PHT_API_RATE_LIMIT": "100000", "PHT_APPROVAL_WAIT_SECONDS": "1"},
    )
    try:
        server.wait_ready()
        server.registry = ClinicRegistry(data / "clinics.sqlite3")
        server.data = data
        yield server
    finally:
        server.stop()
