"""Several waypoint modes (action.waypoint_modes): the plan is the best-scored candidate, in
torch, in the joint pass and in the exported ONNX; one mode is the release's head."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

from automot_testing import random_action_expert_inputs, tiny_model_with_action


def _ae_inputs(model, batch: int):
    return random_action_expert_inputs(model, batch, tokens=40, generator=torch.Generator().manual_seed(3))


def _spread_mode_scores(model, inputs) -> None:
    """Untrained, the mode scores hardly differ between items, so every item picks the same
    mode: centre the score head on these inputs' mean and scale it up, so that the choice
    differs between items and a wrong pick shows."""
    seen = []
    handle = model.ae.mode_head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    with torch.no_grad():
        model.ae(*inputs)
        handle.remove()
        head = model.ae.mode_head
        head.weight.mul_(1e3)
        head.bias.copy_(-head.weight @ seen[0].mean(0))


def test_one_mode_is_the_release_head():
    model = tiny_model_with_action()
    assert model.ae.mode_head is None and model.ae.waypoint_head.out_features == 2
    with torch.no_grad():
        *plan, waypoint_modes, mode_logits = model.ae(*_ae_inputs(model, 2), all_modes=True)
    assert waypoint_modes.shape == (2, 1, 6, 2) and torch.equal(waypoint_modes[:, 0], plan[3])
    assert torch.equal(mode_logits, torch.zeros(2, 1))


def test_the_plan_is_the_best_scored_mode_and_the_modes_start_fanned_out():
    model = tiny_model_with_action(waypoint_modes=3)
    inputs = _ae_inputs(model, 64)
    _spread_mode_scores(model, inputs)
    with torch.no_grad():
        *plan, waypoint_modes, mode_logits = model.ae(*inputs, all_modes=True)
        served = model.ae(*inputs)
    assert waypoint_modes.shape == (64, 3, 6, 2) and mode_logits.shape == (64, 3)
    best = mode_logits.argmax(-1)
    assert len(set(best.tolist())) > 1  # not a constant choice
    assert torch.equal(plan[3], waypoint_modes[torch.arange(64), best])
    for a, b in zip(plan, served):
        assert torch.equal(a, b)
    # Untrained, the modes fan out to the right, straight on and to the left, 3 m apart at 3 s.
    fan = torch.tensor([[0.0, -3.0], [0.0, 0.0], [0.0, 3.0]])
    torch.testing.assert_close(waypoint_modes[:, :, -1], fan.expand(64, -1, -1))


def test_forward_sync_and_onnx_pick_the_same_mode(tmp_path, make_inputs):
    from automot_ros.engines.artifacts import INPUT_NAMES
    from automot_ros.engines.export import export_action_expert

    model = tiny_model_with_action(waypoint_modes=3)
    frames, instruction, scene, targets, speed = make_inputs(model, 4)
    context = model.understand(frames, instruction)
    with torch.no_grad():
        sync = model.forward_sync(frames[None].expand(4, -1, -1, -1, -1), [instruction] * 4, scene, targets, speed)
    torch.testing.assert_close(model.act(context, scene, targets, speed).waypoints, sync.waypoints, atol=1e-5, rtol=0)

    inputs = _ae_inputs(model, 16)
    _spread_mode_scores(model, inputs)
    result = export_action_expert(model, tmp_path, precisions=["fp32"], context_lengths=[40])
    session = onnxruntime.InferenceSession(str(result.files["fp32"]), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        reference = model.action_expert(*inputs)
    outputs = session.run(None, dict(zip(INPUT_NAMES, (t.numpy() for t in inputs))))
    assert len(outputs) == len(reference) == 5
    assert len({tuple(w[-1].round(3)) for w in outputs[3]}) > 1
    for out, ref in zip(outputs, reference):
        np.testing.assert_allclose(out, ref.numpy(), atol=1e-4 * max(1.0, float(ref.abs().max())))


def test_mode_counts_below_one_are_refused():
    with pytest.raises(ValueError, match="waypoint_modes must be at least 1"):
        tiny_model_with_action(waypoint_modes=0)
