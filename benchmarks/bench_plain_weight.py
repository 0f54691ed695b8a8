"""What mixing the no-thinking vector into the thinking vector costs (``ThinkConfig.plain_weight``).

    python benchmarks/bench_plain_weight.py [--model RUN/models/o1-paper/final] [--dtype bfloat16]
                                            [--queries 8] [--new-tokens 48] [--reps 3]

Side by side in one run, interleaved, median of ``--reps``: ``encode_queries`` thinking (k = 3, the
recipe's sampling, ``--new-tokens``) with ``plain_weight`` 0 (the paper's vector) and 0.6 (one more
forward per query: the no-thinking pass), and the no-thinking pass alone, for ``--queries`` queries in
one batch and one query at a time. Model: ``--model`` (an O1 model folder, e.g. a recipe run's SmolLM2
o1-paper: hidden 576, 30 layers), else the random Qwen2-shaped model of ``bench_think_embed.py`` (hidden
512, 8 layers). Writes ``benchmarks/results/bench_plain_weight.json``.
"""

from __future__ import annotations

import argparse

from _common import interleaved, machine, median, report
from bench_think_embed import _texts, build

from o1embedder.model import O1Embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.model:
        model = O1Embedder.from_pretrained(args.model, device="cpu", dtype=args.dtype)
        queries = ["do statins cause breast cancer?", "vitamin d and bone fractures in older women",
                   "exercise lowers the risk of depression", "how does fiber affect colon health?",
                   "caffeine and heart rhythm", "is red meat linked to diabetes", "sleep and memory consolidation",
                   "antibiotics in early childhood and asthma"] * (1 + args.queries // 8)
        shape = "a checkpoint: " + args.model
    else:
        model = build(512, 8)
        queries = _texts(args.queries, 4, 12, 1)
        shape = "random Qwen2, hidden 512, 8 layers"
    queries = queries[:args.queries]
    sampling = {"n_thoughts": 3, "temperature": 0.1, "top_p": 0.9, "max_new_tokens": args.new_tokens, "seed": 0}

    def thinking(weight: float, batch: bool):
        def run() -> None:
            if batch:
                model.encode_queries(queries, **sampling, plain_weight=weight, show_progress=False)
            else:
                for q in queries:
                    model.encode_queries([q], **sampling, plain_weight=weight, show_progress=False)
        return run

    def plain(batch: bool):
        def run() -> None:
            if batch:
                model.encode_queries(queries, think=False, show_progress=False)
            else:
                for q in queries:
                    model.encode_queries([q], think=False, show_progress=False)
        return run

    rows = []
    for batch in (True, False):
        times = interleaved({"w0": thinking(0.0, batch), "w0.6": thinking(0.6, batch), "plain": plain(batch)},
                            args.reps)
        t0, t6, tp = (median(times[k]) for k in ("w0", "w0.6", "plain"))
        rows.append({"queries": "one batch" if batch else "one at a time", "think_ms_per_query": 1000 * t0 / len(queries),
                     "think_mixed_ms_per_query": 1000 * t6 / len(queries),
                     "no_think_ms_per_query": 1000 * tp / len(queries), "mixed_over_paper": t6 / t0})
    report("bench_plain_weight", rows, {"model": shape, "dtype": args.dtype, "queries": len(queries),
                                        "new_tokens": args.new_tokens, "reps": args.reps, "machine": machine()})


if __name__ == "__main__":
    main()
