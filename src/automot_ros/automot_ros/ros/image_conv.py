"""sensor_msgs/Image and CompressedImage -> RGB uint8 arrays (no cv_bridge: not on PyPI)."""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from automot_ros.errors import InputError

# encoding -> (channels, conversion to RGB or None when already RGB)
_ENCODINGS = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
}


def image_to_rgb(msg: Image) -> np.ndarray:
    """An Image message -> [H, W, 3] uint8 RGB, or InputError naming what is wrong."""
    if msg.encoding not in _ENCODINGS:
        raise InputError(f"unsupported image encoding {msg.encoding!r} (supported: {sorted(_ENCODINGS)})")
    channels, conversion = _ENCODINGS[msg.encoding]
    if msg.height == 0 or msg.width == 0:
        raise InputError(f"empty image {msg.width}x{msg.height}")
    if msg.step < msg.width * channels:
        raise InputError(f"image step {msg.step} < width {msg.width} x {channels} channels")
    if len(msg.data) != msg.step * msg.height:
        raise InputError(f"image data has {len(msg.data)} bytes, expected step {msg.step} x height {msg.height}")
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    if conversion is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(pixels, conversion)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """A CompressedImage (jpeg/png) -> [H, W, 3] uint8 RGB."""
    bgr = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"cannot decode compressed image (format {msg.format!r}, {len(msg.data)} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_rgb(msg) -> np.ndarray:
    return compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)


def camera_topic(camera: str, transport: str):
    """(message type, topic) of a camera under image_transport's naming."""
    if transport == "compressed":
        return CompressedImage, f"camera/{camera}/image_raw/compressed"
    return Image, f"camera/{camera}/image_raw"


def rgb_to_image(rgb: np.ndarray, stamp, frame_id: str) -> Image:
    """[H, W, 3] uint8 RGB -> an rgb8 Image (bytes fill the uint8[] field fast)."""
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg
