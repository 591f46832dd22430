"""The release's AE losses and the answers' CE (train/losses.py), on hand-computed values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from automot_ros.model.plan import Plan
from automot_ros.train.losses import (
    SPEED_TARGET_STEPS,
    WAYPOINT_WEIGHTS,
    action_losses,
    answer_ce,
    offsets,
    path_l1,
    speed_smooth_l1,
    waypoint_l1,
)


def _targets(b: int = 2):
    t = torch.arange(1, 7, dtype=torch.float32)
    future = torch.stack([t * 2.0, t * 0.1], -1).expand(b, -1, -1).clone()
    path = torch.stack([torch.arange(1, 21, dtype=torch.float32), torch.zeros(20)], -1).expand(b, -1, -1).clone()
    labels = torch.tensor([[0, 2], [1, 3], [3, 1]]).expand(b, -1, -1).clone()
    return {"future_xy": future, "path_xy": path, "labels": labels, "future_speed": torch.full((b, 6), 4.0)}


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
    assert WAYPOINT_WEIGHTS == (3.0, 3.0, 2.0, 2.0, 1.0, 1.0)


def test_path_l1_on_offsets_and_speed_smooth_l1():
    target = _targets(1)["path_xy"]
    pred = target + torch.tensor([0.0, 2.0])  # every point 2 m left: only the first offset differs
    assert float(path_l1(pred, target)) == pytest.approx(2.0 / 40)
    future = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    target_speed = future[:, list(SPEED_TARGET_STEPS)]
    assert target_speed.tolist() == [[2.0, 4.0, 6.0]]  # +1 s, +2 s, +3 s
    pred = torch.tensor([[2.0, 4.5, 9.0]])
    assert float(speed_smooth_l1(pred, future)) == pytest.approx((0.0 + 0.5 * 0.25 + 2.5) / 3)


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
