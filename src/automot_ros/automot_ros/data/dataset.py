"""Collected episodes (`automot data collect`) as model-ready training samples.

``DrivingDataset(root, split, model=...)`` yields one dict per sample:

| key | value |
| --- | --- |
| frames | uint8 [4, 3, H, W]: front frames 0.25 s apart, oldest first, at the model's vision.image_size |
| instruction | str: model.prompt.format_instruction(the route 10 m / 20 m ahead, speed) |
| scene_input | uint8 [3, Hs, Ws]: the BEV raster (data/sensors.py) at action.scene.image_size |
| target_points | float32 [K, 2]: the route at the AE's lookahead distances (ego frame; default 10 m / 20 m, else the model's action.route_lookahead_m) |
| speed | float32 []: m/s |
| future_xy | float32 [6, 2]: waypoints at 0.5 ... 3 s (ego frame) |
| future_speed | float32 [6] |
| path_xy | float32 [20, 2]: path points at 1 ... 20 m |
| labels | int64 [3, 2]: (lateral, longitudinal) for now, +1 s, +2 s |
| future_agents | float32 [6, 8, 5]: at each waypoint time, the FUTURE_AGENT_SLOTS agent boxes (cx, cy, length, width, yaw; ego frame) nearest the expert's waypoint, NaN rows where there are fewer (the AE's agent-clearance loss) |
| qa | list of {kind, question, answer, fields} (data.qa) |
| seed, frame | int: where the sample comes from |

``collate`` stacks a batch (lists for instruction and qa). Images are stored at full
collection size (PNG) and resized at load time (cv2 INTER_AREA, data.image.to_model_frame).
Samples of failed episodes whose future runs into the failure are left out unless
``include_invalid`` (data.samples: ``valid``). ``agent_boxes_future(i)`` gives the ground-truth
agent boxes at the 6 waypoint times (for eval.open_loop's collision rate); ``future_agents``
keeps the nearest of them in a fixed-size array a batch can stack. ``image_free_fields(i)``
gives an item's IMAGE_FREE_FIELDS (target_points, speed and the training targets) without
decoding its images.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from automot_ros.data.image import to_model_frame
from automot_ros.data.route import DEFAULT_LOOKAHEAD_M
from automot_ros.data.samples import EpisodeLog
from automot_ros.eval.open_loop import FUTURE_TIMES_S
from automot_ros.model.prompt import format_instruction

# Agents kept per waypoint time in an item's future_agents: more than ever come within reach
# of a 3 s plan at the collection's traffic density.
FUTURE_AGENT_SLOTS = 8
# The item keys that come without decoding images: the AE's route and speed inputs and
# everything that only supervises training.
IMAGE_FREE_FIELDS = ("target_points", "speed", "future_xy", "future_speed", "path_xy", "labels", "future_agents")


@dataclass
class Episode:
    """One stored episode: the log, its PNG-encoded images, its samples and QA."""

    path: Path
    log: EpisodeLog
    arrays: Dict[str, np.ndarray]
    qa: Dict[int, List[dict]]

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Episode":
        path = Path(path)
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        log = EpisodeLog(seed=int(arrays["seed"]), dt_s=float(arrays["dt_s"]), ego=arrays["ego"], lane=arrays["lane"],
                         agent_rows=arrays["agent_rows"], agent_offsets=arrays["agent_offsets"], route=arrays["route"],
                         ego_size=tuple(float(v) for v in arrays["ego_size"]),
                         outcome=json.loads(str(arrays["outcome_json"])) if "outcome_json" in arrays else {},
                         perturbed=arrays.get("perturbed"))
        qa: Dict[int, List[dict]] = {}
        qa_path = path.with_name(path.name[:-len(".npz")] + ".qa.jsonl")
        if qa_path.is_file():
            with open(qa_path) as f:
                for line in f:
                    record = json.loads(line)
                    qa.setdefault(int(record["sample"]), []).append(
                        {k: record[k] for k in ("kind", "question", "answer", "fields")})
        return cls(path, log, arrays, qa)

    @property
    def num_samples(self) -> int:
        return len(self.arrays["sample_frame"])

    def _png(self, name: str, k: int) -> np.ndarray:
        blob, offsets = self.arrays[f"{name}_png"], self.arrays[f"{name}_offsets"]
        image = cv2.imdecode(blob[offsets[k]:offsets[k + 1]], cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"{self.path}: frame {k} of {name} does not decode")
        return image

    def front(self, k: int) -> np.ndarray:
        """Frame k's front image [H, W, 3] RGB uint8."""
        return cv2.cvtColor(self._png("front", k), cv2.COLOR_BGR2RGB)

    def bev(self, k: int) -> np.ndarray:
        """Frame k's BEV raster [3, H, W] uint8."""
        return np.ascontiguousarray(self._png("bev", k).transpose(2, 0, 1))


def _model_inputs(model) -> Tuple[Optional[Tuple[int, int]], Optional[Tuple[int, int]], Tuple[float, ...]]:
    """(frame size, scene size, route lookahead) of a model config; (None, None, the
    collection's 10 m / 20 m) without one."""
    if model is None:
        return None, None, DEFAULT_LOOKAHEAD_M
    from automot_ros.model.config import load_model_config

    cfg = load_model_config(model)
    return tuple(cfg.vision.image_size), tuple(cfg.action.scene.image_size), cfg.action.route_lookahead_m


class DrivingDataset(Dataset):
    """Samples of the episodes of ``split`` ("train", "heldout" or "all") under ``root``.

    ``model``: a model config name/path/ModelConfig whose input sizes the images are resized
    to and whose route lookahead the target points follow; or give ``frame_size`` /
    ``scene_size`` (H, W) directly; None keeps the stored size and the 10 m / 20 m targets.
    ``cache_episodes``: how many decoded episodes stay in memory (PNG bytes, a few MB each).
    """

    def __init__(self, root: Union[str, Path], split: str = "train", model=None,
                 frame_size: Optional[Sequence[int]] = None, scene_size: Optional[Sequence[int]] = None,
                 include_invalid: bool = False, cache_episodes: int = 16):
        self.root = Path(root)
        self.manifest = json.loads((self.root / "manifest.json").read_text())
        if split == "all":
            seeds = [s for seeds in self.manifest["splits"].values() for s in seeds]
        elif split in self.manifest["splits"]:
            seeds = self.manifest["splits"][split]
        else:
            raise ValueError(f"split must be 'all' or one of {sorted(self.manifest['splits'])}, got {split!r}")
        by_seed = {e["seed"]: e for e in self.manifest["episodes"] if "error" not in e}
        self.episodes = [by_seed[s] for s in sorted(seeds)]
        model_frame, model_scene, self.route_lookahead_m = _model_inputs(model)
        self.frame_size = tuple(frame_size) if frame_size else model_frame
        self.scene_size = tuple(scene_size) if scene_size else model_scene
        self.cache_episodes = max(1, cache_episodes)
        self._cache: "OrderedDict[int, Episode]" = OrderedDict()
        self.index: List[Tuple[int, int]] = []
        for e, entry in enumerate(self.episodes):
            with np.load(self.root / entry["file"]) as z:
                valid = z["sample_valid"] if "sample_valid" in z.files else np.ones(len(z["sample_frame"]), bool)
            self.index.extend((e, int(n)) for n in np.flatnonzero(valid | include_invalid))

    def __len__(self) -> int:
        return len(self.index)

    def episode(self, e: int) -> Episode:
        if e in self._cache:
            self._cache.move_to_end(e)
            return self._cache[e]
        episode = Episode.load(self.root / self.episodes[e]["file"])
        self._cache[e] = episode
        while len(self._cache) > self.cache_episodes:
            self._cache.popitem(last=False)
        return episode

    def _resize(self, chw_or_hwc: np.ndarray, size, hwc: bool) -> np.ndarray:
        image = chw_or_hwc if hwc else chw_or_hwc.transpose(1, 2, 0)
        h, w = size if size else image.shape[:2]
        return to_model_frame(np.ascontiguousarray(image), int(h), int(w))

    def __getitem__(self, i: int) -> dict:
        e, n = self.index[i]
        ep = self.episode(e)
        a = ep.arrays
        frames = np.stack([self._resize(ep.front(int(k)), self.frame_size, hwc=True) for k in a["sample_history"][n]])
        scene = self._resize(ep.bev(int(a["sample_frame"][n])), self.scene_size, hwc=False)
        return {
            "frames": torch.from_numpy(frames),
            # The UE's instruction: the targets stored at collection (10 m and 20 m).
            "instruction": format_instruction(a["sample_target_points"][n], float(a["sample_speed"][n])),
            "scene_input": torch.from_numpy(scene),
            **self.image_free_fields(i),
            "qa": ep.qa.get(n, []),
            "seed": ep.log.seed,
            "frame": int(a["sample_frame"][n]),
        }

    def image_free_fields(self, i: int) -> dict:
        """The item's IMAGE_FREE_FIELDS, without decoding its images."""
        e, n = self.index[i]
        ep = self.episode(e)
        a = ep.arrays
        targets = ep.log.target_points(int(a["sample_frame"][n]), self.route_lookahead_m)
        return {
            "target_points": torch.from_numpy(targets.astype(np.float32)),
            "speed": torch.tensor(float(a["sample_speed"][n]), dtype=torch.float32),
            "future_xy": torch.from_numpy(a["sample_future_xy"][n].astype(np.float32)),
            "future_speed": torch.from_numpy(a["sample_future_speed"][n].astype(np.float32)),
            "path_xy": torch.from_numpy(a["sample_path_xy"][n].astype(np.float32)),
            "labels": torch.from_numpy(a["sample_labels"][n].astype(np.int64)),
            "future_agents": torch.from_numpy(nearest_agents(self.agent_boxes_future(i), a["sample_future_xy"][n])),
        }

    def agent_boxes_future(self, i: int) -> List[np.ndarray]:
        """Ground-truth agent boxes [A, 5] at +0.5 ... +3 s, in the sample's ego frame."""
        e, n = self.index[i]
        ep = self.episode(e)
        k = int(ep.arrays["sample_frame"][n])
        return [ep.log.agent_boxes_ego(k, at=k + ep.log.frames_per(t)) for t in FUTURE_TIMES_S]


def nearest_agents(boxes_per_step: Sequence[np.ndarray], anchors_xy: np.ndarray,
                   slots: int = FUTURE_AGENT_SLOTS) -> np.ndarray:
    """Per step k, the ``slots`` boxes of boxes_per_step[k] [A_k, 5] whose centers are nearest
    anchors_xy[k] [2] (the expert's waypoint), nearest first -> float32 [K, slots, 5], NaN
    rows where a step has fewer agents."""
    out = np.full((len(boxes_per_step), slots, 5), np.nan, dtype=np.float32)
    for k, boxes in enumerate(boxes_per_step):
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 5)
        order = np.argsort(np.linalg.norm(boxes[:, :2] - anchors_xy[k], axis=1), kind="stable")[:slots]
        out[k, :len(order)] = boxes[order]
    return out


def collate(batch: List[dict]) -> dict:
    """Stack tensors; keep instruction and qa as lists, seed and frame as int64 tensors."""
    out = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif key in ("seed", "frame"):
            out[key] = torch.tensor(values, dtype=torch.int64)
        else:
            out[key] = values
    return out


__all__ = ["DrivingDataset", "Episode", "FUTURE_AGENT_SLOTS", "IMAGE_FREE_FIELDS", "collate", "nearest_agents"]
