"""From folders to a running server: load the model, index and corpus, check they belong together,
build the app and run it under uvicorn (one process: the model is loaded once)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..log import get_logger
from .settings import ServeSettings

logger = get_logger(__name__)
CORPUS_NAMES = ("corpus.jsonl", "corpus.jsonl.gz")


@dataclass
class Components:
    """What ``create_app`` needs, loaded and checked."""

    model: Any
    index: Any | None
    corpus: dict[str, dict[str, str]] | None
    model_id: str


def _model_spec(model: str | None, manifest: dict[str, Any] | None) -> str:
    from ..retrieval.encoders import parse_backend

    spec = model or (manifest or {}).get("model")
    if not spec:
        raise InputError("give --model, or --index with a manifest that names its model")
    kind, path = parse_backend(spec)
    if kind != "o1":
        raise InputError(f"serve needs an O1 model; {spec!r} is a {kind} backend")
    return path


def _find_corpus(corpus: str | Path | None, index_dir: Path) -> Path | None:
    if corpus is not None:
        return Path(corpus)
    return next((index_dir / n for n in CORPUS_NAMES if (index_dir / n).is_file()), None)


def load_components(model: str | None = None, index_dir: str | Path | None = None, *,
                    corpus: str | Path | None = None, device: Any = None, dtype: Any = None,
                    think_overrides: dict[str, Any] | None = None, threads: int | None = None) -> Components:
    """Load the O1 model (``model``, or the one the index manifest names), the dense index, and the
    corpus texts for titles/snippets (``corpus``, or ``INDEX_DIR/corpus.jsonl`` when present).

    The index must have been built by this model (fingerprint) over this corpus (fingerprint).
    ``threads`` sets torch's CPU threads (on a busy machine, fewer threads than cores avoids
    OpenMP spin-waiting).
    """
    from ..engines import apply_think_options
    from ..model import O1Embedder
    from ..retrieval.encoders import O1Encoder
    from ..retrieval.index import check_corpus, check_encoder, load_index, read_manifest

    manifest = read_manifest(index_dir) if index_dir is not None else None
    if manifest is not None and manifest["kind"] != "dense":
        raise InputError(f"serve needs a dense index of an O1 model; {index_dir} is a {manifest['kind']} index")
    if corpus is not None and index_dir is None:
        raise InputError("--corpus gives the texts of an index's documents; give --index too")
    path = _model_spec(model, manifest)
    if threads is not None:
        import torch

        if threads < 1:
            raise InputError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    loaded = O1Embedder.from_pretrained(path, device=device, dtype=dtype)
    loaded.settings.think = apply_think_options(loaded, think_overrides)   # and who writes the thoughts
    if loaded.decode == "compiled":   # compile the step for the served k now, not in the first request
        logger.info("compiling the one-query decode step (--think-engine one-pass-compiled) before serving")
        loaded.think(["warm-up"], max_new_tokens=2, show_progress=False)
    index = texts = None
    if manifest is not None and index_dir is not None:
        check_encoder(manifest, O1Encoder(loaded, path=path, cache_dir=False))
        index = load_index(index_dir)
        found = _find_corpus(corpus, Path(index_dir))
        if found is None:
            logger.warning("no corpus texts for %s: search results show ids and scores only (use --corpus)",
                           index_dir)
        else:
            from ..formats import read_corpus

            texts = read_corpus(found)
            check_corpus(manifest, texts)
    return Components(loaded, index, texts, Path(path.rstrip("/")).name or "o1embedder")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(components: Components, settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "info") -> None:
    """Build the app and run it until interrupted (blocking)."""
    import uvicorn

    from .app import create_app

    if not is_loopback(host) and settings.api_key is None:
        logger.warning("serving on %s without an API key: anyone who can reach this port can use the model",
                       host)
    app = create_app(components.model, index=components.index, corpus=components.corpus, settings=settings)
    logger.info("serving %s on http://%s:%d (page at /, API at /v1, docs at /docs)",
                settings.model_id, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1, access_log=False)
