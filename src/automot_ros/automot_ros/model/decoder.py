"""The Understanding Expert's causal decoder: token embeddings, one ``ExpertBlock`` per
layer, final norm and (tied) LM head, run over a preallocated per-layer K/V buffer."""

from __future__ import annotations

import time
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .config import DecoderConfig
from .layers import ExpertBlock, RMSNorm, Rotary, attend, causal_mask


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.hidden)
        self.blocks = nn.ModuleList(
            ExpertBlock(cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.mlp,
                        cfg.qk_norm, cfg.norm_eps) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        self.rotary = Rotary(cfg.head_dim, cfg.rope_base)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., hidden] (after the final norm) -> [..., vocab]."""
        weight = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return hidden @ weight.T

    def empty_cache(self, tokens: int, like: torch.Tensor) -> torch.Tensor:
        """A K/V buffer [layers, 2, kv_heads, tokens, head_dim] (the ContextCache layout)."""
        c = self.cfg
        return like.new_empty(c.layers, 2, c.kv_heads, tokens, c.head_dim)

    def _layers(self, x: torch.Tensor, start: int, keys_values: Callable, kv_only: bool = False,
                adapter=None) -> Optional[torch.Tensor]:
        """The layer loop every pass shares. x [B, L, hidden] embeddings at positions
        start..start+L-1; ``keys_values(i, k, v)`` gets layer i's K/V of these tokens (k, v
        [B, kv_heads, L, head_dim]) and returns the keys and values they attend to (cached
        or context tokens first, then these); ``kv_only``: stop after the last layer's K/V
        (a context needs nothing else); ``adapter``: an ``AnswerAdapter`` for these tokens.
        Returns the normed final hidden states [B, L, hidden], or None with ``kv_only``."""
        n = x.shape[1]
        cos, sin = self.rotary(torch.arange(start, start + n, device=x.device))
        mask = causal_mask(n, start, x.device)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            layer_adapter = None if adapter is None else adapter.layers[i]
            q, k, v = block.qkv(x, cos, sin, layer_adapter)
            keys, values = keys_values(i, k, v)
            if kv_only and i == last:
                return None
            x = block.finish(x, attend(q, keys, values, mask), layer_adapter)
        return self.norm(x)

    def run(self, x: torch.Tensor, cache: torch.Tensor, start: int,
            kv_only: bool = False, adapter=None) -> Optional[torch.Tensor]:
        """Run new tokens after ``start`` cached ones, writing their K/V into ``cache``.

        x [1, L, hidden] embeddings of the new tokens at positions start..start+L-1;
        cache [layers, 2, kv_heads, >= start + L, head_dim], holding positions < start.
        Returns the normed final hidden states [1, L, hidden], or None with ``kv_only``:
        a context needs only each layer's K/V, so the last layer's attention and MLP are
        skipped (nothing ever reads their output). ``adapter``: an ``AnswerAdapter`` for
        these tokens (question and answer tokens only; never a context's).
        """
        end = start + x.shape[1]

        def cached(i, k, v):
            cache[i, 0, :, start:end] = k[0]
            cache[i, 1, :, start:end] = v[0]
            return cache[i, 0, None, :, :end], cache[i, 1, None, :, :end]

        return self._layers(x, start, cached, kv_only, adapter)

    def after_context(self, x: torch.Tensor, context_kv: torch.Tensor, adapter=None) -> torch.Tensor:
        """Batched, differentiable pass of text after contexts (the answers' training pass).

        x [B, N, hidden] embeddings at positions T..T+N-1 after contexts context_kv [B,
        layers, 2, kv_heads, T, head_dim] (every KV head); ``adapter`` as in ``run``.
        Returns the normed final hidden states [B, N, hidden]. Equals ``run`` of the same
        tokens after the same context (which writes a cache; this does not).
        """
        def after(i, k, v):
            return torch.cat([context_kv[:, i, 0], k], dim=2), torch.cat([context_kv[:, i, 1], v], dim=2)

        return self._layers(x, context_kv.shape[4], after, adapter=adapter)

    def causal(self, x: torch.Tensor, kv_heads: Optional[int] = None,
               kv_only: bool = False) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Batched causal pass from position 0 without a cache buffer (training, batched
        prefill); differentiable.

        x [B, L, hidden] embeddings at positions 0..L-1; ``kv_heads``: keep every layer's
        K/V of the first ``kv_heads`` KV heads (None: keep none); ``kv_only``: skip what
        only the hidden states need (the last layer's attention and MLP). Returns (normed
        final hidden states [B, L, hidden] or None with ``kv_only``, K/V [B, layers, 2,
        kv_heads, L, head_dim] or None).
        """
        kvs = []

        def own(i, k, v):
            if kv_heads is not None:
                kvs.append(torch.stack([k[:, :kv_heads], v[:, :kv_heads]], 1))
            return k, v

        hidden = self._layers(x, 0, own, kv_only)
        return hidden, (torch.stack(kvs, 1) if kv_heads is not None else None)

    def generate(self, context_kv: torch.Tensor, prompt_ids: Sequence[int],
                 eos_ids: Sequence[int], max_new_tokens: int,
                 max_time_s: Optional[float] = None, adapter=None) -> Tuple[List[int], str]:
        """Greedy decoding of ``prompt_ids`` appended after a (read-only) context.

        context_kv [layers, 2, kv_heads, T, head_dim] (T may be 0) is copied into a buffer
        of its own, so the context is never written. ``adapter``: the ``AnswerAdapter``
        for the prompt and the generated tokens. Returns (new token ids, stopped reason):
        ``eos``, ``max_new_tokens`` or ``max_time``.
        """
        deadline = None if max_time_s is None else time.monotonic() + max_time_s
        start = context_kv.shape[3]
        cache = self.empty_cache(start + len(prompt_ids) + max_new_tokens, context_kv)
        cache[:, :, :, :start] = context_kv
        x = self.embed_tokens(torch.tensor([list(prompt_ids)], device=context_kv.device))
        out: List[int] = []
        while len(out) < max_new_tokens:
            hidden = self.run(x, cache, start, adapter=adapter)
            start += x.shape[1]
            token = int(self.logits(hidden[0, -1]).argmax())
            if token in eos_ids:
                return out, "eos"
            out.append(token)
            if deadline is not None and time.monotonic() > deadline:
                return out, "max_time"
            x = self.embed_tokens(torch.tensor([[token]], device=context_kv.device))
        return out, "max_new_tokens"
