"""The training Dataset (data/dataset.py) over a hand-built stored episode: model-ready tensors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sim_scenes import straight_road, write_straight_store

from automot_ros.data.dataset import (FUTURE_AGENT_SLOTS, IMAGE_FREE_FIELDS, DrivingDataset, Episode, collate,
                                     nearest_agents)
from automot_ros.data.sensors import render_bev, render_front
from automot_ros.model.config import load_model_config
from automot_ros.sim.state import SimState


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_straight_store(tmp_path_factory.mktemp("store"))


def test_stored_episode_round_trips(store):
    ep = Episode.load(store / "episodes" / "seed_000000.npz")
    assert ep.log.num_frames == 121 and ep.num_samples == len(ep.arrays["sample_frame"]) > 0
    front, bev = ep.front(30), ep.bev(30)
    assert front.shape == (128, 256, 3) and bev.shape == (3, 128, 256)
    # PNG is lossless: the stored images are the rendered ones.
    state = SimState(t_s=1.5, ego=ep.log.ego_pose(30), road=straight_road(-60.0, 500.0), route=ep.log.route,
                     agent_boxes=ep.log.agents(30)[:, [1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(front, render_front(state))
    np.testing.assert_array_equal(bev, render_bev(state))
    assert set(ep.qa) == set(range(ep.num_samples))


def test_items_are_model_ready(store):
    data = DrivingDataset(store, "train", model="tiny")
    assert len(data) == len(DrivingDataset(store, "train"))
    item = data[0]
    assert item["frames"].shape == (4, 3, 64, 128) and item["frames"].dtype == torch.uint8
    assert item["scene_input"].shape == (3, 64, 128) and item["scene_input"].dtype == torch.uint8
    assert item["target_points"].shape == (2, 2) and item["speed"].shape == ()
    assert item["future_xy"].shape == (6, 2) and item["path_xy"].shape == (20, 2) and item["labels"].shape == (3, 2)
    assert item["instruction"].startswith("Next target points: (+010.0, +000.0) m and (+020.0, +000.0) m.")
    np.testing.assert_allclose(item["future_xy"][:, 0].numpy(), 4.0 * np.arange(1, 7), atol=1e-4)
    lead = [r for r in item["qa"] if r["kind"] == "lead"][0]
    assert lead["fields"]["lead"] is True and lead["fields"]["distance_m"] == pytest.approx(15.5, abs=0.1)
    boxes = data.agent_boxes_future(0)
    assert len(boxes) == 6 and all(b.shape == (1, 5) for b in boxes)
    np.testing.assert_allclose([b[0, 0] for b in boxes], 20.0 + 4.0 * np.arange(1, 7), atol=1e-6)
    # future_agents: the same boxes in a fixed-size array, empty slots NaN.
    assert item["future_agents"].shape == (6, FUTURE_AGENT_SLOTS, 5) and item["future_agents"].dtype == torch.float32
    np.testing.assert_allclose(item["future_agents"][:, 0].numpy(), np.concatenate(boxes), atol=1e-5)
    assert bool(torch.isnan(item["future_agents"][:, 1:]).all())
    full = DrivingDataset(store, "heldout")
    assert full[0]["frames"].shape == (4, 3, 128, 256) and full[0]["seed"] == 1


def test_image_free_fields_come_without_decoding_images(store, monkeypatch):
    data = DrivingDataset(store, "train", model="tiny")
    item = data[3]

    def no_decoding(self, *args):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(Episode, "_png", no_decoding)
    fields = data.image_free_fields(3)
    assert set(fields) == set(IMAGE_FREE_FIELDS)
    for name in IMAGE_FREE_FIELDS:
        torch.testing.assert_close(fields[name], item[name], equal_nan=True)


def test_route_targets_follow_the_models_lookahead_and_the_instruction_keeps_its_two(store):
    tiny = load_model_config("tiny")
    far = dataclasses.replace(tiny, action=dataclasses.replace(tiny.action, route_lookahead_m=(10.0, 20.0, 30.0, 45.0)))
    item, far_item = DrivingDataset(store, "train", model=tiny)[0], DrivingDataset(store, "train", model=far)[0]
    # The stored episode drives straight along +x on its route: the targets lie straight ahead.
    np.testing.assert_allclose(far_item["target_points"].numpy(), [[10, 0], [20, 0], [30, 0], [45, 0]], atol=1e-4)
    torch.testing.assert_close(far_item["target_points"][:2], item["target_points"])
    assert far_item["instruction"] == item["instruction"]


def test_nearest_agents_keeps_the_closest_to_each_waypoint_nearest_first():
    far, near, middle = [30.0, 0.0, 4.5, 1.9, 0.0], [5.0, 1.0, 4.5, 1.9, 0.0], [10.0, -4.0, 4.5, 1.9, 0.0]
    boxes = [np.array([far, near, middle]), np.zeros((0, 5))]
    out = nearest_agents(boxes, np.array([[4.0, 0.0], [8.0, 0.0]]), slots=2)
    np.testing.assert_array_equal(out[0], np.array([near, middle], dtype=np.float32))
    assert np.isnan(out[1]).all()


def test_a_batch_runs_through_the_tiny_model(store):
    from automot_ros.model import build_model

    data = DrivingDataset(store, "all", model="tiny")
    batch = collate([data[0], data[len(data) - 1]])
    assert batch["frames"].shape == (2, 4, 3, 64, 128) and isinstance(batch["instruction"], list)
    model = build_model("tiny")
    plan = model.forward_sync(batch["frames"], batch["instruction"], batch["scene_input"], batch["target_points"],
                              batch["speed"])
    assert plan.waypoints.shape == batch["future_xy"].shape and plan.path.shape == batch["path_xy"].shape
    assert plan.lateral_logits.shape[:2] == batch["labels"].shape[:2]


def test_unknown_split_is_refused(store):
    with pytest.raises(ValueError, match="split"):
        DrivingDataset(store, "validation")
