"""Training-sample construction (data/samples.py) on hand-built trajectories."""

from __future__ import annotations

import numpy as np
import pytest
from sim_scenes import circle_episode, episode, straight_episode

from automot_ros.data.decisions import (
    LAT_SLIGHT_LEFT,
    LAT_STRAIGHT,
    LON_ACCELERATE,
    LON_DECELERATE,
    LON_KEEP,
    LON_STOP,
)
from automot_ros.data.recovery import LateralPerturbation
from automot_ros.data.samples import (
    build_samples,
    driven_path,
    future_waypoints,
    history_frames,
    sample_frames,
    sample_labels,
)


def test_straight_constant_speed():
    log = straight_episode(speed=10.0, seconds=8.0)
    k = 40  # t = 2 s
    np.testing.assert_allclose(future_waypoints(log, k), [[5.0 * (i + 1), 0.0] for i in range(6)], atol=1e-9)
    np.testing.assert_allclose(driven_path(log, k), [[float(i + 1), 0.0] for i in range(20)], atol=1e-9)
    np.testing.assert_array_equal(sample_labels(log, k), [[LAT_STRAIGHT, LON_KEEP]] * 3)
    assert history_frames(log, k) == [25, 30, 35, 40]


def test_samples_need_a_full_history_and_future():
    log = straight_episode(seconds=8.0)  # 161 frames at 20 Hz
    frames = sample_frames(log, stride=5)
    assert frames[0] == 15 and frames[-1] == 160 - 60 and all(b - a == 5 for a, b in zip(frames, frames[1:]))
    arrays, qa = build_samples(log, stride=5)
    n = len(frames)
    shapes = {"frame": (n,), "history": (n, 4), "target_points": (n, 2, 2), "speed": (n,), "future_xy": (n, 6, 2),
              "future_speed": (n, 6), "path_xy": (n, 20, 2), "labels": (n, 3, 2), "valid": (n,)}
    assert {k: v.shape for k, v in arrays.items()} == shapes
    assert arrays["labels"].dtype == np.int64 and arrays["valid"].all()
    # Target points 10 m and 20 m ahead along the straight route.
    np.testing.assert_allclose(arrays["target_points"][0], [[10.0, 0.0], [20.0, 0.0]], atol=1e-4)
    assert {r["sample"] for r in qa} == set(range(n))
    assert short_episode_has_no_samples()


def short_episode_has_no_samples() -> bool:
    arrays, qa = build_samples(straight_episode(seconds=3.0))
    return len(arrays["frame"]) == 0 and arrays["future_xy"].shape == (0, 6, 2) and qa == []


def test_left_turn_on_a_circle():
    radius, speed = 20.0, 5.0  # yaw rate 0.25 rad/s = 14.3 deg per 1 s window
    log = circle_episode(radius, speed, seconds=8.0)
    k = 20
    future = future_waypoints(log, k)
    # In the ego frame at k the circle's center is at (0, R): every waypoint is R from it, on the left.
    np.testing.assert_allclose(np.hypot(future[:, 0], future[:, 1] - radius), radius, atol=1e-6)
    assert (future[:, 1] > 0).all() and np.all(np.diff(future[:, 1]) > 0)
    path = driven_path(log, k)
    steps = np.linalg.norm(np.diff(np.vstack([[0.0, 0.0], path]), axis=0), axis=1)
    np.testing.assert_allclose(steps, 1.0, atol=0.01)  # arc-length resampling: ~1 m chords
    np.testing.assert_allclose(np.hypot(path[:, 0], path[:, 1] - radius), radius, atol=0.01)
    np.testing.assert_array_equal(sample_labels(log, k), [[LAT_SLIGHT_LEFT, LON_KEEP]] * 3)


def test_braking_to_a_stop_and_pulling_away():
    dt = 0.05
    t = np.arange(0, 10.0 + 1e-9, dt)
    # 10 m/s, brake at 2 m/s^2 from t = 2 s to a stop at t = 7 s, stand.
    speed = np.where(t < 2.0, 10.0, np.maximum(10.0 - 2.0 * (t - 2.0), 0.0))
    x = np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2 * dt)])
    log = episode(np.column_stack([x, np.zeros_like(x)]), np.zeros_like(x), speed, dt)
    labels = sample_labels(log, round(3.0 / dt))  # windows [3, 4], [4, 5], [5, 6] s: braking
    assert (labels[:, 1] == LON_DECELERATE).all()
    labels = sample_labels(log, round(5.0 / dt))  # [5, 6], [6, 7] braking; [7, 8] standing
    np.testing.assert_array_equal(labels[:, 1], [LON_DECELERATE, LON_STOP, LON_STOP])
    # The stopped car's path continues along the route ahead of where it stands.
    path = driven_path(log, round(6.9 / dt))
    np.testing.assert_allclose(path, [[float(i + 1), 0.0] for i in range(20)], atol=0.05)
    # Pulling away: the reverse profile.
    speed_up = speed[::-1].copy()
    x_up = np.concatenate([[0.0], np.cumsum((speed_up[1:] + speed_up[:-1]) / 2 * dt)])
    up = episode(np.column_stack([x_up, np.zeros_like(x_up)]), np.zeros_like(x_up), speed_up, dt)
    assert sample_labels(up, round(3.5 / dt))[1, 1] == LON_ACCELERATE


def test_samples_before_a_crash_are_marked_invalid():
    log = straight_episode(seconds=10.0, outcome={"crash_vehicle": True})
    arrays, _ = build_samples(log)
    t = arrays["frame"] * log.dt_s
    # The episode ends at 10 s: futures reaching within 2 s of the crash (t > 5 s) are invalid.
    np.testing.assert_array_equal(arrays["valid"], t <= 5.0 + 1e-9)
    assert build_samples(straight_episode(seconds=10.0, outcome={"arrive_dest": True}))[0]["valid"].all()


def test_frame_times_must_divide_the_intervals():
    with pytest.raises(ValueError, match="whole number"):
        sample_frames(straight_episode(dt=0.1), stride=1)  # 0.25 s is not a whole number of 0.1 s frames


@pytest.mark.parametrize("speed, label_frames", [(10.0, 60), (2.0, 200)])  # 3 s future; 20 m path at 2 m/s
def test_samples_whose_labels_were_driven_under_a_recovery_perturbation_are_invalid(speed, label_frames):
    log = straight_episode(speed=speed, seconds=20.0)
    log.perturbed = np.zeros(log.num_frames, dtype=bool)
    log.perturbed[300:310] = True  # the actions after frames 300-309 (15.0-15.45 s)
    arrays, qa = build_samples(log)
    frames = arrays["frame"]
    # A sample's labels are driven by the actions after frames k ... k + label_frames - 1.
    expected = ~((frames + label_frames > 300) & (frames < 310))
    np.testing.assert_array_equal(arrays["valid"], expected)
    assert 0 < expected.sum() < len(frames)
    assert {r["sample"] for r in qa} == set(np.flatnonzero(expected).tolist())  # no QA about the push
    log.perturbed = np.zeros(log.num_frames + 1, dtype=bool)
    with pytest.raises(ValueError, match="perturbed has shape"):
        build_samples(log)


def test_recovery_schedule_holds_offsets_in_range_then_releases_deterministically():
    perturbation = LateralPerturbation()
    dt, frames = 0.05, 20 * 120
    offsets = perturbation.schedule(7, frames, dt)
    np.testing.assert_array_equal(offsets, perturbation.schedule(7, frames, dt))
    assert not np.array_equal(offsets, perturbation.schedule(8, frames, dt))
    on = offsets != 0
    edges = np.flatnonzero(np.diff(on.astype(int)))  # window starts (k -> k + 1 switches on) and ends
    starts, ends = edges[0::2] + 1, edges[1::2] + 1
    assert len(starts) >= 10 and offsets[0] == 0
    holds = (ends - starts[:len(ends)]) * dt
    gaps = (starts[1:] - ends[:len(starts) - 1]) * dt
    assert (holds >= 1.5 - dt).all() and (holds <= 3.0 + dt).all()
    assert (gaps >= 5.0 - dt).all() and (gaps <= 9.0 + dt).all() and 5.0 - dt <= starts[0] * dt <= 9.0 + dt
    magnitudes = np.abs(offsets[on])
    assert magnitudes.min() >= 0.5 and magnitudes.max() <= 1.5
    assert (offsets > 0).any() and (offsets < 0).any()  # both sides
    for start, end in zip(starts, ends):
        assert len(set(offsets[start:end])) == 1  # one offset held per window
    with pytest.raises(ValueError, match="offset_m"):
        LateralPerturbation(offset_m=(1.0, 0.5))
    with pytest.raises(ValueError, match="above 0"):
        LateralPerturbation(hold_s=(0.0, 0.0))
