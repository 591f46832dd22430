"""`automot data collect`: drive MetaDrive's expert and record bags and training samples.

Per episode (one procedurally generated map and its traffic per seed), at the camera rate
(20 Hz, MetaDrive's step): the front camera image and the BEV raster (data/sensors.py),
ego odometry, lane, agent boxes. Written under OUT:

    manifest.json                 seeds, split (train / heldout), outcome and counts per episode,
                                  the simulator, sensor and sample settings
    episodes/seed_<seed>.npz      one episode (see EPISODE_ARRAYS)
    episodes/seed_<seed>.qa.jsonl its QA pairs, one JSON object per line
    bags/seed_<seed>/             rosbag2 (mcap, zstd chunks) readable by `automot replay`:
                                  the layout of data/drive_bag.py (front camera, BEV
                                  raster, odometry, latched route, agent boxes)

With ``perturbation`` (``--recovery``) the expert is pushed off its lane's center now and
then and steers back (data/recovery.py); samples whose labels hold the push are invalid.

Held-out split: the last round(heldout_fraction x N) seeds of the run (at least one when
N >= 2 and the fraction is > 0) are held out for evaluation; the manifest lists both sets.
Workers: ``workers`` > 1 runs episodes in that many spawned processes (one MetaDrive each).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from automot_ros.data.drive_bag import START_NS, DriveBagRecorder
from automot_ros.data.ego import EgoState
from automot_ros.data.recovery import LateralPerturbation
from automot_ros.data.samples import AGENT_FIELDS, EpisodeLog, build_samples, collate_agent_rows
from automot_ros.data.sensors import BevSpec, CameraSpec, render_bev, render_front
from automot_ros.data.synthetic_traffic import AgentBox

MANIFEST_VERSION = 1
EPISODE_ARRAYS = {
    "ego": "[T, 4] float64 x, y, yaw, speed per frame (world, m, rad, m/s)",
    "lane": "[T, 2] int64 lane index (0 = leftmost) and lane count of the ego's road",
    "agent_rows": f"[M, 8] float64 agent boxes {AGENT_FIELDS} (world)",
    "agent_offsets": "[T + 1] int64: frame k's agents are agent_rows[offsets[k]:offsets[k + 1]]",
    "route": "[R, 2] float64 route polyline (world)",
    "perturbed": "[T] bool (only with --recovery): the action after the frame held a lateral offset",
    "front_png / front_offsets": "PNG bytes of each frame's front image [H, W, 3] RGB",
    "bev_png / bev_offsets": "PNG bytes of each frame's BEV raster, stored [H, W, 3] (channels last)",
    "sample_*": "the samples (data.samples.build_samples), e.g. sample_future_xy [N, 6, 2]",
}


@dataclass
class CollectConfig:
    episodes: int
    out: str
    workers: int = 1
    seed_start: int = 0
    heldout_fraction: float = 0.1
    map_blocks: int = 3
    traffic_density: float = 0.08
    max_seconds: float = 90.0
    stride: int = 5  # one sample every 5 frames (0.25 s)
    bags: bool = True
    camera_size: Tuple[int, int] = (128, 256)  # (H, W) of the front image
    bev_size: Tuple[int, int] = (128, 256)
    bev_meters_per_px: float = 0.5
    perturbation: Optional[LateralPerturbation] = None  # recovery data (data/recovery.py)
    extra: Dict[str, object] = field(default_factory=dict)

    @property
    def seeds(self) -> List[int]:
        return list(range(self.seed_start, self.seed_start + self.episodes))

    def split(self) -> Dict[str, List[int]]:
        seeds = self.seeds
        n = round(self.heldout_fraction * len(seeds))
        if n == 0 and self.heldout_fraction > 0 and len(seeds) >= 2:
            n = 1
        n = min(n, len(seeds))
        return {"train": seeds[:len(seeds) - n], "heldout": seeds[len(seeds) - n:]}

    def camera(self) -> CameraSpec:
        return CameraSpec(height=int(self.camera_size[0]), width=int(self.camera_size[1]))

    def bev(self) -> BevSpec:
        h, w = (int(v) for v in self.bev_size)
        return BevSpec(height=h, width=w, meters_per_px=self.bev_meters_per_px, ego_row=h * 104.0 / 128.0)


def episode_name(seed: int) -> str:
    return f"seed_{seed:06d}"


def _encode_png(images: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    blobs = []
    for image in images:
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise RuntimeError("PNG encoding failed")
        blobs.append(buf.reshape(-1))
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    return (np.concatenate(blobs) if blobs else np.zeros(0, np.uint8)), offsets


_SIM = None


def _simulator(cfg: CollectConfig):
    global _SIM
    if _SIM is None:
        from automot_ros.sim.metadrive_env import MetaDriveConfig, MetaDriveSim, STEP_S

        horizon = int(math.ceil(cfg.max_seconds / STEP_S))
        _SIM = MetaDriveSim(MetaDriveConfig(map_blocks=cfg.map_blocks, traffic_density=cfg.traffic_density,
                                            horizon_steps=horizon, extra=dict(cfg.extra)))
    return _SIM


def _close_simulator() -> None:
    global _SIM
    if _SIM is not None:
        _SIM.close()
        _SIM = None


def _ego_state(state) -> EgoState:
    e = state.ego
    return EgoState(stamp_ns=START_NS + int(round(state.t_s * 1e9)), x=e.x, y=e.y, yaw=e.yaw,
                    speed_mps=max(e.speed_mps, 0.0))


def _agent_boxes(state) -> List[AgentBox]:
    return [AgentBox(int(i), "vehicle", *(float(v) for v in box[:2]), float(box[4]), float(box[2]), float(box[3]),
                     float(h)) for i, box, h in zip(state.agent_ids, state.agent_boxes, state.agent_heights)]


def record_episode(cfg: CollectConfig, seed: int) -> dict:
    """Run one expert episode and write its npz, QA and bag; returns its manifest entry."""
    from automot_ros.sim.metadrive_env import STEP_S, describe_outcome

    out = Path(cfg.out)
    name = episode_name(seed)
    wall0 = time.perf_counter()
    sim = _simulator(cfg)
    cam, bev_spec = cfg.camera(), cfg.bev()
    state = sim.reset(seed)
    lateral_offsets = cfg.perturbation.schedule(seed, sim.config.horizon_steps + 1, STEP_S) \
        if cfg.perturbation is not None else None
    bag = None
    if cfg.bags:
        bag_path = out / "bags" / name
        if bag_path.exists():
            import shutil
            shutil.rmtree(bag_path)
        description = {"what": "MetaDrive 0.4.3 physics-only expert (IDM) episode; images from automot's sensor model",
                       "seed": seed, "rate_hz": 1.0 / STEP_S, "camera_size": list(cfg.camera_size)}
        bag = DriveBagRecorder(bag_path, state.route, {"automot.simulated": "metadrive",
                                                      "automot.description": json.dumps(description)}, compress=True)
    ego, lane, agents, fronts, bevs = [], [], [], [], []
    timing = {"sim_s": 0.0, "render_s": 0.0, "bag_s": 0.0}
    ok = False
    try:
        while True:
            t0 = time.perf_counter()
            front = render_front(state, cam)
            bev = render_bev(state, bev_spec)
            t1 = time.perf_counter()
            timing["render_s"] += t1 - t0
            e = state.ego
            ego.append((e.x, e.y, e.yaw, e.speed_mps))
            lane.append((e.lane_index, e.lane_count))
            agents.append(np.concatenate([state.agent_ids[:, None].astype(np.float64), state.agent_boxes,
                                          state.agent_speeds[:, None], state.agent_heights[:, None]], axis=1))
            fronts.append(front)
            bevs.append(np.ascontiguousarray(bev.transpose(1, 2, 0)))
            if bag is not None:
                bag.frame(_ego_state(state), front, bev, _agent_boxes(state))
            t2 = time.perf_counter()
            timing["bag_s"] += t2 - t1
            if sim.done:
                break
            if lateral_offsets is not None:
                sim.set_expert_lateral_offset(lateral_offsets[len(ego) - 1])
            state = sim.step()
            timing["sim_s"] += time.perf_counter() - t2
        ok = True
    finally:
        if bag is not None:
            bag.close(ok)
    # The action after frame k held lateral_offsets[k]; none follows the last frame.
    perturbed = np.append(lateral_offsets[:len(ego) - 1] != 0.0, False) if lateral_offsets is not None else None
    rows, offsets = collate_agent_rows(agents)
    log = EpisodeLog(seed=seed, dt_s=STEP_S, ego=np.array(ego, dtype=np.float64),
                     lane=np.array(lane, dtype=np.int64), agent_rows=rows, agent_offsets=offsets,
                     route=np.asarray(state.route, dtype=np.float64), ego_size=(state.ego.length, state.ego.width),
                     outcome=dict(state.outcome),
                     perturbed=perturbed)
    t3 = time.perf_counter()
    samples, qa = write_episode(out, name, log, fronts, bevs, stride=cfg.stride)
    timing["samples_s"] = time.perf_counter() - t3
    wall = time.perf_counter() - wall0
    return {
        "seed": seed, "file": f"episodes/{name}.npz", "qa": f"episodes/{name}.qa.jsonl",
        "bag": f"bags/{name}" if cfg.bags else None, "frames": log.num_frames,
        "duration_s": round((log.num_frames - 1) * STEP_S, 3), "samples": int(len(samples["frame"])),
        "qa_pairs": len(qa), "valid_samples": int(samples["valid"].sum()), "result": describe_outcome(log.outcome),
        "expert_speed_kmh": round(float(sim.expert_speed_kmh), 1),
        "perturbed_s": round(float(perturbed.sum()) * STEP_S, 2) if perturbed is not None else None,
        "outcome": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in log.outcome.items()},
        "wall_s": round(wall, 3), "timing_s": {k: round(v, 3) for k, v in timing.items()},
    }


def write_episode(out: Path, name: str, log: EpisodeLog, fronts: Sequence[np.ndarray], bevs: Sequence[np.ndarray],
                  stride: int = 5):
    """Build the samples of ``log`` and write OUT/episodes/NAME.npz and NAME.qa.jsonl.

    fronts: per frame [H, W, 3] RGB; bevs: per frame [H, W, 3] (the raster channels last).
    Returns (sample arrays, QA records)."""
    if not (len(fronts) == len(bevs) == log.num_frames):
        raise ValueError(f"{len(fronts)} front images and {len(bevs)} BEV rasters for {log.num_frames} frames")
    samples, qa = build_samples(log, stride=stride)
    front_png, front_offsets = _encode_png([cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in fronts])
    bev_png, bev_offsets = _encode_png(bevs)  # channels stored as-is (not a color picture)
    folder = Path(out) / "episodes"
    folder.mkdir(parents=True, exist_ok=True)
    npz_path = folder / f"{name}.npz"
    tmp = folder / f"{name}.tmp.npz"
    np.savez(tmp, seed=np.int64(log.seed), dt_s=np.float64(log.dt_s), ego=log.ego, lane=log.lane,
             ego_size=np.array(log.ego_size), agent_rows=log.agent_rows, agent_offsets=log.agent_offsets,
             route=log.route, outcome_json=np.array(json.dumps(log.outcome)), front_png=front_png, front_offsets=front_offsets, bev_png=bev_png,
             bev_offsets=bev_offsets, **({"perturbed": log.perturbed} if log.perturbed is not None else {}),
             **{f"sample_{k}": v for k, v in samples.items()})
    os.replace(tmp, npz_path)
    with open(folder / f"{name}.qa.jsonl", "w") as f:
        for record in qa:
            f.write(json.dumps(record) + "\n")
    return samples, qa


def _worker(args) -> dict:
    cfg, seed = args
    try:
        return record_episode(cfg, seed)
    except Exception as error:  # noqa: BLE001 - one bad episode must not end the run
        return {"seed": seed, "error": f"{type(error).__name__}: {error}"}


def _init_worker() -> None:
    # Workers share the machine: one thread each for the few numpy/OpenCV calls.
    cv2.setNumThreads(1)


def collect(cfg: CollectConfig, log=print) -> dict:
    """Run the collection; returns (and writes) the manifest."""
    if cfg.episodes < 1:
        raise ValueError("episodes must be >= 1")
    if cfg.stride < 1:
        raise ValueError("stride must be >= 1")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = [(cfg, seed) for seed in cfg.seeds]
    entries: List[dict] = []

    def report(entry: dict) -> None:
        entries.append(entry)
        if "error" in entry:
            log(f"seed {entry['seed']}: FAILED: {entry['error']}")
        else:
            log(f"seed {entry['seed']}: {entry['result']}, {entry['frames']} frames ({entry['duration_s']:.1f} s), "
                f"{entry['samples']} samples, {entry['wall_s']:.1f} s")

    workers = max(1, min(cfg.workers, cfg.episodes))
    if workers == 1:
        _init_worker()
        try:
            for job in jobs:
                report(_worker(job))
        finally:
            _close_simulator()
    else:
        context = multiprocessing.get_context("spawn")  # MetaDrive/panda3d state must not be forked
        with context.Pool(workers, initializer=_init_worker, maxtasksperchild=None) as pool:
            for entry in pool.imap_unordered(_worker, jobs):
                report(entry)
            pool.close()
            pool.join()
    wall = time.perf_counter() - start
    entries.sort(key=lambda e: e["seed"])
    done = [e for e in entries if "error" not in e]
    split = cfg.split()
    for entry in entries:
        entry["split"] = "heldout" if entry["seed"] in split["heldout"] else "train"
    from automot_ros.sim.metadrive_env import STEP_S

    manifest = {
        "version": MANIFEST_VERSION,
        "sim": {"name": "metadrive", "version": "0.4.3", "mode": "physics-only", "expert": "IDMPolicy",
                "map_blocks": cfg.map_blocks, "traffic_density": cfg.traffic_density, "max_seconds": cfg.max_seconds,
                "recovery_perturbation": asdict(cfg.perturbation) if cfg.perturbation is not None else None},
        "camera_hz": 1.0 / STEP_S,
        "sample_stride": cfg.stride,
        "sensors": {"camera": asdict(cfg.camera()), "bev": asdict(cfg.bev())},
        "arrays": EPISODE_ARRAYS,
        "splits": {name: [s for s in seeds if any(e["seed"] == s and "error" not in e for e in entries)]
                   for name, seeds in split.items()},
        "episodes": entries,
        "summary": {
            "episodes": len(done), "failed": len(entries) - len(done), "workers": workers,
            "samples": sum(e["samples"] for e in done), "frames": sum(e["frames"] for e in done),
            "wall_s": round(wall, 2), "episodes_per_min": round(60.0 * len(done) / wall, 2) if wall > 0 else None,
            "results": {r: sum(1 for e in done if e["result"] == r) for r in sorted({e["result"] for e in done})},
        },
        "python": sys.version.split()[0],
    }
    path = out / "manifest.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)
    return manifest


__all__ = ["CollectConfig", "collect", "record_episode", "write_episode", "episode_name", "EPISODE_ARRAYS"]
