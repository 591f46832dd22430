"""`automot eval open-loop`: a trained model against constant velocity on the held-out
episodes of one or more collections (pooled), open loop (no ROS; the samples of
`automot data collect`).

Each sample is planned as the asynchronous stack plans it: the Action Expert reads the UE
context of the newest tick at or before the sample (ticks every ``ue_period_s``, as in
deployment: train/cache.py, whose cache it builds or reuses), its BEV raster, route targets
and speed. Constant velocity: the ego keeps its speed straight ahead (waypoint k at
(v t_k, 0), the path straight on). Both are scored against the expert's future on L2 and
collision rate at 1, 2, 3 s in both conventions (eval/open_loop.py; agents from the
episode's ground truth at the waypoint times), their paths against the driven path (L2
along it, and how much less or more than the expert they turn: ``path_scores``; the
controller steers by the path), and the model's current meta-action against the labels. A
few events decide collision rates, so the model's minus constant velocity's comes with an
episode-bootstrap interval (``episode_bootstrap_difference``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch

from automot_ros.eval.open_loop import (
    CONVENTIONS,
    FUTURE_TIMES_S,
    HORIZON_STEPS,
    TURN_OFFSET_M,
    CollisionHits,
    collision_hits,
    episode_bootstrap_difference,
    l2_at_horizons,
    l2_errors,
    path_scores,
)
from automot_ros.data.samples import PATH_POINTS, PATH_SPACING_M
from automot_ros.eval.report import fmt, fmt_horizons, json_safe

POLICIES = ("model", "constant-velocity")


@dataclass
class OpenLoopOptions:
    data: Sequence[str]  # collection directories, scored as one pool
    out: str
    split: str = "heldout"
    model: str = "smol"
    checkpoint: str = "auto"
    cache_dir: Optional[str] = None  # default OUT/cache
    ue_period_s: float = 0.5
    batch: int = 32
    threads: int = 0  # 0: torch's default
    plots: bool = True


def constant_velocity_waypoints(speed_mps: np.ndarray) -> np.ndarray:
    """[N, 6, 2]: straight ahead at the current speed [N]."""
    t = np.asarray(FUTURE_TIMES_S)
    xy = np.zeros((len(speed_mps), len(t), 2))
    xy[:, :, 0] = np.asarray(speed_mps, dtype=float)[:, None] * t[None]
    return xy


def straight_path(count: int, points: int = PATH_POINTS, spacing_m: float = PATH_SPACING_M) -> np.ndarray:
    """[count, points, 2]: the path straight ahead (constant velocity's)."""
    xy = np.zeros((count, points, 2))
    xy[:, :, 0] = spacing_m * np.arange(1, points + 1)
    return xy


def score_waypoints(pred_xy: np.ndarray, gt_xy: np.ndarray, hits: CollisionHits) -> dict:
    """L2 [m] and collision rate [%] (from ``collision_hits`` of the same predictions) in both
    conventions for predictions [N, 6, 2]."""
    per_step = l2_errors(pred_xy, gt_xy)
    return {"l2_m": {c: l2_at_horizons(per_step, c) for c in CONVENTIONS},
            "collision_pct": {c: hits.at_horizons(c) for c in CONVENTIONS}}


def collision_difference(model: CollisionHits, baseline: CollisionHits, episode: np.ndarray,
                         horizon: str = "avg") -> dict:
    """Per convention: the model's collision rate at ``horizon`` minus the baseline's
    [percentage points] on the same frames, with its episode-bootstrap 95 % interval."""
    return {c: episode_bootstrap_difference(model.frame_scores(c, horizon), baseline.frame_scores(c, horizon), episode)
            for c in CONVENTIONS}


def open_evaluation(model_name: str, checkpoint_setting: str, out: str, threads: int):
    """(model, its checkpoint path or None, the created output directory) for an evaluation run."""
    from automot_ros.model import build_model
    from automot_ros.model.checkpoint import resolve_checkpoint

    if threads > 0:
        torch.set_num_threads(threads)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = resolve_checkpoint(model_name, checkpoint_setting)
    model = build_model(model_name, checkpoint=checkpoint)
    return model, checkpoint, out_dir


@torch.no_grad()
def run_open_loop(opts: OpenLoopOptions, log=print) -> dict:
    t0 = time.perf_counter()
    model, checkpoint, out = open_evaluation(opts.model, opts.checkpoint, opts.out, opts.threads)
    log(f"open-loop: model {model.model_id} ({checkpoint or 'untrained'}) on the {opts.split!r} split of "
        f"{', '.join(opts.data)}")
    pools = [_plan_collection(model, root, opts, out, log) for root in opts.data]
    pred_xy, gt_xy, pred_path, gt_path, speed, correct, age_s = (
        np.concatenate([p[k] for p in pools])
        for k in ("pred_xy", "gt_xy", "pred_path", "gt_path", "speed", "correct", "age_s"))
    agents = [boxes for p in pools for boxes in p["agents"]]
    # One index over the pool's episodes (the bootstrap resamples them).
    offsets = np.cumsum([0] + [p["episodes"] for p in pools[:-1]])
    episode = np.concatenate([p["episode"] + offset for p, offset in zip(pools, offsets)])
    cv_xy = constant_velocity_waypoints(speed)
    hits = {"model": collision_hits(pred_xy, agents, gt_xy), "constant-velocity": collision_hits(cv_xy, agents, gt_xy)}
    metrics = {
        "data": [str(root) for root in opts.data], "split": opts.split, "samples": len(pred_xy),
        "episodes": sum(p["episodes"] for p in pools), "model": opts.model, "model_id": model.model_id,
        "checkpoint": str(checkpoint) if checkpoint else None, "ue_period_s": opts.ue_period_s,
        "mean_context_age_s": float(age_s.mean()) if len(age_s) else None,
        "policies": {"model": {**score_waypoints(pred_xy, gt_xy, hits["model"]),
                               "path": path_scores(pred_path, gt_path, PATH_SPACING_M)},
                     "constant-velocity": {**score_waypoints(cv_xy, gt_xy, hits["constant-velocity"]),
                                           "path": path_scores(straight_path(len(gt_path)), gt_path, PATH_SPACING_M)}},
        "collision_model_minus_cv_pct": collision_difference(hits["model"], hits["constant-velocity"], episode),
        # The conventions differ only in how the horizons are combined: the differences at
        # each horizon show where a difference of the averages comes from.
        "collision_model_minus_cv_pct_by_horizon": {
            h: collision_difference(hits["model"], hits["constant-velocity"], episode, h) for h in HORIZON_STEPS},
        "meta_action_accuracy_now": {"lateral": float(correct[:, 0].mean()), "longitudinal": float(correct[:, 1].mean())},
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=1))
    plot = _plot(out / "l2_collision.png", metrics) if opts.plots else None
    (out / "report.md").write_text(_markdown(metrics, plot))
    for line in summary_lines(metrics):
        log(line)
    return metrics


def _plan_collection(model, root: str, opts: OpenLoopOptions, out: Path, log) -> dict:
    """Plan every sample of one collection's split: the model's waypoints and path, the
    expert's future and driven path, speed, agents, episode index and whether the current
    meta-action is right."""
    from torch.utils.data import DataLoader

    from automot_ros.data.dataset import DrivingDataset
    from automot_ros.model.plan import Plan
    from automot_ros.train.cache import AECacheDataset, build_ae_cache

    dataset = DrivingDataset(root, opts.split, model=model.cfg)
    cache = build_ae_cache(model, dataset, opts.cache_dir or out / "cache", ue_period_s=opts.ue_period_s,
                           progress=True, log=log)
    items = AECacheDataset(cache, model.cfg.action.route_lookahead_m)
    preds, paths, correct = [], [], []
    for batch in DataLoader(items, batch_size=opts.batch, shuffle=False):
        plan = Plan(*model.ae(batch["context_kv"].float(), batch["scene_input"], batch["target_points"],
                              batch["speed"]))
        preds.append(plan.waypoints.numpy())
        paths.append(plan.path.numpy())
        now = torch.stack([plan.lateral_logits[:, 0].argmax(-1), plan.longitudinal_logits[:, 0].argmax(-1)], dim=-1)
        correct.append((now == batch["labels"][:, 0]).numpy())
    return {"pred_xy": np.concatenate(preds).astype(float),
            "gt_xy": items.field("future_xy").astype(float),
            "pred_path": np.concatenate(paths).astype(float),
            "gt_path": items.field("path_xy").astype(float),
            "speed": items.field("speed").astype(float),
            "agents": [dataset.agent_boxes_future(i) for i in range(len(dataset))],
            "episode": np.array([e for e, _ in dataset.index], dtype=int),
            "episodes": len(dataset.episodes), "correct": np.concatenate(correct),
            "age_s": np.asarray(items.age_s, dtype=float)}


def summary_lines(metrics: dict) -> List[str]:
    lines = [f"open-loop on {metrics['samples']} {metrics['split']} samples ({metrics['episodes']} episodes), "
             f"model {metrics['model_id']}; values 1s / 2s / 3s / avg"]
    for name, scores in metrics["policies"].items():
        for c in CONVENTIONS:
            lines.append(f"  {name:18s} {c:5s} L2 {fmt_horizons(scores['l2_m'][c])} m | "
                         f"collision {fmt_horizons(scores['collision_pct'][c])} %")
        lines.append(f"  {name:18s} path  {_path_text(scores['path'])}")
    lines += [f"  collision avg, model - constant velocity ({c}): {_difference_text(d)}"
              for c, d in metrics["collision_model_minus_cv_pct"].items()]
    lines += [f"  by horizon ({c}): {text}" for c, text in _by_horizon_texts(metrics).items()]
    acc = metrics["meta_action_accuracy_now"]
    lines.append(f"  model meta-action accuracy (now): lateral {acc['lateral']:.1%}, longitudinal {acc['longitudinal']:.1%}")
    return lines


def _path_text(path: dict) -> str:
    l2 = path["l2_m"]
    return (f"L2 {' / '.join(fmt(v) for v in l2.values())} m at {' / '.join(l2)}; in turns "
            f"{fmt(path['turn_lateral_m'])} m toward the turn at the end ({path['turn_frames']} frames)")


def _difference_text(d: dict) -> str:
    return (f"{d['difference']:+.2f} points, 95 % interval [{d['ci95_low']:+.2f}, {d['ci95_high']:+.2f}] "
            f"(resampling the {d['episodes']} episodes)")


def _by_horizon_texts(metrics: dict) -> dict:
    """Per convention, the model-minus-constant-velocity collision difference at each horizon."""
    by_horizon = metrics["collision_model_minus_cv_pct_by_horizon"]
    return {c: "; ".join(f"{h} {d[c]['difference']:+.2f} [{d[c]['ci95_low']:+.2f}, {d[c]['ci95_high']:+.2f}]"
                         for h, d in by_horizon.items()) for c in CONVENTIONS}


def _markdown(metrics: dict, plot: Optional[Path]) -> str:
    rows = []
    for name, scores in metrics["policies"].items():
        for c in CONVENTIONS:
            col = scores["collision_pct"][c]
            rows.append(f"| {name} | {c} | {fmt_horizons(scores['l2_m'][c])} | {fmt_horizons(col)} | {col['num_frames']} |")
    acc = metrics["meta_action_accuracy_now"]
    text = [
        "# Open-loop evaluation on held-out episodes", "",
        f"Data: {', '.join(f'`{root}`' for root in metrics['data'])}, split `{metrics['split']}`: {metrics['samples']} samples from "
        f"{metrics['episodes']} episodes. Model `{metrics['model_id']}` (checkpoint `{metrics['checkpoint']}`).",
        f"Contexts as in deployment: a UE tick every {metrics['ue_period_s']} s, mean context age "
        f"{metrics['mean_context_age_s']:.2f} s. Constant velocity: straight ahead at the current speed.", "",
        "Values at 1 s / 2 s / 3 s / average. stp3: mean over the steps up to the horizon; uniad: the "
        "value at the horizon (eval/open_loop.py). Collision: the planned ego box overlaps a ground-truth agent "
        "box at a waypoint time; frames where the expert's own future overlaps are left out.", "",
        "| policy | convention | L2 [m] | collision [%] | frames scored |", "| --- | --- | --- | --- | --- |",
        *rows, "",
        f"Path (the {PATH_POINTS} points {PATH_SPACING_M:g} m apart the controller steers by) against the driven "
        f"path: L2 along it, and in the turns (the driven path ends at least {TURN_OFFSET_M:g} m to one side) "
        "the lateral error of its end toward the turn (negative: turns less than the expert, i.e. wide).", "",
        *[f"- {name}: {_path_text(scores['path'])}" for name, scores in metrics["policies"].items()], "",
        "Collision rate (avg) of the model minus constant velocity on the same frames, in percentage points: "
        "a few events decide these rates and the frames of one episode are not independent, so the "
        "interval comes from resampling whole episodes.", "",
        *[f"- {c}: {_difference_text(d)}" for c, d in metrics["collision_model_minus_cv_pct"].items()], "",
        "The same at each horizon, points [95 % interval]:", "",
        *[f"- {c}: {text}" for c, text in _by_horizon_texts(metrics).items()], "",
        f"Model meta-action accuracy (now): lateral {acc['lateral']:.1%}, longitudinal {acc['longitudinal']:.1%}.",
    ]
    if plot is not None:
        text += ["", f"![L2 and collision rate]({plot.name})"]
    return "\n".join(text) + "\n"


def _plot(path: Path, metrics: dict) -> Optional[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    horizons = tuple(HORIZON_STEPS)
    x = np.arange(len(horizons))
    for ax, key, unit in ((axes[0], "l2_m", "L2 [m]"), (axes[1], "collision_pct", "collision rate [%]")):
        for k, name in enumerate(POLICIES):
            values = [metrics["policies"][name][key]["stp3"][h] for h in horizons]
            ax.bar(x + (k - 0.5) * 0.38, values, width=0.38, label=name)
        ax.set_xticks(x, horizons)
        ax.set_ylabel(unit + " (stp3)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"open loop, {metrics['samples']} held-out samples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["OpenLoopOptions", "collision_difference", "constant_velocity_waypoints", "open_evaluation", "run_open_loop",
           "score_waypoints", "straight_path", "summary_lines"]
