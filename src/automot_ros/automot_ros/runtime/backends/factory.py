"""``select_backend``: an Action Expert backend by name, or the best one here (``auto``).

Names: ``torch``; ``onnxruntime-cpu``, ``onnxruntime-cuda`` and ``onnxruntime`` (CUDA if
available, else CPU); ``tensorrt``; ``auto`` tries tensorrt, onnxruntime-cuda,
onnxruntime-cpu, torch in that order, takes the first that starts and logs why the
others were skipped.

The ONNX file of the model (``engines.artifacts.onnx_path``) is exported on the fly into
the engine directory when it is missing (logged; ``automot engines export`` writes the
same files ahead of time), so every backend runs from nothing but the model config and
checkpoint. The torch model is built only when the torch backend runs or an export is
needed: the engine backends need neither torch weights nor the Understanding Expert.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

from automot_ros.runtime.backends.base import ActionBackend, BackendUnavailable

BACKEND_NAMES = ("auto", "torch", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt")
AUTO_ORDER = ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "torch")

_log = logging.getLogger(__name__)


def device_index(device: str) -> int:
    """'cuda:1' -> 1; 'cuda' or 'cpu' -> 0 (the GPU backends' device)."""
    return int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0


def availability(name: str, device: int = 0):
    """(available, reason) without building anything heavy."""
    if name == "torch":
        return True, ""
    if name == "onnxruntime-cpu":
        try:
            import onnxruntime  # noqa: F401
        except ImportError as error:
            return False, f"onnxruntime is not installed ({error})"
        return True, ""
    if name == "onnxruntime-cuda":
        from automot_ros.runtime.backends.onnxruntime_backend import cuda_provider_available

        return cuda_provider_available()
    if name == "tensorrt":
        from automot_ros.engines.tensorrt_build import tensorrt_available

        ok, reason = tensorrt_available(device)
        if ok:
            try:
                import pycuda.driver  # noqa: F401
            except ImportError as error:
                return False, f"pycuda is not installed ({error})"
        return ok, reason
    raise ValueError(f"unknown backend {name!r}")


class BackendFactory:
    """Builds backends for one model (config + checkpoint) and one engine directory."""

    def __init__(self, model: str, checkpoint: str = "", engine_dir: str = "", precision: str = "fp32",
                 device: str = "cpu", num_threads: int = 1, load_torch_model: Optional[Callable] = None,
                 log: Callable[[str], None] = _log.info):
        from automot_ros.engines.artifacts import model_identity, resolve_engine_dir

        self.model, self.checkpoint = model, checkpoint or None
        self.engine_dir = resolve_engine_dir(engine_dir)
        self.precision = precision
        self.device = device
        self.num_threads = num_threads
        self.log = log
        self._load_torch_model = load_torch_model or self._default_loader
        self._torch_model = None
        self.cfg, self.model_id = model_identity(model, self.checkpoint)

    def _default_loader(self):
        import torch

        from automot_ros.model import build_model

        if self.num_threads > 0:
            torch.set_num_threads(self.num_threads)
        return build_model(self.model, checkpoint=self.checkpoint).to(self.device).eval()

    def torch_model(self):
        if self._torch_model is None:
            self._torch_model = self._load_torch_model()
            if self._torch_model.model_id != self.model_id:
                raise ValueError(f"model id {self._torch_model.model_id!r} != expected {self.model_id!r}")
        return self._torch_model

    def profile(self):
        from automot_ros.engines.artifacts import engine_profile, nominal_context_tokens

        return engine_profile(self.model, nominal_context_tokens(self.cfg))

    def onnx_file(self) -> Path:
        """The model's ONNX file in the engine directory, exported now if missing."""
        from automot_ros.engines.artifacts import onnx_path

        path = onnx_path(self.engine_dir, self.model_id, self.precision)
        if path.is_file():
            return path
        self.log(f"no {path.name} in {self.engine_dir}: exporting it now "
                 f"(ahead of time: automot engines export --model {self.model}"
                 f"{' --checkpoint ' + str(self.checkpoint) if self.checkpoint else ''} --engine-dir {self.engine_dir})")
        from automot_ros.engines.export import export_action_expert

        result = export_action_expert(self.torch_model(), self.engine_dir, profile=self.profile(),
                                      progress=self.log, num_threads=self.num_threads)
        self.log(f"exported {', '.join(str(f) for f in result.files.values())} "
                 f"in {sum(result.seconds.values()):.1f} s (parity report {result.parity_file.name})")
        return path

    def build(self, name: str) -> ActionBackend:
        """One named backend (not ``auto``); BackendUnavailable if it cannot run here."""
        if name == "torch":
            from automot_ros.runtime.backends.torch_backend import TorchBackend

            return TorchBackend(self.torch_model())
        if name == "onnxruntime":
            name = "onnxruntime-cuda" if availability("onnxruntime-cuda", device_index(self.device))[0] \
                else "onnxruntime-cpu"
        if name in ("onnxruntime-cpu", "onnxruntime-cuda"):
            ok, reason = availability(name, device_index(self.device))
            if not ok:
                raise BackendUnavailable(f"backend {name} unavailable: {reason}")
            from automot_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

            return OnnxRuntimeBackend(self.onnx_file(), self.model_id, provider=name.split("-", 1)[1],
                                      num_threads=self.num_threads, device_id=device_index(self.device))
        if name == "tensorrt":
            ok, reason = availability(name, device_index(self.device))
            if not ok:
                raise BackendUnavailable(f"backend tensorrt unavailable: {reason}")
            from automot_ros.runtime.backends.tensorrt_backend import TensorRTBackend

            return TensorRTBackend(self.onnx_file(), self.engine_dir, self.profile(), device_index(self.device),
                                   log=self.log)
        raise ValueError(f"backend must be one of {BACKEND_NAMES}, got {name!r}")

    def select(self, name: str) -> ActionBackend:
        """``build(name)``, or for ``auto`` the first of AUTO_ORDER that starts (logged)."""
        if name != "auto":
            backend = self.build(name)
            self.log(f"Action Expert backend: {backend.name}")
            return backend
        skipped = []
        for candidate in AUTO_ORDER:
            ok, reason = availability(candidate, device_index(self.device))
            if not ok:
                skipped.append(f"{candidate}: {reason}")
                continue
            try:
                backend = self.build(candidate)
            except Exception as error:  # noqa: BLE001 - auto falls through to the next backend
                if candidate == AUTO_ORDER[-1]:
                    raise
                skipped.append(f"{candidate}: failed to start: {error}")
                continue
            self.log(f"Action Expert backend auto -> {backend.name}"
                     + (f" (skipped {'; '.join(skipped)})" if skipped else ""))
            return backend
        raise BackendUnavailable("no Action Expert backend can run: " + "; ".join(skipped))


def select_backend(name: str, model: str, checkpoint: str = "", engine_dir: str = "", precision: str = "fp32",
                   device: str = "cpu", num_threads: int = 1, load_torch_model: Optional[Callable] = None,
                   log: Callable[[str], None] = _log.info) -> ActionBackend:
    """The backend ``name`` (see the module doc) for ``model``/``checkpoint``."""
    factory = BackendFactory(model, checkpoint, engine_dir, precision, device, num_threads, load_torch_model, log)
    return factory.select(name)
