"""`automot engines build` and the TensorRT engine cache: a clear failure without TensorRT
or a GPU; names and rebuild-on-mismatch with a stand-in TensorRT; the real thing (marker
``tensorrt``) and TensorRT-RTX's CPU parser (marker ``trt_parser``) where available."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from automot_ros.engines import tensorrt_build
from automot_ros.engines.artifacts import EngineProfile, engine_profile, file_sha256
from automot_ros.engines.gpu import GpuInfo
from automot_ros.engines.tensorrt_build import EngineSpec, TensorRTUnavailable


def _tensorrt_reason():
    ok, reason = tensorrt_build.tensorrt_available()
    return None if ok else reason


TRT_MISSING = _tensorrt_reason()


@pytest.mark.skipif(TRT_MISSING is None, reason="TensorRT and a GPU are present here")
def test_build_command_exits_non_zero_with_a_clear_message_without_tensorrt(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "automot_ros.cli", "engines", "build", "--model", "tiny",
                           "--engine-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "cannot build a TensorRT engine here" in proc.stderr
    assert ("NVIDIA" in proc.stderr) or ("TensorRT Python package" in proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir()), "nothing is exported when no engine can be built"
    with pytest.raises(TensorRTUnavailable):
        tensorrt_build.import_tensorrt()


def test_engine_name_carries_onnx_hash_profile_tensorrt_version_and_gpu(tmp_path):
    onnx_file = tmp_path / "m.ae.fp16.onnx"
    onnx_file.write_bytes(b"graph")
    gpu = GpuInfo(True, "NVIDIA GeForce RTX 5090", "12.0", "12.8", 1)
    spec = EngineSpec(onnx_file, file_sha256(onnx_file), engine_profile("tiny"), 2048, "10.9.0.34", gpu)
    name = spec.path(tmp_path).name
    assert name.startswith(f"ae-{file_sha256(onnx_file)[:16]}-") and name.endswith(".engine")
    assert "-trt10.9.0.34-NVIDIA-GeForce-RTX-5090" in name
    other_profile = EngineSpec(onnx_file, spec.onnx_sha256, EngineProfile((1, 100, 200)), 2048, "10.9.0.34", gpu)
    other_trt = EngineSpec(onnx_file, spec.onnx_sha256, spec.profile, 2048, "10.3.0.30", gpu)
    other_gpu = EngineSpec(onnx_file, spec.onnx_sha256, spec.profile, 2048, "10.9.0.34",
                           GpuInfo(True, "Orin", "8.7", "12.6", 1))
    other_workspace = EngineSpec(onnx_file, spec.onnx_sha256, spec.profile, 512, "10.9.0.34", gpu)
    names = {s.path(tmp_path).name for s in (spec, other_profile, other_trt, other_gpu)}
    assert len(names) == 4 and other_workspace.path(tmp_path).name == name


class _FakeTensorRT:
    """Just enough of ``tensorrt`` for the cache logic: an engine deserializes only on the
    version that built it (like the real one), and corrupt bytes raise."""

    def __init__(self, version):
        self.__version__ = version
        fake = self

        class Logger:
            ERROR = WARNING = 0

            def __init__(self, *args):
                pass

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                if not data.startswith(b"ENGINE"):
                    raise RuntimeError("corrupt engine")
                return types.SimpleNamespace(data=data) if data == b"ENGINE " + fake.__version__.encode() else None

        self.Logger, self.Runtime = Logger, Runtime


@pytest.fixture
def fake_tensorrt(monkeypatch):
    state = {"trt": _FakeTensorRT("10.3.0"), "builds": 0}
    gpu = GpuInfo(True, "Test GPU", "8.7", "12.6", 1)
    monkeypatch.setattr(tensorrt_build, "import_tensorrt", lambda device=0: (state["trt"], gpu))

    def fake_build(trt, onnx_file, profile, workspace_mib=0, timing_cache=None, log=print):
        state["builds"] += 1
        return b"ENGINE " + trt.__version__.encode()

    monkeypatch.setattr(tensorrt_build, "build_serialized_engine", fake_build)
    return state


def test_cached_engine_is_reused_and_a_version_mismatch_or_corruption_rebuilds(fake_tensorrt, tmp_path):
    onnx_file = tmp_path / "m.ae.fp32.onnx"
    onnx_file.write_bytes(b"graph")
    profile = engine_profile("tiny")
    log = []
    engine, path = tensorrt_build.load_or_build_engine(onnx_file, tmp_path, profile, log=log.append)
    assert fake_tensorrt["builds"] == 1 and engine.data == b"ENGINE 10.3.0" and path.is_file()
    assert json.loads(path.with_name(path.name + ".json").read_text())["tensorrt"] == "10.3.0"
    tensorrt_build.load_or_build_engine(onnx_file, tmp_path, profile, log=log.append)
    assert fake_tensorrt["builds"] == 1, "a matching engine is loaded, not rebuilt"

    # An engine whose sidecar says another TensorRT (e.g. copied from another machine).
    sidecar = path.with_name(path.name + ".json")
    recorded = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**recorded, "tensorrt": "10.0.1"}))
    engine, again = tensorrt_build.load_or_build_engine(onnx_file, tmp_path, profile, log=log.append)
    assert again == path and fake_tensorrt["builds"] == 2 and any("another setup" in line for line in log)

    # Same name, but the bytes do not deserialize (platform mismatch / corruption): rebuild.
    path.write_bytes(b"garbage")
    engine, _ = tensorrt_build.load_or_build_engine(onnx_file, tmp_path, profile, log=log.append)
    assert fake_tensorrt["builds"] == 3 and engine.data == b"ENGINE 10.3.0"
    assert any("does not deserialize" in line for line in log), log

    # A TensorRT upgrade looks for another file name and builds it; the old one stays.
    fake_tensorrt["trt"] = _FakeTensorRT("10.9.0")
    engine, newer = tensorrt_build.load_or_build_engine(onnx_file, tmp_path, profile, log=log.append)
    assert newer != path and engine.data == b"ENGINE 10.9.0" and fake_tensorrt["builds"] == 4
    built_path, built = tensorrt_build.build_engine(onnx_file, tmp_path, profile, log=log.append)
    assert built_path == newer and not built


@pytest.mark.trt_parser
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_rtx_parses_and_builds_the_onnx_on_cpu(tiny_export, precision):
    trt_rtx = pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu13 is not installed")
    log = []
    data = tensorrt_build.build_serialized_engine(trt_rtx, tiny_export.onnx(precision), engine_profile("tiny"),
                                                  workspace_mib=256, timing_cache=None, log=log.append)
    assert len(data) > 1_000_000, "a serialized engine holds the weights"


@pytest.mark.tensorrt
@pytest.mark.skipif(TRT_MISSING is not None, reason=f"TensorRT unavailable: {TRT_MISSING}")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_backend_builds_caches_and_matches_torch(tiny_export, tiny_model, precision, tmp_path):
    from automot_ros.runtime.backends.tensorrt_backend import TensorRTBackend
    from automot_ros.runtime.context_shm import ContextSnapshot

    profile = engine_profile("tiny")
    onnx_file = tmp_path / tiny_export.onnx(precision).name
    shutil.copy(tiny_export.onnx(precision), onnx_file)
    backend = TensorRTBackend(onnx_file, tmp_path, profile)
    try:
        assert backend.engine_file.is_file() and backend.name == "tensorrt"
        d = tiny_model.cfg.decoder
        rng = np.random.default_rng(0)
        for tokens in profile.context_tokens:
            kv = rng.standard_normal((d.layers, 2, d.kv_heads, tokens, d.head_dim)).astype(np.float32)
            scene = rng.integers(0, 256, (1, 3, *tiny_model.cfg.action.scene.image_size), dtype=np.uint8)
            targets = np.array([[[10.0, 0.0], [20.0, 1.0]]], np.float32)
            speed = np.array([5.0], np.float32)
            out = backend.run_raw(kv, scene, targets, speed)
            import torch

            with torch.no_grad():
                ref = [o.numpy() for o in tiny_model.action_expert(*(torch.from_numpy(a) for a in
                                                                     (kv, scene, targets, speed)))]
            for o, r in zip(out, ref):
                assert np.abs(o - r).max() <= {"fp32": 1e-3, "fp16": 1e-2}[precision] * max(1, np.abs(r).max())
        # The context stays on the GPU while (generation, seq) is unchanged.
        snapshot = ContextSnapshot(5, 0, 0, tokens, tokens, 9, tiny_model.model_id, kv)
        first = backend.run(snapshot, scene[0], targets[0], 5.0)
        second = backend.run(snapshot, scene[0], targets[0], 5.0)
        assert np.array_equal(first.path_xy, second.path_xy)
    finally:
        backend.close()
    # A second backend loads the cached engine instead of building.
    log = []
    again = TensorRTBackend(onnx_file, tmp_path, profile, log=log.append)
    again.close()
    assert not any(line.startswith("building") for line in log), log
