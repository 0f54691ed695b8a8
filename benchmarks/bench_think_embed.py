"""One-pass think+embed vs. generate-then-re-encode and vs. generation alone; corpus encoding vs. a bare forward.

    python benchmarks/bench_think_embed.py [--reps 5] [--hidden 512] [--layers 8]
    python benchmarks/bench_think_embed.py --model o1emb-real/base --dtype bfloat16   # SmolLM2 shape

Model: by default a random Qwen2-shaped causal LM (hidden 512, 8 layers, 8 heads, 4 KV heads,
intermediate 1408, byte-level BPE vocabulary trained in-process on pseudo-words); with ``--model`` a
real checkpoint (folder or .gguf; e.g. SmolLM2-135M: hidden 576, 30 layers, 9/3 heads, vocabulary
49,152). Measured side by side in one run, interleaved, median of ``--reps``:

1. Query side, 16 queries x k=3 thoughts x 64 new tokens: ``encode_queries``'s path (vector read from
   the generation's KV cache) vs. the reference recipe (the same generation, then a second forward over
   prompt + thought + EOS + <emb> for every sample) vs. the generation alone (no vector at all: the
   floor). All three sample the same thoughts (seeded, counter-based noise); the script checks that
   the two vectors agree.
2. Documents: ``encode_corpus`` (tokenise, length-sort, pad, forward, pool, normalise) vs. a bare
   decoder forward over the very same pre-built token batches (the physical limit of this path).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
from _common import interleaved, median, report

from o1embedder.checkpoints import resolve_dtype
from o1embedder.model import O1Embedder, ThinkConfig
from o1embedder.model.thinking import Thinker, left_pad, positions_from_mask
from o1embedder.toy import build_model, train_tokenizer

_SYLLABLES = ["ka", "to", "ri", "ven", "sol", "mar", "tek", "lu", "dor", "an", "is", "qu", "ber", "ol", "ym",
              "pra", "zen", "ich", "wo", "fel", "gar", "nu", "ost", "el"]
WORDS = sorted({"".join(random.Random(i).choices(_SYLLABLES, k=1 + i % 4)) for i in range(6000)})


def _texts(n: int, lo: int, hi: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def build(hidden: int, layers: int) -> O1Embedder:
    tokenizer = train_tokenizer(_texts(2000, 5, 40, 0), vocab_size=4000, with_special_tokens=True)
    model = build_model(tokenizer, hidden=hidden, layers=layers, heads=8, kv_heads=4,
                        intermediate=int(hidden * 2.75), seed=0)
    return O1Embedder(model, tokenizer)


def query_side(model: O1Embedder, reps: int) -> dict:
    queries = _texts(16, 4, 12, 1)
    cfg = ThinkConfig(n_thoughts=3, temperature=0.1, top_p=0.9, max_new_tokens=64, seed=0)  # reference sampling
    thinker = Thinker(model.model.get_decoder(), model.model.get_output_embeddings(),
                      eos_id=model.template.eos_id, emb_id=model.template.emb_id,
                      pad_id=model.tokenizer.pad_token_id)
    prompts = [model.template.query_prompt_ids(q) for q in queries]
    keys = O1Embedder.sample_keys(queries, 3, 0)
    out: dict[str, np.ndarray] = {}

    def one_pass() -> None:
        with torch.no_grad():
            res = thinker.run(prompts, [64] * 16, cfg, keys, embed=True)
        out["one_pass"] = torch.nn.functional.normalize(res.vectors.float(), dim=-1).numpy()
        out["tokens"] = np.array([len(t) for t in res.thought_ids])

    def generate_only() -> None:
        with torch.no_grad():
            thinker.run(prompts, [64] * 16, cfg, keys, embed=False)

    def re_encode() -> None:
        with torch.no_grad():
            res = thinker.run(prompts, [64] * 16, cfg, keys, embed=False)
        seqs = [model.template.query_ids(queries[i // 3], t)[0] for i, t in enumerate(res.thought_ids)]
        out["re_encode"] = model.embed_ids(seqs, batch_size=48, show_progress=False)

    times = interleaved({"one_pass": one_pass, "re_encode": re_encode, "generate_only": generate_only}, reps)
    cosine = float((out["one_pass"] * out["re_encode"]).sum(-1).min())
    floor = 0.999 if model.dtype == torch.float32 else 0.99      # bf16: the two paths round differently
    assert cosine >= floor, f"vectors disagree (min cosine {cosine})"
    raw = {k: [round(t, 3) for t in v] for k, v in times.items()}
    common = {"min_cosine": cosine, "mean_thought_tokens": float(out["tokens"].mean()), "raw": raw}
    return [{"case": "think+embed 16q x k3 x 64 tok vs re-encode", "optimised_s": median(times["one_pass"]),
             "baseline_s": median(times["re_encode"]),
             "speedup": median(times["re_encode"]) / median(times["one_pass"]), **common},
            {"case": "think+embed vs generation alone (floor)", "optimised_s": median(times["one_pass"]),
             "baseline_s": median(times["generate_only"]),
             "speedup": median(times["generate_only"]) / median(times["one_pass"]), **common}]


def corpus_side(model: O1Embedder, reps: int) -> dict:
    docs = [{"title": t[:20], "text": t} for t in _texts(128, 20, 120, 2)]
    seqs = [model.template.document_ids(d) for d in docs]
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    batches = [left_pad([seqs[i] for i in order[s:s + 32]], model.tokenizer.pad_token_id, model.device)
               for s in range(0, len(order), 32)]
    decoder = model.model.get_decoder()

    def bare() -> None:
        with torch.no_grad():
            for ids, mask in batches:
                decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask),
                        use_cache=False)

    def encode() -> None:
        model.encode_corpus(docs, batch_size=32, show_progress=False)

    times = interleaved({"encode_corpus": encode, "bare_forward": bare}, reps)
    tokens = sum(len(s) for s in seqs)
    return {"case": f"encode_corpus 128 docs ({tokens} tokens)", "optimised_s": median(times["encode_corpus"]),
            "baseline_s": median(times["bare_forward"]),
            "speedup": median(times["bare_forward"]) / median(times["encode_corpus"]),
            "min_cosine": float("nan"), "mean_thought_tokens": float("nan"),
            "raw": {k: [round(t, 3) for t in v] for k, v in times.items()}}


def _shape(model: O1Embedder) -> dict:
    c = model.model.config
    return {"family": c.model_type, "hidden": c.hidden_size, "layers": c.num_hidden_layers,
            "heads": c.num_attention_heads, "kv_heads": c.num_key_value_heads, "vocab": len(model.tokenizer),
            "dtype": str(model.dtype).removeprefix("torch."), "device": str(model.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--model", default=None, help="a real checkpoint (folder or .gguf) instead of a random one")
    parser.add_argument("--dtype", default="float32", help="weights dtype (float32, bfloat16, auto)")
    args = parser.parse_args()
    if args.model:
        model = O1Embedder.from_pretrained(args.model, device="cpu", dtype=args.dtype)
    else:
        model = build(args.hidden, args.layers)
        model.model.to(resolve_dtype(args.dtype, torch.device("cpu")))
    shape = _shape(model)
    print(f"model: {shape}")
    rows = [*query_side(model, args.reps), corpus_side(model, args.reps)]
    name = "think_embed" if not args.model else f"think_embed_{Path(args.model).name}_{shape['dtype']}"
    report(name, rows, {"model_shape": shape, "model": args.model, "reps": args.reps,
                                 "note": "corpus row: speedup = bare/encode, i.e. the fraction of the "
                                         "bare-forward throughput that encode_corpus reaches"})


if __name__ == "__main__":
    main()
