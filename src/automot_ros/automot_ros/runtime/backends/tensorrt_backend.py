"""The Action Expert as a TensorRT engine; pycuda holds the device buffers and the stream.

TensorRT and pycuda are imported only when this backend is built, after the GPU probe.
Device buffers are allocated once for the profile's largest shapes. The context is
uploaded straight from the shared-memory view, and only when it changed: the key is
(segment generation, seq, shape), so at camera rate only the current frame, the targets
and the speed cross to the GPU while the context (new at the UE's 1-5 Hz) stays there.
If the writer lapped the slot during a run (``still_valid()`` False) the key is dropped,
so a possibly torn upload is never reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from automot_ros.runtime.backends.base import ActionBackend, BackendUnavailable
from automot_ros.runtime.backends.outputs import trajectory_from_outputs
from automot_ros.runtime.context_shm import ContextSnapshot
from automot_ros.runtime.plan_result import Trajectory


def import_pycuda():
    try:
        import pycuda.driver as cuda
    except ImportError as error:
        raise BackendUnavailable(f"pycuda is not installed ({error}); pip install pycuda "
                                 "(it builds against the CUDA toolkit and needs libcuda)") from error
    return cuda


class TensorRTBackend(ActionBackend):
    name = "tensorrt"

    def __init__(self, onnx_file: Union[str, Path], engine_dir: Union[str, Path], profile, device: int = 0,
                 workspace_mib: Optional[int] = None, log=print):
        from automot_ros.engines import tensorrt_build

        try:
            trt, self.gpu = tensorrt_build.import_tensorrt(device)
        except tensorrt_build.TensorRTUnavailable as error:
            raise BackendUnavailable(str(error)) from error
        cuda = import_pycuda()
        cuda.init()
        self._cuda, self._trt = cuda, trt
        self._device_context = cuda.Device(device).retain_primary_context()
        self._device_context.push()
        try:
            self.engine, self.engine_file = tensorrt_build.load_or_build_engine(
                onnx_file, engine_dir, profile, workspace_mib or tensorrt_build.DEFAULT_WORKSPACE_MIB, device, log)
            self.execution = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            self._allocate()
        except BaseException:
            self._device_context.pop()
            self._device_context.detach()
            self._device_context = None
            raise
        self._device_context.pop()
        self._context_key = None

    def _allocate(self) -> None:
        trt, cuda, engine = self._trt, self._cuda, self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        self.device_buffers, self.host_outputs = {}, {}
        for name in self.inputs:
            largest = tuple(engine.get_tensor_profile_shape(name, 0)[2])
            self.execution.set_input_shape(name, largest)
            self.device_buffers[name] = cuda.mem_alloc(max(1, int(np.prod(largest))) * self.dtypes[name].itemsize)
        for name in self.outputs:  # output shapes at the largest inputs bound every later shape
            largest = tuple(self.execution.get_tensor_shape(name))
            size = max(1, int(np.prod(largest)))
            self.device_buffers[name] = cuda.mem_alloc(size * self.dtypes[name].itemsize)
            self.host_outputs[name] = cuda.pagelocked_empty(size, self.dtypes[name])
        for name, buffer in self.device_buffers.items():
            self.execution.set_tensor_address(name, int(buffer))

    def _upload(self, name: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype=self.dtypes[name])
        self.execution.set_input_shape(name, array.shape)
        self._cuda.memcpy_htod_async(self.device_buffers[name], array, self.stream)

    def run_raw(self, context_kv: np.ndarray, scene: np.ndarray, target_points: np.ndarray, speed: np.ndarray,
                context_key=None) -> list:
        """Batched inputs -> the outputs in engine order (lateral, longitudinal, path,
        waypoints, speed_pred), as numpy copies."""
        self._device_context.push()
        try:
            if context_key is None or context_key != self._context_key:
                self._context_key = None
                self._upload("context_kv", context_kv)
            else:
                self.execution.set_input_shape("context_kv", context_kv.shape)
            self._upload("scene_input", scene)
            self._upload("target_points", target_points)
            self._upload("speed", speed)
            if not self.execution.execute_async_v3(self.stream.handle):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            results = {}
            for name in self.outputs:
                shape = tuple(self.execution.get_tensor_shape(name))
                host = self.host_outputs[name][:int(np.prod(shape))]
                self._cuda.memcpy_dtoh_async(host, self.device_buffers[name], self.stream)
                results[name] = (host, shape)
            self.stream.synchronize()
            self._context_key = context_key
        finally:
            self._device_context.pop()
        order = ("lateral_logits", "longitudinal_logits", "path", "waypoints", "speed_pred")
        return [results[n][0].reshape(results[n][1]).astype(np.float32, copy=True) for n in order]

    def run(self, context: ContextSnapshot, scene_chw, target_points, speed_mps) -> Trajectory:
        key = (context.generation, context.seq, context.kv.shape)
        outputs = self.run_raw(context.kv, scene_chw[None], np.asarray(target_points)[None],
                               np.array([speed_mps], dtype=np.float32), context_key=key)
        if not context.still_valid():  # the upload may be torn: never reuse it
            self._context_key = None
        return trajectory_from_outputs(*outputs[:4])

    def close(self) -> None:
        if getattr(self, "_device_context", None) is None:
            return
        self._device_context.push()
        try:
            for buffer in self.device_buffers.values():
                buffer.free()
            self.device_buffers.clear()
            self.execution = None
            self.engine = None
        finally:
            self._device_context.pop()
            self._device_context.detach()
            self._device_context = None
