"""Index folders with a fake keyword encoder: exact search, manifest checks, resumable shards,
split encoding across workers, FAISS factories."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import faiss
import numpy as np
import pytest

from o1embedder.errors import IndexMismatchError, InputError
from o1embedder.retrieval import ShardSpec, build_dense_index, corpus_fingerprint, load_index
from o1embedder.retrieval.base import Encoder, QueryEncoding
from o1embedder.retrieval.index import check_corpus
from o1embedder.templates import document_text


class KeywordEncoder:
    """Hashes words into ``dim`` buckets, normalised: a deterministic stand-in for a model."""

    normalized = True

    def __init__(self, dim: int = 32, salt: str = "a", fail_after: int | None = None) -> None:
        self.dim, self.salt, self.name, self.fail_after, self.calls = dim, salt, f"kw:{salt}", fail_after, 0

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.salt}{self.dim}".encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"kind": "keyword", "salt": self.salt}

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().split():
            v[zlib.crc32((self.salt + word).encode()) % self.dim] += 1.0
        return v / max(float(np.linalg.norm(v)), 1e-12)

    def encode_documents(self, docs, *, batch_size=32, show_progress=None) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("killed")
        return np.stack([self._vec(document_text(d)) for d in docs])

    def encode_queries(self, queries, *, batch_size=32, show_progress=None) -> QueryEncoding:
        return QueryEncoding(np.stack([self._vec(q) for q in queries]), [[] for _ in queries])


def make_corpus(n: int = 50) -> dict[str, dict[str, str]]:
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta", "iota"]
    return {f"doc{i}": {"title": words[i % 10], "text": f"{words[(i * 3) % 10]} {words[(i * 7) % 10]} item{i}"}
            for i in range(n)}


def test_fake_is_an_encoder() -> None:
    assert isinstance(KeywordEncoder(), Encoder)


def test_flat_index_equals_exact_numpy_search(tmp_path: Path) -> None:
    enc, corpus = KeywordEncoder(), make_corpus()
    index = build_dense_index(enc, corpus, tmp_path / "idx", shard_size=7, show_progress=False)
    m = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert m["count"] == 50 and m["dim"] == 32 and m["fingerprint"] == enc.fingerprint()
    assert m["num_shards"] == 8 and m["factory"] == "Flat" and m["normalized"] is True
    assert m["corpus_fingerprint"] == corpus_fingerprint(corpus) and "faiss" in m["versions"]
    queries = ["alpha beta", "omega item3", "zeta"]
    qv = enc.encode_queries(queries).vectors
    docs = np.concatenate(index.embeddings())                       # memory-mapped shards
    assert isinstance(index.embeddings()[0], np.memmap)
    scores = qv @ docs.T
    for row, hits in zip(scores, index.search(qv, 5), strict=True):
        assert [s for _, s in hits] == pytest.approx(np.sort(row)[::-1][:5], abs=1e-6)
    reloaded = load_index(tmp_path / "idx")
    assert reloaded.search(qv, 5) == index.search(qv, 5)


def test_killed_encode_resumes_to_the_same_index(tmp_path: Path) -> None:
    corpus = make_corpus(40)
    full = build_dense_index(KeywordEncoder(), corpus, tmp_path / "full", shard_size=6, show_progress=False)
    with pytest.raises(KeyboardInterrupt):
        build_dense_index(KeywordEncoder(fail_after=3), corpus, tmp_path / "cut", shard_size=6, show_progress=False)
    shards = sorted(p.name for p in (tmp_path / "cut" / "embeddings").iterdir() if p.suffix == ".npy")
    assert shards == ["shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]   # whole shards only
    assert not (tmp_path / "cut" / "manifest.json").exists()
    with pytest.raises(InputError, match="no manifest.json"):
        load_index(tmp_path / "cut")
    resumer = KeywordEncoder()
    resumed = build_dense_index(resumer, corpus, tmp_path / "cut", shard_size=6, show_progress=False)
    assert resumer.calls == 4                                        # 7 shards, 3 were there
    a, b = full.faiss.reconstruct_n(0, 40), resumed.faiss.reconstruct_n(0, 40)
    assert np.array_equal(a, b) and full.doc_ids == resumed.doc_ids
    assert (tmp_path / "full" / "index.faiss").read_bytes() == (tmp_path / "cut" / "index.faiss").read_bytes()


def test_split_workers_then_merge(tmp_path: Path) -> None:
    corpus, out = make_corpus(30), tmp_path / "idx"
    for i in (1, 2):                                                 # workers on "other machines"
        assert build_dense_index(KeywordEncoder(), corpus, tmp_path / f"w{i}", shard_size=4,
                                 shard=ShardSpec(i, 3), show_progress=False) is None
    with pytest.raises(InputError, match="shards still missing"):
        build_dense_index(KeywordEncoder(), corpus, out, shard_size=4, shard=ShardSpec(0, 3),
                          wait_timeout_s=0.2, show_progress=False)
    for i in (1, 2):                                                 # copy their shards in
        for shard in (tmp_path / f"w{i}" / "embeddings").glob("shard-*.npy"):
            (out / "embeddings" / shard.name).write_bytes(shard.read_bytes())
    worker0 = KeywordEncoder()
    merged = build_dense_index(worker0, corpus, out, shard_size=4, shard=ShardSpec(0, 3), show_progress=False)
    assert worker0.calls == 0                                        # its own shards were already written
    single = build_dense_index(KeywordEncoder(), corpus, tmp_path / "one", shard_size=4, show_progress=False)
    assert np.array_equal(merged.faiss.reconstruct_n(0, 30), single.faiss.reconstruct_n(0, 30))


def test_mismatches_are_refused(tmp_path: Path) -> None:
    corpus = make_corpus(20)
    build_dense_index(KeywordEncoder(), corpus, tmp_path / "idx", shard_size=8, show_progress=False)
    with pytest.raises(IndexMismatchError, match="already holds an index"):
        build_dense_index(KeywordEncoder(salt="b"), corpus, tmp_path / "idx", show_progress=False)
    changed = dict(corpus, doc3={"title": "new", "text": "edited"})
    with pytest.raises(IndexMismatchError, match="another corpus"):
        check_corpus(load_index(tmp_path / "idx").manifest, changed)
    # half-built folder of another model: its shards are never mixed in
    with pytest.raises(KeyboardInterrupt):
        build_dense_index(KeywordEncoder(fail_after=1), corpus, tmp_path / "half", shard_size=8, show_progress=False)
    with pytest.raises(IndexMismatchError, match="embeddings of another model"):
        build_dense_index(KeywordEncoder(salt="b"), corpus, tmp_path / "half", shard_size=8, show_progress=False)
    with pytest.raises(IndexMismatchError, match="embeddings of another corpus"):
        build_dense_index(KeywordEncoder(), changed, tmp_path / "half", shard_size=8, show_progress=False)


def test_up_to_date_index_is_reused(tmp_path: Path) -> None:
    corpus = make_corpus(10)
    build_dense_index(KeywordEncoder(), corpus, tmp_path / "idx", show_progress=False)
    again = KeywordEncoder()
    build_dense_index(again, corpus, tmp_path / "idx", show_progress=False)
    assert again.calls == 0


@pytest.mark.parametrize("factory", ["HNSW16", "IVF4,Flat", "IVF4,PQ4x4"])
def test_approximate_factories(tmp_path: Path, factory: str) -> None:
    enc, corpus = KeywordEncoder(), make_corpus(300)
    index = build_dense_index(enc, corpus, tmp_path / "idx", factory=factory, show_progress=False)
    assert index.manifest["factory"] == factory
    qv = enc.encode_queries(["alpha beta item7"]).vectors
    hits = load_index(tmp_path / "idx").search(qv, 10)[0]
    assert len(hits) == 10 and all(h[0] in corpus for h in hits)
    if "PQ" not in factory:                                           # exact enough to find the top doc
        assert hits[0][1] == pytest.approx(float(np.max(qv @ np.concatenate(index.embeddings()).T)), abs=1e-5)


def test_bad_factory_and_broken_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="bad FAISS factory string 'Bogus'"):
        build_dense_index(KeywordEncoder(), make_corpus(5), tmp_path / "x", factory="Bogus")
    build_dense_index(KeywordEncoder(), make_corpus(5), tmp_path / "idx", show_progress=False)
    (tmp_path / "idx" / "doc_ids.jsonl").write_text('"other"\n')
    with pytest.raises(InputError, match="does not match the manifest"):
        load_index(tmp_path / "idx")
    assert faiss is not None


def test_shard_spec_parse() -> None:
    assert ShardSpec.parse("1/4") == ShardSpec(1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(InputError):
            ShardSpec.parse(bad)


class LimitedEncoder(KeywordEncoder):
    """The same weights (fingerprint) at another passage limit: what ``o1emb index --max-length`` changes."""

    def __init__(self, max_length: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length

    def describe(self) -> dict:
        return {**super().describe(), "max_length": self.max_length, "path": f"/somewhere/{self.max_length}"}


def test_an_index_at_another_passage_limit_is_neither_reused_nor_resumed(tmp_path: Path) -> None:
    """The fingerprint names the weights only: the passage limit (and template, pooling) is checked apart,
    for a finished index and for half-written shards."""
    corpus = make_corpus(20)
    build_dense_index(LimitedEncoder(16), corpus, tmp_path / "idx", shard_size=8, show_progress=False)
    again = LimitedEncoder(16)
    again.describe = lambda: {"kind": "keyword", "salt": "a", "max_length": 16, "path": "/moved"}  # path may move
    build_dense_index(again, corpus, tmp_path / "idx", shard_size=8, show_progress=False)
    assert again.calls == 0
    with pytest.raises(IndexMismatchError, match="max_length=16"):
        build_dense_index(LimitedEncoder(32), corpus, tmp_path / "idx", shard_size=8, show_progress=False)
    with pytest.raises(KeyboardInterrupt):
        build_dense_index(LimitedEncoder(16, fail_after=1), corpus, tmp_path / "half", shard_size=8,
                          show_progress=False)
    with pytest.raises(IndexMismatchError, match="encoder_settings"):
        build_dense_index(LimitedEncoder(32), corpus, tmp_path / "half", shard_size=8, show_progress=False)
