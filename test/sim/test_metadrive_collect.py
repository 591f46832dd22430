"""MetaDrive (physics-only) and `automot data collect` end to end. Skipped with the reason
where MetaDrive is not installed or cannot run (it needs Python < 3.12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from automot_ros.data.sensors import route_ahead
from automot_ros.sim.metadrive_env import METADRIVE_VERSION, ensure_stub_assets, metadrive_available

AVAILABLE, WHY = metadrive_available()
requires_metadrive = pytest.mark.skipif(not AVAILABLE, reason=WHY)


def test_stub_asset_folder_is_created_idempotently(tmp_path):
    folder = ensure_stub_assets(tmp_path / "assets")
    assert (folder / "version.txt").read_text().strip() == METADRIVE_VERSION
    assert (folder / "textures" / "grass1" / "GroundGrassGreen002_COL_1K.jpg").is_file()
    assert ensure_stub_assets(folder) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["textures", "version.txt"]


@requires_metadrive
def test_metadrive_state_is_ground_truth_and_deterministic_per_seed():
    from automot_ros.sim.metadrive_env import STEP_S, MetaDriveConfig, MetaDriveSim

    with MetaDriveSim(MetaDriveConfig(map_blocks=2)) as sim:
        first = sim.reset(3)
        assert first.route.shape[1] == 2 and len(first.route) >= 2 and first.road.num_surfaces > 0
        assert first.ego.lane_count > 0 and 0 <= first.ego.lane_index < first.ego.lane_count
        # The ego starts on the route.
        start = route_ahead(first.route, first.ego)[0]
        assert np.hypot(start[0] - first.ego.x, start[1] - first.ego.y) < 2.0
        poses = [(s.ego.x, s.ego.y, s.ego.yaw, s.ego.speed_mps) for s in (sim.step() for _ in range(40))]
        assert sim.state.t_s == pytest.approx(40 * STEP_S)
        assert poses[-1][3] > 1.0  # the expert drives off
        # Displacement direction agrees with the reported heading (x forward, y left frame).
        dx, dy = np.subtract(poses[-1][:2], poses[-10][:2])
        assert abs(np.arctan2(dy, dx) - poses[-5][2]) < 0.2
        again = sim.reset(3)
        np.testing.assert_allclose([again.ego.x, again.ego.y], [first.ego.x, first.ego.y])
        replay = [(s.ego.x, s.ego.y, s.ego.yaw, s.ego.speed_mps) for s in (sim.step() for _ in range(40))]
        np.testing.assert_allclose(replay, poses, atol=1e-6)


@requires_metadrive
def test_actions_drive_the_ego_when_the_expert_is_off():
    from automot_ros.sim.metadrive_env import MetaDriveConfig, MetaDriveSim

    with MetaDriveSim(MetaDriveConfig(map_spec="S", expert=False, traffic_density=0.0)) as sim:
        start = sim.reset(1)
        with pytest.raises(ValueError, match="action"):
            sim.step()
        for _ in range(40):
            state = sim.step((0.0, 1.0))  # straight, full throttle
        assert state.ego.speed_mps > 3.0 and start.ego.to_ego_frame([state.ego.x, state.ego.y])[0] > 3.0


@requires_metadrive
def test_one_episode_collection_end_to_end(tmp_path):
    from automot_ros.data.bag_io import BagReader
    from automot_ros.data.collect import CollectConfig, collect
    from automot_ros.data.dataset import DrivingDataset
    from automot_ros.replay import plan_topics

    out = tmp_path / "data"
    manifest = collect(CollectConfig(episodes=1, out=str(out), seed_start=5, map_blocks=1, max_seconds=6.0),
                       log=lambda line: None)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    entry = manifest["episodes"][0]
    assert "error" not in entry, entry
    assert entry["seed"] == 5 and manifest["splits"] == {"train": [5], "heldout": []}
    assert entry["frames"] >= 100 and entry["samples"] > 0 and entry["qa_pairs"] >= 5 * entry["samples"]
    with BagReader(out / entry["bag"]) as bag:
        counts = {name: info.count for name, info in bag.topics.items()}
        plan = plan_topics(bag.topics, [], "/automot")
    assert counts == {"/automot/camera/front/image_raw": entry["frames"], "/automot/camera/bev/image_raw": entry["frames"],
                      "/automot/ego/odom": entry["frames"],
                      "/automot/agents": entry["frames"], "/automot/route": 1}
    assert plan.camera[0] == "/automot/camera/front/image_raw" and plan.boxes == "/automot/agents"
    data = DrivingDataset(out, "train", model="tiny", include_invalid=True)
    assert len(data) == entry["samples"]
    item = data[len(data) - 1]
    assert item["frames"].shape == (4, 3, 64, 128) and item["scene_input"].shape == (3, 64, 128)
    assert item["seed"] == 5 and len(item["qa"]) >= 5


@requires_metadrive
@pytest.mark.slow
def test_cli_collects_with_two_workers(tmp_path):
    out = tmp_path / "data"
    env = dict(os.environ, AUTOMOT_METADRIVE_ASSETS=str(tmp_path / "assets"))
    result = subprocess.run(
        [sys.executable, "-m", "automot_ros.cli", "data", "collect", "--sim", "metadrive", "--episodes", "2",
         "--workers", "2", "--out", str(out), "--map-blocks", "1", "--max-seconds", "5", "--no-bags",
         "--heldout-fraction", "0.5"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"] == {"train": [0], "heldout": [1]} and manifest["summary"]["workers"] == 2
    assert all((out / e["file"]).is_file() and e["bag"] is None for e in manifest["episodes"])
    assert (tmp_path / "assets" / "version.txt").is_file()
    print(result.stdout.strip().splitlines()[-1])
