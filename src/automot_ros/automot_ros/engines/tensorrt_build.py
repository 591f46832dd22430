"""TensorRT engines of the exported Action Expert: build, name, cache, load (or rebuild).

- Precision comes from the ONNX file: the network is created STRONGLY_TYPED, so the fp16
  file's types (with its fp32 islands: RoPE, norm statistics, heads) are what runs, and the
  fp32 file runs in fp32 (TF32 where the GPU has it). No BuilderFlag.FP16 guessing.
- One optimization profile: context length (min, opt, max) and batch (min, opt, max)
  from the model config's ``engine:`` section (``artifacts.engine_profile``).
- Workspace: ``WORKSPACE`` memory pool limit. Timing cache: one file per TensorRT version
  and GPU in the engine directory, loaded before and saved after every build.
- Engine file: ``ae-<onnx sha256[:16]>-<profile hash[:8]>-trt<version>-<gpu>.engine``
  with a JSON sidecar (versions, GPU, compute capability, profile). On load, a sidecar
  that does not match this machine, or an engine that does not deserialize (another
  TensorRT version or platform), triggers a rebuild, never a crash.

``import tensorrt`` happens only inside these functions, after the GPU probe
(``engines.gpu``): without TensorRT or a GPU they raise TensorRTUnavailable with the reason.
``build_serialized_engine`` takes the TensorRT module as an argument, so the CPU-only
TensorRT-RTX parser (``tensorrt_rtx``) can check the same network code in CI.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

from automot_ros.engines.artifacts import EngineProfile, file_sha256, slug
from automot_ros.engines.gpu import GpuInfo, probe_gpu

DEFAULT_WORKSPACE_MIB = 2048
Log = Callable[[str], None]


class TensorRTUnavailable(RuntimeError):
    """No TensorRT Python package or no usable NVIDIA GPU here."""


class EngineBuildError(RuntimeError):
    """The ONNX did not parse or the builder returned no engine."""


def import_tensorrt(device: int = 0) -> Tuple[object, GpuInfo]:
    """(the ``tensorrt`` module, the GPU) or TensorRTUnavailable: the GPU is probed first."""
    gpu = probe_gpu(device)
    if not gpu.available:
        raise TensorRTUnavailable(f"TensorRT needs an NVIDIA GPU: {gpu.reason}")
    try:
        import tensorrt
    except ImportError as error:
        raise TensorRTUnavailable(
            f"the TensorRT Python package is not installed ({error}); it comes with JetPack on Jetson "
            "and with the NVIDIA TensorRT container or the tensorrt wheels on x86") from error
    return tensorrt, gpu


def tensorrt_available(device: int = 0) -> Tuple[bool, str]:
    try:
        import_tensorrt(device)
    except TensorRTUnavailable as error:
        return False, str(error)
    return True, ""


# ----- building ---------------------------------------------------------------------------


def _profile_shapes(shape, name: str, profile: EngineProfile):
    """(min, opt, max) for one network input: -1 dims become the profile's context (axis 3
    of context_kv) or batch (axis 0 of the others)."""
    result = []
    for k in range(3):
        dims = []
        for axis, dim in enumerate(shape):
            if dim >= 0:
                dims.append(dim)
            elif name == "context_kv" and axis == 3:
                dims.append(profile.context_tokens[k])
            elif axis == 0:
                dims.append(profile.batch[k])
            else:
                raise EngineBuildError(f"input {name} has an unexpected dynamic axis {axis}: {tuple(shape)}")
        result.append(tuple(dims))
    return result


def build_serialized_engine(trt, onnx_file: Union[str, Path], profile: EngineProfile,
                            workspace_mib: int = DEFAULT_WORKSPACE_MIB, timing_cache: Optional[Path] = None,
                            log: Log = print) -> bytes:
    """Parse ``onnx_file`` with ``trt``'s ONNX parser into a strongly typed network, add
    the optimization profile and build; returns the serialized engine."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT's ONNX parser rejected {Path(onnx_file).name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    opt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        lo, opt, hi = _profile_shapes(tuple(tensor.shape), tensor.name, profile)
        opt_profile.set_shape(tensor.name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    cache = None
    if timing_cache is not None and hasattr(config, "create_timing_cache"):
        data = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=True)
        log(f"timing cache {timing_cache} ({'loaded, ' + str(len(data)) + ' bytes' if data else 'new'})")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT built no engine from {Path(onnx_file).name} (see its log above)")
    if cache is not None:
        _atomic_write(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


# ----- naming and caching -----------------------------------------------------------------


@dataclass(frozen=True)
class EngineSpec:
    """Everything an engine file depends on; its ``path`` names all of it."""

    onnx_file: Path
    onnx_sha256: str
    profile: EngineProfile
    workspace_mib: int
    trt_version: str
    gpu: GpuInfo

    @property
    def settings_hash(self) -> str:
        # The workspace is a build-time resource limit, not a property of the engine.
        settings = {"profile": self.profile.to_dict(), "strongly_typed": True}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    def path(self, engine_dir: Path) -> Path:
        return Path(engine_dir) / (f"ae-{self.onnx_sha256[:16]}-{self.settings_hash[:8]}-trt{slug(self.trt_version)}"
                                   f"-{slug(self.gpu.name)}.engine")

    def sidecar(self) -> dict:
        return {
            "onnx": self.onnx_file.name, "onnx_sha256": self.onnx_sha256, "profile": self.profile.to_dict(),
            "tensorrt": self.trt_version, "gpu": self.gpu.name,
            "compute_capability": self.gpu.compute_capability, "driver_cuda": self.gpu.driver_version,
        }


def timing_cache_path(engine_dir: Path, trt_version: str, gpu: GpuInfo) -> Path:
    return Path(engine_dir) / f"timing-trt{slug(trt_version)}-{slug(gpu.name)}.cache"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sidecar_path(engine_file: Path) -> Path:
    return engine_file.with_name(engine_file.name + ".json")


def build_engine(onnx_file: Union[str, Path], engine_dir: Union[str, Path], profile: EngineProfile,
                 workspace_mib: int = DEFAULT_WORKSPACE_MIB, device: int = 0, force: bool = False,
                 log: Log = print) -> Tuple[Path, bool]:
    """(engine file, whether it was built now). Reuses a matching engine unless ``force``."""
    trt, gpu = import_tensorrt(device)
    engine_dir = Path(engine_dir)
    engine_dir.mkdir(parents=True, exist_ok=True)
    spec = EngineSpec(Path(onnx_file), file_sha256(onnx_file), profile, int(workspace_mib), trt.__version__, gpu)
    path = spec.path(engine_dir)
    if not force and _load_cached(trt, spec, path, log) is not None:
        return path, False
    _build_to(trt, spec, path, engine_dir, log)
    return path, True


def _load_cached(trt, spec: EngineSpec, path: Path, log: Log):
    """The engine in ``path`` if it exists, its sidecar matches this setup and it
    deserializes; else None (with the reason logged)."""
    if not path.is_file():
        return None
    try:
        recorded = json.loads(_sidecar_path(path).read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded != spec.sidecar():
        log(f"{path.name}: built for another setup ({_difference(recorded, spec.sidecar())}): rebuilding")
        return None
    engine = deserialize(trt, path.read_bytes())
    if engine is None:
        log(f"{path.name} does not deserialize on TensorRT {spec.trt_version} / {spec.gpu.name}: rebuilding")
    return engine


def _difference(recorded: Optional[dict], current: dict) -> str:
    if not recorded:
        return "no readable sidecar"
    keys = [k for k in current if recorded.get(k) != current[k]]
    return ", ".join(f"{k} {recorded.get(k)!r} -> {current[k]!r}" for k in keys) or "sidecar differs"


def _build_to(trt, spec: EngineSpec, path: Path, engine_dir: Path, log: Log) -> None:
    log(f"building {path.name} from {spec.onnx_file.name} (TensorRT {spec.trt_version}, {spec.gpu.name}, "
        f"context {spec.profile.context_tokens}, batch {spec.profile.batch}, workspace {spec.workspace_mib} MiB)")
    data = build_serialized_engine(trt, spec.onnx_file, spec.profile, spec.workspace_mib,
                                   timing_cache_path(engine_dir, spec.trt_version, spec.gpu), log)
    _atomic_write(path, data)
    _atomic_write(_sidecar_path(path), (json.dumps(spec.sidecar(), indent=2) + "\n").encode())


def deserialize(trt, data: bytes):
    """An ICudaEngine, or None when TensorRT refuses the bytes (version or platform mismatch)."""
    try:
        runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        return runtime.deserialize_cuda_engine(data)
    except Exception:  # TensorRT raises or returns None depending on version and cause
        return None


def load_or_build_engine(onnx_file: Union[str, Path], engine_dir: Union[str, Path], profile: EngineProfile,
                         workspace_mib: int = DEFAULT_WORKSPACE_MIB, device: int = 0, log: Log = print):
    """(ICudaEngine, engine file): the cached engine for this ONNX, TensorRT and GPU, or a
    fresh build when there is none or it does not load (mismatch -> rebuild, never a crash)."""
    trt, gpu = import_tensorrt(device)
    engine_dir = Path(engine_dir)
    engine_dir.mkdir(parents=True, exist_ok=True)
    spec = EngineSpec(Path(onnx_file), file_sha256(onnx_file), profile, int(workspace_mib), trt.__version__, gpu)
    path = spec.path(engine_dir)
    engine = _load_cached(trt, spec, path, log)
    if engine is None:
        _build_to(trt, spec, path, engine_dir, log)
        engine = deserialize(trt, path.read_bytes())
        if engine is None:
            raise EngineBuildError(f"{path.name} was just built but does not deserialize")
    return engine, path
