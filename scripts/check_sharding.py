"""Sharded training on CPU, as a user launches it: DDP (torchrun), DeepSpeed ZeRO-2 and the FSDP example
config (accelerate launch), 2 gloo ranks each, full fine-tuning and LoRA, on a tiny random model.

For each run: the logged losses of both steps, the largest weight difference of ``OUT/final`` from the
DDP run's, and the largest difference of the saved model's document and query vectors (loaded back
with ``O1Embedder.from_pretrained``) from the DDP model's. Prints a table and writes one JSON file.

    python scripts/check_sharding.py [--out sharding.json]

DeepSpeed runs only where the ``deepspeed`` package is importable (it is no dependency of ours:
``DS_BUILD_OPS=0 pip install deepspeed``). Figures of the last run: docs/training.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "dist_scripts"))

FSDP_CPU = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
mixed_precision: 'no'
use_cpu: true
num_machines: 1
num_processes: 2
machine_rank: 0
fsdp_config:
  fsdp_version: 1
  fsdp_sharding_strategy: FULL_SHARD
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: Qwen2DecoderLayer
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_use_orig_params: true
  fsdp_sync_module_states: false   # true is refused on CPU by accelerate
  fsdp_cpu_ram_efficient_loading: false   # true needs sync_module_states
"""


def run(launch: list[str], args: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([*launch, "-m", "o1embedder", "--log-level", "WARNING", "train", *args, "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr.strip().splitlines()[-1][-300:]}
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    losses = [{k: r[k] for k in ("loss", "contrastive", "thought_lm")} for r in state["log_history"] if "contrastive" in r]
    return {"ok": True, "losses": losses, "fsdp_warning": "FSDP was asked for" in proc.stderr}


def compare(a: Path, b: Path) -> dict:
    import numpy as np
    from safetensors.torch import load_file

    from o1embedder.model import O1Embedder

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    models = [O1Embedder.from_pretrained(p, device="cpu", dtype="float32") for p in (a, b)]
    docs = ["the golden tower stands by the river", "a crimson castle near the forest"]
    d = [m.encode_corpus(docs) for m in models]
    q = [m.encode_queries(["which tower is golden"], think=False) for m in models]
    return {"max_weight_diff": max(float((wa[k] - wb[k]).abs().max()) for k in wa),
            "max_doc_vector_diff": float(np.abs(d[0] - d[1]).max()),
            "max_query_vector_diff": float(np.abs(q[0] - q[1]).max())}


def main() -> None:
    from helpers import save_model, simple_rows, write_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sharding.json")
    out_file = parser.parse_args().out
    root = Path(tempfile.mkdtemp(prefix="o1emb-sharding-"))
    rows = simple_rows(8, 3)
    save_model(root / "model", [r["query"] + " " + r["pos"][0] for r in rows] * 5)
    write_rows(root / "rows.jsonl", rows)
    (root / "fsdp_cpu.yaml").write_text(FSDP_CPU)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(root / "fsdp_cpu.yaml")]
    base = ["--model", str(root / "model"), "--data", str(root / "rows.jsonl"), "--group-size", "2",
            "--thought-dropout", "0", "--mixed-precision", "no", "--max_steps", "2", "--logging_steps", "1",
            "--learning_rate", "1e-3", "--warmup_steps", "0", "--save_strategy", "steps", "--save_steps", "2",
            "--per_device_train_batch_size", "2"]
    zero2 = str(REPO / "examples" / "train_deepspeed_zero2.json")
    results = {}
    for mode in ("full", "lora"):
        runs = {"ddp": (torchrun, []), "fsdp-config": (accelerate, [])}
        if importlib.util.find_spec("deepspeed") is not None:
            runs["deepspeed-zero2"] = (torchrun, ["--deepspeed", zero2])
        for name, (launch, extra) in runs.items():
            folder = root / f"{name}-{mode}"
            found = run(launch, [*base, f"--{mode}", *extra], folder)
            if found["ok"] and name == "ddp":          # how far training moved the weights, for scale
                found["max_change_from_base"] = compare(root / "model", folder / "final")["max_weight_diff"]
            if found["ok"] and name != "ddp" and results.get(f"ddp-{mode}", {}).get("ok"):
                found.update(compare(root / f"ddp-{mode}" / "final", folder / "final"))
            results[f"{name}-{mode}"] = found
            print(f"{name:16s} {mode:5s} {json.dumps(found)}")
    Path(out_file).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out_file} (runs in {root})")


if __name__ == "__main__":
    main()
