"""The training losses: the release's Action Expert losses and the answers' next-token CE.

Action Expert (DESIGN.md section 1, "Training (release)"):

    total = w_decision * (CE(lateral) + CE(longitudinal))
          + w_waypoints * weighted L1 on waypoint offsets, step weights [3, 3, 2, 2, 1, 1]
          + w_path * L1 on path offsets
          + w_speed * smooth-L1 on the speed head

Offsets: the model predicts one offset per waypoint / path point and cumsums them
(model/action_expert.py), so the L1 terms compare offsets, not absolute points: the target
offsets are the differences of consecutive target points, the first one taken from the ego
at the origin. Every term is a per-sample mean, then a batch mean: with equal per-process
batches, DDP's gradient average equals the single-process gradient of the global batch.

Reductions (the release does not publish them; these keep every term in its natural unit):
the waypoint L1 is a weighted mean over the 6 steps (weights normalized to sum 1) of the
mean over x and y; the path L1 is the mean over 20 points and x, y; the speed head's 3
values are the ego's speed at +1 s, +2 s, +3 s (``SPEED_TARGET_STEPS`` of the 6 future
speeds at 0.5 ... 3 s); smooth-L1 with beta 1 m/s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn.functional as F

from automot_ros.model.plan import Plan

WAYPOINT_WEIGHTS = (3.0, 3.0, 2.0, 2.0, 1.0, 1.0)
# Indices into future_speed [6] (0.5, 1.0, ... 3.0 s) that the 3-value speed head predicts.
SPEED_TARGET_STEPS = (1, 3, 5)
SPEED_BETA_MPS = 1.0
AE_LOSS_NAMES = ("lateral_ce", "longitudinal_ce", "waypoint_l1", "path_l1", "speed_smooth_l1")


@dataclass(frozen=True)
class LossWeights:
    decision: float = 1.0
    waypoints: float = 1.0
    path: float = 1.0
    speed: float = 1.0


def offsets(points: torch.Tensor) -> torch.Tensor:
    """points [B, K, 2] (ego frame, from the ego at the origin) -> offsets [B, K, 2]:
    points[:, 0] - 0, then points[:, k] - points[:, k - 1]."""
    return torch.diff(points, dim=1, prepend=points.new_zeros(points.shape[0], 1, points.shape[2]))


def decision_ce(lateral_logits: torch.Tensor, longitudinal_logits: torch.Tensor,
                labels: torch.Tensor) -> Dict[str, torch.Tensor]:
    """lateral_logits [B, 3, 5], longitudinal_logits [B, 3, 4], labels int64 [B, 3, 2]
    ((lateral, longitudinal) for now, +1 s, +2 s) -> mean CE over items and horizons, each."""
    return {"lateral_ce": F.cross_entropy(lateral_logits.flatten(0, 1), labels[..., 0].flatten()),
            "longitudinal_ce": F.cross_entropy(longitudinal_logits.flatten(0, 1), labels[..., 1].flatten())}


def waypoint_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target [B, 6, 2] waypoints (m) -> L1 on offsets, steps weighted WAYPOINT_WEIGHTS
    (normalized), mean over x, y and the batch."""
    w = pred.new_tensor(WAYPOINT_WEIGHTS)
    per_step = (offsets(pred) - offsets(target)).abs().mean(-1)  # [B, 6]
    return (per_step * (w / w.sum())).sum(-1).mean()


def path_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target [B, 20, 2] path points (m) -> mean L1 on offsets."""
    return (offsets(pred) - offsets(target)).abs().mean()


def speed_smooth_l1(pred: torch.Tensor, future_speed: torch.Tensor) -> torch.Tensor:
    """pred [B, 3] (speed head), future_speed [B, 6] (m/s at 0.5 ... 3 s) -> smooth-L1 against
    the speeds at +1, +2, +3 s."""
    target = future_speed[:, list(SPEED_TARGET_STEPS)]
    return F.smooth_l1_loss(pred, target, beta=SPEED_BETA_MPS)


def action_losses(plan: Plan, batch: Dict[str, torch.Tensor],
                  weights: LossWeights = LossWeights()) -> Dict[str, torch.Tensor]:
    """The AE's losses for a batch with labels [B, 3, 2], future_xy [B, 6, 2], path_xy
    [B, 20, 2], future_speed [B, 6] -> {"loss": weighted total, each term of
    AE_LOSS_NAMES}; plus detached metrics: "waypoint_l2" (mean L2 over the 6 waypoints, m),
    "l2_3s" (L2 at 3 s), "decision_acc" (both classes right, all horizons)."""
    out = decision_ce(plan.lateral_logits, plan.longitudinal_logits, batch["labels"])
    out["waypoint_l1"] = waypoint_l1(plan.waypoints, batch["future_xy"])
    out["path_l1"] = path_l1(plan.path, batch["path_xy"])
    out["speed_smooth_l1"] = speed_smooth_l1(plan.speed, batch["future_speed"])
    out["loss"] = (weights.decision * (out["lateral_ce"] + out["longitudinal_ce"])
                   + weights.waypoints * out["waypoint_l1"] + weights.path * out["path_l1"]
                   + weights.speed * out["speed_smooth_l1"])
    with torch.no_grad():
        l2 = (plan.waypoints - batch["future_xy"]).norm(dim=-1)  # [B, 6]
        out["waypoint_l2"] = l2.mean()
        out["l2_3s"] = l2[:, -1].mean()
        right = (plan.lateral == batch["labels"][..., 0]) & (plan.longitudinal == batch["labels"][..., 1])
        out["decision_acc"] = right.float().mean()
    return out


def answer_ce(logits: torch.Tensor, text_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """logits [B, N, vocab] (``AutoMoT.text_logits``), text_ids int64 [B, N], loss_mask
    [B, N] (1 on the answer's tokens and its end-of-turn token) -> mean over items of each
    item's mean token CE (every QA pair weighs the same, whatever its length)."""
    ce = F.cross_entropy(logits.flatten(0, 1).float(), text_ids.flatten(), reduction="none").view_as(text_ids)
    mask = loss_mask.to(ce.dtype)
    return ((ce * mask).sum(1) / mask.sum(1).clamp_min(1.0)).mean()


__all__ = ["AE_LOSS_NAMES", "LossWeights", "SPEED_TARGET_STEPS", "WAYPOINT_WEIGHTS", "action_losses",
           "answer_ce", "decision_ce", "offsets", "path_l1", "speed_smooth_l1", "waypoint_l1"]
