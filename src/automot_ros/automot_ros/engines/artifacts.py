"""Where exported models and engines live, what they are called, and the build profile.

File names in an engine directory (default: ``engines/`` of the package's share dir)::

    <model_id>.ae.fp32.onnx         the Action Expert, fp32 (torch.onnx dynamo, opset 18)
    <model_id>.ae.fp16.onnx         the same graph converted to fp16 (fp32 inputs/outputs)
    <model_id>.ae.parity.json       onnxruntime-vs-torch parity of both, at several context lengths
    ae-<onnx sha256[:16]>-<profile[:8]>-trt<version>-<gpu>.engine (+ .json)
                                    a TensorRT engine: ONNX content, optimization profile,
                                    TensorRT version and GPU in the name
    timing-trt<version>-<gpu>.cache TensorRT timing cache, shared by builds on that GPU

``model_id`` is the id ``build_model`` gives the weights (config digest + seed, or the
checkpoint's file digest), so an ONNX file always belongs to exactly one set of weights;
its metadata repeats the id and the backends refuse a file whose id differs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import yaml

from automot_ros.paths import config_dir, share_dir

PRECISIONS = ("fp32", "fp16")
INPUT_NAMES = ("context_kv", "scene_input", "target_points", "speed")
OUTPUT_NAMES = ("lateral_logits", "longitudinal_logits", "path", "waypoints", "speed_pred")
# Metadata keys written into every exported ONNX file.
META_MODEL_ID = "automot.model_id"
META_CONFIG = "automot.config"
META_PRECISION = "automot.precision"


def default_engine_dir() -> Path:
    """``engines/`` next to ``config/``: the repository root in a checkout."""
    return share_dir() / "engines"


def resolve_engine_dir(value: Union[str, Path, None]) -> Path:
    """``""``/None -> ``default_engine_dir()``; anything else as given."""
    return Path(value) if value else default_engine_dir()


def onnx_path(engine_dir: Union[str, Path], model_id: str, precision: str) -> Path:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return Path(engine_dir) / f"{model_id}.ae.{precision}.onnx"


def parity_path(engine_dir: Union[str, Path], model_id: str) -> Path:
    return Path(engine_dir) / f"{model_id}.ae.parity.json"


def file_sha256(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def slug(text: str) -> str:
    """A file-name-safe form of a GPU name or version: 'NVIDIA H100 80GB HBM3' -> 'NVIDIA-H100-80GB-HBM3'."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "unknown"


# ----- optimization profile ---------------------------------------------------------------


@dataclass(frozen=True)
class EngineProfile:
    """(min, opt, max) of the two dynamic axes: context tokens and batch."""

    context_tokens: Tuple[int, int, int]
    batch: Tuple[int, int, int] = (1, 1, 4)

    def __post_init__(self) -> None:
        for name in ("context_tokens", "batch"):
            lo, opt, hi = getattr(self, name)
            if not 1 <= lo <= opt <= hi:
                raise ValueError(f"engine {name} must be 1 <= min <= opt <= max, got {(lo, opt, hi)}")

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}


def engine_profile(model: Union[str, Path], nominal_tokens: Optional[int] = None) -> EngineProfile:
    """The profile of ``model`` (a config name or YAML path): its ``engine:`` section, e.g.

        engine:
          context_tokens: [32, 278, 512]   # min, opt, max
          batch: [1, 1, 4]

    Without one, the documented rule: opt = ``nominal_tokens`` (the config's context
    length: system prompt + frames x tokens per frame + fixed-width instruction), min = 1,
    max = 2 x opt; batch (1, 1, 4).
    """
    path = Path(model)
    if path.suffix not in (".yaml", ".yml"):  # the lookup rule of load_model_config
        path = config_dir() / "models" / f"{model}.yaml"
    section = {}
    if path.is_file():
        with open(path) as f:
            section = (yaml.safe_load(f) or {}).get("engine") or {}
    unknown = set(section) - {"context_tokens", "batch"}
    if unknown:
        raise ValueError(f"unknown engine keys in {path}: {sorted(unknown)}")
    if "context_tokens" in section:
        tokens = tuple(int(v) for v in section["context_tokens"])
    elif nominal_tokens:
        tokens = (1, int(nominal_tokens), 2 * int(nominal_tokens))
    else:
        raise ValueError(f"no engine.context_tokens in {path} and no nominal context length given")
    batch = tuple(int(v) for v in section.get("batch", (1, 1, 4)))
    if len(tokens) != 3 or len(batch) != 3:
        raise ValueError("engine context_tokens and batch are [min, opt, max]")
    return EngineProfile(tokens, batch)


def nominal_context_tokens(cfg) -> int:
    """Tokens in a context of ``cfg`` (a ModelConfig): the chat text before the frames, the
    frames' tokens, and the fixed-width instruction with the end of turn."""
    from automot_ros.model.prompt import context_text, format_instruction
    from automot_ros.model.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(cfg.decoder.weights)
    before, after = context_text(tokenizer, format_instruction([[10.0, 0.0], [20.0, 0.0]], 5.0))
    v = cfg.vision
    stride = 32 if v.kind == "efficientnet_lite0" else 2 ** len(v.channels)
    per_frame = (v.image_size[0] // stride) * (v.image_size[1] // stride)
    return len(tokenizer.encode(before)) + v.frames * per_frame + len(tokenizer.encode(after))


# ----- which weights ----------------------------------------------------------------------


def model_identity(model: Union[str, Path], checkpoint: Optional[Union[str, Path]] = None, seed: int = 0):
    """(ModelConfig, model_id) exactly as ``build_model(model, checkpoint)`` would give them,
    without building the model (the engine backends need neither torch weights nor the UE).
    """
    from automot_ros.model.checkpoint import FORMAT, check_serves, file_digest, resolve_checkpoint
    from automot_ros.model.config import ModelConfig, load_model_config

    checkpoint = resolve_checkpoint(model, checkpoint)
    if checkpoint is not None:
        from safetensors import safe_open

        with safe_open(str(checkpoint), framework="numpy") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{checkpoint} is not an {FORMAT} file (metadata format {meta.get('format')!r})")
        cfg = ModelConfig.from_dict(json.loads(meta["config"]))
        if model:
            check_serves(checkpoint, cfg, model)
        return cfg, f"{cfg.name}-{file_digest(checkpoint)}"
    cfg = load_model_config(model)
    return cfg, f"{cfg.name}-{cfg.digest}-seed{seed}"
