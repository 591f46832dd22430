"""Camera images to the model's input layout."""

from __future__ import annotations

import cv2
import numpy as np

from automot_ros.errors import InputError


def to_model_frame(rgb_hwc: np.ndarray, height: int, width: int) -> np.ndarray:
    """An RGB image [H, W, 3] uint8 -> the model's frame [3, height, width] uint8.

    INTER_AREA because camera images are larger than the model's input: it averages instead
    of aliasing.
    """
    if rgb_hwc.dtype != np.uint8 or rgb_hwc.ndim != 3 or rgb_hwc.shape[2] != 3:
        raise InputError(f"expected an RGB uint8 image [H, W, 3], got {rgb_hwc.dtype} {rgb_hwc.shape}")
    if rgb_hwc.shape[:2] != (height, width):
        rgb_hwc = cv2.resize(rgb_hwc, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb_hwc.transpose(2, 0, 1))
