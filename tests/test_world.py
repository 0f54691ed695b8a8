"""The demo's synthetic world and its expert: structure, splits, determinism, ground truth."""

from __future__ import annotations

import asyncio

from o1embedder.synthesis import GenRequest
from o1embedder.world import GENERIC, WorldExpert, make_world


def test_world_is_deterministic_and_seed_dependent():
    a, b, c = make_world(3), make_world(3), make_world(4)
    assert a.corpus() == b.corpus() and [q.text for q in a.queries] == [q.text for q in b.queries]
    assert a.corpus() != c.corpus()


def test_held_out_queries_need_a_bridge_seen_only_in_training_thoughts():
    world = make_world(0)
    train, test = world.split("train"), world.split("test")
    assert test and train
    train_texts = {q.text for q in train}
    train_bridges = {q.bridge for q in train}
    corpus = world.corpus()
    work_name = {w.id: w.name for w in world.works}
    for q in test:
        assert q.family in {"else", "birthplace", "same_city"}
        assert q.text not in train_texts                      # a combination never trained on
        assert q.bridge in train_bridges                      # ... whose bridge a training thought states
        for doc_id in q.relevant:                             # the relevant documents never name the work
            assert work_name[q.work] not in corpus[doc_id]["text"], (q.text, doc_id)
    assert {q.family for q in train} == {"designer", "location", "else", "birthplace", "same_city"}


def test_relevance_follows_the_facts():
    world = make_world(1)
    works = {w.id: w for w in world.works}
    people = {p.name: p for p in world.people}
    for q in world.queries:
        w = works[q.work]
        if q.family == "else":
            assert all(works[d].designer == w.designer and d != w.id for d in q.relevant)
        elif q.family == "same_city":
            assert all(works[d].city == w.city and d != w.id for d in q.relevant)
        elif q.family == "birthplace":
            assert q.relevant == [people[w.designer].id]


def test_expert_offers_one_right_bridge_among_distractors():
    world = make_world(2)
    expert = WorldExpert(world)
    for q in world.queries[:40]:
        cands = expert.candidates(q.text, 3, seed=1)
        assert cands.count(q.bridge) == 1
        wrong = [c for c in cands if c != q.bridge and c not in GENERIC]
        assert len(wrong) == 1 and wrong[0] != q.bridge
        assert expert.candidates(q.text, 3, seed=1) == cands
    prompt = f"Think about it.\n\nQuery: {world.queries[0].text}\nResponse:"
    done = asyncio.run(expert.complete(GenRequest(messages=[{"role": "user", "content": prompt}], n=4, seed=0)))
    assert len(done.texts) == 4 and world.queries[0].bridge in done.texts


def test_validation_world_never_shows_the_test_split():
    world, original = make_world(0), make_world(0)
    test_ids = {q.id for q in original.split("test")}
    world.hold_out_validation(0.25)
    val, train = world.split("test"), world.split("train")
    assert val and {q.id for q in val}.isdisjoint(test_ids)              # validation comes from training works
    assert {q.id for q in world.split("heldout")} == test_ids            # the real test queries are set aside
    assert {q.id for q in train}.isdisjoint(test_ids | {q.id for q in val})
    assert {q.bridge for q in val} <= {q.bridge for q in train}          # built like the test split
    val_works = {q.work for q in val}
    assert all(q.family in {"designer", "location"} for q in train if q.work in val_works)
    assert len(val_works) == len({q.work for q in original.split("train") if q.family == "else"}) // 4
    again = make_world(0)
    again.hold_out_validation(0.25)
    assert [q.id for q in again.split("test")] == [q.id for q in val]    # seeded
