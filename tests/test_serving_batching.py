"""The micro-batcher on its own: gathering, bounds, grouping by key, routing, failure isolation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from o1embedder.serving.batching import MicroBatcher, Overloaded


class Recorder:
    """A runner that doubles numbers, records each call, and fails on a negative item."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[object, list[int]]] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s

    def __call__(self, key: object, items: list[int]) -> list[int]:
        self.calls.append((key, list(items)))
        self.threads.add(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        if any(i < 0 for i in items):
            raise ValueError("negative item")
        return [2 * i for i in items]


async def _submit_all(batcher: MicroBatcher, jobs: list[tuple[object, list[int]]]) -> list[object]:
    return await asyncio.gather(*(batcher.submit(k, items) for k, items in jobs), return_exceptions=True)


def test_concurrent_jobs_share_one_call_and_get_their_own_results() -> None:
    runner = Recorder()
    batcher = MicroBatcher(runner, max_size=64, max_wait_s=0.2)
    jobs = [("k", [i, 100 + i]) for i in range(8)]
    results = asyncio.run(_submit_all(batcher, jobs))
    batcher.stop()
    assert results == [[2 * i, 200 + 2 * i] for i in range(8)]
    assert len(runner.calls) == 1 and len(runner.calls[0][1]) == 16
    assert runner.threads == {"o1emb-model"}
    assert batcher.stats.to_dict()["mean_items_per_call"] == 16


def test_batches_are_bounded_in_size_and_never_split_a_request() -> None:
    runner = Recorder()
    batcher = MicroBatcher(runner, max_size=5, max_wait_s=0.2)
    jobs = [("k", [i, i, i]) for i in range(4)] + [("k", list(range(7)))]    # 7 > max_size: alone
    results = asyncio.run(_submit_all(batcher, jobs))
    batcher.stop()
    assert results[4] == [2 * i for i in range(7)]
    sizes = sorted(len(items) for _, items in runner.calls)
    assert sizes == [3, 3, 3, 3, 7]           # 3 + 3 > 5: every 3-item request goes alone
    assert batcher.stats.largest_batch == 7


def test_the_wait_is_bounded() -> None:
    runner = Recorder()
    batcher = MicroBatcher(runner, max_size=32, max_wait_s=0.05)
    start = time.perf_counter()
    assert asyncio.run(batcher.submit("k", [1])) == [2]
    waited = time.perf_counter() - start
    batcher.stop()
    assert waited < 1.0, waited                # a lone request waits ~50 ms, not for a full batch


def test_different_keys_do_not_share_a_call() -> None:
    runner = Recorder()
    batcher = MicroBatcher(runner, max_size=64, max_wait_s=0.2)
    jobs = [("think", [1]), ("plain", [2]), ("think", [3]), ("plain", [4]), (("think", 2), [5])]
    results = asyncio.run(_submit_all(batcher, jobs))
    batcher.stop()
    assert results == [[2], [4], [6], [8], [10]]
    assert sorted((str(k), items) for k, items in runner.calls) == [
        ("('think', 2)", [5]), ("plain", [2, 4]), ("think", [1, 3])]


def test_a_failing_request_fails_alone() -> None:
    runner = Recorder()
    batcher = MicroBatcher(runner, max_size=64, max_wait_s=0.2)
    results = asyncio.run(_submit_all(batcher, [("k", [1]), ("k", [-1]), ("k", [3])]))
    batcher.stop()
    assert results[0] == [2] and results[2] == [6]
    assert isinstance(results[1], ValueError)
    assert batcher.stats.retried_alone == 3


def test_queue_is_bounded() -> None:
    runner = Recorder(delay_s=0.3)
    batcher = MicroBatcher(runner, max_size=2, max_wait_s=0.0, max_queue=4)

    async def flood() -> list[object]:
        return await _submit_all(batcher, [("k", [1, 1]), ("k", [1, 1]), ("k", [1])])

    results = asyncio.run(flood())
    batcher.stop()
    assert sum(isinstance(r, Overloaded) for r in results) == 1
    assert asyncio.run(_submit_all(batcher, [("k", [1, 1])])) == [[2, 2]]    # room again afterwards
    batcher.stop()


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_size=0)
