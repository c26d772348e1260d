"""The parser keeps structure and exact offsets; the manifest fails with sentences, not tracebacks."""

from __future__ import annotations

import pytest
from conftest import ROOT, write_corpus

from assistant.corpus.parse import chunk_units, load_corpus, parse_markdown, parse_text
from assistant.errors import CorpusError


@pytest.fixture(scope="module")
def seed():
    return load_corpus(ROOT / "corpus").documents[0]


def test_seed_splits_into_its_five_sections(seed):
    assert seed.id == "pht-podcast-qa"
    assert [s.id for s in seed.sections] == ["intro", "qa-1", "qa-2", "qa-3", "outro"]
    qa = {s.id: s.title for s in seed.sections}
    assert qa["qa-1"].startswith("Q&A 1: Building Strength")
    assert qa["qa-3"].startswith("Q&A 3: Race Training")


def test_sections_hold_their_question_and_answer(seed):
    text = {s.id: seed.text[s.start : s.end] for s in seed.sections}
    assert "3.5 miles pain-free" in text["qa-1"] and "less resilient" in text["qa-1"]
    assert "calf raises, step-ups, hip thrusts" in text["qa-2"]
    assert "Boston Marathon" in text["qa-3"] and "pull out of the race" in text["qa-3"]
    assert text["outro"].startswith("Proximal hamstring tendinopathy is a challenging condition")
    assert text["intro"].startswith("Q&A: Running as rehab")


def test_offsets_slice_the_source_exactly(seed):
    raw = (ROOT / "corpus" / "pht_podcast_qa.txt").read_bytes().decode("utf-8")
    chunks = seed.chunks()
    assert chunks
    for chunk in chunks:
        assert raw[chunk.start : chunk.end] == chunk.text
        assert chunk.source == f"pht-podcast-qa#{chunk.section_id}"
        for unit in chunk_units(chunk):
            assert raw[unit.start : unit.end] == unit.text
            assert chunk.start <= unit.start < unit.end <= chunk.end


def test_question_paragraphs_are_never_quotable(seed):
    for chunk in seed.chunks():
        for unit in chunk_units(chunk):
            if unit.kind == "statement":
                assert not unit.text.startswith(("Question", "Answer:", "“"))
                assert not unit.text.rstrip('”"').endswith("?")


def test_versions_are_content_hashes(tmp_path):
    folder = write_corpus(tmp_path / "c", {"a.txt": ("doc-a", "Some text here.\n")})
    v1 = load_corpus(folder).documents[0].version
    (folder / "a.txt").write_text("Some other text here.\n", encoding="utf-8")
    assert load_corpus(folder).documents[0].version != v1


def test_plain_text_uses_its_own_headings_and_blank_lines():
    text = "Care guide\n\nSome intro words here.\n\nWarm-up\n\nMove gently first.\n\nLoading\n\nAdd load slowly.\n"
    sections = parse_text(text)
    assert [s.id for s in sections] == ["intro", "warm-up", "loading"]
    assert text[sections[2].start : sections[2].end] == "Loading\n\nAdd load slowly."


def test_plain_text_without_headings_is_one_section():
    sections = parse_text("Just one paragraph of words.\n\nAnd another one follows.\n")
    assert [s.id for s in sections] == ["intro"]


def test_markdown_splits_on_headings_with_offsets():
    text = "Preface line.\n\n# Loading the tendon\n\nGo slow.\n\n## Running again\n\nWalk first.\n\n```\n# not a heading\n```\n"
    sections = parse_markdown(text)
    assert [s.id for s in sections] == ["intro", "loading-the-tendon", "running-again"]
    for s in sections:
        assert text[s.start : s.end].strip() == text[s.start : s.end]
    assert "# not a heading" in text[sections[2].start : sections[2].end]


def test_crlf_files_keep_exact_offsets(tmp_path):
    body = "Intro para.\r\n\r\nQ&A 1: First\r\n\r\nAnswer: Do this slowly. Then that.\r\n"
    folder = tmp_path / "c"
    write_corpus(folder, {})  # manifest written below
    (folder / "crlf.txt").write_bytes(body.encode("utf-8"))
    (folder / "manifest.toml").write_text('[[document]]\nid = "crlf"\nfile = "crlf.txt"\ntitle = "T"\n')
    doc = load_corpus(folder).documents[0]
    assert [s.id for s in doc.sections] == ["intro", "qa-1"]
    for chunk in doc.chunks():
        assert body[chunk.start : chunk.end] == chunk.text


@pytest.mark.parametrize(
    "manifest, files, needle",
    [
        (None, {}, "has no manifest.toml"),
        ("not = [valid", {}, "is not valid TOML"),
        ('[[document]]\nid = "x"\nfile = "missing.txt"\ntitle = "T"\n', {}, "no such file"),
        ('[[document]]\nid = "Bad Id"\nfile = "a.txt"\ntitle = "T"\n', {"a.txt": "words"}, "lowercase"),
        ('[[document]]\nid = "a"\nfile = "a.txt"\n', {"a.txt": "words"}, "lacks title"),
        (
            '[[document]]\nid = "a"\nfile = "a.txt"\ntitle = "T"\n[[document]]\nid = "a"\nfile = "a.txt"\ntitle = "T"\n',
            {"a.txt": "words"},
            "appears twice",
        ),
        ('[[document]]\nid = "a"\nfile = "a.pdf"\ntitle = "T"\n', {"a.pdf": "words"}, "reads .txt and .md"),
        ('[[document]]\nid = "a"\nfile = "a.txt"\ntitle = "T"\n', {"a.txt": b"\xff\xfe\x00bad"}, "not UTF-8"),
        ('[[document]]\nid = "a"\nfile = "a.txt"\ntitle = "T"\n', {"a.txt": "  \n\n "}, "no text"),
    ],
)
def test_bad_corpora_fail_with_one_sentence(tmp_path, manifest, files, needle):
    folder = tmp_path / "c"
    folder.mkdir()
    for name, content in files.items():
        path = folder / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    if manifest is not None:
        (folder / "manifest.toml").write_text(manifest)
    with pytest.raises(CorpusError) as err:
        load_corpus(folder)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_corpus_folder(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")
