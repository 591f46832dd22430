"""Training data plumbing: the deployment pairing of samples with UE ticks, the global
batches every process agrees on, the projector stage's QA items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from automot_ros.train.cache import plan_ticks
from automot_ros.train.data import GlobalBatchSampler, QACollate, QAPairs, global_batch_indices, sample_meta
from automot_ros.train.distributed import DistEnv, local_slice
from automot_ros.train.synthetic import SyntheticDriving


def test_samples_pair_with_the_newest_tick_at_or_before_them():
    # Two episodes sampled every 5 frames at 20 Hz (0.25 s), listed out of order.
    metas = [(1, 15 + 5 * k) for k in range(5)] + [(0, 15 + 5 * k) for k in range(7)]
    plan = plan_ticks(metas, hz=20.0, ue_period_s=0.5)
    assert plan.num_contexts == 3 + 4  # every other sample is a tick: half the contexts
    for i, (episode, frame) in enumerate(metas):
        t_episode, t_frame = metas[plan.tick_items[plan.tick[i]]]
        assert t_episode == episode and t_frame <= frame
        assert plan.age_s[i] == pytest.approx((frame - t_frame) / 20.0)
        assert 0.0 <= plan.age_s[i] < 0.5
    assert sorted(set(np.round(plan.age_s, 3))) == [0.0, 0.25]


def test_camera_rate_samples_cut_the_contexts_tenfold():
    metas = [(0, k) for k in range(200)]  # 10 s at 20 Hz, a sample every frame
    plan = plan_ticks(metas, hz=20.0, ue_period_s=0.5)
    assert plan.num_contexts == 20 and float(plan.age_s.max()) == pytest.approx(0.45)
    assert plan_ticks(metas, hz=20.0, ue_period_s=0.0).num_contexts == 200


def test_ticks_restart_after_a_gap():
    # Invalid samples left out of the dataset leave a gap: the next sample starts a tick.
    metas = [(0, 15), (0, 20), (0, 50), (0, 55)]
    plan = plan_ticks(metas, hz=20.0, ue_period_s=0.5)
    assert plan.tick_items.tolist() == [0, 2]


def test_processes_split_each_global_batch_evenly():
    n, batch = 37, 8
    steps = [global_batch_indices(n, batch, s, seed=5) for s in range(10)]
    flat = [i for step in steps for i in step]
    assert sorted(flat[:n]) == list(range(n))  # the first epoch visits every item once
    assert steps == [global_batch_indices(n, batch, s, seed=5) for s in range(10)]  # deterministic
    assert steps != [global_batch_indices(n, batch, s, seed=6) for s in range(10)]
    for world in (1, 2, 4):
        parts = [list(GlobalBatchSampler(n, batch, 5, DistEnv(rank=r, world_size=world), 3, 10))
                 for r in range(world)]
        for k, step in enumerate(range(3, 10)):
            assert [i for p in parts for i in p[k]] == steps[step]
    with pytest.raises(ValueError, match="divisible"):
        local_slice(6, DistEnv(rank=0, world_size=4))


def test_qa_pairs_supervise_the_answer_only():
    from automot_ros.model import build_model

    model = build_model("tiny")
    data = SyntheticDriving("tiny", samples=6, episodes=2)
    assert [sample_meta(data, i) for i in range(4)] == [(0, 15), (0, 20), (0, 25), (1, 15)]
    pairs = QAPairs(data, model)
    assert len(pairs) == 6
    items = [pairs[k] for k in range(3)]
    batch = QACollate(model.tokenizer.eos_ids[0])(items)
    assert batch["frames"].shape == (3, 4, 3, 64, 128) and batch["frames"].dtype == torch.uint8
    assert batch["instruction_ids"].shape[0] == 3 and batch["text_ids"].shape == batch["loss_mask"].shape
    for b, item in enumerate(items):
        ids = batch["text_ids"][b][batch["loss_mask"][b] > 0]
        answer = data.qa(b)[0]["answer"]
        assert model.tokenizer.decode(ids.tolist()) == answer  # the answer and the end-of-turn token
        assert int(ids[-1]) == model.tokenizer.eos_ids[0]
