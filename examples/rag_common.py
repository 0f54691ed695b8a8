"""What the examples/rag_*.py share: their arguments, the BEIR corpus and queries, and the printout.

Each example indexes a BEIR corpus into Qdrant's embedded local mode (a real on-disk vector store, no
server) through one framework's own Qdrant integration and our adapter, then searches it: the queries
think, the documents do not, and the thoughts are printed beside the top hits. ``--json OUT`` writes
``{query id: [doc ids of the top k]}``, the form tests/test_rag_examples.py compares with
``o1emb search --json`` on the same model and corpus.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def arguments(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", default="o1emb-demo/model", help="an O1 model folder (default: the demo's)")
    p.add_argument("--data", default="o1emb-demo/world", help="a BEIR folder (default: the demo's world)")
    p.add_argument("--split", default="test", help="qrels split the queries come from")
    p.add_argument("--queries", type=int, default=3, help="how many of its queries to ask (default 3)")
    p.add_argument("--k", type=int, default=10, help="hits per query")
    p.add_argument("--store", default=None, help="Qdrant's local folder (default: a new temporary one)")
    p.add_argument("--json", default=None, help="write {query id: [top-k doc ids]} here")
    return p.parse_args()


def corpus(folder: str) -> tuple[list[str], list[str]]:
    """Document ids and texts, each text as the O1 model embeds a BEIR record (``title text``)."""
    from o1embedder.formats import load_beir
    from o1embedder.templates import document_text

    data = load_beir(folder, with_corpus=True)
    ids = list(data.corpus)
    return ids, [document_text(data.corpus[i]) for i in ids]


def queries(folder: str, split: str, n: int) -> list[tuple[str, str]]:
    """The first ``n`` judged queries of ``split``: (query id, text)."""
    from o1embedder.formats import load_beir

    data = load_beir(folder, split, with_corpus=False)
    return [(q, data.queries[q]) for q in list(data.qrels)[:n]]


def store_folder(path: str | None) -> str:
    if path:
        return path
    import tempfile

    return os.path.join(tempfile.mkdtemp(prefix="o1emb-qdrant-"), "store")


def show(qid: str, text: str, thoughts: Sequence[str], hits: Sequence[tuple[str, float]],
         found: dict[str, Any]) -> None:
    """Print one query's thoughts and hits and keep its doc ids for ``--json``."""
    print(f"\nquery {qid}: {text}")
    for t in thoughts:
        print(f"  thought: {t}")
    for doc_id, score in hits[:3]:
        print(f"  {score:8.4f}  {doc_id}")
    found[qid] = [doc_id for doc_id, _ in hits]


def write(found: dict[str, Any], path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(found, indent=1), encoding="utf-8")
