"""Read the corpus: the manifest, each document's sections, and chunks with exact offsets.

Every chunk knows its document, section and the character offsets of its text in the source
file, so ``source_text[chunk.start:chunk.end] == chunk.text`` always holds.

>>> from assistant.corpus.parse import parse_text
>>> sections = parse_text("Intro line.\\n\\nQ&A 1: Legs\\n\\nAnswer: Squat slowly.\\n")
>>> [(s.id, s.title) for s in sections]
[('intro', 'Introduction'), ('qa-1', 'Q&A 1: Legs')]

Plain text splits on its own headings (short lines without closing punctuation); numbered
headings such as ``Q&A 2`` or ``Part 3`` outrank the others when present, text before the first
section heading is ``intro`` and text set apart by two or more blank lines after the last section
is ``outro``. Markdown splits on ``#`` headings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from assistant.errors import CorpusError

MANIFEST_NAME = "manifest.toml"
SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown"}
PARSER_VERSION = "1"
MAX_CHUNK_WORDS = 180  # all-MiniLM-L6-v2 reads 256 word pieces; stay well inside

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_NUMBERED_HEADING = re.compile(
    r"^\s*(?P<kind>Q\s*&\s*A|Q\s*and\s*A|Question|Part|Section|Chapter|Step|Episode)\s*(?P<num>\d+)\b",
    re.IGNORECASE,
)
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_BLANK_RUN = re.compile(r"(?:\r?\n[ \t]*){2,}")
_SENTENCE_END = re.compile(r"[.!?…:;,\"”'’)\]]$")
# (id, title) of the text outside every headed section: before the first heading, and set apart
# after the last. It frames the document (an overview, a summary) rather than answering one thing.
INTRO = ("intro", "Introduction")
OUTRO = ("outro", "Closing remarks")


@dataclass(frozen=True)
class DocumentEntry:
    """One row of the manifest."""

    id: str
    file: str
    title: str
    origin: str = ""
    added: str = ""
    reviewed_by: str = ""


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A passage to index: its exact text and where it sits in the source."""

    doc_id: str
    doc_title: str
    version: str
    section_id: str
    section_title: str
    start: int
    end: int
    text: str
    ordinal: int  # position of the chunk within its section

    @property
    def source(self) -> str:
        return f"{self.doc_id}#{self.section_id}"

    @cached_property  # worked out once per chunk (retrieval and the judge ask for it often)
    def id(self) -> str:
        """Hash of the chunk's content and position: the same text in the same place keeps its id."""
        key = "\x1f".join(
            [self.doc_id, self.section_id, str(self.start), str(self.end), self.section_title, self.text]
        )
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    @property
    def embedding_text(self) -> str:
        """What the encoder reads: the section title gives a passage its context."""
        if self.text.startswith(self.section_title):
            return self.text
        return f"{self.section_title}\n{self.text}"


_LABEL = re.compile(r"^(?P<label>(?:Question|Q|Answer|A)\s*[:.])\s*", re.IGNORECASE)
_QUESTION_END = re.compile(r"\?[\"”’')\]]*$")


@dataclass(frozen=True)
class Unit:
    """A sentence of a passage (or a whole paragraph that asks a question), for dense search.

    ``kind`` is ``statement`` (may be quoted in an answer) or ``question`` (matched, never quoted).
    """

    chunk_id: str
    source: str
    start: int
    end: int
    text: str
    kind: str

    @property
    def id(self) -> str:
        return f"{self.chunk_id}:{self.start}"


def outside_sections(chunk: Chunk) -> bool:
    """The chunk lies outside every headed section: the parser's introduction or closing text."""
    return (chunk.section_id, chunk.section_title) in (INTRO, OUTRO)


def framing(chunks: list[Chunk]) -> list[bool]:
    """For each chunk, whether it is framing text: its document's introduction or closing
    paragraph, in a document that also has headed sections (a document of one plain text has no
    framing: all of it is content)."""
    headed = {c.doc_id for c in chunks if not outside_sections(c)}
    return [outside_sections(c) and c.doc_id in headed for c in chunks]


def chunk_units(chunk: Chunk) -> list[Unit]:
    r"""The units of a passage, with offsets in the source file.

    >>> c = Chunk("d", "T", "v", "s", "S", 10, 72, "Question: Can I run?\n\nAnswer: Yes, run slowly. Build up over weeks.", 0)
    >>> [(u.kind, u.text) for u in chunk_units(c)]
    [('question', 'Question: Can I run?'), ('statement', 'Yes, run slowly.'), ('statement', 'Build up over weeks.')]
    """
    units: list[Unit] = []
    for block in _blocks(chunk.text):
        if _is_heading(block):
            continue
        start = chunk.start + block.start
        label = _LABEL.match(block.text)
        is_question = bool(label and label.group("label")[0].lower() == "q") or bool(
            _QUESTION_END.search(block.text)
        )
        if is_question:
            units.append(Unit(chunk.id, chunk.source, start, start + len(block.text), block.text, "question"))
            continue
        for s, e in sentence_spans(chunk.text, block.start, block.end):
            text = chunk.text[s:e]
            m = _LABEL.match(text)
            if m:  # "Answer: Running helps." quotes as "Running helps."
                s += m.end()
                text = chunk.text[s:e]
            if len(text.split()) < 3:
                continue
            kind = "question" if _QUESTION_END.search(text) else "statement"
            units.append(Unit(chunk.id, chunk.source, chunk.start + s, chunk.start + e, text, kind))
    return units


@dataclass
class Document:
    entry: DocumentEntry
    path: Path
    text: str
    version: str
    sections: list[Section] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.entry.id

    def chunks(self) -> list[Chunk]:
        out: list[Chunk] = []
        for section in self.sections:
            for ordinal, (start, end) in enumerate(_chunk_spans(self.text, section)):
                out.append(
                    Chunk(
                        doc_id=self.id,
                        doc_title=self.entry.title,
                        version=self.version,
                        section_id=section.id,
                        section_title=section.title,
                        start=start,
                        end=end,
                        text=self.text[start:end],
                        ordinal=ordinal,
                    )
                )
        return out


@dataclass
class Corpus:
    root: Path
    documents: list[Document]

    @property
    def version(self) -> str:
        """One hash over every document version and the parser: changes when anything does."""
        h = hashlib.sha256(f"parser={PARSER_VERSION}".encode())
        for doc in sorted(self.documents, key=lambda d: d.id):
            h.update(f"\x1f{doc.id}={doc.version}".encode())
        return h.hexdigest()[:16]

    def chunks(self) -> list[Chunk]:
        return [chunk for doc in self.documents for chunk in doc.chunks()]


def content_version(data: bytes) -> str:
    """The version of a document: the first 16 hex digits of the SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# manifest


def load_manifest(corpus_dir: Path) -> list[DocumentEntry]:
    path = Path(corpus_dir) / MANIFEST_NAME
    if not Path(corpus_dir).is_dir():
        raise CorpusError(
            f"The corpus folder {corpus_dir} does not exist; set PHT_CORPUS_DIR to a folder with a {MANIFEST_NAME}."
        )
    if not path.is_file():
        raise CorpusError(
            f"The corpus folder {corpus_dir} has no {MANIFEST_NAME}; add one naming each document."
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CorpusError(
            f"{path} is not valid TOML ({exc}); fix the file and run `pht-assistant index` again."
        ) from None
    rows = data.get("document", [])
    if not isinstance(rows, list) or not rows:
        raise CorpusError(f"{path} names no documents; add a [[document]] table for each file.")
    entries: list[DocumentEntry] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise CorpusError(f"Entry {i} in {path} is not a table; write it as [[document]].")
        missing = [k for k in ("id", "file", "title") if not str(row.get(k, "")).strip()]
        if missing:
            raise CorpusError(
                f"Entry {i} in {path} lacks {', '.join(missing)}; every document needs id, file and title."
            )
        doc_id = str(row["id"]).strip()
        if not _ID_RE.match(doc_id):
            raise CorpusError(
                f"Document id {doc_id!r} in {path} must be lowercase letters, digits and dashes."
            )
        if doc_id in seen:
            raise CorpusError(f"Document id {doc_id!r} appears twice in {path}; ids must be unique.")
        seen.add(doc_id)
        added = row.get("added", "")
        if isinstance(added, (dt.date, dt.datetime)):
            added = added.isoformat()
        entries.append(
            DocumentEntry(
                id=doc_id,
                file=str(row["file"]).strip(),
                title=str(row["title"]).strip(),
                origin=str(row.get("origin", "")).strip(),
                added=str(added).strip(),
                reviewed_by=str(row.get("reviewed_by", "") or "").strip(),
            )
        )
    return entries


def load_corpus(corpus_dir: Path) -> Corpus:
    """Read the manifest and parse every document it names.

    >>> from assistant.settings import PROJECT_ROOT
    >>> [d.id for d in load_corpus(PROJECT_ROOT / "corpus").documents]
    ['pht-podcast-qa']
    """
    corpus_dir = Path(corpus_dir)
    documents = [load_document(corpus_dir, entry) for entry in load_manifest(corpus_dir)]
    return Corpus(root=corpus_dir, documents=documents)


def corpus_version(corpus_dir: Path) -> str:
    """:attr:`Corpus.version` from the manifest and the files' bytes, without parsing them (what a
    reader checks at every start). Raises :class:`CorpusError` when the manifest or a file is
    missing; a file that would fail to parse still gets a version (load it to find out why).

    >>> from assistant.settings import PROJECT_ROOT
    >>> corpus_version(PROJECT_ROOT / "corpus") == load_corpus(PROJECT_ROOT / "corpus").version
    True
    """
    corpus_dir = Path(corpus_dir)
    h = hashlib.sha256(f"parser={PARSER_VERSION}".encode())
    for entry in sorted(load_manifest(corpus_dir), key=lambda e: e.id):
        path = (corpus_dir / entry.file).resolve()
        try:
            data = path.read_bytes()
        except OSError:
            raise CorpusError(
                f"The manifest names {entry.file} for {entry.id!r}, but there is no such file in {corpus_dir}."
            ) from None
        h.update(f"\x1f{entry.id}={content_version(data)}".encode())
    return h.hexdigest()[:16]


def load_document(corpus_dir: Path, entry: DocumentEntry) -> Document:
    path = (corpus_dir / entry.file).resolve()
    if not path.is_file():
        raise CorpusError(
            f"The manifest names {entry.file} for {entry.id!r}, but there is no such file in {corpus_dir}."
        )
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise CorpusError(
            f"{entry.file} is a {path.suffix or 'suffix-less'} file; the corpus reads .txt and .md files."
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CorpusError(f"{entry.file} is not UTF-8 text; save it as UTF-8 and index again.") from None
    if "\x00" in text:
        raise CorpusError(
            f"{entry.file} contains binary data; the corpus reads plain text and Markdown only."
        )
    if text.startswith("\ufeff"):
        pass  # a BOM is one character of the source; offsets stay exact
    is_markdown = path.suffix.lower() in {".md", ".markdown"}
    sections = parse_markdown(text) if is_markdown else parse_text(text)
    if not sections:
        raise CorpusError(f"{entry.file} has no text to index; add content or remove it from the manifest.")
    return Document(entry=entry, path=path, text=text, version=content_version(data), sections=sections)


# --------------------------------------------------------------------------------------------
# parsing


@dataclass(frozen=True)
class _Block:
    start: int
    end: int
    text: str
    gap_before: int  # blank lines before the block


def _blocks(text: str) -> list[_Block]:
    """Paragraphs separated by blank lines, with exact offsets (trailing whitespace trimmed)."""
    blocks: list[_Block] = []
    pos = 0
    gap = 0
    for match in list(_BLANK_RUN.finditer(text)) + [None]:
        seg_end = match.start() if match else len(text)
        segment = text[pos:seg_end]
        stripped = segment.strip()
        if stripped:
            lead = len(segment) - len(segment.lstrip())
            start = pos + lead
            end = start + len(stripped)
            blocks.append(_Block(start, end, text[start:end], gap))
        if match:
            gap = match.group(0).count("\n") - 1
            pos = match.end()
    return blocks


def _is_heading(block: _Block) -> bool:
    line = block.text
    if "\n" in line or len(line) > 100 or len(line.split()) > 14:
        return False
    if _NUMBERED_HEADING.match(line):
        return True
    return not _SENTENCE_END.search(line)


def _slug(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:48].rstrip("-") or "section"


def _section_id(title: str) -> str:
    m = _NUMBERED_HEADING.match(title)
    if m:
        kind = re.sub(r"\W+", "", m.group("kind").lower()).replace("and", "")
        kind = "qa" if kind in {"qa", "q"} else kind
        return f"{kind}-{int(m.group('num'))}"
    return _slug(title)


def _unique(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i}-{seen[i]}")
    return out


def parse_text(text: str) -> list[Section]:
    """Sections of a plain-text document (see the module docstring for the rules)."""
    blocks = _blocks(text)
    if not blocks:
        return []
    # A heading must introduce something: the last block is never one.
    heads = [i for i, b in enumerate(blocks[:-1]) if _is_heading(b)]
    numbered = [i for i in heads if _NUMBERED_HEADING.match(blocks[i].text)]
    top = numbered or heads
    # the very first line of a file is its title, part of the introduction, unless numbered
    top = [i for i in top if i > 0 or i in numbered]

    starts: list[tuple[int, str, str]] = []  # (block index, id, title)
    if not top or top[0] > 0:
        starts.append((0, *INTRO))
    for i in top:
        starts.append((i, _section_id(blocks[i].text), blocks[i].text))

    # An outro: after the last section, a block set apart by two or more blank lines.
    last = starts[-1][0]
    if numbered or len(starts) > 1:
        for j in range(last + 1, len(blocks)):
            if blocks[j].gap_before >= 2:
                starts.append((j, *OUTRO))
                break

    ids = _unique([sid for _, sid, _ in starts])
    sections = []
    for n, ((bi, _, title), sid) in enumerate(zip(starts, ids)):
        next_bi = starts[n + 1][0] if n + 1 < len(starts) else len(blocks)
        sections.append(Section(sid, title, blocks[bi].start, blocks[next_bi - 1].end))
    return sections


def parse_markdown(text: str) -> list[Section]:
    """Sections of a Markdown document: one per heading, text before the first is ``intro``."""
    heads: list[tuple[int, str]] = []
    offset = 0
    in_fence = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            in_fence = not in_fence
        elif not in_fence:
            m = _MD_HEADING.match(line.rstrip("\r\n"))
            if m:
                heads.append((offset, m.group(2).strip()))
        offset += len(line)
    spans: list[tuple[str, str, int]] = []
    first = heads[0][0] if heads else len(text)
    if text[:first].strip():
        spans.append((*INTRO, 0))
    for pos, title in heads:
        spans.append((_section_id(title), title, pos))
    ids = _unique([s[0] for s in spans])
    sections = []
    for n, ((_, title, pos), sid) in enumerate(zip(spans, ids)):
        end = spans[n + 1][2] if n + 1 < len(spans) else len(text)
        body = text[pos:end]
        if not body.strip():
            continue
        lead = len(body) - len(body.lstrip())
        start = pos + lead
        sections.append(Section(sid, title, start, start + len(body.strip())))
    return sections


# --------------------------------------------------------------------------------------------
# chunking


def _chunk_spans(text: str, section: Section) -> list[tuple[int, int]]:
    """Split a section into passages of whole paragraphs (or sentences) within the word budget."""
    pieces: list[tuple[int, int]] = []
    for block in _blocks(text[section.start : section.end]):
        start, end = section.start + block.start, section.start + block.end
        if len(block.text.split()) <= MAX_CHUNK_WORDS:
            pieces.append((start, end))
        else:
            pieces.extend(sentence_spans(text, start, end))
    spans: list[tuple[int, int]] = []
    words = 0
    for start, end in pieces:
        n = len(text[start:end].split())
        if spans and words + n <= MAX_CHUNK_WORDS:
            spans[-1] = (spans[-1][0], end)
            words += n
        else:
            spans.append((start, end))
            words = n
    return spans


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])[\"”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Offsets of the sentences in ``text[start:end]`` (lines inside a paragraph break too)."""
    spans: list[tuple[int, int]] = []
    segment = text[start:end]
    pos = 0
    boundaries = [m.end() for m in _SENTENCE_SPLIT.finditer(segment)]
    boundaries += [m.end() for m in re.finditer(r"\r?\n", segment)]
    for b in sorted(set(boundaries)) + [len(segment)]:
        piece = segment[pos:b]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            s = start + pos + lead
            spans.append((s, s + len(piece.strip())))
        pos = b
    return spans
