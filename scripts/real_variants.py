"""Training variants of the real recipe, chosen on validation queries (issue 22, part 3: an LM that stays
able to think; docs/real.md, "Choosing the training settings").

    python scripts/real_variants.py --base o1emb-real --work /tmp/variants \\
        --variant lam08 training.lam=0.8 --variant lam05 training.lam=0.5 \\
        --variant warm10 training.lam=0.8 training.lm_warmup_steps=10 [--heldout 40] [--heldout-from train]

Each variant is the shipped recipe with its ``--set`` overrides, plus ``training.heldout_thoughts``
(the same seeded rows for every model, whose expert thoughts' LM loss is scored before and after
training: validation queries the experts write thoughts for, or with ``--heldout-from train``, as in
the runs of docs/real.md before it existed, training rows held out of every model),
``splits=[validation]`` and only the O1 systems. Its folder starts as a copy of the
base run's upstream stages (the converted model, mined rows, validation queries, both experts'
synthesis and refinement, with their provenance records), so only training and what follows it run:
the records decide, as in any rerun. Finished variants are reused. Prints, per variant and O1 model,
the held-out thought LM loss before and after training, the validation nDCG@10 without and with
thinking (k = 3), and the mean thought length; writes ``WORK/variants.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

UPSTREAM = ("base", "base.json", "data")
"""Outputs of convert, mine and validation (with their ``*.provenance.json`` beside them); each
expert's folder (synthesis, refinement) is copied too."""


def seed_folder(base: Path, out: Path, experts: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in [*UPSTREAM, *experts]:
        for path in base.glob(f"{name}*"):
            target = out / path.name
            if target.exists():
                continue
            if path.is_dir():
                shutil.copytree(path, target)
            else:
                shutil.copy2(path, target)


def run_variant(recipe: str, base: Path, out: Path, sets: list[str], heldout: int,
                heldout_from: str = "validation") -> dict[str, Any]:
    report = out / "report.json"
    if not report.is_file():
        seed_folder(base, out, ["paper", "informed"])
        overrides = [f"out={out}", "splits=[validation]", "systems=[o1-no-think, o1-think-k3]",
                     f"training.heldout_thoughts={heldout}", f"training.heldout_from={heldout_from}",
                     "latency.queries=0", *sets]
        cmd = [sys.executable, "-m", "o1embedder", "pipeline", recipe]
        for item in overrides:
            cmd += ["--set", item]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(report.read_text())


def summary(name: str, sets: list[str], report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for model, lm in (report.get("heldout_thought_lm") or {}).items():
        if not model.startswith("o1-"):
            continue
        expert = model.removeprefix("o1-")
        found = {f"{r['dataset']}/{r['system']}": r["ndcg@10"] for r in report["validation_results"]
                 if r["expert"] == expert}
        loss = lambda v: v.get("thought_lm", v.get("loss")) if isinstance(v, dict) else v    # noqa: E731
        tokens = {k: v["mean_thought_tokens"] for k, v in (report.get("thought_tokens") or {}).items()
                  if k.startswith(model + "-")}
        rows.append({"variant": name, "sets": sets, "model": model, "lm_before": loss(lm["before"]),
                     "lm_after": loss(lm["after"]), "validation": found, "thought_tokens": tokens})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="a finished run of the recipe (its upstream stages are reused)")
    parser.add_argument("--work", required=True)
    parser.add_argument("--recipe", default="recipes/smollm2-beir.yaml")
    parser.add_argument("--variant", nargs="+", action="append", required=True, metavar=("NAME", "KEY=VALUE"),
                        help="a variant's name and its --set overrides")
    parser.add_argument("--heldout", type=int, default=40, help="rows whose thoughts' LM loss is scored")
    parser.add_argument("--heldout-from", choices=("validation", "train"), default="validation",
                        help="validation queries (no training row removed) or training rows held out")
    args = parser.parse_args()
    work, rows = Path(args.work), []
    for name, *sets in args.variant:
        report = run_variant(args.recipe, Path(args.base), work / name, sets, args.heldout, args.heldout_from)
        rows += summary(name, sets, report)
    (work / "variants.json").write_text(json.dumps(rows, indent=2))
    for r in rows:
        v = r["validation"]
        cells = " ".join(f"{d}: {v.get(f'{d}/o1-no-think', float('nan')):.4f}/{v.get(f'{d}/o1-think-k3', float('nan')):.4f}"
                         for d in sorted({key.split('/')[0] for key in v}))
        print(f"{r['variant']:<10} {r['model']:<12} thought LM {r['lm_before']} -> {r['lm_after']}  "
              f"nDCG@10 no-think/think {cells}  tokens {r['thought_tokens']}")


if __name__ == "__main__":
    main()
