"""The CLI's logging set-up survives repeated in-process runs and keeps records visible to callers."""

from __future__ import annotations

import io
import logging
import sys

from o1embedder.log import get_logger, setup_logging


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
