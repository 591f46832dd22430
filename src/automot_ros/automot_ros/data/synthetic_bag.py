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

from automot_ros.data.bag_io import BagWriter, MessageBuilder
from automot_ros.data.synthetic_traffic import TrafficScenario
from automot_ros.data.synthetic import SyntheticScenario

DEFAULT_NAMESPACE = "/automot"
AGENTS_TOPIC = "/automot/agents"
# 2026-01-01T00:00:00Z: a fixed start, so the same arguments write the same bag.
START_NS = 1_767_225_600 * 1_000_000_000


def write_synthetic_bag(out, duration_s: float = 12.0, rate_hz: float = 20.0, image_size=(128, 256),
                        storage: str = "mcap", compress: bool = False, namespace: str = DEFAULT_NAMESPACE) -> dict:
    """Write the scenario's first ``duration_s`` seconds to the bag directory ``out``; a summary."""
    if duration_s <= 0 or rate_hz <= 0:
        raise ValueError("duration and rate must be positive")
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    topics = {"camera": f"{ns}/camera/front/image_raw", "odom": f"{ns}/ego/odom", "route": f"{ns}/route",
              "agents": f"{ns}/agents"}
    scenario = TrafficScenario(SyntheticScenario(image_height=int(image_size[0]), image_width=int(image_size[1])))
    build = MessageBuilder()
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
