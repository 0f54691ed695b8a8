"""KV caches the decode loop writes in place: transformers cache layers preallocated, and caches
(preallocated or static) cut back to a length."""

from __future__ import annotations

from typing import Any

import torch

from .fastdecode import StaticDecoder

try:  # transformers >= 4.56 keeps a cache as a list of layers; older versions: no preallocation
    from transformers.cache_utils import DynamicLayer
except ImportError:  # pragma: no cover
    DynamicLayer = None


if DynamicLayer is not None:
    class _GrowingLayer(DynamicLayer):
        """A ``DynamicLayer`` whose keys/values are views of a preallocated buffer, written in place."""

        def reserve(self, extra: int) -> None:
            b, h, t, d = self.keys.shape
            self._k = self.keys.new_empty((b, h, t + extra, d))
            self._v = self.values.new_empty((b, h, t + extra, d))
            self._k[:, :, :t], self._v[:, :, :t] = self.keys, self.values
            self._len = t
            self.keys, self.values = self._k[:, :, :t], self._v[:, :, :t]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            start, stop = self._len, self._len + key_states.shape[-2]
            if stop > self._k.shape[-2]:
                self.reserve(max(stop - start, self._k.shape[-2]))
            self._k[:, :, start:stop], self._v[:, :, start:stop] = key_states, value_states
            self._len = stop
            self.keys, self.values = self._k[:, :, :stop], self._v[:, :, :stop]
            return self.keys, self.values

        def truncate(self, length: int) -> None:
            """Forget the positions from ``length`` on (the next update writes at ``length``)."""
            if not 0 <= length <= self._len:
                raise ValueError(f"cannot truncate a cache layer of {self._len} positions to {length}")
            self._len = length
            self.keys, self.values = self._k[:, :, :length], self._v[:, :, :length]


def _initialized(layer: Any) -> bool:
    """Whether a cache layer holds keys yet (``is_initialized`` from transformers 4.57; before it,
    an empty layer's keys are ``None``)."""
    found = getattr(layer, "is_initialized", None)
    return bool(found) if found is not None else getattr(layer, "keys", None) is not None


def preallocate(cache: Any, extra: int) -> Any:
    """Give each layer of a ``DynamicCache`` room for ``extra`` more positions.

    A ``DynamicCache`` grows by ``torch.cat`` at every step, copying the whole cache each time (about
    a tenth of a decode step on CPU at hidden 512); a preallocated buffer is written in place instead.
    Caches of any other layout (sliding windows, quantised, ...) are returned unchanged.
    """
    layers = getattr(cache, "layers", None)
    if DynamicLayer is None or not layers:
        return cache
    if any(type(layer) is not DynamicLayer or not _initialized(layer) for layer in layers):
        return cache
    for layer in layers:
        layer.__class__ = _GrowingLayer
        layer.reserve(extra)
    return cache


def _can_truncate(cache: Any) -> bool:
    if isinstance(cache, StaticDecoder):
        return True
    layers = getattr(cache, "layers", None)
    return DynamicLayer is not None and bool(layers) and all(isinstance(layer, _GrowingLayer) for layer in layers)


def _truncate(cache: Any, length: int) -> None:
    """Cut a static or preallocated cache back to ``length`` columns."""
    if isinstance(cache, StaticDecoder):
        cache.truncate(length)
    else:
        for layer in cache.layers:
            layer.truncate(length)
