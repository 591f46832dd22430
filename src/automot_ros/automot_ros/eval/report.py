"""The replay report: metrics.json, frames.csv, report.md and PNG plots (no ROS).

Plots (matplotlib, Agg backend, imported only here):
- plots/l2_over_time.png: per-plan L2 at 1, 2 and 3 s (the per-step value, "uniad") over
  the bag's time, with the plans that had no trajectory marked;
- plots/latency_hist.png: Action Expert inference, end-to-end latency and context age;
- plots/bev_overlay.png: bird's-eye view of sampled plans: predicted waypoints and path
  against the ground-truth future, with the ego box and the agents at the plan's time.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from automot_ros.eval.open_loop import EGO_LENGTH_M, EGO_WIDTH_M, box_corners
from automot_ros.eval.runtime_stats import STATUS_NAMES
from automot_ros.eval.scoring import FrameTable

PLOTS = ("l2_over_time.png", "latency_hist.png", "bev_overlay.png")


def json_safe(value):
    """NaN/inf -> None and numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def fmt_horizons(values: Dict[str, float], digits: int = 2) -> str:
    return " / ".join(fmt(values.get(k), digits) for k in ("1s", "2s", "3s", "avg"))


def summary_lines(metrics: dict) -> List[str]:
    """The report's summary as text lines (printed by `automot replay`)."""
    info = metrics.get("replay", {})
    frames, rt = metrics["frames"], metrics["runtime"]
    label = " (SYNTHETIC bag)" if info.get("synthetic") else ""
    lines = [f"replay summary{label}: {info.get('input_bag', '')}",
             f"  model {rt['context']['model_id'] or 'n/a'}, backend {rt['backend'] or 'n/a'}, "
             f"replay rate {info.get('rate_text', 'n/a')}"]
    if info.get("bag_error"):
        lines.append(f"  BAG ERROR: {info['bag_error']}")
        lines.append("  (scored: the messages read before the damage)")
    coverage = frames["coverage"]
    lines.append(f"  frames: {frames['camera_frames_published']} camera frames published, {frames['plans']} plans "
                 f"({fmt(100 * coverage, 1) if coverage is not None else 'n/a'}% of frames planned), "
                 f"{frames['plans_with_trajectory']} with a trajectory, {frames['scored_l2']} scored")
    l2 = metrics["l2_m"]
    lines.append(f"  L2 [m] 1s/2s/3s/avg  stp3: {fmt_horizons(l2['stp3'])}   uniad: {fmt_horizons(l2['uniad'])}")
    col = metrics["collision_pct"]
    if col.get("available"):
        lines.append(f"  collision [%] 1s/2s/3s/avg  stp3: {fmt_horizons(col['stp3'])}   uniad: {fmt_horizons(col['uniad'])}"
                     f"   ({col['num_frames']} frames; {col['num_excluded']} excluded: ground truth collides)")
    else:
        lines.append(f"  collision: not scored ({col.get('reason')})")
    meta = metrics["meta_actions"]
    lines.append(f"  meta-action accuracy ({meta['num_frames']} plans x 3 horizons): lateral {fmt(meta['lateral'])}, "
                 f"longitudinal {fmt(meta['longitudinal'])}, joint {fmt(meta['joint'])}")
    inf, e2e, age = rt["inference_ms"], rt["end_to_end_ms"], rt["context_age_ms"]
    lines.append(f"  AE inference [ms] median {fmt(inf['median'], 1)} p90 {fmt(inf['p90'], 1)} | end-to-end [ms] "
                 f"median {fmt(e2e['median'], 1)} p90 {fmt(e2e['p90'], 1)} | context age [ms] median "
                 f"{fmt(age['median'], 0)} p90 {fmt(age['p90'], 0)}")
    ctx = rt["context"]
    lines.append(f"  plan rate {fmt(rt['plan_rate']['wall']['rate_hz'], 1)} Hz wall, "
                 f"{fmt(rt['plan_rate']['bag_time']['rate_hz'], 1)} Hz bag time | contexts {ctx['count']} at "
                 f"{fmt(ctx['rate_wall']['rate_hz'], 2)} Hz wall, prefill median {fmt(ctx['compute_ms']['median'], 0)} ms")
    lines.append("  status: " + ", ".join(f"{k} {v}" for k, v in rt["status_counts"].items()))
    return lines


def write_report(out_dir, metrics: dict, table: FrameTable, plots: bool = True) -> List[Path]:
    """Write metrics.json, frames.csv, report.md and (with plots) plots/*.png; the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "metrics.json", out / "frames.csv", out / "report.md"]
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    _write_csv(out / "frames.csv", table)
    plot_paths: List[Path] = []
    plot_error = None
    if plots:
        try:
            plot_paths = write_plots(out / "plots", table)
        except ImportError as error:  # matplotlib missing: the numbers still stand
            plot_error = f"plots skipped: {error}"
    (out / "report.md").write_text(_markdown(metrics, plot_paths, out, plot_error))
    return written + plot_paths


def _write_csv(path: Path, table: FrameTable) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_s", "status"] + [f"l2_{k}" for k in range(1, 7)] + [f"collision_{k}" for k in range(1, 7)]
                        + ["gt_collides", "inference_ms", "end_to_end_ms", "context_age_ms"]
                        + [f"{w}_{h}" for h in ("now", "1s", "2s") for w in ("pred_lat", "pred_lon", "gt_lat", "gt_lon")])
        for k in range(len(table.t_s)):
            row = [f"{table.t_s[k]:.3f}", STATUS_NAMES[table.status[k]]]
            row += ["" if not np.isfinite(v) else f"{v:.4f}" for v in table.l2[k]]
            row += ["" if not np.isfinite(v) else int(v) for v in table.collision[k]]
            row += [int(table.gt_collides[k])]
            row += ["" if not np.isfinite(v) else f"{v:.2f}"
                    for v in (table.inference_ms[k], table.end_to_end_ms[k], table.context_age_ms[k])]
            for h in range(3):
                row += [int(table.decisions[k, h, 0]), int(table.decisions[k, h, 1]),
                        int(table.labels[k, h, 0]), int(table.labels[k, h, 1])]
            writer.writerow(row)


def _markdown(metrics: dict, plot_paths: List[Path], out: Path, plot_error: Optional[str]) -> str:
    info = metrics.get("replay", {})
    l2, col, meta, rt, frames = (metrics["l2_m"], metrics["collision_pct"], metrics["meta_actions"],
                                 metrics["runtime"], metrics["frames"])
    md = ["# automot replay report", ""]
    if info.get("synthetic"):
        md += ["> **SYNTHETIC data.** The input bag was written by `automot data synth-bag` from a kinematic "
               "scenario. Its numbers exercise the pipeline; they say nothing about driving quality.", ""]
    md += ["> Unless a trained checkpoint was configured, the Action Expert is untrained: its plans show the "
           "plumbing, not a driving policy.", ""]
    if info.get("bag_error"):
        md += [f"**Bag error:** {info['bag_error']}", "",
               "Everything below is scored from the messages read before the damage.", ""]
    md += ["## Summary", "", "```", *summary_lines(metrics), "```", ""]
    md += ["## Run", "", "| | |", "| --- | --- |"]
    for key in ("input_bag", "storage", "rate_text", "stack", "model", "namespace", "wall_s", "messages_published",
                "recorded_bag"):
        if key in info:
            md.append(f"| {key} | `{info[key]}` |")
    for warning in info.get("warnings", []):
        md.append(f"| warning | {warning} |")
    md += ["", "## Open-loop L2 [m]", "",
           f"Against the future ego trajectory rebuilt from the bag's odometry in each plan's frame (base_link at "
           f"the plan's stamp). Scored: {l2['num_frames']} plans with a trajectory and a complete 3 s future.", "",
           "| convention | 1 s | 2 s | 3 s | avg |", "| --- | --- | --- | --- | --- |"]
    for conv, text in metrics["conventions"].items():
        md.append(f"| {conv} | " + " | ".join(fmt(l2[conv][k], 3) for k in ("1s", "2s", "3s", "avg")) + " |")
    md += ["", *[f"- {conv}: {text}" for conv, text in metrics["conventions"].items()], ""]
    md += ["## Collision rate [%]", ""]
    if col.get("available"):
        md += [f"Ego box {info.get('ego_box', '4.084 x 1.85 m')} at each predicted waypoint (heading from consecutive "
               f"points) against the agent boxes nearest in time (within {info.get('box_tolerance_s', 0.1)} s). "
               f"Scored: {col['num_frames']} plans; excluded because the ground truth itself collides: "
               f"{col['num_excluded']}; without boxes at every step: {col['num_without_boxes']}.", "",
               "| convention | 1 s | 2 s | 3 s | avg |", "| --- | --- | --- | --- | --- |"]
        for conv in metrics["conventions"]:
            md.append(f"| {conv} | " + " | ".join(fmt(col[conv][k], 2) for k in ("1s", "2s", "3s", "avg")) + " |")
    else:
        md.append(f"Not scored: {col.get('reason')}.")
    md += ["", "## Meta-actions", "",
           f"Accuracy of the predicted (lateral, longitudinal) decisions for now, +1 s, +2 s against labels derived "
           f"from the ground-truth future ({meta['num_frames']} plans).", "",
           "| horizon | lateral | longitudinal | joint |", "| --- | --- | --- | --- |",
           f"| all | {fmt(meta['lateral'])} | {fmt(meta['longitudinal'])} | {fmt(meta['joint'])} |"]
    for horizon, values in meta["per_horizon"].items():
        md.append(f"| {horizon} | {fmt(values['lateral'])} | {fmt(values['longitudinal'])} | {fmt(values['joint'])} |")
    th = meta["label_thresholds"]
    md += ["", "Labels (eval/meta_actions.py): each decision's 1 s window starts at its horizon; the ground-truth "
           f"future is resampled every {th['resample_dt_s']} s with the odometry's measured speed. "
           f"Longitudinal: stop if the speed at the window's end is below {th['stop_speed_mps']} m/s, else "
           f"accelerate/decelerate if the mean acceleration exceeds +/-{th['accelerate_decelerate_mps2']} m/s^2, "
           f"else keep. Lateral: left/right for a heading change of at least {th['turn_deg']:.0f} deg, slight "
           f"left/right for at least {th['slight_turn_deg']:.0f} deg or a sideways offset of at least "
           f"{th['slight_lateral_offset_m']} m, else straight.", "",
           "| | label counts | prediction counts |", "| --- | --- | --- |"]
    for axis in ("lateral", "longitudinal"):
        md.append(f"| {axis} | {_counts(meta['label_distribution'][axis])} | "
                  f"{_counts(meta['prediction_distribution'][axis])} |")
    md += ["", "## Runtime", "", "| quantity | count | mean | median | p90 | p99 | max |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, key in (("AE inference [ms]", "inference_ms"), ("end-to-end latency [ms]", "end_to_end_ms"),
                      ("context age [ms]", "context_age_ms")):
        s = rt[key]
        md.append(f"| {name} | {s['count']} | " + " | ".join(fmt(s[k], 1) for k in ("mean", "median", "p90", "p99", "max"))
                  + " |")
    s = rt["context"]["compute_ms"]
    md.append(f"| UE prefill [ms] | {s['count']} | " + " | ".join(fmt(s[k], 1) for k in ("mean", "median", "p90", "p99", "max"))
              + " |")
    pr = rt["plan_rate"]
    md += ["", f"- plan rate: {fmt(pr['wall']['rate_hz'], 2)} Hz wall clock, {fmt(pr['bag_time']['rate_hz'], 2)} Hz in "
           f"bag time (camera: {fmt((rt['camera_rate_bag_time'] or {}).get('rate_hz'), 2)} Hz bag time); "
           f"period p99 {fmt(pr['wall']['period_ms']['p99'], 0)} ms, max {fmt(pr['wall']['period_ms']['max'], 0)} ms wall",
           f"- contexts: {rt['context']['count']}, {fmt(rt['context']['rate_wall']['rate_hz'], 2)} Hz wall clock, "
           f"model `{rt['context']['model_id']}`",
           f"- plans for published camera frames: {frames['plans_for_published_frames']} of "
           f"{frames['camera_frames_published']}",
           "- end-to-end latency: wall time the plan was recorded minus wall time its camera frame was published",
           "- status: " + ", ".join(f"{k} {v}" for k, v in rt["status_counts"].items()), ""]
    if plot_paths:
        md += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in plot_paths] + [""]
    elif plot_error:
        md += [f"_{plot_error}_", ""]
    md += ["Per-plan values: `frames.csv`; every number: `metrics.json`.", ""]
    return "\n".join(md)


def _counts(counts: Dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items() if n) or "none"


def latency_histogram(ax, values: np.ndarray, color: str = "tab:blue") -> None:
    """A histogram of finite values [N] with its median and p90 marked, or "no data"."""
    if values.size:
        ax.hist(values, bins=min(40, max(5, values.size // 4)), color=color, alpha=0.8)
        ax.axvline(np.median(values), color="k", lw=1, label=f"median {np.median(values):.1f}")
        ax.axvline(np.percentile(values, 90), color="k", lw=1, ls="--", label=f"p90 {np.percentile(values, 90):.1f}")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def write_plots(plot_dir: Path, table: FrameTable) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = [plot_dir / name for name in PLOTS]

    fig, ax = plt.subplots(figsize=(9, 3.6))
    for step, color in ((2, "tab:green"), (4, "tab:orange"), (6, "tab:red")):
        ax.plot(table.t_s, table.l2[:, step - 1], ".-", ms=3, lw=0.8, color=color, label=f"L2 at {step * 0.5:g} s")
    no_traj = ~np.isfinite(table.pred_xy).all(axis=(1, 2))
    if no_traj.any():
        ax.plot(table.t_s[no_traj], np.zeros(no_traj.sum()), "|", color="gray", label="no trajectory")
    ax.set_xlabel("bag time [s]")
    ax.set_ylabel("L2 [m]")
    ax.set_title("Per-plan L2 against the odometry's future (per-step value at 1/2/3 s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    planned = np.isfinite(table.pred_xy).all(axis=(1, 2))  # plans with a trajectory, as in metrics.json
    for ax, values, title in ((axes[0], table.inference_ms[planned], "AE inference [ms]"),
                              (axes[1], table.end_to_end_ms[planned], "end-to-end latency [ms]"),
                              (axes[2], table.context_age_ms, "context age [ms]")):
        latency_histogram(ax, values[np.isfinite(values)])
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("plans")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    scored = np.flatnonzero(np.isfinite(table.l2).all(axis=1))
    picks = scored[np.linspace(0, len(scored) - 1, min(6, len(scored))).round().astype(int)] if len(scored) else []
    fig, axes = plt.subplots(1, max(1, len(picks)), figsize=(2.6 * max(1, len(picks)), 4.6), squeeze=False)
    for ax, k in zip(axes[0], picks):
        # Bird's-eye view, x forward up, y left to the left: plot (-y, x).
        for box in (table.agents_now[k] if table.agents_now[k] is not None else []):
            corners = box_corners(box)
            ax.fill(-corners[:, 1], corners[:, 0], color="0.6", alpha=0.7)
        ego = box_corners(np.array([0.0, 0.0, EGO_LENGTH_M, EGO_WIDTH_M, 0.0]))
        ax.fill(-ego[:, 1], ego[:, 0], color="tab:purple", alpha=0.5)
        gt, pred = table.gt_xy[k], table.pred_xy[k]
        ax.plot(-np.r_[0, gt[:, 1]], np.r_[0, gt[:, 0]], "o-", color="tab:green", ms=3, label="ground truth")
        if len(table.paths[k]):
            ax.plot(-table.paths[k][:, 1], table.paths[k][:, 0], "--", color="tab:cyan", lw=1, label="predicted path")
        ax.plot(-np.r_[0, pred[:, 1]], np.r_[0, pred[:, 0]], "s-", color="tab:blue", ms=3, label="predicted")
        reach = max(10.0, float(np.nanmax(np.abs(np.r_[gt.ravel(), pred.ravel()]))) + 3.0)
        ax.set_xlim(-reach / 2, reach / 2)
        ax.set_ylim(-5.0, reach)
        ax.set_aspect("equal")
        ax.set_title(f"t={table.t_s[k]:.1f}s L2@3s={table.l2[k, 5]:.2f}m", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if len(picks):
        axes[0][0].legend(fontsize=6, loc="lower left")
    else:
        axes[0][0].text(0.5, 0.5, "no scored plan", ha="center", va="center", transform=axes[0][0].transAxes)
    fig.suptitle("Bird's-eye view (ego frame at the plan's stamp, x forward up, left to the left; gray: agents)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
