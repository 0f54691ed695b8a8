"""Shared by the training tests and the torchrun scripts: rows, tiny models, fixed batches, gradients."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

from o1embedder.training.config import AdapterConfig, DataConfig, TrainConfig

WORDS = ("alpha beta gamma delta omega river tower bridge castle forest desert ocean island valley "
         "copper silver golden marble velvet crimson amber violet azure scarlet").split()


def simple_rows(n: int = 6, n_neg: int = 3, *, thought_every: int = 1) -> list[dict[str, Any]]:
    """Deterministic rows; every ``thought_every``-th row has a thought (others have none)."""
    rows = []
    for i in range(n):
        w = WORDS[i % len(WORDS)]
        row: dict[str, Any] = {
            "query": f"which {w} tower is {WORDS[(i + 3) % len(WORDS)]}",
            "pos": [f"the {w} tower stands by the {WORDS[(i + 5) % len(WORDS)]} river"],
            "neg": [f"a {WORDS[(i + j + 7) % len(WORDS)]} castle {j}" for j in range(n_neg)],
        }
        if i % thought_every == 0:
            row["thought"] = f"the {w} tower near a {WORDS[(i + 5) % len(WORDS)]} river, {i} floors"
        rows.append(row)
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def save_model(directory: Path, texts: list[str] | None = None, *, vocab_size: int = 1000, hidden: int = 64,
               layers: int = 2, seed: int = 0) -> Path:
    from o1embedder.model import O1Embedder
    from o1embedder.toy import build_model, train_tokenizer

    tokenizer = train_tokenizer(texts or [], vocab_size=vocab_size, with_special_tokens=True)
    model = build_model(tokenizer, hidden=hidden, layers=layers, seed=seed)
    O1Embedder(model, tokenizer).save_pretrained(directory)
    return directory


def config(model: Path, data: Path, out: Path, *, group_size: int = 4, mode: str = "full",
           **training_args: Any) -> TrainConfig:
    return TrainConfig(model=str(model), data=str(data), out=str(out), mixed_precision="no",
                       data_cfg=DataConfig(group_size=group_size, thought_dropout=0.0),
                       adapter=AdapterConfig(mode=mode, r=4, alpha=8, dropout=0.0),
                       training_args={"report_to": "none", "disable_tqdm": True, **training_args})


def fixed_batch(parts: Any, indices: list[int]) -> dict[str, torch.Tensor]:
    """The collated batch of dataset examples ``indices`` (deterministic: epoch 0)."""
    return parts.collator([parts.dataset[i] for i in indices])


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()
            if p.requires_grad and p.grad is not None}


def synthetic_world(seed: int = 0, n_docs: int = 60, n_attrs: int = 48) -> dict[str, Any]:
    """A retrieval world: each document is an entity with 3 attribute words; a query names 2 of them.

    Training queries use attribute pairs (a, b) and (b, c); held-out queries the pair (a, c) - the
    same documents, unseen query wording. The thought spells the entity's name and all attributes.
    """
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ru", "te", "vo", "zi", "pa", "ne", "so", "du", "fi"]
    names = set()
    while len(names) < n_docs + n_attrs:
        names.add("".join(rng.choice(syllables) for _ in range(3)))
    names = sorted(names)
    rng.shuffle(names)
    entities, attrs = names[:n_docs], names[n_docs:]
    docs, train, test = [], [], []
    for i, name in enumerate(entities):
        a, b, c = rng.sample(attrs, 3)
        docs.append(f"{name} is {a} and {b} and {c}")
        thought = f"{name} is {a} {b} {c}"
        for x, y in ((a, b), (b, c)):
            train.append({"query": f"what is {x} and {y}", "pos_id": i, "thought": thought})
        test.append({"query": f"what is {a} and {c}", "pos_id": i, "thought": thought})
    for row in train:
        negs = rng.sample([j for j in range(n_docs) if j != row["pos_id"]], 7)
        row.update(pos=[docs[row["pos_id"]]], neg=[docs[j] for j in negs])
    return {"docs": docs, "train": [{k: v for k, v in r.items() if k != "pos_id"} | {"id": str(n)}
                                    for n, r in enumerate(train)], "test": test}


def ndcg_at_10(query_vecs: Any, doc_vecs: Any, positives: list[int]) -> float:
    """Mean nDCG@10 with one relevant document per query."""
    import numpy as np

    scores = query_vecs @ doc_vecs.T                                                # [Q, D]
    total = 0.0
    for i, pos in enumerate(positives):
        rank = int((scores[i] > scores[i, pos]).sum())                              # 0-based
        total += 1.0 / np.log2(rank + 2) if rank < 10 else 0.0
    return total / len(positives)
