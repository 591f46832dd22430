"""Thin adapters from a driving dataset to the two stages' batches, and the global-batch
sampler that makes single- and multi-process runs see the same samples.

A driving dataset is ``automot_ros.data.dataset.DrivingDataset`` (collected episodes) or
``train.synthetic.SyntheticDriving`` (in memory, for tests and CI): items are dicts with
frames, instruction, scene_input, target_points, speed, future_xy, future_speed, path_xy,
labels, qa, seed, frame (see data/dataset.py). ``sample_meta`` / ``sample_qa`` read an item's
episode, frame and QA pairs without decoding its images.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Sequence, Tuple

import torch
from torch.utils.data import Dataset, Sampler

from automot_ros.train.distributed import DistEnv, local_slice

DEFAULT_CAMERA_HZ = 20.0


def sample_meta(dataset, i: int) -> Tuple[int, int]:
    """(episode seed, frame index) of item i."""
    if hasattr(dataset, "meta"):
        return dataset.meta(i)
    e, n = dataset.index[i]  # DrivingDataset: no image decoding
    episode = dataset.episode(e)
    return int(episode.log.seed), int(episode.arrays["sample_frame"][n])


def sample_qa(dataset, i: int) -> List[dict]:
    """Item i's QA pairs ({kind, question, answer, fields})."""
    if hasattr(dataset, "qa"):
        return dataset.qa(i)
    e, n = dataset.index[i]
    return dataset.episode(e).qa.get(n, [])


def camera_hz(dataset) -> float:
    manifest = getattr(dataset, "manifest", None) or {}
    return float(manifest.get("camera_hz", DEFAULT_CAMERA_HZ))


class QAPairs(Dataset):
    """Projector-stage items: one per (sample, QA pair) -> frames uint8 [T, 3, H, W],
    instruction_ids int64 [L], text_ids int64 [N] (``AutoMoT.qa_token_ids``), loss_mask
    [N] (1 on the answer and its end-of-turn token)."""

    def __init__(self, dataset, model, kinds: Sequence[str] = ()):
        self.dataset, self.model = dataset, model
        self.pairs: List[Tuple[int, int]] = []
        for i in range(len(dataset)):
            for j, record in enumerate(sample_qa(dataset, i)):
                if not kinds or record["kind"] in kinds:
                    self.pairs.append((i, j))
        if not self.pairs:
            raise ValueError("the dataset has no QA pairs for the projector stage")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> Dict[str, torch.Tensor]:
        i, j = self.pairs[k]
        item = self.dataset[i]
        record = item["qa"][j]
        ids, start = self.model.qa_token_ids(record["question"], record["answer"])
        mask = torch.zeros(len(ids), dtype=torch.float32)
        mask[start:] = 1.0
        return {"frames": item["frames"], "instruction_ids": self.model.instruction_ids(item["instruction"])[0],
                "text_ids": torch.tensor(ids, dtype=torch.long), "loss_mask": mask}


class QACollate:
    """Stack QA items; text right-padded with ``pad_id`` (mask 0 there)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: List[dict]) -> Dict[str, torch.Tensor]:
        n = max(len(it["text_ids"]) for it in items)
        text = torch.full((len(items), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(items), n)
        for b, it in enumerate(items):
            text[b, :len(it["text_ids"])] = it["text_ids"]
            mask[b, :len(it["loss_mask"])] = it["loss_mask"]
        return {"frames": torch.stack([it["frames"] for it in items]),
                "instruction_ids": torch.stack([it["instruction_ids"] for it in items]),
                "text_ids": text, "loss_mask": mask}


def global_batch_indices(n: int, global_batch: int, step: int, seed: int) -> List[int]:
    """The dataset indices of global batch ``step``: consecutive slices of a stream of
    per-epoch permutations (epoch e shuffled with seed (seed, e)); any process computes
    any step's batch, so a resumed or multi-process run sees the same batches."""
    out = []
    for p in range(step * global_batch, (step + 1) * global_batch):
        epoch, k = divmod(p, n)
        out.append(_permutation(n, seed, epoch)[k])
    return out


_PERM_CACHE: Dict[Tuple[int, int, int], List[int]] = {}


def _permutation(n: int, seed: int, epoch: int) -> List[int]:
    key = (n, seed, epoch)
    if key not in _PERM_CACHE:
        if len(_PERM_CACHE) > 4:
            _PERM_CACHE.clear()
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        _PERM_CACHE[key] = torch.randperm(n, generator=g).tolist()
    return _PERM_CACHE[key]


class GlobalBatchSampler(Sampler):
    """Batches for steps [start, stop): this rank's slice of each global batch."""

    def __init__(self, n: int, global_batch: int, seed: int, env: DistEnv, start: int, stop: int):
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.part = local_slice(global_batch, env)
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[List[int]]:
        for step in range(self.start, self.stop):
            yield global_batch_indices(self.n, self.global_batch, step, self.seed)[self.part]


__all__ = ["GlobalBatchSampler", "QACollate", "QAPairs", "camera_hz", "global_batch_indices", "sample_meta",
           "sample_qa"]
