"""Thinking and embedding on the same KV cache.

The reference code generates a thought, decodes it to text, re-tokenises prompt + thought and runs
the model a second time to read the hidden state at ``<emb>``. Here generation keeps its KV cache and,
once a row has produced EOS (or run out of budget, in which case EOS is appended), ``<emb>`` is fed
as one more step at the right position: the vector is the same as re-encoding (to float tolerance)
and the query side is not paid for twice.

Padding: prompts are left-padded. A row that has finished keeps receiving pad tokens while others
generate; those slots get attention-mask 0 and do not advance the row's position ids, so the row's
real tokens see exactly the context of an unpadded ``prompt + thought + EOS + <emb>`` sequence.

Thoughts that stop when they are done (``ThinkConfig``, off by default): repetition control with
``generate``'s meaning (:mod:`.repetition`) and early exit once the vector converges (:mod:`.earlyexit`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from . import earlyexit, repetition
from .fastdecode import StaticDecoder, unsupported_reason
from .kvcache import DynamicLayer, _can_truncate, _truncate, preallocate
from .onequery import MAX_ROWS, OneQueryStep, capacity_for
from .padding import left_pad, pad_multiple_for, positions_from_mask  # noqa: F401 (re-exported)
from .sampling import row_noise, sample_next  # noqa: F401 (re-exported)
from .settings import ThinkConfig

if DynamicLayer is not None:  # transformers >= 4.56 (see kvcache)
    from .kvcache import _GrowingLayer  # noqa: F401 (re-exported)

DECODE_MODES = ("auto", "static", "fast", "compiled", "generic")


CHECK_EVERY = 8
"""Decode steps between two reads of the loop's flags on an accelerator (see the comment below)."""

# How often the decode loop reads its flags back to the host: whether every row is done (the loop
# ends) and whether some row is (static steps need the attention mask from then on). On a GPU a read
# waits until every queued kernel has run, so reading each step (as ``while not done.all()`` did)
# drains the launch queue at every token. The loop reads once per CHECK_EVERY steps instead, and
# takes back what it ran past the point where a read every step would have changed its course
# (cache length, mask columns, step list), so thoughts and vectors are the same as reading every step:
# - steps run after every row had finished (at most CHECK_EVERY - 1, all rows fed masked pads) are cut;
# - in a batch without padding, one-token static steps pass no attention mask until some row finishes
#   (the kernel, and so the rounding, that transformers uses then); the steps run mask-free after that
#   point (at most CHECK_EVERY - 1, once per batch) are computed again with the mask.
# The price is those steps: 8 against thoughts of a few dozen tokens. The alternative, a non-blocking
# copy of the flags to pinned host memory read one step late, wastes at most one step, but the host
# then waits every step for the previous step's copy (it runs at most one step ahead of the device),
# or, polling the copy instead, runs a number of steps that depends on timing; it also needs
# device-specific code (events, pinned buffers). On a CPU a read waits for nothing (operations run as
# they are called), so there the loop reads every step and wastes none: CPU runs are unchanged.


@dataclass
class ThinkResult:
    """Per sampled row (query-major: query i's samples are rows i*n .. i*n+n-1)."""

    thought_ids: list[list[int]]
    """Generated thought ids, EOS excluded."""
    hit_budget: list[bool]
    """True where the budget ran out and EOS was appended."""
    vectors: torch.Tensor | None
    """[B*n, H] hidden states at ``<emb>`` (not normalised); ``None`` when not asked for."""
    lengths: list[int] = field(default_factory=list)
    """Generated thought tokens per row (EOS excluded): ``len(thought_ids[row])``."""
    stopped: list[bool] = field(default_factory=list)
    """True where early exit stopped the thought (``exit_eps``): its vector has EOS appended, as where the
    budget ran out, but ``hit_budget`` is False."""


class _State(NamedTuple):
    """The decode loop's per-row state after a step (tensors on the device)."""

    hidden: torch.Tensor
    """[B*n, H] the last fed position's hidden state."""
    next_pos: torch.Tensor
    """[B*n] the position id of a row's next real token."""
    count: torch.Tensor
    """[B*n] thought tokens generated (EOS excluded)."""
    done: torch.Tensor
    """[B*n] finished rows (EOS, budget or early exit)."""
    saw_eos: torch.Tensor
    """[B*n] rows that produced EOS."""
    exit: earlyexit.ExitState | None = None
    """Early-exit state (``None``: off)."""


def _first_done(unread: list[_State], taken: int) -> tuple[int | None, int | None]:
    """After how many steps some row, and every row, was first done, among the steps not read yet
    (``unread``, ending at step ``taken``); ``None`` where not yet. One read back to the host."""
    dones = torch.stack([state.done for state in unread])                         # [m, B*n]
    flags = torch.stack([dones.any(1), dones.all(1)], dim=1).tolist()
    first = taken - len(unread) + 1
    some = next((first + k for k, (one, _) in enumerate(flags) if one), None)
    ended = next((first + k for k, (_, every_row) in enumerate(flags) if every_row), None)
    return some, ended


class Thinker:
    """Runs the generation loop for a decoder + LM head and the special ids of a template.

    The head is called once per step, for all rows, in step order, except on an accelerator
    (``check_every > 1``, see :data:`CHECK_EVERY`): there steps run after every row has finished are
    taken back, and steps run without the mask after the first row finished are computed again, so
    a head that counts its calls may see more calls than steps once some row has finished.
    """

    def __init__(self, decoder: Any, lm_head: Any, *, eos_id: int, emb_id: int, pad_id: int,
                 pad_multiple: int = 1, decode: str = "auto", check_every: int | None = None) -> None:
        """``decode``: ``"static"`` steps through :class:`~.fastdecode.StaticDecoder` (a static KV cache,
        the layers called directly; an error for a decoder it does not support), ``"fast"`` the same with
        the faster attention kernel (``exact=False``: rounding differs from the generic path's) and, for
        one query (k <= 4 samples) in bf16 on a CPU, :class:`~.onequery.OneQueryStep`'s fused float16
        products, ``"compiled"`` as ``"fast"`` with that one-query step under ``torch.compile``,
        ``"generic"`` through the decoder's own forward and a transformers cache, ``"auto"`` (default)
        static where supported.

        ``check_every``: decode steps between two reads of the loop's flags on the host (``None``: 1
        on a CPU, :data:`CHECK_EVERY` elsewhere); more than 1 also makes sampling read nothing back
        (``sample_next(sync_free=True)``). Outputs do not depend on it."""
        self.decoder, self.lm_head = decoder, lm_head
        self.eos_id, self.emb_id, self.pad_id = eos_id, emb_id, pad_id
        self.pad_multiple = pad_multiple
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {', '.join(DECODE_MODES)}, got {decode!r}")
        if check_every is not None and (not isinstance(check_every, int) or check_every < 1):
            raise ValueError(f"check_every must be a positive integer or None, got {check_every!r}")
        reason = unsupported_reason(decoder) if decode != "generic" else "generic asked"
        if decode in ("static", "fast", "compiled") and reason:
            raise ValueError(f"static decoding is not supported for this decoder: {reason}")
        self.static = reason is None
        self.exact = decode not in ("fast", "compiled")
        self.compile = decode == "compiled"
        self.check_every = check_every
        # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name still works, with a warning)
        self._cache_arg = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"

    def _step(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any,
              all_valid: bool = False) -> tuple[Any, torch.Tensor]:
        """One decoder call -> (the cache, the last position's hidden state [B, H]).

        ``all_valid``: every column of ``mask`` is 1 (static one-token steps then pass no mask)."""
        if isinstance(cache, StaticDecoder):
            return cache, cache.step(ids, mask, pos, all_valid=all_valid)
        out = self.decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                           **{self._cache_arg: cache})
        return getattr(out, self._cache_arg), out.last_hidden_state[:, -1]

    @torch.inference_mode()
    def run(self, prompts: Sequence[Sequence[int]], budgets: Sequence[int], cfg: ThinkConfig,
            keys: torch.Tensor, *, embed: bool = True) -> ThinkResult:
        """Think ``cfg.n_thoughts`` times per prompt; ``budgets[i]`` caps prompt i's thought length.

        ``keys`` [B*n] are the per-sample random keys (see :func:`~.sampling.row_noise`).
        """
        device = next(self.decoder.parameters()).device
        n = cfg.n_thoughts
        ids, mask = left_pad(prompts, self.pad_id, device, self.pad_multiple)
        padded = any(len(p) < ids.shape[1] for p in prompts)
        cache, hidden = self._step(ids, mask, positions_from_mask(mask), None)       # hidden [B, H]
        extra = max(budgets, default=0) + 2
        if self.static:  # the prefill's cache copied (n times per query) into a static one
            one = None if self.exact or len(prompts) != 1 or n > MAX_ROWS else OneQueryStep.for_decoder(self.decoder, self.lm_head)
            cache = StaticDecoder.from_cache(self.decoder, cache, repeat=n, extra=extra, exact=self.exact,
                                             capacity=capacity_for(ids.shape[1] + extra) if one else None)
            cache.onequery, cache.compiled = one, self.compile
        elif n > 1:  # prefill once per query, then copy the cache for each sample
            cache.batch_repeat_interleave(n)
        if n > 1:
            hidden, mask = hidden.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
        if not self.static:
            cache = preallocate(cache, extra)
        rows = hidden.shape[0]
        keys = keys.to(device)
        budget = torch.tensor(budgets, device=device).repeat_interleave(n)         # [B*n]
        every = self.check_every or (1 if device.type == "cpu" else CHECK_EVERY)   # see CHECK_EVERY
        if every > 1 and not _can_truncate(cache):
            every = 1   # steps run past the end could not be taken back out of this cache
        # Whether every mask column is 1, known on the host: no prompt padding, no row done from the
        # start, and (found at the reads) no row finished yet; see CHECK_EVERY.
        all_valid = self.static and not padded and min(budgets, default=0) > 0
        exiting = earlyexit.active(cfg)
        if exiting and not _can_truncate(cache):
            raise ValueError("early exit (exit_eps > 0) needs a KV cache that can be cut back; this decoder's "
                             "cache cannot")
        state = _State(hidden, mask.sum(-1), torch.zeros(rows, dtype=torch.long, device=device),
                       budget <= 0, torch.zeros(rows, dtype=torch.bool, device=device),
                       earlyexit.start(hidden) if exiting else None)
        start = mask.shape[1]                                # cache columns before the first step
        limit = max(max(budgets, default=0), 0)              # every row is done after this many steps
        # the token history of each row, aligned with the mask columns (written in place: the columns a
        # take-back forgets are written again before they are read)
        seen = repetition.history(ids.repeat_interleave(n, 0), mask, limit) if repetition.active(cfg) else None
        steps: list[torch.Tensor] = []
        unread: list[_State] = []                            # states after the steps not read yet
        while len(steps) < limit:
            hidden, next_pos, count, done, saw_eos, exit_state = state
            logits = (cache.logits(self.lm_head, hidden) if isinstance(cache, StaticDecoder)
                      else self.lm_head(hidden)).float()                           # [B*n, V]
            if seen is not None:
                logits = repetition.control(logits, seen[:, :start + len(steps)], cfg)
            token = sample_next(logits, cfg.temperature, cfg.top_p, keys, len(steps), sync_free=every > 1)
            token = torch.where(done, torch.full_like(token, self.pad_id), token)
            live = ~done
            if seen is not None:
                seen[:, start + len(steps)] = torch.where(live, token, -1)
            steps.append(torch.where(live & (token != self.eos_id), token, -1))
            mask = torch.cat([mask, live.long()[:, None]], dim=1)
            cache, hidden = self._step(token[:, None], mask, next_pos[:, None], cache, all_valid)
            is_eos = live & (token == self.eos_id)
            next_pos, count = next_pos + live.long(), count + (live & ~is_eos).long()
            saw_eos = saw_eos | is_eos
            state = _State(hidden, next_pos, count, done | is_eos | (count >= budget), saw_eos, exit_state)
            taken = len(steps)
            if exiting and earlyexit.is_check(taken, cfg) and taken < limit:
                state = self._check_exit(state, mask, cache, cfg, first=taken == cfg.exit_every)
            unread.append(state)
            if taken % every and taken < limit:
                continue
            some, ended = _first_done(unread, taken)          # the one host read per `every` steps
            first = taken - len(unread) + 1                                        # steps taken at unread[0]
            back, redo = None, False
            if all_valid and some is not None:
                all_valid = False   # a row has finished: from its next step on, its columns are masked
                redo = some < taken and ended != some   # steps after `some` ran without the mask: redo them
                back = some if redo else None
            if not redo and ended is not None and ended < taken:  # the loop ends after `ended`: cut the rest
                back = ended
            if back is not None:
                state, steps, mask = unread[back - first], steps[:back], mask[:, :start + back]
                _truncate(cache, start + back)
            if not redo and ended is not None:
                break
            unread = []
        table = torch.stack(steps, dim=1).tolist() if steps else [[] for _ in range(rows)]  # [B*n, S]
        thought_ids = [[t for t in row if t >= 0] for row in table]
        appended = ~state.saw_eos                            # rows that get EOS appended
        if state.exit is not None:
            appended = appended & ~state.exit.stopped
        vectors = self._feed_emb(mask, state.next_pos, appended, cache) if embed else None
        stopped = [False] * rows
        if state.exit is not None:
            if vectors is not None:   # a stopped row's vector: the side vector of the check that stopped it
                vectors = torch.where(state.exit.stopped[:, None], state.exit.final, vectors)
            stopped = state.exit.stopped.tolist()
        return ThinkResult(thought_ids, appended.tolist(), vectors, [len(t) for t in thought_ids], stopped)

    def _check_exit(self, state: _State, mask: torch.Tensor, cache: Any, cfg: ThinkConfig, *,
                    first: bool) -> _State:
        """One early-exit check (:mod:`.earlyexit`): every row's vector if its thought were cut here, from
        ``[EOS, <emb>]`` fed on the side and cut back out of the cache; rows that converged stop."""
        assert state.exit is not None
        side = self._feed_emb(mask, state.next_pos, torch.ones_like(state.done), cache)
        _truncate(cache, mask.shape[1])
        exit_state = earlyexit.update(state.exit, side, ~state.done, first, cfg)
        return state._replace(done=state.done | exit_state.stopped, exit=exit_state)

    def _feed_emb(self, mask: torch.Tensor, next_pos: torch.Tensor, need_eos: torch.Tensor,
                  cache: Any) -> torch.Tensor:
        """Feed ``[EOS if the budget ran out else pad(masked), <emb>]``; return the state at ``<emb>``."""
        rows = mask.shape[0]
        first = torch.where(need_eos, self.eos_id, self.pad_id)
        ids = torch.stack([first, torch.full_like(first, self.emb_id)], dim=1)       # [B*n, 2]
        step_mask = torch.stack([need_eos.long(), torch.ones(rows, dtype=torch.long,
                                                             device=mask.device)], dim=1)
        pos = torch.stack([next_pos, next_pos + need_eos.long()], dim=1)
        return self._step(ids, torch.cat([mask, step_mask], dim=1), pos, cache)[1]
