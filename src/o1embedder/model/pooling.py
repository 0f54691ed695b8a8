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


def blend_plain(pooled: np.ndarray, plain: np.ndarray, weight: float, *, normalize: bool = True) -> np.ndarray:
    """[Q, H] thinking vectors with the queries' no-thinking vectors mixed in: ``weight * plain + (1 -
    weight) * pooled``, re-normalised if ``normalize`` (``ThinkConfig.plain_weight``)."""
    if not weight:
        return pooled
    out = weight * np.asarray(plain, np.float32) + (1.0 - weight) * np.asarray(pooled, np.float32)
    if normalize:
        out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
    return out.astype(np.float32)


class PoolingMixin:
    """:class:`~o1embedder.model.O1Embedder`'s vectors from id sequences, and their pooling."""

    model: Any
    tokenizer: Any
    settings: Any
    template: Any

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

    def _pool(self, per_sample: np.ndarray, queries: Sequence[str] = (), plain_weight: float = 0.0, *,
              batch_size: int = 32) -> np.ndarray:
        """[Q, n, H] sample vectors -> [Q, H] query vectors; with ``plain_weight`` > 0 (``ThinkConfig``)
        blended with the ``queries``' no-thinking vectors (one forward each)."""
        pooled = self._mean_of_normalised(per_sample) if self.settings.normalize else per_sample.mean(1)
        return self._blend(pooled, queries, plain_weight, batch_size=batch_size)

    def _blend(self, pooled: np.ndarray, queries: Sequence[str], plain_weight: float, *,
               batch_size: int = 32) -> np.ndarray:
        """``w * plain + (1 - w) * pooled`` ([Q, H]), re-normalised when the model normalises."""
        if not plain_weight:
            return pooled
        if len(queries) != len(pooled):
            raise ValueError(f"plain_weight needs the {len(pooled)} queries, got {len(queries)}")
        plain = self.embed_ids([self.template.query_ids(q, None)[0] for q in queries], batch_size=batch_size,
                               show_progress=False, desc="queries")
        return blend_plain(pooled, plain, plain_weight, normalize=self.settings.normalize)

    @staticmethod
    def _mean_of_normalised(vectors: np.ndarray) -> np.ndarray:
        """[Q, n, H] normalised sample vectors -> [Q, H]: their mean, re-normalised."""
        mean = vectors.mean(axis=1)
        return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)
