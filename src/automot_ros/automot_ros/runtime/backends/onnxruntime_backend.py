"""The Action Expert in onnxruntime, on the CPU or the CUDA execution provider.

The exported graph takes the context as the shared-memory layout
``[layers, 2, kv_heads, tokens, head_dim]`` float32, so the zero-copy view of the slot is
fed as it is (no copy on the CPU provider). Both the fp32 and the fp16 file have float32
inputs and outputs. onnxruntime is imported lazily.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from automot_ros.runtime.backends.base import ActionBackend, BackendUnavailable
from automot_ros.runtime.backends.outputs import trajectory_from_outputs
from automot_ros.runtime.context_shm import ContextSnapshot
from automot_ros.runtime.plan_result import Trajectory

_log = logging.getLogger(__name__)
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _import_ort():
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - onnxruntime is a requirement
        raise BackendUnavailable(f"onnxruntime is not installed ({error}); pip install onnxruntime") from error
    return onnxruntime


def cuda_provider_available() -> Tuple[bool, str]:
    """(True, "") when onnxruntime lists the CUDA provider and an NVIDIA driver answers."""
    ort = _import_ort()
    if PROVIDERS["cuda"] not in ort.get_available_providers():
        return False, (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                       "(the onnxruntime-gpu package provides it)")
    from automot_ros.engines.gpu import probe_gpu

    gpu = probe_gpu()
    if not gpu.available:
        return False, gpu.reason
    return True, ""


def create_session(onnx_file: Union[str, Path], provider: str = "cpu", num_threads: int = 1, device_id: int = 0):
    """An InferenceSession on exactly ``provider`` (onnxruntime would silently fall back
    to the CPU if the CUDA provider failed: that is refused here)."""
    ort = _import_ort()
    if provider not in PROVIDERS:
        raise ValueError(f"onnxruntime provider must be one of {sorted(PROVIDERS)}, got {provider!r}")
    options = ort.SessionOptions()
    if num_threads > 0:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if provider == "cuda":
        ok, reason = cuda_provider_available()
        if not ok:
            raise BackendUnavailable(f"onnxruntime-cuda unavailable: {reason}")
        providers = [(PROVIDERS["cuda"], {"device_id": device_id}), PROVIDERS["cpu"]]
    else:
        providers = [PROVIDERS["cpu"]]
    session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=providers)
    if session.get_providers()[0] != PROVIDERS[provider]:
        raise BackendUnavailable(f"onnxruntime did not start {PROVIDERS[provider]} (got {session.get_providers()})")
    return session


def onnx_metadata(session) -> dict:
    return dict(session.get_modelmeta().custom_metadata_map)


class OnnxRuntimeBackend(ActionBackend):
    """``name``: ``onnxruntime-cpu`` or ``onnxruntime-cuda``."""

    def __init__(self, onnx_file: Union[str, Path], model_id: Optional[str] = None, provider: str = "cpu",
                 num_threads: int = 1, device_id: int = 0):
        from automot_ros.engines.artifacts import META_MODEL_ID, META_PRECISION

        self.onnx_file = Path(onnx_file)
        if not self.onnx_file.is_file():
            raise BackendUnavailable(f"no ONNX file {self.onnx_file}")
        self.session = create_session(self.onnx_file, provider, num_threads, device_id)
        meta = onnx_metadata(self.session)
        if model_id is not None and meta.get(META_MODEL_ID) != model_id:
            raise BackendUnavailable(
                f"{self.onnx_file} holds model {meta.get(META_MODEL_ID)!r}, this node runs {model_id!r}: "
                "re-export it (automot engines export)")
        self.name = f"onnxruntime-{provider}"
        self.precision = meta.get(META_PRECISION, "fp32")
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run_raw(self, context_kv: np.ndarray, scene: np.ndarray, target_points: np.ndarray,
                speed: np.ndarray) -> list:
        """Batched inputs as the graph takes them -> the five outputs (numpy)."""
        kv = context_kv if context_kv.dtype == np.float32 else context_kv.astype(np.float32)
        return self.session.run(self.output_names, {
            "context_kv": kv,
            "scene_input": np.ascontiguousarray(scene, dtype=np.uint8),
            "target_points": np.ascontiguousarray(target_points, dtype=np.float32),
            "speed": np.ascontiguousarray(speed, dtype=np.float32),
        })

    def run(self, context: ContextSnapshot, scene_chw, target_points, speed_mps) -> Trajectory:
        outputs = self.run_raw(context.kv, scene_chw[None], np.asarray(target_points)[None],
                               np.array([speed_mps], dtype=np.float32))
        return trajectory_from_outputs(*outputs[:4])
