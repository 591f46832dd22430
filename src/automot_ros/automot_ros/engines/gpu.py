"""Is there an NVIDIA GPU? Asked of the driver itself (libcuda.so.1 via ctypes), before any
CUDA library is imported: on a machine without a driver that fails cleanly, where
importing pycuda or TensorRT may not."""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    available: bool
    name: str = ""
    compute_capability: str = ""  # "9.0"
    driver_version: str = ""  # "12.4" (the CUDA version the driver supports)
    count: int = 0
    reason: str = ""  # why not, when not available


@functools.lru_cache(maxsize=None)
def probe_gpu(device: int = 0) -> GpuInfo:
    """GpuInfo for CUDA device ``device``; ``available`` False with the reason otherwise."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as error:
        return GpuInfo(False, reason=f"no NVIDIA driver (libcuda.so.1 not loadable: {error})")
    try:
        status = cuda.cuInit(0)
        if status != 0:
            return GpuInfo(False, reason=f"the NVIDIA driver did not initialize (cuInit error {status})")
        count = ctypes.c_int(0)
        cuda.cuDeviceGetCount(ctypes.byref(count))
        if count.value <= device:
            return GpuInfo(False, count=count.value, reason=f"no CUDA device {device} ({count.value} found)")
        handle = ctypes.c_int(0)
        cuda.cuDeviceGet(ctypes.byref(handle), device)
        name = ctypes.create_string_buffer(256)
        cuda.cuDeviceGetName(name, 256, handle)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, MINOR = 76
        cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, handle)
        cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, handle)
        version = ctypes.c_int(0)
        cuda.cuDriverGetVersion(ctypes.byref(version))
    except (AttributeError, OSError) as error:
        return GpuInfo(False, reason=f"the NVIDIA driver could not be queried: {error}")
    return GpuInfo(True, name.value.decode(errors="replace"), f"{major.value}.{minor.value}",
                   f"{version.value // 1000}.{version.value % 1000 // 10}", count.value)
