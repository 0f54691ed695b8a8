"""The training forward: one pass over the query sequence gives the query vector *and* the LM loss.

``JointModel`` wraps the Hugging Face causal LM (plain or peft) as the module the Trainer (and DDP)
sees. It runs the *decoder* (not the ``...ForCausalLM`` forward, which would compute ``[B, T, V]``
logits), then
- the query vector: the final-norm hidden state at the last position (``<emb>``; we left-pad),
  L2-normalised - the same arithmetic as :meth:`O1Embedder.embed_ids`;
- the LM loss: the hidden states at the thought positions are selected first ([M, H]) and only those
  rows go through the LM head ([M, V]);
- document vectors through the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..model.thinking import positions_from_mask
from .config import LossConfig


@dataclass
class QueryOut:
    vectors: torch.Tensor        # [B, H] normalised float32
    lm_sum: torch.Tensor         # scalar: summed CE over this batch's thought tokens
    lm_count: int                # thought tokens (+ EOS) in this batch


class JointModel(nn.Module):
    """The causal LM as a joint embedder + thought generator for training."""

    def __init__(self, lm: nn.Module, *, trainable_only_state: bool = False) -> None:
        super().__init__()
        self.lm = lm
        self.trainable_only_state = trainable_only_state

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The module's state; with ``trainable_only_state`` (LoRA) only the trainable tensors.

        The Trainer checkpoints this module through ``state_dict``: under LoRA the frozen base is
        rebuilt from the base model on resume, so a checkpoint holds the adapters and token-row
        deltas only (MBs, not the whole model), and tensors shared by tied weights appear once.
        """
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        params = {prefix + n for n, _ in self.named_parameters(remove_duplicate=False)}
        keep = {prefix + n for n, p in self.named_parameters()
                if p.requires_grad or not self.trainable_only_state}
        return type(state)((k, v) for k, v in state.items() if k not in params or k in keep)

    @property
    def _keys_to_ignore_on_save(self) -> list[str] | None:
        """The frozen tensors :meth:`state_dict` leaves out; the Trainer reads this name on resume
        (missing keys equal to it are expected, not warned about)."""
        if not self.trainable_only_state:
            return None
        return [n for n, p in self.named_parameters() if not p.requires_grad]

    def tie_weights(self) -> None:
        """Nothing to re-tie: resuming loads tensors into the existing parameters (ties intact)."""

    @property
    def config(self) -> Any:
        return self.lm.config

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None,
                                        **kwargs: Any) -> None:
        """Called by the Trainer for ``activation_checkpointing=True``; non-reentrant by default."""
        kw = activation_checkpointing_kwargs or {"use_reentrant": False}
        self.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)

    gradient_checkpointing_enable = activation_checkpointing_enable

    def _hidden(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        decoder = self.lm.get_decoder()
        return decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask),
                       use_cache=False).last_hidden_state                           # [B, T, H]

    @staticmethod
    def pool(hidden: torch.Tensor) -> torch.Tensor:
        return F.normalize(losses.at_least_fp32(hidden[:, -1]), dim=-1)               # [B, H]

    def encode_queries(self, q_ids: torch.Tensor, q_mask: torch.Tensor, lm_rows: torch.Tensor,
                       lm_cols: torch.Tensor, lm_labels: torch.Tensor) -> QueryOut:
        hidden = self._hidden(q_ids, q_mask)                                          # [B, T, H]
        selected = hidden[lm_rows, lm_cols]                                           # [M, H]
        lm_sum = losses.thought_lm_sum(selected, lm_labels, self.lm.get_output_embeddings())
        return QueryOut(self.pool(hidden), lm_sum, int(lm_labels.numel()))

    def encode_docs(self, d_ids: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
        return self.pool(self._hidden(d_ids, d_mask))                                 # [B*G, H]

    def forward(self, q_ids: torch.Tensor, q_mask: torch.Tensor, lm_rows: torch.Tensor, lm_cols: torch.Tensor,
                lm_labels: torch.Tensor, d_ids: torch.Tensor, d_mask: torch.Tensor,
                teacher: torch.Tensor | None = None) -> dict[str, Any]:
        """Vectors and the LM sum of one batch (see :class:`JointCollator` for the shapes)."""
        q = self.encode_queries(q_ids, q_mask, lm_rows, lm_cols, lm_labels)
        return {"q": q.vectors, "d": self.encode_docs(d_ids, d_mask), "lm_sum": q.lm_sum,
                "lm_count": q.lm_count, "teacher": teacher}


def joint_parts(q: torch.Tensor, d: torch.Tensor, lm_sum: torch.Tensor, lm_count: int,
                teacher: torch.Tensor | None, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """The named loss parts of one batch from its vectors and LM sum (this rank's share, see ``losses``)."""
    group = d.shape[0] // q.shape[0]
    contrastive = losses.info_nce(q, d, group, temperature=cfg.temperature, in_batch=cfg.in_batch,
                                  cross_device=cfg.cross_device)
    thought_lm = losses.global_mean_share(lm_sum, lm_count)
    distill = None
    if cfg.distill:
        distill = losses.distillation(q, d, teacher, temperature=cfg.temperature,
                                      teacher_temperature=cfg.teacher_temperature)
    return losses.joint_loss(contrastive, thought_lm, lam=cfg.lam, distill=distill,
                             distill_weight=cfg.distill_weight)
