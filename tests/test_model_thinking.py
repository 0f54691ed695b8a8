"""Equivalence: the one-pass think+embed vector equals a fresh forward over the same ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from o1embedder.model import O1Embedder, ThinkConfig
from o1embedder.model.thinking import Thinker, row_noise, sample_next

QUERIES = [
    "who designed the tower in tokyo?",
    "why",
    "the quick brown fox jumps over the lazy dog and what else did the designer build",
    "vitamins",
    "how are rivers and bridges related",
]


def _eos_prone(model: O1Embedder, bias: float = 3.0) -> O1Embedder:
    """A copy whose LM head favours EOS (a bias on its logit), so thoughts end at different lengths.

    The vectors come from the decoder, which is unchanged; only which thoughts get sampled moves.
    """
    import copy

    clone = copy.deepcopy(model)
    head = clone.model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[clone.template.eos_id] = bias
    clone.model.set_output_embeddings(biased)
    return clone


def _fresh(model: O1Embedder, ids: list[int]) -> np.ndarray:
    """Reference: the plain HF causal-LM forward of one unpadded sequence, last hidden layer."""
    with torch.no_grad():
        out = model.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    vec = out.hidden_states[-1][0, -1].float()
    return torch.nn.functional.normalize(vec, dim=-1).numpy()


@pytest.mark.parametrize("family", ["qwen", "llama"])
def test_one_pass_vector_equals_fresh_forward(family: str, tiny_qwen: O1Embedder, tiny_llama: O1Embedder):
    model = _eos_prone(tiny_qwen if family == "qwen" else tiny_llama)
    cfg = ThinkConfig(n_thoughts=3, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=7)
    thinker = Thinker(model.model.get_decoder(), model.model.get_output_embeddings(),
                      eos_id=model.template.eos_id, emb_id=model.template.emb_id,
                      pad_id=model.tokenizer.pad_token_id)
    prompts = [model.template.query_prompt_ids(q) for q in QUERIES]
    assert len({len(p) for p in prompts}) > 1, "prompts must need left padding"
    keys = O1Embedder.sample_keys(QUERIES, 3, 7)
    result = thinker.run(prompts, [12] * len(prompts), cfg, keys)
    assert any(result.hit_budget) and not all(result.hit_budget), "need both kinds of endings"
    lengths = {len(t) for t in result.thought_ids}
    assert len(lengths) > 2, f"thoughts should end at different lengths, got {lengths}"
    one_pass = torch.nn.functional.normalize(result.vectors.float(), dim=-1).numpy()
    for row, thought in enumerate(result.thought_ids):
        ids = prompts[row // 3] + thought + [model.template.eos_id, model.template.emb_id]
        cosine = float(one_pass[row] @ _fresh(model, ids))
        assert cosine >= 0.99999, (row, cosine)
    # the template builds the same ids from generated ids (no decode / re-encode round trip)
    assert model.template.query_ids(QUERIES[0], result.thought_ids[0])[0] == (
        prompts[0] + result.thought_ids[0] + [model.template.eos_id, model.template.emb_id])


def test_encode_queries_is_mean_of_normalised_sample_vectors(tiny_qwen: O1Embedder):
    model = _eos_prone(tiny_qwen)
    vecs = model.encode_queries(QUERIES, n_thoughts=3, temperature=1.0, max_new_tokens=10, seed=3)
    found = model.think(QUERIES, n_thoughts=3, temperature=1.0, max_new_tokens=10, seed=3)
    np.testing.assert_allclose(found.pooled, vecs, atol=1e-6)
    thoughts = found.texts
    assert vecs.shape == (len(QUERIES), model.dim) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert [len(t) for t in thoughts] == [3] * len(QUERIES)
    cfg = ThinkConfig(n_thoughts=3, temperature=1.0, top_p=0.9, max_new_tokens=10, seed=3)
    ids, per_sample = model._think(QUERIES, cfg, embed=True, batch_size=16, show_progress=False)
    expected = []
    for i, q in enumerate(QUERIES):
        refs = [_fresh(model, model.template.query_ids(q, t)[0]) for t in ids[i]]
        assert np.allclose(per_sample[i], np.stack(refs), atol=1e-5)
        mean = np.mean(refs, axis=0)
        expected.append(mean / np.linalg.norm(mean))
    assert np.allclose(vecs, np.stack(expected), atol=1e-5)


def test_given_thoughts_and_no_think_match_fresh_forward(tiny_llama: O1Embedder):
    model = tiny_llama
    texts = ["tokyo tower was designed by tachu naito", "nothing"]
    given = model.encode_queries(QUERIES[:2], thoughts=texts)
    no_think = model.encode_queries(QUERIES[:2], think=False)
    for i, q in enumerate(QUERIES[:2]):
        assert float(given[i] @ _fresh(model, model.template.query_ids(q, texts[i])[0])) >= 0.99999
        assert float(no_think[i] @ _fresh(model, model.template.query_ids(q, None)[0])) >= 0.99999
    # several thoughts per query: mean of the normalised vectors, re-normalised
    two = model.encode_queries(QUERIES[:1], thoughts=[texts])
    refs = [_fresh(model, model.template.query_ids(QUERIES[0], t)[0]) for t in texts]
    mean = np.mean(refs, axis=0)
    assert np.allclose(two[0], mean / np.linalg.norm(mean), atol=1e-5)


def test_sampling_is_seeded_and_independent_of_batch_neighbours(tiny_qwen: O1Embedder):
    kwargs = dict(n=2, temperature=1.0, max_new_tokens=8, seed=11)
    alone = tiny_qwen.generate_thoughts([QUERIES[0]], **kwargs)
    batch = tiny_qwen.generate_thoughts(QUERIES, **kwargs)
    again = tiny_qwen.generate_thoughts(QUERIES, **kwargs)
    other = tiny_qwen.generate_thoughts(QUERIES, **{**kwargs, "seed": 12})
    assert batch == again
    assert batch[0] == alone[0]
    assert batch != other


def test_greedy_is_argmax_and_budget_zero_gives_empty_thought(tiny_qwen: O1Embedder):
    logits = torch.tensor([[0.1, 3.0, 0.2], [2.0, 0.0, 1.0]])
    assert sample_next(logits, 0.0, 0.9, torch.tensor([1, 2]), 0).tolist() == [1, 0]
    found = tiny_qwen.think(QUERIES[:2], max_new_tokens=0, n_thoughts=1)
    vecs = tiny_qwen.encode_queries(QUERIES[:2], max_new_tokens=0, n_thoughts=1)
    assert found.texts == [[""], [""]]
    np.testing.assert_allclose(found.pooled, vecs, atol=1e-6)
    ref = tiny_qwen.encode_queries(QUERIES[:2], thoughts=["", ""])
    assert np.allclose(vecs, ref, atol=1e-5)


def test_nucleus_sampling_follows_the_distribution():
    """Gumbel-max over the nucleus: frequencies match the renormalised top-p probabilities."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().repeat(20000, 1)
    keys = torch.arange(20000)
    drawn = sample_next(logits, 1.0, 0.9, keys, step=0)
    freq = torch.bincount(drawn, minlength=4).float() / 20000
    expected = torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95
    assert torch.allclose(freq, expected, atol=0.015), freq
    noise = row_noise(torch.tensor([5, 5]), 3, torch.tensor([[1, 2], [1, 2]]))
    assert torch.equal(noise[0], noise[1]) and ((noise > 0) & (noise < 1)).all()


def test_cache_is_preallocated_and_matches_dynamic_cache(tiny_qwen: O1Embedder):
    """The in-place cache gives the same states as transformers' growing DynamicCache."""
    from transformers import DynamicCache

    from o1embedder.model.thinking import _GrowingLayer, left_pad, positions_from_mask, preallocate

    decoder = tiny_qwen.model.get_decoder()
    ids, mask = left_pad([tiny_qwen.template.query_prompt_ids(q) for q in QUERIES[:3]], 0, "cpu")
    with torch.no_grad():
        plain = decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask),
                        past_key_values=DynamicCache(), use_cache=True).past_key_values
        grown = decoder(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask),
                        past_key_values=DynamicCache(), use_cache=True).past_key_values
        grown = preallocate(grown, 1)   # room for one step: the second step must grow the buffer
        assert all(type(layer) is _GrowingLayer for layer in grown.layers)
        for step in range(3):
            token = torch.full((3, 1), 5 + step)
            mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1)
            pos = mask.sum(-1, keepdim=True) - 1
            a = decoder(input_ids=token, attention_mask=mask, position_ids=pos, past_key_values=plain,
                        use_cache=True).last_hidden_state
            b = decoder(input_ids=token, attention_mask=mask, position_ids=pos, past_key_values=grown,
                        use_cache=True).last_hidden_state
            assert torch.allclose(a, b, atol=1e-6)


def test_think_keeps_ids_and_vectors_that_rebuild_the_query_vector(tiny_llama: O1Embedder):
    model = _eos_prone(tiny_llama)
    result = model.think(QUERIES[:3], n_thoughts=2, temperature=1.0, max_new_tokens=8, seed=9)
    assert len(result.ids) == 3 and all(len(s) == 2 for s in result.ids)
    assert result.vectors.shape == (3, 2, model.dim)
    from_ids = model.encode_queries(QUERIES[:3], thoughts=result.ids)
    direct = model.encode_queries(QUERIES[:3], n_thoughts=2, temperature=1.0, max_new_tokens=8, seed=9)
    assert np.allclose(from_ids, direct, atol=1e-5)
    with pytest.raises(Exception, match="lists of token ids"):
        model.encode_queries(QUERIES[:1], thoughts=[[[1, "x"]]])


def test_padding_to_a_multiple_changes_shapes_not_vectors(tiny_qwen: O1Embedder) -> None:
    """Bucketed padding (bf16 on CPU pads to 32 tokens so oneDNN keeps few kernels) leaves every
    document and query vector as it was, thinking included, and never changes a thought."""
    from o1embedder.model.thinking import left_pad, pad_multiple_for

    ids, mask = left_pad([[1, 2, 3], [4]], 0, "cpu", multiple=32)
    assert ids.shape == (2, 32) and mask.sum().item() == 4 and ids[0, -3:].tolist() == [1, 2, 3]
    assert left_pad([[1, 2, 3]], 0, "cpu")[0].shape == (1, 3)
    assert left_pad([[1, 2, 3]], 0, "cpu", multiple=32)[0].shape == (1, 8)   # a batch of one: at most 8
    assert left_pad([list(range(9))], 0, "cpu", multiple=32)[0].shape == (1, 16)
    assert pad_multiple_for(torch.device("cpu"), torch.bfloat16) == 32
    assert pad_multiple_for(torch.device("cpu"), torch.float32) == 1
    assert tiny_qwen.pad_multiple is None and tiny_qwen._pad_multiple() == 1   # float32: unchanged

    docs = [{"title": "t", "text": q} for q in QUERIES]
    try:
        tiny_qwen.pad_multiple = 1
        d1 = tiny_qwen.encode_corpus(docs, batch_size=5)
        found1 = tiny_qwen.think(QUERIES, n_thoughts=2, temperature=0.8, max_new_tokens=6, seed=3)
        q1, t1 = found1.pooled, found1.texts
        tiny_qwen.pad_multiple = 32
        d32 = tiny_qwen.encode_corpus(docs, batch_size=5)
        found32 = tiny_qwen.think(QUERIES, n_thoughts=2, temperature=0.8, max_new_tokens=6, seed=3)
        q32, t32 = found32.pooled, found32.texts
    finally:
        tiny_qwen.pad_multiple = None
    np.testing.assert_allclose(d32, d1, atol=1e-5)
    np.testing.assert_allclose(q32, q1, atol=1e-5)
    assert t32 == t1
