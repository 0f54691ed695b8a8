"""Options and helpers shared by several subcommands, and :data:`COMMAND_SETTINGS`: the settings class
of every command configured through :mod:`o1embedder.options` (``--config``, ``--set``, ``--print-config``)."""

from __future__ import annotations

import argparse
from typing import Any

from ..committee.settings import RefineSettings
from ..engines import ENGINE_HELP
from ..evaluation.settings import EvalSettings
from ..pipeline.recipe import Recipe
from ..retrieval.settings import FitPolicySettings, IndexSettings, MineSettings
from ..rl.config import RLConfig
from ..synthesis.settings import SynthesizeSettings
from ..training.config import TrainConfig

COMMAND_SETTINGS: dict[str, type] = {
    "train": TrainConfig, "rl": RLConfig, "synthesize": SynthesizeSettings, "refine": RefineSettings,
    "mine": MineSettings, "index": IndexSettings, "eval": EvalSettings, "pipeline": Recipe, "real": Recipe,
    "fit-policy": FitPolicySettings,
}
"""Command -> its settings dataclass (light: no torch). A setting shared by several commands has one
name, type and set of choices in all of them (tests/test_options.py)."""


def add_model_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--model", required=required, help="O1 model: a local folder, a .gguf file or a hub id")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    add_dtype_option(p)
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model folder's own Python code to run (off by default)")


DTYPE_HELP = ("weights dtype (default auto: bfloat16 on CUDA and on CPUs with native bf16 - AMX / "
              "AVX512-BF16 - else float32)")


def add_dtype_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help=DTYPE_HELP)


def bm25_spec(spec: str, no_stem: bool) -> str:
    """``spec`` with ``--no-stem`` applied (``bm25`` -> ``bm25:nostem``); refused for other models."""
    from ..errors import InputError
    from ..retrieval.encoders import parse_backend

    if not no_stem:
        return spec
    if parse_backend(spec)[0] != "bm25":
        raise InputError(f"--no-stem applies to bm25 only, not to {spec}")
    return "bm25:nostem"


THINK_TITLE = "thinking (defaults: the model's settings; reference 3 / 0.1 / 0.9 / 128)"


def add_generation_options(p: argparse.ArgumentParser, *, embeds: bool = True) -> None:
    g = p.add_argument_group(THINK_TITLE)
    g.add_argument("--n-thoughts", type=int, default=None, help="thoughts sampled per query")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature (0 = greedy)")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    g.add_argument("--max-new-tokens", type=int, default=None, help="thought budget in tokens")
    g.add_argument("--seed", type=int, default=None, help="sampling seed")
    g.add_argument("--repetition-penalty", type=float, default=None,
                   help="as generate's: logits of tokens already in the sequence divided by it; 1 is off, unset the model's")
    g.add_argument("--no-repeat-ngram-size", type=int, default=None, help="as generate's: no n-gram of this size twice; 0 is off, unset the model's")
    g.add_argument("--exit-eps", type=float, default=None,
                   help="early exit: stop a thought once its vector moves less than this between checks; 0 is off")
    g.add_argument("--exit-every", type=int, default=None, help="early exit: tokens between checks")
    g.add_argument("--exit-patience", type=int, default=None, help="early exit: converged checks that stop a thought")
    g.add_argument("--think-engine", default=None, metavar="SPEC",
                   help=ENGINE_HELP)
    if embeds:
        g.add_argument("--plain-weight", type=float, default=None,
                       help="weight of the query's no-thinking vector mixed into its thinking vector; 0 is off")


CONTROL_KEYS = ("repetition_penalty", "no_repeat_ngram_size", "exit_eps", "exit_every", "exit_patience")
"""Thought-control settings of ``ThinkConfig`` (repetition control, early exit) the think options carry."""


def think_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"n": args.n_thoughts, "temperature": args.temperature, "top_p": args.top_p,
            "max_new_tokens": args.max_new_tokens, "seed": args.seed,
            **{k: getattr(args, k) for k in CONTROL_KEYS}}


def load_model(args: argparse.Namespace) -> Any:
    from ..model import O1Embedder

    return O1Embedder.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                      trust_remote_code=args.trust_remote_code)


# -- retrieval and evaluation (index, search, eval, mine) ------------------------------------------

def join_launch(device: str) -> tuple[bool, Any]:
    """Under ``torchrun`` (``WORLD_SIZE > 1``): join the process group and put this rank on its own
    device. Returns (whether this process is the one that writes outputs and prints - rank 0, always
    true in a single process -, the device to load on: this rank's, or ``device`` as the library takes
    it, ``auto`` as ``None``). Torch is not loaded outside a launcher."""
    from .. import distributed
    from ..retrieval.settings import torch_device

    chosen = torch_device(device)
    if distributed.launched_world_size() > 1:
        chosen = distributed.init_from_env(chosen)
    return distributed.is_main_process(), chosen


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """Device/dtype/batch options shared by commands that encode with a retrieval backend."""
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    add_dtype_option(p)
    p.add_argument("--batch-size", type=int, default=32, help="encoding batch size (default 32)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


DEFAULT_MARGIN: Any = object()
"""``--auto-think`` without a value: the library's default margin. An object no typed value can equal
(a number as the sentinel made ``--auto-think -1`` silently mean the default)."""


def add_think_options(p: argparse.ArgumentParser) -> None:
    """``--no-think`` plus the generation options and the thought cache (O1 models only)."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--no-think", action="store_true", help="O1 models: embed queries without thinking")
    add_auto_think(mode)
    add_generation_options(p)
    p.add_argument("--think-share", type=float, default=None, metavar="SHARE",
                   help="with --auto-think and the model's learned policy (o1emb fit-policy): the share of queries "
                        "that think, 0 to 1, calibrated on held-out fitting queries")
    p.add_argument("--think-threshold", type=float, default=None, metavar="P",
                   help="with --auto-think and the model's learned policy: think when the predicted probability "
                        "that thinking helps is at least P, 0 to 1; 0.5 when neither knob is given")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="thought cache folder (default: $O1EMB_CACHE/thoughts or ~/.cache/o1embedder/thoughts)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the thought cache")


def add_auto_think(p: Any) -> None:
    """``--auto-think [MARGIN]`` (on a parser or a group). With a ``think`` settings section it is
    ``think.mode=auto`` and, when given, ``think.margin=MARGIN`` (:func:`auto_think`; without a value
    the margin of the file or ``--set``, else the library's)."""
    p.add_argument("--auto-think", nargs="?", type=float, const=DEFAULT_MARGIN, default=None, metavar="MARGIN",
                   help="O1 models: think only for queries whose no-thinking top-2 score margin is below "
                        "MARGIN (default 0.05; 0 never thinks, inf always)")


def auto_think(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The ``think`` settings of ``cls`` that ``--auto-think [MARGIN]`` gives (``extra`` of
    :func:`options.resolve`); refused together with ``--think``/``--no-think``."""
    from ..errors import InputError
    from ..options import leaves

    margin = getattr(args, "auto_think", None)
    if margin is None:
        return {}
    if any(leaf.key == "think.mode" and hasattr(args, leaf.dest) for leaf in leaves(cls)):
        raise InputError("--auto-think and --think/--no-think: give one of them")
    return {"think.mode": "auto", **({} if margin is DEFAULT_MARGIN else {"think.margin": margin})}


def think_mode(args: argparse.Namespace) -> tuple[bool | str, dict[str, float | None]]:
    """(``think``, its knobs ``auto_margin`` / ``think_share`` / ``think_threshold``) from ``--no-think``,
    ``--auto-think [MARGIN]``, ``--think-share`` and ``--think-threshold``."""
    from ..errors import InputError

    margin = getattr(args, "auto_think", None)
    knobs = {"auto_margin": None if margin is DEFAULT_MARGIN else margin,
             "think_share": getattr(args, "think_share", None), "think_threshold": getattr(args, "think_threshold", None)}
    given = [f"--{k.replace('_', '-')}".replace("--auto-margin", "--auto-think MARGIN")
             for k, v in knobs.items() if v is not None]
    if margin is None:
        if given:
            raise InputError(f"{given[0]} applies to --auto-think only")
        return not args.no_think, knobs
    if len(given) > 1:
        raise InputError(f"give one of --auto-think MARGIN, --think-share and --think-threshold, not {' and '.join(given)}")
    if knobs["auto_margin"] is not None and not knobs["auto_margin"] >= 0:
        raise InputError(f"--auto-think MARGIN must be >= 0, got {margin}")
    return "auto", knobs


def generation_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """ThinkConfig overrides from the generation options (``None`` = the model's default)."""
    return {"n_thoughts": args.n_thoughts, "temperature": args.temperature, "top_p": args.top_p,
            "max_new_tokens": args.max_new_tokens, "seed": args.seed, **{k: getattr(args, k) for k in CONTROL_KEYS},
            "plain_weight": getattr(args, "plain_weight", None), "engine": getattr(args, "think_engine", None)}


def cache_dir(args: argparse.Namespace) -> Any:
    """``False`` (no cache), a folder, or ``None`` (the default folder)."""
    return False if args.no_cache else args.cache


def progress(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "no_progress", False) else None
