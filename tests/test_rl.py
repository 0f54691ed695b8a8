"""GRPO on thoughts (issue 14, acceptance 1): the objective against hand computations, the KL to the
reference at the start, one-pass rewards against fresh forwards, the policy loss on thought tokens
only; and the loop: it learns nothing it should not, resumes exactly, and refuses bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from o1embedder.errors import InputError  # noqa: E402
from o1embedder.rl import objective  # noqa: E402
from o1embedder.rl.config import RLConfig  # noqa: E402
from o1embedder.rl.loop import build, policy_forward, read_log, reference_logprobs, rl, step_inputs  # noqa: E402
from o1embedder.rl.rollout import policy_batch, rollout_seed, sample_thoughts  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "dist_scripts"))
from helpers import simple_rows, write_rows  # noqa: E402


# -- the objective, by hand ---------------------------------------------------------------------------
def test_group_advantages_equal_a_hand_computation() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.5, 0.5, 0.5, 0.5])             # 2 rows x 4 samples
    adv = objective.group_advantages(rewards, samples=4, eps=0.0)
    std = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + 0 + (6 - 3) ** 2) / 3)         # mean 3, Bessel
    assert torch.allclose(adv[:4], torch.tensor([-2 / std, -1 / std, 0.0, 3 / std]))
    assert torch.equal(objective.group_advantages(rewards, samples=4)[4:], torch.zeros(4))  # constant group
    assert objective.zero_variance_fraction(rewards, 4) == 0.5


def test_rewards_equal_a_hand_computation() -> None:
    # 1 row, group of 2 (positive, negative) -> d; 2 samples
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    q = torch.tensor([[0.8, 0.6], [0.6, 0.8]])
    got = objective.retrieval_reward(q, d, group_size=2, samples=2, temperature=0.5, kind="logprob")
    expect = [1.6 - math.log(math.exp(1.6) + math.exp(1.2)), 1.2 - math.log(math.exp(1.2) + math.exp(1.6))]
    assert torch.allclose(got, torch.tensor(expect))
    rr = objective.retrieval_reward(q, d, group_size=2, samples=2, temperature=0.5, kind="rr")
    assert rr.tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="unknown reward"):
        objective.retrieval_reward(q, d, group_size=2, samples=2, temperature=0.5, kind="mrr")


def test_grpo_terms_equal_a_hand_computation() -> None:
    logp = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    old = torch.tensor([-1.0, -2.5, -0.5])
    ref = torch.tensor([-1.5, -2.0, -0.5])
    adv = torch.tensor([2.0, -1.0])
    sample = torch.tensor([0, 0, 1])
    terms = objective.grpo_terms(logp, old, ref, adv, sample, clip=0.2)
    ratio = [1.0, math.exp(0.5), 1.0]
    a = [2.0, 2.0, -1.0]
    per = [-min(r * x, min(max(r, 0.8), 1.2) * x) for r, x in zip(ratio, a)]
    assert terms["policy"].item() == pytest.approx(sum(per) / 3, rel=1e-6)
    kl = [math.exp(r - lp) - (r - lp) - 1 for r, lp in zip([-1.5, -2.0, -0.5], [-1.0, -2.0, -0.5])]
    assert terms["kl"].item() == pytest.approx(sum(kl) / 3, rel=1e-6)
    assert terms["clipped"].item() == pytest.approx(1 / 3)
    terms["policy"].backward()
    # d/dlogp of -A * ratio where unclipped; the clipped token (ratio 1.65 > 1.2, A > 0) has no gradient
    assert torch.allclose(logp.grad, torch.tensor([-2.0 / 3, 0.0, 1.0 / 3]))
    with_one_update = objective.grpo_terms(logp, logp.detach(), None, adv, sample)
    assert with_one_update["kl"].item() == 0.0


def test_rewards_are_float32_under_bf16_autocast() -> None:
    """bf16 autocast must not round the reward's scores: the same rewards as without autocast."""
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(6, 32), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(8, 32), dim=-1).to(torch.bfloat16)
    kwargs = dict(group_size=4, samples=3, temperature=0.02)
    plain = objective.retrieval_reward(q, d, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = objective.retrieval_reward(q, d, **kwargs)
        contrastive = objective.sample_info_nce(q, d, **kwargs)
    assert under.dtype == torch.float32 and torch.allclose(under, plain, atol=1e-5)
    assert torch.isclose(contrastive, objective.sample_info_nce(q, d, **kwargs), atol=1e-5)


def test_sample_info_nce_with_one_sample_is_the_training_info_nce() -> None:
    from o1embedder import losses

    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    ours = objective.sample_info_nce(q, d, group_size=2, samples=1, temperature=0.05)
    assert ours.item() == pytest.approx(losses.info_nce(q, d, 2, temperature=0.05).item(), rel=1e-6)


# -- on a tiny model ------------------------------------------------------------------------------------
def _config(model: Path, tmp_path: Path, **kw) -> RLConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = write_rows(tmp_path / "rows.jsonl", simple_rows(8, 3, thought_every=2))
    base = dict(model=str(model), data=str(data), out=str(tmp_path / "rl"), steps=2, rows_per_step=4,
                samples=3, group_size=2, max_new_tokens=6, learning_rate=1e-2, warmup_steps=0,
                mixed_precision="no", save_steps=0)
    return RLConfig.from_dict({**base, **kw})


def _rollout_and_batch(parts, step: int = 0):
    queries, d_ids, d_mask = step_inputs(parts, step)
    cfg = parts.config
    rollout = sample_thoughts(parts.o1, queries, samples=cfg.samples, temperature=cfg.rollout_temperature,
                              top_p=cfg.rollout_top_p, max_new_tokens=cfg.max_new_tokens,
                              seed=rollout_seed(cfg.seed, step))
    return rollout, policy_batch(parts.template, rollout, parts.o1.tokenizer.pad_token_id), d_ids, d_mask


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_kl_is_zero_before_the_first_update(tiny_qwen_path: Path, tmp_path: Path, mode: str) -> None:
    torch.manual_seed(0)
    parts = build(_config(tiny_qwen_path, tmp_path, adapter={"mode": mode}))
    _, batch, _, _ = _rollout_and_batch(parts)
    assert batch.labels.numel() > 0
    with torch.no_grad():
        logp, _ = policy_forward(parts, batch, parts.config.rollout_temperature)
    ref = reference_logprobs(parts, batch, parts.config.rollout_temperature)
    terms = objective.grpo_terms(logp, logp, ref, torch.ones(batch.ids.shape[0]), batch.token_sample)
    assert terms["kl"].item() == 0.0


def test_reward_from_one_pass_vectors_equals_reward_from_fresh_forwards(tiny_qwen_path: Path,
                                                                        tmp_path: Path) -> None:
    torch.manual_seed(0)
    parts = build(_config(tiny_qwen_path, tmp_path))
    rollout, batch, d_ids, d_mask = _rollout_and_batch(parts)
    with torch.no_grad():
        d = parts.joint.encode_docs(d_ids, d_mask)
        _, fresh = policy_forward(parts, batch, 1.0)
    assert torch.allclose(rollout.vectors, fresh, atol=1e-5)
    kwargs = dict(group_size=2, samples=3, temperature=0.02)
    one_pass = objective.retrieval_reward(rollout.vectors, d, **kwargs)
    assert torch.allclose(one_pass, objective.retrieval_reward(fresh, d, **kwargs), atol=1e-3)
    assert one_pass.std() > 0                                                     # not a degenerate case


def test_policy_targets_are_the_thought_tokens_and_a_sampled_eos_only(tiny_qwen) -> None:
    from o1embedder.rl.rollout import Rollout

    rollout = Rollout(queries=["which tower", "a river"], samples=2, thought_ids=[[5, 6], [7], [], [8, 9, 10]],
                      sampled_eos=[True, False, True, False], vectors=torch.zeros(4, 4), texts=[""] * 4)
    batch = policy_batch(tiny_qwen.template, rollout, tiny_qwen.tokenizer.pad_token_id)
    eos = tiny_qwen.template.eos_id
    expected = [[5, 6, eos], [7], [eos], [8, 9, 10]]        # a budget-forced EOS is not the policy's choice
    for s, labels in enumerate(expected):
        assert batch.labels[batch.rows == s].tolist() == labels
        cols = batch.cols[batch.rows == s]
        assert batch.ids[s, cols + 1].tolist() == labels    # the state at col predicts the token at col + 1
        assert batch.ids[s, -1].item() == tiny_qwen.template.emb_id
        assert batch.ids[s, -2].item() == eos               # the sequence always closes with EOS, <emb>


def test_only_thought_tokens_carry_the_policy_loss(tiny_qwen_path: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    parts = build(_config(tiny_qwen_path, tmp_path, max_new_tokens=3, adapter={"mode": "full"}))
    _, batch, _, _ = _rollout_and_batch(parts)
    # through the whole forward: a position's input gets gradient from the policy term only if it is
    # read (causally) by a target's prediction; <emb> and the closing EOS get none
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["x"] = output

    hook = parts.lm.get_input_embeddings().register_forward_hook(keep)
    logp, _ = policy_forward(parts, batch, 1.0)
    hook.remove()
    objective.grpo_terms(logp, logp.detach(), None, torch.ones(batch.ids.shape[0]), batch.token_sample)[
        "policy"].backward()
    grad = captured["x"].grad.abs().sum(-1)                                       # [S, T]
    for s in range(batch.ids.shape[0]):
        cols = batch.cols[batch.rows == s]
        if cols.numel():
            last = int(cols.max())
            assert grad[s, last + 1:].sum() == 0                                  # EOS, <emb>: no policy gradient
            assert grad[s, last] > 0
        else:
            assert grad[s].sum() == 0


def test_resumed_run_equals_unbroken_run_and_logs_every_step(tiny_qwen_path: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    unbroken = _config(tiny_qwen_path, tmp_path / "a", steps=4)
    broken = _config(tiny_qwen_path, tmp_path / "b", steps=4, save_steps=1)
    out_a = rl(unbroken, show_progress=False)
    assert rl(broken, show_progress=False, stop_after=2) == Path(broken.out)      # stopped at step 2
    assert [r["step"] for r in read_log(Path(broken.out) / "rl_log.jsonl")] == [1, 2]
    out_b = rl(broken, show_progress=False)
    a, b = load_file(str(out_a / "model.safetensors")), load_file(str(out_b / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    base = load_file(str(tiny_qwen_path / "model.safetensors"))
    assert any(not torch.equal(a[k], base[k]) for k in a if k in base)            # RL changed the model
    log_a = read_log(Path(unbroken.out) / "rl_log.jsonl")
    log_b = read_log(Path(broken.out) / "rl_log.jsonl")
    assert [r["step"] for r in log_a] == [1, 2, 3, 4]
    for ra, rb in zip(log_a, log_b):
        for key in ("reward_mean", "kl", "thought_tokens", "zero_variance", "policy", "contrastive", "loss"):
            assert ra[key] == pytest.approx(rb[key], abs=1e-5), key
    assert log_a[0]["kl"] == 0.0 and log_a[-1]["kl"] > 0                          # moved away from the reference
    assert json.loads((out_a / "o1emb_rl.json").read_text())["samples"] == 3


def test_bad_rows_and_settings_get_clear_errors(tiny_qwen_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": "q2", "pos": []}\n')
    with pytest.raises(InputError) as err:
        build(_config(tiny_qwen_path, tmp_path, data=str(bad)))
    assert "bad.jsonl" in str(err.value) and ":2" in str(err.value)
    with pytest.raises(InputError, match="samples must be >= 2"):
        _config(tiny_qwen_path, tmp_path, samples=1).validate()
    with pytest.raises(InputError, match="unknown setting 'sample'"):
        _config(tiny_qwen_path, tmp_path, sample=3)


def test_cli_bad_input_exits_2_with_one_line(tiny_qwen_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\nnot json\n')
    proc = subprocess.run([sys.executable, "-m", "o1embedder", "rl", "--model", str(tiny_qwen_path),
                           "--data", str(bad), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "bad.jsonl" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "final").exists()


def test_torchrun_two_ranks_match_one_process(tiny_qwen_path: Path, tmp_path: Path) -> None:
    """Under torchrun (2 ranks, gloo) a step equals one process's step on all the rows: the rollouts,
    rewards (every rank's documents are candidates), advantages, the global loss terms and the
    averaged gradients, full fine-tuning and LoRA, in float64."""
    import os

    from rl_equivalence import one_step, rl_config

    data = write_rows(tmp_path / "rows.jsonl", simple_rows(8, 3, thought_every=2))
    script = Path(__file__).parent / "dist_scripts" / "rl_equivalence.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(script.parent), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           "--model", str(tiny_qwen_path), "--data", str(data), "--out", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    for mode in ("full", "lora"):
        ref = one_step(rl_config(tiny_qwen_path, data, tmp_path / f"ref-{mode}", mode))
        assert ref["local_reward_std"] > 0 and ref["terms"]["kl"] == 0.0          # a real policy gradient
        assert any(float(g.abs().max()) > 0 for g in ref["grads"].values())
        for rank in (0, 1):
            got = torch.load(tmp_path / f"rl-{mode}-rank{rank}.pt")
            for name, value in ref["terms"].items():
                assert got["terms"][name] == pytest.approx(value, abs=1e-8), (mode, rank, name)
            assert got["grads"].keys() == ref["grads"].keys()
            worst = max(float((got["grads"][n] - g).abs().max()) for n, g in ref["grads"].items())
            assert worst < 1e-8, (mode, rank, worst)


def test_resume_with_other_settings_is_refused_and_a_finished_run_is_not_redone(tiny_qwen_path: Path,
                                                                               tmp_path: Path, capsys) -> None:
    """Issue 20, acceptance 3: a checkpoint made with other settings is never resumed (exit 2, one line
    naming the setting); a finished run rerun trains nothing and keeps its model."""
    from o1embedder.cli import main

    data = write_rows(tmp_path / "rows.jsonl", simple_rows(6, 3))
    out = tmp_path / "run"
    settings = {"steps": 3, "rows_per_step": 2, "samples": 2, "group_size": 2, "max_new_tokens": 4,
                "save_steps": 1, "mixed_precision": "no"}

    def cli(rows: Path = data, **changed) -> int:
        flags = [x for k, v in {**settings, **changed}.items() for x in ("--" + k.replace("_", "-"), str(v))]
        return main(["--log-level", "ERROR", "rl", "--model", str(tiny_qwen_path), "--data", str(rows),
                     "--out", str(out), *flags])

    def error() -> str:
        lines = [line for line in capsys.readouterr().err.splitlines() if "o1emb rl: error:" in line]
        assert len(lines) == 1
        return lines[0]

    rl(RLConfig.from_dict(dict(model=str(tiny_qwen_path), data=str(data), out=str(out), **settings)),
       show_progress=False, stop_after=1)                                        # a run killed after step 1
    capsys.readouterr()
    assert cli(rows_per_step=3) == 2
    assert "rows_per_step = 2, this run has 3" in error()
    assert cli(learning_rate=1e-4) == 2
    assert "learning_rate" in error()
    changed = tmp_path / "rows2.jsonl"
    changed.write_text(data.read_text().replace("tower", "towers", 1))
    assert cli(rows=changed) == 2
    assert "the data file" in error()
    assert [r["step"] for r in read_log(out / "rl_log.jsonl")] == [1]            # nothing was touched
    assert cli() == 0                                                            # same settings: resumes
    assert [r["step"] for r in read_log(out / "rl_log.jsonl")] == [1, 2, 3]
    final = out / "final" / "model.safetensors"
    stamp, log = final.stat().st_mtime_ns, (out / "rl_log.jsonl").read_text()
    assert cli() == 0                                                            # finished: nothing redone
    assert final.stat().st_mtime_ns == stamp and (out / "rl_log.jsonl").read_text() == log
    assert cli(steps=4) == 2                                                     # a finished run of 3 steps
    assert "steps = 3, this run has 4" in error()
