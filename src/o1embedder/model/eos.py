"""The ``log_p_eos`` feature of the when-to-think policy (:mod:`.policy`): how sure the model is that it
would end its thought at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .padding import left_pad, positions_from_mask


@torch.no_grad()
def first_eos_logprob(model: Any, queries: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
    """log P(EOS as the first thought token) per query -> [Q] float64, for an
    :class:`~o1embedder.model.O1Embedder`: one forward over each prompt ``[bos] <query> q </query>
    <thought>`` (the prompt thinking starts from), the LM head at its last position, temperature 1."""
    if isinstance(queries, str) or not all(isinstance(q, str) and q.strip() for q in queries):
        raise InputError("queries must be a list of non-empty strings")
    prompts = [model.template.query_prompt_ids(q) for q in queries]
    head, decoder = model.model.get_output_embeddings(), model.model.get_decoder()
    out = np.empty(len(prompts), dtype=np.float64)
    for start in range(0, len(prompts), batch_size):
        ids, mask = left_pad(prompts[start:start + batch_size], model.tokenizer.pad_token_id, model.device,
                             model._pad_multiple())
        last = decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask),
                       use_cache=False).last_hidden_state[:, -1]
        logp = torch.log_softmax(head(last).float(), dim=-1)[:, model.template.eos_id]
        out[start:start + len(logp)] = logp.cpu().numpy()
    return out
