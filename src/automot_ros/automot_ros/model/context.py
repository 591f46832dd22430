"""ContextCache: the Understanding Expert's per-layer K/V over frames + prompt, read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class ContextCache:
    """A UE context. Immutable: the AE and the answer decoder only read ``kv``.

    kv: float [layers, 2 (K, V), kv_heads, tokens, head_dim], K after RoPE. This is also the
        shared-memory slot layout, so a runtime wraps what it maps with ``from_kv``, no copy.
    num_tokens: tokens in the context (= kv.shape[3]); positions 0..num_tokens-1.
    next_position: first position free for AE / answer tokens (= num_tokens).
    model_id: identifies the config and weights that computed it; ``act``/``answer`` refuse
        a context from another model.
    """

    kv: torch.Tensor
    num_tokens: int
    next_position: int
    model_id: str

    @classmethod
    def from_kv(cls, kv: torch.Tensor, model_id: str,
                next_position: Optional[int] = None) -> "ContextCache":
        if not isinstance(kv, torch.Tensor) or kv.ndim != 5 or kv.shape[1] != 2:
            raise ValueError("context kv must be a tensor [layers, 2, kv_heads, tokens, head_dim], "
                             f"got {getattr(kv, 'shape', type(kv))}")
        if not kv.is_floating_point():
            raise ValueError(f"context kv must be floating point, got {kv.dtype}")
        tokens = kv.shape[3]
        if next_position is not None and next_position != tokens:
            # The AE derives its positions from the token count (ONNX-friendly), so a
            # context must be contiguous from position 0.
            raise ValueError(f"context next_position {next_position} != its token count {tokens}")
        return cls(kv=kv, num_tokens=tokens, next_position=tokens, model_id=str(model_id))
