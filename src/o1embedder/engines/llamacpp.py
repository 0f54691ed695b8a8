"""``llama.cpp:FILE.gguf``: thoughts written by llama.cpp through llama-cpp-python, in this process.

The prompt goes in as token ids (llama.cpp never tokenizes our text), one sample at a time; llama-cpp-
python keeps the KV cache of the longest common prefix between calls, so a query's k samples share its
prompt's evaluation. Sampling follows the thinking settings: temperature (0: greedy), top-p (top-k off,
min-p 0), ``repetition_penalty`` as llama.cpp's ``repeat_penalty`` (llama.cpp applies it to the last 64
tokens; transformers' to the whole sequence), and the sample's key as llama.cpp's seed, so a query's
thoughts do not depend on the other queries of its batch. A thought stops at the model's EOS or at its
budget. The context is the model's own (``context`` 0). It runs on as many threads as torch does
(``threads``; llama-cpp-python's default is half the cores). llama.cpp's own random streams differ from
ours: sampled thoughts differ from the one-pass engine's; greedy ones agree up to near-ties of the
logits (docs/benchmarks.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from ..resume import quick_digest
from . import check_settings

EXTRA = "pip install 'o1embedder[llamacpp]'  (llama-cpp-python; it compiles llama.cpp, about 8 minutes on 2 cores)"


class LlamaCppEngine:
    def __init__(self, path: str | os.PathLike[str], *, eos_id: int, threads: int | None = None,
                 context: int = 0) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise InputError(f"the llama.cpp engine needs llama-cpp-python: {EXTRA}") from None
        path = Path(path)
        if not path.is_file():
            raise InputError("no such GGUF file (write one with o1emb export MODEL --gguf FILE)", path=path)
        if threads is None:             # llama-cpp-python's own default is half the cores
            import torch

            threads = torch.get_num_threads()
        self.eos_id, self.threads = eos_id, threads
        # the file's content digest, not its name and size: a re-export to the same name (another
        # quantization, a fixed header) must not be served the thoughts cached for the old file
        self.identity = f"llama.cpp:{path.name}@{quick_digest([path])[:16]}"
        try:
            self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=context, n_threads=threads,
                                       n_threads_batch=threads, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: llama.cpp cannot load it ({exc})") from None

    def write(self, prompts: list[list[int]], budgets: list[int], cfg: Any, keys: list[int]) -> list[list[int]]:
        check_settings(cfg, "llama.cpp")
        n, out = cfg.n_thoughts, []
        for i, (prompt, budget) in enumerate(zip(prompts, budgets, strict=True)):
            for s in range(n):
                self.llm.set_seed(int(keys[i * n + s]) & 0x7FFFFFFF)
                ids: list[int] = []
                if budget > 0:
                    for token in self.llm.generate(list(prompt), temp=cfg.temperature, top_p=cfg.top_p, top_k=0,
                                                   min_p=0.0, repeat_penalty=cfg.repetition_penalty, reset=True):
                        if token == self.eos_id:
                            break
                        ids.append(int(token))
                        if len(ids) >= budget:
                            break
                out.append(ids)
        return out
