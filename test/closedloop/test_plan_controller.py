"""The plan-tracking controller (control/controller.py) on hand-made plans."""

from __future__ import annotations

import math

import numpy as np
import pytest

from automot_ros.control.controller import (
    ControllerConfig,
    Plan,
    PlanController,
    lookahead_point,
    plan_from_arrays,
    pure_pursuit_angle,
    route_plan,
    straight_plan,
    target_speed,
    transform_points,
)

CFG = ControllerConfig()
ORIGIN = (0.0, 0.0, 0.0)


def straight_waypoints(speed):
    return np.stack([speed * 0.5 * np.arange(1, 7), np.zeros(6)], axis=1)


def circle_path(radius, n=20, spacing=1.0):
    """Points 1..n m of arc along a circle tangent to x at the rear axle (+R: to the left)."""
    rear = -CFG.vehicle.rear_axle_m
    s = spacing * np.arange(1, n + 1) + CFG.vehicle.rear_axle_m  # arc length from the rear axle
    phi = s / abs(radius)
    return np.stack([rear + abs(radius) * np.sin(phi), np.sign(radius) * abs(radius) * (1 - np.cos(phi))], axis=1)


def run(controller, plan, speed, steps=60, pose=ORIGIN):
    controller.set_plan(plan)
    control = None
    for _ in range(steps):
        control = controller.update(plan.stamp_s, pose, speed)
    return control


def test_straight_path_needs_no_steering_and_throttles_up_to_the_planned_speed():
    controller = PlanController()
    control = run(controller, straight_plan(0.0, ORIGIN, 8.0), speed=5.0)
    assert control.mode == "track" and control.steering == 0.0
    assert control.target_speed_mps == pytest.approx(8.0)
    assert 0.0 < control.throttle_brake <= 1.0
    assert control.accel_cmd == pytest.approx(CFG.max_accel)  # 3 m/s too slow: accelerate at the limit


def test_faster_than_planned_brakes_gently_within_the_comfort_bound():
    controller = PlanController()
    control = run(controller, straight_plan(0.0, ORIGIN, 5.0), speed=8.0)
    assert control.throttle_brake < 0.0
    assert -CFG.max_decel <= control.accel_cmd < 0.0
    # Brake force per MetaDrive's measured gain: accel + coast = throttle_brake x 20 m/s^2.
    assert control.throttle_brake == pytest.approx((control.accel_cmd + 0.3) / 20.0)


def test_on_target_speed_the_command_balances_the_coasting_loss():
    controller = PlanController()
    control = run(controller, straight_plan(0.0, ORIGIN, 6.0), speed=6.0)
    assert control.accel_cmd == pytest.approx(0.0, abs=1e-9)
    assert control.throttle_brake == pytest.approx(0.3 / 2.9)


@pytest.mark.parametrize("radius", [15.0, -15.0, 40.0, -8.0])
def test_pure_pursuit_recovers_the_curvature_of_a_circle_with_its_sign(radius):
    angle = pure_pursuit_angle(circle_path(radius), speed_mps=6.0, cfg=CFG)
    assert angle == pytest.approx(math.atan(CFG.vehicle.wheelbase_m / radius), rel=0.02)
    controller = PlanController()
    plan = Plan(0.0, ORIGIN, circle_path(radius), straight_waypoints(6.0))
    control = run(controller, plan, speed=6.0)
    assert control.steering == pytest.approx(angle / CFG.vehicle.max_steer_rad, rel=0.02)
    assert np.sign(control.steering) == np.sign(radius)  # + left (MetaDrive's convention)


def test_steering_is_rate_limited_by_the_yaw_acceleration_it_would_cause():
    controller = PlanController()
    plan = Plan(0.0, ORIGIN, circle_path(-8.0), straight_waypoints(10.0))
    controller.set_plan(plan)
    first = controller.update(0.0, ORIGIN, 10.0).steering
    gain = 10.0 * CFG.vehicle.max_steer_rad / CFG.vehicle.wheelbase_m
    assert first == pytest.approx(-CFG.max_yaw_accel / gain * CFG.dt_s)
    steps = [controller.update(0.0, ORIGIN, 10.0).steering for _ in range(5)]
    assert np.allclose(np.diff([first] + steps), first)


def test_acceleration_command_respects_the_jerk_limit():
    controller = PlanController()
    controller.set_plan(straight_plan(0.0, ORIGIN, 15.0))
    accels = [controller.update(0.0, ORIGIN, 0.0).accel_cmd for _ in range(20)]
    assert np.all(np.diff([0.0] + accels) <= CFG.max_jerk * CFG.dt_s + 1e-12)
    assert accels[-1] == pytest.approx(CFG.max_accel)


@pytest.mark.parametrize("plan, now, why", [
    (None, 0.0, "no_plan"),
    (plan_from_arrays(0.0, ORIGIN, 2, [], []), 0.0, "not_ok"),  # NO_CONTEXT: no trajectory
    (plan_from_arrays(0.0, ORIGIN, 1, np.zeros((20, 2)) + 1, straight_waypoints(5.0)), 0.0, "not_ok"),  # STALE
    (straight_plan(0.0, ORIGIN, 5.0), 1.5, "too_old"),
])
def test_without_a_usable_plan_the_car_brakes_to_a_stop_then_holds(plan, now, why):
    controller = PlanController()
    if plan is not None:
        controller.set_plan(plan)
    moving = [controller.update(now, ORIGIN, 8.0) for _ in range(30)]
    assert all(c.mode == why and c.throttle_brake < 0.0 for c in moving)
    assert moving[-1].accel_cmd == pytest.approx(-CFG.max_decel_stop)
    stopped = controller.update(now, ORIGIN, 0.1)
    assert stopped.throttle_brake == -CFG.hold_brake


def test_a_plan_that_stops_brakes_and_keeps_the_steering():
    controller = PlanController()
    run(controller, Plan(0.0, ORIGIN, circle_path(20.0), straight_waypoints(6.0)), speed=6.0)
    steering = controller.steering
    stop = Plan(0.05, ORIGIN, circle_path(20.0), np.tile([[0.1, 0.0]], (6, 1)))
    control = run(controller, stop, speed=6.0, steps=1)
    assert control.mode == "stop" and control.throttle_brake < 0.0
    assert control.steering == pytest.approx(steering, abs=0.05)


def test_a_held_plan_is_followed_in_the_current_frame_and_read_at_its_age():
    controller = PlanController()
    waypoints = np.stack([np.array([2.0, 4.0, 8.0, 12.0, 16.0, 20.0]), np.zeros(6)], axis=1)  # 4, 4, 8, 8, 8, 8 m/s
    controller.set_plan(Plan(0.0, ORIGIN, np.stack([np.arange(1.0, 21.0), np.full(20, 1.0)], axis=1), waypoints))
    # 0.6 s later the car is 3 m further on and turned: the path (1 m to the left of the
    # start) is still 1 m to the left of the road, i.e. at y = 1 in the world.
    pose = (3.0, 0.0, 0.0)
    control = controller.update(0.6, pose, 6.0)
    assert control.target_speed_mps == pytest.approx(target_speed(waypoints, 0.6))
    assert control.target_speed_mps == pytest.approx(8.8 - 2.4)  # arc length at 1.6 s minus at 0.6 s
    moved = transform_points(np.array([[4.0, 1.0]]), ORIGIN, pose)
    np.testing.assert_allclose(moved, [[1.0, 1.0]])
    assert control.steering > 0.0  # the path is to the left


def test_newer_plans_replace_older_ones_never_the_reverse():
    controller = PlanController()
    newer, older = straight_plan(1.0, ORIGIN, 5.0), straight_plan(0.5, ORIGIN, 9.0)
    controller.set_plan(newer)
    controller.set_plan(older)
    assert controller.plan is newer


def test_target_speed_is_the_distance_covered_over_the_next_second():
    assert target_speed(straight_waypoints(7.0)) == pytest.approx(7.0)
    speeds = [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    waypoints = np.stack([np.cumsum(np.array(speeds) * 0.5), np.zeros(6)], axis=1)
    assert target_speed(waypoints) == pytest.approx(3.0)  # mean of the first two
    assert target_speed(waypoints, age_s=1.0) == pytest.approx(7.0)
    assert target_speed(waypoints, age_s=5.0) == pytest.approx(11.0)  # clamped to the last second
    assert target_speed(np.zeros((6, 2))) == 0.0


def test_lookahead_point_walks_the_polyline_and_extends_it_past_its_end():
    path = np.array([[1.0, 0.0], [2.0, 0.0], [2.0, 5.0]])
    np.testing.assert_allclose(lookahead_point(path, 1.5), [1.5, 0.0])
    np.testing.assert_allclose(lookahead_point(path, 5.0), [2.0, math.sqrt(21.0)])
    np.testing.assert_allclose(lookahead_point(path, 10.0), [2.0, math.sqrt(96.0)])  # extended upwards
    assert lookahead_point(np.zeros((3, 2)), 4.0) is None


def test_baseline_plans():
    cv = straight_plan(0.0, ORIGIN, 6.0)
    np.testing.assert_allclose(cv.waypoints_xy[:, 0], 3.0 * np.arange(1, 7))
    assert np.all(cv.path_xy[:, 1] == 0.0) and len(cv.path_xy) == 20
    route = np.stack([np.linspace(0, 100, 51), np.zeros(51)], axis=1)
    plan = route_plan(0.0, (10.0, 1.0, 0.0), route, speed_mps=5.0)
    np.testing.assert_allclose(plan.path_xy[:, 0], np.arange(1.0, 21.0), atol=1e-9)
    np.testing.assert_allclose(plan.path_xy[:, 1], -1.0, atol=1e-9)  # the route is 1 m to the right
    near_end = route_plan(0.0, (98.0, 0.0, 0.0), route, speed_mps=5.0)
    assert target_speed(near_end.waypoints_xy) < 2.1  # bunched at the destination
