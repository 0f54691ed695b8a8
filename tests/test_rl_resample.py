"""Rollout redraws (``RLConfig.resample``): a row whose G thoughts are all the same has equal rewards,
so no advantage and no gradient; such rows think again with the next round's seed until they differ."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from o1embedder.errors import InputError
from o1embedder.rl.checkpoints import run_record
from o1embedder.rl.config import RLConfig
from o1embedder.rl.rollout import identical_groups, rollout_seed, sample_thoughts


class FakeO1:
    """``think`` draws per (seed, query): a query in ``stubborn`` writes the same thought G times for the
    first seed and for ``stubborn[query]`` more seeds; others always differ."""

    def __init__(self, stubborn: dict[str, int], base_seed: int) -> None:
        self.stubborn, self.calls = stubborn, []
        self.seeds = [base_seed] + [rollout_seed(base_seed, r) for r in range(1, 10)]
        self.template = SimpleNamespace(thought_budget=lambda n: 99, query_prompt_ids=lambda q: [0] * 3)

    def think(self, queries, *, seed, n_thoughts, **_):
        self.calls.append((list(queries), seed))
        rounds = self.seeds.index(seed)
        ids, vectors, texts = [], [], []
        for q in queries:
            same = rounds <= self.stubborn.get(q, -1)
            group = [[7, 7] if same else [rounds, s, len(q)] for s in range(n_thoughts)]
            ids.append(group)
            vectors.append(np.asarray([[float(len(t)), float(rounds), float(s)] for s, t in enumerate(group)]))
            texts.append([" ".join(map(str, t)) for t in group])
        return SimpleNamespace(ids=ids, vectors=np.stack(vectors), texts=texts)


def _sample(o1: FakeO1, resample: int):
    return sample_thoughts(o1, ["a", "bb", "ccc"], samples=3, temperature=1.0, top_p=1.0, max_new_tokens=8,
                           seed=11, resample=resample)


def test_rows_of_identical_thoughts_are_redrawn_until_they_differ() -> None:
    o1 = FakeO1({"a": 0, "ccc": 2}, 11)          # "a" differs from round 1 on, "ccc" from round 3 on
    out = _sample(o1, resample=2)
    assert out.identical == (2, 1)                # "ccc" is still alike after 2 redraws
    assert [q for q, _ in o1.calls] == [["a", "bb", "ccc"], ["a", "ccc"], ["ccc"]]
    assert [s for _, s in o1.calls] == [11, rollout_seed(11, 1), rollout_seed(11, 2)]
    assert out.thought_ids[:3] == [[1, 0, 1], [1, 1, 1], [1, 2, 1]]          # row "a" from round 1
    assert out.thought_ids[6:] == [[7, 7]] * 3                               # "ccc" kept its first draw
    assert out.vectors.shape == (9, 3) and float(out.vectors[0, 1]) == 1.0   # the vector came with it
    assert out.texts[0] == "1 0 1"
    assert identical_groups([[[1], [1]], [[1], [2]]]) == [0]


def test_without_resampling_nothing_is_redrawn() -> None:
    o1 = FakeO1({"a": 0}, 11)
    out = _sample(o1, resample=0)
    assert len(o1.calls) == 1 and out.identical == (1, 1) and out.thought_ids[:3] == [[7, 7]] * 3


def test_the_setting_is_checked_and_recorded_only_away_from_its_default(tmp_path) -> None:
    with pytest.raises(InputError, match="resample"):
        RLConfig(model="m", data="d", out="o", resample=-1).validate()
    (tmp_path / "m").mkdir()
    (tmp_path / "d").write_text("")
    plain = RLConfig(model=str(tmp_path / "m"), data=str(tmp_path / "d"), out="o")
    assert "resample" not in run_record(plain).settings
    assert run_record(RLConfig(model=plain.model, data=plain.data, out="o", resample=3)).settings["resample"] == 3
