"""The forwards over the sampled ``prompt + thought + EOS + <emb>`` sequences: the policy's (with
gradient: thought-token log-probabilities and query vectors in one pass), the reference's (without),
and :class:`PolicyModule`, the one call that carries every gradient of a step (DDP-wrapped under
several processes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .. import distributed
from ..training.forward import JointModel

if TYPE_CHECKING:
    from .parts import RLParts


class PolicyModule(nn.Module):
    """One forward for everything a step differentiates: the rows' documents and the sampled
    ``prompt + thought + EOS + <emb>`` sequences -> (document vectors [D, H], thought-token
    log-probabilities [M], sampled-thought query vectors [S, H]).

    DDP averages gradients only for parameters used inside its wrapper's ``forward``, once per
    backward; calling the joint model's parts one by one (as a single process may) would bypass its
    hooks. So the step's two gradient-carrying passes go through this one call.
    """

    def __init__(self, parts: RLParts) -> None:
        super().__init__()
        self.joint = parts.joint
        self._parts = parts               # a plain attribute: the joint model is registered once, above

    def forward(self, d_ids: torch.Tensor, d_mask: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                rows: torch.Tensor, cols: torch.Tensor, labels: torch.Tensor,
                temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from .rollout import PolicyBatch

        d = self.joint.encode_docs(d_ids, d_mask)                                      # [D, H]
        logp, q = policy_forward(self._parts, PolicyBatch(ids, mask, rows, cols, labels, rows), temperature)
        return d, logp, q


def wrap_policy(parts: RLParts) -> Any:
    """:class:`PolicyModule`, in DDP when several processes run (bucketed gradient averaging)."""
    module = PolicyModule(parts)
    if not distributed.is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [parts.device.index] if parts.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def reference_logprobs(parts: RLParts, batch: Any, temperature: float) -> torch.Tensor:
    """Log-probabilities of the thought tokens under the model before RL (no gradient): the frozen
    copy (full fine-tuning) or the same LM with its adapters disabled (LoRA)."""
    chunk = parts.config.logprob_chunk
    with torch.no_grad():
        if parts.reference is not None:
            return _thought_logprobs(parts.reference, batch, temperature, chunk)
        with parts.lm.disable_adapter():
            return _thought_logprobs(parts.lm, batch, temperature, chunk)


def _thought_logprobs(lm: Any, batch: Any, temperature: float, chunk: int = 0) -> torch.Tensor:
    from .logprobs import thought_logprobs

    hidden = JointModel(lm)._hidden(batch.ids, batch.mask)                            # [S, T, H]
    return thought_logprobs(hidden[batch.rows, batch.cols], batch.labels, lm.get_output_embeddings(),
                            temperature, chunk)                                        # [M, H] -> [M]


def policy_forward(parts: RLParts, batch: Any, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the sampled sequences -> (thought-token log-probs [M], query vectors [S, H]).

    The log-probs are computed ``logprob_chunk`` tokens at a time, each chunk's logits recomputed in
    the backward (:mod:`o1embedder.rl.logprobs`): never ``[M, V]`` logits, in the forward or the backward.
    """
    from .logprobs import thought_logprobs

    hidden = parts.joint._hidden(batch.ids, batch.mask)                             # [S, T, H]
    logp = thought_logprobs(hidden[batch.rows, batch.cols], batch.labels, parts.lm.get_output_embeddings(),
                            temperature, parts.config.logprob_chunk)                 # [M, H] -> [M]
    return logp, JointModel.pool(hidden)
