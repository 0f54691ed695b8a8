"""Fingerprints of weights: a short hash that two differently trained models do not share, and that
the dtype or device the weights were loaded with does not change."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def state_fingerprint(state: Any, header: str) -> str:
    """The one weights hash of the library (O1 models, sentence-transformers encoders): ``header``
    (config-like text) and the first 64 values of every tensor of ``state`` (a ``state_dict``),
    taken at bfloat16 precision so the same checkpoint loaded in float32 or bfloat16, on any device,
    hashes the same. Cheap, yet two differently trained models differ."""
    h = hashlib.sha256(header.encode())
    for name, param in state.items():
        sample = param.detach().reshape(-1)[:64]
        if sample.is_floating_point():
            sample = sample.to(torch.bfloat16).float()
        h.update(name.encode())
        h.update(sample.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class FingerprintMixin:
    """:class:`~o1embedder.model.O1Embedder`'s fingerprint (config, tokenizer, settings, weights)."""

    model: Any
    tokenizer: Any
    settings: Any
    _fingerprint_cache: tuple[Any, str] | None

    def fingerprint(self) -> str:
        """A short hash of config, tokenizer, settings and a sample of every weight tensor.

        Cheap (reads at most 64 values per tensor), yet two differently trained models differ. It
        does not depend on the dtype or device the weights were loaded with: the sampled values are
        hashed at bfloat16 precision, which float32 and bfloat16 loads of the same checkpoint share
        exactly (both round to nearest even), and a float16 load is fingerprinted before its cast
        (see :meth:`from_pretrained`). So an index built in bf16 is searched by the same weights
        loaded in float32, and the reverse. The value is cached until a weight changes (tensor
        version counters), so training in place gets a new fingerprint.
        """
        signature = self._weights_signature()
        if self._fingerprint_cache is None or self._fingerprint_cache[0] != signature:
            digest = self._compute_fingerprint()
            identity = self.settings.identity
            same = identity.get("weights_digest") == digest and identity.get("fingerprint")
            self._fingerprint_cache = (signature, identity["fingerprint"] if same else digest)
        return self._fingerprint_cache[1]

    def _weights_signature(self) -> tuple[tuple[int, int], ...]:
        return tuple((p.data_ptr(), p._version) for p in self.model.parameters())

    def _compute_fingerprint(self) -> str:
        h = hashlib.sha256()
        volatile = {"transformers_version", "dtype", "torch_dtype", "architectures", "use_cache",
                    "quantization_config"}
        config = {k: v for k, v in self.model.config.to_dict().items()
                  if not k.startswith("_") and k not in volatile}
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
        h.update(json.dumps(self.settings.template.to_dict(), sort_keys=True).encode())
        h.update(f"{len(self.tokenizer)}|{self.settings.pooling}|{self.settings.normalize}".encode())
        return state_fingerprint(self.model.state_dict(), h.hexdigest())
