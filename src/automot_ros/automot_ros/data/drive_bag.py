"""The rosbag2 layout of recorded drives, written by `automot data collect` (MetaDrive) and
`automot data synth-bag` (SYNTHETIC), read by `automot replay`.

Topics (as the stack in namespace /automot sees them), all per camera frame with the
frame's stamp as header stamp and log time, except the route:

| topic | type |
| --- | --- |
| /automot/camera/front/image_raw | sensor_msgs/Image (rgb8, frame front_camera): the UE's camera |
| /automot/camera/bev/image_raw | sensor_msgs/Image (rgb8 holding the BEV raster's 3 channels, frame base_link): the AE's input |
| /automot/ego/odom | nav_msgs/Odometry (odom -> base_link) |
| /automot/route | nav_msgs/Path (odom), latched (transient local), once at the start |
| /automot/agents | visualization_msgs/MarkerArray: one CUBE per agent (odom) |

Agent boxes (the ground truth for collision scoring): each marker is an ADD CUBE whose
header.stamp is the time of the box, header.frame_id the odometry frame, pose the box
center (z = half the height) and yaw, scale (length, width, height), id a stable agent id.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from automot_ros.data.bag_io import BagWriter, MessageBuilder
from automot_ros.data.ego import EgoState

DEFAULT_NAMESPACE = "/automot"
# 2026-01-01T00:00:00Z: a fixed start, so the same inputs write the same bag.
START_NS = 1_767_225_600 * 1_000_000_000


def drive_topics(namespace: str = DEFAULT_NAMESPACE) -> Dict[str, str]:
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return {"camera": f"{ns}/camera/front/image_raw", "bev": f"{ns}/camera/bev/image_raw", "odom": f"{ns}/ego/odom",
            "route": f"{ns}/route", "agents": f"{ns}/agents"}


class DriveBagRecorder:
    """Writes one drive: the route at once, then ``frame`` per camera frame. A context
    manager; leaving it with an exception aborts the bag (``close(ok=False)``)."""

    def __init__(self, path, route_xy: np.ndarray, custom_data: Dict[str, str], storage: str = "mcap",
                 compress: bool = False, namespace: str = DEFAULT_NAMESPACE):
        self.topics = drive_topics(namespace)
        self.build = MessageBuilder()
        self.writer = BagWriter(path, storage=storage, compress=compress)
        for key, value in custom_data.items():
            self.writer.set_custom_data(key, value)
        self.writer.add_topic(self.topics["route"], "nav_msgs/msg/Path", transient_local=True)
        for name in ("camera", "bev"):
            self.writer.add_topic(self.topics[name], "sensor_msgs/msg/Image")
        self.writer.add_topic(self.topics["odom"], "nav_msgs/msg/Odometry")
        self.writer.add_topic(self.topics["agents"], "visualization_msgs/msg/MarkerArray")
        self.writer.write(self.topics["route"], START_NS, self.build.path(START_NS, route_xy, "odom"))

    def frame(self, ego: EgoState, front_rgb: np.ndarray, bev_chw: np.ndarray, agents: Sequence) -> None:
        """One frame at ego.stamp_ns: front [H, W, 3], BEV [3, Hb, Wb] uint8, and agents
        with agent_id, x, y, yaw, length, width, height (synthetic_traffic.AgentBox)."""
        stamp = ego.stamp_ns
        self.writer.write(self.topics["camera"], stamp, self.build.image(stamp, front_rgb, "front_camera"))
        self.writer.write(self.topics["bev"], stamp, self.build.image(stamp, bev_chw.transpose(1, 2, 0), "base_link"))
        self.writer.write(self.topics["odom"], stamp, self.build.odometry(ego, "odom"))
        self.writer.write(self.topics["agents"], stamp, self.build.markers(stamp, agents, "odom"))

    @property
    def counts(self) -> Dict[str, int]:
        return dict(self.writer.counts)

    def close(self, ok: bool = True) -> None:
        if ok:
            self.writer.close()
        else:
            self.writer.__exit__(RuntimeError, None, None)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(ok=exc_type is None)


__all__ = ["DEFAULT_NAMESPACE", "DriveBagRecorder", "START_NS", "drive_topics"]
