"""The release's AE losses, our agent-clearance term and the answers' CE (train/losses.py),
on hand-computed values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from automot_ros.model.plan import Plan
from automot_ros.eval.open_loop import boxes_overlap, box_corners, ego_boxes_from_waypoints
from automot_ros.train.losses import (
    SPEED_TARGET_STEPS,
    WAYPOINT_WEIGHTS,
    ActionLossConfig,
    action_losses,
    agent_clearance,
    agent_penetration,
    answer_ce,
    covering_circles,
    offsets,
    path_l1,
    speed_smooth_l1,
    waypoint_directions,
    waypoint_l1,
    waypoint_mode_losses,
)

NAN_ROW = [float("nan")] * 5


def _targets(b: int = 2):
    t = torch.arange(1, 7, dtype=torch.float32)
    future = torch.stack([t * 2.0, t * 0.1], -1).expand(b, -1, -1).clone()
    path = torch.stack([torch.arange(1, 21, dtype=torch.float32), torch.zeros(20)], -1).expand(b, -1, -1).clone()
    labels = torch.tensor([[0, 2], [1, 3], [3, 1]]).expand(b, -1, -1).clone()
    agents = torch.full((b, 6, 2, 5), float("nan"))
    agents[:, :, 0] = torch.tensor([12.0, 3.5, 4.5, 1.9, 0.0])  # a car parked in the lane to the left
    return {"future_xy": future, "path_xy": path, "labels": labels, "future_speed": torch.full((b, 6), 4.0),
            "future_agents": agents}


def _plan_from(targets, lateral_logits=None, longitudinal_logits=None, speed=None):
    b = targets["future_xy"].shape[0]
    return Plan(lateral_logits if lateral_logits is not None else torch.zeros(b, 3, 5),
                longitudinal_logits if longitudinal_logits is not None else torch.zeros(b, 3, 4),
                targets["path_xy"].clone(), targets["future_xy"].clone(),
                speed if speed is not None else torch.full((b, 3), 4.0))


def test_offsets_are_differences_from_the_origin():
    pts = torch.tensor([[[1.0, 0.0], [3.0, 1.0], [6.0, 3.0]]])
    assert offsets(pts).tolist() == [[[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]]]
    assert torch.equal(offsets(pts).cumsum(1), pts)


def test_waypoint_l1_is_weighted_per_step_on_offsets():
    target = _targets(1)["future_xy"]
    pred = target.clone()
    pred[0, 0, 0] += 1.0  # shifts the first offset by +1 and the second by -1 (points 2.. are untouched)
    w = torch.tensor(WAYPOINT_WEIGHTS)
    expected = (w[0] * 0.5 + w[1] * 0.5) / w.sum()  # |1| and |-1| averaged over x, y
    assert float(waypoint_l1(pred, target)) == pytest.approx(float(expected))
    late = target.clone()
    late[0, 5, 1] += 1.0  # only the last offset: weight 1
    assert float(waypoint_l1(late, target)) == pytest.approx(0.5 / float(w.sum()))
    both = waypoint_l1(torch.stack([pred, late], 1), target[:, None])  # [B, M] trajectories at once
    assert both.shape == (1, 2) and both[0].tolist() == pytest.approx([float(expected), 0.5 / float(w.sum())])
    assert WAYPOINT_WEIGHTS == (3.0, 3.0, 2.0, 2.0, 1.0, 1.0)


def test_several_waypoint_modes_train_only_the_nearest_and_teach_the_scores_to_name_it():
    future = _targets()["future_xy"]
    lane = torch.tensor([0.0, 3.5])
    near = future.clone()
    near[:, 0, 0] += 0.2  # the expert's trajectory but for its first point
    modes = torch.stack([future + lane, near, future - lane], 1).requires_grad_(True)  # [B, 3, 6, 2]
    logits = torch.zeros(2, 3, requires_grad=True)
    out = waypoint_mode_losses(modes, logits, future)
    assert out["waypoint_l1"].item() == pytest.approx(float(waypoint_l1(near, future).mean()))
    assert out["mode_ce"].item() == pytest.approx(float(torch.log(torch.tensor(3.0))))
    (out["waypoint_l1"] + out["mode_ce"]).backward()
    assert float(modes.grad[:, 1].abs().sum()) > 0
    assert float(modes.grad[:, [0, 2]].abs().sum()) == 0.0  # the far modes keep their own futures
    assert (logits.grad[:, 1] < 0).all() and (logits.grad[:, [0, 2]] > 0).all()  # gradient descent raises mode 1
    # One mode is the release's term, and scores nothing.
    one = waypoint_mode_losses(near[:, None], torch.zeros(2, 1), future)
    assert float(one["waypoint_l1"]) == pytest.approx(float(waypoint_l1(near, future).mean()))
    assert float(one["mode_ce"]) == 0.0


def test_path_l1_on_offsets_and_speed_smooth_l1():
    target = _targets(1)["path_xy"]
    pred = target + torch.tensor([0.0, 2.0])  # every point 2 m left: only the first offset differs
    assert float(path_l1(pred, target)) == pytest.approx(2.0 / 40)
    future = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    target_speed = future[:, list(SPEED_TARGET_STEPS)]
    assert target_speed.tolist() == [[2.0, 4.0, 6.0]]  # +1 s, +2 s, +3 s
    pred = torch.tensor([[2.0, 4.5, 9.0]])
    assert float(speed_smooth_l1(pred, future)) == pytest.approx((0.0 + 0.5 * 0.25 + 2.5) / 3)


def test_covering_circles_cover_the_box_and_stay_close_to_it():
    box = torch.tensor([3.0, -1.0, 4.6, 1.9, 0.7])  # cx, cy, length, width, yaw
    direction = torch.stack([box[4].cos(), box[4].sin()])
    centers, radius = covering_circles(box[:2], direction, box[2], box[3])
    corners = torch.as_tensor(box_corners(box.numpy()), dtype=torch.float32)  # [4, 2]
    inside = (corners[:, None] - centers[None]).norm(dim=-1) <= radius + 1e-5  # [corner, circle]
    assert bool(inside.any(1).all())
    # The cover sticks out sideways by less than 0.15 m for a car-sized box (5 circles).
    assert float(radius) - 1.9 / 2 < 0.15


def test_clearance_is_zero_for_the_expert_and_for_plans_that_keep_clear():
    targets = _targets(1)
    assert float(agent_clearance(targets["future_xy"], targets["future_xy"], targets["future_agents"])) == 0.0
    right = targets["future_xy"] + torch.tensor([0.0, -1.0])  # a metre further from the parked car
    assert float(agent_clearance(right, targets["future_xy"], targets["future_agents"])) == 0.0


def test_clearance_grows_with_depth_and_its_gradient_leads_out():
    targets = _targets(1)
    shallow, deep = (targets["future_xy"] + torch.tensor([0.0, dy]) for dy in (1.2, 2.5))
    losses = [float(agent_clearance(p, targets["future_xy"], targets["future_agents"])) for p in (shallow, deep)]
    assert 0.0 < losses[0] < losses[1]
    # The circles agree with the open-loop collision check about the deep plan: its boxes overlap the car.
    car = targets["future_agents"][0, 0, 0].numpy()
    assert bool(boxes_overlap(ego_boxes_from_waypoints(deep[0].numpy()), car).any())
    plan = deep.clone().requires_grad_(True)
    for _ in range(60):
        loss = agent_clearance(plan, targets["future_xy"], targets["future_agents"])
        (grad,) = torch.autograd.grad(loss, plan)
        plan = (plan - 0.5 * grad).detach().requires_grad_(True)
    plan = plan.detach()
    assert float(agent_clearance(plan, targets["future_xy"], targets["future_agents"])) < 0.05 * losses[1]
    assert not bool(boxes_overlap(ego_boxes_from_waypoints(plan[0].numpy()), car).any())


def test_the_margin_penalizes_near_misses_the_expert_kept_wider():
    targets = _targets(1)
    # 0.3 m closer to the parked car than the expert: clear of it, but inside a 0.5 m margin.
    near = targets["future_xy"] + torch.tensor([0.0, 0.3])
    assert float(agent_clearance(near, targets["future_xy"], targets["future_agents"])) == 0.0
    assert float(agent_clearance(near, targets["future_xy"], targets["future_agents"], margin_m=0.5)) > 0.0
    assert ActionLossConfig().agent_margin_m == 0.5


def test_clearance_ignores_what_the_expert_came_as_close_to_and_empty_slots():
    targets = _targets(1)
    close = targets["future_agents"].clone()
    close[0, :, 0] = torch.tensor([12.0, 1.5, 4.5, 1.9, 0.0])  # the expert squeezes past this car
    expert = targets["future_xy"]
    assert float(agent_penetration(expert, waypoint_directions(expert, expert), close).max()) > 0.0
    assert float(agent_clearance(targets["future_xy"] + torch.tensor([0.0, 0.2]), targets["future_xy"], close)) == 0.0
    empty = torch.full_like(close, float("nan"))
    plan = (targets["future_xy"] + torch.tensor([0.0, 2.5])).requires_grad_(True)
    loss = agent_clearance(plan, targets["future_xy"], empty)
    loss.backward()
    assert float(loss.detach()) == 0.0 and bool(torch.isfinite(plan.grad).all()) and float(plan.grad.abs().sum()) == 0.0


def test_action_losses_total_and_metrics():
    targets = _targets()
    perfect_lat = F.one_hot(targets["labels"][..., 0], 5).float() * 50.0
    perfect_lon = F.one_hot(targets["labels"][..., 1], 4).float() * 50.0
    out = action_losses(_plan_from(targets, perfect_lat, perfect_lon), targets)
    assert float(out["loss"]) == pytest.approx(0.0, abs=1e-6)
    assert float(out["decision_acc"]) == 1.0 and float(out["waypoint_l2"]) == 0.0
    uniform = action_losses(_plan_from(targets), targets)
    ce = torch.log(torch.tensor(5.0)) + torch.log(torch.tensor(4.0))
    assert float(uniform["lateral_ce"] + uniform["longitudinal_ce"]) == pytest.approx(float(ce), rel=1e-6)
    assert float(uniform["loss"]) == pytest.approx(float(ce), rel=1e-6)
    swerve = _plan_from(targets, perfect_lat, perfect_lon)
    swerve.waypoints[:, 2:, 1] += 2.5  # into the parked car
    out = action_losses(swerve, targets)
    assert float(out["agent_clearance"]) > 0.0
    release_only = action_losses(swerve, targets, ActionLossConfig(agents=0.0))
    assert float(out["loss"] - release_only["loss"]) == pytest.approx(
        ActionLossConfig().agents * float(out["agent_clearance"]), rel=1e-5)
    # With every waypoint mode: the expert's among them costs no L1, and the scores' CE counts
    # like the decisions' (uniform scores over 2 modes: log 2 at weight 2).
    moded = _plan_from(targets, perfect_lat, perfect_lon)
    moded.waypoint_modes = torch.stack([targets["future_xy"] + 3.5, targets["future_xy"]], 1)
    moded.mode_logits = torch.zeros(2, 2)
    out = action_losses(moded, targets, ActionLossConfig(decision=2.0))
    assert float(out["waypoint_l1"]) == 0.0
    assert float(out["loss"]) == pytest.approx(2.0 * float(torch.log(torch.tensor(2.0))), rel=1e-5)


def test_action_losses_have_gradients_for_every_output():
    targets = _targets()
    plan = Plan(*(torch.randn(*shape, requires_grad=True) for shape in
                  ((2, 3, 5), (2, 3, 4), (2, 20, 2), (2, 6, 2), (2, 3))))
    action_losses(plan, targets)["loss"].backward()
    for tensor in (plan.lateral_logits, plan.longitudinal_logits, plan.path, plan.waypoints, plan.speed):
        assert tensor.grad is not None and float(tensor.grad.abs().sum()) > 0


def test_answer_ce_averages_each_item_over_its_masked_tokens():
    vocab = 7
    logits = torch.zeros(2, 4, vocab)
    logits[0, 2, 3] = 100.0  # item 0 predicts its answer token 3 exactly at position 2
    ids = torch.tensor([[1, 1, 3, 0], [2, 2, 2, 2]])
    mask = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    expected = (0.0 + float(torch.log(torch.tensor(float(vocab))))) / 2
    assert float(answer_ce(logits, ids, mask)) == pytest.approx(expected, abs=1e-5)
