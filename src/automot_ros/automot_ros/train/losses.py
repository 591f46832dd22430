"""The training losses: the release's Action Expert losses and the answers' next-token CE.

Action Expert (DESIGN.md section 1, "Training (release)"):

    total = w_decision * (CE(lateral) + CE(longitudinal))
          + w_waypoints * weighted L1 on waypoint offsets, step weights [3, 3, 2, 2, 1, 1]
          + w_decision * CE(mode scores) (ours, several waypoint modes only; see below)
          + w_path * L1 on path offsets
          + w_speed * smooth-L1 on the speed head
          + w_agents * agent_clearance (ours, see below)

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

Several waypoint modes (``action.waypoint_modes`` > 1, ours): winner-takes-all, as in
MultiPath and MTR. Only the mode nearest the expert (lowest waypoint L1) takes the L1, and the
mode scores learn to name it (``mode_ce``, weighted like the decisions: it is the choice of a
trajectory). One regression target over futures that fork (change lanes now or later, or
not at all) lands between them, which is where the other lane's cars drive.

One term is ours, not the release's: ``agent_clearance`` (weight ``w_agents``), an
ego-agent collision term in the spirit of VAD's planning constraints. The L1 terms only
pull the plan towards the expert's; where the model is wrong (a corner cut at a junction,
an overshoot behind a braking car) nothing says that some wrong plans drive through other
vehicles. The term penalizes how deep the planned ego box goes into a ground-truth agent
box at each waypoint's time: both boxes are covered by COVER_CIRCLES circles along their
length (each circumscribes one slice of the box), and the penetration of an (ego, agent)
pair is the largest overlap of two of their circles, in meters, with the agent's circles
grown by a margin (default 0.5 m: a plan that only grazes an agent is already wrong, and
the margin makes the term speak in more of the near misses than the rare overlaps). Pairs
the expert itself came that close to are not penalized (the same rule as the open-loop collision rate's
exclusion), so a plan equal to the expert's costs nothing and the term never pulls against
the L1 terms' target. Per sample: summed over the agents, mean over the 6 steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn.functional as F

from automot_ros.eval.open_loop import EGO_LENGTH_M, EGO_WIDTH_M
from automot_ros.model.plan import Plan
from automot_ros.train.defaults import DEFAULT_AGENT_CLEARANCE_MARGIN_M, DEFAULT_AGENT_CLEARANCE_WEIGHT

WAYPOINT_WEIGHTS = (3.0, 3.0, 2.0, 2.0, 1.0, 1.0)
# Indices into future_speed [6] (0.5, 1.0, ... 3.0 s) that the 3-value speed head predicts.
SPEED_TARGET_STEPS = (1, 3, 5)
SPEED_BETA_MPS = 1.0
AE_LOSS_NAMES = ("lateral_ce", "longitudinal_ce", "waypoint_l1", "mode_ce", "path_l1", "speed_smooth_l1",
                 "agent_clearance")
COVER_CIRCLES = 5
# Below this step length [m] a waypoint's heading is taken from the expert's step (standing still).
MIN_HEADING_STEP_M = 0.2


@dataclass(frozen=True)
class ActionLossConfig:
    """The terms' weights, and the clearance the agent term asks for beyond touching."""

    decision: float = 1.0
    waypoints: float = 1.0
    path: float = 1.0
    speed: float = 1.0
    agents: float = DEFAULT_AGENT_CLEARANCE_WEIGHT  # agent_clearance (ours; 0: the release's losses only)
    agent_margin_m: float = DEFAULT_AGENT_CLEARANCE_MARGIN_M


def offsets(points: torch.Tensor) -> torch.Tensor:
    """points [..., K, 2] (ego frame, from the ego at the origin) -> offsets [..., K, 2]:
    points[..., 0, :] - 0, then points[..., k, :] - points[..., k - 1, :]."""
    return torch.diff(points, dim=-2, prepend=torch.zeros_like(points[..., :1, :]))


def decision_ce(lateral_logits: torch.Tensor, longitudinal_logits: torch.Tensor,
                labels: torch.Tensor) -> Dict[str, torch.Tensor]:
    """lateral_logits [B, 3, 5], longitudinal_logits [B, 3, 4], labels int64 [B, 3, 2]
    ((lateral, longitudinal) for now, +1 s, +2 s) -> mean CE over items and horizons, each."""
    return {"lateral_ce": F.cross_entropy(lateral_logits.flatten(0, 1), labels[..., 0].flatten()),
            "longitudinal_ce": F.cross_entropy(longitudinal_logits.flatten(0, 1), labels[..., 1].flatten())}


def waypoint_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred [..., 6, 2], target [B, 6, 2] waypoints (m), pred's leading dims broadcasting
    against B -> L1 on offsets per trajectory [...], steps weighted WAYPOINT_WEIGHTS
    (normalized), mean over x and y."""
    w = pred.new_tensor(WAYPOINT_WEIGHTS)
    per_step = (offsets(pred) - offsets(target)).abs().mean(-1)  # [..., 6]
    return (per_step * (w / w.sum())).sum(-1)


def waypoint_mode_losses(waypoint_modes: torch.Tensor, mode_logits: torch.Tensor,
                         target: torch.Tensor) -> Dict[str, torch.Tensor]:
    """waypoint_modes [B, M, 6, 2], mode_logits [B, M], target [B, 6, 2] -> winner-takes-all
    (module docstring): "waypoint_l1", the batch mean of the nearest mode's ``waypoint_l1``,
    and "mode_ce", the CE of the scores against that mode (0 for one mode)."""
    per_mode = waypoint_l1(waypoint_modes, target[:, None])  # [B, M]
    nearest = per_mode.detach().argmin(-1)
    out = {"waypoint_l1": per_mode.gather(1, nearest[:, None]).mean()}
    out["mode_ce"] = F.cross_entropy(mode_logits, nearest) if mode_logits.shape[1] > 1 else per_mode.new_zeros(())
    return out


def path_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target [B, 20, 2] path points (m) -> mean L1 on offsets."""
    return (offsets(pred) - offsets(target)).abs().mean()


def speed_smooth_l1(pred: torch.Tensor, future_speed: torch.Tensor) -> torch.Tensor:
    """pred [B, 3] (speed head), future_speed [B, 6] (m/s at 0.5 ... 3 s) -> smooth-L1 against
    the speeds at +1, +2, +3 s."""
    target = future_speed[:, list(SPEED_TARGET_STEPS)]
    return F.smooth_l1_loss(pred, target, beta=SPEED_BETA_MPS)


def covering_circles(center: torch.Tensor, direction: torch.Tensor, length: torch.Tensor,
                     width: torch.Tensor, n: int = COVER_CIRCLES):
    """Boxes (center [..., 2], unit heading direction [..., 2], length [...], width [...]) ->
    (circle centers [..., n, 2], radius [...]): the box cut into n equal slices along its
    length, one circle through the corners of each slice."""
    frac = (torch.arange(n, dtype=center.dtype, device=center.device) + 0.5) / n - 0.5  # [n]
    along = frac * length[..., None]  # [..., n]
    centers = center[..., None, :] + along[..., None] * direction[..., None, :]
    return centers, torch.sqrt((width / 2) ** 2 + (length / (2 * n)) ** 2)


def waypoint_directions(points: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Unit heading [B, K, 2] of each waypoint [B, K, 2]: the direction of the step that
    reaches it (from the ego at the origin for the first); steps shorter than
    MIN_HEADING_STEP_M take the direction of ``fallback``'s step [B, K, 2], and +x when
    that is short too."""
    def unit(step: torch.Tensor):
        norm = step.norm(dim=-1, keepdim=True)
        return step / norm.clamp_min(MIN_HEADING_STEP_M), norm > MIN_HEADING_STEP_M

    own, own_ok = unit(offsets(points))
    other, other_ok = unit(offsets(fallback).detach())
    forward = torch.zeros_like(own)
    forward[..., 0] = 1.0
    return torch.where(own_ok, own, torch.where(other_ok, other, forward))


def agent_penetration(ego_xy: torch.Tensor, ego_direction: torch.Tensor, agents: torch.Tensor,
                      margin_m: float = 0.0) -> torch.Tensor:
    """Ego boxes at waypoints [B, K, 2] heading ego_direction [B, K, 2] against agent boxes
    [B, K, A, 5] (cx, cy, length, width, yaw; rows of NaN are empty slots) -> penetration
    [B, K, A] in meters into the agents grown by margin_m (0: clear, or an empty slot)."""
    present = torch.isfinite(agents).all(-1)  # [B, K, A]
    boxes = torch.where(present[..., None], agents, torch.zeros_like(agents))
    ego_c, ego_r = covering_circles(ego_xy, ego_direction, ego_xy.new_tensor(EGO_LENGTH_M),
                                    ego_xy.new_tensor(EGO_WIDTH_M))  # [B, K, n, 2], []
    yaw = boxes[..., 4]
    agent_c, agent_r = covering_circles(boxes[..., :2], torch.stack([yaw.cos(), yaw.sin()], -1),
                                        boxes[..., 2], boxes[..., 3])  # [B, K, A, n, 2], [B, K, A]
    gap = ego_c[:, :, None, :, None, :] - agent_c[:, :, :, None, :, :]  # [B, K, A, n, n, 2]
    distance = torch.sqrt((gap ** 2).sum(-1) + 1e-9)  # differentiable at 0
    overlap = (ego_r + agent_r[..., None, None] + margin_m - distance).clamp_min(0.0)
    return overlap.amax(dim=(-1, -2)) * present


def agent_clearance(pred: torch.Tensor, target: torch.Tensor, agents: torch.Tensor,
                    margin_m: float = 0.0) -> torch.Tensor:
    """pred, target [B, 6, 2] waypoints (m), agents [B, 6, A, 5] ground-truth agent boxes at
    the waypoint times (ego frame; NaN rows empty) -> mean over the batch of the planned ego
    box's penetration into agents grown by margin_m (m; summed over agents, mean over
    steps), counting only the (step, agent) pairs the expert's own plan kept that clear of
    (module docstring)."""
    with torch.no_grad():
        expert_clear = agent_penetration(target, waypoint_directions(target, target), agents, margin_m) <= 0.0
    depth = agent_penetration(pred, waypoint_directions(pred, target), agents, margin_m)
    return (depth * expert_clear).sum(-1).mean(-1).mean()


def action_losses(plan: Plan, batch: Dict[str, torch.Tensor],
                  weights: ActionLossConfig = ActionLossConfig()) -> Dict[str, torch.Tensor]:
    """The AE's losses for ``plan`` (every waypoint mode if it holds them, else its
    waypoints) and a batch with labels [B, 3, 2], future_xy [B, 6, 2], path_xy
    [B, 20, 2], future_speed [B, 6], future_agents [B, 6, A, 5] -> {"loss": weighted total, each term of
    AE_LOSS_NAMES}; plus detached metrics: "waypoint_l2" (mean L2 over the 6 waypoints, m),
    "l2_3s" (L2 at 3 s), "decision_acc" (both classes right, all horizons)."""
    out = decision_ce(plan.lateral_logits, plan.longitudinal_logits, batch["labels"])
    if plan.waypoint_modes is None:  # the plan's one trajectory: the release's term
        modes, mode_logits = plan.waypoints[:, None], plan.waypoints.new_zeros(plan.waypoints.shape[0], 1)
    else:
        modes, mode_logits = plan.waypoint_modes, plan.mode_logits
    out.update(waypoint_mode_losses(modes, mode_logits, batch["future_xy"]))
    out["path_l1"] = path_l1(plan.path, batch["path_xy"])
    out["speed_smooth_l1"] = speed_smooth_l1(plan.speed, batch["future_speed"])
    out["agent_clearance"] = agent_clearance(plan.waypoints, batch["future_xy"], batch["future_agents"],
                                             weights.agent_margin_m)
    out["loss"] = (weights.decision * (out["lateral_ce"] + out["longitudinal_ce"] + out["mode_ce"])
                   + weights.waypoints * out["waypoint_l1"] + weights.path * out["path_l1"]
                   + weights.speed * out["speed_smooth_l1"] + weights.agents * out["agent_clearance"])
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


__all__ = ["AE_LOSS_NAMES", "ActionLossConfig", "COVER_CIRCLES", "SPEED_TARGET_STEPS", "WAYPOINT_WEIGHTS",
           "action_losses", "agent_clearance", "agent_penetration", "answer_ce", "covering_circles", "decision_ce",
           "offsets", "path_l1", "speed_smooth_l1", "waypoint_directions", "waypoint_l1", "waypoint_mode_losses"]
