"""Meta-action labels from ground-truth futures, and decision accuracy, on hand-computed cases."""

import math

import numpy as np
import pytest

from automot_ros.eval import meta_actions as ma
from automot_ros.eval.meta_actions import meta_action_accuracy, meta_action_labels

T = 0.5 * np.arange(1, 7)  # the 6 waypoint times, 0.5 ... 3.0 s


def along_x(x_of_t) -> np.ndarray:
    return np.stack([x_of_t, np.zeros_like(x_of_t)], axis=1)


def circle(speed_mps: float, yaw_rate_rad_s: float, t: np.ndarray) -> np.ndarray:
    """Positions [K, 2] at times t on a constant-speed arc from the origin heading +x."""
    radius = speed_mps / yaw_rate_rad_s
    return np.stack([radius * np.sin(yaw_rate_rad_s * t), radius * (1.0 - np.cos(yaw_rate_rad_s * t))], axis=1)


def test_class_indices_match_the_ros_message_constants():
    assert (ma.LAT_STRAIGHT, ma.LAT_SLIGHT_LEFT, ma.LAT_LEFT, ma.LAT_SLIGHT_RIGHT, ma.LAT_RIGHT) == (0, 1, 2, 3, 4)
    assert (ma.LON_STOP, ma.LON_DECELERATE, ma.LON_KEEP, ma.LON_ACCELERATE) == (0, 1, 2, 3)
    msg = pytest.importorskip("automot_msgs.msg").MetaAction
    assert [getattr(msg, f"LAT_{n}") for n in ("STRAIGHT", "SLIGHT_LEFT", "LEFT", "SLIGHT_RIGHT", "RIGHT")] == [
        ma.LAT_STRAIGHT, ma.LAT_SLIGHT_LEFT, ma.LAT_LEFT, ma.LAT_SLIGHT_RIGHT, ma.LAT_RIGHT,
    ]
    assert [getattr(msg, f"LON_{n}") for n in ("STOP", "DECELERATE", "KEEP", "ACCELERATE")] == [
        ma.LON_STOP, ma.LON_DECELERATE, ma.LON_KEEP, ma.LON_ACCELERATE,
    ]


def test_standing_still_is_stop_and_straight_even_with_position_jitter():
    np.testing.assert_array_equal(meta_action_labels(np.zeros((6, 2)), 0.5), [[0, 0]] * 3)
    # 2 cm jitter: motion directions are random, but below STOP_SPEED_MPS the heading is held.
    jitter = 0.02 * np.array([[1, 0], [-1, 1], [0, -1], [1, 1], [-1, 0], [0, 1]], dtype=float)
    np.testing.assert_array_equal(meta_action_labels(jitter, 0.5), [[ma.LAT_STRAIGHT, ma.LON_STOP]] * 3)


def test_constant_speed_straight_is_keep():
    np.testing.assert_array_equal(meta_action_labels(along_x(10.0 * T), 0.5), [[ma.LAT_STRAIGHT, ma.LON_KEEP]] * 3)


def test_accelerating_from_positions_and_from_given_speeds():
    # x = 5 t + t^2: central differences give v(1) = 7, v(2) = 9 exactly; the ends are
    # one-sided: v(0) -> 5.5, v(3) -> 10.5. Window accelerations 1.5, 2, 1.5 m/s^2.
    labels = meta_action_labels(along_x(5.0 * T + T**2), 0.5)
    np.testing.assert_array_equal(labels, [[ma.LAT_STRAIGHT, ma.LON_ACCELERATE]] * 3)
    # Measured speeds override the positions: 10, 10, 10.4, 10.8, 10.8, 10.2, 9.6 m/s gives
    # +0.4 (keep), +0.4 (keep), -1.2 (decelerate) per second.
    speeds = [10.0, 10.0, 10.4, 10.8, 10.8, 10.2, 9.6]
    labels = meta_action_labels(along_x(10.0 * T), 0.5, speeds_mps=speeds)
    np.testing.assert_array_equal(labels[:, 1], [ma.LON_KEEP, ma.LON_KEEP, ma.LON_DECELERATE])


def test_braking_to_a_stop():
    # v0 = 6 m/s, -3 m/s^2 until standing at t = 2 s (x = 6 m), then standing.
    x = np.where(T <= 2.0, 6.0 * T - 1.5 * T**2, 6.0)
    # Speeds: v(0) = 2.625 / 0.5 = 5.25, v(1) = (5.625 - 2.625) / 1 = 3.0, v(2) = 0.375, v(3) = 0.
    labels = meta_action_labels(along_x(x), 0.5)
    np.testing.assert_array_equal(
        labels, [[ma.LAT_STRAIGHT, ma.LON_DECELERATE], [ma.LAT_STRAIGHT, ma.LON_STOP], [ma.LAT_STRAIGHT, ma.LON_STOP]]
    )


def test_left_turn_and_slight_right_turn():
    # On an arc the central-difference chord is tangent, so headings are exact inside; the
    # last sample is one-sided (heading at 2.75 s), so the +2 s window sees 0.75 of the turn.
    left = meta_action_labels(circle(5.0, math.radians(30.0), T), 0.5)  # 30, 30, 22.5 deg
    np.testing.assert_array_equal(left, [[ma.LAT_LEFT, ma.LON_KEEP]] * 3)
    slight_right = meta_action_labels(circle(10.0, math.radians(-10.0), T), 0.5)  # -10, -10, -7.5 deg
    np.testing.assert_array_equal(slight_right, [[ma.LAT_SLIGHT_RIGHT, ma.LON_KEEP]] * 3)
    # Same turns sampled at 0.1 s: the +2 s window now sees 0.95 of the turn.
    t_dense = 0.1 * np.arange(1, 31)
    np.testing.assert_array_equal(meta_action_labels(circle(5.0, math.radians(30.0), t_dense), 0.1), left)
    right = meta_action_labels(circle(5.0, math.radians(-25.0), t_dense), 0.1)
    np.testing.assert_array_equal(right, [[ma.LAT_RIGHT, ma.LON_KEEP]] * 3)


def test_lateral_offset_without_heading_change_is_a_slight_turn():
    # A quick shift 0.8 m left in the first second, then straight at 10 m/s.
    xy = np.array([[5.0, 0.4], [10.0, 0.8], [15.0, 0.8], [20.0, 0.8], [25.0, 0.8], [30.0, 0.8]])
    # Now: heading 0 -> atan(0.4 / 10) = 2.3 deg (< 5), but the end is 0.8 m left -> slight left.
    # +1 s: heading 2.3 -> 0 deg; the end is 10 sin(2.3 deg) = 0.4 m right of the start pose's
    # straight line (< 0.5) -> straight.
    np.testing.assert_array_equal(
        meta_action_labels(xy, 0.5), [[ma.LAT_SLIGHT_LEFT, ma.LON_KEEP]] + [[ma.LAT_STRAIGHT, ma.LON_KEEP]] * 2
    )


def test_labels_reject_unusable_inputs():
    with pytest.raises(ValueError, match="whole number"):
        meta_action_labels(np.zeros((10, 2)), 0.3)
    with pytest.raises(ValueError, match="need 6"):
        meta_action_labels(np.zeros((5, 2)), 0.5)
    with pytest.raises(ValueError, match="speeds"):
        meta_action_labels(np.zeros((6, 2)), 0.5, speeds_mps=np.zeros(6))


def test_accuracy_overall_per_horizon_and_joint():
    labels = np.array([[[0, 2], [1, 2], [2, 1]], [[0, 0], [0, 0], [0, 3]]])
    pred = np.array([[[0, 2], [1, 3], [3, 1]], [[0, 0], [4, 0], [0, 3]]])
    result = meta_action_accuracy(pred, labels)
    # Lateral wrong at (0, +2s), (1, +1s); longitudinal wrong at (0, +1s): 4/6, 5/6, joint 3/6.
    assert result["lateral"] == pytest.approx(4 / 6)
    assert result["longitudinal"] == pytest.approx(5 / 6)
    assert result["joint"] == pytest.approx(3 / 6)
    expected = {
        "now": {"lateral": 1.0, "longitudinal": 1.0, "joint": 1.0},
        "+1s": {"lateral": 0.5, "longitudinal": 0.5, "joint": 0.0},
        "+2s": {"lateral": 0.5, "longitudinal": 1.0, "joint": 0.5},
    }
    assert list(result["per_horizon"]) == list(expected)
    for horizon, values in expected.items():
        assert result["per_horizon"][horizon] == pytest.approx(values)
    empty = meta_action_accuracy(np.zeros((0, 3, 2)), np.zeros((0, 3, 2)))
    assert math.isnan(empty["joint"]) and math.isnan(empty["per_horizon"]["now"]["lateral"])
