"""``llama.cpp:FILE.gguf``: thoughts written by llama.cpp through llama-cpp-python, in this process.

llama.cpp computes the logits; the tokens are chosen by the same code as in the one-pass loop
(:func:`~o1embedder.model.sampling.sample_next` with each sample's key, after
:mod:`~o1embedder.model.repetition`'s control), so wherever llama.cpp's logits agree with our model's
the thoughts are the same token for token, sampled as well as greedy, and every thinking setting means
what it means on the one-pass engine (except early exit, which watches our model's vector).

The prompts go in as token ids (llama.cpp never tokenizes our text). A batch of prompts decodes
together, as the one-pass loop does: each prompt is evaluated once for its ``k`` samples (its tokens
belong to the ``k`` sequences at once), then every step feeds one token per unfinished sample in one
``llama_decode``, so ``k`` samples and many queries cost little more than one. Rows are grouped so that
each group fits the context (``context`` tokens of KV cache shared by the group's sequences, at most
``max_rows`` sequences); the default context is the model's own. It runs on as many threads as torch
does (``threads``; llama-cpp-python's default is half the cores). A thought stops at the model's EOS or
at its budget.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from ..resume import quick_digest
from . import check_settings

EXTRA = "pip install 'o1embedder[llamacpp]'  (llama-cpp-python; it compiles llama.cpp, about 8 minutes on 2 cores)"
SAMPLER = "s2"
"""Part of the engine's identity (thought-cache keys): thoughts sampled by our code from llama.cpp's logits;
the first version sampled with llama.cpp's own sampler, whose thoughts differ."""


class LlamaCppEngine:
    def __init__(self, path: str | os.PathLike[str], *, eos_id: int, threads: int | None = None,
                 context: int = 0, max_rows: int = 64) -> None:
        try:
            import llama_cpp
            from llama_cpp import _internals
            from llama_cpp._utils import suppress_stdout_stderr
        except ImportError:
            raise InputError(f"the llama.cpp engine needs llama-cpp-python: {EXTRA}") from None
        path = Path(path)
        if not path.is_file():
            raise InputError("no such GGUF file (write one with o1emb export MODEL --gguf FILE)", path=path)
        if threads is None:             # llama-cpp-python's own default is half the cores
            import torch

            threads = torch.get_num_threads()
        if not 1 <= max_rows <= llama_cpp.llama_max_parallel_sequences():
            raise InputError(f"max_rows must be 1 .. {llama_cpp.llama_max_parallel_sequences()}, got {max_rows}")
        self.eos_id, self.threads, self.max_rows = eos_id, threads, max_rows
        # the file's content digest, not its name and size: a re-export to the same name (another
        # quantization, a fixed header) must not be served the thoughts cached for the old file
        self.identity = f"llama.cpp:{path.name}@{quick_digest([path])[:16]}/{SAMPLER}"
        self._lib = llama_cpp
        params = llama_cpp.llama_context_default_params()
        try:
            with suppress_stdout_stderr(disable=False):   # llama.cpp logs every tensor and graph at load
                self._model = _internals.LlamaModel(path_model=str(path), verbose=False,
                                                    params=llama_cpp.llama_model_default_params())
                params.n_ctx = context or self._model.n_ctx_train()
                params.n_batch = params.n_ubatch = min(params.n_ctx, 512)
                params.n_seq_max = max_rows
                params.kv_unified = True      # one pool of cells for every sequence: groups sized by tokens
                params.n_threads = params.n_threads_batch = threads
                params.no_perf = True
                self._ctx = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: llama.cpp cannot load it ({exc})") from None
        self.context, self.n_batch = params.n_ctx, params.n_batch
        self.vocab = self._model.n_vocab()
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, max_rows)

    def close(self) -> None:
        """Free llama.cpp's context, model and batch (quietly: llama.cpp logs its buffers as it frees them)."""
        lib, batch = getattr(self, "_lib", None), getattr(self, "_batch", None)
        self._batch = None
        try:
            from llama_cpp._utils import suppress_stdout_stderr

            with suppress_stdout_stderr(disable=False):
                if batch is not None:
                    lib.llama_batch_free(batch)
                for part in ("_ctx", "_model"):
                    if getattr(self, part, None) is not None:
                        getattr(self, part).close()
                        setattr(self, part, None)
        except Exception:  # noqa: BLE001 - at interpreter exit the library or the streams may be gone already
            pass

    def __del__(self) -> None:
        self.close()

    def write(self, prompts: list[list[int]], budgets: list[int], cfg: Any, keys: list[int]) -> list[list[int]]:
        check_settings(cfg, "llama.cpp", repetition=True)
        n = cfg.n_thoughts
        if prompts and n > self.max_rows:
            raise InputError(f"{n} thoughts per query are more than the engine's max_rows ({self.max_rows})")
        out: list[list[int]] = [[] for _ in range(len(prompts) * n)]
        group: list[int] = []
        used = 0
        for i, (prompt, budget) in enumerate(zip(prompts, budgets, strict=True)):
            need = len(prompt) + n * max(budget, 0) + n
            if need > self.context:
                raise InputError(f"a prompt of {len(prompt)} tokens with {n} thoughts of {budget} does not fit "
                                 f"llama.cpp's context of {self.context} tokens (raise it with context=)")
            if group and (used + need > self.context or (len(group) + 1) * n > self.max_rows):
                self._group(group, prompts, budgets, cfg, keys, out)
                group, used = [], 0
            group.append(i)
            used += need
        if group:
            self._group(group, prompts, budgets, cfg, keys, out)
        return out

    def _decode(self, entries: list[tuple[int, int, list[int], bool]]) -> Any:
        """Feed ``(token, position, sequence ids, wants logits)`` entries, at most ``n_batch`` per call;
        returns the logits of the entries that want them, in order, as a float32 tensor [outputs, V]."""
        import numpy as np
        import torch

        lib, batch, found = self._lib, self._batch, []
        for start in range(0, len(entries), self.n_batch):
            part = entries[start:start + self.n_batch]
            for j, (token, pos, seqs, logits) in enumerate(part):
                batch.token[j], batch.pos[j], batch.n_seq_id[j] = token, pos, len(seqs)
                for s, seq in enumerate(seqs):
                    batch.seq_id[j][s] = seq
                batch.logits[j] = logits
            batch.n_tokens = len(part)
            status = lib.llama_decode(self._ctx.ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode failed (status {status}) for a batch of {len(part)} tokens")
            outputs = sum(1 for entry in part if entry[3])
            if outputs:
                pointer = ctypes.cast(lib.llama_get_logits(self._ctx.ctx), ctypes.POINTER(ctypes.c_float))
                found.append(torch.from_numpy(np.ctypeslib.as_array(pointer, shape=(outputs, self.vocab)).copy()))
        return torch.cat(found) if len(found) > 1 else found[0]

    def _group(self, group: list[int], prompts: list[list[int]], budgets: list[int], cfg: Any,
               keys: list[int], out: list[list[int]]) -> None:
        """Think for the prompts ``group`` (indices into ``prompts``), writing their rows of ``out``."""
        import torch

        from ..model import repetition
        from ..model.sampling import sample_next

        n = cfg.n_thoughts
        self._lib.llama_memory_clear(self._lib.llama_get_memory(self._ctx.ctx), True)
        # the prompts: each token belongs to its prompt's n sequences; logits at each prompt's last token
        entries = []
        for g, i in enumerate(group):
            prompt = prompts[i]
            seqs = list(range(g * n, g * n + n))
            entries += [(int(t), p, seqs, p == len(prompt) - 1) for p, t in enumerate(prompt)]
        first = self._decode(entries).repeat_interleave(n, 0)                      # [rows, V]
        rows = len(group) * n
        owner = [i for i in group for _ in range(n)]                              # row -> prompt index
        row_keys = torch.tensor([keys[i * n + s] for i in group for s in range(n)], dtype=torch.long)
        budget = [max(budgets[i], 0) for i in owner]
        pos = [len(prompts[i]) for i in owner]
        thoughts: list[list[int]] = [[] for _ in range(rows)]
        live = [r for r in range(rows) if budget[r] > 0]
        logits = first[live]                                                       # one row per live row
        history, width = None, max(pos)
        if repetition.active(cfg):      # as the one-pass loop's: left-padded prompt ids (-1: none), a column a step
            history = torch.full((rows, width + max(budget)), -1, dtype=torch.long)
            for r, i in enumerate(owner):
                history[r, width - len(prompts[i]):width] = torch.tensor(prompts[i], dtype=torch.long)
        step = 0
        while live:
            if history is not None:
                logits = repetition.control(logits, history[live, :width + step], cfg)
            tokens = sample_next(logits, cfg.temperature, cfg.top_p, row_keys[live], step).tolist()
            feed, still = [], []
            for r, token in zip(live, tokens, strict=True):
                if history is not None:
                    history[r, width + step] = token
                if token == self.eos_id:
                    continue
                thoughts[r].append(int(token))
                if len(thoughts[r]) >= budget[r]:
                    continue
                feed.append((int(token), pos[r], [r], True))
                pos[r] += 1
                still.append(r)
            step, live = step + 1, still
            if live:
                logits = self._decode(feed)
        for g, i in enumerate(group):
            for s in range(n):
                out[i * n + s] = thoughts[g * n + s]
