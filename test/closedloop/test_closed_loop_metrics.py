"""Closed-loop outcome and comfort metrics (eval/closed_loop.py) on hand-made trajectories.
The comfort filters need scipy (installed with the simulator, Python < 3.12)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from automot_ros.eval.closed_loop import (
    COMFORT_BOUNDS,
    EpisodeLog,
    blocked,
    comfort_signals,
    comfort_windows,
    episode_metrics,
    policy_summary,
    route_offsets,
    wilson_interval,
)

pytest.importorskip("scipy", reason="the comfort metric's Savitzky-Golay filter needs scipy (requirements-sim.txt)")
DT = 0.05


def straight(speeds, yaw=0.3):
    """A trajectory along heading ``yaw`` with the given speed per 0.05 s step."""
    speeds = np.asarray(speeds, dtype=float)
    s = np.concatenate([[0.0], np.cumsum(speeds[:-1] * DT)])
    xy = np.stack([s * math.cos(yaw), s * math.sin(yaw)], axis=1)
    return np.arange(len(speeds)) * DT, xy, np.full(len(speeds), yaw)


def circle(speed, yaw_rate, seconds):
    t = np.arange(int(round(seconds / DT))) * DT
    radius = speed / yaw_rate
    yaw = yaw_rate * t
    return t, np.stack([radius * np.sin(yaw), radius * (1 - np.cos(yaw))], axis=1), yaw


def violated(windows):
    return {name for w in windows for name, inside in w.items() if not inside}


def test_constant_speed_straight_driving_is_comfortable_in_every_full_window():
    t, xy, yaw = straight(np.full(201, 10.0))  # 10 s at 20 Hz -> 101 frames at 10 Hz -> 5 windows
    windows = comfort_windows(t, xy, yaw)
    assert len(windows) == 5 and all(all(w.values()) for w in windows)
    signals = comfort_signals(xy[::2][:20], yaw[::2][:20], 0.1)
    assert set(signals) == set(COMFORT_BOUNDS)
    for values in signals.values():
        np.testing.assert_allclose(values, 0.0, atol=1e-6)


@pytest.mark.parametrize("accel, bad", [(2.0, set()), (3.0, {"lon_accel"}), (-3.5, set()), (-6.0, {"lon_accel"})])
def test_longitudinal_acceleration_bounds(accel, bad):
    speeds = 15.0 + accel * np.arange(61) * DT  # 3 s of constant acceleration, never stopping
    t, xy, yaw = straight(speeds)
    windows = comfort_windows(t[:41], xy[:41], yaw[:41])  # 2 s: one window, no stop inside
    assert len(windows) == 1
    signal = comfort_signals(xy[:41:2], yaw[:41:2], 0.1)["lon_accel"]
    np.testing.assert_allclose(signal, accel, atol=0.05)
    assert violated(windows) == bad


def test_circling_measures_yaw_rate_and_lateral_acceleration():
    t, xy, yaw = circle(speed=8.0, yaw_rate=0.5, seconds=4.0)
    signals = comfort_signals(xy[::2], yaw[::2], 0.1)
    np.testing.assert_allclose(signals["yaw_rate"], 0.5, atol=1e-6)
    np.testing.assert_allclose(signals["lat_accel"], 8.0 * 0.5, atol=0.06)  # v * yaw rate, to the left
    np.testing.assert_allclose(signals["lon_accel"][6:-6], 0.0, atol=0.05)  # the ends: the filter's end fit
    assert violated(comfort_windows(t, xy, yaw)) == set()
    t, xy, yaw = circle(speed=6.0, yaw_rate=1.2, seconds=6.0)
    windows = comfort_windows(t, xy, yaw)
    assert len(windows) == 3 and violated(windows[1:2]) == {"yaw_rate", "lat_accel"}  # away from the ends


def test_braking_at_once_is_jerk_even_inside_the_acceleration_bound():
    speeds = np.r_[np.full(20, 10.0), 10.0 - 3.5 * np.arange(1, 21) * DT]
    t, xy, yaw = straight(speeds)
    assert violated(comfort_windows(t, xy, yaw)) == {"lon_jerk"}
    gentle = np.r_[np.full(20, 10.0), 10.0 - np.minimum(np.arange(1, 21) * DT * 2.0, 1.0).cumsum() * DT]
    t, xy, yaw = straight(gentle)
    assert violated(comfort_windows(t, xy, yaw)) == set()


def test_short_episodes_are_one_window_and_a_tail_is_dropped():
    t, xy, yaw = straight(np.full(15, 5.0))  # 8 frames at 10 Hz
    assert len(comfort_windows(t, xy, yaw)) == 1
    t, xy, yaw = straight(np.full(70, 5.0))  # 35 frames: one window, 15-frame tail dropped
    assert len(comfort_windows(t, xy, yaw)) == 1
    assert comfort_windows(t[:3], xy[:3], yaw[:3]) == []


def log(result="arrived", outcome=None, speeds=None, policy="p", seed=1, **kw):
    t, xy, yaw = straight(np.full(100, 5.0) if speeds is None else speeds)
    ego = np.concatenate([xy, yaw[:, None], np.full((len(t), 1), 5.0)], axis=1)
    return EpisodeLog(policy=policy, seed=seed, dt_s=DT, t_s=t, ego=ego, route=np.array([[0.0, 0.0], [50.0, 0.0]]),
                      result=result, outcome=outcome if outcome is not None else {}, **kw)


@pytest.mark.parametrize("result, outcome, success, collision, off_road, rc", [
    ("arrived", {"arrive_dest": True, "route_completion": 0.97}, True, False, False, 1.0),
    ("crash", {"crash_vehicle": True, "route_completion": 0.4}, False, True, False, 0.4),
    ("out_of_road", {"crash_sidewalk": True, "out_of_road": True, "route_completion": 0.3}, False, False, True, 0.3),
    ("timeout", {"max_step": True, "route_completion": -0.01}, False, False, False, 0.0),
    ("blocked", {"route_completion": 0.5}, False, False, False, 0.5),
])
def test_episode_outcome(result, outcome, success, collision, off_road, rc):
    m = episode_metrics(log(result, outcome))
    assert (m["success"], m["collision"], m["off_road"]) == (success, collision, off_road)
    assert m["route_completion"] == pytest.approx(rc)
    assert m["timeout"] == (result == "timeout") and m["blocked"] == (result == "blocked")
    assert m["distance_m"] == pytest.approx(99 * 5.0 * DT)


def test_route_offsets_are_signed_left_with_the_route_left_after_the_projection():
    route = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])  # 20 m, a left turn at 10 m
    lateral, left_m = route_offsets(route, [[5.0, 1.0], [5.0, -2.0], [11.0, 4.0], [9.0, 7.0], [10.0, 13.0]])
    np.testing.assert_allclose(lateral, [1.0, -2.0, -1.0, 1.0, 0.0])
    np.testing.assert_allclose(left_m, [15.0, 15.0, 6.0, 3.0, 0.0])  # past the end: clamped there


def test_route_offset_averages_the_episode_and_the_routes_last_meters():
    # The helper's car drives 24.75 m along x on a 50 m route; it drifts 1.5 m left after 10 m.
    episode = log()
    episode.ego[:, 1] = np.where(episode.ego[:, 0] > 10.0, 1.5, 0.0)
    episode.route = np.array([[0.0, 0.0], [40.0, 0.0]])  # the last 30 m start at x = 10
    m = episode_metrics(episode)["route_offset_m"]
    drifting = np.mean(episode.ego[:, 0] > 10.0)
    assert m["mean_abs"] == pytest.approx(1.5 * drifting) and m["end"] == pytest.approx(1.5)
    episode.route = np.array([[0.0, 0.0], [100.0, 0.0]])  # never within 30 m of its end
    assert math.isnan(episode_metrics(episode)["route_offset_m"]["end"])


def test_blocked_needs_the_whole_window_without_progress():
    still = np.zeros((500, 2))
    assert blocked(still, DT, 20.0)
    assert not blocked(still[:400], DT, 20.0)  # not yet 20 s of history
    creeping = np.stack([np.linspace(0, 2.0, 500), np.zeros(500)], axis=1)
    assert not blocked(creeping, DT, 20.0)
    assert not blocked(still, DT, 0.0)


def test_log_round_trip_and_policy_summary(tmp_path):
    status = np.r_[np.full(20, 2), np.zeros(80)].astype(np.int64)
    ages = np.r_[np.full(20, np.nan), np.tile(50.0 * np.arange(1, 11), 8)]
    a = log("arrived", {"arrive_dest": True}, plan_status=status, context_age_ms=ages, plan_ms=np.full(100, 9.0),
            context_stamp_s=np.array([1.0, 1.5]), context_compute_ms=np.array([30.0, 40.0]),
            info={"wall_s": 2.5, "mode": "async"})
    path = a.save(tmp_path / "seed_000001.npz")
    b = EpisodeLog.load(path)
    np.testing.assert_array_equal(b.ego, a.ego)
    np.testing.assert_array_equal(b.plan_status, status)
    assert b.info == {"wall_s": 2.5, "mode": "async"} and b.outcome == {"arrive_dest": True}
    crash = log("crash", {"crash_vehicle": True, "route_completion": 0.5}, seed=2, info={"wall_s": 1.5})
    s = policy_summary([b, crash])
    assert s["episodes"] == 2 and s["success_rate"] == 0.5 and s["collision_rate"] == 0.5
    assert s["route_completion"] == pytest.approx(0.75)
    assert s["plan_status_counts"]["OK"] == 80 and s["plan_status_counts"]["NO_CONTEXT"] == 20
    assert s["context_age_ms"]["min"] == 50.0 and s["context_age_ms"]["max"] == 500.0
    assert s["ue_ms"]["count"] == 2 and s["ae_ms"]["median"] == 9.0
    assert s["wall_per_sim_s"] == pytest.approx(4.0 / (2 * 99 * DT))
    # The helper's car heads 0.3 rad left of its x-axis route: y = x tan(0.3) on both episodes.
    x = b.ego[:, 0]
    assert s["route_offset_m"]["mean_abs"] == pytest.approx(np.mean(x) * math.tan(0.3))
    assert s["route_offset_m"]["end"] == pytest.approx(np.mean(x[x > 20.0]) * math.tan(0.3))
    lo, hi = wilson_interval(1, 2)
    assert 0.0 < lo < 0.5 < hi < 1.0
    assert wilson_interval(20, 20)[1] == 1.0
