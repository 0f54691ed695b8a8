"""The training objectives: tensors in, tensors out (no model, no data, no ranks beyond ``distributed``).

Normalisation under data parallelism. Every loss here returns this rank's *share* of a global mean:
``share_r = world_size * (sum of the per-item losses on rank r) / (item count over all ranks)``.
Averaging the shares over ranks gives the global mean (what the Trainer logs), and DDP's gradient
averaging turns the shares' gradients into the gradient of the global mean - exactly what one
process would compute on the concatenated batch, also when ranks hold different numbers of queries
or of thought tokens. In a single process ``world_size`` is 1 and the share is the plain mean.
The alternative - each rank's local mean - weights a thought token on a rank with few tokens more
than one on a busy rank, and drifts from the single-process gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import distributed

DEFAULT_TEMPERATURE = 0.02
DEFAULT_LAMBDA = 0.8


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Upcast half/bfloat16 to float32 for softmax/CE arithmetic; float32/float64 stay as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _full_precision(op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], a: torch.Tensor,
                    b: torch.Tensor) -> torch.Tensor:
    """``op(a, b)`` on both upcast to at least float32 (a common dtype), with autocast off."""
    a, b = at_least_fp32(a), at_least_fp32(b)
    common = torch.promote_types(a.dtype, b.dtype)
    with torch.autocast(device_type=a.device.type, enabled=False):
        return op(a.to(common), b.to(common))


def similarity(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``q @ d.T`` ([n, H] x [m, H] -> [n, m]) in at least float32, with autocast off.

    Under bf16 autocast the product would be rounded to bf16 whatever its inputs: about 0.2 logit
    units once divided by the reference temperature 0.02, as coarse as the differences between a
    positive and its hard negatives.
    """
    return _full_precision(lambda a, b: a @ b.T, q, d)


def group_similarity(q: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Each query against its own group: [n, H] x [n, G, H] -> [n, G], as :func:`similarity`."""
    return _full_precision(lambda a, b: torch.einsum("nh,ngh->ng", a, b), q, groups)


def global_mean_share(total: torch.Tensor, count: int | torch.Tensor) -> torch.Tensor:
    """This rank's share of a global mean: ``total * world_size / sum_r count_r`` (0, not NaN, if empty).

    ``total`` is a scalar sum with its graph; ``count`` the local number of summed items.
    """
    count_t = torch.as_tensor(count, dtype=torch.float32, device=total.device)
    global_count = float(distributed.all_reduce_sum(count_t).item())
    if global_count == 0:
        return total * 0.0          # keeps the graph (DDP needs every used parameter) and is 0
    return total * (distributed.world_size() / global_count)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is true (any equal shapes); 0, not NaN, when the mask is empty."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def info_nce(q: torch.Tensor, d: torch.Tensor, group_size: int, *, temperature: float = DEFAULT_TEMPERATURE,
             in_batch: bool = True, cross_device: bool = True) -> torch.Tensor:
    """InfoNCE of each query against its positive, its hard negatives and (optionally) every other doc.

    Maths: ``l_i = -log softmax_j(q_i . d_j / tau)[pos(i)]`` with ``tau`` = ``temperature``; the result
    is the mean of ``l_i`` over all queries of all ranks (as this rank's share, see the module doc).

    - ``q`` [n, H]: normalised query vectors; ``d`` [n * group_size, H]: the documents, query ``i``'s
      group at rows ``i*G .. i*G+G-1``, its positive first, then its hard negatives.
    - ``in_batch``: the candidates ``j`` are all documents of the batch (in-batch + hard negatives);
      otherwise only the query's own group. ``cross_device``: with several ranks, the candidates are
      every rank's documents (gathered with gradient), the reference setting.

    Reference: van den Oord et al. 2018; the O1 Embedder / FlagEmbedding contrastive loss (tau 0.02).
    """
    n = q.shape[0]
    if in_batch:
        docs = distributed.all_gather_with_grad(d) if cross_device else d         # [D_all, H]
        offset = distributed.rank_offset(d) if cross_device else 0
        scores = similarity(q, docs) / temperature                                # [n, D_all]
        target = offset + torch.arange(n, device=q.device) * group_size           # [n]
    else:
        groups = d.view(n, group_size, -1)                                        # [n, G, H]
        scores = group_similarity(q, groups) / temperature                        # [n, G]
        target = torch.zeros(n, dtype=torch.long, device=q.device)
    total = F.cross_entropy(scores, target, reduction="sum")
    return global_mean_share(total, n)


def distillation(q: torch.Tensor, d: torch.Tensor, teacher_scores: torch.Tensor | None, *,
                 temperature: float = DEFAULT_TEMPERATURE, teacher_temperature: float = 1.0) -> torch.Tensor:
    """Soft-target cross-entropy between teacher and student score distributions over each group.

    Maths: ``p_i = softmax(teacher_i / T)``, ``s_i = log_softmax(q_i . d_ig / tau)`` over the ``G``
    documents of query ``i``'s group; ``loss = mean_i ( -sum_g p_ig s_ig )`` over all ranks' queries.
    Shapes: ``q`` [n, H], ``d`` [n * G, H], ``teacher_scores`` [n, G] (``pos_scores`` then the sampled
    ``neg_scores``). Reference: FlagEmbedding's ``teacher_scores`` path (there it silently does nothing
    without scores; here that is an error).
    """
    if teacher_scores is None:
        raise ValueError("distillation needs teacher scores (pos_scores/neg_scores in every training row)")
    n = q.shape[0]
    groups = d.view(n, -1, d.shape[-1])                                           # [n, G, H]
    student = group_similarity(q, groups) / temperature                          # [n, G]
    target = torch.softmax(teacher_scores.to(student.dtype) / teacher_temperature, dim=-1)  # [n, G]
    total = -(target * torch.log_softmax(student, dim=-1)).sum()
    return global_mean_share(total, n)


def thought_lm_sum(hidden: torch.Tensor, labels: torch.Tensor,
                   lm_head: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Summed next-token cross-entropy over selected positions: ``sum_k -log softmax(W h_k)[y_k]``.

    ``hidden`` [M, H] (already selected), ``labels`` [M]; the LM head sees only these M rows.
    An empty selection still calls the head (so DDP sees it used) and gives 0.
    """
    logits = at_least_fp32(lm_head(hidden))                                             # [M, V]
    if labels.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, reduction="sum")


def thought_lm_loss(hidden: torch.Tensor, labels: torch.Tensor,
                    lm_head: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy at the thought positions only: the behaviour-cloning loss.

    Maths: ``mean_k -log softmax(W h_k)[y_k]`` over all thought and closing-EOS tokens ``k`` of all
    ranks, where ``h_k`` is the final hidden state at the position *before* token ``y_k``.
    Shapes: ``hidden`` [M, H], the already-selected states (M = thought tokens + EOS on this rank);
    ``labels`` [M]. The LM head runs on these M rows only - never ``[B, T, V]`` logits for every
    position (the reference's cost: GBs at a 152k vocabulary). Equals the HF causal-LM loss with
    every other label set to -100 (tested). An empty selection gives 0, not NaN.
    """
    return global_mean_share(thought_lm_sum(hidden, labels, lm_head), labels.numel())


def joint_loss(contrastive: torch.Tensor, thought_lm: torch.Tensor, *, lam: float = DEFAULT_LAMBDA,
               distill: torch.Tensor | None = None, distill_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """``loss = lam * (contrastive + distill_weight * distill) + (1 - lam) * thought_lm``, with its parts.

    Returns ``{"loss", "contrastive", "thought_lm"}`` plus ``"distill"`` when given. Reference:
    O1 Embedder section 3, lambda = 0.8.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    retrieval = contrastive if distill is None else contrastive + distill_weight * distill
    parts = {"loss": lam * retrieval + (1.0 - lam) * thought_lm, "contrastive": contrastive,
             "thought_lm": thought_lm}
    if distill is not None:
        parts["distill"] = distill
    return parts
