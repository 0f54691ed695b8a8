"""Thoughts that stop when they are done: repetition control with ``generate``'s meaning, and early
exit once the thought's query vector has converged (model/repetition.py, model/earlyexit.py), on the
generic and the static decode path, reading the loop's flags every step and every 3 or 8 steps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from o1embedder.errors import InputError
from o1embedder.model import O1Embedder, ThinkConfig
from o1embedder.model.repetition import control
from o1embedder.model.thinking import Thinker, left_pad

QUERIES = ["who designed the tower in tokyo?", "why", "the quick brown fox jumps over the lazy dog",
           "rivers and bridges bridges rivers", "vitamins"]
CONTROLS = [(1.3, 0), (1.0, 2), (1.5, 3), (0.7, 0), (1.2, 1)]   # (repetition_penalty, no_repeat_ngram_size)


class _Suppress(torch.nn.Module):
    """An LM head that never proposes ``token`` (as ``generate(suppress_tokens=[token])``)."""

    def __init__(self, head: torch.nn.Module, token: int) -> None:
        super().__init__()
        self.head, self.token = head, token

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = self.head(hidden).clone()
        out[:, self.token] = -torch.inf
        return out


def _thinker(model: O1Embedder, mode: str, every: int | None = None, head: torch.nn.Module | None = None) -> Thinker:
    return Thinker(model._decoder(), head or model.model.get_output_embeddings(), eos_id=model.template.eos_id,
                   emb_id=model.template.emb_id, pad_id=model.tokenizer.pad_token_id, decode=mode,
                   check_every=every)


def _fresh(model: O1Embedder, ids: list[int]) -> np.ndarray:
    """The reference vector: a plain forward of one unpadded sequence, last position, normalised."""
    with torch.no_grad():
        out = model.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return torch.nn.functional.normalize(out.hidden_states[-1][0, -1].double(), dim=-1).numpy()


# -- repetition control ------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_greedy_thoughts_equal_generate_with_repetition_control(family: str, tiny_qwen: O1Embedder,
                                                                tiny_llama: O1Embedder) -> None:
    """Temperature 0: token for token ``generate(do_sample=False, repetition_penalty=...,
    no_repeat_ngram_size=...)`` on left-padded prompts of different lengths, both paths. The pad id
    is a token these random models do generate, and ``generate``'s n-gram processor counts windows over
    left padding (see model/repetition.py), so both sides are kept off it (``suppress_tokens``)."""
    model = tiny_qwen if family == "qwen2" else tiny_llama
    lm, pad, eos = model.model, model.tokenizer.pad_token_id, model.template.eos_id
    prompts = [model.template.query_prompt_ids(q) for q in QUERIES]
    assert len({len(p) for p in prompts}) > 2
    ids, mask = left_pad(prompts, pad, "cpu")
    head = _Suppress(lm.get_output_embeddings(), pad)
    plain = _thinker(model, "generic", head=head).run(prompts, [24] * 5, ThinkConfig(n_thoughts=1, temperature=0.0),
                                                     torch.arange(5)).thought_ids
    changed = 0
    for penalty, size in CONTROLS:
        with torch.no_grad():
            out = lm.generate(ids, attention_mask=mask, max_new_tokens=24, do_sample=False, eos_token_id=eos,
                              pad_token_id=pad, repetition_penalty=penalty, no_repeat_ngram_size=size,
                              suppress_tokens=[pad])
        expected = [row[:row.index(eos)] if eos in row else row for row in out[:, ids.shape[1]:].tolist()]
        cfg = ThinkConfig(n_thoughts=1, temperature=0.0, repetition_penalty=penalty, no_repeat_ngram_size=size)
        for mode, every in itertools.product(("generic", "static"), (1, 8)):
            found = _thinker(model, mode, every, head).run(prompts, [24] * 5, cfg, torch.arange(5))
            assert found.thought_ids == expected, (penalty, size, mode, every)
            assert found.lengths == [len(t) for t in expected]
        changed += expected != plain
    assert changed == len(CONTROLS), "every setting should change some greedy thought"


def test_padding_is_not_history_and_rows_match_transformers_alone() -> None:
    """Row by row, the processed logits of a left-padded history equal transformers' processors on that
    row's real tokens alone: the pad id (here a real token too) counts only where it was really fed."""
    from transformers.generation.logits_process import (
        NoRepeatNGramLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
    )

    gen = torch.Generator().manual_seed(0)
    rows, vocab, width = 6, 12, 14
    real = [torch.randint(0, 5, (n,), generator=gen) for n in (14, 9, 4, 2, 1, 11)]   # small vocab: repeats
    history = torch.full((rows, width), -1)
    for r, seq in enumerate(real):
        history[r, width - len(seq):] = seq
    logits = torch.randn(rows, vocab, generator=gen) * 3
    for penalty, size in [(1.4, 0), (1.0, 1), (1.0, 2), (1.0, 3), (0.8, 2)]:
        cfg = ThinkConfig(repetition_penalty=penalty, no_repeat_ngram_size=size)
        ours = control(logits.clone(), history, cfg)
        for r, seq in enumerate(real):
            want = logits[r:r + 1].clone()
            if penalty != 1.0:
                want = RepetitionPenaltyLogitsProcessor(penalty)(seq[None], want)
            if size:
                want = NoRepeatNGramLogitsProcessor(size)(seq[None], want)
            assert torch.equal(ours[r:r + 1], want), (penalty, size, r)


def test_sampled_repetition_control_is_seeded_and_batch_independent(tiny_qwen: O1Embedder) -> None:
    kwargs = dict(n=2, temperature=0.8, max_new_tokens=16, seed=5, repetition_penalty=1.3, no_repeat_ngram_size=2)
    alone = tiny_qwen.generate_thoughts([QUERIES[2]], **kwargs)
    batch = tiny_qwen.generate_thoughts(QUERIES, **kwargs)
    assert batch == tiny_qwen.generate_thoughts(QUERIES, **kwargs)
    assert batch[2] == alone[0]
    assert batch != tiny_qwen.generate_thoughts(QUERIES, **{**kwargs, "seed": 6})
    assert batch != tiny_qwen.generate_thoughts(QUERIES, **{**kwargs, "repetition_penalty": 1.0,
                                                            "no_repeat_ngram_size": 0})


# -- early exit --------------------------------------------------------------------------------------
def _checks(length: int, budget_hit: bool, every: int, limit: int) -> list[int]:
    """The steps after which a row of ``length`` thought tokens is checked: it is live after step t
    while t < length, and after its last token too when it then produced EOS; never at the limit."""
    last = length if not budget_hit else length - 1
    return [t for t in range(every, min(last, limit - 1) + 1, every)]


def _thresholds(cosines: list[float], margin: float = 2e-5) -> list[float]:
    """Thresholds from the median of ``cosines`` upwards, each with no cosine within ``margin`` of it
    (rounding of the one-pass side vectors against the fresh forwards must not flip a comparison)."""
    values = sorted(cosines)
    return [(a + b) / 2 for i, (a, b) in enumerate(zip(values, values[1:]))
            if i >= len(values) // 2 and b - a > 2 * margin]


def _stops(refs: list[tuple[list[int], list[float]]], threshold: float, patience: int) -> list[int | None]:
    """The rule by hand: per row, the step after which it stops (``None``: it does not)."""
    found = []
    for steps, cos in refs:
        streak, stop = 0, None
        for t, c in zip(steps[1:], cos):
            streak = streak + 1 if c >= threshold else 0
            if streak >= patience:
                stop = t
                break
        found.append(stop)
    return found


@pytest.mark.parametrize("family,mode,patience,eos_bias", [("llama", "static", 1, 0.0), ("llama", "generic", 2, 1.5),
                                                           ("qwen2", "static", 2, 1.5), ("qwen2", "generic", 1, 0.0)])
def test_early_exit_stops_where_the_rule_says(family: str, mode: str, patience: int, eos_bias: float,
                                              tiny_qwen: O1Embedder, tiny_llama: O1Embedder) -> None:
    """Reference vectors from fresh forwards of prompt + thought[:t] + EOS + <emb>, the rule applied by
    hand: each row stops at that step, keeps the thought's first t tokens, and its vector is the fresh
    forward of the cut thought. ``eos_bias``: a head that favours EOS, so some thoughts end by themselves
    (and are checked after their last token, but not after EOS)."""
    from test_fastdecode import _EosBias

    model = tiny_qwen if family == "qwen2" else tiny_llama
    eos, emb, every, n, limit = model.template.eos_id, model.template.emb_id, 3, 2, 30
    head = _EosBias(model.model.get_output_embeddings(), eos, eos_bias)
    prompts = [model.template.query_prompt_ids(q) for q in QUERIES]
    keys = O1Embedder.sample_keys(QUERIES, n, 1)
    base = dict(n_thoughts=n, temperature=0.8, max_new_tokens=limit, exit_every=every, exit_patience=patience)
    full = _thinker(model, mode, head=head).run(prompts, [limit] * 5, ThinkConfig(**base), keys)
    if eos_bias:
        assert not all(full.hit_budget) and len({len(t) for t in full.thought_ids}) > 2, "need EOS endings"
    refs, cosines = [], []
    for row, thought in enumerate(full.thought_ids):
        steps = _checks(len(thought), full.hit_budget[row], every, limit)
        vecs = [_fresh(model, prompts[row // n] + thought[:t] + [eos, emb]) for t in steps]
        cos = [float(a @ b) for a, b in zip(vecs[1:], vecs)]
        refs.append((steps, cos))
        cosines += cos

    def spread(threshold: float) -> tuple[bool, int]:   # rows that do and do not stop, at many steps
        stops = _stops(refs, threshold, patience)
        return None in stops, len(set(stops))

    threshold = max(_thresholds(cosines), key=spread)
    expected = _stops(refs, threshold, patience)
    assert any(s is not None for s in expected) and any(s is None for s in expected), expected
    assert len({s for s in expected if s is not None}) > 1, expected
    cfg = ThinkConfig(**base, exit_eps=1 - threshold)
    found = _thinker(model, mode, head=head).run(prompts, [limit] * 5, cfg, keys)
    for row, (stop, thought) in enumerate(zip(expected, full.thought_ids)):
        assert found.stopped[row] == (stop is not None), row
        assert found.thought_ids[row] == (thought if stop is None else thought[:stop]), row
        assert found.lengths[row] == len(found.thought_ids[row])
        assert found.hit_budget[row] == (full.hit_budget[row] and stop is None)
        ref = _fresh(model, prompts[row // n] + found.thought_ids[row] + [eos, emb])
        vec = torch.nn.functional.normalize(found.vectors[row].double(), dim=-1).numpy()
        assert float(vec @ ref) >= 0.99999, row


@pytest.mark.parametrize("mode", ["static", "generic"])
def test_controls_off_leave_everything_bitwise_unchanged(mode: str, tiny_llama: O1Embedder) -> None:
    """Defaults do none of the work; early-exit checks that stop nothing leave no trace (the side steps
    are cut back out of the cache): thoughts and vectors bitwise those of a run without them."""
    prompts = [tiny_llama.template.query_prompt_ids(q) for q in QUERIES]
    keys = O1Embedder.sample_keys(QUERIES, 2, 3)
    base = ThinkConfig(n_thoughts=2, temperature=0.8, max_new_tokens=20)
    off = _thinker(tiny_llama, mode).run(prompts, [20] * 5, base, keys)
    explicit = ThinkConfig(n_thoughts=2, temperature=0.8, max_new_tokens=20, repetition_penalty=1.0,
                           no_repeat_ngram_size=0, exit_eps=0.0, exit_every=1, exit_patience=1)
    checked = ThinkConfig(n_thoughts=2, temperature=0.8, max_new_tokens=20, exit_eps=1e-9, exit_every=2,
                          exit_patience=1)
    for cfg in (explicit, checked):
        run = _thinker(tiny_llama, mode).run(prompts, [20] * 5, cfg, keys)
        assert run.thought_ids == off.thought_ids and run.hit_budget == off.hit_budget
        assert torch.equal(run.vectors, off.vectors)
        assert not any(run.stopped) and run.lengths == [len(t) for t in off.thought_ids]


def test_reading_flags_every_n_steps_changes_nothing_with_controls(tiny_llama_path) -> None:
    """With repetition control and early exit on, the accelerator setting (flags read every 3 or 8
    steps, steps taken back and redone) gives bitwise the thoughts, stops and vectors of reading every step."""
    model = O1Embedder.from_pretrained(tiny_llama_path, device="cpu", dtype="float32")
    cases = {"unpadded": ([[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]], [16, 16]),
             "padded": ([[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]], [16, 0, 11])}
    stops = 0
    for (name, (prompts, budgets)), mode, temperature in itertools.product(
            cases.items(), ("static", "generic"), (0.0, 0.7)):
        cfg = ThinkConfig(n_thoughts=3, temperature=temperature, max_new_tokens=16, repetition_penalty=1.3,
                          no_repeat_ngram_size=2, exit_eps=0.02, exit_every=2, exit_patience=1)
        keys = torch.arange(len(prompts) * 3) * 7919 + 3
        runs = [_thinker(model, mode, every).run(prompts, budgets, cfg, keys) for every in (1, 3, 8)]
        stops += sum(runs[0].stopped)
        for run in runs[1:]:
            assert run.thought_ids == runs[0].thought_ids, (name, mode, temperature)
            assert run.stopped == runs[0].stopped and run.hit_budget == runs[0].hit_budget
            assert torch.equal(run.vectors, runs[0].vectors), (name, mode, temperature)
    assert stops > 0, "no row stopped early: the test does not exercise the exit"


def test_no_host_reads_per_step_with_controls(tiny_llama: O1Embedder) -> None:
    """check_every = CHECK_EVERY: repetition control and early-exit checks add no read per step."""
    from test_fastdecode import _EosBias, _host_reads

    from o1embedder.model.thinking import CHECK_EVERY

    eos = tiny_llama.template.eos_id
    head = _EosBias(tiny_llama.model.get_output_embeddings(), eos, -torch.inf)
    reads = {}
    for new in (8, 40):
        cfg = ThinkConfig(n_thoughts=2, temperature=0.7, max_new_tokens=new, repetition_penalty=1.2,
                          no_repeat_ngram_size=3, exit_eps=1e-9, exit_every=4)
        thinker = _thinker(tiny_llama, "static", CHECK_EVERY, head)
        reads[new], steps = _host_reads(thinker, [[5, 6, 7, 8], [9, 10, 11, 12]], [new] * 2, cfg, torch.arange(4))
        assert steps == new
    assert reads[40] - reads[8] <= (40 - 8) // CHECK_EVERY, reads


# -- settings -----------------------------------------------------------------------------------------
def test_settings_are_saved_loaded_validated_and_overridable(tiny_qwen: O1Embedder, tmp_path) -> None:
    import copy

    model = copy.deepcopy(tiny_qwen)
    model.settings.think = ThinkConfig(repetition_penalty=1.2, no_repeat_ngram_size=3, exit_eps=0.01,
                                       exit_every=4, exit_patience=3)
    model.save_pretrained(tmp_path / "m")
    loaded = O1Embedder.from_pretrained(tmp_path / "m", device="cpu", dtype="float32")
    assert loaded.settings.think == model.settings.think
    cfg = loaded._think_config(no_repeat_ngram_size=0, exit_eps=0.0)
    assert (cfg.repetition_penalty, cfg.no_repeat_ngram_size, cfg.exit_eps, cfg.exit_every) == (1.2, 0, 0.0, 4)
    for bad in ({"repetition_penalty": 0}, {"no_repeat_ngram_size": -1}, {"no_repeat_ngram_size": 1.5},
                {"exit_eps": -0.1}, {"exit_eps": 1.0}, {"exit_every": 0}, {"exit_patience": 0}):
        with pytest.raises(InputError, match=next(iter(bad))):
            ThinkConfig(**bad).validate()
    found = tiny_qwen.think(QUERIES[:2], n_thoughts=2, temperature=0.8, max_new_tokens=12, exit_eps=0.5,
                            exit_every=2, exit_patience=1)
    assert found.lengths == [[len(t) for t in per] for per in found.ids]
    assert all(s for per in found.stopped for s in per) and found.lengths == [[4, 4], [4, 4]]   # eps 0.5: every row stops at once
    vecs = tiny_qwen.encode_queries(QUERIES[:2], n_thoughts=2, temperature=0.8, max_new_tokens=12, exit_eps=0.5,
                                    exit_every=2, exit_patience=1)
    np.testing.assert_allclose(found.pooled, vecs, atol=1e-6)
    np.testing.assert_allclose(tiny_qwen.encode_queries(QUERIES[:2], thoughts=found.ids), vecs, atol=1e-5)


def test_the_controls_reach_the_command_line(tiny_llama_path, capsys) -> None:
    """``--repetition-penalty`` / ``--no-repeat-ngram-size`` / ``--exit-*`` are settings of every command
    that thinks (think, eval, mine, search, serve) and change what ``o1emb think`` writes."""
    import json

    import yaml

    from o1embedder.cli import main

    assert main(["eval", "--model", "m", "--data", "d", "--repetition-penalty", "1.2", "--no-repeat-ngram-size", "3",
                 "--exit-eps", "0.01", "--print-config"]) == 0
    think = yaml.safe_load(capsys.readouterr().out)["think"]
    assert (think["repetition_penalty"], think["no_repeat_ngram_size"], think["exit_eps"]) == (1.2, 3, 0.01)
    base = ["think", "--model", str(tiny_llama_path), "--dtype", "float32", "--temperature", "0",
            "--max-new-tokens", "30", "--json", "alpha beta gamma"]
    outputs = []
    for extra in ([], ["--repetition-penalty", "3.0", "--no-repeat-ngram-size", "1"]):
        assert main([*base, *extra]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] != outputs[1]
