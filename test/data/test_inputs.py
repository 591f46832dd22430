"""Route target points, ego transforms, image resizing and the frame history."""

import math

import numpy as np
import pytest

from automot_ros.data.ego import EgoState
from automot_ros.data.image import to_model_frame
from automot_ros.data.route import next_target_points
from automot_ros.errors import InputError
from automot_ros.runtime.frame_history import FrameHistory


def test_ego_frame_transform_is_x_forward_y_left():
    ego = EgoState(stamp_ns=0, x=10.0, y=5.0, yaw=math.pi / 2, speed_mps=3.0)
    # North of the ego (which faces north) is ahead; west of it is to its left.
    np.testing.assert_allclose(ego.to_ego_frame(np.array([[10.0, 8.0], [7.0, 5.0]])), [[3.0, 0.0], [0.0, 3.0]], atol=1e-12)


def test_non_finite_ego_state_names_the_field():
    with pytest.raises(InputError, match="speed"):
        EgoState(stamp_ns=0, x=0.0, y=0.0, yaw=0.0, speed_mps=float("nan"))


def test_target_points_are_arc_lengths_ahead_and_clamp_at_the_destination():
    route = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 30.0]])  # east 10 m, then north 30 m
    ego = EgoState(stamp_ns=0, x=4.0, y=0.5, yaw=0.0, speed_mps=5.0)  # slightly off the route
    targets = next_target_points(route, ego, lookahead_m=(10.0, 20.0))
    # Projection at s = 4: +10 m -> (10, 4), +20 m -> (10, 14); in the ego frame subtract (4, 0.5).
    np.testing.assert_allclose(targets, [[6.0, 3.5], [6.0, 13.5]], atol=1e-9)
    near_end = EgoState(stamp_ns=0, x=10.0, y=25.0, yaw=math.pi / 2, speed_mps=5.0)
    np.testing.assert_allclose(next_target_points(route, near_end), [[5.0, 0.0], [5.0, 0.0]], atol=1e-9)


@pytest.mark.parametrize("route", [np.zeros((1, 2)), np.zeros((3, 3)), np.array([[0.0, 0.0], [np.nan, 1.0]])])
def test_bad_routes_raise_input_error(route):
    with pytest.raises(InputError, match="route"):
        next_target_points(route, EgoState(0, 0.0, 0.0, 0.0, 0.0))


def test_model_frame_is_chw_at_the_requested_size():
    rgb = np.zeros((256, 512, 3), dtype=np.uint8)
    rgb[:, :256] = (255, 0, 0)
    frame = to_model_frame(rgb, 64, 128)
    assert frame.shape == (3, 64, 128) and frame.dtype == np.uint8
    assert frame[0, :, :64].min() == 255 and frame[0, :, 64:].max() == 0 and frame[1:].max() == 0
    with pytest.raises(InputError):
        to_model_frame(rgb.astype(np.float32), 64, 128)


def test_frame_history_picks_frames_an_interval_apart_newest_last():
    history = FrameHistory(frames=4, interval_s=0.25)
    for i in range(40):  # 20 Hz for 2 s
        history.add(i * 50_000_000, np.full((1,), i))
    stamps, frames = history.select()
    assert stamps == [1_200_000_000, 1_450_000_000, 1_700_000_000, 1_950_000_000]
    assert frames[:, 0].tolist() == [24, 29, 34, 39]


def test_frame_history_is_incomplete_until_it_spans_the_window_and_rejects_time_going_back():
    history = FrameHistory(frames=4, interval_s=0.25)
    for i in range(10):  # 0.45 s at 20 Hz: not yet 0.75 s of history
        history.add(i * 50_000_000, np.zeros(1))
    assert history.select() is None
    with pytest.raises(InputError, match="not after"):
        history.add(100_000_000, np.zeros(1))
