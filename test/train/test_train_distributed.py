"""The distributed set-up without processes: torchrun's environment, the FSDP wrapping
policy on the release-sized model (meta device), and the FSDP/DDP choice."""

from __future__ import annotations

import torch

from automot_ros.model.automot import AutoMoT
from automot_ros.model.config import load_model_config
from automot_ros.model.layers import ExpertBlock
from automot_ros.train.distributed import (
    FSDP_FORWARD_METHODS,
    DistEnv,
    env_from_torchrun,
    fsdp_units,
    init_distributed,
    use_fsdp,
    wrap_ddp,
)


def test_torchrun_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert env_from_torchrun() == {"rank": 0, "world_size": 1, "local_rank": 0, "local_world_size": 1}
    env = init_distributed("cpu")  # one process: no process group
    assert env == DistEnv() and not env.distributed and env.is_main and env.backend is None
    module = torch.nn.Linear(2, 2)
    assert wrap_ddp(module, env) is module
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert env_from_torchrun() == {"rank": 3, "world_size": 4, "local_rank": 1, "local_world_size": 2}


def test_fsdp_shards_every_expert_layer_of_the_release_shapes():
    cfg = load_model_config("automot-b2d")
    with torch.device("meta"):
        model = AutoMoT(cfg, load_pretrained=False)
    units = fsdp_units(model)
    assert len(units) == 2 * cfg.decoder.layers  # one UE and one AE block per layer
    assert all(isinstance(u, ExpertBlock) for u in units)
    assert units[:cfg.decoder.layers] == list(model.decoder.blocks) and units[cfg.decoder.layers:] == list(model.ae.blocks)
    in_units = sum(p.numel() for u in units for p in u.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert in_units / total > 0.85  # what stays at the root: embeddings, vision, projector, AE I/O
    for method in FSDP_FORWARD_METHODS:  # the MoT layer calls these, not forward
        assert callable(getattr(units[0], method))
    assert use_fsdp(total) and not use_fsdp(200_000_000) and not use_fsdp(total, requested=False)
    assert use_fsdp(1000, requested=True)
