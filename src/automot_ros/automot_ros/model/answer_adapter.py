"""The answer adapter: low-rank updates (LoRA) of the UE decoder's attention projections
that act only on the tokens after a context, the question and the answer.

Why only there: the context (frames + instruction) is what the Action Expert reads, and
what the context caches and the engines hold. An adapter on the context tokens would
change every context and so invalidate the trained AE; on the question and answer tokens
it changes how the decoder reads a context and words its answer, and nothing else. So
answering can be trained (``automot train --stage answer``) after the AE, from the same
frozen UE, and a context from any node or engine serves an adapted language node.

Per decoder layer, each of q, k, v, o gets ``W x + up(down(x))``: down [rank, in]
(random init), up [out, rank] (zero init, so an untrained adapter changes nothing).
``DecoderConfig.answer_adapter_rank`` 0 means no adapter.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import DecoderConfig


class LowRank(nn.Module):
    """x [..., d_in] -> up(down(x)) [..., d_out]; zero until trained."""

    def __init__(self, d_in: int, d_out: int, rank: int):
        super().__init__()
        self.down = nn.Linear(d_in, rank, bias=False)
        self.up = nn.Linear(rank, d_out, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class LayerAdapter(nn.Module):
    """One decoder layer's updates: q, k, v read the normed input, o the attention output."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        r, h = cfg.answer_adapter_rank, cfg.hidden
        self.q = LowRank(h, cfg.heads * cfg.head_dim, r)
        self.k = LowRank(h, cfg.kv_heads * cfg.head_dim, r)
        self.v = LowRank(h, cfg.kv_heads * cfg.head_dim, r)
        self.o = LowRank(cfg.heads * cfg.head_dim, h, r)


class AnswerAdapter(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        if cfg.answer_adapter_rank < 1:
            raise ValueError(f"an answer adapter needs answer_adapter_rank >= 1, got {cfg.answer_adapter_rank}")
        self.layers = nn.ModuleList(LayerAdapter(cfg) for _ in range(cfg.layers))


__all__ = ["AnswerAdapter", "LayerAdapter", "LowRank"]
