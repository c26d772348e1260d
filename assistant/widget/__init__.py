"""The embeddable widget: ``widget.js``, one script a clinic's site loads with one tag.

The API serves it at ``GET /widget.js`` (assistant/api/routes/widget.py); docs/widget.md says how a
clinic uses it. The file is served as written (no build step) and gzipped once per process.

>>> asset = widget_script()
>>> asset.body.startswith(b"/*") and len(asset.gzipped) < GZIP_BUDGET
True
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SCRIPT = Path(__file__).with_name("widget.js")
GZIP_BUDGET = 20_000  # bytes: the most widget.js may weigh gzipped (tests/test_widget_api.py measures it)


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str


@lru_cache(maxsize=1)
def widget_script() -> Asset:
    """widget.js as bytes, gzipped (level 9, no timestamp: the same bytes every time) and its ETag."""
    body = SCRIPT.read_bytes()
    return Asset(
        body=body,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
    )
