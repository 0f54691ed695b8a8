"""Vectors: the hidden state at ``<emb>`` read in length-sorted batches, normalised as the model
says, and a query's sample vectors pooled into one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..log import progress_enabled
from .padding import left_pad, positions_from_mask


def _progress(total: int, desc: str, show: bool | None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="it", disable=not progress_enabled(show if show is not None else total >= 10))


class PoolingMixin:
    """:class:`~o1embedder.model.O1Embedder`'s vectors from id sequences, and their pooling."""

    model: Any
    tokenizer: Any
    settings: Any

    def _decoder(self) -> Any:
        return self.model.get_decoder()

    def _finish(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden.float()
        if self.settings.normalize:
            hidden = torch.nn.functional.normalize(hidden, dim=-1)
        return hidden

    @torch.no_grad()
    def embed_ids(self, seqs: Sequence[Sequence[int]], *, batch_size: int = 32,
                  show_progress: bool | None = None, desc: str = "encode") -> np.ndarray:
        """Vectors at the last token of each id sequence (which must be ``<emb>``): [N, H] float32.

        Sequences are sorted by length so each batch pads little; the output keeps the input order.
        """
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        out = np.empty((len(seqs), self.dim), dtype=np.float32)
        decoder, pad, multiple = self._decoder(), self.tokenizer.pad_token_id, self._pad_multiple()
        with _progress(len(seqs), desc, show_progress) as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                ids, mask = left_pad([seqs[i] for i in idx], pad, self.device, multiple)
                hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask),
                                 use_cache=False).last_hidden_state[:, -1]       # [b, H]
                out[idx] = self._finish(hidden).cpu().numpy()
                bar.update(len(idx))
        return out

    def _pool(self, per_sample: np.ndarray) -> np.ndarray:
        """[Q, n, H] sample vectors -> [Q, H] query vectors."""
        return self._mean_of_normalised(per_sample) if self.settings.normalize else per_sample.mean(1)

    @staticmethod
    def _mean_of_normalised(vectors: np.ndarray) -> np.ndarray:
        """[Q, n, H] normalised sample vectors -> [Q, H]: their mean, re-normalised."""
        mean = vectors.mean(axis=1)
        return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)
