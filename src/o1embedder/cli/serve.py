"""``o1emb serve``: an HTTP server - OpenAI-compatible ``/v1/embeddings``, ``/v1/search`` that shows the
model's thoughts, and a search page at ``/``.

Binds 127.0.0.1 by default. Set the API key variable (default ``O1EMB_API_KEY``) to require
``Authorization: Bearer <key>`` on ``/v1/*``. CORS stays off unless ``--cors-origin`` is given.
"""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import add_dtype_option, add_generation_options, generation_overrides


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve embeddings and search over HTTP (with a web page)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="O1 model folder/hub id (default: the one the index names)")
    p.add_argument("--index", default=None, help="dense index folder written by o1emb index (enables search)")
    p.add_argument("--corpus", default=None,
                   help="the index's corpus (BEIR folder or JSONL) for titles/snippets "
                        "(default: INDEX/corpus.jsonl if present)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--model-id", default=None, help="model name in /v1/models (default: the model folder's name)")
    p.add_argument("--api-key-env", default="O1EMB_API_KEY", metavar="VAR",
                   help="environment variable holding the API key (default O1EMB_API_KEY; unset = no key)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow this browser origin (repeatable; default: CORS off)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    add_dtype_option(p)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    limits = p.add_argument_group("limits and batching")
    for flag, kind, help_text in (
            ("--max-batch", int, "texts per model call; 1 = one request at a time (default 32)"),
            ("--max-wait-ms", float, "how long a request waits for others to batch with (default 5)"),
            ("--max-inputs", int, "texts per /v1/embeddings request (default 64)"),
            ("--max-chars", int, "characters per text (default 8192)"),
            ("--max-k", int, "largest k of /v1/search (default 100)"),
            ("--query-cache", int, "reproducible query answers kept in memory (default 4096; 0 = off)")):
        limits.add_argument(flag, type=kind, default=None, help=help_text)
    add_generation_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serving.server import load_components, serve
    from ..serving.settings import ServeSettings

    if args.model is None and args.index is None:
        raise InputError("give --model, --index, or both")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {args.port}")
    think = generation_overrides(args)
    limits = {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "max_inputs": args.max_inputs,
              "max_chars": args.max_chars, "max_k": args.max_k, "query_cache": args.query_cache}
    components = load_components(args.model, args.index, corpus=args.corpus, device=args.device,
                                 dtype=args.dtype, think_overrides=think, threads=args.threads)
    settings = ServeSettings.from_env(args.api_key_env, model_id=args.model_id or components.model_id,
                                      cors_origins=list(args.cors_origin),
                                      **{k: v for k, v in limits.items() if v is not None})
    serve(components, settings, host=args.host, port=args.port, log_level=args.log_level.lower())
    return 0
