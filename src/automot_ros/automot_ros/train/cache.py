"""The AE stage's input cache: UE contexts computed once (frozen UE), stored on disk in fp16.

Deployment pairing. The runtime UE prefills a context at a low rate (``ue_period_s``,
0.5 s = 2 Hz) while the AE runs at camera rate on the newest context. The cache mirrors
that: per episode, walking the samples in time order, a sample becomes a UE tick when at
least ``ue_period_s`` has passed since the last tick; every sample is paired with the
newest tick at or before it (its context age, 0 to < ue_period_s, is stored). One context
per tick: with samples every 0.25 s (``automot data collect`` default stride 5) that halves
the contexts; with samples at camera rate (stride 1) it cuts them 10x.

Only the KV heads the AE reads are stored: AE query head h reads UE KV head h // group, so
UE KV heads >= the AE's kv_heads are never read (model/action_expert.py). smol: 1 of 3.

Layout of ``<cache_root>/<key>/`` (key = hash of the UE weights, the data, the pairing):
``contexts.npy`` fp16 [contexts, layers, 2, ae_kv_heads, tokens, head_dim], the AE inputs
and targets per sample (``scene_input.npy`` uint8 [N, 3, Hs, Ws],
``target_points_<lookahead>.npy`` [N, K, 2] per route lookahead, e.g.
``target_points_10-20.npy``, ``speed.npy``, ``future_xy.npy``, ``future_speed.npy``,
``path_xy.npy``, ``labels.npy``, ``future_agents.npy``), ``tick.npy`` (context index per
sample), ``age_s.npy``, and ``meta.json`` (written last: a cache without it is incomplete and
rebuilt). The contexts are the expensive part; a complete cache that lacks a per-sample
field (one added to AE_FIELDS since it was built, or the target points of another
lookahead: AEs that differ in it share the contexts) gets it filled in from the dataset.
Building is split across the ranks of a distributed run (each computes every world_size-th
sample; the directory must be shared).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from automot_ros.data.dataset import IMAGE_FREE_FIELDS
from automot_ros.model.prompt import format_instruction
from automot_ros.train.data import camera_hz, sample_meta
from automot_ros.train.defaults import DEFAULT_UE_PERIOD_S
from automot_ros.train.distributed import DistEnv, barrier, broadcast_object

CACHE_FORMAT = "automot-ae-cache-v1"
# The Understanding Expert's tensors: a context depends on these and nothing else.
UE_PREFIXES = ("frame_encoder.", "projector.", "decoder.")
# Per-sample AE inputs and targets: dataset key -> numpy dtype.
AE_FIELDS = {"scene_input": np.uint8, "target_points": np.float32, "speed": np.float32,
             "future_xy": np.float32, "future_speed": np.float32, "path_xy": np.float32, "labels": np.int64,
             "future_agents": np.float32}


def field_files(route_lookahead_m: Sequence[float]) -> Dict[str, str]:
    """AE_FIELDS name -> its file in a cache: the target points' name carries the lookahead."""
    tag = "-".join(f"{d:g}" for d in route_lookahead_m)
    return {name: f"{name}_{tag}.npy" if name == "target_points" else f"{name}.npy" for name in AE_FIELDS}


@dataclass(frozen=True)
class TickPlan:
    """tick [N]: context index of each sample; age_s [N]; tick_items [C]: the sample whose
    frames and instruction compute context c."""

    tick: np.ndarray
    age_s: np.ndarray
    tick_items: np.ndarray

    @property
    def num_contexts(self) -> int:
        return len(self.tick_items)


def plan_ticks(metas: Sequence[Tuple[int, int]], hz: float, ue_period_s: float) -> TickPlan:
    """metas [(episode, frame)] per sample -> the deployment pairing (module docstring).
    ``ue_period_s`` <= 0: every sample is its own tick (age 0)."""
    n = len(metas)
    tick = np.zeros(n, dtype=np.int64)
    age = np.zeros(n, dtype=np.float32)
    tick_items: List[int] = []
    order = sorted(range(n), key=lambda i: metas[i])
    current: Optional[Tuple[int, int, int]] = None  # episode, frame, context index
    for i in order:
        episode, frame = metas[i]
        if (current is None or current[0] != episode or ue_period_s <= 0
                or (frame - current[1]) / hz >= ue_period_s - 1e-9):
            current = (episode, frame, len(tick_items))
            tick_items.append(i)
        tick[i] = current[2]
        age[i] = (frame - current[1]) / hz
    return TickPlan(tick, age, np.asarray(tick_items, dtype=np.int64))


def ue_digest(model, env: DistEnv = DistEnv()) -> str:
    """Hash of the UE's config (vision and decoder, but the answer adapter's rank: contexts
    never pass through the adapter) and every UE tensor (frame encoder, projector, decoder):
    a context depends on nothing else. FSDP-sharded tensors hash their local shards, and the
    ranks' hashes are combined (collective)."""
    h = hashlib.blake2b(digest_size=10)
    config = model.cfg.to_dict()
    del config["decoder"]["answer_adapter_rank"]
    h.update(json.dumps({"vision": config["vision"], "decoder": config["decoder"]}, sort_keys=True).encode())
    sharded = False
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(UE_PREFIXES):
            if hasattr(tensor, "to_local"):  # DTensor (FSDP2)
                tensor, sharded = tensor.to_local(), True
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    if sharded and env.distributed:
        import torch.distributed as dist

        parts = [None] * env.world_size
        dist.all_gather_object(parts, h.hexdigest())
        return hashlib.blake2b("".join(parts).encode(), digest_size=10).hexdigest()
    return h.hexdigest()


def data_fingerprint(dataset, metas: Sequence[Tuple[int, int]]) -> str:
    h = hashlib.blake2b(digest_size=10)
    manifest = getattr(dataset, "manifest", None) or {}
    h.update(json.dumps({"type": type(dataset).__name__, "root": str(getattr(dataset, "root", "")),
                         "summary": manifest.get("summary"), "sizes": [getattr(dataset, "frame_size", None),
                                                                       getattr(dataset, "scene_size", None)],
                         "seed": getattr(dataset, "seed", None)}, sort_keys=True, default=str).encode())
    h.update(np.asarray(metas, dtype=np.int64).tobytes())
    return h.hexdigest()


def context_tokens(model) -> int:
    """Tokens of one context (fixed: fixed-width instructions, fixed frame count): the
    chat text before the frames, frames x tokens per frame, the instruction's."""
    v = model.cfg.vision
    stride = 32 if v.kind == "efficientnet_lite0" else 2 ** len(v.channels)
    per_frame = -(-v.image_size[0] // stride) * -(-v.image_size[1] // stride)
    instruction = model.instruction_ids(format_instruction([[0.0, 0.0], [0.0, 0.0]], 0.0)).shape[1]
    return len(model._before_ids) + v.frames * per_frame + instruction


def build_ae_cache(model, dataset, cache_root: Union[str, Path], env: DistEnv = DistEnv(),
                   ue_period_s: float = DEFAULT_UE_PERIOD_S, batch: int = 4,
                   progress: bool = False, log=print, context_fn: Optional[Callable] = None) -> Path:
    """Compute (or find) the cache of ``dataset`` for the model's current UE; returns its
    directory. Every rank of a distributed run must call it (collectives inside).

    ``context_fn(frames uint8 [B, T, 3, H, W], instructions [B str])`` -> contexts [B, layers,
    2, >= ae kv_heads, tokens, head_dim]; default ``model.context_kv`` (FSDP passes its
    wrapped module's pass, which gathers the sharded parameters)."""
    t0 = time.perf_counter()
    lookahead = tuple(model.cfg.action.route_lookahead_m)
    if tuple(dataset.route_lookahead_m) != lookahead:
        raise ValueError(f"the dataset's route targets lie {list(dataset.route_lookahead_m)} m ahead, "
                         f"the model's {list(lookahead)} m: build the dataset with the model's config")
    files = field_files(lookahead)
    metas = [sample_meta(dataset, i) for i in range(len(dataset))]
    plan = plan_ticks(metas, camera_hz(dataset), ue_period_s)
    d, a = model.cfg.decoder, model.cfg.action
    key_src = json.dumps({"format": CACHE_FORMAT, "ue": ue_digest(model, env), "data": data_fingerprint(dataset, metas),
                          "ue_period_s": ue_period_s, "kv_heads": a.kv_heads})
    key = hashlib.blake2b(key_src.encode(), digest_size=8).hexdigest()
    path = Path(cache_root) / f"{model.cfg.name}-{key}"
    if (path / "meta.json").is_file():
        missing = [name for name in AE_FIELDS if not (path / files[name]).is_file()]
        if missing and env.is_main:
            _fill_fields(path, dataset, {name: files[name] for name in missing}, progress, log)
        barrier(env)
        if env.is_main:
            log(f"cache: reusing {path} ({plan.num_contexts} contexts for {len(metas)} samples)")
        return path
    tokens = context_tokens(model)
    ctx_shape = (plan.num_contexts, d.layers, 2, a.kv_heads, tokens, d.head_dim)
    if env.is_main:
        if path.exists():
            shutil.rmtree(path)  # an incomplete earlier build
        path.mkdir(parents=True)
        np.save(path / "tick.npy", plan.tick)
        np.save(path / "age_s.npy", plan.age_s)
        np.lib.format.open_memmap(path / "contexts.npy", mode="w+", dtype=np.float16, shape=ctx_shape).flush()
        _create_fields(path, dataset, files)
    barrier(env)
    contexts = np.load(path / "contexts.npy", mmap_mode="r+")
    fields = {name: np.load(path / files[name], mmap_mode="r+") for name in AE_FIELDS}
    tick_of_item = {int(item): c for c, item in enumerate(plan.tick_items)}
    mine = range(env.rank, len(metas), env.world_size)
    pending: List[Tuple[int, torch.Tensor, str]] = []
    # A collective context_fn (FSDP) must run equally often on every rank: ranks with fewer
    # ticks of their own run dummy batches at the end.
    ticks_per_rank = np.bincount(plan.tick_items % env.world_size, minlength=env.world_size)
    rounds = int(-(-ticks_per_rank.max() // batch)) if len(plan.tick_items) else 0
    done_rounds = 0

    def run_contexts(frames: torch.Tensor, instructions: List[str]) -> torch.Tensor:
        with torch.no_grad():
            if context_fn is not None:
                return context_fn(frames, instructions)
            return model.context_kv(frames, instructions, kv_heads=a.kv_heads)

    def flush_contexts() -> None:
        nonlocal done_rounds
        if not pending:
            return
        kv = run_contexts(torch.stack([p[1] for p in pending]), [p[2] for p in pending])
        for (c, _, _), value in zip(pending, kv):
            contexts[c] = value[:, :, :a.kv_heads].to(torch.float16).cpu().numpy()
        pending.clear()
        done_rounds += 1

    was_training = model.training
    model.eval()
    bar = _progress(len(mine), "cache", progress and env.is_main)
    for i in mine:
        item = dataset[i]
        for name in AE_FIELDS:
            fields[name][i] = torch.as_tensor(item[name]).numpy()
        if i in tick_of_item:
            pending.append((tick_of_item[i], item["frames"], item["instruction"]))
            if len(pending) >= batch:
                flush_contexts()
        bar.update(1)
    flush_contexts()
    bar.close()
    if context_fn is not None:
        v = model.cfg.vision
        while done_rounds < rounds:
            run_contexts(torch.zeros(1, v.frames, 3, *v.image_size, dtype=torch.uint8),
                         [format_instruction([[0.0, 0.0], [0.0, 0.0]], 0.0)])
            done_rounds += 1
    model.train(was_training)
    contexts.flush()
    for array in fields.values():
        array.flush()
    barrier(env)
    wall = time.perf_counter() - t0
    if env.is_main:
        meta = {"format": CACHE_FORMAT, "model": model.cfg.name, "key": key, "samples": len(metas),
                "contexts": plan.num_contexts, "context_shape": list(ctx_shape[1:]), "dtype": "float16",
                "ue_period_s": ue_period_s, "mean_context_age_s": float(plan.age_s.mean()) if len(metas) else 0.0,
                "bytes": sum(f.stat().st_size for f in path.glob("*.npy")), "build_s": round(wall, 2),
                "world_size": env.world_size}
        (path / "meta.json").write_text(json.dumps(meta, indent=1))
        log(f"cache: built {path}: {plan.num_contexts} contexts for {len(metas)} samples "
            f"({meta['bytes'] / 1e6:.1f} MB) in {wall:.1f} s")
    barrier(env)
    return broadcast_object(path, env)


def _create_fields(path: Path, dataset, files: Dict[str, str]) -> Dict[str, np.ndarray]:
    """Allocate the given AE_FIELDS (name -> file) [N, ...], shaped like the dataset's
    first item (read without its images where that is enough)."""
    first = _reader(dataset, files)(0)
    arrays = {}
    for name, file in files.items():
        shape = (len(dataset),) + tuple(torch.as_tensor(first[name]).shape)
        arrays[name] = np.lib.format.open_memmap(path / file, mode="w+", dtype=AE_FIELDS[name], shape=shape)
    return arrays


def _reader(dataset, names) -> Callable[[int], dict]:
    """The dataset's cheapest item reader that yields ``names``: the image-free fields come
    without decoding the sample's images."""
    return dataset.image_free_fields if set(names) <= set(IMAGE_FREE_FIELDS) else dataset.__getitem__


def _fill_fields(path: Path, dataset, files: Dict[str, str], progress: bool, log) -> None:
    """Add per-sample fields (name -> file) to a complete cache (written under a temporary
    name, renamed when full: an interrupted fill leaves the cache as it was)."""
    t0 = time.perf_counter()
    partial = path / "adding"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    arrays = _create_fields(partial, dataset, files)
    bar = _progress(len(dataset), "cache fields", progress)
    read = _reader(dataset, files)
    for i in range(len(dataset)):
        item = read(i)
        for name in files:
            arrays[name][i] = torch.as_tensor(item[name]).numpy()
        bar.update(1)
    bar.close()
    for name, array in arrays.items():
        array.flush()
        (partial / files[name]).replace(path / files[name])
    partial.rmdir()
    log(f"cache: added {', '.join(files.values())} to {path} in {time.perf_counter() - t0:.1f} s")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, dynamic_ncols=True)


class AECacheDataset(Dataset):
    """AE-stage items from a cache: context_kv fp16 [layers, 2, kv, tokens, head_dim] (the
    sample's paired tick), age_s, and the AE inputs and targets (AE_FIELDS; the target
    points of ``route_lookahead_m``, the model's action.route_lookahead_m)."""

    def __init__(self, path: Union[str, Path], route_lookahead_m: Sequence[float]):
        self.path = Path(path)
        self.files = field_files(route_lookahead_m)
        self.meta = json.loads((self.path / "meta.json").read_text())
        if self.meta.get("format") != CACHE_FORMAT:
            raise ValueError(f"{self.path} is not an {CACHE_FORMAT} cache")
        self.tick = np.load(self.path / "tick.npy")
        self.age_s = np.load(self.path / "age_s.npy")
        self._arrays: Optional[Dict[str, np.ndarray]] = None

    def _open(self) -> Dict[str, np.ndarray]:
        if self._arrays is None:  # opened lazily: per DataLoader worker
            files = {"contexts": "contexts.npy", **self.files}
            self._arrays = {name: np.load(self.path / file, mmap_mode="r") for name, file in files.items()}
        return self._arrays

    def __len__(self) -> int:
        return len(self.tick)

    def field(self, name: str) -> np.ndarray:
        """One of AE_FIELDS for every sample [N, ...] (memory-mapped, read only)."""
        return self._open()[name]

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        arrays = self._open()
        item = {name: torch.from_numpy(np.array(arrays[name][i])) for name in AE_FIELDS}
        item["context_kv"] = torch.from_numpy(np.array(arrays["contexts"][self.tick[i]]))
        item["age_s"] = torch.tensor(float(self.age_s[i]))
        return item


__all__ = ["AECacheDataset", "AE_FIELDS", "CACHE_FORMAT", "UE_PREFIXES", "TickPlan", "build_ae_cache",
           "context_tokens", "data_fingerprint", "field_files", "plan_ticks", "ue_digest"]
