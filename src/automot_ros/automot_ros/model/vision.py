"""Image encoders: the UE's frame encoder (from scratch or EfficientNet-Lite0) and the light
conv encoder the AE uses as its swappable scene encoder."""

from __future__ import annotations

import torch
from torch import nn

from .config import ConvEncoderConfig, VisionConfig
from .efficientnet import EfficientNetLite0


class ConvEncoder(nn.Module):
    """pixels uint8/float in [0, 255] [N, 3, H, W] -> features [N, C, H / 2**k, W / 2**k].

    k stride-2 3x3 convs with GELU: a few ms on a CPU core, plain ops for ONNX/TensorRT.
    """

    def __init__(self, channels):
        super().__init__()
        layers, cin = [], 3
        for cout in channels:
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GELU()]
            cin = cout
        self.net = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net((pixels.float() - 127.0) / 128.0)


class SceneEncoder(nn.Module):
    """The AE's scene tokens from the current image: [B, 3, H, W] -> [B, grid_h * grid_w, hidden].

    Swappable: anything mapping the current input to [B, num_tokens, hidden] fits here (the
    release uses a camera + LiDAR BEV encoder with 64 tokens).
    """

    def __init__(self, cfg: ConvEncoderConfig, hidden: int):
        super().__init__()
        self.conv = ConvEncoder(cfg.channels)
        self.proj = nn.Linear(cfg.out_channels, hidden)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.proj(self.conv(pixels).flatten(2).transpose(1, 2))


def build_frame_encoder(cfg: VisionConfig) -> nn.Module:
    """The UE's per-frame encoder (randomly initialized; ``AutoMoT`` loads pretrained
    weights): [T, 3, H, W] -> [T, out_channels, H / stride, W / stride]."""
    if cfg.kind == "conv":
        return ConvEncoder(cfg.channels)
    if cfg.kind == "efficientnet_lite0":
        return EfficientNetLite0()
    raise ValueError(f"unknown vision kind {cfg.kind!r}")
