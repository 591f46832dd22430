"""Node parameters: one dataclass per node is the schema (names, types, defaults).

config/drive.yaml sets the same names (a test keeps the two in step); the nodes declare
every field as a ROS parameter and validate the values before building anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List


# raw: sensor_msgs/Image on camera/<name>/image_raw; compressed: sensor_msgs/CompressedImage
# (jpeg/png) on camera/<name>/image_raw/compressed, as image_transport names them.
IMAGE_TRANSPORTS = ("raw", "compressed")
SIM_STEP_HZ = 20.0  # the closed-loop simulator's step rate (sim/metadrive_env.py STEP_S = 0.05 s)


@dataclass
class ModelParams:
    model: str = "smol"
    checkpoint: str = "auto"  # model/checkpoint.py resolve_checkpoint: auto, "" (untrained) or a path
    device: str = "cpu"
    num_threads: int = 1

    def validate(self) -> None:
        if not self.model:
            raise ValueError("parameter 'model' must name a config or a YAML path")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"parameter 'device' must be cpu or cuda[:N], got {self.device!r}")
        if self.num_threads < 0:
            raise ValueError("parameter 'num_threads' must be >= 0")


@dataclass
class CameraParams:
    cameras: List[str] = field(default_factory=lambda: ["front"])
    camera_frame_ids: List[str] = field(default_factory=lambda: [""])
    image_transport: str = "raw"

    def validate(self) -> None:
        if self.image_transport not in IMAGE_TRANSPORTS:
            raise ValueError(f"parameter 'image_transport' must be one of {IMAGE_TRANSPORTS}, got {self.image_transport!r}")
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"parameter 'cameras' must list distinct names, got {self.cameras}")
        if len(self.camera_frame_ids) != len(self.cameras):
            raise ValueError("parameter 'camera_frame_ids' needs one entry per camera ('' accepts any)")


@dataclass
class UnderstandingParams(ModelParams, CameraParams):
    rate_hz: float = 2.0
    frames: int = 4
    frame_interval_s: float = 0.25
    segment: str = ""
    slots: int = 3
    route_lookahead_m: List[float] = field(default_factory=lambda: [10.0, 20.0])

    def validate(self) -> None:
        ModelParams.validate(self)
        CameraParams.validate(self)
        if len(self.route_lookahead_m) != 2 or not all(d > 0 for d in self.route_lookahead_m):
            raise ValueError("parameter 'route_lookahead_m' must be two positive distances")
        if self.rate_hz <= 0 or self.frames < 1 or self.frame_interval_s <= 0:
            raise ValueError("rate_hz, frames and frame_interval_s must be positive")
        if self.slots < 2:
            raise ValueError("parameter 'slots' must be >= 2 (readers keep a slot while the next is written)")


@dataclass
class ActionParams(ModelParams, CameraParams):
    # The Action Expert's scene input: the BEV raster of data/sensors.py (what it is trained on).
    cameras: List[str] = field(default_factory=lambda: ["bev"])
    backend: str = "torch"
    engine_dir: str = ""
    precision: str = "fp32"
    queue_size: int = 10
    slop_s: float = 0.05
    max_context_age_s: float = 3.0
    frame_id: str = "base_link"
    diagnostics_period_s: float = 1.0
    error_log_period_s: float = 2.0

    def validate(self) -> None:
        ModelParams.validate(self)
        CameraParams.validate(self)
        from automot_ros.engines.artifacts import PRECISIONS
        from automot_ros.runtime.backends.factory import BACKEND_NAMES

        if self.backend not in BACKEND_NAMES:
            raise ValueError(f"parameter 'backend' must be one of {', '.join(BACKEND_NAMES)}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"parameter 'precision' must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.queue_size < 1 or self.slop_s < 0 or self.max_context_age_s <= 0:
            raise ValueError("queue_size >= 1, slop_s >= 0 and max_context_age_s > 0 are required")


@dataclass
class LanguageParams(ModelParams):
    max_question_chars: int = 300
    max_new_tokens: int = 48
    max_decode_time_s: float = 10.0

    def validate(self) -> None:
        ModelParams.validate(self)
        if self.max_question_chars < 1 or self.max_new_tokens < 1 or self.max_decode_time_s <= 0:
            raise ValueError("max_question_chars, max_new_tokens and max_decode_time_s must be positive")


@dataclass
class SimBridgeParams:
    """The closed-loop simulator bridge (nodes/sim_bridge.py; not part of the vehicle stack,
    so not in drive.yaml): which episodes to drive and how to step in lockstep."""

    seeds: List[int] = field(default_factory=lambda: [0])
    out_dir: str = ""  # episodes are written to <out_dir>/episodes/seed_NNNNNN.npz
    policy: str = "automot"  # the name recorded in the episode logs
    mode: str = "async"  # async: the plan of frame k uses an older context; sync: the context of frame k
    map_blocks: int = 3
    traffic_density: float = 0.08
    max_seconds: float = 90.0
    stuck_seconds: float = 20.0
    # Camera frames (images + odometry, each planned on) per second of sim time: 20 (every
    # 0.05 s simulator step), or a divisor of it; the plan is held between frames.
    camera_hz: float = 20.0
    # Mirror of the understanding node's settings (rate_hz in sim time, frame history), to
    # know when a context is due; in sync mode the rate must equal camera_hz.
    ue_rate_hz: float = 2.0
    ue_frames: int = 4
    ue_frame_interval_s: float = 0.25
    camera: str = "front"  # the understanding node's camera
    scene_camera: str = "bev"  # the action node's camera: the BEV raster it was trained on
    odom_frame_id: str = "odom"
    plan_timeout_s: float = 60.0  # wall time to wait for a frame's plan before going on
    context_timeout_s: float = 60.0  # wall time to wait for a due context before going on
    startup_timeout_s: float = 300.0  # wall time for the stack to come up
    episode_gap_s: float = 5.0  # sim time between episodes (longer than the history and context age limit)
    info_json: str = "{}"  # recorded in every episode log (model, checkpoint, ...)

    def steps_per_frame(self) -> int:
        return round(SIM_STEP_HZ / self.camera_hz)

    def validate(self) -> None:
        if not self.seeds:
            raise ValueError("parameter 'seeds' must list at least one seed")
        if not self.out_dir:
            raise ValueError("parameter 'out_dir' must name the output directory")
        if self.mode not in ("async", "sync"):
            raise ValueError(f"parameter 'mode' must be async or sync, got {self.mode!r}")
        if self.camera_hz <= 0 or abs(SIM_STEP_HZ / self.camera_hz - round(SIM_STEP_HZ / self.camera_hz)) > 1e-6:
            raise ValueError(f"parameter 'camera_hz' must divide the simulator's {SIM_STEP_HZ:g} Hz, got {self.camera_hz}")
        if self.mode == "sync" and abs(self.ue_rate_hz - self.camera_hz) > 1e-6:
            raise ValueError("mode sync needs ue_rate_hz == camera_hz (a context for every frame)")
        if min(self.max_seconds, self.plan_timeout_s, self.context_timeout_s, self.ue_rate_hz) <= 0:
            raise ValueError("max_seconds, plan_timeout_s, context_timeout_s and ue_rate_hz must be positive")
        if self.episode_gap_s < (self.ue_frames + 1) * self.ue_frame_interval_s:
            raise ValueError("parameter 'episode_gap_s' must exceed the UE's frame history")


def declare(node, params_cls):
    """Declare every field of ``params_cls`` on ``node`` and return the validated values."""
    defaults = params_cls()
    values = {}
    for f in dataclasses.fields(params_cls):
        values[f.name] = node.declare_parameter(f.name, getattr(defaults, f.name)).value
    params = params_cls(**values)
    params.validate()
    return params
