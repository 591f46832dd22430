"""`automot train` end to end on in-memory synthetic data (tiny, single process): the loss
goes down, an interrupted run resumed gives the same curve and weights, and the fp16
release file loads as a model with the UE the AE trained on."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors import safe_open

from automot_ros.model import build_model
from automot_ros.model.checkpoint import read_checkpoint, trained_state_dict
from automot_ros.paths import config_dir
from automot_ros.train.cache import ue_digest
from automot_ros.train.trainer import LOG_COLUMNS, Trainer, TrainOptions, read_log, train


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _opts(out, **kw) -> TrainOptions:
    base = dict(config="tiny", data="synthetic:48", out=str(out), batch=8, threads=1, progress=False,
                eval_split=None, ckpt_every=1000, warmup_steps=0)
    base.update(kw)
    return TrainOptions(**base)


def _quiet(*args, **kwargs):
    pass


def test_the_ae_loss_goes_down(tmp_path):
    summary = train(_opts(tmp_path, stage="ae", steps=30, lr=1e-3, eval_split="heldout"), log=_quiet)
    rows = read_log(tmp_path / "train_log.csv")
    assert list(rows[0]) == list(LOG_COLUMNS) and len(rows) == 30
    losses = [float(r["loss"]) for r in rows]
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5, losses
    assert (tmp_path / "train_log.png").stat().st_size > 10_000
    assert summary["stages"]["ae"]["s_per_step_median"] > 0
    assert summary["eval"]["samples"] == 12 and set(summary["eval"]["l2_stp3_m"]) == {"1s", "2s", "3s", "avg"}
    assert json.loads((tmp_path / "train_summary.json").read_text())["stages"]["ae"]["steps"] == 30


def test_an_interrupted_run_resumes_to_the_same_curve_and_weights(tmp_path):
    steps = dict(projector_steps=3, ae_steps=4, ckpt_every=2)
    train(_opts(tmp_path / "whole", **steps), log=_quiet)
    chunked = tmp_path / "chunked"
    for stop_after in (2, 3, None):  # stops inside the projector stage, then inside the AE stage
        train(_opts(chunked, resume=True, stop_after=stop_after, **steps), log=_quiet)
    whole, resumed = read_log(tmp_path / "whole" / "train_log.csv"), read_log(chunked / "train_log.csv")
    assert [(r["stage"], r["step"]) for r in resumed] == [(r["stage"], r["step"]) for r in whole]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole]
    with safe_open(str(tmp_path / "whole" / "model.safetensors"), "pt") as a, \
            safe_open(str(chunked / "model.safetensors"), "pt") as b:
        assert set(a.keys()) == set(b.keys())
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key
    state = torch.load(chunked / "checkpoints" / "last.state.pt", weights_only=True)
    assert state["done"] == ["projector", "ae"] and state["step"] == 4 and state["optimizer"]["state"]


def test_release_file_is_fp16_trained_parts_and_loads(tmp_path):
    summary = train(_opts(tmp_path, projector_steps=1, ae_steps=2), log=_quiet)
    release = tmp_path / "tiny.fp16.safetensors"
    assert summary["release"]["path"] == str(release)
    with safe_open(str(release), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} <= {torch.float16, torch.int64}
        assert any(k.startswith("ae.") for k in f.keys()) and any(k.startswith("projector.") for k in f.keys())
        assert f.metadata()["dtype"] == "float16"
    assert release.stat().st_size < 0.55 * (tmp_path / "model.safetensors").stat().st_size
    fp16 = build_model("tiny", checkpoint=release)
    fp32 = build_model("tiny", checkpoint=tmp_path / "model.safetensors")
    # The projector was rounded to fp16 precision when its stage ended: the UE the AE trained on
    # is the released one, and a context cache of either file serves the other.
    assert ue_digest(fp16) == ue_digest(fp32)
    g = torch.Generator().manual_seed(0)
    v, s = fp32.cfg.vision, fp32.cfg.action.scene
    frames = torch.randint(0, 256, (v.frames, 3, *v.image_size), dtype=torch.uint8, generator=g)
    from automot_ros.model import format_instruction

    instruction = format_instruction([[10.0, 0.5], [20.0, 2.0]], 6.0)
    scene = torch.randint(0, 256, (1, 3, *s.image_size), dtype=torch.uint8, generator=g)
    args = (scene, torch.tensor([[[10.0, 0.5], [20.0, 2.0]]]), torch.tensor([6.0]))
    a = fp32.act(fp32.understand(frames, instruction), *args)
    b = fp16.act(fp16.understand(frames, instruction), *args)
    torch.testing.assert_close(b.waypoints, a.waypoints, rtol=0, atol=0.05)


def test_the_answer_stage_trains_only_the_adapter_from_a_checkpoint_without_one(tmp_path):
    config = yaml.safe_load((config_dir() / "models" / "tiny.yaml").read_text())
    config["name"] = "tiny"
    config.setdefault("decoder", {})["answer_adapter_rank"] = 4
    (tmp_path / "tiny-answer.yaml").write_text(yaml.safe_dump(config))
    train(_opts(tmp_path / "base", stage="ae", steps=2), log=_quiet)
    base = tmp_path / "base" / "model.safetensors"
    lines = []
    train(_opts(tmp_path / "answer", config=str(tmp_path / "tiny-answer.yaml"), stage="answer", answer_steps=25,
                lr=3e-3, init=str(base)), log=lines.append)
    assert any("no answer adapter; it starts untrained" in line for line in lines)
    ce = [float(r["answer_ce"]) for r in read_log(tmp_path / "answer" / "train_log.csv")]
    assert len(ce) == 25 and sum(ce[-5:]) < 0.8 * sum(ce[:5]), ce
    with safe_open(str(base), "pt") as before, safe_open(str(tmp_path / "answer" / "model.safetensors"), "pt") as after:
        adapter = [k for k in after.keys() if k.startswith("answer_adapter.")]
        assert adapter and set(after.keys()) - set(adapter) == set(before.keys())
        for key in before.keys():  # the UE and the AE are untouched
            assert torch.equal(before.get_tensor(key), after.get_tensor(key)), key
        assert any(float(after.get_tensor(k).abs().sum()) > 0 for k in adapter if k.endswith("up.weight"))
    # Its release file loads as the adapted config.
    assert build_model(str(tmp_path / "tiny-answer.yaml"),
                       checkpoint=tmp_path / "answer" / "tiny.fp16.safetensors").answer_adapter is not None
    with pytest.raises(ValueError, match="no answer adapter"):
        train(_opts(tmp_path / "none", stage="answer", steps=1), log=_quiet)


def test_an_ae_fine_tune_may_move_the_route_targets_and_a_fresh_ae_change_shape_but_not_the_ue(tmp_path):
    def variant(name: str, section: str, key: str, value) -> str:
        config = yaml.safe_load((config_dir() / "models" / "tiny.yaml").read_text())
        config["name"] = "tiny"
        config.setdefault(section, {})[key] = value
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        return str(tmp_path / f"{name}.yaml")

    train(_opts(tmp_path / "base", stage="ae", steps=2), log=_quiet)
    base = tmp_path / "base" / "model.safetensors"
    far = variant("far", "action", "route_lookahead_m", [10.0, 20.0, 40.0])
    lines = []
    train(_opts(tmp_path / "far", config=far, stage="ae", steps=3, init=str(base)), log=lines.append)
    assert any("it now takes [10.0, 20.0, 40.0] m" in line for line in lines), lines
    model = build_model(far, checkpoint=tmp_path / "far" / "tiny.fp16.safetensors")
    assert model.cfg.action.target_points == 3
    with pytest.raises(ValueError, match="another config"):  # serving needs the config it was trained with
        build_model("tiny", checkpoint=tmp_path / "far" / "tiny.fp16.safetensors")
    with pytest.raises(ValueError, match="another config"):  # a changed UE is no fine-tune
        train(_opts(tmp_path / "deeper", config=variant("deeper", "decoder", "layers", 3), stage="ae", steps=1,
                    init=str(base)), log=_quiet)
    # Another AE shape (several waypoint modes) starts only from the checkpoint's other parts.
    modes = variant("modes", "action", "waypoint_modes", 3)
    with pytest.raises(ValueError, match="another config"):
        train(_opts(tmp_path / "modes-all", config=modes, stage="ae", steps=1, init=str(base)), log=_quiet)
    train(_opts(tmp_path / "modes", config=modes, stage="ae", steps=2, init=str(base),
                init_parts=["frame_encoder", "projector", "decoder"]), log=_quiet)
    assert build_model(modes, checkpoint=tmp_path / "modes" / "tiny.fp16.safetensors").ae.mode_head is not None


def test_init_parts_take_those_parts_from_the_checkpoint_and_start_the_others_fresh(tmp_path):
    train(_opts(tmp_path / "base", projector_steps=1, ae_steps=1, seed=1), log=_quiet)
    _, base = read_checkpoint(tmp_path / "base" / "model.safetensors")
    fresh = trained_state_dict(build_model("tiny", seed=0))
    lines = []
    ue = ["frame_encoder", "projector", "decoder"]
    trainer = Trainer(_opts(tmp_path / "new", stage="ae", seed=0, init=str(tmp_path / "base" / "model.safetensors"),
                            init_parts=ue), log=lines.append)
    started = trained_state_dict(trainer.model)
    assert set(started) == set(base)
    ae = [name for name in started if name.startswith("ae.")]
    assert ae and len(ae) < len(started)
    for name, tensor in started.items():
        assert torch.equal(tensor, fresh[name] if name in ae else base[name]), name
    assert any(not torch.equal(base[name], fresh[name]) for name in ae)  # seed 1 and one step: another AE
    assert any("frame_encoder, projector, decoder from" in line and "fresh (seed 0)" in line for line in lines), lines
    with pytest.raises(ValueError, match=r"init parts \['projektor'\]: choose from \['frame_encoder'"):
        Trainer(_opts(tmp_path / "typo", stage="ae", init=str(tmp_path / "base" / "model.safetensors"),
                      init_parts=["projektor"]), log=_quiet)
    from automot_ros.train.release import save_trained

    no_projector = save_trained({k: v for k, v in base.items() if not k.startswith("projector.")},
                                trainer.model.cfg, tmp_path / "no-projector.safetensors")
    with pytest.raises(ValueError, match=r"missing \['projector\."):  # a named part must be in the file
        Trainer(_opts(tmp_path / "partial", stage="ae", init=str(no_projector), init_parts=ue), log=_quiet)
    with pytest.raises(ValueError, match="only with init"):
        _opts(tmp_path / "none", init_parts=["ae"])
    from automot_ros.train.cli import main

    with pytest.raises(SystemExit, match="automot train: init_parts: only with init"):
        main(["--config", "tiny", "--data", "synthetic:16", "--out", str(tmp_path / "cli"), "--init-parts", "ae"])
    assert not (tmp_path / "cli").exists()


def test_ae_train_parts_fine_tune_only_those_parts_of_the_ae(tmp_path):
    train(_opts(tmp_path / "base", stage="ae", steps=1), log=_quiet)
    base = tmp_path / "base" / "model.safetensors"
    train(_opts(tmp_path / "head", stage="ae", steps=3, lr=1e-2, init=str(base), ae_train_parts=["waypoint_head"]),
          log=_quiet)
    _, before = read_checkpoint(base)
    _, after = read_checkpoint(tmp_path / "head" / "model.safetensors")
    assert {k for k in before if not torch.equal(before[k], after[k])} == {"ae.waypoint_head.weight",
                                                                           "ae.waypoint_head.bias"}
    with pytest.raises(ValueError, match=r"ae train parts \['waypoint_heads'\]: choose from \[.*'waypoint_head'"):
        Trainer(_opts(tmp_path / "typo", stage="ae", ae_train_parts=["waypoint_heads"]), log=_quiet)
    with pytest.raises(ValueError, match="at least one AE submodule"):
        _opts(tmp_path / "empty", ae_train_parts=[])


def test_datasets_pool_with_a_cache_each_so_an_added_collection_reuses_the_others(tmp_path):
    cache = str(tmp_path / "cache")
    one = train(_opts(tmp_path / "one", stage="ae", steps=1, data="synthetic:16", cache_dir=cache), log=_quiet)
    lines = []
    two = train(_opts(tmp_path / "two", stage="ae", steps=1, data=["synthetic:16", "synthetic:24"], cache_dir=cache,
                      eval_split="heldout"), log=lines.append)
    assert two["stages"]["ae"]["items"] == 16 + 24
    assert two["eval"]["samples"] == 8 + 8  # each synthetic set holds out max(8, N // 4)
    paths = [c["path"] for c in two["cache"]["train"]]
    assert paths[0] == one["cache"]["train"][0]["path"] and len(set(paths)) == 2
    assert any(line.startswith(f"cache: reusing {paths[0]}") for line in lines), lines
    text = [train(_opts(tmp_path / f"text{n}", stage="projector", steps=1, data=data), log=_quiet)
            for n, data in enumerate(["synthetic:16", ["synthetic:16", "synthetic:16"]])]
    assert text[1]["stages"]["projector"]["items"] == 2 * text[0]["stages"]["projector"]["items"]


def test_stages_run_in_training_order_and_unknown_ones_are_refused(tmp_path):
    train(_opts(tmp_path / "two", stage="ae,projector", steps=1), log=_quiet)
    assert [r["stage"] for r in read_log(tmp_path / "two" / "train_log.csv")] == ["projector", "ae"]
    with pytest.raises(ValueError, match="comma-separated"):
        train(_opts(tmp_path / "bad", stage="ae,decoder", steps=1), log=_quiet)
