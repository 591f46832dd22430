"""Transformer building blocks shared by both experts: RMSNorm, rotary positions, SwiGLU,
one expert's per-layer weights, and grouped-query attention under an explicit mask."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Rotary(nn.Module):
    """Rotate-half RoPE (Llama/Qwen3 convention, 1-D positions)."""

    def __init__(self, head_dim: int, base: float):
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def forward(self, positions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """positions [N] -> (cos, sin), each [N, head_dim]."""
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos(), emb.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, N, head_dim]; cos, sin [N, head_dim]."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, mlp: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, mlp, bias=False)
        self.up_proj = nn.Linear(hidden, mlp, bias=False)
        self.down_proj = nn.Linear(mlp, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ExpertBlock(nn.Module):
    """One expert's weights in one layer (pre-norm attention + SwiGLU MLP).

    The attention itself is not in here: in a Mixture-of-Transformers layer both experts'
    queries, keys and values meet in one joint attention, so the caller splits the block
    into ``qkv`` (before the joint attention) and ``finish`` (after it).
    """

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, mlp: int,
                 qk_norm: bool, eps: float):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.input_norm = RMSNorm(hidden, eps)
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)
        self.q_norm = RMSNorm(head_dim, eps) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(head_dim, eps) if qk_norm else nn.Identity()
        self.post_norm = RMSNorm(hidden, eps)
        self.mlp = SwiGLU(hidden, mlp)

    def qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, adapter=None):
        """x [B, N, hidden] -> q [B, heads, N, head_dim], k, v [B, kv_heads, N, head_dim].
        ``adapter``: a ``LayerAdapter`` whose low-rank updates add to q, k, v (answer tokens)."""
        b, n, _ = x.shape
        h = self.input_norm(x)
        q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        if adapter is not None:
            q, k, v = q + adapter.q(h), k + adapter.k(h), v + adapter.v(h)
        q = self.q_norm(q.view(b, n, self.heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(k.view(b, n, self.kv_heads, self.head_dim)).transpose(1, 2)
        v = v.view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v

    def finish(self, x: torch.Tensor, attn: torch.Tensor, adapter=None) -> torch.Tensor:
        """x [B, N, hidden], attn [B, heads, N, head_dim] -> the layer's output [B, N, hidden]
        (``adapter``: its o update adds to the output projection)."""
        b, _, n, _ = attn.shape
        attn = attn.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)
        out = self.o_proj(attn)
        if adapter is not None:
            out = out + adapter.o(attn)
        x = x + out
        return x + self.mlp(self.post_norm(x))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Grouped-query attention: query head h reads KV head h // (Hq / Hkv).

    q [B, Hq, Nq, d]; k, v [B, Hkv, Nk, d]; mask [Nq, Nk] bool, True = may attend.
    Returns [B, Hq, Nq, d]. The group is folded into the query axis instead of repeating
    K/V per query head: no K/V copy, and plain SDPA (exportable to ONNX/TensorRT).
    """
    b, hq, nq, d = q.shape
    hkv = k.shape[1]
    group = hq // hkv
    q = q.reshape(b, hkv, group * nq, d)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.repeat(group, 1))
    return out.reshape(b, hq, nq, d)


def causal_mask(num_new: int, start: int, device=None) -> torch.Tensor:
    """[num_new, start + num_new] bool: new token i (position start + i) sees keys 0..start+i."""
    rows = torch.arange(num_new, device=device)[:, None] + start
    return torch.arange(start + num_new, device=device)[None, :] <= rows
