"""Hand-built simulator states for the sensor-model and sample tests (no simulator needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from automot_ros.data.samples import EpisodeLog, collate_agent_rows
from automot_ros.sim.state import LINE_BROKEN, LINE_EDGE, LINE_SOLID, EgoPose, RoadMap, SimState

LANE_W = 3.5


def straight_road(x0: float = -60.0, x1: float = 200.0) -> RoadMap:
    """Three lanes along +x (right-hand traffic): y = 3.5 (left lane), 0 (ego lane), -3.5 (right lane)."""
    xs = np.array([x0, x1])
    lanes = []
    for y, left, right in ((LANE_W, LINE_SOLID, LINE_BROKEN), (0.0, LINE_BROKEN, LINE_BROKEN),
                           (-LANE_W, LINE_BROKEN, LINE_EDGE)):
        lanes.append((np.stack([xs, np.full(2, y)], axis=1), LANE_W, left, right))
    return RoadMap.from_lanes(lanes)


def straight_route(x0: float = -60.0, x1: float = 200.0) -> np.ndarray:
    return np.array([[x0, 0.0], [x1, 0.0]])


def scene(agents=(), ids=None, heights=None, route=None, ego=None, road=None) -> SimState:
    """agents: (x, y, yaw) world poses of 4.5 x 1.9 m cars; the ego at the origin facing +x."""
    boxes = np.array([[x, y, 4.5, 1.9, yaw] for x, y, yaw in agents]).reshape(-1, 5)
    n = len(boxes)
    return SimState(
        t_s=0.0, ego=ego or EgoPose(0.0, 0.0, 0.0, 8.0, lane_index=1, lane_count=3),
        road=road or straight_road(), route=straight_route() if route is None else route,
        agent_boxes=boxes, agent_speeds=np.full(n, 5.0),
        agent_heights=np.full(n, 1.5) if heights is None else np.asarray(heights, float),
        agent_ids=np.arange(1, n + 1) if ids is None else np.asarray(ids))


def episode(xy: np.ndarray, yaw: np.ndarray, speed: np.ndarray, dt: float = 0.05, route=None,
            agents_per_frame=None, lane=None, outcome=None) -> EpisodeLog:
    """An EpisodeLog from per-frame ego poses (and optional per-frame agent rows [A, 8])."""
    t = len(xy)
    rows, offsets = collate_agent_rows(agents_per_frame if agents_per_frame is not None
                                       else [np.zeros((0, 8))] * t)
    return EpisodeLog(seed=0, dt_s=dt, ego=np.column_stack([xy, yaw, speed]),
                      lane=np.tile([1, 3], (t, 1)) if lane is None else np.asarray(lane),
                      agent_rows=rows, agent_offsets=offsets,
                      route=straight_route(-10.0, 400.0) if route is None else route, outcome=outcome or {})


def straight_episode(speed: float = 10.0, seconds: float = 8.0, dt: float = 0.05, **kw) -> EpisodeLog:
    t = np.arange(int(round(seconds / dt)) + 1) * dt
    xy = np.column_stack([speed * t, np.zeros_like(t)])
    return episode(xy, np.zeros_like(t), np.full_like(t, speed), dt, **kw)


def circle_episode(radius: float = 20.0, speed: float = 5.0, seconds: float = 8.0, dt: float = 0.05) -> EpisodeLog:
    """A constant-speed left turn on a circle centered at (0, radius), starting at the origin facing +x."""
    t = np.arange(int(round(seconds / dt)) + 1) * dt
    theta = speed * t / radius
    xy = np.column_stack([radius * np.sin(theta), radius * (1 - np.cos(theta))])
    route_theta = np.linspace(0, 2 * np.pi, 200)
    route = np.column_stack([radius * np.sin(route_theta), radius * (1 - np.cos(route_theta))])
    return episode(xy, theta, np.full_like(t, speed), dt, route=route)


def write_straight_store(root: Path) -> Path:
    """A collection under ``root`` (manifest, episodes): seed 0 (train) and seed 1 (heldout),
    6 s straight at 8 and 9 m/s, each with a car 20 m ahead keeping pace."""
    import json

    from automot_ros.data.collect import episode_name, write_episode
    from automot_ros.data.sensors import render_bev, render_front

    road = straight_road(-60.0, 500.0)
    entries = []
    for seed in (0, 1):
        log = straight_episode(speed=8.0 + seed, seconds=6.0)
        log.seed = seed
        rows = [np.array([[1, log.ego[k, 0] + 20.0, 0.0, 4.5, 1.9, 0.0, log.ego[k, 3], 1.5]]) for k in range(log.num_frames)]
        log.agent_rows = np.concatenate(rows)
        log.agent_offsets = np.arange(log.num_frames + 1)
        fronts, bevs = [], []
        for k in range(log.num_frames):
            state = SimState(t_s=k * log.dt_s, ego=log.ego_pose(k), road=road, route=log.route,
                             agent_boxes=log.agents(k)[:, [1, 2, 3, 4, 5]])
            fronts.append(render_front(state))
            bevs.append(render_bev(state).transpose(1, 2, 0))
        write_episode(root, episode_name(seed), log, fronts, bevs)
        entries.append({"seed": seed, "file": f"episodes/{episode_name(seed)}.npz"})
    (root / "manifest.json").write_text(json.dumps({"splits": {"train": [0], "heldout": [1]}, "episodes": entries}))
    return root
