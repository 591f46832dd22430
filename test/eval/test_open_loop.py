"""Open-loop L2 and collision metrics on hand-computed cases (DESIGN.md section 5)."""

import math

import numpy as np
import pytest

from automot_ros.eval.open_loop import (
    EGO_LENGTH_M,
    EGO_WIDTH_M,
    FUTURE_TIMES_S,
    boxes_overlap,
    collision_hits,
    episode_bootstrap_difference,
    collision_flags,
    ego_boxes_from_waypoints,
    future_in_ego_frame,
    l2_at_horizons,
    l2_errors,
    path_scores,
)

STEPS = np.arange(1, 7)  # step index 1..6


def straight_line(step_m: float, y: float = 0.0) -> np.ndarray:
    """[6, 2] waypoints step_m apart along +x at lateral offset y."""
    return np.stack([step_m * STEPS, np.full(6, y)], axis=1)


def two_frames_with_growing_error():
    """Frame 0 is off by 0.1 m per step along x, frame 1 by 0.3 m per step along y."""
    gt = np.stack([straight_line(2.0), straight_line(2.0)])
    pred = gt.copy()
    pred[0, :, 0] += 0.1 * STEPS  # per-step L2 0.1 ... 0.6
    pred[1, :, 1] += 0.3 * STEPS  # per-step L2 0.3 ... 1.8
    return pred, gt


def test_l2_errors_are_per_step_distances():
    pred, gt = two_frames_with_growing_error()
    np.testing.assert_allclose(l2_errors(pred, gt), [0.1 * STEPS, 0.3 * STEPS])
    pred[0, 2] = gt[0, 2] + [3.0, 4.0]
    assert l2_errors(pred, gt)[0, 2] == pytest.approx(5.0)


def test_l2_stp3_averages_all_steps_up_to_the_horizon():
    per_step = l2_errors(*two_frames_with_growing_error())
    # Frame 0: mean(0.1, 0.2) = 0.15, mean(0.1..0.4) = 0.25, mean(0.1..0.6) = 0.35;
    # frame 1 three times that; the frame mean is twice frame 0.
    result = l2_at_horizons(per_step, "stp3")
    assert result == pytest.approx({"1s": 0.3, "2s": 0.5, "3s": 0.7, "avg": 0.5})


def test_l2_uniad_takes_the_step_at_the_horizon():
    per_step = l2_errors(*two_frames_with_growing_error())
    # Steps 2, 4, 6: frame 0 0.2/0.4/0.6, frame 1 0.6/1.2/1.8.
    result = l2_at_horizons(per_step, "uniad")
    assert result == pytest.approx({"1s": 0.4, "2s": 0.8, "3s": 1.2, "avg": 0.8})


def test_l2_skips_frames_without_a_full_ground_truth_future():
    pred, gt = two_frames_with_growing_error()
    gt[1, 5] = np.nan  # log ends before the last waypoint of frame 1
    per_step = l2_errors(pred, gt)
    assert l2_at_horizons(per_step, "uniad") == pytest.approx({"1s": 0.2, "2s": 0.4, "3s": 0.6, "avg": 0.4})
    explicit = l2_at_horizons(per_step, "stp3", valid=[True, False])
    assert explicit == pytest.approx({"1s": 0.15, "2s": 0.25, "3s": 0.35, "avg": 0.25})
    with pytest.raises(ValueError, match="non-finite"):
        l2_at_horizons(per_step, "stp3", valid=[True, True])
    assert all(math.isnan(v) for v in l2_at_horizons(per_step, "stp3", valid=[False, False]).values())
    with pytest.raises(ValueError, match="convention"):
        l2_at_horizons(per_step, "nuscenes")


def test_future_in_ego_frame_interpolates_and_rotates_into_the_ego_frame():
    # Heading north (yaw 90 deg) at 2 m/s from (10, 5), odometry at 10 Hz; t0 between samples.
    stamps = np.arange(0.0, 4.01, 0.1)
    poses = np.stack([np.full_like(stamps, 10.0), 5.0 + 2.0 * stamps, np.full_like(stamps, math.pi / 2)], axis=1)
    future = future_in_ego_frame(poses, stamps, t0_s=0.25)
    np.testing.assert_allclose(future, np.stack([2.0 * np.array(FUTURE_TIMES_S), np.zeros(6)], axis=1), atol=1e-9)
    # Moving east while facing north is moving to the ego's right: negative y (REP-103).
    poses_east = np.stack([10.0 + 2.0 * stamps, np.full_like(stamps, 5.0), np.full_like(stamps, math.pi / 2)], axis=1)
    future = future_in_ego_frame(poses_east, stamps, t0_s=0.25, horizons_s=[1.0])
    np.testing.assert_allclose(future, [[0.0, -2.0]], atol=1e-9)


def test_future_in_ego_frame_interpolates_yaw_along_the_shortest_arc():
    # Driving west (yaw ~ pi) at 2 m/s; yaw jumps from +179.4 deg to -179.4 deg between
    # t = 0 and t = 1. At t0 = 0.5 the shortest arc gives exactly pi; a plain average gives 0,
    # which would flip the future behind the ego.
    stamps = np.arange(0.0, 4.01, 1.0)
    yaws = [math.pi - 0.01, -math.pi + 0.01, math.pi, math.pi, math.pi]
    poses = np.stack([-2.0 * stamps, np.zeros_like(stamps), yaws], axis=1)
    future = future_in_ego_frame(poses, stamps, t0_s=0.5)
    np.testing.assert_allclose(future, np.stack([2.0 * np.array(FUTURE_TIMES_S), np.zeros(6)], axis=1), atol=1e-9)


def test_future_in_ego_frame_is_none_when_the_log_does_not_cover_the_horizon():
    stamps = np.arange(0.0, 4.01, 0.5)
    poses = np.zeros((len(stamps), 3))
    assert future_in_ego_frame(poses, stamps, t0_s=1.0) is not None  # needs up to 4.0 exactly
    assert future_in_ego_frame(poses, stamps, t0_s=1.01) is None  # past the end
    assert future_in_ego_frame(poses, stamps, t0_s=-0.1) is None  # before the start
    with pytest.raises(ValueError, match="increasing"):
        future_in_ego_frame(poses, stamps[::-1], t0_s=1.0)


def test_ego_boxes_take_heading_from_consecutive_waypoints():
    xy = [[1.0, 0.0], [2.0, 1.0], [2.0, 1.0 + 5e-4], [2.0, 2.0], [1.0, 2.0], [1.0, 2.0]]
    boxes = ego_boxes_from_waypoints(xy)
    # First from the origin; the 0.5 mm step and the standstill keep the previous heading.
    np.testing.assert_allclose(boxes[:, 4], [0.0, math.pi / 4, math.pi / 4, math.pi / 2, math.pi, math.pi])
    np.testing.assert_allclose(boxes[:, :2], xy)
    np.testing.assert_allclose(boxes[:, 2:4], np.tile([EGO_LENGTH_M, EGO_WIDTH_M], (6, 1)))
    assert ego_boxes_from_waypoints([[0.0, 0.0]], start_heading=0.3)[0, 4] == pytest.approx(0.3)


def test_axis_aligned_boxes_overlap_or_are_separated():
    a = [0.0, 0.0, 4.0, 2.0, 0.0]
    assert boxes_overlap(a, a)
    assert boxes_overlap(a, [3.9, 0.0, 4.0, 2.0, 0.0])
    assert not boxes_overlap(a, [4.1, 0.0, 4.0, 2.0, 0.0])
    assert not boxes_overlap(a, [4.0, 0.0, 4.0, 2.0, 0.0])  # touching edges: zero area
    assert not boxes_overlap(a, [0.0, 2.05, 4.0, 2.0, 0.0])
    np.testing.assert_array_equal(
        boxes_overlap(a, [[3.9, 0.0, 4.0, 2.0, 0.0], [0.0, 5.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0]]),
        [True, False, True],
    )


def test_rotated_boxes_use_their_own_axes():
    # Ego turned 90 deg: it spans x in [-0.925, 0.925]; unrotated it would reach x = 2.042.
    ego_north = [0.0, 0.0, EGO_LENGTH_M, EGO_WIDTH_M, math.pi / 2]
    assert not boxes_overlap(ego_north, [1.5, 0.0, 1.0, 1.0, 0.0])
    assert boxes_overlap([0.0, 0.0, EGO_LENGTH_M, EGO_WIDTH_M, 0.0], [1.5, 0.0, 1.0, 1.0, 0.0])
    # A unit diamond off the corner of a unit square: their axis-aligned bounds overlap, but
    # along the diamond's axis (1, 1)/sqrt(2) the square reaches 1/sqrt(2) and the diamond
    # starts at 2c/sqrt(2) - 0.5. They touch at c = 0.5 + 0.25 * sqrt(2).
    square = [0.0, 0.0, 1.0, 1.0, 0.0]
    touch = 0.5 + 0.25 * math.sqrt(2.0)
    assert not boxes_overlap(square, [1.0, 1.0, 1.0, 1.0, math.pi / 4])
    assert boxes_overlap(square, [0.8, 0.8, 1.0, 1.0, math.pi / 4])
    assert not boxes_overlap(square, [touch + 1e-6, touch + 1e-6, 1.0, 1.0, math.pi / 4])
    assert boxes_overlap(square, [touch - 1e-6, touch - 1e-6, 1.0, 1.0, math.pi / 4])
    assert boxes_overlap([touch - 1e-6, touch - 1e-6, 1.0, 1.0, math.pi / 4], square)  # symmetric


# A parked car (4 m x 2 m) spanning x in [6, 10], y in [-1, 1], at every step.
PARKED = [np.array([[8.0, 0.0, 4.0, 2.0, 0.0]])] * 6
NO_AGENTS = [np.zeros((0, 5))] * 6


def test_collision_flags_are_per_step_against_that_steps_agents():
    ego = ego_boxes_from_waypoints(straight_line(2.0))
    # Ego centers at x = 2, 4, ... 12 reach 2.042 m forward and back: steps 2-6 hit [6, 10].
    np.testing.assert_array_equal(collision_flags(ego, PARKED), [0, 1, 1, 1, 1, 1])
    # A crossing agent only at the third step's place at the third step.
    crossing = [np.array([[6.0, 20.0 - 8.0 * k, 4.0, 2.0, math.pi / 2]]) for k in range(1, 7)]
    crossing[2] = np.array([[6.0, 0.0, 4.0, 2.0, math.pi / 2]])
    np.testing.assert_array_equal(collision_flags(ego, crossing), [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(collision_flags(ego, NO_AGENTS), np.zeros(6))


def test_collision_rates_in_both_conventions_with_the_exclusion_rule():
    frames = [
        # Plan drives into the parked car (steps 2-6); ground truth passes 3 m to the left.
        (straight_line(2.0), straight_line(2.0, y=3.0), PARKED),
        # Nothing around: no collision.
        (straight_line(2.0), straight_line(2.0), NO_AGENTS),
        # Ground truth itself drives through the parked car: excluded, though the plan is clear.
        (straight_line(2.0, y=3.0), straight_line(2.0), PARKED),
        # Ground truth incomplete: skipped, not counted as excluded.
        (straight_line(2.0), np.full((6, 2), np.nan), PARKED),
    ]
    pred, gt, agents = (np.stack([f[0] for f in frames]), np.stack([f[1] for f in frames]), [f[2] for f in frames])
    hits = collision_hits(pred, agents, gt)
    stp3 = hits.at_horizons("stp3")
    # Frame 0: mean(0,1) = 50 %, mean(0,1,1,1) = 75 %, 5/6 = 83.3 %; frame 1: 0.
    three_s = 250.0 / 6
    assert stp3 == pytest.approx(
        {"1s": 25.0, "2s": 37.5, "3s": three_s, "avg": (25.0 + 37.5 + three_s) / 3, "num_frames": 2, "num_excluded": 1}
    )
    uniad = hits.at_horizons("uniad")
    assert uniad == pytest.approx({"1s": 50.0, "2s": 50.0, "3s": 50.0, "avg": 50.0, "num_frames": 2, "num_excluded": 1})
    only_first = collision_hits(pred, agents, gt, valid=[True, False, False, False]).at_horizons("uniad")
    assert only_first == pytest.approx(
        {"1s": 100.0, "2s": 100.0, "3s": 100.0, "avg": 100.0, "num_frames": 1, "num_excluded": 0}
    )
    # Per-frame shares of each horizon's rate and of "avg": their mean over the scored frames
    # is the rate; the rest NaN.
    for convention, rates in (("stp3", stp3), ("uniad", uniad)):
        for horizon in ("1s", "2s", "3s", "avg"):
            scores = hits.frame_scores(convention, horizon)
            assert np.isnan(scores[2:]).all()
            assert float(scores[:2].mean()) == pytest.approx(rates[horizon])
    assert hits.frame_scores("stp3")[0] == pytest.approx(stp3["avg"] * 2)  # frame 1 scores 0
    with pytest.raises(ValueError, match="horizon"):
        hits.frame_scores("stp3", "4s")


def test_episode_bootstrap_difference_resamples_whole_episodes():
    episode = np.repeat([0, 1, 2, 3], 5)
    model = np.zeros(20)
    baseline = np.zeros(20)
    baseline[:5] = 100.0  # the baseline collides in every frame of episode 0
    baseline[5] = np.nan  # a frame neither policy is scored on
    model[5] = np.nan
    diff = episode_bootstrap_difference(model, baseline, episode)
    assert diff["episodes"] == 4
    assert diff["difference"] == pytest.approx(-500.0 / 19)
    # Draws without episode 0 give 0, draws with it all of it more: the interval spans both.
    assert diff["ci95_high"] == pytest.approx(0.0) and diff["ci95_low"] < -40.0
    assert episode_bootstrap_difference(model, baseline, episode) == diff  # seeded
    same = episode_bootstrap_difference(baseline, baseline, episode)
    assert same["difference"] == same["ci95_low"] == same["ci95_high"] == 0.0


def arc_path(end_offset_m: float, points: int = 20) -> np.ndarray:
    """[points, 2]: 1 m apart along +x, bending quadratically to end_offset_m sideways."""
    x = np.arange(1, points + 1, dtype=float)
    return np.stack([x, end_offset_m * (x / points) ** 2], axis=1)


def test_path_scores_take_l2_at_5_10_20_m_and_along_the_whole_path():
    gt = np.stack([arc_path(0.0), arc_path(0.0)])
    pred = gt.copy()
    pred[0, :, 1] += 0.1 * np.arange(1, 21)  # 0.1 m off per metre: 0.5 at 5 m, 1.0 at 10 m, 2.0 at 20 m
    scores = path_scores(pred, gt)
    assert scores["l2_m"] == pytest.approx({"5m": 0.25, "10m": 0.5, "20m": 1.0, "avg": 0.1 * 10.5 / 2})
    assert scores["turn_frames"] == 0 and math.isnan(scores["turn_lateral_m"])  # no turn driven


def test_path_turn_error_is_signed_toward_the_turn_on_both_sides():
    # A left turn ending 8 m left and a right turn ending 6 m right, both planned 2 m short of
    # the turn (wide), and a straight drive (not a turn) planned 3 m off.
    gt = np.stack([arc_path(8.0), arc_path(-6.0), arc_path(0.0)])
    pred = np.stack([arc_path(6.0), arc_path(-4.0), arc_path(3.0)])
    scores = path_scores(pred, gt)
    assert scores["turn_frames"] == 2 and scores["turn_lateral_m"] == pytest.approx(-2.0)
    over = path_scores(np.stack([arc_path(9.0), arc_path(-7.0), arc_path(0.0)]), gt)
    assert over["turn_lateral_m"] == pytest.approx(1.0)  # turning more than the expert is positive


def test_path_scores_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\[N, P, 2\]"):
        path_scores(np.zeros((2, 20, 2)), np.zeros((2, 10, 2)))
