"""The closed-loop report: metrics.json, episodes.csv, report.md and PNG plots (no ROS).

Plots (matplotlib, Agg backend, imported only here):
- plots/route_completion.png: route completion per episode (seed) and policy, the
  episode's end marked (arrived, crash, off-road, timeout, blocked);
- plots/trajectories.png: bird's-eye view of a few episodes: lane surfaces, the route and
  every policy's driven path, with where each ended;
- plots/speed.png: speed over time in the same episodes;
- plots/latency_hist.png: the stack's UE prefill and AE inference times (wall clock) and
  the context age (sim time) per model policy.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from automot_ros.eval.closed_loop import (COMFORT_BOUNDS, COMFORT_RATE_HZ, COMFORT_WINDOW, ROUTE_END_M, EpisodeLog,
                                         ok_context_ages, policy_summary)
from automot_ros.eval.report import fmt, json_safe, latency_histogram

PLOTS = ("route_completion.png", "trajectories.png", "speed.png", "latency_hist.png")
RESULT_MARKERS = {"arrived": ("o", "tab:green"), "crash": ("X", "tab:red"), "out_of_road": ("v", "tab:orange"),
                  "timeout": ("s", "tab:gray"), "blocked": ("P", "tab:purple"), "interrupted": ("*", "k")}
DEFINITIONS = [
    "success: the destination reached with no collision and without leaving the road (MetaDrive ends an episode "
    "at its first collision or when it leaves the road)",
    "route completion: 1 when arrived, else MetaDrive's travelled / total route length; mean over episodes",
    "collision: crash with a vehicle, object, building or pedestrian; off-road: out_of_road or onto the sidewalk",
    "timeout: the time limit (--max-seconds); blocked: moved less than 1 m in --stuck-seconds (ends the episode)",
    f"comfort: fraction of {COMFORT_WINDOW}-frame windows at {COMFORT_RATE_HZ:g} Hz (2 s) in which every "
    "Savitzky-Golay filtered signal stays inside the Bench2Drive bounds: "
    + ", ".join(f"{k} ({lo:g}, {hi:g})" for k, (lo, hi) in COMFORT_BOUNDS.items()),
    "AE inference: DrivingPlan.inference_ms; UE prefill: ContextInfo.compute_ms (wall clock, this machine); "
    "context age: plan stamp - context stamp (simulated time, set by the lockstep schedule), over the plans with "
    "status OK (an episode starts with STALE_CONTEXT plans: the previous episode's context; the car brakes)",
    f"route offset: the ego's signed lateral distance from the route (left +), mean |offset| over the episode "
    f"and mean offset over the route's last {ROUTE_END_M:g} m (a lane toward the center line there misses "
    "MetaDrive's arrival check); policy rows average the episodes",
    "wall s per sim s: wall time of the episode loop (rendering, DDS, waiting for the stack) per simulated second",
]


def load_policy_logs(out_dir, policies: Sequence[str]) -> Dict[str, List[EpisodeLog]]:
    """Episode logs under OUT/<policy>/episodes/, by policy (seed order)."""
    logs = {}
    for policy in policies:
        files = sorted((Path(out_dir) / policy / "episodes").glob("seed_*.npz"))
        logs[policy] = [EpisodeLog.load(f) for f in files]
    return logs


def build_metrics(logs: Dict[str, List[EpisodeLog]], run: dict) -> dict:
    """metrics.json's content: the run's settings and a summary per policy (interrupted
    episodes are listed but not scored)."""
    policies = {}
    for policy, episodes in logs.items():
        scored = [e for e in episodes if e.result != "interrupted"]
        summary = policy_summary(scored)
        summary["interrupted_seeds"] = [e.seed for e in episodes if e.result == "interrupted"]
        summary["kind"] = "model" if any(np.isfinite(e.plan_ms).any() for e in episodes) else "baseline"
        policies[policy] = summary
    return {"run": run, "policies": policies, "definitions": DEFINITIONS}


def write_closed_loop_report(out_dir, logs: Dict[str, List[EpisodeLog]], run: dict, plots: bool = True) -> dict:
    out = Path(out_dir)
    metrics = build_metrics(logs, run)
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    _write_csv(out / "episodes.csv", metrics)
    plot_paths, plot_error = [], None
    if plots:
        try:
            plot_paths = write_plots(out / "plots", logs, metrics)
        except ImportError as error:
            plot_error = f"plots skipped: {error}"
    (out / "report.md").write_text(_markdown(metrics, plot_paths, out, plot_error))
    return metrics


def _write_csv(path: Path, metrics: dict) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["policy", "seed", "result", "success", "route_completion", "collision", "off_road",
                         "duration_s", "distance_m", "mean_speed_mps", "comfort", "comfort_windows",
                         "route_offset_mean_abs_m", "route_offset_end_m", "ae_ms_median", "ue_ms_median",
                         "context_age_ms_median", "wall_s"])
        for policy, summary in metrics["policies"].items():
            for m in summary.get("per_episode", []):
                writer.writerow([policy, m["seed"], m["result"], int(m["success"]), f"{m['route_completion']:.4f}",
                                 int(m["collision"]), int(m["off_road"]), f"{m['duration_s']:.2f}",
                                 f"{m['distance_m']:.1f}", f"{m['mean_speed_mps']:.2f}",
                                 fmt(m["comfort"]["fraction"], 3), m["comfort"]["windows"],
                                 fmt(m["route_offset_m"]["mean_abs"], 2), fmt(m["route_offset_m"]["end"], 2),
                                 fmt(m["ae_ms"]["median"], 1), fmt(m["ue_ms"]["median"], 1),
                                 fmt(m["context_age_ms"]["median"], 0), fmt(m["wall_s"], 1)])


def summary_lines(metrics: dict) -> List[str]:
    lines = []
    for policy, s in metrics["policies"].items():
        if not s.get("episodes"):
            lines.append(f"  {policy:22s} no episodes")
            continue
        lo, hi = s["success_rate_ci95"]
        line = (f"  {policy:22s} {s['episodes']:3d} ep | success {100 * s['success_rate']:5.1f}% "
                f"[{100 * lo:.0f}-{100 * hi:.0f}] | route completion {100 * s['route_completion']:5.1f}% | "
                f"collision {100 * s['collision_rate']:4.0f}% | off-road {100 * s['off_road_rate']:4.0f}% | "
                f"comfort {_pct(s['comfort']['fraction'])} | route offset {fmt(s['route_offset_m']['mean_abs'], 2)} m, "
                f"last {ROUTE_END_M:g} m {fmt(s['route_offset_m']['end'], 2)} m")
        if s["kind"] == "model":
            line += (f" | AE {fmt(s['ae_ms']['median'], 1)} ms, UE {fmt(s['ue_ms']['median'], 0)} ms, context age "
                     f"{fmt(s['context_age_ms']['median'], 0)} ms (median) | {fmt(s['wall_per_sim_s'], 2)} s wall/sim s")
        lines.append(line)
    return lines


def _pct(value, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else \
        f"{100 * value:.{digits}f}%"


def _markdown(metrics: dict, plot_paths: List[Path], out: Path, plot_error: Optional[str]) -> str:
    run = metrics["run"]
    md = ["# automot closed-loop report", ""]
    if not run.get("checkpoint"):
        md += ["> **Untrained model.** No checkpoint was given: the Action Expert's plans are noise, so its rows "
               "show that the loop works (lockstep, latencies, context age), not how the model drives.", ""]
    md += ["## Summary", "", "```", *summary_lines(metrics), "```", ""]
    md += ["## Run", "", "| | |", "| --- | --- |"]
    for key in ("simulator", "model", "checkpoint", "backend", "device", "num_threads", "modes", "seeds", "seed_source", "settings",
                "ue_rate_hz_async", "camera_hz", "wall_s", "started", "python"):
        if key in run:
            value = run[key]
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
            md.append(f"| {key} | `{value}` |")
    md += ["", "## Policies", "",
           "| policy | episodes | success rate [95% CI] | route completion | collision | off-road | timeout | "
           "blocked | comfort | collisions/km | mean speed [m/s] |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for policy, s in metrics["policies"].items():
        if not s.get("episodes"):
            continue
        lo, hi = s["success_rate_ci95"]
        md.append(f"| {policy} | {s['episodes']} | {_pct(s['success_rate'])} [{_pct(lo, 0)}, {_pct(hi, 0)}] | "
                  f"{_pct(s['route_completion'])} | {_pct(s['collision_rate'])} | {_pct(s['off_road_rate'])} | "
                  f"{_pct(s['timeout_rate'])} | {_pct(s['blocked_rate'])} | {_pct(s['comfort']['fraction'])} | "
                  f"{fmt(s['collisions_per_km'], 2)} | {fmt(s['mean_speed_mps'], 2)} |")
    model_policies = {p: s for p, s in metrics["policies"].items() if s.get("kind") == "model" and s.get("episodes")}
    if model_policies:
        md += ["", "## Stack runtime", "",
               "| policy | quantity | count | median | p90 | p99 | max |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for policy, s in model_policies.items():
            for label, key in (("AE inference [ms, wall]", "ae_ms"), ("UE prefill [ms, wall]", "ue_ms"),
                               ("context age [ms, sim]", "context_age_ms"),
                               ("frame -> plan [ms, wall]", "plan_wait_ms")):
                v = s[key]
                md.append(f"| {policy} | {label} | {v['count']} | "
                          + " | ".join(fmt(v[k], 1) for k in ("median", "p90", "p99", "max")) + " |")
            md.append(f"| {policy} | wall s per sim s | | {fmt(s['wall_per_sim_s'], 2)} | | | |")
        md += ["", "Plan status counts: " + "; ".join(
            f"{p}: " + ", ".join(f"{k} {v}" for k, v in s["plan_status_counts"].items() if v)
            + f", steps without a plan {s['steps_without_plan']}" for p, s in model_policies.items())]
    md += ["", "## Comfort violations", "", "Fraction of windows in which each signal left its bound.", "",
           "| policy | windows | " + " | ".join(COMFORT_BOUNDS) + " |",
           "| --- | --- | " + " | ".join("---" for _ in COMFORT_BOUNDS) + " |"]
    for policy, s in metrics["policies"].items():
        if s.get("episodes"):
            md.append(f"| {policy} | {s['comfort']['windows']} | "
                      + " | ".join(_pct(s["comfort"]["violations"][k]) for k in COMFORT_BOUNDS) + " |")
    for policy, s in metrics["policies"].items():
        if not s.get("episodes"):
            continue
        md += ["", f"### {policy}: episodes", "",
               "| seed | result | route completion | duration [s] | distance [m] | mean speed [m/s] | comfort | "
               f"route offset, mean \\|.\\| / last {ROUTE_END_M:g} m [m] | AE [ms] | UE [ms] | context age [ms] | "
               "wall [s] |",
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for m in s["per_episode"]:
            md.append(f"| {m['seed']} | {m['result']} | {_pct(m['route_completion'])} | {m['duration_s']:.1f} | "
                      f"{m['distance_m']:.0f} | {m['mean_speed_mps']:.1f} | {_pct(m['comfort']['fraction'])} | "
                      f"{fmt(m['route_offset_m']['mean_abs'], 2)} / {fmt(m['route_offset_m']['end'], 2)} | "
                      f"{fmt(m['ae_ms']['median'], 1)} | {fmt(m['ue_ms']['median'], 0)} | "
                      f"{fmt(m['context_age_ms']['median'], 0)} | {fmt(m['wall_s'], 1)} |")
        if s.get("interrupted_seeds"):
            md.append(f"\nInterrupted (not scored): seeds {s['interrupted_seeds']}")
    md += ["", "## Definitions", "", *[f"- {d}" for d in DEFINITIONS], ""]
    if plot_paths:
        md += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in plot_paths] + [""]
    elif plot_error:
        md += [f"_{plot_error}_", ""]
    md += ["Per-episode values: `episodes.csv`; every number: `metrics.json`; per-step logs: "
           "`<policy>/episodes/seed_*.npz` (eval/closed_loop.py EpisodeLog).", ""]
    return "\n".join(md)


def write_plots(plot_dir: Path, logs: Dict[str, List[EpisodeLog]], metrics: dict, max_bev: int = 4) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = [plot_dir / name for name in PLOTS]
    policies = [p for p in logs if logs[p]]
    colors = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(policies)}
    seeds = sorted({e.seed for p in policies for e in logs[p]})
    by_seed = {p: {e.seed: e for e in logs[p]} for p in policies}

    # Route completion per episode.
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(seeds) * max(1, len(policies)) + 2), 3.8))
    width = 0.8 / max(1, len(policies))
    for i, policy in enumerate(policies):
        per = {m["seed"]: m for m in metrics["policies"][policy].get("per_episode", [])}
        xs = [k + (i - (len(policies) - 1) / 2) * width for k, seed in enumerate(seeds) if seed in per]
        ys = [per[seed]["route_completion"] for seed in seeds if seed in per]
        ax.bar(xs, ys, width=width, color=colors[policy], label=policy)
        for x, seed in zip(xs, [s for s in seeds if s in per]):
            marker, color = RESULT_MARKERS[per[seed]["result"]]
            ax.plot(x, per[seed]["route_completion"] + 0.04, marker, color=color, ms=5)
    ax.set_xticks(range(len(seeds)))
    ax.set_xticklabels([str(s) for s in seeds], rotation=60, fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("seed")
    ax.set_ylabel("route completion")
    ax.set_title("Route completion per episode (marker: " + ", ".join(
        f"{m[0]} {r}" for r, m in RESULT_MARKERS.items() if r != "interrupted") + ")", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    # Bird's-eye view of a few episodes.
    shown = seeds[:max_bev]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(4.2 * max(1, len(shown)), 4.4), squeeze=False)
    for ax, seed in zip(axes[0], shown):
        reference = next(by_seed[p][seed] for p in policies if seed in by_seed[p])
        if reference.road_points is not None and len(reference.road_offsets) > 1:
            for a, b in zip(reference.road_offsets[:-1], reference.road_offsets[1:]):
                poly = reference.road_points[a:b]
                ax.fill(poly[:, 0], poly[:, 1], color="0.88", lw=0)
        ax.plot(reference.route[:, 0], reference.route[:, 1], "--", color="0.45", lw=1, label="route")
        ax.plot(*reference.route[-1], "*", color="k", ms=9)
        for policy in policies:
            episode = by_seed[policy].get(seed)
            if episode is None:
                continue
            ax.plot(episode.ego[:, 0], episode.ego[:, 1], "-", color=colors[policy], lw=1.4, label=policy)
            marker, color = RESULT_MARKERS[episode.result]
            ax.plot(episode.ego[-1, 0], episode.ego[-1, 1], marker, color=color, ms=8, mec="k", mew=0.5)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"seed {seed}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6, loc="best")
    fig.suptitle("Driven paths (world frame, m; gray: lanes, dashed: route, star: destination)", fontsize=9)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    # Speed over time.
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(4.2 * max(1, len(shown)), 3.0), squeeze=False)
    for ax, seed in zip(axes[0], shown):
        for policy in policies:
            episode = by_seed[policy].get(seed)
            if episode is not None:
                ax.plot(episode.t_s, episode.ego[:, 3], color=colors[policy], lw=1, label=policy)
        ax.set_title(f"seed {seed}", fontsize=9)
        ax.set_xlabel("t [s]", fontsize=8)
        ax.set_ylabel("speed [m/s]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)

    # Latencies and context age of the model policies.
    model = [p for p in policies if metrics["policies"][p].get("kind") == "model"]
    rows = max(1, len(model))
    fig, axes = plt.subplots(rows, 3, figsize=(11, 2.8 * rows), squeeze=False)
    for r in range(rows):
        policy = model[r] if model else None
        values = ([], [], [])
        if policy:
            values = (np.concatenate([e.context_compute_ms for e in logs[policy]]),
                      np.concatenate([e.plan_ms[np.isfinite(e.plan_ms)] for e in logs[policy]]),
                      np.concatenate([ok_context_ages(e) for e in logs[policy]]))
        for ax, data, title in zip(axes[r], values, ("UE prefill [ms, wall]", "AE inference [ms, wall]",
                                                     "context age [ms, sim time]")):
            latency_histogram(ax, np.asarray(data, dtype=float), colors.get(policy, "tab:blue"))
            ax.set_title(f"{policy or 'no model policy'}: {title}", fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[3], dpi=110)
    plt.close(fig)
    return paths


__all__ = ["write_closed_loop_report", "load_policy_logs", "build_metrics", "summary_lines", "PLOTS"]
