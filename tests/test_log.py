"""The CLI's logging set-up survives repeated in-process runs and keeps records visible to callers;
``quiet`` silences a logger for one block only."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from o1embedder.log import get_logger, quiet, setup_logging


def test_setup_logging_follows_stderr_and_propagates(monkeypatch, caplog):
    setup_logging(logging.INFO)
    setup_logging(logging.INFO)                     # idempotent: one handler
    logger = get_logger("probe")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logger.warning("one")
    first.close()                                   # a closed capture stream must not break logging
    monkeypatch.setattr(sys, "stderr", second)
    with caplog.at_level(logging.INFO, logger="o1embedder"):
        logger.warning("two")
    assert "two" in second.getvalue() and "one" not in second.getvalue()
    assert "two" in caplog.text                     # propagation: callers' handlers see our records
    handlers = [h for h in logging.getLogger("o1embedder").handlers if type(h).__name__ == "_StderrHandler"]
    assert len(handlers) == 1


def test_quiet_restores_the_level_it_found():
    logger = logging.getLogger("o1embedder-test.noisy")
    logger.setLevel(logging.INFO)
    with quiet("o1embedder-test.noisy"):
        assert logger.level == logging.ERROR
        assert not logger.isEnabledFor(logging.WARNING)
    assert logger.level == logging.INFO
    with pytest.raises(RuntimeError), quiet("o1embedder-test.noisy", logging.CRITICAL):
        raise RuntimeError("the level comes back on an exception too")
    assert logger.level == logging.INFO
    with quiet("o1embedder-test.noisy"):
        logger.setLevel(logging.DEBUG)              # set inside the block: left as set
    assert logger.level == logging.DEBUG


def test_quiet_transformers_restores_its_verbosity():
    hf_logging = pytest.importorskip("transformers.utils.logging")
    before = hf_logging.get_verbosity()
    with quiet("transformers"):
        assert hf_logging.get_verbosity() == logging.ERROR
    assert hf_logging.get_verbosity() == before
