"""The thought-policy objective: retrieval rewards, group-relative advantages, the GRPO loss.

Tensors in, tensors out (no model, no data). Notation: a batch holds ``B`` training rows; each row's
query gets ``G`` sampled thoughts ("rollouts"), row-major: row ``i``'s samples are ``i*G .. i*G+G-1``.

Maths (defaults in :class:`o1embedder.rl.config.RLConfig`):

- reward ``r_s`` of sample ``s`` (row ``i``): how well the sample's query vector ``q_s`` (query + that
  thought, read at ``<emb>``) retrieves row ``i``'s positive among the candidate documents ``C`` (the
  row's positive and hard negatives, and every other document of the batch, on every rank):
  ``logprob``: ``log softmax_{c in C}(q_s . d_c / tau)[pos(i)]`` (the InfoNCE term of the training
  temperature ``tau``, so RL maximises what contrastive training minimises, per thought); or
  ``rr``: ``1 / rank of pos(i)`` (bounded in (0, 1], blind to margins). Minus
  ``length_penalty * thought_tokens / max_new_tokens`` when that is set.
- advantage: ``A_s = (r_s - mean_g r) / (std_g r + eps)`` over the G samples of the row (``std`` with
  Bessel's correction, as TRL's GRPO); a group whose rewards are all equal gets zero advantages.
- policy term, per thought token ``k`` of sample ``s`` (its tokens and the EOS it sampled):
  ``-min(rho_k A_s, clip(rho_k, 1-eps, 1+eps) A_s)`` with ``rho_k = pi(y_k) / pi_old(y_k)``; with one
  update per rollout ``pi_old = pi`` (detached), so ``rho = 1`` and the gradient is ``-A_s grad log pi``.
- KL term, per thought token: ``exp(ref_k - logp_k) - (ref_k - logp_k) - 1`` (the unbiased,
  non-negative "k3" estimator of KL(pi || pi_ref), as DeepSeekMath's GRPO), zero where the policy
  still equals the reference.
- both are averaged over every thought token of the batch (a long thought weighs by its tokens, not by
  its sample: DAPO's token-level mean; GRPO's per-sample mean would let short thoughts dominate).

``loss = policy + kl_coef * kl + contrastive_weight * InfoNCE(sampled-thought query vectors)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import distributed, losses

REWARDS = ("logprob", "rr")


def candidate_scores(q: torch.Tensor, d: torch.Tensor, temperature: float) -> torch.Tensor:
    """Similarities of each sample to every candidate document: [S, H] x [D, H] -> [S, D], in at least
    float32 with autocast off (:func:`o1embedder.losses.similarity`): rounded to bf16 they would tie
    a row's samples and blur the reward differences that GRPO's advantages are made of."""
    return losses.similarity(q, d) / temperature


def positive_index(rows: int, group_size: int, samples: int, device: torch.device | None = None) -> torch.Tensor:
    """Column of each sample's positive in ``d``: row ``i``'s group starts at ``i * group_size`` -> [rows * samples]."""
    return (torch.arange(rows, device=device) * group_size).repeat_interleave(samples)


def retrieval_reward(q: torch.Tensor, d: torch.Tensor, *, group_size: int, samples: int,
                     temperature: float, kind: str = "logprob", offset: int = 0) -> torch.Tensor:
    """The reward of each sampled thought (see the module doc): [B*G, H], [D, H] -> [B*G].

    ``q`` and ``d`` are L2-normalised; ``d`` holds row ``i``'s group (positive first) at rows
    ``offset + i*group_size ..``; every document of ``d`` is a candidate for every sample (under
    several processes ``d`` is every rank's documents and ``offset`` where this rank's start).
    """
    if kind not in REWARDS:
        raise ValueError(f"unknown reward {kind!r}; choose from {REWARDS}")
    if q.shape[0] % samples:
        raise ValueError(f"{q.shape[0]} query vectors is not a whole number of rows x {samples} samples")
    rows = q.shape[0] // samples
    if offset < 0 or offset + rows * group_size > d.shape[0]:
        raise ValueError(f"{rows} rows x {group_size} documents from {offset} do not fit {d.shape[0]} documents")
    scores = candidate_scores(q, d, temperature)                                   # [S, D]
    pos = offset + positive_index(rows, group_size, samples, q.device)             # [S]
    if kind == "logprob":
        return torch.log_softmax(scores, dim=-1).gather(1, pos[:, None]).squeeze(1)
    positive = scores.gather(1, pos[:, None])                                      # [S, 1]
    rank = 1 + (scores > positive).sum(-1)                                         # ties favour the positive
    return 1.0 / rank.float()


def group_advantages(rewards: torch.Tensor, samples: int, eps: float = 1e-4) -> torch.Tensor:
    """``(r - mean) / (std + eps)`` within each row's samples: [B*G] -> [B*G] (0 for a constant group)."""
    groups = rewards.float().view(-1, samples)                                     # [B, G]
    if samples == 1:
        return torch.zeros_like(rewards, dtype=torch.float32)
    mean, std = groups.mean(-1, keepdim=True), groups.std(-1, keepdim=True)        # Bessel-corrected
    return ((groups - mean) / (std + eps)).view(-1)


def zero_variance_fraction(rewards: torch.Tensor, samples: int, tol: float = 1e-8) -> float:
    """Share of rows whose G rewards are all equal (they carry no policy gradient)."""
    groups = rewards.float().view(-1, samples)
    return float(((groups.max(-1).values - groups.min(-1).values) <= tol).float().mean())


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / T)[label]`` per selected position: [M, V], [M] -> [M] float32.

    ``T`` is the sampling temperature of the rollouts, so the ratio and KL compare the distributions
    the thoughts were drawn from (nucleus truncation aside), as TRL does.
    """
    logp = torch.log_softmax(losses.at_least_fp32(logits) / temperature, dim=-1)
    return logp.gather(1, labels[:, None]).squeeze(1)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token ``exp(ref - logp) - (ref - logp) - 1`` (>= 0, 0 where equal): [M], [M] -> [M]."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def grpo_terms(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
               advantages: torch.Tensor, token_sample: torch.Tensor, *, clip: float = 0.2) -> dict[str, torch.Tensor]:
    """The policy and KL terms, each a mean over all thought tokens (this rank's share, see ``losses``).

    ``logp``/``old_logp``/``ref_logp`` [M]: log-probabilities of the M thought tokens under the policy
    (with graph), the policy that sampled them (detached) and the reference (detached; ``None``: no
    KL). ``advantages`` [S]: one per sample; ``token_sample`` [M]: the sample each token belongs to.
    Returns ``{"policy", "kl", "clipped"}`` (``clipped``: the share of tokens the clip bound).
    """
    adv = advantages.to(logp.dtype)[token_sample]                                  # [M]
    ratio = torch.exp(logp - old_logp.detach())
    bounded = torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    per_token = -torch.minimum(ratio * adv, bounded * adv)                         # [M]
    count = logp.numel()
    policy = losses.global_mean_share(per_token.sum(), count)
    if ref_logp is None:
        kl = policy.detach() * 0.0
    else:
        kl = losses.global_mean_share(kl_k3(logp, ref_logp.detach()).sum(), count)
    clipped = ((ratio - bounded).abs() > 0).float().mean() if count else logp.new_zeros(())
    return {"policy": policy, "kl": kl, "clipped": clipped.detach()}


def sample_info_nce(q: torch.Tensor, d: torch.Tensor, *, group_size: int, samples: int,
                    temperature: float, cross_device: bool = True) -> torch.Tensor:
    """InfoNCE of every sampled-thought query vector against its row's positive, all documents as
    candidates: [B*G, H], [B*group, H] -> scalar (this rank's share of the global mean).

    The contrastive term that keeps the embedding aligned with the thoughts the policy now writes;
    with ``samples`` = 1 it is :func:`o1embedder.losses.info_nce` (in-batch).
    """
    docs = distributed.all_gather_with_grad(d) if cross_device else d        # [D_all, H]
    offset = distributed.rank_offset(d) if cross_device else 0
    scores = candidate_scores(q, docs, temperature)                                # [S, D_all]
    target = offset + positive_index(d.shape[0] // group_size, group_size, samples, q.device)
    total = F.cross_entropy(scores, target, reduction="sum")
    return losses.global_mean_share(total, q.shape[0])


def rl_loss(parts: dict[str, torch.Tensor], *, kl_coef: float, contrastive_weight: float) -> torch.Tensor:
    """``policy + kl_coef * kl + contrastive_weight * contrastive``."""
    return parts["policy"] + kl_coef * parts["kl"] + contrastive_weight * parts["contrastive"]
