"""One converter per message type: images, odometry, route, plans."""

import math

import cv2
import numpy as np
import pytest
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CompressedImage, Image

from automot_ros.errors import InputError
from automot_ros.ros.image_conv import rgb_to_image, to_rgb
from automot_ros.ros.odometry_conv import odometry_to_ego, yaw_to_quaternion
from automot_ros.ros.plan_conv import describe_meta_actions, plan_to_markers, plan_to_msg, plan_to_path
from automot_ros.ros.route_conv import path_to_xy, xy_to_path
from automot_ros.ros.time_conv import ns_to_stamp, stamp_to_ns
from automot_ros.runtime.plan_result import PlanResult, PlanStatus, Trajectory

RGB = np.random.default_rng(0).integers(0, 255, size=(6, 8, 3), dtype=np.uint8)


def image(encoding, pixels, step_pad=0):
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding)
    rows = pixels.reshape(pixels.shape[0], -1)
    rows = np.hstack([rows, np.zeros((rows.shape[0], step_pad), np.uint8)])
    msg.step = rows.shape[1]
    msg.data = rows.tobytes()
    return msg


@pytest.mark.parametrize(
    "encoding, pixels",
    [("rgb8", RGB), ("bgr8", RGB[:, :, ::-1]), ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])),
     ("bgra8", np.dstack([RGB[:, :, ::-1], np.zeros(RGB.shape[:2], np.uint8)]))],
)
def test_images_decode_to_rgb_including_row_padding(encoding, pixels):
    np.testing.assert_array_equal(to_rgb(image(encoding, np.ascontiguousarray(pixels), step_pad=3)), RGB)


def test_rgb_round_trip_and_compressed_png():
    np.testing.assert_array_equal(to_rgb(rgb_to_image(RGB, ns_to_stamp(5), "cam")), RGB)
    ok, png = cv2.imencode(".png", RGB[:, :, ::-1])
    np.testing.assert_array_equal(to_rgb(CompressedImage(format="png", data=png.tobytes())), RGB)


@pytest.mark.parametrize(
    "msg, problem",
    [
        (Image(height=6, width=8, encoding="32FC1", step=32, data=bytes(192)), "encoding"),
        (Image(height=6, width=8, encoding="rgb8", step=24, data=bytes(100)), "bytes"),
        (Image(height=0, width=8, encoding="rgb8", step=24, data=b""), "empty"),
        (CompressedImage(format="jpeg", data=b"not a jpeg"), "decode"),
    ],
)
def test_bad_images_raise_input_error(msg, problem):
    with pytest.raises(InputError, match=problem):
        to_rgb(msg)


def test_odometry_gives_pose_yaw_and_speed():
    msg = Odometry()
    msg.header.stamp = ns_to_stamp(3_000_000_007)
    msg.pose.pose.position.x, msg.pose.pose.position.y = 1.0, 2.0
    q = yaw_to_quaternion(-2.5)
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = q
    msg.twist.twist.linear.x, msg.twist.twist.linear.y = 3.0, 4.0
    ego = odometry_to_ego(msg)
    assert (ego.stamp_ns, ego.x, ego.y, ego.speed_mps) == (3_000_000_007, 1.0, 2.0, 5.0)
    assert math.isclose(ego.yaw, -2.5)
    assert stamp_to_ns(ns_to_stamp(3_000_000_007)) == 3_000_000_007
    msg.twist.twist.linear.x = float("nan")
    with pytest.raises(InputError, match="speed"):
        odometry_to_ego(msg)


def test_route_round_trip_and_empty_route_rejected():
    xy = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(path_to_xy(xy_to_path(xy, ns_to_stamp(0), "odom")), xy)
    with pytest.raises(InputError, match="route"):
        path_to_xy(Path())


def test_plan_conversions_carry_every_output():
    traj = Trajectory(
        lateral=np.array([0, 3, 4]),
        longitudinal=np.array([2, 1, 0]),
        confidence=np.array([0.9, 0.5, 0.25]),
        path_xy=np.stack([np.arange(1.0, 21.0), np.zeros(20)], axis=1),
        waypoints_xy=np.array([[1.0, 0.0], [2.0, 0.0], [2.0, 1.0], [2.0, 2.0], [2.0, 2.0], [2.0, 2.0]]),
    )
    result = PlanResult(PlanStatus.STALE_CONTEXT, 1_500_000_000, traj, context_seq=7, context_age_ms=800.0,
                        inference_ms=12.5, backend="torch")
    msg = plan_to_msg(result, "base_link")
    assert (msg.status, msg.context_seq, msg.backend, msg.header.stamp.sec, msg.header.stamp.nanosec) == (
        1, 7, "torch", 1, 500_000_000)
    assert [(m.lateral, m.longitudinal, m.time_from_start.sec) for m in msg.meta_actions] == [(0, 2, 0), (3, 1, 1), (4, 0, 2)]
    assert len(msg.path) == 20 and msg.path[-1].x == 20.0
    assert [round(w.speed, 6) for w in msg.waypoints] == [2.0, 2.0, 2.0, 2.0, 0.0, 0.0]
    assert [round(w.heading, 6) for w in msg.waypoints[:3]] == [0.0, 0.0, round(math.pi / 2, 6)]
    assert msg.waypoints[0].time_from_start.nanosec == 500_000_000 and msg.waypoints[5].time_from_start.sec == 3
    assert describe_meta_actions(result).startswith("now: straight, keep | +1s: slight right, decelerate")
    assert len(plan_to_path(result, "base_link").poses) == 20
    assert len(plan_to_markers(result, "base_link").markers) == 4


def test_plan_without_trajectory_has_no_path_and_clears_markers():
    result = PlanResult(PlanStatus.NO_CONTEXT, 10)
    msg = plan_to_msg(result, "base_link")
    assert msg.status == 2 and not msg.path and not msg.waypoints and not msg.meta_actions
    assert not plan_to_path(result, "base_link").poses
    markers = plan_to_markers(result, "base_link").markers
    assert markers[0].action == markers[0].DELETEALL and markers[1].text == "NO_CONTEXT"
