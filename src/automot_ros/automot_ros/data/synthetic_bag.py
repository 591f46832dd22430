"""`automot data synth-bag`: a short, clearly labeled SYNTHETIC rosbag2 for replay.

The traffic scenario of data/synthetic_traffic.py, rendered by the sensor model, in the
drive bag layout of data/drive_bag.py (front camera, BEV raster, odometry, latched route,
agent boxes); the bag's custom data says ``automot.synthetic: true``.
"""

from __future__ import annotations

import json
from pathlib import Path

from automot_ros.data.drive_bag import DEFAULT_NAMESPACE, START_NS, DriveBagRecorder
from automot_ros.data.sensors import CameraSpec
from automot_ros.data.synthetic_traffic import TrafficScenario


def write_synthetic_bag(out, duration_s: float = 12.0, rate_hz: float = 20.0, image_size=(128, 256),
                        storage: str = "mcap", compress: bool = False, namespace: str = DEFAULT_NAMESPACE) -> dict:
    """Write the scenario's first ``duration_s`` seconds to the bag directory ``out``; a summary."""
    if duration_s <= 0 or rate_hz <= 0:
        raise ValueError("duration and rate must be positive")
    scenario = TrafficScenario()
    camera = CameraSpec(height=int(image_size[0]), width=int(image_size[1]))
    frames = int(round(duration_s * rate_hz)) + 1
    description = {"what": "SYNTHETIC kinematic scenario (automot data synth-bag); not real driving data",
                   "duration_s": duration_s, "rate_hz": rate_hz, "image_size": list(image_size)}
    custom = {"automot.synthetic": "true", "automot.description": json.dumps(description)}
    with DriveBagRecorder(out, scenario.route(), custom, storage=storage, compress=compress,
                          namespace=namespace) as bag:
        for k in range(frames):
            t_s = k / rate_hz
            front, bev = scenario.render(t_s, camera)
            bag.frame(scenario.ego_at(t_s, START_NS + int(round(t_s * 1e9))), front, bev, scenario.agents_at(t_s))
        counts, topics = bag.counts, bag.topics
    size = sum(f.stat().st_size for f in Path(out).iterdir())
    return {"path": str(out), "storage": storage, "frames": frames, "duration_s": (frames - 1) / rate_hz,
            "topics": topics, "counts": counts, "bytes": size}
