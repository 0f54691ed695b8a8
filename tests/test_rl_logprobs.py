"""RL's thought-token log-probabilities in chunks (o1embedder.rl.logprobs): equal to the unchunked
computation in values and gradients (plain head, a LoRA model with a tied head, bf16 autocast), the
policy pass keeps no vocabulary-sized tensor for its backward, and an RL step does not depend on the
chunk size. Memory itself is measured in benchmarks/bench_rl_memory.py, not here."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from o1embedder.rl import objective
from o1embedder.rl.logprobs import chunk_size, default_chunk, thought_logprobs

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import simple_rows, write_rows  # noqa: E402

M, H, V = 23, 8, 50                     # 23 tokens: no chunk size below but 1 and 23 divides it
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}
"""Absolute and relative: a matmul over fewer rows rounds differently, a few float32 ulps (7.6 is the
largest weight gradient below, so up to 8.6e-6 there)."""


def _grads(fn, hidden: torch.Tensor, params: list[torch.Tensor], upstream: torch.Tensor):
    """Values of ``fn(hidden)`` and the gradients of ``sum(upstream * fn(hidden))`` w.r.t. hidden and params."""
    out = fn(hidden)
    grads = torch.autograd.grad((out * upstream).sum(), [hidden, *params])
    return out.detach(), grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk", [1, 3, 7, 22, M, M + 5])
def test_chunked_logprobs_and_gradients_equal_the_unchunked_computation(dtype: torch.dtype, chunk: int) -> None:
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(H, V, bias=False).to(dtype)
    with torch.no_grad():
        head.weight.copy_(0.3 * torch.randn(V, H, generator=g, dtype=dtype))     # logits of order 1
    hidden = torch.randn(M, H, generator=g, dtype=dtype, requires_grad=True)
    labels = torch.randint(0, V, (M,), generator=g)
    upstream = torch.randn(M, generator=g, dtype=dtype)
    plain = lambda h: objective.token_logprobs(head(h), labels, 0.7)  # noqa: E731
    chunked = lambda h: thought_logprobs(h, labels, head, 0.7, chunk)  # noqa: E731
    want, want_grads = _grads(plain, hidden, [head.weight], upstream)
    got, got_grads = _grads(chunked, hidden, [head.weight], upstream)
    assert got.dtype == want.dtype == dtype and got.shape == (M,)
    torch.testing.assert_close(got, want, rtol=TOL[dtype], atol=TOL[dtype])
    for a, b in zip(got_grads, want_grads, strict=True):               # d/d hidden, d/d LM-head weight
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype])
    with torch.no_grad():                                              # the reference's path: a plain loop
        torch.testing.assert_close(thought_logprobs(hidden, labels, head, 0.7, chunk), want,
                                   rtol=TOL[dtype], atol=TOL[dtype])


def test_the_default_chunk_holds_64_mib_of_float32_logits() -> None:
    assert default_chunk(151_936) == 110 and default_chunk(49_152) == 341
    assert default_chunk(10**9) == 1
    assert chunk_size(torch.nn.Linear(4, 151_936, bias=False)) == 110
    assert chunk_size(lambda h: h, 5) == 5
    with pytest.raises(ValueError):
        chunk_size(lambda h: h)
    assert thought_logprobs(torch.zeros(0, H), torch.zeros(0, dtype=torch.long),
                            torch.nn.Linear(H, V, bias=False), 1.0, 3).shape == (0,)


def _saved_shapes(fn) -> list[tuple[int, ...]]:
    """Shapes of every tensor autograd saves for the backward while ``fn`` runs."""
    shapes: list[tuple[int, ...]] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return shapes


def test_the_policy_pass_keeps_no_vocabulary_sized_tensor_for_its_backward() -> None:
    """What the forward leaves for the backward is the [M, H] hidden states, not [tokens, V] logits or
    log-softmax: those are recomputed chunk by chunk in the backward."""
    head = torch.nn.Linear(H, V, bias=False)
    hidden = torch.randn(M, H, requires_grad=True)
    labels = torch.randint(0, V, (M,))
    unchunked = _saved_shapes(lambda: objective.token_logprobs(head(hidden), labels, 0.7))
    assert any(V in s for s in unchunked)                              # the probe sees what it must not
    chunked = _saved_shapes(lambda: thought_logprobs(hidden, labels, head, 0.7, 4))
    assert not any(V in s for s in chunked), chunked


def _tied_lora_model():
    """A tiny Qwen2 with tied embeddings under the RL set-up (LoRA + trainable special-token rows),
    its LoRA B matrices random so that the adapters change the output."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from o1embedder.training.adapters import prepare_model
    from o1embedder.training.config import AdapterConfig

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, tie_word_embeddings=True)
    lm = prepare_model(Qwen2ForCausalLM(cfg), SimpleNamespace(special_ids={296, 297, 298, 299}),
                       AdapterConfig(mode="lora", dropout=0.0))
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if "lora_B" in name or "trainable_tokens_delta" in name:
                p.add_(0.05 * torch.randn_like(p))
    return lm


def test_lora_with_a_tied_head_chunked_equals_unchunked() -> None:
    """Under LoRA peft wraps the tied head (frozen matrix + trainable special-token rows): the chunked
    log-probs and the gradients of every trainable tensor (adapters, token rows) equal the unchunked
    ones in float32. Under bf16 autocast (the loop runs its passes under it) the values still equal;
    the gradients of the token rows differ by bf16 rounding (the head's weight gradient is rounded to
    bf16 once per chunk instead of once), so there both paths are held to float32's gradients, and the
    chunked one must be as close as the unchunked one."""
    pytest.importorskip("peft")
    from o1embedder.training.forward import JointModel

    lm = _tied_lora_model()
    head = lm.get_output_embeddings()
    assert head.token_adapter.base_layer.weight is lm.get_input_embeddings().token_adapter.base_layer.weight
    assert chunk_size(head) == default_chunk(300)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 300, (3, 12), generator=g)
    ids[:, 5] = 297                                                     # a special token among the inputs
    rows, cols = torch.arange(3).repeat_interleave(7), torch.arange(4, 11).repeat(3)   # M = 21
    labels = ids[rows, cols + 1]
    labels[::5] = 298                                                   # and among the targets
    params = [p for p in lm.parameters() if p.requires_grad]
    assert any("trainable_tokens_delta" in n for n, p in lm.named_parameters() if p.requires_grad)

    def run(chunk: int, autocast: bool = False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            hidden = JointModel(lm)._hidden(ids, torch.ones_like(ids))[rows, cols]          # [M, H]
            logp = thought_logprobs(hidden, labels, head, 0.7, chunk)                       # [M]
        upstream = torch.linspace(-1, 1, len(labels))
        return logp.detach(), torch.autograd.grad((logp * upstream).sum(), params)

    want, want_grads = run(10**6)
    assert max(float(a.abs().max()) for a in want_grads) > 1e-3
    bf16, bf16_grads = run(10**6, autocast=True)
    error = lambda a, b: float((a - b).norm() / b.norm().clamp(min=1e-12))  # noqa: E731
    for chunk in (1, 4, 20):
        got, got_grads = run(chunk)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        for a, b in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        got, got_grads = run(chunk, autocast=True)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, bf16, rtol=1e-6, atol=1e-6)
        for a, b, ref in zip(got_grads, bf16_grads, want_grads, strict=True):
            assert error(a, ref) < 0.03 and error(a, ref) <= 1.5 * error(b, ref) + 1e-6


def test_an_rl_step_with_small_chunks_equals_one_with_a_huge_chunk(tiny_qwen_path: Path, tmp_path: Path) -> None:
    """Two updates per rollout (so the second has a ratio off 1 and a non-zero KL), LoRA: the logged
    numbers and the trained tensors after the step do not depend on ``logprob_chunk``."""
    pytest.importorskip("peft")
    from o1embedder.rl.config import RLConfig
    from o1embedder.rl.loop import build, rl_step

    data = write_rows(tmp_path / "rows.jsonl", simple_rows(8, 3, thought_every=2))
    results = []
    for chunk in (3, 10**6):
        config = RLConfig.from_dict(dict(
            model=str(tiny_qwen_path), data=str(data), out=str(tmp_path / f"rl-{chunk}"), steps=1,
            rows_per_step=4, samples=3, group_size=2, max_new_tokens=6, rollout_temperature=1.0,
            kl_coef=0.5, updates=2, learning_rate=1e-2, warmup_steps=0, mixed_precision="no", save_steps=0,
            logprob_chunk=chunk))
        torch.manual_seed(0)
        parts = build(config)
        optimizer = RecordingSGD([p for p in parts.joint.parameters() if p.requires_grad], lr=1e-2)
        numbers = rl_step(parts, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0), 0)
        results.append((numbers, optimizer.seen))
    (small, small_grads), (huge, huge_grads) = results
    assert huge["kl"] > 0 and huge["thought_tokens"] > 1 and len(huge_grads) == 2
    for name in ("loss", "policy", "kl", "contrastive", "reward_mean"):
        assert small[name] == pytest.approx(huge[name], abs=1e-6), name
    for got, want in zip(small_grads, huge_grads, strict=True):             # each update's gradients
        assert max(float(w.abs().max()) for w in want) > 1e-3
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


class RecordingSGD(torch.optim.SGD):
    """SGD that keeps the gradients of each step (AdamW divides by the gradients' running RMS: a
    rounding-level difference in a near-zero gradient entry would show as a step of up to the
    learning rate, hiding what is compared)."""

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        super().__init__(params, lr=lr)
        self.seen: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        self.seen.append([p.grad.detach().clone() for group in self.param_groups for p in group["params"]
                          if p.grad is not None])
        return super().step(closure)
