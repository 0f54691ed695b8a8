"""Acceptance 2: headless Chromium loads the page of ``o1emb serve --index INDEX``, searches, and
sees the thoughts and the ranked documents; screenshots go to ``artifacts/serving/``.

The index is ``$O1EMB_BROWSER_INDEX`` when set (e.g. the output of ``o1emb demo``; its manifest
names the model), else a small index of the tiny model built here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sys.path.insert(0, str(Path(__file__).parent / "browser"))
from chrome import Chrome, artifacts_dir, require_browser  # noqa: E402
from live_server import build_small_index, cli_server  # noqa: E402

QUERY = "who designed tokyo tower?"


@pytest.fixture(scope="module")
def browser() -> tuple[str, str]:
    return require_browser()                 # first: skip before building anything


@pytest.fixture(scope="module")
def index_dir(browser: tuple[str, str], request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("O1EMB_BROWSER_INDEX")
    if given:
        return Path(given)
    model = request.getfixturevalue("tiny_qwen_path")         # only now: a skip costs nothing
    return build_small_index(model, tmp_path_factory.mktemp("browser") / "index")


def _search(driver, query: str, *, compare: bool, columns: int) -> list:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = driver.find_element(By.ID, "query")
    box.clear()
    box.send_keys(query)
    checkbox = driver.find_element(By.ID, "compare")
    if checkbox.is_selected() != compare:
        checkbox.click()
    body = driver.find_element(By.TAG_NAME, "body")
    before = body.get_attribute("data-searches")
    driver.find_element(By.ID, "search-button").click()
    WebDriverWait(driver, 120).until(lambda d: body.get_attribute("data-searches") != before)
    status = driver.find_element(By.ID, "status")
    assert "error" not in (status.get_attribute("class") or ""), status.text
    found = driver.find_elements(By.CSS_SELECTOR, ".column")
    assert len(found) == columns
    return found


def test_page_searches_and_shows_thoughts_and_results(browser: tuple[str, str], index_dir: Path,
                                                      tmp_path: Path) -> None:
    chromium, driver_path = browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = artifacts_dir()
    server = cli_server("--index", str(index_dir), "--n-thoughts", "2", "--max-new-tokens", "12",
                        log=tmp_path / "server.log")
    with server as (url, _), Chrome(chromium, driver_path) as driver:
        driver.get(url + "/")
        WebDriverWait(driver, 30).until(lambda d: "documents" in d.find_element(By.ID, "server").text)
        (column,) = _search(driver, QUERY, compare=False, columns=1)
        thoughts = column.find_elements(By.CSS_SELECTOR, ".thoughts li.thought")
        results = column.find_elements(By.CSS_SELECTOR, ".result")
        assert column.get_attribute("data-think") == "true" and len(thoughts) == 2
        assert 1 <= len(results) <= 10
        scores = [float(r.find_element(By.CSS_SELECTOR, ".score").text) for r in results]
        assert scores == sorted(scores, reverse=True)
        assert all(r.find_element(By.CSS_SELECTOR, ".doc-id").text for r in results)
        assert any(r.find_element(By.CSS_SELECTOR, ".title").text for r in results)   # texts from corpus.jsonl
        driver.save_screenshot(str(out / "search_think.png"))

        think_on, think_off = _search(driver, QUERY, compare=True, columns=2)
        assert think_on.get_attribute("data-think") == "true"
        assert think_off.get_attribute("data-think") == "false"
        assert "thinking off" in think_off.find_element(By.CSS_SELECTOR, ".thoughts").text
        assert think_off.find_elements(By.CSS_SELECTOR, ".result")
        driver.save_screenshot(str(out / "search_compare.png"))
    assert (out / "search_think.png").stat().st_size > 5000
    assert (out / "search_compare.png").stat().st_size > 5000
