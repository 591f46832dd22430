"""Bags through rosbags (data/bag_io.py), the synthetic bag, and damaged bags: every message
before the damage is still read, and the error names the file and the problem."""

import dataclasses
import math
import os
import struct

import numpy as np
import pytest

from automot_ros.data.bag_io import BagError, BagReader, BagWriter, typestore
from automot_ros.data.replay_logs import read_ground_truth, read_recorded
from automot_ros.data.drive_bag import START_NS
from automot_ros.data.sensors import AGENT_FRONT, EGO_VALUE, ROAD_EDGE, ROUTE_VALUE, render_front
from automot_ros.data.synthetic_bag import write_synthetic_bag
from automot_ros.data.synthetic_traffic import CAR_SIZE_M, TrafficScenario
from automot_ros.eval.open_loop import boxes_overlap, ego_boxes_from_waypoints
from automot_ros.eval.scoring import boxes_in_ego_frame
from automot_ros.replay import bag_custom_data

CAMERA, BEV, ODOM, ROUTE, AGENTS = ("/automot/camera/front/image_raw", "/automot/camera/bev/image_raw",
                                    "/automot/ego/odom", "/automot/route", "/automot/agents")


def synth(tmp_path, name="bag", storage="mcap", duration_s=3.0, **kwargs):
    path = tmp_path / name
    write_synthetic_bag(path, duration_s=duration_s, image_size=(32, 64), storage=storage, **kwargs)
    return path


def storage_file(bag):
    return next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))


def all_messages(bag):
    with BagReader(bag) as reader:
        messages = [(m.topic, m.log_time_ns, m.data) for m in reader.messages()]
        return messages, reader.error


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_synthetic_bag_round_trip(tmp_path, storage):
    bag = synth(tmp_path, storage=storage)
    assert bag_custom_data(bag)["automot.synthetic"] == "true"
    with BagReader(bag) as reader:
        assert reader.storage == storage and not reader.warnings
        assert {n: (t.msgtype, t.count) for n, t in reader.topics.items()} == {
            CAMERA: ("sensor_msgs/msg/Image", 61), BEV: ("sensor_msgs/msg/Image", 61),
            ODOM: ("nav_msgs/msg/Odometry", 61), ROUTE: ("nav_msgs/msg/Path", 1),
            AGENTS: ("visualization_msgs/msg/MarkerArray", 61)}
        assert reader.topics[ROUTE].transient_local and not reader.topics[CAMERA].transient_local
        decoded = {}
        for message in reader.messages():
            msg = reader.decode(message)
            stamp = msg.markers[0].header.stamp if message.topic == AGENTS else msg.header.stamp
            # Log times equal the header stamps; 20 Hz from the fixed start.
            assert message.log_time_ns == stamp.sec * 10**9 + stamp.nanosec
            decoded.setdefault(message.topic, []).append(msg)
        assert reader.error is None
    first = decoded[CAMERA][0]
    assert (first.height, first.width, first.encoding, first.header.frame_id) == (32, 64, "rgb8", "front_camera")
    assert len(first.data) == 32 * 64 * 3
    bev = decoded[BEV][0]  # the AE's raster at its own (model) size, whatever the camera's
    assert (bev.height, bev.width, bev.encoding, bev.header.frame_id) == (128, 256, "rgb8", "base_link")
    assert bev.header.stamp == first.header.stamp
    assert decoded[ODOM][0].header.frame_id == "odom" and decoded[ODOM][0].child_frame_id == "base_link"
    assert decoded[ODOM][0].twist.twist.linear.x == pytest.approx(8.0)
    cube = decoded[AGENTS][0].markers[0]
    assert (cube.type, cube.action, cube.header.frame_id) == (1, 0, "odom")
    assert (cube.scale.x, cube.scale.y, cube.scale.z) == pytest.approx(CAR_SIZE_M)


def test_synthetic_ground_truth_is_consistent_and_collision_free(tmp_path):
    """Odometry speed = path speed; the ego's true future never hits an agent."""
    truth = read_ground_truth(synth(tmp_path, duration_s=16.0), ODOM, AGENTS)
    stamps_s = (truth.ego.stamp_ns - START_NS) / 1e9
    np.testing.assert_allclose(stamps_s, np.arange(0, 16.0001, 0.05), atol=1e-9)
    path_speed = np.linalg.norm(np.diff(truth.ego.poses[:, :2], axis=0), axis=1) / 0.05
    mid_speed = 0.5 * (truth.ego.speed_mps[1:] + truth.ego.speed_mps[:-1])
    np.testing.assert_allclose(path_speed, mid_speed, atol=0.02)
    # The profile: cruise 8 m/s, brake to 3.5 m/s (4-7 s), hold, back to 8 m/s (9-12 s).
    speed_at = lambda t: truth.ego.speed_mps[round(t / 0.05)]  # noqa: E731
    assert (speed_at(2), speed_at(8), speed_at(15)) == pytest.approx((8.0, 3.5, 8.0))
    for k in range(0, len(stamps_s), 5):
        ego_box = ego_boxes_from_waypoints(np.zeros((1, 2)))[0]
        agents = boxes_in_ego_frame(truth.agents.boxes[k], truth.ego.poses[k])
        assert len(agents) >= 3 and not boxes_overlap(ego_box, agents).any(), stamps_s[k]


def test_scenario_renders_both_sensors_with_agents_and_the_synthetic_label():
    scenario = TrafficScenario()
    state = scenario.sim_state(0.0)
    front, bev = scenario.render(0.0)
    no_agents = dataclasses.replace(state, agent_boxes=np.zeros((0, 5)), agent_speeds=np.zeros(0),
                                    agent_heights=np.zeros(0), agent_ids=np.zeros(0, dtype=np.int64))
    assert front.shape == (128, 256, 3) and bev.shape == (3, 128, 256) and front.dtype == bev.dtype == np.uint8
    assert (front != render_front(no_agents)).any(axis=2).sum() > 100  # the lead car, at least
    assert (front[:20, :80] == 255).all(axis=2).any()  # white "SYNTHETIC" text in the sky
    assert not (render_front(no_agents)[:20, :80] == 255).all(axis=2).any()
    # BEV: the lead car ahead (its front half: 255) and the ego's own box (100) in the agent channel.
    assert (bev[2] == AGENT_FRONT).sum() > 20 and (bev[2] == EGO_VALUE).sum() > 20
    assert (bev[1] == ROUTE_VALUE).any() and (bev[0] == ROAD_EDGE).any()


def test_writer_round_trips_automot_messages(tmp_path):
    types = typestore().types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=5, nanosec=7), frame_id="base_link")
    dur = types["builtin_interfaces/msg/Duration"]
    plan = types["automot_msgs/msg/DrivingPlan"](
        header=header, meta_actions=[types["automot_msgs/msg/MetaAction"](time_from_start=dur(sec=1, nanosec=0),
                                                                          lateral=3, longitudinal=1, confidence=0.5)],
        path=[], waypoints=[types["automot_msgs/msg/Waypoint"](time_from_start=dur(sec=0, nanosec=500_000_000),
                                                               x=1.5, y=-0.25, heading=0.0, speed=3.0)],
        context_seq=4, context_age_ms=120.0, inference_ms=9.0, backend="torch", status=1)
    with BagWriter(tmp_path / "out", storage="sqlite3") as writer:
        writer.write("/automot/plan", 42, plan)
    with BagReader(tmp_path / "out") as reader:
        (message,) = list(reader.messages())
        back = reader.decode(message)
    assert (message.topic, message.log_time_ns, back.status, back.context_seq, back.backend) == (
        "/automot/plan", 42, 1, 4, "torch")
    assert (back.meta_actions[0].lateral, back.waypoints[0].x, back.waypoints[0].y) == (3, 1.5, -0.25)
    with pytest.raises(BagError, match="already exists"):
        BagWriter(tmp_path / "out")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_yields_every_message_before_the_cut(tmp_path, storage):
    """As a killed `ros2 bag record` leaves it: the file ends mid-record (no mcap footer)."""
    bag = synth(tmp_path, storage=storage, duration_s=6.0)
    intact, _ = all_messages(bag)
    data_file = storage_file(bag)
    os.truncate(data_file, int(data_file.stat().st_size * 0.6))
    with BagReader(bag) as reader:
        assert any("rosbags cannot open" in w for w in reader.warnings)
        read = [(m.topic, m.log_time_ns, m.data) for m in reader.messages()]
        error = reader.error
    assert 0.3 * len(intact) < len(read) < len(intact)
    assert read == intact[:len(read)]  # a prefix, byte for byte
    assert str(data_file) in error and "truncated or corrupt" in error and f"after {len(read)} messages" in error


def _mcap_chunk_offsets(path):
    """Byte offsets of the chunk records of an mcap file (opcode 0x06), by walking its records."""
    data, pos, offsets = path.read_bytes(), 8, []
    while pos + 9 <= len(data):
        op, length = data[pos], struct.unpack("<Q", data[pos + 1:pos + 9])[0]
        if op == 0x06:
            offsets.append(pos)
        if op == 0x02:
            break
        pos += 9 + length
    return offsets


def test_corrupt_chunk_in_an_indexed_mcap_stops_there(tmp_path):
    bag = synth(tmp_path, duration_s=10.0)
    intact, _ = all_messages(bag)
    data_file = storage_file(bag)
    chunks = _mcap_chunk_offsets(data_file)  # rosbags closes a chunk past 1 MiB
    assert len(chunks) >= 2
    with open(data_file, "r+b") as handle:  # garble the first records inside the 2nd chunk
        handle.seek(chunks[1] + 9 + 8 * 3 + 4 + 4 + 8 + 1)
        handle.write(b"\xff" * 64)
    read, error = all_messages(bag)
    assert 0 < len(read) < len(intact) and read == intact[:len(read)]
    assert error and "truncated or corrupt" in error and str(data_file) in error


def test_corrupt_pages_in_a_sqlite_bag_stop_there(tmp_path):
    bag = synth(tmp_path, storage="sqlite3", duration_s=6.0)
    intact, _ = all_messages(bag)
    data_file = storage_file(bag)
    size = data_file.stat().st_size
    with open(data_file, "r+b") as handle:  # overwrite pages in the middle with garbage
        handle.seek(int(size * 0.5) // 4096 * 4096)
        handle.write(bytes(range(256)) * 64)
    read, error = all_messages(bag)
    assert 0 < len(read) < len(intact) and read == intact[:len(read)]
    assert error and "malformed" in error


def test_unreadable_paths_give_clear_errors(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="no .mcap or .db3"):
        BagReader(tmp_path / "empty")
    (tmp_path / "x.mcap").write_bytes(b"\x89MCAP0")
    with pytest.raises(BagError, match="x.mcap"):
        BagReader(tmp_path / "x.mcap")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BagError, match="not a rosbag2"):
        BagReader(tmp_path / "notes.txt")


def test_a_bare_storage_file_without_metadata_is_read(tmp_path):
    bag = synth(tmp_path)
    (bag / "metadata.yaml").unlink()
    with BagReader(storage_file(bag)) as reader:
        assert reader.topics[CAMERA].count == 61
    read, error = all_messages(bag)  # the directory, no metadata.yaml: its storage file
    assert len(read) == 1 + 4 * 61 and error is None


def test_recorded_logs_read_plans_contexts_and_publish_times(tmp_path):
    types = typestore().types
    time_cls, header_cls = types["builtin_interfaces/msg/Time"], types["std_msgs/msg/Header"]
    context = types["automot_msgs/msg/ContextInfo"](
        header=header_cls(stamp=time_cls(sec=1, nanosec=0), frame_id="base_link"), seq=1, segment="s", slot=0,
        num_layers=2, num_tokens=3, dtype="float32", model_id="tiny-1", compute_ms=30.0)
    plan = types["automot_msgs/msg/DrivingPlan"](
        header=header_cls(stamp=time_cls(sec=1, nanosec=50_000_000), frame_id="base_link"), meta_actions=[], path=[],
        waypoints=[], context_seq=0, context_age_ms=0.0, inference_ms=0.0, backend="torch", status=2)
    with BagWriter(tmp_path / "rec") as writer:
        writer.write("/ns/context", 10, context)
        writer.write("/ns/plan", 20, plan)
        writer.write("/pub", 5, time_cls(sec=1, nanosec=50_000_000))
    rec = read_recorded(tmp_path / "rec", "/ns/plan", "/ns/context", "/pub")
    assert rec.plans.stamp_ns.tolist() == [1_050_000_000] and rec.plans.status.tolist() == [2]
    assert np.isnan(rec.plans.waypoints).all() and (rec.plans.decisions == -1).all()
    assert rec.contexts.model_id == "tiny-1" and rec.contexts.compute_ms.tolist() == [30.0]
    assert rec.published.stamp_ns.tolist() == [1_050_000_000] and rec.published.publish_ns.tolist() == [5]
    assert math.isclose(rec.contexts.receive_ns[0], 10)
