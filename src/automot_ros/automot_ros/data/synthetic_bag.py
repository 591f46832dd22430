"""`automot data synth-bag`: a short, clearly labeled SYNTHETIC rosbag2 for replay.

Topics (as the stack in namespace /automot sees them; the bag's custom data says
``automot.synthetic: true``):

| topic | type | rate |
| --- | --- | --- |
| /automot/camera/front/image_raw | sensor_msgs/Image (rgb8, frame front_camera) | camera rate |
| /automot/ego/odom | nav_msgs/Odometry (odom -> base_link), same stamps as the camera | camera rate |
| /automot/route | nav_msgs/Path (odom), latched (transient local), once at the start | once |
| /automot/agents | visualization_msgs/MarkerArray: one CUBE per agent (odom), same stamps | camera rate |

Agent boxes (the ground truth for collision scoring): each marker is an ADD CUBE whose
header.stamp is the time of the box, header.frame_id the odometry frame, pose the box
center (z = half the height) and yaw, scale (length, width, height), id a stable agent id.
Log (receive) times equal the header stamps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from automot_ros.data.bag_io import BagWriter, typestore
from automot_ros.data.synthetic_traffic import TrafficScenario
from automot_ros.data.synthetic import SyntheticScenario

DEFAULT_NAMESPACE = "/automot"
AGENTS_TOPIC = "/automot/agents"
# 2026-01-01T00:00:00Z: a fixed start, so the same arguments write the same bag.
START_NS = 1_767_225_600 * 1_000_000_000


class _Builder:
    """rosbags message objects for the few types the bag holds."""

    def __init__(self):
        self.t = typestore().types

    def stamp(self, ns: int):
        return self.t["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def header(self, ns: int, frame_id: str):
        return self.t["std_msgs/msg/Header"](stamp=self.stamp(ns), frame_id=frame_id)

    def pose(self, x: float, y: float, z: float, yaw: float):
        point = self.t["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=float(z))
        q = self.t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=float(np.sin(yaw / 2)), w=float(np.cos(yaw / 2)))
        return self.t["geometry_msgs/msg/Pose"](position=point, orientation=q)

    def image(self, ns: int, rgb: np.ndarray, frame_id: str):
        h, w = rgb.shape[:2]
        return self.t["sensor_msgs/msg/Image"](
            header=self.header(ns, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
            data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1))

    def odometry(self, ego, frame_id: str):
        vec = self.t["geometry_msgs/msg/Vector3"]
        twist = self.t["geometry_msgs/msg/Twist"](linear=vec(x=float(ego.speed_mps), y=0.0, z=0.0),
                                                  angular=vec(x=0.0, y=0.0, z=0.0))
        return self.t["nav_msgs/msg/Odometry"](
            header=self.header(ego.stamp_ns, frame_id), child_frame_id="base_link",
            pose=self.t["geometry_msgs/msg/PoseWithCovariance"](pose=self.pose(ego.x, ego.y, 0.0, ego.yaw),
                                                                covariance=np.zeros(36)),
            twist=self.t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))

    def path(self, ns: int, points_xy: np.ndarray, frame_id: str):
        header = self.header(ns, frame_id)
        poses = [self.t["geometry_msgs/msg/PoseStamped"](header=header, pose=self.pose(x, y, 0.0, 0.0))
                 for x, y in points_xy]
        return self.t["nav_msgs/msg/Path"](header=header, poses=poses)

    def markers(self, ns: int, agents, frame_id: str):
        marker_cls = self.t["visualization_msgs/msg/Marker"]
        vec = self.t["geometry_msgs/msg/Vector3"]
        markers = []
        for agent in agents:
            markers.append(marker_cls(
                header=self.header(ns, frame_id), ns=f"agents/{agent.kind}", id=agent.agent_id,
                type=marker_cls.CUBE, action=marker_cls.ADD,
                pose=self.pose(agent.x, agent.y, agent.height / 2.0, agent.yaw),
                scale=vec(x=agent.length, y=agent.width, z=agent.height),
                color=self.t["std_msgs/msg/ColorRGBA"](r=0.9, g=0.5, b=0.1, a=0.8),
                lifetime=self.t["builtin_interfaces/msg/Duration"](sec=0, nanosec=0), frame_locked=False,
                points=[], colors=[], texture_resource="",
                texture=self.t["sensor_msgs/msg/CompressedImage"](header=self.header(0, ""), format="", data=np.zeros(0, np.uint8)),
                uv_coordinates=[], text="", mesh_resource="",
                mesh_file=self.t["visualization_msgs/msg/MeshFile"](filename="", data=np.zeros(0, np.uint8)),
                mesh_use_embedded_materials=False))
        return self.t["visualization_msgs/msg/MarkerArray"](markers=markers)


def write_synthetic_bag(out, duration_s: float = 12.0, rate_hz: float = 20.0, image_size=(128, 256),
                        storage: str = "mcap", compress: bool = False, namespace: str = DEFAULT_NAMESPACE) -> dict:
    """Write the scenario's first ``duration_s`` seconds to the bag directory ``out``; a summary."""
    if duration_s <= 0 or rate_hz <= 0:
        raise ValueError("duration and rate must be positive")
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    topics = {"camera": f"{ns}/camera/front/image_raw", "odom": f"{ns}/ego/odom", "route": f"{ns}/route",
              "agents": f"{ns}/agents"}
    scenario = TrafficScenario(SyntheticScenario(image_height=int(image_size[0]), image_width=int(image_size[1])))
    build = _Builder()
    frames = int(round(duration_s * rate_hz)) + 1
    with BagWriter(out, storage=storage, compress=compress) as writer:
        writer.set_custom_data("automot.synthetic", "true")
        writer.set_custom_data("automot.description", json.dumps({
            "what": "SYNTHETIC kinematic scenario (automot data synth-bag); not real driving data",
            "duration_s": duration_s, "rate_hz": rate_hz, "image_size": list(image_size), "topics": topics}))
        writer.add_topic(topics["route"], "nav_msgs/msg/Path", transient_local=True)
        writer.add_topic(topics["camera"], "sensor_msgs/msg/Image")
        writer.add_topic(topics["odom"], "nav_msgs/msg/Odometry")
        writer.add_topic(topics["agents"], "visualization_msgs/msg/MarkerArray")
        writer.write(topics["route"], START_NS, build.path(START_NS, scenario.route(), "odom"))
        for k in range(frames):
            t_s = k / rate_hz
            stamp = START_NS + int(round(t_s * 1e9))
            ego = scenario.ego_at(t_s, stamp)
            agents = scenario.agents_at(t_s)
            writer.write(topics["camera"], stamp, build.image(stamp, scenario.render(ego, agents), "front_camera"))
            writer.write(topics["odom"], stamp, build.odometry(ego, "odom"))
            writer.write(topics["agents"], stamp, build.markers(stamp, agents, "odom"))
        counts = dict(writer.counts)
    size = sum(f.stat().st_size for f in Path(out).iterdir())
    return {"path": str(out), "storage": storage, "frames": frames, "duration_s": (frames - 1) / rate_hz,
            "topics": topics, "counts": counts, "bytes": size}
