"""Bad input raises ValueError naming the problem."""

from __future__ import annotations

import pytest
import torch

from automot_ros.model import ContextCache, build_model, format_instruction, load_model_config
from automot_ros.model.config import ModelConfig


@pytest.fixture(scope="module")
def ready(tiny, make_inputs):
    frames, instruction, scene, targets, speed = make_inputs(tiny, 2)
    return frames, instruction, scene, targets, speed, tiny.understand(frames, instruction)


def test_bad_frames(tiny, ready):
    frames, instruction, *_ = ready
    with pytest.raises(ValueError, match="frames.*\\[T, 3, H, W\\]"):
        tiny.understand(frames[:3], instruction)  # wrong frame count
    with pytest.raises(ValueError, match="frames.*\\[T, 3, H, W\\]"):
        tiny.understand(frames[..., :-8], instruction)  # wrong size
    with pytest.raises(ValueError, match="frames must be a uint8"):
        tiny.understand(frames.float(), instruction)
    with pytest.raises(ValueError, match="instruction"):
        tiny.understand(frames, 42)


def test_bad_action_inputs(tiny, ready):
    _, _, scene, targets, speed, context = ready
    nan_speed = speed.clone()
    nan_speed[1] = float("nan")
    with pytest.raises(ValueError, match="speed must be finite"):
        tiny.act(context, scene, targets, nan_speed)
    nan_targets = targets.clone()
    nan_targets[0, 1, 0] = float("inf")
    with pytest.raises(ValueError, match="target_points must be finite"):
        tiny.act(context, scene, nan_targets, speed)
    with pytest.raises(ValueError, match="target_points must be a tensor \\[2, 2, 2\\]"):
        tiny.act(context, scene, targets[:, :1], speed)
    with pytest.raises(ValueError, match="speed must be a tensor \\[2\\]"):
        tiny.act(context, scene, targets, speed[:1])
    with pytest.raises(ValueError, match="scene_input must be \\[B, 3, 64, 128\\]"):
        tiny.act(context, scene[..., :64], targets, speed)
    with pytest.raises(ValueError, match="scene_input must be uint8 or float"):
        tiny.act(context, scene.long(), targets, speed)
    with pytest.raises(ValueError, match="target_points must be finite"):
        format_instruction([[float("nan"), 0.0], [1.0, 2.0]], 3.0)
    with pytest.raises(ValueError, match="speed must be finite"):
        format_instruction([[1.0, 0.0], [1.0, 2.0]], float("nan"))


def test_foreign_or_malformed_context(tiny, ready):
    _, _, scene, targets, speed, context = ready
    other = build_model("tiny", seed=1)
    assert other.model_id != tiny.model_id
    with pytest.raises(ValueError, match="model_id"):
        other.act(context, scene, targets, speed)
    with pytest.raises(ValueError, match="model_id"):
        other.answer(context, "Why?", max_new_tokens=1)
    fewer_layers = ContextCache.from_kv(context.kv[:-1], tiny.model_id)
    with pytest.raises(ValueError, match="layers"):
        tiny.act(fewer_layers, scene, targets, speed)
    with pytest.raises(ValueError, match="KV heads"):
        tiny.act(ContextCache.from_kv(context.kv.repeat(1, 1, 2, 1, 1), tiny.model_id), scene, targets, speed)
    with pytest.raises(ValueError, match="kv_heads, tokens, head_dim"):
        ContextCache.from_kv(context.kv[0], tiny.model_id)
    with pytest.raises(ValueError, match="next_position"):
        ContextCache.from_kv(context.kv, tiny.model_id, next_position=context.num_tokens + 3)
    wrapped = ContextCache.from_kv(context.kv, tiny.model_id, context.next_position)
    assert torch.equal(tiny.act(wrapped, scene, targets, speed).path, tiny.act(context, scene, targets, speed).path)


def test_configs(tmp_path):
    tiny = load_model_config("tiny")
    path = tmp_path / "mine.yaml"
    path.write_text("decoder: {layers: 2}\n")
    assert load_model_config(str(path)).decoder.layers == 2 and load_model_config(path).name == "mine"
    with pytest.raises(ValueError, match="no model config"):
        load_model_config("nope")
    path.write_text("decoder: {layerz: 2}\n")
    with pytest.raises(ValueError, match="layerz"):
        load_model_config(path)
    with pytest.raises(ValueError, match="GQA group size"):
        ModelConfig.from_dict({**tiny.to_dict(), "action": {**tiny.to_dict()["action"], "heads": 2}})
    assert ModelConfig.from_dict(tiny.to_dict()) == tiny
    path.write_text("action: {route_lookahead_m: [10, 20, 40]}\n")
    far = load_model_config(path).action
    assert far.route_lookahead_m == (10.0, 20.0, 40.0) and far.target_points == 3
    assert '"route_lookahead_m": [10.0, 20.0, 40.0]' in load_model_config(path).to_json()  # YAML ints as floats
    assert far.num_nav_tokens == tiny.action.num_nav_tokens + 1
    for bad in ("[]", "[20, 10]", "[0, 10]"):
        path.write_text(f"action: {{route_lookahead_m: {bad}}}\n")
        with pytest.raises(ValueError, match="route_lookahead_m must be increasing positive"):
            load_model_config(path)
    # Checkpoints from before route_lookahead_m embed target_points: 2, the 10 and 20 m default.
    legacy = {**tiny.to_dict(), "action": {**tiny.to_dict()["action"], "target_points": 2}}
    del legacy["action"]["route_lookahead_m"]
    assert ModelConfig.from_dict(legacy) == tiny
