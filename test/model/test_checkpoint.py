"""Checkpoints round-trip; the release's parameter names map strictly onto ours."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from automot_ros.model import build_model, load_checkpoint, load_model_config, save_checkpoint
from automot_ros.model.checkpoint import resolve_checkpoint, trained_state_dict
from automot_ros.model.release_names import ours_to_release, release_to_ours
from automot_ros.model.summary import parameter_counts
from automot_ros.paths import config_dir


def test_roundtrip_keeps_config_and_outputs(tmp_path, make_inputs):
    model = build_model("tiny", seed=3)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(model, path)
    loaded = build_model("tiny", checkpoint=path)
    assert loaded.cfg == model.cfg and loaded.model_id.startswith("tiny-")
    frames, instruction, scene, targets, speed = make_inputs(model, 2)
    a = model.act(model.understand(frames, instruction), scene, targets, speed)
    b = loaded.act(loaded.understand(frames, instruction), scene, targets, speed)
    assert torch.equal(a.waypoints, b.waypoints) and torch.equal(a.lateral_logits, b.lateral_logits)
    with pytest.raises(ValueError, match="another config"):
        load_checkpoint(path, "smol")


def test_checkpoint_settings_resolve_auto_none_and_relative_paths(tmp_path, monkeypatch):
    share = tmp_path / "share"
    (share / "checkpoints").mkdir(parents=True)
    (share / "config").symlink_to(config_dir())
    monkeypatch.setenv("AUTOMOT_SHARE_DIR", str(share))
    assert resolve_checkpoint("tiny", "auto") is None  # nothing ships for tiny: untrained
    shipped = share / "checkpoints" / "tiny.fp16.safetensors"
    save_checkpoint(build_model("tiny", seed=5), shipped)
    assert resolve_checkpoint("tiny", "auto") == shipped and resolve_checkpoint("smol", "auto") is None
    for untrained in ("", "none", None):
        assert resolve_checkpoint("tiny", untrained) is None
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("tiny", "checkpoints/tiny.fp16.safetensors") == shipped  # via the share dir
    assert build_model("tiny", checkpoint="auto").model_id == load_checkpoint(shipped).model_id
    assert build_model("tiny", checkpoint="auto").model_id != build_model("tiny", checkpoint="none").model_id
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        build_model("tiny", checkpoint="missing.safetensors")


def test_smol_checkpoint_holds_only_trained_parts(smol):
    keys = trained_state_dict(smol)
    assert keys and all(k.startswith(("projector.", "answer_adapter.", "ae.")) for k in keys)
    assert any(k.startswith("answer_adapter.") for k in keys)  # smol has one (config/models/smol.yaml)


def test_missing_or_extra_tensor_is_an_error(tmp_path):
    model = build_model("tiny")
    state = {k: v.contiguous() for k, v in trained_state_dict(model).items()}
    meta = {"format": "automot-checkpoint-v1", "config": model.cfg.to_json()}
    for broken in ({k: v for k, v in state.items() if k != "ae.queries"}, {**state, "ae.extra": torch.zeros(1)}):
        save_file(broken, str(tmp_path / "bad.safetensors"), metadata=meta)
        with pytest.raises(ValueError, match="does not match"):
            load_checkpoint(tmp_path / "bad.safetensors")


def test_release_named_checkpoint_loads_strictly(tmp_path, make_inputs):
    source = build_model("tiny", seed=7)
    release = {ours_to_release(k): v.contiguous() for k, v in source.state_dict().items()}
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj_mot_gen.weight",
                 "model.layers.5.self_attn.k_norm_mot_gen.weight", "model.layers.2.mlp.gate_proj.weight",
                 "model.layers.2.mlp_mot_gen.down_proj.weight", "model.layers.1.input_layernorm_mot_gen.weight",
                 "model.layers.1.post_attention_layernorm_mot_gen.weight", "model.norm_mot_gen.weight",
                 "model.embed_tokens.weight", "model.norm.weight"):
        assert name in release, name
    path = tmp_path / "release.safetensors"
    save_file(release, str(path))
    loaded = load_checkpoint(path, "tiny", release_names=True)
    for name, tensor in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    frames, instruction, scene, targets, speed = make_inputs(source)
    assert torch.equal(source.act(source.understand(frames, instruction), scene, targets, speed).path,
                       loaded.act(loaded.understand(frames, instruction), scene, targets, speed).path)
    save_file({**release, "model.layers.0.self_attn.q_bias_mot_gen.weight": torch.zeros(1)}, str(path))
    with pytest.raises(ValueError, match="no counterpart"):
        load_checkpoint(path, "tiny", release_names=True)


def test_release_map_is_a_bijection_at_release_scale():
    from automot_ros.model.automot import AutoMoT
    with torch.device("meta"):
        names = list(AutoMoT(load_model_config("automot-b2d"), load_pretrained=False).state_dict())
    release = [ours_to_release(n) for n in names]
    assert len(set(release)) == len(names)
    assert [release_to_ours(r) for r in release] == names
    assert sum(r.startswith("model.layers.35.") for r in release) == 2 * 11  # UE + AE, 11 tensors each


def test_release_scale_parameter_counts():
    counts = parameter_counts("automot-b2d")
    assert 3.9e9 < counts["ue_decoder"] < 4.1e9  # Qwen3-VL-4B's language model: 4.02 B
    assert 1.5e9 < counts["ae_total"] < 1.9e9  # the release's ~1.6 B-scale Action Expert
