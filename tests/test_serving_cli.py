"""``o1emb serve``: loading and checking model + index + corpus, the error convention, and a real
process with the API key taken from the environment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from live_server import DOCS, build_small_index, cli_server  # noqa: E402
from test_serving_api import BAD_REQUESTS, KEY  # noqa: E402

from o1embedder.cli import main  # noqa: E402
from o1embedder.errors import IndexMismatchError  # noqa: E402
from o1embedder.serving.server import is_loopback, load_components  # noqa: E402


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, tiny_qwen_path: Path) -> Path:
    return build_small_index(tiny_qwen_path, tmp_path_factory.mktemp("serve") / "index")


def test_components_come_from_the_index_folder(small_index: Path, tiny_qwen_path: Path) -> None:
    parts = load_components(None, small_index, device="cpu", think_overrides={"n_thoughts": 1})
    assert parts.model_id == tiny_qwen_path.name and len(parts.index) == len(DOCS)
    assert parts.corpus == DOCS and parts.model.settings.think.n_thoughts == 1


def test_a_changed_corpus_is_refused(small_index: Path, tmp_path: Path) -> None:
    other = tmp_path / "corpus.jsonl"
    other.write_text(json.dumps({"_id": "x", "title": "", "text": "something else"}) + "\n")
    with pytest.raises(IndexMismatchError, match="another corpus"):
        load_components(None, small_index, corpus=other, device="cpu")


@pytest.mark.parametrize("args, message", [
    ([], "give --model, --index"),
    (["--model", "bm25"], "needs an O1 model"),
    (["--model", "st:whatever"], "needs an O1 model"),
])
def test_bad_options_exit_2_with_one_line(args: list[str], message: str, capsys) -> None:
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_serve_process_with_api_key_from_the_environment(small_index: Path, tmp_path: Path) -> None:
    """A real ``o1emb serve`` with the tiny model: key from the environment, search with texts, and
    the bad-request table of test_serving_api over loopback (4xx each, no 5xx)."""
    args = ("--index", str(small_index), "--api-key-env", "MY_KEY", "--model-id", "fake-o1",
            "--n-thoughts", "1", "--max-new-tokens", "6", "--threads", "1",
            "--max-inputs", "8", "--max-chars", "200", "--max-k", "20")
    auth = {"Authorization": f"Bearer {KEY}"}
    with cli_server(*args, env={"MY_KEY": KEY}, log=tmp_path / "server.log") as (url, _):
        health = httpx.get(url + "/healthz").json()
        assert health["auth"] is True and health["model"] == "fake-o1" and health["index"]["has_texts"]
        assert httpx.get(url + "/v1/models").status_code == 401
        answer = httpx.post(url + "/v1/search", json={"query": "tokyo tower", "k": 3}, headers=auth,
                            timeout=60).json()
        statuses = {}
        with httpx.Client(base_url=url, timeout=60) as client:
            for name, method, path, body, headers, _status in BAD_REQUESTS:
                headers = auth if headers is None else headers
                kwargs = {"content": body, "headers": {**headers, "Content-Type": "application/json"}} \
                    if isinstance(body, bytes) else {"json": body, "headers": headers}
                response = client.request(method.upper(), path, **kwargs)
                statuses[name] = (response.status_code, response.json()["error"]["message"])
    assert len(answer["thoughts"]) == 1 and len(answer["results"]) == 3
    assert all(h["title"] == DOCS[h["id"]]["title"] for h in answer["results"])
    expected = {c[0]: c[5] for c in BAD_REQUESTS}
    assert {n: s for n, (s, _) in statuses.items()} == expected
    assert all(400 <= s < 500 and m for s, m in statuses.values())
