"""`automot train`: the two training stages, checkpoints and resume, logs and plots.

Stages (DESIGN.md section 1; issue 7):

1. ``projector``: the UE's projector learns to feed the frozen decoder: teacher-forced
   next-token CE on the QA answers (``losses.answer_ce``) given frames + instruction +
   question (``AutoMoT.text_logits``). Trained: the projector only (vision encoder and
   decoder frozen); rounded to fp16 precision at the stage's end (the release file's).
2. ``ae``: the Action Expert learns to plan from the frozen UE's contexts with the release's
   losses plus our agent-clearance term (``losses.action_losses``). The contexts are
   computed once per UE tick and cached (``cache.py``); the AE trains on them. Trained:
   every AE parameter (scene encoder, embeddings, queries, per-layer weights, heads).
3. ``answer`` (configs with ``decoder.answer_adapter_rank`` > 0; skipped otherwise): the
   answer adapter (``model/answer_adapter.py``) learns to read a context and word the
   answers, with the same CE as the projector stage. It acts on question and answer
   tokens only, so contexts, the context cache and the trained AE stay as they are.
   Trained: the adapter only.

Outputs under OUT: ``train_log.csv`` (one row per step and stage), ``train_log.png`` (loss
curves), ``checkpoints/last.safetensors`` (trained parts, fp32) + ``checkpoints/last.state.pt``
(optimizer, scheduler, step, stage: what ``--resume`` continues from), ``checkpoints/
<stage>.safetensors`` after each stage, ``model.safetensors`` (fp32 trained parts),
``<config>.fp16.safetensors`` (the release file, ``release.export_release``),
``train_summary.json`` (s/step, first/last losses, cache, held-out metrics), ``cache/``.

Global batch: ``batch`` items per step in total, split evenly over the processes; the
batches depend only on the seed and the step (``data.global_batch_indices``), so 1 process
and N processes (and a resumed run) see the same samples and give the same loss curve.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader

from automot_ros.model.checkpoint import (
    build_model,
    check_initializes,
    load_state_strict,
    read_checkpoint,
    trained_state_dict,
)
from automot_ros.model.config import load_model_config
from automot_ros.model.plan import Plan
from automot_ros.train import cache as ae_cache
from automot_ros.train.data import GlobalBatchSampler, QACollate, QAPairs
from automot_ros.train.defaults import (
    DEFAULT_BATCH,
    DEFAULT_LR,
    DEFAULT_STEPS,
    DEFAULT_UE_PERIOD_S,
    STAGES,
    TEXT_STAGES,
)
from automot_ros.train.distributed import (
    DistEnv,
    all_reduce_mean,
    barrier,
    init_distributed,
    shutdown,
    use_fsdp,
    wrap_ddp,
    wrap_fsdp,
)
from automot_ros.train.losses import AE_LOSS_NAMES, ActionLossConfig, action_losses, answer_ce
from automot_ros.train.release import export_release, save_trained

LOG_COLUMNS = ("stage", "step", "loss", "answer_ce", *AE_LOSS_NAMES, "waypoint_l2", "l2_3s", "decision_acc",
               "lr", "grad_norm", "s_per_step", "wall_s")
STATE_FORMAT = "automot-train-state-v1"


class Stopped(Exception):
    """The run stopped early (``stop_after`` or an interrupt) after writing a checkpoint."""


@dataclass
class TrainOptions:
    config: str = "tiny"
    # Collected dataset directories, pooled (one context cache each, so adding a collection
    # reuses the others'), or synthetic[:N]; a single string is one directory.
    data: Sequence[str] = ("synthetic",)
    out: str = "runs/train"
    stage: str = "all"  # all, or stages comma-separated: projector,ae,answer
    steps: Optional[int] = None  # per stage; default DEFAULT_STEPS
    projector_steps: Optional[int] = None
    ae_steps: Optional[int] = None
    answer_steps: Optional[int] = None
    batch: int = DEFAULT_BATCH  # global batch (all processes together)
    text_batch: Optional[int] = None  # the text stages' (projector, answer; default: batch)
    lr: Optional[float] = None  # default DEFAULT_LR per stage
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    resume: bool = False
    init: Optional[str] = None  # start from this checkpoint's trained parts
    # With init: only these trained parts (top-level modules, e.g. projector, ae, answer_adapter)
    # come from it; the others keep the seed's fresh initialization. None: all of them.
    init_parts: Optional[Sequence[str]] = None
    # The AE stage trains only these AE submodules (e.g. waypoint_head: fine-tune the waypoints
    # while the path and the decisions stay as loaded). None: the whole AE.
    ae_train_parts: Optional[Sequence[str]] = None
    split: str = "train"
    eval_split: Optional[str] = "heldout"  # AE metrics on it after the AE stage ("" / None: skip)
    ue_period_s: float = DEFAULT_UE_PERIOD_S
    cache_dir: Optional[str] = None  # default OUT/cache
    cache_batch: int = 4
    ckpt_every: int = 100
    threads: int = 0  # torch threads per process (0: cores / local processes)
    workers: int = 0  # DataLoader workers per process
    device: Optional[str] = None  # cpu | cuda (default: cuda if available)
    fsdp: Optional[bool] = None  # None: FSDP for the automot-b2d shapes, else DDP
    progress: bool = True
    release: bool = True  # write OUT/<config>.fp16.safetensors at the end
    stop_after: Optional[int] = None  # stop (checkpointed) after this many steps of this run
    ae_loss: ActionLossConfig = field(default_factory=ActionLossConfig)

    def __post_init__(self):
        self.data = (self.data,) if isinstance(self.data, str) else tuple(self.data)
        if not self.data:
            raise ValueError("data: at least one dataset directory")
        if self.init_parts is not None:
            self.init_parts = tuple(self.init_parts)
            if not self.init:
                raise ValueError("init_parts: only with init (the checkpoint they come from)")
        if self.ae_train_parts is not None:
            self.ae_train_parts = tuple(self.ae_train_parts)
            if not self.ae_train_parts:
                raise ValueError("ae_train_parts: at least one AE submodule (None trains the whole AE)")

    def steps_for(self, stage: str) -> int:
        explicit = {"projector": self.projector_steps, "ae": self.ae_steps, "answer": self.answer_steps}[stage]
        return int(explicit if explicit is not None else self.steps if self.steps is not None else DEFAULT_STEPS[stage])

    def batch_for(self, stage: str) -> int:
        return int(self.text_batch if stage in TEXT_STAGES and self.text_batch else self.batch)

    def lr_for(self, stage: str) -> float:
        return float(self.lr if self.lr is not None else DEFAULT_LR[stage])


def _part(name: str) -> str:
    """The trained part (top-level module) a state dict entry belongs to."""
    return name.split(".", 1)[0]


def _parts_of(state: Dict[str, torch.Tensor]) -> List[str]:
    """The parts of a state dict, in its order (smol: projector, ae, answer_adapter)."""
    return list(dict.fromkeys(_part(name) for name in state))


def _with_fresh_parts(state: Dict[str, torch.Tensor], model, parts: Sequence[str]) -> Dict[str, torch.Tensor]:
    """``state``'s tensors of the trained ``parts`` (top-level modules) and ``model``'s own
    tensors for the other trained parts; ``load_state_strict`` then checks completeness."""
    fresh = trained_state_dict(model)
    known = _parts_of(fresh)
    unknown = sorted(set(parts) - set(known))
    if unknown or not parts:
        raise ValueError(f"init parts {unknown or list(parts)}: choose from {known}")
    return {**{name: tensor for name, tensor in state.items() if _part(name) in parts},
            **{name: tensor for name, tensor in fresh.items() if _part(name) not in parts}}


class TrainStep(nn.Module):
    """The module DDP/FSDP wrap: its forward is one stage's differentiable pass."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, stage: str, batch: Dict[str, torch.Tensor]):
        if stage in TEXT_STAGES:
            return self.model.text_logits(batch["frames"], batch["instruction_ids"], batch["text_ids"])
        if stage == "context":  # the cache's UE pass (through the wrapper: FSDP gathers for it)
            return self.model.context_kv(batch["frames"], batch["instruction"],
                                         kv_heads=self.model.cfg.action.kv_heads)
        return self.model.ae(batch["context_kv"], batch["scene_input"], batch["target_points"], batch["speed"],
                             all_modes=True)


def set_trainable(model, stage: str, ae_parts: Optional[Sequence[str]] = None) -> None:
    """Freeze everything but the stage's part (projector, the AE, or the answer adapter);
    ``ae_parts`` narrows the AE stage to those AE submodules (names of ``model.ae``'s children)."""
    part = {"projector": model.projector, "ae": model.ae, "answer": model.answer_adapter}[stage]
    if part is None:
        raise ValueError(f"the {model.cfg.name} config has no answer adapter (decoder.answer_adapter_rank 0)")
    model.requires_grad_(False)
    for trained in ae_submodules(model, ae_parts) if stage == "ae" and ae_parts is not None else [part]:
        trained.requires_grad_(True)


def ae_submodules(model, names: Sequence[str]) -> List[nn.Module]:
    """The AE's child modules called ``names`` (those with parameters: waypoint_head, blocks, ...)."""
    children = {name: child for name, child in model.ae.named_children() if any(True for _ in child.parameters())}
    unknown = [name for name in names if name not in children]
    if unknown:
        raise ValueError(f"ae train parts {unknown}: choose from {list(children)}")
    return [children[name] for name in names]


@torch.no_grad()
def round_released_ue(model) -> None:
    """Round the UE tensors the release file stores (trained or from scratch; not the
    pretrained ones) to fp16 precision in place, keeping their dtype. Done when the
    projector stage ends: the AE then trains on contexts of exactly the UE the fp16 release
    ships, and the context caches of training, of the trainer's held-out evaluation and of
    `automot eval open-loop` on the release file are one (same UE digest)."""
    skip = model.pretrained_prefixes
    # The state dict's tensors (keep_vars: the live ones) are what the release stores; a
    # non-persistent buffer (e.g. rotary frequencies) is rebuilt at load and stays exact.
    for name, tensor in model.state_dict(keep_vars=True).items():
        if name.startswith(ae_cache.UE_PREFIXES) and not name.startswith(skip) and tensor.is_floating_point():
            tensor.data.copy_(tensor.data.to(torch.float16).to(tensor.dtype))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_lambda(warmup: int, total: int):
    """Linear warm-up from 10 %, then cosine decay to 10 % of the peak."""
    warmup = max(0, min(warmup, total // 10))

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return 0.1 + 0.9 * step / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def open_dataset(spec: str, config, split: str):
    """A collected dataset directory (DrivingDataset) or ``synthetic[:N]`` (in memory)."""
    if spec.startswith("synthetic"):
        from automot_ros.train.synthetic import SyntheticDriving

        n = int(spec.split(":", 1)[1]) if ":" in spec else 64
        seed = {"train": 0, "heldout": 1}.get(split, 2)
        return SyntheticDriving(config, samples=n if split == "train" else max(8, n // 4), seed=seed)
    from automot_ros.data.dataset import DrivingDataset

    return DrivingDataset(spec, split, model=config)


def has_split(spec: str, split: Optional[str]) -> bool:
    if not split:
        return False
    if spec.startswith("synthetic"):
        return True
    manifest = Path(spec) / "manifest.json"
    return manifest.is_file() and bool(json.loads(manifest.read_text()).get("splits", {}).get(split))


class CsvLog:
    """train_log.csv: one row per (stage, step); a resumed run drops rows at or after its
    start step of that stage, then appends."""

    def __init__(self, path: Path, stage: str, start_step: int, enabled: bool):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        rows = []
        if path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f)
                        if not (r["stage"] == stage and int(r["step"]) >= start_step)]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_COLUMNS).writerow(
                {k: (f"{v:.7g}" if isinstance(v, float) else v) for k, v in row.items() if k in LOG_COLUMNS})


def read_log(path: Path) -> List[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_log(csv_path: Path, png_path: Path) -> Optional[Path]:
    """Loss curves per stage (total and terms), next to the CSV."""
    rows = read_log(csv_path)
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if any(r["stage"] == s for r in rows)]
    fig, axes = plt.subplots(1, len(stages), figsize=(6.5 * len(stages), 4.2), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        part = [r for r in rows if r["stage"] == stage]
        steps = [int(r["step"]) for r in part]
        names = ("answer_ce",) if stage in TEXT_STAGES else ("loss", *AE_LOSS_NAMES)
        for name in names:
            values = [float(r[name]) if r.get(name) not in (None, "") else float("nan") for r in part]
            ax.plot(steps, values, label=name, linewidth=1.4 if name in ("loss", "answer_ce") else 0.9)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{stage} stage")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path


class Trainer:
    def __init__(self, opts: TrainOptions, env: Optional[DistEnv] = None, log=print):
        self.opts = opts
        self.env = env or init_distributed(opts.device)
        self._owns_env = env is None
        self.log = log if self.env.is_main else (lambda *a, **k: None)
        self.out = Path(opts.out)
        self.ckpt_dir = self.out / "checkpoints"
        if self.env.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        threads = opts.threads or max(1, (os.cpu_count() or 1) // max(1, self.env.local_world_size))
        torch.set_num_threads(threads)
        self.summary: Dict[str, object] = {"options": _jsonable(asdict(opts)), "world_size": self.env.world_size,
                                           "threads_per_process": threads, "stages": {}}
        self.state = self._read_state() if opts.resume else None
        self.model = self._build_model()
        self.cfg = self.model.cfg
        if opts.ae_train_parts is not None:
            ae_submodules(self.model, opts.ae_train_parts)  # a typo fails now, not after the context cache
        self.wrapped: Optional[nn.Module] = None
        self.steps_run = 0  # optimizer steps in this process's run (for stop_after)
        self.done: List[str] = []
        self.fsdp = use_fsdp(sum(p.numel() for p in self.model.parameters()), opts.fsdp) and self.env.distributed

    # ----- set-up ----------------------------------------------------------------------

    def _read_state(self) -> Optional[dict]:
        path = self.ckpt_dir / "last.state.pt"
        if not path.is_file():
            self.log(f"train: nothing to resume in {self.ckpt_dir}; starting fresh")
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} is not an {STATE_FORMAT} file")
        self.log(f"train: resuming {state['stage']} at step {state['step']} (done: {state['done'] or 'none'})")
        return state

    def _build_model(self, source: Optional[Path] = None):
        opts = self.opts
        cfg = load_model_config(opts.config)
        model = build_model(cfg, seed=opts.seed)
        parts = None  # all trained parts from the source
        if source is None and self.state is not None:
            source = self.ckpt_dir / "last.safetensors"
        elif source is None and opts.init:
            source, parts = Path(opts.init), opts.init_parts
        if source is not None:
            ckpt_cfg, state = read_checkpoint(source)
            # Only an answer adapter may be new (it starts untrained, which changes nothing),
            # and the AE's route targets may lie at other distances (the fine-tune adapts),
            # or the whole AE differ when it starts fresh.
            check_initializes(source, ckpt_cfg, cfg, parts)
            if parts is None and ckpt_cfg.decoder.answer_adapter_rank != cfg.decoder.answer_adapter_rank:
                parts = [part for part in _parts_of(trained_state_dict(model)) if part != "answer_adapter"]
                self.log(f"train: {source} has no answer adapter; it starts untrained")
            if ckpt_cfg.action.route_lookahead_m != cfg.action.route_lookahead_m:
                self.log(f"train: {source}'s AE took route targets {list(ckpt_cfg.action.route_lookahead_m)} m "
                         f"ahead; it now takes {list(cfg.action.route_lookahead_m)} m")
            if parts is None:
                self.log(f"train: trained parts from {source}")
            else:
                state = _with_fresh_parts(state, model, parts)
                self.log(f"train: {', '.join(parts)} from {source}; the other trained parts fresh (seed {opts.seed})")
            load_state_strict(model, state)
        return model.to(self.env.device)

    # ----- checkpoints -----------------------------------------------------------------

    def _trained_state(self) -> Dict[str, torch.Tensor]:
        if self.fsdp and self.wrapped is not None:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            full = get_model_state_dict(self.wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            full = {k[len("model."):]: v for k, v in full.items()}
            skip = self.model.pretrained_prefixes
            return {k: v for k, v in full.items() if not k.startswith(skip)}
        return trained_state_dict(self.model)

    def _optimizer_state(self, optimizer) -> dict:
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            return get_optimizer_state_dict(self.wrapped, optimizer,
                                            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return optimizer.state_dict()

    def save(self, stage: str, step: int, done: List[str], optimizer, scheduler) -> None:
        """checkpoints/last.safetensors (trained parts, fp32) + last.state.pt (the rest)."""
        weights = self._trained_state()
        opt_state = self._optimizer_state(optimizer) if optimizer is not None else None
        if self.env.is_main:
            save_trained(weights, self.cfg, self.ckpt_dir / "last.safetensors", extra={"stage": stage, "step": step})
            state = {"format": STATE_FORMAT, "stage": stage, "step": step, "done": list(done),
                     "optimizer": opt_state, "scheduler": scheduler.state_dict() if scheduler is not None else None,
                     "torch_rng": torch.get_rng_state(), "options": json.dumps(_jsonable(asdict(self.opts)))}
            tmp = self.ckpt_dir / "last.state.pt.tmp"
            torch.save(state, tmp)
            os.replace(tmp, self.ckpt_dir / "last.state.pt")
        barrier(self.env)

    # ----- the loop --------------------------------------------------------------------

    def _wrap(self, stage: str) -> nn.Module:
        """A fresh wrapper per stage (the trainable set changes between stages: DDP and
        FSDP2 fix the parameters they reduce when they wrap / first run). FSDP cannot
        unwrap, so a second FSDP stage starts from a model rebuilt from the checkpoint."""
        if self.fsdp:
            if self.wrapped is not None:
                self.model = self._build_model(self.ckpt_dir / "last.safetensors")
                set_trainable(self.model, stage, self.opts.ae_train_parts)
            self.wrapped = wrap_fsdp(TrainStep(self.model), self.env)
        else:
            self.wrapped = wrap_ddp(TrainStep(self.model), self.env)
        return self.wrapped

    def _stage_data(self, stage: str, split: str):
        # Every --data directory trains; an evaluation split is taken where a directory has it.
        specs = self.opts.data if split == self.opts.split else [s for s in self.opts.data if has_split(s, split)]
        datasets = [open_dataset(spec, self.cfg, split) for spec in specs]
        if stage in TEXT_STAGES:
            return ConcatDataset([QAPairs(d, self.model) for d in datasets]), QACollate(self.model.tokenizer.eos_ids[0])
        cache_root = Path(self.opts.cache_dir) if self.opts.cache_dir else self.out / "cache"
        wrapped, device = self.wrapped, self.env.device

        def through_wrapper(frames, instructions):
            return wrapped("context", {"frames": frames.to(device), "instruction": instructions})
        context_fn = through_wrapper if self.fsdp and wrapped is not None else None
        caches = [ae_cache.AECacheDataset(ae_cache.build_ae_cache(
            self.model, dataset, cache_root, self.env, self.opts.ue_period_s, batch=self.opts.cache_batch,
            progress=self.opts.progress, log=self.log, context_fn=context_fn), self.model.cfg.action.route_lookahead_m)
            for dataset in datasets]
        self.summary.setdefault("cache", {})[split] = [{"path": str(c.path), **c.meta} for c in caches]
        return ConcatDataset(caches), None

    def _step(self, stage: str, module: nn.Module, batch: dict, params, optimizer, scheduler, step: int,
              t_stage: float) -> dict:
        """One optimizer step; returns the log row (losses averaged over processes)."""
        t0 = time.perf_counter()
        batch = {k: (v.to(self.env.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        out = self._loss(stage, module, batch)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.opts.grad_clip)
        optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        names = list(out)
        values = all_reduce_mean(torch.stack([out[k].detach().float() for k in names]), self.env).tolist()
        row = dict(zip(names, values))
        row.update(stage=stage, step=step, lr=lr, grad_norm=float(grad_norm), s_per_step=time.perf_counter() - t0,
                   wall_s=time.perf_counter() - t_stage)
        return row

    def _loss(self, stage: str, module: nn.Module, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if stage in TEXT_STAGES:
            ce = answer_ce(module(stage, batch), batch["text_ids"], batch["loss_mask"])
            return {"loss": ce, "answer_ce": ce}
        return action_losses(Plan(*module("ae", batch)), batch, self.opts.ae_loss)

    def run_stage(self, stage: str, done: List[str]) -> None:
        opts, env = self.opts, self.env
        steps = opts.steps_for(stage)
        if opts.stop_after is not None and self.steps_run >= opts.stop_after:
            raise Stopped(f"stopped after {self.steps_run} steps (--stop-after), before the {stage} stage")
        set_trainable(self.model, stage, opts.ae_train_parts)
        module = self._wrap(stage)
        # Right after wrapping, before any forward: FSDP has replaced the parameters with
        # sharded ones (and after a forward the root's may be unsharded views for a while).
        params = [p for p in module.parameters() if p.requires_grad]
        data, collate = self._stage_data(stage, opts.split)
        self.model.train()  # the cache build ran the UE in eval mode
        optimizer = torch.optim.AdamW(params, lr=opts.lr_for(stage), betas=(0.9, 0.95),
                                      weight_decay=opts.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(opts.warmup_steps, steps))
        start = 0
        if self.state is not None and self.state["stage"] == stage and self.state["optimizer"] is not None:
            if self.fsdp:
                from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

                set_optimizer_state_dict(self.wrapped, optimizer, self.state["optimizer"],
                                         options=StateDictOptions(full_state_dict=True))
            else:
                optimizer.load_state_dict(self.state["optimizer"])
            scheduler.load_state_dict(self.state["scheduler"])
            start = int(self.state["step"])
        stage_seed = opts.seed * 1000 + STAGES.index(stage)
        batch_size = opts.batch_for(stage)
        sampler = GlobalBatchSampler(len(data), batch_size, stage_seed, env, start, steps)
        loader = DataLoader(data, batch_sampler=sampler, collate_fn=collate, num_workers=opts.workers,
                            persistent_workers=False)
        log = CsvLog(self.out / "train_log.csv", stage, start, env.is_main)
        parallel = "FSDP" if self.fsdp else "DDP" if env.distributed else "single process"
        self.log(f"train: {stage} stage, steps {start}..{steps}, global batch {batch_size} over {env.world_size} "
                 f"process(es) ({parallel}), {len(data)} items, lr {opts.lr_for(stage):g}, "
                 f"{sum(p.numel() for p in params):,} trainable parameters")
        bar = _progress(steps, start, f"{stage}", opts.progress and env.is_main)
        times, first, last = [], None, None
        t_stage = time.perf_counter()
        completed = start
        batches = iter(loader)
        try:
            for step in range(start, steps):
                if opts.stop_after is not None and self.steps_run >= opts.stop_after:
                    raise Stopped(f"stopped after {self.steps_run} steps (--stop-after)")
                row = self._step(stage, module, next(batches), params, optimizer, scheduler, step, t_stage)
                log.write(row)
                times.append(row["s_per_step"])
                first = first or row
                last = row
                self.steps_run += 1
                completed = step + 1
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                if (step + 1) % opts.ckpt_every == 0 and step + 1 < steps:
                    self.save(stage, step + 1, done, optimizer, scheduler)
        except (Stopped, KeyboardInterrupt):
            bar.close()
            self.save(stage, completed, done, optimizer, scheduler)
            self.log(f"train: {stage} stage stopped at step {completed}; checkpoint in {self.ckpt_dir} "
                     "(--resume continues)")
            raise
        bar.close()
        if stage == "projector":
            round_released_ue(self.model)
        done.append(stage)
        self.save(stage, steps, done, optimizer, scheduler)
        if env.is_main:
            shutil.copyfile(self.ckpt_dir / "last.safetensors", self.ckpt_dir / f"{stage}.safetensors")
        self.state = None  # later stages start fresh
        measured = times[1:] or times
        self.summary["stages"][stage] = {
            "steps": steps, "resumed_at": start, "items": len(data), "batch": batch_size,
            "s_per_step_median": round(statistics.median(measured), 4) if measured else None,
            "first": _row_summary(first), "last": _row_summary(last)}
        if stage == "ae" and self.opts.eval_split and any(has_split(d, self.opts.eval_split) for d in self.opts.data):
            self.summary["eval"] = self.evaluate(self.opts.eval_split)

    @torch.no_grad()
    def evaluate(self, split: str) -> dict:
        """AE losses and open-loop metrics on a split's cached contexts (every process
        computes the same; cheap next to training)."""
        from automot_ros.eval.open_loop import l2_at_horizons, l2_errors

        data, _ = self._stage_data("ae", split)
        loader = DataLoader(data, batch_size=32, shuffle=False)
        module = self.wrapped if self.fsdp and self.wrapped is not None else TrainStep(self.model)
        self.model.eval()
        sums: Dict[str, float] = {}
        preds, gts, n = [], [], 0
        for batch in loader:
            batch = {k: v.to(self.env.device) for k, v in batch.items()}
            plan = Plan(*module("ae", batch))
            out = action_losses(plan, batch, self.opts.ae_loss)
            b = batch["speed"].shape[0]
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * b
            preds.append(plan.waypoints.cpu().numpy())
            gts.append(batch["future_xy"].cpu().numpy())
            n += b
        self.model.train()
        result = {"split": split, "samples": n, **{k: round(v / max(1, n), 5) for k, v in sums.items()}}
        if n:
            result["l2_stp3_m"] = {k: round(float(v), 4) for k, v in
                                   l2_at_horizons(l2_errors(np.concatenate(preds), np.concatenate(gts)), "stp3").items()}
        self.log(f"train: {split} metrics: " + json.dumps(result))
        return result

    def run(self) -> dict:
        opts = self.opts
        requested = list(STAGES) if opts.stage == "all" else opts.stage.split(",")
        if not requested or any(s not in STAGES for s in requested):
            raise ValueError(f"stage must be all or one or more of {STAGES} (comma-separated), got {opts.stage!r}")
        stages = [s for s in STAGES if s in requested]  # always in training order
        done = self.done = list(self.state["done"]) if self.state is not None else []
        t0 = time.perf_counter()
        try:
            for stage in stages:
                if stage in done:
                    self.log(f"train: {stage} stage already done (resume)")
                    continue
                if stage == "answer" and self.model.answer_adapter is None and opts.stage == "all":
                    self.log(f"train: answer stage skipped: the {self.cfg.name} config has no answer adapter")
                    continue
                self.run_stage(stage, done)
            self.finish(time.perf_counter() - t0)
            # The main rank writes the outputs alone; the others wait for it here, so no rank
            # tears down its gloo connections while a peer still uses them (a rank that left
            # early was once seen to abort in teardown, under load).
            barrier(self.env)
        except Stopped as stop:
            self.summary["stopped"] = str(stop)
            if self.env.is_main:
                (self.out / "train_summary.json").write_text(json.dumps(self.summary, indent=1, default=str))
            barrier(self.env)  # --stop-after stops every rank at the same step (an interrupt is not caught)
        finally:
            if self._owns_env:
                shutdown(self.env)
        return self.summary

    def finish(self, wall_s: float) -> None:
        weights = self._trained_state()
        if not self.env.is_main:
            return
        save_trained(weights, self.cfg, self.out / "model.safetensors", extra={"stages": self.done})
        self.summary["model"] = str(self.out / "model.safetensors")
        if self.opts.release:
            release = export_release(self.out / "model.safetensors", self.out / f"{self.cfg.name}.fp16.safetensors",
                                     extra={"seed": self.opts.seed, "data": list(self.opts.data)})
            self.summary["release"] = {"path": str(release), "bytes": release.stat().st_size}
        csv_path = self.out / "train_log.csv"
        if csv_path.is_file():
            png = plot_log(csv_path, self.out / "train_log.png")
            self.summary["plot"] = str(png) if png else None
        self.summary["wall_s"] = round(wall_s, 1)
        (self.out / "train_summary.json").write_text(json.dumps(self.summary, indent=1, default=str))
        self.log(f"train: done in {wall_s:.0f} s; {self.out / 'model.safetensors'}"
                 + (f", release {self.summary['release']['path']} ({self.summary['release']['bytes'] / 1e6:.1f} MB)"
                    if self.opts.release else ""))


def _row_summary(row: Optional[dict]) -> Optional[dict]:
    if row is None:
        return None
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()
            if k not in ("stage", "wall_s")}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)


def train(opts: TrainOptions, env: Optional[DistEnv] = None, log=print) -> dict:
    """Run the stages of ``opts``; returns the summary (also OUT/train_summary.json)."""
    seed_everything(opts.seed)
    return Trainer(opts, env, log).run()


__all__ = ["LOG_COLUMNS", "STAGES", "TrainOptions", "TrainStep", "Trainer", "ae_submodules", "lr_lambda",
           "open_dataset", "plot_log", "read_log", "set_trainable", "train"]
