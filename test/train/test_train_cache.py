"""The AE stage's context cache: one fp16 context per UE tick, only the KV heads the AE
reads, reused while the UE is unchanged, rebuilt when it changes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from automot_ros.model import build_model
from automot_ros.train.cache import AE_FIELDS, AECacheDataset, build_ae_cache, context_tokens
from automot_ros.train.synthetic import SyntheticDriving


@pytest.fixture(scope="module")
def model():
    return build_model("tiny")


@pytest.fixture(scope="module")
def data():
    return SyntheticDriving("tiny", samples=12, episodes=2)


def test_cache_holds_the_ae_heads_of_each_tick_in_fp16(model, data, tmp_path):
    path = build_ae_cache(model, data, tmp_path, log=lambda *a: None)
    meta = json.loads((path / "meta.json").read_text())
    d, a = model.cfg.decoder, model.cfg.action
    assert meta["samples"] == 12 and meta["contexts"] == 6  # samples 0.25 s apart, UE at 2 Hz
    assert meta["context_shape"] == [d.layers, 2, a.kv_heads, context_tokens(model), d.head_dim]
    assert a.kv_heads < d.kv_heads  # the unread UE heads are not stored
    cached = AECacheDataset(path, a.route_lookahead_m)
    assert len(cached) == 12
    for i in (0, 1, 7):
        item = cached[i]
        source = data[i]
        tick_item = data[int(np.flatnonzero(cached.tick == cached.tick[i])[0])]
        assert float(item["age_s"]) == pytest.approx(0.25 * (i % 2))  # 6 samples per episode, ticks at 0, 2, 4
        with torch.no_grad():
            expected = model.understand(tick_item["frames"], tick_item["instruction"]).kv[:, :, :a.kv_heads]
        assert item["context_kv"].dtype == torch.float16
        torch.testing.assert_close(item["context_kv"].float(), expected, rtol=2e-3, atol=2e-3)
        for name in AE_FIELDS:
            assert torch.equal(item[name], torch.as_tensor(source[name])) or name == "future_agents", name
        torch.testing.assert_close(item["future_agents"], source["future_agents"], equal_nan=True)


def test_cache_is_reused_until_the_ue_changes(model, data, tmp_path):
    first = build_ae_cache(model, data, tmp_path, log=lambda *a: None)
    stamp = (first / "contexts.npy").stat().st_mtime_ns
    assert build_ae_cache(model, data, tmp_path, log=lambda *a: None) == first
    assert (first / "contexts.npy").stat().st_mtime_ns == stamp
    changed = build_model("tiny")
    with torch.no_grad():
        changed.projector[0].bias.add_(0.01)
    second = build_ae_cache(changed, data, tmp_path, log=lambda *a: None)
    assert second != first
    # A different pairing period is another cache too; an incomplete one is rebuilt.
    third = build_ae_cache(model, data, tmp_path, ue_period_s=0.0, log=lambda *a: None)
    assert third not in (first, second) and json.loads((third / "meta.json").read_text())["contexts"] == 12
    (third / "meta.json").unlink()
    assert build_ae_cache(model, data, tmp_path, ue_period_s=0.0, log=lambda *a: None) == third
    assert (third / "meta.json").is_file()


def test_a_field_added_since_the_build_is_filled_in_without_recomputing_contexts(model, data, tmp_path):
    path = build_ae_cache(model, data, tmp_path, log=lambda *a: None)
    expected = np.load(path / "future_agents.npy")
    (path / "future_agents.npy").unlink()  # a cache built before the field existed
    stamp = (path / "contexts.npy").stat().st_mtime_ns

    def no_contexts(frames, instructions):
        raise AssertionError("contexts recomputed")

    lines = []
    assert build_ae_cache(model, data, tmp_path, log=lines.append, context_fn=no_contexts) == path
    assert (path / "contexts.npy").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(np.load(path / "future_agents.npy"), expected)
    assert any("added future_agents" in line for line in lines) and not (path / "adding").exists()


def test_aes_with_another_route_lookahead_share_the_contexts_and_get_their_own_targets(model, tmp_path):
    path = build_ae_cache(model, SyntheticDriving("tiny", samples=12, episodes=2), tmp_path, log=lambda *a: None)
    stamp = (path / "contexts.npy").stat().st_mtime_ns
    tiny = model.cfg
    far_cfg = dataclasses.replace(tiny, action=dataclasses.replace(tiny.action, route_lookahead_m=(10.0, 20.0, 40.0)))
    far = build_model(far_cfg)
    far.load_state_dict(model.state_dict())  # the same UE (and AE: the targets share one embedding)
    far_data = SyntheticDriving(far_cfg, samples=12, episodes=2)

    def no_contexts(frames, instructions):
        raise AssertionError("contexts recomputed")

    assert build_ae_cache(far, far_data, tmp_path, log=lambda *a: None, context_fn=no_contexts) == path
    assert (path / "contexts.npy").stat().st_mtime_ns == stamp
    near_items = AECacheDataset(path, tiny.action.route_lookahead_m)
    far_items = AECacheDataset(path, far_cfg.action.route_lookahead_m)
    assert near_items[5]["target_points"].shape == (2, 2) and far_items[5]["target_points"].shape == (3, 2)
    torch.testing.assert_close(far_items[5]["target_points"], far_data[5]["target_points"])
    torch.testing.assert_close(far_items[5]["target_points"][:2], near_items[5]["target_points"])
    with pytest.raises(ValueError, match="route targets"):
        build_ae_cache(far, SyntheticDriving("tiny", samples=12, episodes=2), tmp_path, log=lambda *a: None)
