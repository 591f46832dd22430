"""MetaDrive 0.4.3 (Apache-2.0) in physics-only mode, as plain-numpy ground truth.

Why physics-only: MetaDrive's own RGB camera needs its full asset pack (downloaded from
GitHub at start, which is not reachable here) and renders 2-4 frames/s at 176x64 on CPU.
Without a window the simulator needs no asset but the version stamp; the cameras come from
the project's sensor model instead (data/sensors.py), a deterministic function of the
state this module returns.

Assets: MetaDrive looks for ``metadrive/assets/version.txt`` inside its package and tries to
download the pack when it is missing. When the full pack is installed there (version
0.4.3 and the texture its update check looks for), it is used untouched. Otherwise a stub
folder (``version.txt`` holding 0.4.3 and an empty placeholder for that texture file) is
created at run time in a cache directory (``$AUTOMOT_METADRIVE_ASSETS``, else
``$XDG_CACHE_HOME/automot/metadrive-assets-0.4.3``, else ``~/.cache/...``), MetaDrive's
asset path is pointed at it and its pull step is replaced by a check that never touches the
network. Nothing third-party is written into the package or committed.

The import of MetaDrive is lazy (it needs Python < 3.12 and pulls panda3d): importing this
module is cheap and works everywhere; ``metadrive_available()`` says whether it can run.
Time: one ``step`` is ``STEP_S`` (20 Hz, the camera rate): 2 physics substeps of 25 ms.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from automot_ros.sim.state import (
    DEFAULT_AGENT_HEIGHT_M,
    LINE_BROKEN,
    LINE_EDGE,
    LINE_SOLID,
    EgoPose,
    RoadMap,
    SimState,
)

METADRIVE_VERSION = "0.4.3"
PHYSICS_STEP_S = 0.025
DECISION_REPEAT = 2
STEP_S = PHYSICS_STEP_S * DECISION_REPEAT  # 0.05 s: 20 Hz
# The one texture MetaDrive's update check (AssetLoader.should_update_asset) looks for.
_CHECKED_TEXTURE = ("textures", "grass1", "GroundGrassGreen002_COL_1K.jpg")
# Polyline sampling of curved lanes [m]: 1 m keeps the chord error of the tightest PG
# curves (R ~ 10 m) under 1.3 cm.
CURVE_SAMPLE_M = 1.0
ROUTE_SPACING_M = 2.0  # the route (nav_msgs/Path) as dense points, not a few long segments
OUTCOME_KEYS = ("arrive_dest", "crash_vehicle", "crash_object", "crash_sidewalk", "crash_building",
                "crash_human", "out_of_road", "max_step", "route_completion")


def metadrive_available() -> Tuple[bool, str]:
    """(True, "") when MetaDrive can be imported here, else (False, why)."""
    if sys.version_info >= (3, 12):
        return False, f"MetaDrive {METADRIVE_VERSION} needs Python < 3.12 (this is {sys.version.split()[0]})"
    if importlib.util.find_spec("metadrive") is None:
        return False, ("MetaDrive is not installed (pip install --no-deps -r requirements-sim.txt "
                       "-c constraints.txt)")
    return True, ""


def asset_cache_dir() -> Path:
    override = os.environ.get("AUTOMOT_METADRIVE_ASSETS")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "automot" / f"metadrive-assets-{METADRIVE_VERSION}"


def ensure_stub_assets(folder: Optional[Path] = None) -> Path:
    """Create (idempotently) the stub asset folder; returns it."""
    folder = Path(folder) if folder is not None else asset_cache_dir()
    texture = folder.joinpath(*_CHECKED_TEXTURE)
    texture.parent.mkdir(parents=True, exist_ok=True)
    if not texture.exists():
        texture.write_bytes(b"")  # a placeholder: physics-only mode never loads it
    version = folder / "version.txt"
    if not version.exists() or version.read_text().strip() != METADRIVE_VERSION:
        tmp = folder / f".version.txt.{os.getpid()}"
        tmp.write_text(METADRIVE_VERSION + "\n")
        os.replace(tmp, version)  # atomic: parallel workers may race here
    return folder


def _full_assets_installed(package_dir: Path) -> bool:
    assets = package_dir / "assets"
    try:
        version = (assets / "version.txt").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return version == METADRIVE_VERSION and assets.joinpath(*_CHECKED_TEXTURE).is_file() \
        and (assets / "models").is_dir()


_PREPARED = False


def _prepare_metadrive() -> None:
    """Import MetaDrive with assets resolved as the module docstring says (once per process)."""
    global _PREPARED
    ok, why = metadrive_available()
    if not ok:
        raise RuntimeError(why)
    if _PREPARED:
        return
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pygame's pkg_resources import
        import metadrive
        from metadrive.engine.asset_loader import AssetLoader
        from metadrive.engine.base_engine import BaseEngine

    if not _full_assets_installed(Path(metadrive.__file__).parent):
        stub = ensure_stub_assets()

        def check_stub_assets() -> None:
            if not (stub / "version.txt").is_file():
                raise RuntimeError(f"MetaDrive stub asset folder {stub} vanished")

        AssetLoader.asset_path = type(AssetLoader.asset_path)(stub)
        BaseEngine.try_pull_asset = staticmethod(check_stub_assets)
    _PREPARED = True


@dataclass(frozen=True)
class MetaDriveConfig:
    """The subset of MetaDrive's config that matters here (defaults: 3-block PG maps)."""

    map_blocks: int = 3  # procedurally generated blocks per map
    map_spec: Optional[str] = None  # or a block string instead, e.g. "SCrRX" (MetaDrive's block ids)
    # 0.08: the IDM expert arrived in 15 of 16 episodes here; at 0.12, 9 of 16 (crossing
    # traffic hits it in junctions: MetaDrive's IDM does not yield).
    traffic_density: float = 0.08
    lane_num: int = 3
    # MetaDrive ends an episode as out_of_road when the ego touches a solid line; its IDM
    # expert grazes center lines in curves (4 of 16 episodes ended so). False: only leaving
    # the lanes (or hitting a sidewalk) ends it. True: MetaDrive's benchmark convention.
    solid_line_ends_episode: bool = False
    horizon_steps: int = 2400  # 120 s at 20 Hz
    expert: bool = True  # ego driven by MetaDrive's IDMPolicy; False: step(action) drives
    # The expert's cruise speed [km/h] is drawn per seed from this range (uniform): MetaDrive's
    # IDM cruises at a fixed 30 km/h, like all its traffic; a faster or slower ego follows,
    # overtakes and brakes more often. None keeps 30 km/h.
    expert_speed_kmh: Optional[Tuple[float, float]] = (20.0, 50.0)
    extra: Dict[str, object] = field(default_factory=dict)  # merged into MetaDrive's config last

    def to_metadrive(self) -> dict:
        from metadrive.policy.env_input_policy import EnvInputPolicy

        config = dict(
            use_render=False, image_observation=False, log_level=logging.ERROR,
            agent_policy=_expert_policy_class() if self.expert else EnvInputPolicy,
            num_scenarios=10**7, start_seed=0, store_map=False,
            map=self.map_spec if self.map_spec else self.map_blocks,
            map_config=dict(lane_num=self.lane_num),
            traffic_density=self.traffic_density, accident_prob=0.0,
            on_continuous_line_done=self.solid_line_ends_episode,
            horizon=self.horizon_steps,
            physics_world_step_size=PHYSICS_STEP_S, decision_repeat=DECISION_REPEAT,
            # MetaDrive recycles cleared vehicles into the next episode; BaseVehicle.reset zeroes
            # their velocities and suspension but not Bullet's wheel state (rotation, skid,
            # suspension force, the vehicle's speed), so an episode then depends on what ran
            # before it in the process. Destroying them keeps a seed's episode bit-identical.
            force_destroy=True,
            # The ego's lidar only feeds MetaDrive's RL observation; nothing here reads it.
            vehicle_config=dict(lidar=dict(num_lasers=0, distance=0.0),
                                side_detector=dict(num_lasers=0), lane_line_detector=dict(num_lasers=0)),
        )
        config.update(self.extra)
        return config


_EXPERT_POLICY = None


def _expert_policy_class():
    """MetaDrive's IDMPolicy with its own cruise speed (NORMAL_SPEED, km/h), set per episode
    by MetaDriveSim.reset (a class attribute: the policy reads it whenever it resets its
    target speed), and a lateral offset (LATERAL_OFFSET_M, left of its target lane's center,
    set per step by MetaDriveSim.set_expert_lateral_offset) that its lateral controller
    tracks instead of the center. Traffic keeps IDMPolicy's 30 km/h and lane centers."""
    global _EXPERT_POLICY
    if _EXPERT_POLICY is None:
        from metadrive.policy.idm_policy import IDMPolicy

        class ExpertIDMPolicy(IDMPolicy):
            NORMAL_SPEED = IDMPolicy.NORMAL_SPEED
            LATERAL_OFFSET_M = 0.0

            def steering_control(self, target_lane) -> float:
                if self.LATERAL_OFFSET_M:
                    target_lane = _OffsetLane(target_lane, self.LATERAL_OFFSET_M)
                return super().steering_control(target_lane)

        _EXPERT_POLICY = ExpertIDMPolicy
    return _EXPERT_POLICY


class _OffsetLane:
    """A MetaDrive lane seen from the line ``left_m`` to the left of its center, for
    IDMPolicy.steering_control, which reads only these two methods: its lateral controller
    then holds that line. MetaDrive's lateral coordinate grows to the right, hence the sign."""

    def __init__(self, lane, left_m: float):
        self.lane, self.left_m = lane, float(left_m)

    def local_coordinates(self, position):
        longitudinal, lateral = self.lane.local_coordinates(position)
        return longitudinal, lateral + self.left_m

    def heading_theta_at(self, longitudinal: float) -> float:
        return self.lane.heading_theta_at(longitudinal)


def expert_speed_for_seed(seed: int, speed_range: Optional[Tuple[float, float]]) -> float:
    """The expert's cruise speed [km/h] for a seed (deterministic)."""
    if speed_range is None:
        return 30.0
    lo, hi = speed_range
    return float(np.random.default_rng([int(seed), 0x5EED]).uniform(lo, hi))


def _line_kind(line_type) -> int:
    name = str(line_type)
    if "BROKEN" in name:
        return LINE_BROKEN
    if "SOLID" in name:
        return LINE_SOLID
    if "BOUNDARY" in name or "SIDEWALK" in name or "GUARDRAIL" in name:
        return LINE_EDGE
    return -1  # unknown / none (inside junctions)


def _lane_centerline(lane) -> np.ndarray:
    length = float(lane.length)
    if type(lane).__name__ == "StraightLane":
        s = np.array([0.0, length])
    else:
        s = np.linspace(0.0, length, max(2, int(math.ceil(length / CURVE_SAMPLE_M)) + 1))
    return np.array([lane.position(float(si), 0.0) for si in s], dtype=np.float64)[:, :2]


def _lane_width(lane) -> float:
    width = getattr(lane, "width", None)
    return float(width if width is not None else lane.width_at(0.0))


def road_map_from_network(road_network) -> Tuple[RoadMap, Dict[tuple, np.ndarray]]:
    """RoadMap of a MetaDrive NodeRoadNetwork and the lane centerlines by lane index."""
    lanes, centers = [], {}
    for start, ends in road_network.graph.items():
        for end, lane_list in ends.items():
            for idx, lane in enumerate(lane_list):
                center = _lane_centerline(lane)
                centers[(start, end, idx)] = center
                kinds = [_line_kind(t) for t in lane.line_types]
                lanes.append((center, _lane_width(lane), kinds[0], kinds[1]))
    return RoadMap.from_lanes(lanes), centers


def route_polyline(checkpoints: Sequence[str], centers: Dict[tuple, np.ndarray], lane_counts: Dict[tuple, int],
                   lane_index: int) -> np.ndarray:
    """Lane centers along the route's roads at ``lane_index`` (clamped to each road's lane
    count), consecutive duplicate points removed, at most ROUTE_SPACING_M apart."""
    pieces = []
    for a, b in zip(checkpoints[:-1], checkpoints[1:]):
        count = lane_counts.get((a, b), 0)
        if count == 0:
            continue
        pieces.append(centers[(a, b, min(lane_index, count - 1))])
    if not pieces:
        raise RuntimeError("MetaDrive route has no lanes")
    route = np.concatenate(pieces)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(route, axis=0), axis=1) > 1e-3])
    return densify(route[keep], ROUTE_SPACING_M)


def densify(polyline: np.ndarray, max_spacing_m: float) -> np.ndarray:
    """The polyline with points inserted so no segment is longer than max_spacing_m."""
    out = [polyline[:1]]
    for a, b in zip(polyline[:-1], polyline[1:]):
        n = max(1, int(math.ceil(np.linalg.norm(b - a) / max_spacing_m)))
        out.append(a + (b - a) * (np.arange(1, n + 1) / n)[:, None])
    return np.concatenate(out)


class MetaDriveSim:
    """One MetaDrive environment (one per process: MetaDrive's engine is a singleton).

    ``reset(seed)`` builds seed's procedural map and traffic and returns the first SimState;
    ``step(action=None)`` advances STEP_S (the expert drives when the config says so; else
    ``action`` = (steering, throttle_brake) in [-1, 1], MetaDrive's convention) and returns
    the new SimState; ``done`` and ``state.outcome`` say how the episode ended.
    """

    def __init__(self, config: MetaDriveConfig = MetaDriveConfig()):
        _prepare_metadrive()
        from metadrive.envs.metadrive_env import MetaDriveEnv

        self.config = config
        self._env = MetaDriveEnv(config.to_metadrive())
        self._road: Optional[RoadMap] = None
        self._route: Optional[np.ndarray] = None
        self._ids: Dict[str, int] = {}
        self._lane_counts: Dict[tuple, int] = {}
        self._step = 0
        self._seed: Optional[int] = None
        self.expert_speed_kmh: Optional[float] = None
        self.done = False
        self.state: Optional[SimState] = None

    # -- episode
    def reset(self, seed: int) -> SimState:
        self.expert_speed_kmh = expert_speed_for_seed(seed, self.config.expert_speed_kmh)
        if self.config.expert:
            _expert_policy_class().NORMAL_SPEED = self.expert_speed_kmh
            _expert_policy_class().LATERAL_OFFSET_M = 0.0
        self._env.reset(seed=int(seed))
        self._seed, self._step, self.done, self._ids = int(seed), 0, False, {}
        network = self._env.engine.current_map.road_network
        self._road, centers = road_map_from_network(network)
        self._lane_counts = {(a, b): len(lanes) for a, ends in network.graph.items() for b, lanes in ends.items()}
        ego = self._env.agent
        self._route = route_polyline(ego.navigation.checkpoints, centers, self._lane_counts, ego.lane_index[2])
        self.state = self._read_state({})
        return self.state

    def step(self, action: Optional[Sequence[float]] = None) -> SimState:
        if self.state is None:
            raise RuntimeError("reset() first")
        if self.done:
            raise RuntimeError("the episode is over; reset() for another")
        if action is None:
            if not self.config.expert:
                raise ValueError("this simulator is not expert-driven: give an action")
            action = (0.0, 0.0)  # ignored by the IDM policy
        _, _, terminated, truncated, info = self._env.step(np.asarray(action, dtype=np.float64))
        self._step += 1
        self.done = bool(terminated or truncated)
        self.state = self._read_state(info)
        return self.state

    def set_expert_lateral_offset(self, offset_m: float) -> None:
        """From the next step on, the expert keeps offset_m left of its lane's center (right
        when negative) instead of the center; 0 is its own driving. reset() sets 0."""
        if not self.config.expert:
            raise ValueError("this simulator is not expert-driven: there is no expert to offset")
        _expert_policy_class().LATERAL_OFFSET_M = float(offset_m)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self) -> "MetaDriveSim":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- ground truth
    @property
    def road(self) -> RoadMap:
        return self._road

    @property
    def route(self) -> np.ndarray:
        return self._route

    def _agent_id(self, name: str) -> int:
        if name not in self._ids:
            self._ids[name] = len(self._ids) + 1  # 0 is never an agent (the ego)
        return self._ids[name]

    def _read_state(self, info: dict) -> SimState:
        env = self._env
        ego = env.agent
        lane_index = ego.lane_index
        ego_pose = EgoPose(
            x=float(ego.position[0]), y=float(ego.position[1]), yaw=float(ego.heading_theta),
            speed_mps=float(ego.speed), length=float(ego.LENGTH), width=float(ego.WIDTH),
            lane_index=int(lane_index[2]) if lane_index is not None else -1,
            lane_count=self._lane_counts.get(tuple(lane_index[:2]), 0) if lane_index is not None else 0)
        # Object names are uuid4 strings (random per run): ids are given in spawn order (the
        # engine's dict order) and the agents listed by id, never ordered by name.
        agents = []
        for name, obj in env.engine.get_objects().items():
            if obj is ego or not hasattr(obj, "heading_theta") or not hasattr(obj, "LENGTH"):
                continue
            agents.append((self._agent_id(name), obj))
        agents.sort(key=lambda item: item[0])
        boxes, speeds, heights, ids = [], [], [], []
        for agent_id, obj in agents:
            x, y = obj.position[:2]
            boxes.append((float(x), float(y), float(obj.LENGTH), float(obj.WIDTH), float(obj.heading_theta)))
            speeds.append(float(getattr(obj, "speed", 0.0)))
            heights.append(float(getattr(obj, "HEIGHT", DEFAULT_AGENT_HEIGHT_M)))
            ids.append(agent_id)
        outcome = {key: (float(info[key]) if key == "route_completion" else bool(info[key]))
                   for key in OUTCOME_KEYS if key in info}
        return SimState(
            t_s=self._step * STEP_S, ego=ego_pose, road=self._road, route=self._route,
            agent_boxes=np.array(boxes, dtype=np.float64).reshape(-1, 5), agent_speeds=np.array(speeds),
            agent_heights=np.array(heights), agent_ids=np.array(ids, dtype=np.int64),
            outcome=outcome, step=self._step, seed=self._seed)


def describe_outcome(outcome: Dict[str, float]) -> str:
    """One word for how an episode ended: arrived, crash, out_of_road, timeout or running."""
    if outcome.get("arrive_dest"):
        return "arrived"
    if any(outcome.get(k) for k in ("crash_vehicle", "crash_object", "crash_sidewalk", "crash_building", "crash_human")):
        return "crash"
    if outcome.get("out_of_road"):
        return "out_of_road"
    if outcome.get("max_step"):
        return "timeout"
    return "running"


__all__ = ["MetaDriveConfig", "MetaDriveSim", "STEP_S", "metadrive_available", "ensure_stub_assets",
           "asset_cache_dir", "describe_outcome", "road_map_from_network", "route_polyline"]
