"""PDFs written by hand for the upload tests: many pages, or one page that unpacks to a lot."""

from __future__ import annotations

import zlib


def _pdf(contents: list[bytes]) -> bytes:
    """A PDF with one page per content stream (Helvetica), each stream deflated."""
    n = len(contents)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, stream in enumerate(contents):
        data = zlib.compress(stream, 9)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def text_stream(lines: list[str]) -> bytes:
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    body = "\n".join(f"({esc(line)}) Tj T*" for line in lines)
    return f"BT /F1 11 Tf 14 TL 50 780 Td\n{body}\nET".encode("latin-1")


SENTENCE = "The hamstring tendon attaches to the sitting bone and takes load in running. "


def bomb(text_bytes: int = 60_000_000) -> bytes:
    """One page whose drawing instructions unpack to ``text_bytes`` of text (the finding: 60 MB)."""
    line = ("(" + SENTENCE * 2 + ") Tj T*\n").encode()
    return _pdf([b"BT /F1 11 Tf 14 TL 50 780 Td\n" + line * (text_bytes // len(line)) + b"ET"])


def pages(n: int, chars_per_page: int = 400, vary: bool = True) -> bytes:
    """``n`` pages of text, each about ``chars_per_page`` characters (numbered, so pages differ)."""
    per_line = len(SENTENCE)
    out = []
    for p in range(n):
        lines = [f"Page {p + 1}, line {i + 1}: {SENTENCE}" if vary else SENTENCE for i in range(max(1, chars_per_page // per_line))]
        out.append(text_stream(lines))
    return _pdf(out)
