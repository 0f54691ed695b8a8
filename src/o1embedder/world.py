"""A synthetic world for the demo: landmarks, their designers and cities, and queries that need a
bridging fact the query does not state.

Like the seed example ("what else did the designer of Tokyo Tower build?" needs "Tokyo Tower was
designed by Tachu Naito"), most multi-hop queries can only be answered by recalling a fact:

========================  =====================================================  ========================
family                    query                                                  bridging thought
========================  =====================================================  ========================
``designer`` (1 hop)      who designed {W}?                                      I recall that {W} was designed by {P}.
``location`` (1 hop)      where is {W}?                                          I recall that {W} is in {C}.
``else`` (2 hops)         what else did the designer of {W} build?               I recall that {W} was designed by {P}.
``birthplace`` (2 hops)   where was the designer of {W} born?                    I recall that {W} was designed by {P}.
``same_city`` (2 hops)    which other landmarks stand in the same city as {W}?   I recall that {W} is in {C}.
========================  =====================================================  ========================

Splits: the works are divided into *train* and *test* works (seeded). Every work gets its one-hop
queries in training (so every bridging fact appears in some training thought); two-hop queries about
train works are training queries, two-hop queries about test works are the held-out test queries -
combinations never seen as training queries. Names are invented words, so no pretrained knowledge and
no lexical shortcut helps: a held-out two-hop query shares no content word with its relevant documents.

The ``world:`` expert (:class:`WorldExpert`) knows the facts and writes k candidate thoughts per query,
only one of which carries the right bridge (the others name a plausible wrong entity of the same kind,
or say something generic), so the refinement committee has real work; :meth:`World.bridge` is the
ground truth to score it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "m", "k"]
KINDS = ["tower", "bridge", "museum", "station", "library", "theatre", "hall", "gate"]
GENERIC = [
    "This question is about a famous landmark and the people behind it.",
    "Many landmarks were built in the last century by well known designers.",
    "The answer can be found in documents about architecture and cities.",
]


@dataclass(frozen=True)
class Work:
    id: str
    name: str
    kind: str
    city: str
    designer: str
    year: int


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    birthplace: str
    born: int


@dataclass
class WorldQuery:
    id: str
    text: str
    family: str
    work: str
    bridge: str
    """The bridging thought (ground truth)."""
    relevant: list[str]
    split: str


@dataclass
class World:
    """Entities, documents and queries of one seeded world (see the module docstring)."""

    seed: int
    cities: list[str]
    people: list[Person]
    works: list[Work]
    queries: list[WorldQuery] = field(default_factory=list)

    # -- documents ----------------------------------------------------------------------------
    def corpus(self) -> dict[str, dict[str, str]]:
        """BEIR-style corpus: one document per work and one per person."""
        docs: dict[str, dict[str, str]] = {}
        for w in self.works:
            docs[w.id] = {"title": w.name, "text": f"{w.name} is a {w.kind} in {w.city}. It was designed by "
                                                  f"{w.designer} and opened in {w.year}."}
        for p in self.people:
            docs[p.id] = {"title": p.name, "text": f"{p.name} was an architect born in {p.birthplace} in "
                                                  f"{p.born}. {p.name} studied building and design."}
        return docs

    def texts(self) -> list[str]:
        """Every text of the world (documents, queries, bridges): what the demo's tokenizer learns from."""
        out = [f"{d['title']} {d['text']}" for d in self.corpus().values()]
        out += [q.text for q in self.queries] + [q.bridge for q in self.queries] + GENERIC
        return out

    def split(self, name: str) -> list[WorldQuery]:
        return [q for q in self.queries if q.split == name]

    def hold_out_validation(self, share: float = 0.25) -> None:
        """Turn this world into a *validation* world, for choosing settings without the test split.

        The two-hop queries of ``share`` of the training works (seeded) become the ``test`` split (and
        leave training); the real held-out queries move to a ``heldout`` split that nothing reads. Every
        work keeps its one-hop training queries, so the validation queries are built exactly like the
        test ones: combinations never trained on, whose bridges training thoughts state.
        """
        if not 0 < share < 1:
            raise ValueError(f"validation share must be in (0, 1), got {share}")
        two_hop = ("else", "birthplace", "same_city")
        works = sorted({q.work for q in self.queries if q.split == "train" and q.family in two_hop})
        chosen = set(random.Random(f"validation-{self.seed}").sample(works, max(1, int(len(works) * share))))
        for q in self.queries:
            if q.split == "test":
                q.split = "heldout"
            elif q.family in two_hop and q.work in chosen:
                q.split = "test"

    def qrels(self, name: str) -> dict[str, dict[str, int]]:
        return {q.id: {d: 1 for d in q.relevant} for q in self.split(name)}

    def bridge(self, query_text: str) -> str:
        """The right bridging thought for a query text (ground truth for the committee)."""
        return self._by_text()[query_text].bridge

    def _by_text(self) -> dict[str, WorldQuery]:
        return {q.text: q for q in self.queries}

    def to_beir(self) -> dict[str, Any]:
        """``{"corpus", "queries", "qrels": {split: ...}}`` ready for :mod:`o1embedder.formats` writers."""
        return {"corpus": self.corpus(), "queries": {q.id: q.text for q in self.queries},
                "qrels": {s: self.qrels(s) for s in ("train", "test")}}


def _names(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < count:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 3)))
        word = (word + rng.choice(_CODAS)).capitalize()
        if word not in taken and len(word) >= 5:
            taken.add(word)
            out.append(word)
    return out


def make_world(seed: int = 0, *, n_people: int = 30, works_per_person: int = 4, n_cities: int = 10,
               test_share: float = 0.3) -> World:
    """Build a deterministic world from ``seed`` (see the module docstring for its structure)."""
    rng = random.Random(seed)
    taken: set[str] = set()
    cities = _names(rng, n_cities, taken)
    people = [Person(f"p{i}", name, rng.choice(cities), rng.randint(1850, 1950))
              for i, name in enumerate(_names(rng, n_people, taken))]
    names = _names(rng, n_people * works_per_person, taken)
    works = []
    for i, name in enumerate(names):
        kind = rng.choice(KINDS)
        designer = people[i % n_people]
        works.append(Work(f"w{i}", f"{name} {kind.capitalize()}", kind, rng.choice(cities), designer.name,
                          rng.randint(1880, 2020)))
    world = World(seed, cities, people, works)
    order = list(range(len(works)))
    rng.shuffle(order)
    test_works = {works[i].id for i in order[: int(len(works) * test_share)]}
    world.queries = _queries(world, test_works)
    return world


def _queries(world: World, test_works: set[str]) -> list[WorldQuery]:
    person = {p.name: p for p in world.people}
    out: list[WorldQuery] = []
    for w in world.works:
        # "I recall that ..." keeps a space before the name, so the thought spells the name with the
        # same tokens as the query does (a byte-level BPE token at the start of a text has no space)
        by_designer = f"I recall that {w.name} was designed by {w.designer}."
        in_city = f"I recall that {w.name} is in {w.city}."
        others = [x.id for x in world.works if x.designer == w.designer and x.id != w.id]
        same_city = [x.id for x in world.works if x.city == w.city and x.id != w.id]
        two_hop = "test" if w.id in test_works else "train"
        specs = [("designer", f"who designed {w.name}?", by_designer, [w.id], "train"),
                 ("location", f"where is {w.name}?", in_city, [w.id], "train"),
                 ("else", f"what else did the designer of {w.name} build?", by_designer, others, two_hop),
                 ("birthplace", f"where was the designer of {w.name} born?", by_designer,
                  [person[w.designer].id], two_hop)]
        if same_city:
            specs.append(("same_city", f"which other landmarks stand in the same city as {w.name}?", in_city,
                          same_city, two_hop))
        for family, text, bridge, relevant, split in specs:
            if relevant:
                out.append(WorldQuery(f"{family}-{w.id}", text, family, w.id, bridge, relevant, split))
    return out


class WorldExpert:
    """The ``world:`` synthesis backend: an expert that knows the world's facts.

    For each query it writes ``n`` candidates in a seeded order: the right bridge, a bridge naming a
    wrong entity of the same kind (another designer / another city), and generic text (repeated or
    varied for larger ``n``). It answers through the synthesis backend protocol (``start``,
    ``complete``, ``aclose``); the query is read from the last ``Query:`` line of the prompt.
    """

    max_concurrency = 64

    def __init__(self, world: World, *, seed: int = 0) -> None:
        self.world, self.seed = world, seed
        self.name = f"world-expert-{world.seed}"
        self._queries = world._by_text()

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def candidates(self, query_text: str, n: int, seed: int | None = None) -> list[str]:
        q = self._queries.get(query_text)
        if q is None:
            return [GENERIC[0]] * n
        rng = random.Random(f"{self.seed}|{seed}|{query_text}")
        work = next(w for w in self.world.works if w.id == q.work)
        if q.bridge.endswith(f"{work.designer}."):
            wrong = rng.choice([p.name for p in self.world.people if p.name != work.designer])
        else:
            wrong = rng.choice([c for c in self.world.cities if c != work.city])
        right_entity = work.designer if q.bridge.endswith(f"{work.designer}.") else work.city
        pool = [q.bridge, q.bridge.replace(right_entity, wrong), rng.choice(GENERIC)]
        while len(pool) < n:
            pool.append(rng.choice(GENERIC))
        chosen = pool[:n]
        rng.shuffle(chosen)
        return chosen

    async def complete(self, request: Any) -> Any:
        from .synthesis import Completion

        prompt = request.messages[-1]["content"]
        found = re.findall(r"Query:\s*(.+)", prompt)
        query = found[-1].strip() if found else prompt.strip()
        texts = self.candidates(query, request.n, request.seed)
        return Completion(texts=texts, tokens=sum(len(t.split()) for t in texts))


def register_world_backend(world: World) -> None:
    """Make ``world:SEED`` usable as a synthesis expert spec for this world."""
    from .synthesis import register_backend

    register_backend("world", lambda target, options: WorldExpert(world), replace=True)
