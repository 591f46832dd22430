"""Replay scoring (eval/scoring.py) and the report, on hand-computed cases (DESIGN.md section 5).

The ego drives along +x (or +y) at a constant speed; plans are built with known offsets
from the ground truth; agent boxes sit where a predicted waypoint lands.
"""

import json
import math

import numpy as np
import pytest

from automot_ros.eval import meta_actions as ma
from automot_ros.eval.report import summary_lines, write_report
from automot_ros.eval.scoring import (
    AgentLog,
    ContextLog,
    EgoLog,
    PlanLog,
    PublishedLog,
    boxes_in_ego_frame,
    nearest_boxes,
    score_run,
)

S = 1_000_000_000  # ns per second
T0 = 1_000 * S  # bag start
STEPS = np.arange(1, 7)


def ego_log(speed=10.0, yaw=0.0, duration_s=10.0, hz=20.0, accel=0.0) -> EgoLog:
    """Odometry along heading yaw from the origin: s(t) = v t + a t^2 / 2."""
    t = np.arange(0.0, duration_s + 1e-9, 1.0 / hz)
    s = speed * t + 0.5 * accel * t**2
    poses = np.stack([s * math.cos(yaw), s * math.sin(yaw), np.full_like(t, yaw)], axis=1)
    return EgoLog((T0 + np.round(t * S)).astype(np.int64), poses, speed + accel * t)


def plans(stamps_s, waypoints, status=None, decisions=None, receive_offset_ms=20.0) -> PlanLog:
    n = len(stamps_s)
    stamps = (T0 + np.round(np.asarray(stamps_s) * S)).astype(np.int64)
    return PlanLog(
        stamp_ns=stamps, receive_ns=stamps + int(receive_offset_ms * 1e6),
        status=np.zeros(n, int) if status is None else np.asarray(status),
        waypoints=np.asarray(waypoints, float).reshape(n, 6, 2),
        decisions=np.full((n, 3, 2), -1) if decisions is None else np.asarray(decisions),
        inference_ms=np.full(n, 8.0), context_age_ms=np.full(n, 250.0), context_seq=np.ones(n, int),
        paths=[np.zeros((0, 2))] * n, backend="torch")


def no_contexts() -> ContextLog:
    return ContextLog(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))


def truth_waypoints(speed=10.0) -> np.ndarray:
    return np.stack([speed * 0.5 * STEPS, np.zeros(6)], axis=1)


def test_l2_in_both_conventions_against_the_odometry_future():
    # Frame at 1 s: off by 0.1 m per step along x; frame at 2 s: 0.3 m per step to the left.
    gt = truth_waypoints()
    a = gt + np.stack([0.1 * STEPS, np.zeros(6)], axis=1)
    b = gt + np.stack([np.zeros(6), 0.3 * STEPS], axis=1)
    metrics, table = score_run(plans([1.0, 2.0], [a, b]), no_contexts(), ego_log())
    # Per frame (stp3): 0.15/0.25/0.35 and 0.45/0.75/1.05 -> means 0.3/0.5/0.7;
    # uniad: steps 2/4/6: 0.2/0.4/0.6 and 0.6/1.2/1.8 -> 0.4/0.8/1.2.
    assert metrics["l2_m"]["stp3"] == pytest.approx({"1s": 0.3, "2s": 0.5, "3s": 0.7, "avg": 0.5})
    assert metrics["l2_m"]["uniad"] == pytest.approx({"1s": 0.4, "2s": 0.8, "3s": 1.2, "avg": 0.8})
    assert metrics["l2_m"]["num_frames"] == 2
    np.testing.assert_allclose(table.l2, [0.1 * STEPS, 0.3 * STEPS])
    np.testing.assert_allclose(table.gt_xy[0], gt, atol=1e-9)


def test_ground_truth_is_rebuilt_in_the_plans_frame_for_a_rotated_ego():
    # Heading north (+y in the odometry frame): the future is still straight ahead (+x).
    ego = ego_log(yaw=math.pi / 2)
    left = truth_waypoints() + [0.0, 1.0]  # 1 m to the ego's left at every step
    metrics, table = score_run(plans([1.0, 3.0], [truth_waypoints(), left]), no_contexts(), ego)
    np.testing.assert_allclose(table.l2, [np.zeros(6), np.ones(6)], atol=1e-9)
    assert metrics["l2_m"]["uniad"]["3s"] == pytest.approx(0.5)


def test_plans_without_trajectory_or_future_are_not_scored():
    # NO_CONTEXT plan (NaN waypoints), a plan 8 s in (future ends at 10 s: 11 s needed).
    nan = np.full((6, 2), np.nan)
    metrics, _ = score_run(plans([1.0, 2.0, 8.0], [truth_waypoints(), nan, truth_waypoints()], status=[0, 2, 0]),
                           no_contexts(), ego_log())
    frames = metrics["frames"]
    assert (frames["plans"], frames["plans_with_trajectory"], frames["scored_l2"], frames["without_future"]) == (3, 2, 1, 1)
    assert metrics["runtime"]["status_counts"] == {"OK": 2, "STALE_CONTEXT": 0, "NO_CONTEXT": 1, "INPUT_ERROR": 0}


def static_box(x, y, stamps_ns, length=4.0, width=1.8, yaw=0.0) -> AgentLog:
    return AgentLog(np.asarray(stamps_ns, np.int64), [np.array([[x, y, length, width, yaw]])] * len(stamps_ns))


def test_collision_rate_in_both_conventions_and_ground_truth_collisions_are_excluded():
    ego = ego_log()
    # Predicted 3 m to the left of the truth; a static 4 x 1.8 m agent at (20, 3) in the
    # odometry frame (= the ego frame at t0 = 0). Only step 4 (x = 20) overlaps it: steps 3
    # and 5 are 5 m away along x, more than (4.084 + 4) / 2. The truth (y = 0, the ego box
    # reaches y = 0.925, the agent starts at y = 2.1) never touches it.
    pred = truth_waypoints() + [0.0, 3.0]
    metrics, table = score_run(plans([0.0], [pred]), no_contexts(), ego, static_box(20.0, 3.0, ego.stamp_ns))
    col = metrics["collision_pct"]
    assert col["available"] and col["num_frames"] == 1 and col["num_excluded"] == 0
    # Per-step hits [0, 0, 0, 1, 0, 0]: stp3 1s 0, 2s 1/4, 3s 1/6; uniad 0, 1, 0.
    assert col["stp3"] == pytest.approx({"1s": 0.0, "2s": 25.0, "3s": 100.0 / 6, "avg": (25.0 + 100.0 / 6) / 3})
    assert col["uniad"] == pytest.approx({"1s": 0.0, "2s": 100.0, "3s": 0.0, "avg": 100.0 / 3})
    np.testing.assert_array_equal(table.collision[0], [0, 0, 0, 1, 0, 0])

    # An agent on the ego's own path at x = 25: the truth of both plans (t0 = 0 and 1 s) runs
    # into it, so both are excluded and nothing is left to score.
    metrics, table = score_run(plans([0.0, 1.0], [pred, pred]), no_contexts(), ego,
                               static_box(25.0, 0.0, ego.stamp_ns))
    col = metrics["collision_pct"]
    assert col["num_excluded"] == 2 and col["num_frames"] == 0
    assert math.isnan(col["stp3"]["1s"]) and table.gt_collides.all()


def test_collision_needs_boxes_near_every_waypoint_time():
    ego = ego_log()
    # Boxes only every second (0.5 s waypoint times at x.5 s have none within 0.1 s).
    sparse = static_box(100.0, 0.0, ego.stamp_ns[::20])
    metrics, _ = score_run(plans([1.0], [truth_waypoints()]), no_contexts(), ego, sparse)
    assert metrics["collision_pct"]["num_frames"] == 0 and metrics["collision_pct"]["num_without_boxes"] == 1
    no_boxes, _ = score_run(plans([1.0], [truth_waypoints()]), no_contexts(), ego, None)
    assert no_boxes["collision_pct"] == {"available": False, "reason": "the bag has no agent-box topic"}


def test_nearest_boxes_and_frame_change():
    agents = AgentLog(np.array([0, 50_000_000, 100_000_000]), [np.full((1, 5), k, float) for k in range(3)])
    assert nearest_boxes(agents, 60_000_000)[0, 0] == 1
    assert nearest_boxes(agents, 80_000_000)[0, 0] == 2
    assert nearest_boxes(agents, 200_000_000) is not None  # 0.1 s away: still within
    assert nearest_boxes(agents, 201_000_000) is None
    # Ego at (10, 5) facing north: a box 2 m north of it, facing east, is 2 m ahead, yaw -90 deg.
    moved = boxes_in_ego_frame([[10.0, 7.0, 4.0, 2.0, 0.0]], np.array([10.0, 5.0, math.pi / 2]))
    np.testing.assert_allclose(moved, [[2.0, 0.0, 4.0, 2.0, -math.pi / 2]], atol=1e-12)


def test_meta_action_accuracy_against_labels_from_the_future():
    # Braking at 1.5 m/s^2 from 10 m/s for the whole log: every window is decelerate, straight.
    ego = ego_log(speed=10.0, accel=-1.5, duration_s=6.0)
    right = [[ma.LAT_STRAIGHT, ma.LON_DECELERATE]] * 3
    wrong_lon = [[ma.LAT_STRAIGHT, ma.LON_KEEP]] * 3
    one_wrong = [[ma.LAT_STRAIGHT, ma.LON_DECELERATE], [ma.LAT_LEFT, ma.LON_DECELERATE],
                 [ma.LAT_STRAIGHT, ma.LON_DECELERATE]]
    gt = lambda t0: np.stack([10.0 * (t0 + 0.5 * STEPS) - 0.75 * (t0 + 0.5 * STEPS) ** 2  # noqa: E731
                              - (10.0 * t0 - 0.75 * t0**2), np.zeros(6)], axis=1)
    metrics, table = score_run(plans([0.5, 1.0, 2.0], [gt(0.5), gt(1.0), gt(2.0)],
                                     decisions=[right, wrong_lon, one_wrong]), no_contexts(), ego)
    meta = metrics["meta_actions"]
    np.testing.assert_array_equal(table.labels, [right] * 3)
    # Lateral: 8 of 9 right; longitudinal: 6 of 9; joint: 3 + 0 + 2 = 5 of 9.
    assert (meta["lateral"], meta["longitudinal"], meta["joint"]) == pytest.approx((8 / 9, 6 / 9, 5 / 9))
    assert meta["per_horizon"]["+1s"] == pytest.approx({"lateral": 2 / 3, "longitudinal": 2 / 3, "joint": 1 / 3})
    assert meta["label_distribution"]["longitudinal"]["decelerate"] == 9
    assert meta["num_frames"] == 3
    assert metrics["l2_m"]["stp3"]["3s"] == pytest.approx(0.0, abs=1e-9)


def test_runtime_latency_rates_and_context_age():
    n = 21
    stamps_s = np.arange(n) * 0.05
    log = plans(stamps_s, [truth_waypoints()] * n, status=[2] + [0] * 19 + [1], receive_offset_ms=30.0)
    # Published 10 ms after the stamp, received 30 ms after: end-to-end 20 ms for every plan.
    stamps = log.stamp_ns
    published = PublishedLog(stamps, stamps + 10_000_000)
    log.waypoints[0] = np.nan  # NO_CONTEXT: no trajectory, no inference time counted
    log.context_seq[0] = 0
    log.context_age_ms[1:] = np.linspace(100.0, 300.0, n - 1)
    contexts = ContextLog(T0 + np.array([0, 500, 1000]) * 1_000_000, T0 + np.array([40, 540, 1040]) * 1_000_000,
                          np.array([1, 2, 3]), np.array([30.0, 32.0, 34.0]), model_id="tiny-x")
    metrics, _ = score_run(log, contexts, ego_log(), None, published)
    rt = metrics["runtime"]
    assert rt["end_to_end_ms"]["count"] == n - 1 and rt["end_to_end_ms"]["median"] == pytest.approx(20.0)
    assert rt["inference_ms"]["count"] == n - 1
    assert rt["context_age_ms"]["median"] == pytest.approx(200.0) and rt["context_age_ms"]["max"] == pytest.approx(300.0)
    assert rt["plan_rate"]["bag_time"]["rate_hz"] == pytest.approx(20.0)
    assert rt["plan_rate"]["wall"]["rate_hz"] == pytest.approx(20.0)
    assert rt["context"]["rate_wall"]["rate_hz"] == pytest.approx(2.0)
    assert rt["context"]["compute_ms"]["median"] == pytest.approx(32.0)
    assert rt["status_counts"] == {"OK": 19, "STALE_CONTEXT": 1, "NO_CONTEXT": 1, "INPUT_ERROR": 0}
    assert metrics["frames"]["coverage"] == pytest.approx(1.0)


def test_report_files_are_written_and_json_is_strict(tmp_path):
    ego = ego_log()
    log = plans([1.0, 2.0, 9.5], [truth_waypoints() + [0.0, 0.5]] * 3)
    metrics, table = score_run(log, no_contexts(), ego, static_box(60.0, 10.0, ego.stamp_ns))
    metrics["replay"] = {"input_bag": "x", "synthetic": True, "bag_error": "x.mcap is truncated or corrupt: ..."}
    paths = write_report(tmp_path, metrics, table)
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    assert names == {"metrics.json", "frames.csv", "report.md", "plots/l2_over_time.png", "plots/latency_hist.png",
                     "plots/bev_overlay.png"}
    assert all(p.stat().st_size > 0 for p in paths)
    loaded = json.loads((tmp_path / "metrics.json").read_text())  # strict: NaN became null
    assert loaded["l2_m"]["uniad"]["1s"] == pytest.approx(0.5) and loaded["runtime"]["end_to_end_ms"]["median"] is None
    report = (tmp_path / "report.md").read_text()
    assert "SYNTHETIC" in report and "truncated or corrupt" in report and "stp3" in report
    lines = summary_lines(metrics)
    assert any("BAG ERROR" in line for line in lines) and any("L2 [m]" in line for line in lines)
    assert len((tmp_path / "frames.csv").read_text().splitlines()) == 1 + 3
