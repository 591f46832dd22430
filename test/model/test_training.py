"""Gradients of the joint (training) pass reach the AE, and the UE unless frozen."""

from __future__ import annotations

import pytest

from automot_ros.model import build_model


def _loss_and_grads(model, make_inputs):
    frames, instruction, scene, targets, speed = make_inputs(model, 2)
    model.zero_grad(set_to_none=True)
    plan = model.forward_sync(frames[None].expand(2, -1, -1, -1, -1), [instruction] * 2, scene, targets, speed)
    loss = (plan.lateral_logits.logsumexp(-1).sum() + plan.longitudinal_logits.logsumexp(-1).sum()
            + plan.path.abs().sum() + plan.waypoints.abs().sum() + plan.speed.pow(2).sum())
    loss.backward()
    return {name: p.grad for name, p in model.named_parameters()}


def _reached(grads, name) -> bool:
    return grads[name] is not None and bool(grads[name].abs().sum() > 0)


AE_PARAMS = ("ae.blocks.0.q_proj.weight", "ae.blocks.5.mlp.down_proj.weight", "ae.queries",
             "ae.scene_encoder.proj.weight", "ae.target_embed.0.weight", "ae.speed_embed.0.weight",
             "ae.decision_head.weight", "ae.path_head.weight", "ae.speed_head.weight")
UE_PARAMS = ("decoder.blocks.0.q_proj.weight", "decoder.blocks.5.k_proj.weight",
             "decoder.embed_tokens.weight", "frame_encoder.net.0.weight")


@pytest.fixture()
def model():
    return build_model("tiny").train()


def test_gradients_reach_both_experts(model, make_inputs):
    grads = _loss_and_grads(model, make_inputs)
    for name in AE_PARAMS + UE_PARAMS + ("projector.0.weight",):
        assert _reached(grads, name), name


def test_frozen_understanding_gets_no_gradients(model, make_inputs):
    model.freeze_understanding()
    grads = _loss_and_grads(model, make_inputs)
    for name in UE_PARAMS:
        assert grads[name] is None, name
    for name in AE_PARAMS + ("projector.0.weight",):
        assert _reached(grads, name), name
    model.freeze_understanding(False)
    assert _reached(_loss_and_grads(model, make_inputs), UE_PARAMS[0])
