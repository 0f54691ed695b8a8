"""Templates (ids, truncation, special strings) and bad input to the model API."""

from __future__ import annotations

import numpy as np
import pytest

from o1embedder.errors import InputError
from o1embedder.model import O1Embedder
from o1embedder.templates import Template, TemplateConfig, document_text


def test_query_truncation_cuts_the_text_never_the_template(tiny_qwen: O1Embedder):
    t = tiny_qwen.template
    long_query = "what " * 500
    ids, n = t.query_ids(long_query, "word " * 1000)
    assert len(ids) == t.config.max_query_thought_tokens
    assert ids[0] == t.query_start_id and ids[33] == t.query_end_id and ids[34] == t.thought_id
    assert ids[-2:] == [t.eos_id, t.emb_id]
    assert n == t.config.max_query_thought_tokens - 35 - 2
    prompt = t.query_prompt_ids(long_query)
    assert len(prompt) == 32 + 3 and prompt[-2:] == [t.query_end_id, t.thought_id]


def test_document_truncation_and_title(tiny_llama: O1Embedder):
    t = tiny_llama.template
    ids = t.document_ids({"title": "T", "text": "body " * 1000})
    assert len(ids) == t.config.max_passage_tokens and ids[-1] == t.emb_id and ids[0] == t.bos[0]
    assert document_text({"title": "Tokyo Tower", "text": "was designed"}) == "Tokyo Tower was designed"
    assert document_text({"title": "", "text": "x"}) == "x"
    assert document_text({"text": "y"}) == "y"


def test_special_token_strings_in_text_stay_text(tiny_qwen: O1Embedder):
    t = tiny_qwen.template
    ids, _ = t.query_ids("what is <emb> in </query> html", "the <thought> tag")
    assert ids.count(t.emb_id) == 1 and ids.count(t.query_end_id) == 1 and ids.count(t.thought_id) == 1
    with pytest.raises(InputError, match="special token"):
        t.check_no_special("a thought with <emb> inside")


def test_custom_length_limits(tiny_qwen: O1Embedder):
    t = Template(tiny_qwen.tokenizer, TemplateConfig(max_query_tokens=4, max_passage_tokens=10))
    assert len(t.query_prompt_ids("one two three four five six seven")) == 4 + 3
    assert len(t.document_ids("a " * 50)) == 10
    with pytest.raises(InputError, match="unknown template settings"):
        TemplateConfig.from_dict({"max_query_tokens": 4, "colour": 1})


@pytest.mark.parametrize("queries, message", [
    ([], "empty list"),
    (["ok", ""], "query 1 is empty"),
    (["ok", "   "], "query 1 is empty"),
    (["ok", 3], "query 1 is a int"),
    ([None], "query 0 is a NoneType"),
])
def test_bad_queries(tiny_qwen: O1Embedder, queries, message):
    with pytest.raises(InputError, match=message):
        tiny_qwen.encode_queries(queries, think=False)
    with pytest.raises(InputError, match=message):
        tiny_qwen.generate_thoughts(queries)


@pytest.mark.parametrize("docs, message", [
    ([], "empty list"),
    ([3], "document 0: a document must be a string"),
    ([{"title": 1, "text": "x"}], "document 0: document 'title' and 'text' must be strings"),
])
def test_bad_documents(tiny_qwen: O1Embedder, docs, message):
    with pytest.raises(InputError, match=message):
        tiny_qwen.encode_corpus(docs)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_thoughts": 0}, "n_thoughts"),
    ({"temperature": -1.0}, "temperature"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_new_tokens": -3}, "max_new_tokens"),
])
def test_bad_generation_options(tiny_qwen: O1Embedder, kwargs, message):
    with pytest.raises(InputError, match=message):
        tiny_qwen.encode_queries(["q"], **kwargs)


def test_bad_given_thoughts(tiny_qwen: O1Embedder):
    with pytest.raises(InputError, match="2 thoughts for 1 queries"):
        tiny_qwen.encode_queries(["q"], thoughts=["a", "b"])
    with pytest.raises(InputError, match="non-empty list"):
        tiny_qwen.encode_queries(["q"], thoughts=[[]])


def test_long_queries_are_truncated_not_rejected(tiny_qwen: O1Embedder):
    """Documented behaviour: query text beyond max_query_tokens is cut (the template stays whole)."""
    long = "tower " * 300
    cut = tiny_qwen.tokenizer.decode(tiny_qwen.template.encode_text(long)[:32])
    a = tiny_qwen.encode_queries([long], think=False)
    b = tiny_qwen.encode_queries([cut], think=False)
    assert np.allclose(a, b, atol=1e-5)


def test_aliases_and_corpus_order(tiny_qwen: O1Embedder):
    docs = ["short", "a much longer document " * 5, {"title": "t", "text": "mid length doc"}]
    full = tiny_qwen.encode_corpus(docs, batch_size=2)
    singles = np.concatenate([tiny_qwen.encode_corpus([d]) for d in docs])
    assert np.allclose(full, singles, atol=1e-5), "length-sorted batching must restore the input order"
    assert np.array_equal(tiny_qwen.encode_document(docs, batch_size=2), full)
    assert np.array_equal(tiny_qwen.encode_query(["q"], think=False), tiny_qwen.encode_queries(["q"], think=False))
