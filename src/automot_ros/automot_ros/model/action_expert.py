"""The Action Expert: per-layer expert weights that attend over the UE's cached K/V.

Head mapping (UE and AE share head_dim but not head counts): AE query head h reads UE KV
head h // g and AE KV head h // g, where g = heads / kv_heads is the same for both experts
(checked by ``ModelConfig``). This is exactly what the release computes by zero-padding
the AE's q/k/v heads up to the UE's counts and running one GQA attention; UE KV heads
>= AE kv_heads are therefore never read by the AE, and the fast path below slices them
away instead of padding. ``AutoMoT.forward_sync`` does the padded joint pass, and the
tests check that both agree.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from .config import ActionExpertConfig, DecoderConfig
from .layers import ExpertBlock, RMSNorm, Rotary, attend
from .vision import SceneEncoder

# Input scales: keep the MLP inputs of order 1 (targets tens of meters, speeds ~10 m/s).
TARGET_SCALE_M = 10.0
SPEED_SCALE_MPS = 10.0
# Several waypoint modes start apart and alike for every input: zero weights, and a lateral
# step bias of (m - (modes - 1) / 2) times this [m per 0.5 s step] for mode m, i.e.
# trajectories fanning out to the right, straight on and to the left. Winner-takes-all training
# (train/losses.py) then hands each mode the futures that bend its way, instead of one mode
# winning all of them from the first step.
MODE_LATERAL_STEP_M = 0.5


def block_mask(cfg: ActionExpertConfig) -> torch.Tensor:
    """[N, N] bool over the AE tokens: block i sees blocks <= i (and itself fully).

    Blocks in order: navigation/scene (scene + targets + speed), decision queries, path
    queries, waypoint queries; path and waypoints thus see the decisions.
    """
    sizes = (cfg.num_nav_tokens, cfg.decision_queries, cfg.path_queries, cfg.waypoint_queries)
    ids = torch.tensor([block for block, size in enumerate(sizes) for _ in range(size)])
    return ids[:, None] >= ids[None, :]


def _mlp(din: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(din, hidden), nn.GELU(), nn.Linear(hidden, hidden))


class ActionExpert(nn.Module):
    """``forward`` is a pure tensor function (no data-dependent Python control flow,
    positions derived from the context's shape), so it exports to ONNX with dynamic batch
    and context length."""

    def __init__(self, cfg: ActionExpertConfig, dec: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        d = dec.hidden
        self.scene_encoder = SceneEncoder(cfg.scene, d)
        self.target_embed = _mlp(2, d)
        self.speed_embed = _mlp(1, d)
        num_queries = cfg.decision_queries + cfg.path_queries + cfg.waypoint_queries
        self.queries = nn.Parameter(torch.randn(num_queries, d) * 0.02)
        self.blocks = nn.ModuleList(
            ExpertBlock(d, cfg.heads, cfg.kv_heads, dec.head_dim, cfg.mlp, dec.qk_norm,
                        dec.norm_eps) for _ in range(dec.layers))
        self.norm = RMSNorm(d, dec.norm_eps)
        # Decisions come from a classifier over the decision-query states rather than the
        # release's LM head over decision tokens: the class set is fixed (MetaAction), it
        # does not couple the AE to a tokenizer (the tiny byte tokenizer has no class
        # words), and it is one small matmul instead of a vocab-sized one, friendly to
        # ONNX/TensorRT.
        self.decision_head = nn.Linear(cfg.decision_queries * d, cfg.horizons
                                       * (cfg.lateral_classes + cfg.longitudinal_classes))
        self.path_head = nn.Linear(d, 2)
        self.waypoint_head = nn.Linear(d, 2 * cfg.waypoint_modes)
        self.mode_head = nn.Linear(d, cfg.waypoint_modes) if cfg.waypoint_modes > 1 else None
        if self.mode_head is not None:
            with torch.no_grad():
                spread = torch.arange(cfg.waypoint_modes) - (cfg.waypoint_modes - 1) / 2
                self.waypoint_head.weight.zero_()
                self.waypoint_head.bias.zero_()
                self.waypoint_head.bias.view(cfg.waypoint_modes, 2)[:, 1] = spread * MODE_LATERAL_STEP_M
                self.mode_head.bias.zero_()  # no mode preferred before training
        self.speed_head = nn.Linear(d, cfg.speed_outputs)
        self.rotary = Rotary(dec.head_dim, dec.rope_base)
        self.register_buffer("mask", block_mask(cfg), persistent=False)

    def embed(self, scene_input: torch.Tensor, target_points: torch.Tensor,
              speed: torch.Tensor) -> torch.Tensor:
        """scene_input pixels [B, 3, Hs, Ws], target_points [B, K, 2] m (K = cfg.target_points),
        speed [B] m/s
        -> AE input tokens [B, N, hidden] (scene, targets, speed, learned queries)."""
        scene = self.scene_encoder(scene_input)
        targets = self.target_embed(target_points.float() / TARGET_SCALE_M)
        spd = self.speed_embed(speed.float()[:, None, None] / SPEED_SCALE_MPS)
        queries = self.queries.expand(scene.shape[0], -1, -1)
        return torch.cat([scene, targets, spd, queries], dim=1)

    def heads(self, h: torch.Tensor, all_modes: bool = False) -> Tuple[torch.Tensor, ...]:
        """Final-normed AE states [B, N, hidden] -> (lateral_logits [B, 3, 5],
        longitudinal_logits [B, 3, 4], path [B, 20, 2], waypoints [B, 6, 2], speed [B, 3]);
        waypoints are the best-scored of cfg.waypoint_modes candidates. ``all_modes`` (for
        training) appends every candidate, waypoint_modes [B, M, 6, 2], and their scores,
        mode_logits [B, M] (zeros for one mode)."""
        c = self.cfg
        b = h.shape[0]
        d0 = c.num_nav_tokens
        p0 = d0 + c.decision_queries
        w0 = p0 + c.path_queries
        decision = self.decision_head(h[:, d0:p0].flatten(1)).view(b, c.horizons, -1)
        lateral, longitudinal = decision.split([c.lateral_classes, c.longitudinal_classes], -1)
        waypoint_states = h[:, w0:w0 + c.waypoint_queries]
        pooled = waypoint_states.mean(1)  # the speed and mode heads' input
        # Offsets then cumsum: each query predicts one step, not an absolute position.
        path = self.path_head(h[:, p0:w0]).cumsum(1)
        steps = self.waypoint_head(waypoint_states).view(b, c.waypoint_queries, c.waypoint_modes, 2)
        waypoint_modes = steps.transpose(1, 2).cumsum(2)  # [B, M, 6, 2]
        if self.mode_head is None:
            mode_logits = waypoint_modes.new_zeros(b, 1)
            waypoints = waypoint_modes[:, 0]
        else:
            mode_logits = self.mode_head(pooled)
            best = mode_logits.argmax(-1)[:, None, None, None].expand(-1, 1, c.waypoint_queries, 2)
            waypoints = waypoint_modes.gather(1, best).squeeze(1)
        out = (lateral, longitudinal, path, waypoints, self.speed_head(pooled))
        return out + (waypoint_modes, mode_logits) if all_modes else out

    def forward(self, context_kv: torch.Tensor, scene_input: torch.Tensor,
                target_points: torch.Tensor, speed: torch.Tensor,
                all_modes: bool = False) -> Tuple[torch.Tensor, ...]:
        """context_kv [layers, 2, ue_kv_heads, T, head_dim] (positions 0..T-1, read only;
        one context for the whole batch), or [B, layers, 2, kv, T, head_dim] (one context per
        item, training; kv >= the AE's kv_heads), scene_input [B, 3, Hs, Ws], target_points
        [B, K, 2], speed [B] -> see ``heads`` (``all_modes`` too)."""
        x = self.embed(scene_input, target_points, speed)
        b, n, _ = x.shape
        per_item = context_kv.ndim == 6
        t = context_kv.shape[-2]
        cos, sin = self.rotary(torch.arange(n, device=x.device) + t)
        mask = torch.cat([self.mask.new_ones(n, t), self.mask], dim=1)  # [N, T + N]
        kv_heads = self.cfg.kv_heads
        for i, block in enumerate(self.blocks):
            q, k, v = block.qkv(x, cos, sin)
            if per_item:
                ctx_k = context_kv[:, i, 0, :kv_heads].to(q.dtype)
                ctx_v = context_kv[:, i, 1, :kv_heads].to(q.dtype)
            else:
                ctx_k = context_kv[i, 0, :kv_heads].expand(b, -1, -1, -1)
                ctx_v = context_kv[i, 1, :kv_heads].expand(b, -1, -1, -1)
            out = attend(q, torch.cat([ctx_k, k], 2), torch.cat([ctx_v, v], 2), mask)
            x = block.finish(x, out)
        return self.heads(self.norm(x), all_modes)
