"""No thinking, one query at a time: what padding a batch of one costs (``model/padding.py``).

    python benchmarks/bench_padding.py [--queries 12] [--rounds 2]

The random SmolLM2-135M shape in bf16 (``bench_latency.build``), 12 distinct short queries (22 tokens
each with the template), ``encode_queries([q], think=False)`` timed one by one after a warm-up, with the
model's padding multiple forced to each value (``None``: the default, which pads a batch of one to a
multiple of ``ONE_ROW_MULTIPLE``, 8; batches of several to 32; 32 lifts that cap, as before it).
Prints the median milliseconds per query
for each multiple, per round (rounds interleave the multiples).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench_latency import build, queries

from o1embedder.model import O1Embedder, padding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-padding-") as tmp:
        model = O1Embedder.from_pretrained(build("smollm2", Path(tmp)), device="cpu", dtype="auto")
        texts = queries(args.queries)
        for rnd in range(args.rounds):
            for multiple in (None, 1, 8, 32):
                model.pad_multiple = multiple
                padding.ONE_ROW_MULTIPLE = multiple or 8       # 32: as before the cap, a batch of one padded to 32
                for q in texts[:2]:
                    model.encode_queries([q], think=False, show_progress=False)        # warm-up
                times = []
                for q in texts:
                    start = time.perf_counter()
                    model.encode_queries([q], think=False, show_progress=False)
                    times.append(time.perf_counter() - start)
                print(f"round {rnd}  multiple {multiple!s:>4}  {statistics.median(times) * 1000:6.1f} ms", flush=True)


if __name__ == "__main__":
    main()
