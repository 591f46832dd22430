"""select_backend / BackendFactory: names, the auto order, skip reasons, model identity."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from automot_ros.engines.artifacts import model_identity
from automot_ros.engines.gpu import probe_gpu
from automot_ros.nodes.params import ActionParams
from automot_ros.runtime.backends import factory as factory_mod
from automot_ros.runtime.backends.base import ActionBackend, BackendUnavailable
from automot_ros.runtime.backends.factory import AUTO_ORDER, BACKEND_NAMES, BackendFactory, availability
from automot_ros.runtime.context_shm import ContextSnapshot

NO_GPU = not probe_gpu().available


def test_model_identity_matches_build_model_without_building(tiny_model):
    cfg, model_id = model_identity("tiny")
    assert model_id == tiny_model.model_id and cfg == tiny_model.cfg


def test_model_identity_of_a_checkpoint_matches_load_checkpoint(tiny_model, tmp_path):
    from automot_ros.model import load_checkpoint, save_checkpoint

    path = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny_model, path)
    assert model_identity("tiny", path)[1] == load_checkpoint(path).model_id
    with pytest.raises(ValueError, match="another config"):
        model_identity("smol", path)


def test_every_backend_name_is_a_valid_parameter_and_others_are_refused():
    for name in BACKEND_NAMES:
        ActionParams(backend=name).validate()
    with pytest.raises(ValueError, match="backend"):
        ActionParams(backend="tensorrt-fp8").validate()
    with pytest.raises(ValueError, match="precision"):
        ActionParams(precision="int8").validate()
    assert AUTO_ORDER == ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "torch")


@pytest.mark.skipif(not NO_GPU, reason="this machine has an NVIDIA GPU: the no-GPU reasons do not apply")
def test_without_a_gpu_tensorrt_and_onnxruntime_cuda_are_unavailable_with_the_reason():
    ok, reason = availability("tensorrt")
    assert not ok and "NVIDIA" in reason and "libcuda" in reason
    ok, reason = availability("onnxruntime-cuda")
    assert not ok and ("CUDAExecutionProvider" in reason or "libcuda" in reason)
    assert availability("onnxruntime-cpu") == (True, "") and availability("torch") == (True, "")


@pytest.mark.skipif(not NO_GPU, reason="this machine has an NVIDIA GPU: auto would pick a GPU backend")
def test_auto_without_tensorrt_or_cuda_picks_onnxruntime_cpu_and_logs_why(tiny_export, tmp_path):
    shutil.copy(tiny_export.onnx("fp32"), tmp_path)
    lines = []
    backend = BackendFactory("tiny", engine_dir=str(tmp_path), log=lines.append).select("auto")
    assert backend.name == "onnxruntime-cpu"
    choice = [line for line in lines if "auto ->" in line]
    assert len(choice) == 1 and "onnxruntime-cpu" in choice[0], lines
    assert "tensorrt:" in choice[0] and "onnxruntime-cuda:" in choice[0], choice[0]
    # "onnxruntime" alone means CUDA if available, else CPU.
    assert BackendFactory("tiny", engine_dir=str(tmp_path), log=lines.append).select("onnxruntime").name == \
        "onnxruntime-cpu"
    for name in ("tensorrt", "onnxruntime-cuda"):
        with pytest.raises(BackendUnavailable, match=f"backend {name} unavailable"):
            BackendFactory("tiny", engine_dir=str(tmp_path), log=lines.append).select(name)


class _Fake(ActionBackend):
    def __init__(self, name):
        self.name = name

    def run(self, *args):
        raise NotImplementedError


@pytest.mark.parametrize("available, failing, expected", [
    ({"tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "torch"}, set(), "tensorrt"),
    ({"onnxruntime-cuda", "onnxruntime-cpu", "torch"}, set(), "onnxruntime-cuda"),
    ({"tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "torch"}, {"tensorrt"}, "onnxruntime-cuda"),
    ({"tensorrt", "torch"}, {"tensorrt"}, "torch"),
])
def test_auto_takes_the_first_backend_of_the_order_that_starts(monkeypatch, available, failing, expected):
    tried = []

    def fake_availability(name, device=0):
        return (name in available, "" if name in available else f"{name} absent here")

    def fake_build(self, name):
        tried.append(name)
        if name in failing:
            raise RuntimeError(f"{name} failed to build")
        return _Fake(name)

    monkeypatch.setattr(factory_mod, "availability", fake_availability)
    monkeypatch.setattr(BackendFactory, "build", fake_build)
    lines = []
    backend = BackendFactory("tiny", log=lines.append).select("auto")
    assert backend.name == expected
    assert tried == [n for n in AUTO_ORDER if n in available][:len(tried)] and tried[-1] == expected
    assert any(f"auto -> {expected}" in line for line in lines), lines


def test_onnxruntime_backend_refuses_another_models_file_and_agrees_with_torch(tiny_export, tiny_model, tmp_path):
    """A file of other weights is refused by its metadata; on the same weights the
    onnxruntime-cpu and torch backends give the same trajectory."""
    lines = []
    other = tmp_path / "other"
    other.mkdir()
    # The tiny ONNX copied under the name another model id would use: refused by metadata.
    fake_id = "tiny-000000000000-seed9"
    shutil.copy(tiny_export.onnx("fp32"), other / f"{fake_id}.ae.fp32.onnx")
    from automot_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    with pytest.raises(BackendUnavailable, match="re-export"):
        OnnxRuntimeBackend(other / f"{fake_id}.ae.fp32.onnx", fake_id)

    # Same weights through ActionBackend.run: onnxruntime-cpu and torch agree on a snapshot.
    factory = BackendFactory("tiny", engine_dir=str(tiny_export.engine_dir), log=lines.append,
                             load_torch_model=lambda: tiny_model)
    ort_backend, torch_backend = factory.select("onnxruntime-cpu"), factory.select("torch")
    d = tiny_model.cfg.decoder
    kv = np.random.default_rng(0).standard_normal((d.layers, 2, d.kv_heads, 278, d.head_dim)).astype(np.float32)
    kv.setflags(write=False)  # like the read-only shared-memory view
    snapshot = ContextSnapshot(1, 0, 0, 278, 278, 1, tiny_model.model_id, kv)
    scene = np.random.default_rng(1).integers(0, 256, (3, *tiny_model.cfg.action.scene.image_size), dtype=np.uint8)
    a = ort_backend.run(snapshot, scene, np.array([[10.0, 0.5], [20.0, 1.0]]), 6.0)
    b = torch_backend.run(snapshot, scene, np.array([[10.0, 0.5], [20.0, 1.0]]), 6.0)
    assert (a.lateral == b.lateral).all() and (a.longitudinal == b.longitudinal).all()
    assert np.abs(a.path_xy - b.path_xy).max() < 1e-4 and np.abs(a.confidence - b.confidence).max() < 1e-5
