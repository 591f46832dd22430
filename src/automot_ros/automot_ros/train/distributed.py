"""Data-parallel training the standard way: ``torchrun`` sets the environment, each process
trains on its slice of every global batch, DDP (or FSDP2 for the release-sized model)
averages the gradients.

    torchrun --nproc_per_node 2 -m automot_ros.train --config tiny --data DIR --out OUT

Backends: ``nccl`` with CUDA, ``gloo`` on CPU (what runs here). Without torchrun's
environment (WORLD_SIZE unset or 1) everything is a no-op wrapper around one process.
FSDP: ``fully_shard`` (FSDP2, per-parameter sharding, frozen and trained parameters may mix)
on every ``ExpertBlock`` (one expert's weights in one layer: the unit whose parameters are
gathered for its ``qkv`` and ``finish`` calls and freed after), then on the root module. Used for the ``automot-b2d`` shapes
(``use_fsdp``), whose UE decoder alone (4 B parameters) does not fit one device's memory
with optimizer state; tiny and smol use DDP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable, List, Optional

import torch
import torch.distributed as dist
from torch import nn

# Shapes from which FSDP is the default (automot-b2d's decoder: 4.0 B parameters).
FSDP_MIN_PARAMETERS = 1_000_000_000
# ExpertBlock methods that use its parameters (model/layers.py).
FSDP_FORWARD_METHODS = ("qkv", "finish")


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: str = "cpu"
    backend: Optional[str] = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_torchrun() -> dict:
    """RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE as torchrun sets them (defaults: one process)."""
    get = os.environ.get
    world = int(get("WORLD_SIZE", "1"))
    return {"rank": int(get("RANK", "0")), "world_size": world, "local_rank": int(get("LOCAL_RANK", "0")),
            "local_world_size": int(get("LOCAL_WORLD_SIZE", str(world)))}


def init_distributed(device: Optional[str] = None, timeout_min: float = 120.0) -> DistEnv:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU) when WORLD_SIZE > 1.

    ``device``: "cpu", "cuda" (this process's local GPU) or None (CUDA if available).
    The timeout covers the longest collective wait, e.g. ranks waiting for a cache build.
    """
    info = env_from_torchrun()
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        index = info["local_rank"] if device in (None, "cuda") else torch.device(device).index or 0
        torch.cuda.set_device(index)
        dev = f"cuda:{index}"
    else:
        dev = "cpu"
    backend = None
    if info["world_size"] > 1:
        backend = "nccl" if use_cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=timedelta(minutes=timeout_min))
    return DistEnv(device=dev, backend=backend, **info)


def shutdown(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_mean(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean over processes of a (detached) tensor; identity for one process."""
    values = values.detach().clone()
    if env.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= env.world_size
    return values


def broadcast_object(obj, env: DistEnv):
    """Rank 0's ``obj`` on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def local_slice(global_batch: int, env: DistEnv) -> slice:
    """This rank's part of a global batch (equal parts: DDP's gradient mean is then the
    global batch's mean gradient)."""
    if global_batch % env.world_size:
        raise ValueError(f"global batch {global_batch} is not divisible by {env.world_size} processes")
    per = global_batch // env.world_size
    return slice(env.rank * per, (env.rank + 1) * per)


def wrap_ddp(module: nn.Module, env: DistEnv) -> nn.Module:
    """DDP over the module's trainable parameters (frozen ones are neither synchronized by
    gradient nor sent: DDP broadcasts rank 0's parameters and buffers once at wrap time)."""
    if not env.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.device(env.device).index] if env.device.startswith("cuda") else None
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)


def fsdp_units(module: nn.Module, unit_types: Optional[Iterable[type]] = None) -> List[nn.Module]:
    """The submodules FSDP shards as units: every ``ExpertBlock`` (UE and AE layers), in
    module order; the root is sharded last and holds what is left (embeddings, vision,
    projector, AE input/output layers)."""
    if unit_types is None:
        from automot_ros.model.layers import ExpertBlock
        unit_types = (ExpertBlock,)
    unit_types = tuple(unit_types)
    return [m for m in module.modules() if m is not module and isinstance(m, unit_types)]


def wrap_fsdp(module: nn.Module, env: DistEnv, unit_types: Optional[Iterable[type]] = None,
              mixed_precision: Optional[torch.dtype] = None) -> nn.Module:
    """FSDP2 ``fully_shard`` per unit (``fsdp_units``), then the root. ``module``'s forward
    must be the training step's forward (FSDP gathers on ``__call__``). ``mixed_precision``:
    e.g. torch.bfloat16 for parameters in the forward/backward, fp32 gradients reduced."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    if not dist.is_initialized():
        raise RuntimeError("FSDP needs an initialized process group (run under torchrun)")
    kwargs = {}
    if mixed_precision is not None:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=mixed_precision, reduce_dtype=torch.float32)
    for unit in fsdp_units(module, unit_types):
        fully_shard(unit, **kwargs)
        # A Mixture-of-Transformers layer calls its experts' blocks around the joint
        # attention (qkv before, finish after), never their forward: gather for both.
        for method in FSDP_FORWARD_METHODS:
            if hasattr(unit, method):
                register_fsdp_forward_method(unit, method)
    fully_shard(module, **kwargs)
    return module


def use_fsdp(num_parameters: int, requested: Optional[bool] = None) -> bool:
    """FSDP when asked, else from FSDP_MIN_PARAMETERS parameters (the automot-b2d shapes)."""
    return bool(requested) if requested is not None else num_parameters >= FSDP_MIN_PARAMETERS


__all__ = ["DistEnv", "all_reduce_mean", "barrier", "broadcast_object", "env_from_torchrun", "fsdp_units",
           "init_distributed", "local_slice", "shutdown", "use_fsdp", "wrap_ddp", "wrap_fsdp"]
