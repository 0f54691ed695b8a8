"""``losses``: each objective against a direct reference computation (single process)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from o1embedder import losses


def _vecs(n: int, h: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, h, generator=g, dtype=torch.float64), dim=-1)


def test_info_nce_in_batch_matches_loop() -> None:
    q, d, group, tau = _vecs(3), _vecs(6, seed=1), 2, 0.05
    got = losses.info_nce(q, d, group, temperature=tau)
    ref = 0.0
    for i in range(3):
        logits = torch.stack([q[i] @ d[j] / tau for j in range(6)])
        ref += -torch.log_softmax(logits, 0)[i * group]
    assert torch.allclose(got, ref / 3, atol=1e-12)


def test_info_nce_group_only_and_default_temperature() -> None:
    q, d = _vecs(2), _vecs(6, seed=2)
    got = losses.info_nce(q, d, 3, in_batch=False)
    ref = 0.0
    for i in range(2):
        logits = torch.stack([q[i] @ d[3 * i + g] / 0.02 for g in range(3)])
        ref += -torch.log_softmax(logits, 0)[0]
    assert losses.DEFAULT_TEMPERATURE == 0.02
    assert torch.allclose(got, ref / 2, atol=1e-10)


def test_thought_lm_loss_is_mean_ce_and_zero_when_empty() -> None:
    head = torch.nn.Linear(8, 11, bias=False).double()
    hidden, labels = _vecs(5), torch.tensor([1, 2, 3, 4, 10])
    got = losses.thought_lm_loss(hidden, labels, head)
    assert torch.allclose(got, F.cross_entropy(head(hidden), labels), atol=1e-12)
    empty = losses.thought_lm_loss(hidden[:0].requires_grad_(), labels[:0], head)
    assert float(empty.detach()) == 0.0 and not math.isnan(float(empty.detach()))
    empty.backward()                                    # a graph, with zero gradient
    assert head.weight.grad is not None and float(head.weight.grad.abs().sum()) == 0.0


def test_masked_mean_is_zero_not_nan_on_empty_mask() -> None:
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert float(losses.masked_mean(values, torch.tensor([[1, 0], [0, 1]]))) == 2.5
    assert float(losses.masked_mean(values, torch.zeros(2, 2))) == 0.0


def test_distillation_soft_targets_and_missing_scores() -> None:
    q, d = _vecs(2), _vecs(6, seed=3)
    teacher = torch.tensor([[3.0, 1.0, 0.0], [0.5, 2.0, 1.0]], dtype=torch.float64)
    got = losses.distillation(q, d, teacher, temperature=0.1)
    ref = 0.0
    for i in range(2):
        student = torch.log_softmax(torch.stack([q[i] @ d[3 * i + g] for g in range(3)]) / 0.1, 0)
        ref += -(torch.softmax(teacher[i], 0) * student).sum()
    assert torch.allclose(got, ref / 2, atol=1e-10)
    with pytest.raises(ValueError, match="teacher scores"):
        losses.distillation(q, d, None)


def test_joint_loss_mix_and_named_parts() -> None:
    c, lm, kd = torch.tensor(2.0), torch.tensor(5.0), torch.tensor(1.0)
    parts = losses.joint_loss(c, lm)
    assert set(parts) == {"loss", "contrastive", "thought_lm"}
    assert math.isclose(float(parts["loss"]), 0.8 * 2 + 0.2 * 5, rel_tol=1e-6)
    parts = losses.joint_loss(c, lm, lam=0.5, distill=kd, distill_weight=2.0)
    assert math.isclose(float(parts["loss"]), 0.5 * (2 + 2 * 1) + 0.5 * 5, rel_tol=1e-6)
    assert float(parts["distill"]) == 1.0
    with pytest.raises(ValueError):
        losses.joint_loss(c, lm, lam=1.5)


@pytest.mark.parametrize("in_batch", [True, False])
def test_scores_stay_float32_under_bf16_autocast(in_batch: bool) -> None:
    """Mixed-precision training runs the loss under bf16 autocast, which would round the score product
    to bf16 (about 0.2 logit units at tau 0.02): InfoNCE and distillation must equal their float32 values."""
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 64), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(12, 64), dim=-1)
    teacher = torch.randn(4, 3)
    plain = losses.info_nce(q, d, 3, in_batch=in_batch)
    soft = losses.distillation(q, d, teacher)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = losses.info_nce(q, d, 3, in_batch=in_batch)
        soft_under = losses.distillation(q, d, teacher)
    assert under.dtype == torch.float32
    assert torch.isclose(under, plain, rtol=1e-6, atol=1e-6), (under, plain)
    assert torch.isclose(soft_under, soft, rtol=1e-6, atol=1e-6)
    assert losses.similarity(q.double(), d).dtype == torch.float64               # float64 is kept
