"""The simulator side of closed-loop evaluation (no ROS): episode settings, the per-step
recorder that produces an eval.closed_loop.EpisodeLog, and the baselines' episode loop.

Every policy runs through the same loop on the same seeds and the same MetaDrive settings
as `automot data collect` (3-block maps, traffic density 0.08, its sensor model):

    state = sim.reset(seed)
    loop: plan for state (the stack's DrivingPlan, or a baseline's) -> controller ->
          record -> stop if done / blocked -> state = sim.step(action)

Baselines (no stack):
- ``expert``: MetaDrive's IDM policy drives (MetaDriveSim(expert=True), its cruise speed
  drawn per seed as in the data collection); no controller.
- ``constant-velocity``: a constant-velocity model predicts straight ahead; the same
  controller tracks a straight path at a constant speed: the seed's expert cruise speed
  (or ``cv_speed_mps``). Episodes start at standstill, where "keep the current speed"
  would never move, so it first accelerates to that speed and then keeps it.
- ``route``: the same controller on the route's lane centers at the seed's expert cruise
  speed; it sees no other vehicle (a check of the controller, not a driver).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from automot_ros.control.controller import Control, ControllerConfig, PlanController, route_plan, straight_plan
from automot_ros.eval.closed_loop import NO_PLAN, EpisodeLog, blocked

BASELINES = ("expert", "constant-velocity", "route")


@dataclass
class EpisodeSettings:
    """Simulator and episode settings shared by every policy (defaults: the data collection's)."""

    map_blocks: int = 3
    traffic_density: float = 0.08
    max_seconds: float = 90.0  # time limit per episode (simulated)
    stuck_seconds: float = 20.0  # end as "blocked" after this long without moving 1 m (0: never)
    camera_size: Tuple[int, int] = (128, 256)  # front image (H, W)
    bev_size: Tuple[int, int] = (128, 256)  # the Action Expert's scene raster (H, W)
    bev_meters_per_px: float = 0.5
    cv_speed_mps: Optional[float] = None  # constant-velocity baseline; None: the seed's expert cruise speed

    def sim_config(self, expert: bool):
        from automot_ros.sim.metadrive_env import STEP_S, MetaDriveConfig

        return MetaDriveConfig(map_blocks=self.map_blocks, traffic_density=self.traffic_density,
                               horizon_steps=int(math.ceil(self.max_seconds / STEP_S)), expert=expert)

    def camera(self):
        from automot_ros.data.sensors import CameraSpec

        return CameraSpec(height=int(self.camera_size[0]), width=int(self.camera_size[1]))

    def bev(self):
        from automot_ros.data.sensors import BevSpec

        h, w = (int(v) for v in self.bev_size)
        return BevSpec(height=h, width=w, meters_per_px=self.bev_meters_per_px, ego_row=h * 104.0 / 128.0)

    def to_dict(self) -> dict:
        return asdict(self)


def pose_of(state) -> Tuple[float, float, float]:
    return (float(state.ego.x), float(state.ego.y), float(state.ego.yaw))


class EpisodeRecorder:
    """Collects one episode step by step; ``finish`` returns its EpisodeLog."""

    def __init__(self, policy: str, seed: int, first_state, dt_s: float, info: Optional[dict] = None):
        self.policy, self.seed, self.dt_s = policy, int(seed), float(dt_s)
        self.route = np.asarray(first_state.route, dtype=np.float64)
        self.road = first_state.road
        self.info = dict(info or {})
        self.rows: Dict[str, list] = {k: [] for k in ("t_s", "ego", "control", "mode", "status", "plan_ms", "age_ms",
                                                      "wait_ms", "waypoints", "path", "wall_ms")}
        self.contexts: List[Tuple[float, float]] = []  # (episode time of its newest frame, compute ms)
        self.started = time.perf_counter()

    def add(self, state, control: Optional[Control] = None, status: int = NO_PLAN, plan_ms: float = math.nan,
            context_age_ms: float = math.nan, wait_ms: float = math.nan, waypoints=None, path=None,
            wall_ms: float = math.nan) -> None:
        r = self.rows
        e = state.ego
        r["t_s"].append(float(state.t_s))
        r["ego"].append((e.x, e.y, e.yaw, e.speed_mps))
        r["control"].append(control.action() if control is not None else (math.nan, math.nan))
        r["mode"].append(control.mode if control is not None else "")
        r["status"].append(int(status))
        r["plan_ms"].append(float(plan_ms))
        r["age_ms"].append(float(context_age_ms))
        r["wait_ms"].append(float(wait_ms))
        r["waypoints"].append(_fixed(waypoints, 6))
        r["path"].append(_fixed(path, 20))
        r["wall_ms"].append(float(wall_ms))

    def add_context(self, t_s: float, compute_ms: float) -> None:
        self.contexts.append((float(t_s), float(compute_ms)))

    def blocked(self, stuck_seconds: float) -> bool:
        if not self.rows["ego"]:
            return False
        return blocked(np.asarray(self.rows["ego"])[:, :2], self.dt_s, stuck_seconds)

    def finish(self, state, result: str) -> EpisodeLog:
        r = self.rows
        self.info["wall_s"] = round(time.perf_counter() - self.started, 3)
        contexts = np.asarray(self.contexts, dtype=np.float64).reshape(-1, 2)
        return EpisodeLog(
            policy=self.policy, seed=self.seed, dt_s=self.dt_s, t_s=np.asarray(r["t_s"]), ego=np.asarray(r["ego"]),
            route=self.route, result=result,
            outcome={k: (round(v, 4) if isinstance(v, float) else v) for k, v in dict(state.outcome).items()},
            control=np.asarray(r["control"], dtype=np.float64), plan_status=np.asarray(r["status"], dtype=np.int64),
            plan_ms=np.asarray(r["plan_ms"]), context_age_ms=np.asarray(r["age_ms"]),
            plan_wait_ms=np.asarray(r["wait_ms"]), plan_waypoints=np.asarray(r["waypoints"]),
            plan_path=np.asarray(r["path"]), control_mode=np.asarray(r["mode"], dtype="U16"),
            context_stamp_s=contexts[:, 0], context_compute_ms=contexts[:, 1],
            step_wall_ms=np.asarray(r["wall_ms"]), agents_final=np.asarray(state.agent_boxes, dtype=np.float64),
            road_points=np.asarray(self.road.surface_points, dtype=np.float32),
            road_offsets=np.asarray(self.road.surface_offsets), info=self.info)


def _fixed(points, n: int) -> np.ndarray:
    out = np.full((n, 2), np.nan)
    if points is not None:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)[:n]
        out[:len(points)] = points
    return out


def episode_result(sim_done: bool, outcome: dict, is_blocked: bool) -> str:
    """arrived / crash / out_of_road / timeout when the simulator ended the episode (hitting
    the sidewalk is leaving the road: MetaDrive sets out_of_road with it), blocked when the
    loop ended it for want of progress, else interrupted."""
    from automot_ros.eval.closed_loop import COLLISION_KEYS

    if outcome.get("arrive_dest"):
        return "arrived"
    if any(outcome.get(k) for k in COLLISION_KEYS):
        return "crash"
    if outcome.get("out_of_road") or outcome.get("crash_sidewalk"):
        return "out_of_road"
    if sim_done or outcome.get("max_step"):
        return "timeout"
    return "blocked" if is_blocked else "interrupted"


def run_baseline_episode(sim, policy: str, seed: int, settings: EpisodeSettings,
                         controller_cfg: ControllerConfig = ControllerConfig()) -> EpisodeLog:
    """One episode of a baseline policy (BASELINES) in ``sim`` (expert=True for "expert")."""
    from automot_ros.sim.metadrive_env import STEP_S, expert_speed_for_seed

    if policy not in BASELINES:
        raise ValueError(f"unknown baseline {policy!r}; known: {BASELINES}")
    state = sim.reset(seed)
    cruise_mps = expert_speed_for_seed(seed, sim.config.expert_speed_kmh) / 3.6
    recorder = EpisodeRecorder(policy, seed, state, STEP_S, info={
        "settings": settings.to_dict(), "expert_speed_kmh": round(cruise_mps * 3.6, 1)})
    controller = PlanController(controller_cfg)
    while True:
        t0 = time.perf_counter()
        control = None
        plan = None
        if policy == "constant-velocity":
            plan = straight_plan(state.t_s, pose_of(state), settings.cv_speed_mps or cruise_mps)
        elif policy == "route":
            plan = route_plan(state.t_s, pose_of(state), state.route, cruise_mps)
        if plan is not None:
            controller.set_plan(plan)
            control = controller.update(state.t_s, pose_of(state), state.ego.speed_mps)
        recorder.add(state, control, status=0 if plan is not None else NO_PLAN,
                     waypoints=plan.waypoints_xy if plan is not None else None,
                     path=plan.path_xy if plan is not None else None,
                     wall_ms=(time.perf_counter() - t0) * 1e3)
        is_blocked = state.step % 20 == 0 and recorder.blocked(settings.stuck_seconds)
        if sim.done or is_blocked:
            return recorder.finish(state, episode_result(sim.done, state.outcome, is_blocked))
        state = sim.step(control.action() if control is not None else None)


def run_baseline(policy: str, seeds: Sequence[int], settings: EpisodeSettings, out_dir,
                 log: Callable[[str], None] = print) -> List[Path]:
    """Run ``policy`` on ``seeds``; OUT_DIR/episodes/seed_NNNNNN.npz per episode."""
    from automot_ros.sim.metadrive_env import MetaDriveSim

    out = Path(out_dir)
    paths = []
    with MetaDriveSim(settings.sim_config(expert=policy == "expert")) as sim:
        for i, seed in enumerate(seeds):
            episode = run_baseline_episode(sim, policy, seed, settings)
            paths.append(episode.save(out / "episodes" / f"seed_{seed:06d}.npz"))
            log(progress_line(policy, i + 1, len(seeds), episode))
    return paths


def progress_line(policy: str, index: int, total: int, episode: EpisodeLog) -> str:
    rc = episode.outcome.get("route_completion")
    rc_text = "1.00" if episode.result == "arrived" else (f"{max(float(rc), 0.0):.2f}" if rc is not None else "n/a")
    return (f"[{policy}] episode {index}/{total} seed {episode.seed}: {episode.result}, route completion {rc_text}, "
            f"{episode.duration_s:.1f} s sim in {episode.info.get('wall_s', float('nan')):.1f} s wall")


def baseline_worker(policies: Sequence[str], seeds: Sequence[int], settings: dict, out_dir: str) -> None:
    """Entry point of a spawned process: each policy in turn, into OUT_DIR/<policy>/ (one
    MetaDrive at a time: its engine is a per-process singleton)."""
    import cv2

    cv2.setNumThreads(1)
    for policy in policies:
        print(f"automot eval closed-loop: [{policy}] {len(seeds)} episodes (no stack)", flush=True)
        run_baseline(policy, seeds, EpisodeSettings(**settings), Path(out_dir) / policy,
                     log=lambda line: print(line, flush=True))


__all__ = ["BASELINES", "EpisodeSettings", "EpisodeRecorder", "episode_result", "run_baseline", "run_baseline_episode",
           "baseline_worker", "progress_line", "pose_of"]
