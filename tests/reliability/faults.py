"""Helpers of the reliability suite: figures, process readings, error bodies, polling."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx

from assistant import SAFETY_NOTICE

_FIGURES: list[tuple[str, str]] = []


def figure(name: str, value: str) -> None:
    """Record a measured figure for the end-of-run summary (and docs/reliability.md)."""
    _FIGURES.append((name, value))


FIGURES = _FIGURES


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def is_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    """An error body as the API promises it: ``{error, message, safety_notice}`` with the notice."""
    assert r.status_code == status, r.text[:500]
    body = r.json()
    assert set(body) == {"error", "message", "safety_notice"}, body
    assert body["safety_notice"] == SAFETY_NOTICE
    if code:
        assert body["error"] == code, body
    return body


def copy_data(built_data_dir: Path, root: Path) -> Path:
    data = root / "data"
    shutil.copytree(built_data_dir, data)
    return data


def wait_for(check, timeout: float, every: float = 0.1):
    """Poll ``check()`` until it returns something true; that value (``None`` after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    return None
